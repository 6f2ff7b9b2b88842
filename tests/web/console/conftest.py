"""Fixtures for the browser tests of the web console (issue 3).

``console``: a running VIIS (recorder + HTTP API + console) on a free port, with simulated
cameras on a real RTSP server (``viis/simcam``; the last one also has a sub stream at half
size), SQLite, the real clock (live video is real time), and the first-start administrator
signed in with training on record.
``browser_page``: a Playwright page of Debian's Chromium signed in as that administrator.
``anon_page``: the same without a session. Nothing is downloaded: Playwright drives
``/usr/bin/chromium``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.console.helpers import ADMIN_PASSWORD, CHEAP, Console

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_console(tmp: Path, cameras: int = 4, **fleet_kw) -> Console:
    """Start simulated cameras, the recorder and the HTTP server in a background thread."""
    import uvicorn

    from viis.access.identity import INITIAL_ADMIN, INITIAL_PASSWORD_FILE, IdentityService
    from viis.app import App
    from viis.core.config import load_settings
    from viis.media.recorder import Recorder
    from viis.registry.service import CameraInput
    from viis.simcam.fleet import SimFleet
    from viis.web.app import create_app

    kw = dict(width=640, height=360, fps=25, gop_s=1.0, cycle_s=60.0, bitrate=600_000,
              sub_stream=True, sub_bitrate=200_000)
    kw.update(fleet_kw)
    fleet = SimFleet(cameras, **kw).start()
    port = free_port()
    settings = load_settings(environ={
        "VIIS_DATA_DIR": str(tmp / "data"), "VIIS_HTTP__PORT": str(port),
        "VIIS_STORAGE__SEGMENT_SECONDS": "10", "VIIS_STORAGE__MIN_FREE_BYTES": "1048576",
        "VIIS_RECORDER__RECONNECT_MIN_S": "0.5", "VIIS_RECORDER__RECONNECT_MAX_S": "2",
        "VIIS_RECORDER__STALL_TIMEOUT_S": "3"})
    app = App.open(settings)
    ident = IdentityService(app.clock, CHEAP)
    with app.db.session() as s:
        for i in range(cameras):
            # the last camera has a sub stream: live view uses it (issue 3 item 3)
            sub = fleet.url(i, sub=True) if i == cameras - 1 else None
            app.cameras.add(s, CameraInput(name=f"cam{i + 1}", main_url=fleet.url(i),
                                           sub_url=sub, site="test site", priority=10))
        admin = ident.ensure_initial_admin(s, settings.data_dir)
        now = app.clock.wall_ms()
        for topic in ("skills", "confidentiality"):  # footage needs training (Q19.2)
            ident.add_training(s, admin.id, topic=topic, course=f"{topic} course",
                               completed_ms=now - 86_400_000,
                               valid_until_ms=now + 365 * 86_400_000, recorded_by="test")
    initial = (settings.data_dir / INITIAL_PASSWORD_FILE).read_text().strip()

    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict = {}

    async def main() -> None:
        recorder = Recorder(app)
        await recorder.start()
        api = create_app(app, recorder, identity=ident)
        server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port,
                                               access_log=False, log_config=None,
                                               lifespan="off", ws="websockets-sansio"))
        server.install_signal_handlers = lambda: None
        box.update(recorder=recorder, api=api, server=server)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        started.set()
        await task
        await api.state.live.close()
        await recorder.stop()

    def runner() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
        except BaseException as e:  # noqa: BLE001 - reported to the fixture
            box["error"] = e
        finally:
            started.set()

    thread = threading.Thread(target=runner, name="viis-console", daemon=True)
    thread.start()
    if not started.wait(60) or "error" in box:
        fleet.stop()
        raise RuntimeError(f"console did not start: {box.get('error')!r}")
    c = Console(url=f"http://127.0.0.1:{port}", app=app, fleet=fleet, ident=ident,
                recorder=box["recorder"], api=box["api"], loop=loop, thread=thread,
                server=box["server"], login=INITIAL_ADMIN, password=ADMIN_PASSWORD)
    # First sign-in with the generated password, then the forced change (as a user would).
    c.token = c.sign_in(INITIAL_ADMIN, initial, new_password=ADMIN_PASSWORD)
    return c


@pytest.fixture(scope="module")
def console(tmp_path_factory) -> Iterator[Console]:
    c = start_console(tmp_path_factory.mktemp("console"))
    try:
        c.wait_recording(timeout=60)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def chromium():
    """Module-scoped: Playwright's sync API keeps an event loop running in the main thread
    while it is started, which would break later tests that call ``asyncio.run``."""
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()
        pw.stop()


def _context(chromium, console: Console | None, lang: str = "en-US", token: str | None = None):
    ctx = chromium.new_context(locale=lang, viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(30_000)
    if console is not None and token:
        ctx.add_cookies([{"name": "viis_session", "value": token, "url": console.url}])
    return ctx


@pytest.fixture
def browser_page(chromium, console):
    """A page signed in as the console's administrator (English browser)."""
    ctx = _context(chromium, console, token=console.token)
    page = ctx.new_page()
    page.on("pageerror", lambda e: print("pageerror:", e))
    try:
        yield page
    finally:
        ctx.close()


@pytest.fixture
def anon_page(chromium, console):
    """A page with no session (English browser)."""
    ctx = _context(chromium, console)
    page = ctx.new_page()
    try:
        yield page
    finally:
        ctx.close()


@pytest.fixture
def new_page(chromium, console):
    """Factory: new_page(lang="zh-CN", signed_in=True) -> page; closed after the test."""
    made = []

    def make(lang: str = "en-US", signed_in: bool = True):
        ctx = _context(chromium, console, lang, console.token if signed_in else None)
        made.append(ctx)
        return ctx.new_page()

    try:
        yield make
    finally:
        for ctx in made:
            ctx.close()

