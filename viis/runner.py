"""``viis run``: the recorder, the retention sweeper, the capacity forecast and the HTTP API
in one process and one asyncio loop; simulated cameras when none is configured."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from viis.app import App
from viis.core.config import Settings, load_settings
from viis.core.logging import configure, get_logger
from viis.core.metrics import store_forecast_days
from viis.health.faults import clear_fault, raise_fault
from viis.integrity.audit import checkpoint_due
from viis.media.capacity import forecast
from viis.media.retention import over_retention, sweep
from viis.registry.service import CameraInput

log = get_logger(__name__)
SIM_PREFIX = "sim-cam"


def start_simcams(app: App):
    """Start the simulated fleet and register its cameras (idempotent by name)."""
    from viis.simcam.fleet import SimFleet

    sc = app.settings.simcam
    fleet = SimFleet(sc.count, rtsp_port=sc.rtsp_port, control_port=sc.control_port,
                     width=sc.width, height=sc.height, fps=sc.fps, bitrate=sc.bitrate,
                     gop_s=sc.gop_s, sub_stream=sc.sub_stream,
                     sub_bitrate=max(50_000, sc.bitrate // 4) if sc.sub_stream else None)
    fleet.start()  # clips cached in the simcam default cache
    with app.db.session() as s:
        have = {c.name: c for c in app.cameras.list(s)}
        for i in range(sc.count):
            name, url = f"{SIM_PREFIX}{i + 1}", fleet.url(i)
            sub = fleet.url(i, sub=True) if sc.sub_stream else None
            if name in have:
                if have[name].main_url != url or have[name].sub_url != sub:
                    app.cameras.update(s, have[name].id, {"main_url": url, "sub_url": sub})
            else:
                app.cameras.add(s, CameraInput(name=name, main_url=url, sub_url=sub,
                                               site="simulated", priority=10))
    log.info("simcams_started", count=sc.count, port=sc.rtsp_port)
    return fleet


def wants_simcams(app: App) -> bool:
    if app.settings.simcam.enabled is not None:
        return app.settings.simcam.enabled
    if app.settings.cameras:
        return False
    with app.db.session() as s:
        real = [c for c in app.cameras.list(s) if not c.name.startswith(SIM_PREFIX)]
    return not real


async def housekeeping(app: App) -> None:
    """Retention sweep and capacity forecast, in worker threads, forever."""
    loop = asyncio.get_running_loop()
    st = app.settings
    next_sweep = 0.0
    while True:
        now = loop.time()
        if now >= next_sweep:
            try:
                await loop.run_in_executor(None, sweep, app.db, st.segments_path, app.clock)
            except Exception:
                log.exception("sweep_failed")
            next_sweep = now + st.retention.sweep_interval_s
        try:
            await loop.run_in_executor(None, _forecast, app)
        except Exception:
            log.exception("forecast_failed")
        try:  # sign the audit log and pin the footage chains (invariant 2)
            await loop.run_in_executor(None, checkpoint_due, app.db, app.clock, st.data_dir,
                                       int(st.audit.checkpoint_interval_s * 1000))
        except Exception:
            log.exception("audit_checkpoint_failed")
        await asyncio.sleep(60)


def _forecast(app: App) -> None:
    st = app.settings.storage
    with app.db.session() as s:
        f = forecast(s, app.settings.segments_path, app.clock.wall_ms(),
                     reserve_bytes=st.min_free_bytes, warn_days=st.forecast_warn_days)
        if f.days_until_full is not None:
            store_forecast_days.set(f.days_until_full)
        now = app.clock.wall_ms()
        if f.level == "warning":
            raise_fault(s, "retention_at_risk", "warning", f.message, now)
        elif f.level == "ok":
            clear_fault(s, "retention_at_risk", now)
        # N17.1: footage kept past the default without a hold or legal basis must go.
        over = over_retention(s, app.rules, now)
        if over:
            names = ", ".join(f"{o.camera} ({o.segments} segments)" for o in over)
            raise_fault(s, "retention_exceeded", "warning",
                        f"footage kept past {over[0].limit_days} days without a hold or legal "
                        f"basis (N17.1): {names}. Record the legal basis on the camera or let "
                        "its retention expire.", now)
        else:
            clear_fault(s, "retention_exceeded", now)


class Health:
    """Camera health for `viis run`: fault tickets with notifications, video quality
    diagnosis and clock accuracy, all fed by the recorder's keyframe tap (Q19.3, Q18.1,
    N23.1; invariant 6)."""

    def __init__(self, app: App, recorder, cycle_ms: int | None, fleet=None) -> None:
        from viis.health.clock import ClockWatch
        from viis.health.monitor import HealthMonitor, PersistenceRule
        from viis.health.notify import Notifier
        from viis.health.tickets import TicketDesk
        from viis.simcam.clips import scene_box

        h = app.settings.health
        self.notifier = Notifier(app.settings.notify)
        self.desk = TicketDesk(app, self.notifier, hold_s=h.ticket_hold_s)
        self.desk.start(h.ticket_sweep_s)
        with app.db.session() as s:
            simulated = {c.id for c in app.cameras.list(s) if c.name.startswith(SIM_PREFIX)}
            sim_index = {c.id: int(c.name[len(SIM_PREFIX):]) - 1 for c in app.cameras.list(s)
                         if c.name.startswith(SIM_PREFIX) and c.name[len(SIM_PREFIX):].isdigit()}

        def roi(camera_id, w, h_):  # the simulated cameras' burnt-in clock is not scene
            return scene_box(w, h_) if camera_id in simulated else None

        def cycle(camera_id):  # only simulated cameras paint the machine-readable time code
            return cycle_ms if camera_id in simulated else None

        rule = PersistenceRule(n=h.persist_n, m=h.persist_m, min_s=h.persist_s, clear_n=h.clear_n)
        self.monitor = HealthMonitor(app, recorder, interval_s=h.interval_s, rule=rule, roi=roi,
                                     loss_s=h.signal_loss_s)
        def onvif(camera_id):  # the simulated cameras answer ONVIF GetSystemDateAndTime
            i = sim_index.get(camera_id)
            return fleet.onvif_url(i) if fleet is not None and i is not None and i < fleet.count \
                else None

        self.clock = ClockWatch.attach(app, recorder, self.monitor, record_s=h.clock_record_s,
                                       timecode_cycle=cycle if cycle_ms else None,
                                       onvif_url=onvif if fleet is not None else None)
        from viis.health.checks import PeriodicChecks  # signal loss, storage quality (Q19.6)

        self.checks = PeriodicChecks(app, self.monitor).start()

    def close(self) -> None:
        self.checks.stop()
        self.monitor.close()
        self.desk.stop()
        self.notifier.close()


def ensure_initial_admin(app: App) -> None:
    """First start: the console's administrator, password in <data_dir>/initial-admin-password."""
    from viis.access.identity import IdentityService

    with app.db.session() as s:
        IdentityService(app.clock).ensure_initial_admin(s, app.settings.data_dir)


