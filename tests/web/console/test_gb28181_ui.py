"""Browser tests of the GB/T 28181 page ``#/gb28181`` (issue 7 item 4, diagnostics; Q13.2 the
police integrate systems from below, Q13.1 level-by-level interconnection shared by security
level and permission).

Real parts: the console of conftest.py (one simulated camera, recorder, HTTP API) with the
platform role (GbPlatformService) and the cascade (Cascade) on its event loop, sipp as the
devices (the scenarios in tests/interconnect/scenarios: register with digest, keepalive,
answer the catalog split in two GB2312 messages; a device with a wrong password), the
cascade registering to this same VIIS's platform role as its upper platform over loopback
UDP, and Debian's Chromium. The platform's keepalive interval is 30 s so that a device
whose sipp run has ended stays online for the test (offline after 3 missed intervals is
tested in tests/interconnect/test_devices_sipp.py).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.interconnect.gb_helpers import CH1, CH2, DEV, GROUP, SCEN, SERVER, SIPP, free_udp_port
from tests.web.console.conftest import start_console
from tests.web.console.helpers import assert_all_translated, screenshot, wait_until

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp not installed (apt-get install sip-tester)")

DEV_PASSWORD = "dev-secret-4417"
WRONG_DEV = "34020000001180000077"  # a device whose password does not match
LOCAL_ID = "34020000002000000099"   # our platform ID towards the upper (type 200)
UPPER_PASSWORD = "Upper-Only-Secret-8812"
AUDITOR_PASSWORD = "audit-only-2026!"


def _sipp(port: int, cwd, scenario: str, device: str, password: str, *extra: str,
          local_port: int | None = None, calls: int = 1) -> subprocess.Popen:
    return subprocess.Popen(
        [SIPP, f"127.0.0.1:{port}", "-sf", str(SCEN / scenario), *extra, "-m", str(calls),
         "-l", "1", "-t", "u1", "-i", "127.0.0.1", "-p", str(local_port or free_udp_port()),
         "-s", device, "-au", device,
         "-ap", password, "-set", "domain", SERVER[:10], "-set", "server", SERVER,
         "-timeout", "30", "-nostdin"],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    """The console with one simulated camera, the platform role and the cascade; a sipp
    device has registered and its catalog (2 cameras, names 大门 and 停车场 镕) is synced."""
    from viis.core.config import Gb28181Settings
    from viis.interconnect.gb28181.cascade import Cascade
    from viis.interconnect.gb28181.service import GbPlatformService

    tmp = tmp_path_factory.mktemp("gb")
    c = start_console(tmp, cameras=1)
    c.wait_recording(timeout=60)  # before the GB cameras (not recorded here) are registered
    sim_camera = c.camera_ids()[0]
    procs: list[subprocess.Popen] = []
    svc = cascade = None
    try:
        st = Gb28181Settings(enabled=True, host="127.0.0.1", port=0, password=DEV_PASSWORD,
                             keepalive_s=30, query_timeout_s=5)

        async def up():
            s = GbPlatformService(c.app, st, flush_interval=0.1)
            await s.start()
            s.config.passwords[LOCAL_ID] = UPPER_PASSWORD  # the cascade below is a peer too
            k = Cascade(c.app, host="127.0.0.1", port=0, backoff_base=0.5, backoff_cap=2,
                        status_poll_s=0)
            await k.start()
            return s, k

        svc, cascade = c.call(up())
        c.api.state.gb28181 = svc
        c.api.state.cascade = cascade
        c.extra.update(svc=svc, cascade=cascade, tmp=tmp, procs=procs)
        procs.append(_sipp(svc.port, tmp, "gb_device_catalog.xml", DEV, DEV_PASSWORD,
                           "-oocsf", str(SCEN / "gb_device_catalog_ooc.xml")))
        with c.http() as http:
            wait_until(lambda: (http.get(f"/api/gb28181/devices/{DEV}").json()
                                .get("channel_count") or 0) == 2, 30, 0.2,
                       "the sipp device did not register with its catalog")
        c.extra["camera"] = sim_camera
        yield c
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
            p.wait(10)
        if cascade is not None:
            c.call(cascade.stop())
        if svc is not None:
            c.call(svc.stop())
        c.stop()


def _open(page, console, hash_="#/gb28181"):
    page.goto(f"{console.url}/{hash_}")
    page.locator('#page[data-ready="1"]').wait_for()


def test_a_registered_device_is_online_with_its_channels(console, browser_page):
    """Q13.2: the sipp device registered with digest is listed registered and online, with
    address, transport, last keepalive in Asia/Shanghai, and its catalog's channels."""
    page = browser_page
    _open(page, console)
    row = page.locator(f"#gb-dev-{DEV}")
    row.wait_for()
    assert row.locator("[data-registered]").get_attribute("data-registered") == "1"
    assert row.locator("[data-online]").inner_text() == "Online"
    text = row.inner_text()
    assert "127.0.0.1:" in text and "UDP" in text
    ka = row.locator(".ka").inner_text()  # e.g. 2026-11-28 19:40:01 (Beijing)
    assert len(ka) == 19 and ka[4] == "-" and ka[13] == ":", ka
    page.click(f"#gb-open-{DEV}")
    page.locator("#gb-channels").wait_for()
    # the catalog: a virtual organisation (group) and two cameras, each one a camera in the
    # registry
    assert page.locator("#gb-channels tbody tr").count() == 3
    assert page.locator(f"#gb-channels tr[data-channel=\"{GROUP}\"]").count() == 1
    assert page.locator(f'#gb-channels tr[data-channel="{CH1}"]').inner_text().find("大门") >= 0
    assert "停车场 镕" in page.locator(f'#gb-channels tr[data-channel="{CH2}"]').inner_text()
    # the administrator here is also an operator on duty (gb.ptz): the PTZ pad of the dome
    assert page.locator(f"#gb-ptz-{CH1} button").count() == 9
    assert page.locator("#gb-refresh-catalog").is_visible()
    assert page.locator("#gb-trace-toggle").is_visible()
    assert_all_translated(page, "en")


