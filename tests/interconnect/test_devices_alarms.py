"""Device alarms become health faults and tickets (Q19.3: faults found, notified, repaired
and tracked; Q13.2: devices from below). A real sipp NVR registers, its catalog makes
cameras, then it reports a video loss twice, a motion detection, an alarm VIIS does not
know (method 7, Chinese description) and its own full disk: each is answered 200, the
video loss is one ``video_signal_loss`` fault and ticket on the channel's camera (the repeat
counted, not written again), the motion detection opens nothing, the unknown one is a
generic device alarm with the device's description, the disk a fault of the NVR itself; all
visible in /api/gb28181 and /api/health/tickets; the alarm faults clear after the quiet
time and their tickets say so. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.access.helpers import Site
from tests.interconnect.gb_helpers import CH1, CH2, DEV, SCEN, SIPP
from tests.interconnect.test_devices_web import Running, _as, _wait
from viis.core.config import Gb28181Settings
from viis.health.models import Fault
from viis.health.tickets import FaultTicket, TicketDesk
from viis.interconnect.gb28181 import manscdp
from viis.interconnect.gb28181.alarms import GENERIC, classify
from viis.interconnect.gb28181.devices import gb_url
from viis.interconnect.gb28181.service import GbPlatformService
from viis.registry.models import Camera

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp not installed (apt-get install sip-tester)")


def _alarm(method, atype=None, device=CH1, desc="x", prio=1):
    return manscdp.parse(manscdp.alarm_notify(device, 1, priority=prio, method=method,
                                              time_ms=1_790_000_000_000, description=desc,
                                              alarm_type=atype))


def test_alarm_kinds_follow_the_method_and_type():
    assert classify(DEV, _alarm(2, 1)).kind == "video_signal_loss"
    assert classify(DEV, _alarm(2, 2)).kind == "device_tamper"
    assert classify(DEV, _alarm(6, 1)).kind == "device_disk_fault"
    assert classify(DEV, _alarm(6, 9)).kind == "device_fault"  # a fault of an unlisted type
    assert classify(DEV, _alarm(5, 11)).kind == "video_anomaly"
    for m, t in ((5, 2), (5, 6), (2, None), (1, None), (4, None)):
        assert classify(DEV, _alarm(m, t)).kind is None, (m, t)  # events: nothing to repair
    a = classify(DEV, _alarm(7, None, desc="门禁被撬", prio=2))
    assert (a.kind, a.severity, a.description) == (GENERIC, "critical", "门禁被撬")
    a = classify(DEV, _alarm(5, 99, prio=4))
    assert (a.kind, a.severity) == (GENERIC, "warning")
    # lenient: <info>/<alarmtype> in any case, garbage numbers and time
    body = (b'<?xml version="1.0"?><Notify><CmdType>Alarm</CmdType><SN>1</SN><DeviceID>'
            + CH1.encode() + b'</DeviceID><AlarmMethod>2</AlarmMethod><AlarmTime>never'
            b'</AlarmTime><AlarmPriority>x</AlarmPriority><info><alarmtype> 1 </alarmtype>'
            b'</info></Notify>')
    a = classify(DEV, manscdp.parse(body))
    assert (a.kind, a.priority, a.time_ms, a.channel_id) == ("video_signal_loss", None, None,
                                                             CH1)


class _AlarmRunning(Running):
    def __init__(self, app) -> None:  # as Running, with a short quiet time
        import asyncio
        import threading

        st = Gb28181Settings(enabled=True, host="127.0.0.1", port=0, password="secret",
                             keepalive_s=5, query_timeout_s=5, alarm_clear_s=4)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.svc = GbPlatformService(app, st, flush_interval=0.1)
        asyncio.run_coroutine_threadsafe(self.svc.start(), self.loop).result(30)


def _faults(app):
    with app.db.session() as s:
        return {(f.kind, f.camera_id): f for f in s.scalars(select(Fault))}


def test_device_alarms_become_deduplicated_faults_and_tickets(tmp_path, db, clock):
    import subprocess

    from tests.interconnect.gb_helpers import SERVER, free_udp_port

    site = Site(tmp_path, db, clock)
    desk = TicketDesk(site.app)
    run = _AlarmRunning(site.app)
    site.api.state.gb28181 = run.svc
    dev = subprocess.Popen(
        [SIPP, f"127.0.0.1:{run.svc.port}", "-sf", str(SCEN / "gb_device_alarms.xml"),
         "-oocsf", str(SCEN / "gb_device_catalog_ooc.xml"), "-m", "1", "-l", "1", "-t", "u1",
         "-i", "127.0.0.1", "-p", str(free_udp_port()), "-s", DEV, "-au", DEV, "-ap", "secret",
         "-set", "domain", SERVER[:10], "-set", "server", SERVER, "-timeout", "40",
         "-timeout_error", "-nostdin"], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    try:
        assert _wait(lambda: run.svc.alarms.received >= 5, 30), run.svc.diagnose(DEV)
        with site.app.db.session() as s:
            cams = {c.main_url: c.id for c in s.scalars(select(Camera))}
        cam1, cam2 = cams[gb_url(DEV, CH1)], cams[gb_url(DEV, CH2)]
        disk = f"gb_device_disk_full_{DEV}"
        assert _wait(lambda: {("video_signal_loss", cam1), (disk, None)} <= set(_faults(site.app))
                     and any(k == GENERIC for k, _ in _faults(site.app)), 15), _faults(site.app)
        faults = _faults(site.app)
        loss = faults[("video_signal_loss", cam1)]
        assert loss.severity == "critical" and "video loss" in loss.message
        assert CH1 in loss.message and loss.cleared_ms is None
        generic = faults[(GENERIC, cam2)]
        assert "门禁被撬" in generic.message and generic.severity == "critical"
        assert len(faults) == 3, faults  # the motion detection opened nothing
        st = run.svc.alarms.status()
        assert st["received"] == 5 and st["repeats"] == 1 and st["faults_written"] == 3, st
        assert _wait(lambda: run.svc.alarms.status()["acknowledged"] == 5, 10), \
            run.svc.alarms.status()  # each answered by a Response Alarm the device took
        with site.app.db.session() as s:
            tickets = {(t.kind, t.camera_id): t.status for t in s.scalars(select(FaultTicket))}
        assert tickets[("video_signal_loss", cam1)] == "open", tickets

        maint = _as(site, "maint1", ("maintainer",))
        r = maint.get(f"/api/gb28181/devices/{DEV}")
        assert r.status_code == 200, r.text
        alarms = r.json()["alarms"]
        assert [a["label"] for a in alarms][-1] == "video loss"
        loss_view = next(a for a in alarms if a["fault_kind"] == "video_signal_loss")
        assert loss_view["count"] == 2 and loss_view["channel_id"] == CH1
        motion = next(a for a in alarms if a["label"] == "motion detection")
        assert motion["fault_kind"] is None and motion["method_name"] == "video alarm"
        r = maint.get("/api/health/tickets", params={"camera_id": cam1})
        assert r.status_code == 200 and r.json()[0]["kind"] == "video_signal_loss", r.text

        # no repeat for alarm_clear_s: the faults the alarms opened clear; tickets follow
        assert _wait(lambda: all(f.cleared_ms is not None for f in _faults(site.app).values()
                                 if not f.kind.startswith("gb_offline")), 20), _faults(site.app)
        with site.app.db.session() as s:
            t = s.scalar(select(FaultTicket).where(FaultTicket.kind == "video_signal_loss"))
            assert t.status == "cleared"
        assert all(a["cleared"] for a in run.svc.alarms.recent(DEV) if a["fault_kind"])
    finally:
        dev.terminate()
        dev.communicate(timeout=10)
        run.stop()
        desk.detach()


def test_a_subscriptions_granted_expires_is_read_from_ascii_digits_only():
    from viis.interconnect.gb28181.service import granted_seconds

    assert granted_seconds(" 1800 ", 3600) == 1800
    for odd in ("²", "٣٠٠", "", "-5", "1e3", "9" * 40):
        assert granted_seconds(odd, 3600) == 3600, odd


def test_quiet_time_clears_only_what_an_alarm_opened_and_repeats_keep_it_open(tmp_path, db,
                                                                              clock):
    """On a ManualClock, no sockets: a video loss the health monitor had already raised is
    not cleared by the alarm's quiet time (it is the monitor's to clear); a tamper alarm
    repeated after ``alarm_repeat_s`` stays one open fault whose quiet time restarts; an
    alarm of a channel without a camera is a fault of the device."""
    import asyncio

    from tests.interconnect.gb_helpers import make_app
    from viis.health.faults import raise_fault
    from viis.interconnect.gb28181.clock import ManualClock
    from viis.interconnect.gb28181.devices import DeviceStore

    app = make_app(tmp_path, db, clock, alarm_repeat_s=10, alarm_clear_s=100)
    with app.db.session() as s:
        DeviceStore(app.cameras).sync_catalog(s, DEV, [
            {"DeviceID": CH1, "Name": "大门", "Parental": "0", "Status": "ON"}], True,
            clock.wall_ms())
        cam = s.scalar(select(Camera.id))
        raise_fault(s, "video_signal_loss", "critical", "monitor: no keyframe", clock.wall_ms(),
                    camera_id=cam)
    mc = ManualClock()
    svc = GbPlatformService(app, clock=mc)
    desk = svc.alarms

    async def settle():
        for _ in range(200):
            await asyncio.sleep(0.01)
            if not svc._tasks:
                return

    async def run():
        desk.on_alarm(DEV, _alarm(2, 1))
        desk.on_alarm(DEV, _alarm(2, 2))
        desk.on_alarm(DEV, _alarm(2, 4, device="34020000001310000077"))  # no such camera
        await settle()
        mc.advance(50)
        desk.on_alarm(DEV, _alarm(2, 2))  # past alarm_repeat_s: written again, same fault
        await settle()
        mc.advance(60)  # 110 s after the first tamper alarm, 60 s after the repeat
        await settle()
        mid = _faults(app)
        mc.advance(50)
        await settle()
        return mid, _faults(app)

    mid, end = asyncio.run(run())
    assert mid[("device_tamper", cam)].cleared_ms is None  # the repeat restarted the quiet time
    assert end[("device_tamper", cam)].cleared_ms is not None
    assert end[("video_signal_loss", cam)].cleared_ms is None  # the monitor's, not ours
    assert "video loss" in end[("video_signal_loss", cam)].message  # the device's words
    dev_fault = end[(f"gb_device_high_temperature_{DEV}", None)]
    assert dev_fault.cleared_ms is not None and "34020000001310000077" in dev_fault.message
    assert desk.status()["faults_written"] == 4 and desk.status()["repeats"] == 0


def test_catalog_events_vlost_and_defect_open_faults_and_on_clears_them(tmp_path, db, clock):
    """A subscription's (or an unasked) catalog event VLOST is a video-loss fault and DEFECT
    a channel fault like the matching alarms; the device's ON for that channel is the repair
    seen: both clear at once, without waiting for the quiet time; a tamper alarm on the same
    channel is not the channel's ON to clear."""
    import asyncio

    from tests.interconnect.gb_helpers import make_app
    from viis.interconnect.gb28181.clock import ManualClock
    from viis.interconnect.gb28181.devices import DeviceStore

    app = make_app(tmp_path, db, clock, alarm_clear_s=3600)
    with app.db.session() as s:
        DeviceStore(app.cameras).sync_catalog(s, DEV, [
            {"DeviceID": CH1, "Name": "大门", "Parental": "0", "Status": "ON"}], True,
            clock.wall_ms())
        cam = s.scalar(select(Camera.id))
    svc = GbPlatformService(app, clock=ManualClock())
    desk = svc.alarms

    async def settle():
        for _ in range(200):
            await asyncio.sleep(0.01)
            if not svc._tasks:
                return

    async def run():
        desk.catalog_event(DEV, CH1, "VLOST")
        desk.catalog_event(DEV, CH1, "vlost ")  # a repeat, any case: counted
        desk.catalog_event(DEV, CH1, "DEFECT")
        desk.on_alarm(DEV, _alarm(2, 2))  # tamper
        desk.catalog_event(DEV, CH1, "OFF")  # offline is the device's fault, not a channel's
        await settle()
        opened = _faults(app)
        desk.catalog_event(DEV, CH1, "ON")
        await settle()
        return opened, _faults(app)

    opened, after = asyncio.run(run())
    assert {k for k, f in opened.items() if f.cleared_ms is None} == {
        ("video_signal_loss", cam), ("device_fault", cam), ("device_tamper", cam)}, opened
    assert "catalog event VLOST" in opened[("video_signal_loss", cam)].message
    assert after[("video_signal_loss", cam)].cleared_ms is not None
    assert after[("device_fault", cam)].cleared_ms is not None
    assert after[("device_tamper", cam)].cleared_ms is None
    assert desk.status()["repeats"] == 1
    assert [a["event"] for a in desk.recent(DEV)] == [None, "DEFECT", "VLOST"]
