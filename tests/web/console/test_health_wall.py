"""Browser test of the health wall (issue 5 item 5; Q19.3 faults repaired, an emergency
measure when the repair is late). Real parts: two simulated cameras on the RTSP server, the
recorder, the real ``HealthMonitor`` on the recorder's keyframe tap (no extra camera
connection), the ticket desk, the HTTP API and Debian's Chromium.

The fault is injected into the simulator (``fleet.inject(0, "cover")``) and found by the
diagnosis itself, in real time: the persistence rule is shortened to 3 of 4 samples at one
sample a second so that it opens within seconds (the driven-clock end-to-end test of the
diagnosis is tests/health/test_monitor.py). The overdue state is made by sweeping the desk
at a time past the repair deadline (``sweep(now_ms=...)``) rather than waiting 72 h.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from tests.web.console.conftest import start_console
from tests.web.console.helpers import assert_all_translated, screenshot, wait_until

OPERATOR_PASSWORD = "watch-only-2026!"


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    """The console of conftest.py with two cameras and camera health attached."""
    from viis.health.clock import ClockWatch
    from viis.health.monitor import HealthMonitor, PersistenceRule
    from viis.health.tickets import TicketDesk
    from viis.simcam.clips import scene_box

    c = start_console(tmp_path_factory.mktemp("health"), cameras=2)
    desk = mon = None
    try:
        desk = TicketDesk(c.app, hold_s=600)
        mon = HealthMonitor(c.app, c.recorder, interval_s=1.0,
                            rule=PersistenceRule(n=3, m=4, min_s=2.0, clear_n=2),
                            roi=lambda _cid, w, h: scene_box(w, h), loss_s=30.0)
        # clock offsets from the painted time code and the RTCP sender reports, stored each s
        ClockWatch.attach(c.app, c.recorder, mon, record_s=1.0,
                          timecode_cycle=lambda _cid: c.fleet.cycle_ms)
        c.api.state.health_monitor = mon
        c.extra.update(desk=desk, monitor=mon)
        c.wait_recording(timeout=60)
        yield c
    finally:
        if mon is not None:
            mon.close()
        if desk is not None:
            desk.detach()
        c.stop()


def _ticket(console, cid: int):
    from viis.health.tickets import FaultTicket

    with console.app.db.session() as s:
        t = s.scalar(select(FaultTicket).where(FaultTicket.camera_id == cid,
                                               FaultTicket.closed_ms.is_(None)))
        return None if t is None else t.as_dict() | {"repair_due_ms": t.repair_due_ms}


def test_health_wall_shows_the_fault_and_its_ticket_and_the_maintainer_acts(console, browser_page):
    page = browser_page
    mon = console.extra["monitor"]
    faulty, clean = console.camera_ids()
    # the references are learned from the first healthy samples, then the lens is covered
    wait_until(lambda: mon.status(faulty).get("reference") and mon.status(clean).get("reference"),
               60, 0.5, "the diagnosis learned no reference")
    console.fleet.inject(0, "cover")
    ticket = wait_until(lambda: _ticket(console, faulty), 60, 0.5,
                        "covering the lens opened no ticket")
    assert ticket["kind"] == "video_occluded" and ticket["status"] == "open"

    page.goto(f"{console.url}/#/health")
    tile = page.locator(f"#health-tile-{faulty}")
    tile.wait_for()
    assert tile.get_attribute("data-status") == "fault"
    assert page.locator(f"#health-status-{faulty}").inner_text() == "Fault"
    assert tile.locator('li.fault[data-kind="video_occluded"]').inner_text().startswith("Lens covered since")
    tbox = page.locator(f"#health-ticket-{ticket['id']}")
    assert tbox.get_attribute("data-state") == "open"
    assert "Repair due" in tbox.inner_text()
    assert not tbox.locator(".emergency-required").count()  # not late yet
    # the clean camera: recording and healthy, its 24 h availability and clock offset shown
    other = page.locator(f"#health-tile-{clean}")
    assert other.get_attribute("data-status") == "recording"
    assert other.locator(".healthy").inner_text() == "Healthy: no open fault."
    assert other.locator(".avail").inner_text().endswith("%")
    wait_until(lambda: other.locator(".offset").count() == 1, 20, 0.5, "no clock offset shown")
    offset = other.locator(".offset").inner_text()  # e.g. "+0.1 s": the simulator keeps time
    assert offset.endswith(" s") and abs(float(offset[:-2].replace("−", "-"))) < 5, offset
    # the server's clock state is shown
    assert page.locator("#health-server-clock-state").inner_text() in (
        "synchronised", "not synchronised", "state unknown")

    # filter by status
    page.select_option("#health-filter", "fault")
    assert page.locator(".health-tile").count() == 1
    page.select_option("#health-filter", "recording")
    wait_until(lambda: page.locator(".health-tile").count() == 1
               and page.locator(f"#health-tile-{clean}").count() == 1, 10)
    page.select_option("#health-filter", "all")

    # acknowledge from the page: the API says acknowledged, by the signed-in administrator
    page.click(f"#health-ack-{ticket['id']}")
    with console.http() as http:
        wait_until(lambda: [t for t in http.get("/api/health/tickets?open=true").json()
                            if t["id"] == ticket["id"]][0]["status"] == "acknowledged", 15)
        acked = [t for t in http.get("/api/health/tickets").json() if t["id"] == ticket["id"]][0]
    assert acked["acked_by"] == console.login
    page.locator(f'#health-ticket-{ticket["id"]}[data-state="acknowledged"]').wait_for()
    # an action without its text is refused in the page, nothing is sent
    page.click(f"#health-emergency-{ticket['id']}")
    assert "Write the note or the measure first." in tbox.inner_text()

    # past the repair deadline: overdue, "emergency measure required" (Q19.3); the measure is
    # recorded from the page and the requirement goes away
    console.extra["desk"].sweep(now_ms=ticket["repair_due_ms"] + 1000)
    req = page.locator(f"#health-emergency-required-{ticket['id']}")
    req.wait_for(timeout=20_000)  # the next auto-refresh shows it
    assert "Emergency measure required" in req.inner_text()
    assert tbox.locator(".due.overdue").count() == 1
    page.fill(f"#health-note-{ticket['id']}", "spare camera on the same pole")
    page.click(f"#health-emergency-{ticket['id']}")
    req.wait_for(state="detached", timeout=20_000)
    assert _ticket(console, faulty)["emergency_measure"] == "spare camera on the same pole"

    # the repair recorded from the page, with its note
    page.fill(f"#health-note-{ticket['id']}", "lens cleaned")
    page.click(f"#health-repair-{ticket['id']}")
    page.locator(f'#health-ticket-{ticket["id"]}[data-state="repaired"]').wait_for(timeout=20_000)
    assert _ticket(console, faulty)["repair_note"] == "lens cleaned"

    # the camera's 30-day history: a bar per day, the fault, clock readings (first wait for a
    # finished segment: availability counts what the index holds)
    with console.http() as http:
        wait_until(lambda: [c for c in http.get("/api/health/cameras").json()["cameras"]
                            if c["id"] == faulty][0]["availability_24h"], 60, 0.5)
    page.click(f"#health-open-{faulty}")
    page.locator("#health-bars").wait_for()
    assert page.locator("#health-bars .bar").count() == 30
    today = page.locator("#health-bars .bar").last.get_attribute("data-availability")
    assert today and float(today) > 0
    assert page.locator('#health-history-faults tr[data-kind="video_occluded"]').count() >= 1
    assert page.locator("#health-history-clock tbody tr").count() >= 1
    assert_all_translated(page, "en")
    screenshot(page, "health.png")

    # the language switch: no untranslated string in zh-CN
    page.select_option("#lang-switch", "zh-CN")
    page.locator(f"#health-status-{faulty}", has_text="故障").wait_for()
    page.click(f"#health-open-{faulty}")
    page.locator("#health-bars").wait_for()
    assert_all_translated(page, "zh-CN")
    page.select_option("#lang-switch", "en")  # the admin's saved setting back to English
    page.locator(f"#health-status-{faulty}", has_text="Fault").wait_for()


def test_the_buttons_are_hidden_from_users_who_may_not_work_tickets(console, new_page):
    """An operator on duty reads health (health.read) but may not work tickets (ticket.work):
    no action buttons; the API refuses the action too."""
    from viis.health.faults import raise_fault

    faulty = console.camera_ids()[0]
    t = _ticket(console, faulty)
    if t is None:  # run alone: open one through the fault service
        with console.app.db.session() as s:
            raise_fault(s, "video_blur", "warning", "video_blur: seeded", console.app.clock.wall_ms(),
                        camera_id=faulty)
        t = _ticket(console, faulty)
    with console.app.db.session() as s:
        org = console.ident.add_organisation(s, "health-unit", "using_unit").id
        uid = console.ident.add_user(s, login="watcher", display_name="Watcher",
                                     organisation_id=org, work_id="W-1",
                                     password=OPERATOR_PASSWORD, roles={"operator_on_duty"}).id
        now = console.app.clock.wall_ms()
        for topic in ("skills", "confidentiality"):
            console.ident.add_training(s, uid, topic=topic, course=topic,
                                       completed_ms=now - 86_400_000,
                                       valid_until_ms=now + 86_400_000, recorded_by="test")
    token = console.sign_in("watcher", OPERATOR_PASSWORD)
    page = new_page()
    page.context.add_cookies([{"name": "viis_session", "value": token, "url": console.url}])
    page.goto(f"{console.url}/#/health")
    box = page.locator(f"#health-ticket-{t['id']}")
    box.wait_for()
    assert box.locator("button").count() == 0 and box.locator("input").count() == 0
    assert_all_translated(page, "en")
    with console.http(token) as http:
        assert http.post(f"/api/health/tickets/{t['id']}/ack").status_code == 403


def test_a_camera_that_cannot_be_reached_is_offline_on_the_wall(console, browser_page):
    """A registered camera whose address answers nothing has no recording: its tile says
    offline (not healthy-recording), and the offline filter shows it alone."""
    with console.http() as http:
        r = http.post("/api/cameras", json={"name": "unplugged", "main_url": "rtsp://127.0.0.1:9/none",
                                            "site": "test site"})
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
    page = browser_page
    page.goto(f"{console.url}/#/health")
    tile = page.locator(f"#health-tile-{cid}")
    tile.wait_for()
    assert tile.get_attribute("data-status") == "offline"
    assert page.locator(f"#health-status-{cid}").inner_text() == "Offline"
    page.select_option("#health-filter", "offline")
    assert page.locator(".health-tile").count() == 1 and tile.count() == 1
    assert_all_translated(page, "en")


def test_every_gb_device_alarm_kind_has_a_name_in_both_languages():
    """Faults opened by GB/T 28181 device alarms (Q19.3) are named on the health wall in
    zh-CN and English, not shown as code names; whole-device kinds use the templates."""
    import re

    from tests.web.console.helpers import catalogue
    from viis.interconnect.gb28181.alarms import CATALOG_FAULTS, FAULTS, GENERIC

    js = (Path(__file__).parents[3] / "viis/web/static/pages/health.js").read_text()
    known = set(re.findall(r'"([a-z_]+)"', js.split("const KNOWN_KINDS", 1)[1].split(");", 1)[0]))
    kinds = {k for k, _, _ in FAULTS.values()} | {k for k, _, _ in CATALOG_FAULTS.values()}
    for lang in ("en", "zh-CN"):
        cat = catalogue(lang)
        for k in kinds | {GENERIC}:
            assert k in known and f"health.kind.{k}" in cat, (lang, k)
        assert "{id}" in cat["health.kind.gb_offline"] and "{kind}" in cat["health.kind.gb_device"]