def test_a_device_with_a_wrong_password_shows_the_translated_cause(console, browser_page, new_page):
    """A device refused with 403 is listed with its cause (recent failed registrations) and
    looking its ID up shows why, in the reader's language (translated by its stable code)."""
    tmp = console.extra["tmp"]
    proc = _sipp(console.extra["svc"].port, tmp, "gb_device_wrong_password.xml", WRONG_DEV,
                 "not-the-password")
    assert proc.wait(30) == 0, "sipp did not get the 403 it expects"
    page = browser_page
    _open(page, console)
    # the list shows recent failed registrations with their cause
    row = page.locator(f'#gb-dev-{WRONG_DEV}[data-cause="wrong-password"]')
    row.wait_for()
    assert row.locator("[data-registered]").inner_text() == "Not registered"
    assert "Check the SIP password on the device." in row.locator(".cause").inner_text()
    # and the lookup by ID opens its diagnosis
    page.fill("#gb-lookup", WRONG_DEV)
    page.click("#gb-lookup-go")
    cause = page.locator('#gb-detail-cause[data-cause="wrong-password"]')
    cause.wait_for()
    assert cause.inner_text().startswith("Wrong password: the device's digest answer")
    assert page.locator("#gb-detail-id").inner_text() == WRONG_DEV
    assert_all_translated(page, "en")
    # the same cause in Chinese (a Chinese browser)
    zh = new_page(lang="zh-CN")
    zh.add_init_script("localStorage.setItem('viis.lang', 'zh-CN')")
    _open(zh, console)
    zh.fill("#gb-lookup", WRONG_DEV)
    zh.click("#gb-lookup-go")
    zcause = zh.locator('#gb-detail-cause[data-cause="wrong-password"]')
    zcause.wait_for()
    assert zcause.inner_text().startswith("密码错误")
    assert_all_translated(zh, "zh-CN")
    # an ID nobody ever sent: the translated "never registered"
    zh.fill("#gb-lookup", "34020000001180009999")
    zh.click("#gb-lookup-go")
    zh.locator("#gb-lookup-message", has_text="未收到该编码的 REGISTER").wait_for()