async def serve(app: App) -> None:
    import uvicorn

    from viis.media.recorder import Recorder
    from viis.web.app import create_app

    fleet = start_simcams(app) if wants_simcams(app) else None
    app.seed_cameras()
    ensure_initial_admin(app)
    from viis.interconnect.gb28181.service import start_with

    gb = await start_with(app)  # GB/T 28181 platform role (Q13.2), before the recorder: its
    # gb28181:// cameras are INVITEd through it
    recorder = Recorder(app, gb=gb)
    await recorder.start()
    health = Health(app, recorder, fleet.cycle_ms if fleet else None, fleet) \
        if app.settings.health.enabled else None
    api = create_app(app, recorder)
    api.state.health_monitor = health.monitor if health is not None else None  # health wall
    api.state.gb28181 = gb  # /api/gb28181: devices below us
    from viis.interconnect.gb28181.cascade import start_cascade

    cascade = await start_cascade(app, recorder, health.desk if health is not None else None)
    api.state.cascade = cascade  # lower-platform role: registers to the upper platforms (Q13.1)
    media_answerer = None
    if cascade is not None:  # upper platforms' live/playback INVITEs, through the one door
        from viis.interconnect.gb28181.serve import MediaAnswerer

        media_answerer = MediaAnswerer.attach(cascade, recorder)
    api.state.gb_media = media_answerer  # upward media sessions: MediaAnswerer.status()
    h = app.settings.http
    server = uvicorn.Server(uvicorn.Config(api, host=h.host, port=h.port, access_log=False,
                                           log_config=None, lifespan="off"))
    server.install_signal_handlers = lambda: None  # we own SIGINT/SIGTERM
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(server.serve(), name="http"),
             asyncio.create_task(housekeeping(app), name="housekeeping")]
    log.info("viis_running", url=f"http://{h.host}:{h.port}", cameras=len(recorder.cameras),
             token_file=str(Path(app.settings.data_dir) / "api-token"))
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, tasks[0]], return_when=asyncio.FIRST_COMPLETED)
    log.info("viis_stopping")
    server.should_exit = True
    tasks[1].cancel()
    if getattr(api.state, "live", None) is not None:
        await api.state.live.close()  # live view: sub-stream sessions
    if media_answerer is not None:
        await media_answerer.close()
    if cascade is not None:
        await cascade.stop()  # unregisters from the upper platforms
    await recorder.stop()
    if gb is not None:
        await gb.stop()
    if health is not None:
        health.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    if fleet is not None:
        fleet.stop()


def run(config: str | None = None, settings: Settings | None = None) -> int:
    settings = settings or load_settings(config)
    configure(settings.log.level, settings.log.json_format)
    app = App.open(settings)
    try:
        asyncio.run(serve(app))
    finally:
        app.close()
    return 0