def test_switching_the_trace_on_shows_register_and_message_lines(console, browser_page):
    page = browser_page
    _open(page, console)
    page.click(f"#gb-open-{DEV}")
    toggle = page.locator("#gb-trace-toggle")
    toggle.wait_for()
    if toggle.get_attribute("aria-pressed") == "true":  # left on by an earlier run: off first
        toggle.click()
        page.locator('#gb-trace-toggle[aria-pressed="false"]').wait_for()
    toggle.click()
    page.locator('#gb-trace-toggle[aria-pressed="true"]').wait_for()
    assert toggle.inner_text() == "Switch trace off"
    # the device registers again and keeps alive: REGISTER (challenged), MESSAGE keepalives
    proc = _sipp(console.extra["svc"].port, console.extra["tmp"], "gb_device_catalog.xml", DEV,
                 DEV_PASSWORD)
    console.extra["procs"].append(proc)
    lines = page.locator("#gb-trace .first-line")

    def seen():
        texts = lines.all_inner_texts()
        return (any(t.startswith("REGISTER sip:") for t in texts)
                and any(t.startswith("MESSAGE sip:") for t in texts)
                and any(t.startswith("SIP/2.0 401") for t in texts) and texts)

    texts = wait_until(seen, 30, 0.5, "the trace showed no REGISTER and MESSAGE")
    # newest last: the challenged REGISTER comes before the keepalives
    first_register = next(i for i, t in enumerate(texts) if t.startswith("REGISTER"))
    assert any(t.startswith("MESSAGE") for t in texts[first_register:])
    # a message opens to its full text; the digest answer is masked in it
    page.locator("#gb-trace details").first.locator("summary").click()
    assert "Via:" in page.locator("#gb-trace details pre").first.inner_text()
    full = "\n".join(page.locator("#gb-trace pre").all_text_contents())
    assert "Authorization: Digest" in full and DEV_PASSWORD not in page.content()
    assert_all_translated(page, "en")
    toggle.click()
    page.locator('#gb-trace-toggle[aria-pressed="false"]').wait_for()
    proc.wait(30)


def test_the_ptz_pad_moves_the_camera_through_the_device(console, browser_page):
    """PTZ for a user who may (gb.ptz: the administrator here is also an operator on duty):
    pressing an arrow sends the move, releasing it the stop, as DeviceControl MESSAGEs to
    the device, which sipp answers at the address the device registered from."""
    from sqlalchemy import select

    from viis.integrity.models import AuditEntry

    svc, tmp = console.extra["svc"], console.extra["tmp"]
    port = free_udp_port()
    reg = _sipp(svc.port, tmp, "gb_device_catalog.xml", DEV, DEV_PASSWORD, local_port=port)
    assert reg.wait(30) == 0  # registered from `port` and kept alive, then ended
    # the same port now answers what the platform sends: two MESSAGEs (move, stop)
    answer = _sipp(svc.port, tmp, "gb_device_catalog_ooc.xml", DEV, DEV_PASSWORD,
                   local_port=port, calls=2)
    console.extra["procs"].append(answer)
    page = browser_page
    _open(page, console)
    page.click(f"#gb-open-{DEV}")
    right = page.locator(f'#gb-ptz-{CH1} button[data-action="right"]')
    right.wait_for()
    assert right.get_attribute("title") == "Right"
    right.dispatch_event("pointerdown")
    right.dispatch_event("pointerup")

    def audited():
        with console.app.db.session() as s:
            return [json.loads(e.details) for e in s.scalars(select(AuditEntry).where(
                AuditEntry.kind == "gb28181.ptz").order_by(AuditEntry.seq))]

    got = wait_until(lambda: len(audited()) >= 2 and audited(), 20, 0.3,
                     "the PTZ commands were not sent")
    assert [d["action"] for d in got[-2:]] == ["right", "stop"]
    assert got[-2]["ptz"] == "A50F0101808000B6"  # pan right at 0x80 (the notes' example)
    assert answer.wait(30) == 0, "sipp did not receive both DeviceControl MESSAGEs"
    assert page.locator("#gb-action-message").inner_text() == ""  # no refusal shown


def test_an_upper_platform_added_in_the_form_is_stored_and_its_password_never_shown(console, browser_page):
    """Q13.1: the upper platform (here: this VIIS's own platform role, over loopback) is added
    in the form, stored, registered to; its password is in neither the page nor the API; a
    share above its grade is refused with the API's reason, translated."""
    svc = console.extra["svc"]
    page = browser_page
    _open(page, console)
    page.click("#gb-upper-add")
    page.locator("#gb-uf-form").wait_for()
    page.fill("#gb-uf-name", "City platform (loopback)")
    page.fill("#gb-uf-server-id", SERVER)
    page.fill("#gb-uf-host", "127.0.0.1")
    page.fill("#gb-uf-port", str(svc.port))
    page.fill("#gb-uf-password", UPPER_PASSWORD)
    page.fill("#gb-uf-local-id", "34020000001320000001")  # a camera's type, not a platform's
    page.click("#gb-uf-save")
    msg = page.locator("#gb-upper-form-message")
    msg.wait_for(state="visible")
    wait_until(lambda: msg.inner_text(), 10)
    assert msg.inner_text().startswith("Our platform ID must be of type 200"), msg.inner_text()
    page.fill("#gb-uf-local-id", LOCAL_ID)
    page.click("#gb-uf-save")
    page.locator("#gb-upper-form").wait_for(state="hidden")
    with console.http() as http:
        (upper,) = [u for u in http.get("/api/gb28181/uppers").json() if u["server_id"] == SERVER]
        raw = http.get(f"/api/gb28181/uppers/{upper['id']}").text
    assert upper["local_id"] == LOCAL_ID and upper["has_password"] is True
    assert UPPER_PASSWORD not in raw and "password" not in upper
    # stored: the cascade registers to the upper with it (our own platform role)
    state = page.locator(f"#gb-upper-state-{upper['id']}")
    wait_until(lambda: state.inner_text() == "Registered", 30, 0.5,
               "the cascade did not register to the upper platform")
    assert UPPER_PASSWORD not in page.content()
    # editing shows the password field empty, saying it is set
    page.click(f"#gb-upper-edit-{upper['id']}")
    pw = page.locator("#gb-uf-password")
    assert pw.input_value() == "" and pw.get_attribute("placeholder") == "set; leave empty to keep it"
    assert UPPER_PASSWORD not in page.content()
    page.click("#gb-uf-cancel")
    # the share list: the camera (security level 1) under a channel ID, PTZ allowed
    cam_id = console.extra["camera"]
    page.click(f"#gb-upper-shares-{upper['id']}")
    page.locator("#gb-shares-add").wait_for()
    page.click("#gb-shares-add")
    row = page.locator("#gb-shares-body tr").last
    row.locator("select.cam").select_option(str(cam_id))
    row.locator("input.channel").fill("34020000001310000123")
    row.locator("input.ptz").check()
    page.click("#gb-shares-save")
    page.locator("#gb-shares-saved", has_text="Share list saved.").wait_for()
    with console.http() as http:
        shares = http.get(f"/api/gb28181/uppers/{upper['id']}/shares").json()
        assert [(s["camera_id"], s["channel_id"], s["ptz_allowed"]) for s in shares] == \
            [(cam_id, "34020000001310000123", True)]
        # raised above the platform's grade (1): sharing it again is refused (Q13.1)
        assert http.patch(f"/api/cameras/{cam_id}", json={"security_level": 3}).status_code == 200
    try:
        page.click("#gb-shares-save")
        refused = page.locator("#gb-shares-message")
        wait_until(lambda: refused.inner_text(), 10)
        assert refused.inner_text().startswith("Camera cam1 has security level 3, above this "
                                               "platform's grade 1"), refused.inner_text()
        assert "Q13.1" in refused.inner_text()
        assert_all_translated(page, "en")
    finally:
        with console.http() as http:
            http.patch(f"/api/cameras/{cam_id}", json={"security_level": 1})


def test_the_upper_platforms_trace_shows_its_registration(console, browser_page):
    """The cascade side of the per-peer trace: switched on for the upper platform, then a
    change of its settings makes the cascade unregister and register again, in the trace."""
    with console.http() as http:
        ups = [u for u in http.get("/api/gb28181/uppers").json() if u["server_id"] == SERVER]
        if not ups:  # run alone (or on another xdist worker than the form test)
            r = http.post("/api/gb28181/uppers", json={
                "name": "City platform (loopback)", "server_id": SERVER, "host": "127.0.0.1",
                "port": console.extra["svc"].port, "password": UPPER_PASSWORD,
                "local_id": LOCAL_ID})
            assert r.status_code == 201, r.text
            ups = [r.json()]
    uid = ups[0]["id"]
    page = browser_page
    _open(page, console)
    page.click(f"#gb-upper-trace-{uid}")
    toggle = page.locator("#gb-upper-trace-toggle")
    toggle.wait_for()
    toggle.click()
    page.locator('#gb-upper-trace-toggle[aria-pressed="true"]').wait_for()
    page.click(f"#gb-upper-edit-{uid}")
    page.fill("#gb-uf-name", "City platform")
    page.click("#gb-uf-save")
    page.locator("#gb-upper-form").wait_for(state="hidden")
    page.click(f"#gb-upper-trace-{uid}")
    lines = page.locator("#gb-upper-trace .first-line")

    def seen():
        texts = lines.all_inner_texts()
        return (any(t.startswith("REGISTER sip:") for t in texts)
                and any(t.startswith("SIP/2.0 200") for t in texts) and texts)

    wait_until(seen, 30, 0.5, "the upper platform's trace showed no REGISTER")
    page.locator(f'#gb-upper-{uid}[data-state="registered"]').wait_for(timeout=30_000)
    full = "\n".join(page.locator("#gb-upper-trace pre").all_text_contents())
    assert "Authorization: Digest" in full and 'response="' in full  # masked, not absent
    assert UPPER_PASSWORD not in page.content()
    assert_all_translated(page, "en")
    page.click("#gb-upper-trace-toggle")
    page.locator('#gb-upper-trace-toggle[aria-pressed="false"]').wait_for()


def test_the_language_switch_leaves_no_untranslated_string(console, browser_page):
    """Both catalogues complete on the whole page (device detail with trace, uppers, share
    list, the upper form); the screenshot of the README is taken here."""
    page = browser_page
    _open(page, console)
    page.click(f"#gb-open-{DEV}")
    page.locator("#gb-channels").wait_for()
    wait_until(lambda: page.locator("#gb-trace").count() == 1, 10)
    # the whole page in one picture: devices, the open device with its trace, the uppers
    page.set_viewport_size({"width": 1280, "height": 1400})
    page.evaluate("() => document.querySelector('.gb').scrollTo(0, 0)")
    assert_all_translated(page, "en")
    screenshot(page, "gb28181.png")
    page.set_viewport_size({"width": 1280, "height": 800})
    uppers = page.locator("#gb-uppers-body tr[data-upper]")
    if uppers.count():
        page.locator("#gb-uppers-body tr[data-upper] button[id^=gb-upper-shares]").first.click()
        page.locator("#gb-shares-table").wait_for()
        assert_all_translated(page, "en")
    page.select_option("#lang-switch", "zh-CN")
    page.locator("#gb-devices h3", has_text="下级设备").wait_for()
    page.click(f"#gb-open-{DEV}")
    page.locator("#gb-channels").wait_for()
    assert page.locator(f"#gb-dev-{DEV} [data-online]").inner_text() == "在线"
    if uppers.count():
        page.locator("#gb-uppers-body tr[data-upper] button[id^=gb-upper-shares]").first.click()
        page.locator("#gb-shares-table").wait_for()
    page.click("#gb-upper-add")
    page.locator("#gb-uf-form").wait_for()
    assert_all_translated(page, "zh-CN")
    page.select_option("#lang-switch", "en")  # the admin's saved setting back to English
    page.locator("#gb-devices h3", has_text="Devices").wait_for()


def test_an_auditor_sees_no_edit_controls(console, new_page):
    """An auditor reads the devices and the cascade (gb.read, gb.cascade.read) but may not
    change, trace or move anything: no such control on the page; the API refuses too."""
    with console.app.db.session() as s:
        org = console.ident.add_organisation(s, "gb-audit-unit", "using_unit").id
        console.ident.add_user(s, login="gbaudit", display_name="Auditor", organisation_id=org,
                               work_id="A-1", password=AUDITOR_PASSWORD, roles={"auditor"})
    token = console.sign_in("gbaudit", AUDITOR_PASSWORD)
    page = new_page()
    page.context.add_cookies([{"name": "viis_session", "value": token, "url": console.url}])
    _open(page, console)
    page.locator(f"#gb-dev-{DEV}").wait_for()
    page.click(f"#gb-open-{DEV}")
    page.locator("#gb-channels").wait_for()
    for sel in ("#gb-refresh-catalog", "#gb-trace-toggle", "#gb-trace", ".gb-ptz", "#gb-upper-add",
                "[id^=gb-upper-edit-]", "#gb-uf-form"):
        assert page.locator(sel).count() == 0, sel
    uppers = page.locator("#gb-uppers-body tr[data-upper]")
    if uppers.count():  # run after the form test: the share list is read-only
        page.locator("[id^=gb-upper-shares-]").first.click()
        page.locator("#gb-shares-table").wait_for()
        assert page.locator("#gb-shares input, #gb-shares select, #gb-shares-save").count() == 0
    assert_all_translated(page, "en")
    with console.http(token) as http:
        assert http.post("/api/gb28181/uppers", json={}).status_code == 403
        assert http.put(f"/api/gb28181/devices/{DEV}/trace", json={"enabled": True}).status_code == 403
