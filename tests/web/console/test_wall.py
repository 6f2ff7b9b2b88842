"""The live wall in Chromium (issue 3 items 3 and 7; Q2.1 display, Q19.1 duty monitoring):
four simulated cameras play and advance (read from the pixels), a dropped camera's tile says
so and recovers by itself, the wall is saved per user, and nothing is left untranslated."""

from __future__ import annotations

import time

from tests.web.console.helpers import (
    assert_all_translated,
    catalogue,
    read_timecodes,
    screenshot,
    wait_until,
)

PLAYING = ".tile .player[data-state=playing]"


def _open_wall(page, console, layout: int = 4):
    page.goto(console.url + "/#/wall")
    page.wait_for_selector("#wall-grid")
    if page.get_attribute("#wall-grid", "data-layout") != str(layout):
        page.click(f"#layout-{layout}")
    return page


def _advancing(page, n: int, timeout: float = 45.0) -> list[int]:
    """Wait until ``n`` tiles show a decodable time code, then until every one advances."""
    first = wait_until(lambda: (c := read_timecodes(page)) and len(c) >= n
                       and all(x is not None for x in c[:n]) and c, timeout,
                       0.5, f"not all {n} tiles show a picture with a time code")
    later = wait_until(lambda: (c := read_timecodes(page)) and all(
        x is not None and (x - f) % 60_000 > 0 for x, f in zip(c[:n], first[:n], strict=True))
        and c, timeout, 0.5, f"not every tile advanced: first {first}")
    return later


def test_a_four_tile_wall_plays_every_camera_live_and_each_picture_advances(browser_page, console):
    page = _open_wall(browser_page, console, 4)
    wait_until(lambda: page.locator(PLAYING).count() == 4, 45, 0.5, "4 tiles never played")
    # Chromium has WebCodecs: every tile decodes through it (player.js CodecSink)
    decoders = [page.get_attribute(f".tile[data-tile='{i}'] .player", "data-decoder")
                for i in range(4)]
    assert decoders == ["webcodecs"] * 4
    codes = _advancing(page, 4)
    assert len(set(codes)) >= 1
    names = page.locator(".tile .label").all_text_contents()
    assert names == ["cam1", "cam2", "cam3", "cam4"]
    screenshot(page, "wall.png")


def test_a_dropped_camera_tile_reports_the_loss_and_recovers_by_itself(browser_page, console):
    page = _open_wall(browser_page, console, 4)
    wait_until(lambda: page.locator(PLAYING).count() == 4, 45, 0.5, "4 tiles never played")
    # camera 2 drops its clients and refuses new ones for 6 s
    console.fleet.inject(1, "drop", refuse_s=6)
    tile = page.locator(".tile[data-tile='1'] .player")
    wait_until(lambda: tile.get_attribute("data-state") in ("lost", "reconnecting"), 20, 0.2,
               "the tile never reported the loss")
    status = page.text_content(".tile[data-tile='1'] .status")
    assert status in (catalogue("en")["wall.tile.lost"], catalogue("en")["wall.tile.reconnecting"])
    assert page.locator(PLAYING).count() >= 3  # the others play on
    wait_until(lambda: tile.get_attribute("data-state") == "playing", 60, 0.5,
               "the tile did not recover after the camera came back")
    _advancing(page, 4)


# A browser without WebCodecs (or MediaStreamTrackGenerator), e.g. Firefox, or a console
# reached over plain http from another machine (not a secure context).
_NO_WEBCODECS = "delete window.VideoDecoder; delete window.MediaStreamTrackGenerator;"

# A page that cannot keep up: its main thread is busy 7/8 of the time while window.__busy.
_OVERLOAD = """window.__busy = true;
setInterval(() => { if (!window.__busy) return;
  const end = performance.now() + 700; while (performance.now() < end) { /* busy */ } }, 800);"""

_NOW_AND_PICTURE = """(sel) => {
  const v = document.querySelector(sel);
  if (!v || !v.videoWidth) return null;
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  c.getContext('2d').drawImage(v, 0, 0);
  return {now: Date.now(), url: c.toDataURL('image/png')};
}"""


def _age_on_screen(page, sel: str) -> float | None:
    """Seconds between the capture of the picture a tile shows and now (page clock, which
    is the simulated cameras' clock on this machine)."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    from viis.simcam.timecode import decode_timecode, resolve_capture_ms

    got = page.evaluate(_NOW_AND_PICTURE, sel)
    if got is None:
        return None
    raw = base64.b64decode(got["url"].split(",", 1)[1])
    code = decode_timecode(np.asarray(Image.open(io.BytesIO(raw)).convert("L")))
    if code is None:
        return None
    return (got["now"] - resolve_capture_ms(code, got["now"], 60_000)) / 1000


def test_without_webcodecs_the_wall_plays_through_media_source_extensions(new_page, console):
    """Q2.1: the MSE path stays the fallback where WebCodecs is absent."""
    page = new_page()
    page.context.add_init_script(_NO_WEBCODECS)
    _open_wall(page, console, 4)
    wait_until(lambda: page.locator(PLAYING).count() == 4, 45, 0.5, "4 tiles never played")
    assert page.evaluate("typeof VideoDecoder") == "undefined"
    decoders = [page.get_attribute(f".tile[data-tile='{i}'] .player", "data-decoder")
                for i in range(4)]
    assert decoders == ["mse"] * 4
    _advancing(page, 4)


def test_a_page_that_cannot_decode_in_time_shows_keyframes_only_says_so_and_stays_live(
        new_page, console):
    """Q2.1, Q19.1: a duty wall must show what happens now. When the page falls behind
    (here its main thread is kept busy 7/8 of the time), the tile skips to keyframes
    instead of showing an ever older picture, says so, and returns to every frame when the
    page can keep up again."""
    cam = console.camera_ids()[0]
    assert console.http().put("/api/me/settings",
                              json={"wall": {"layout": 1, "tiles": [cam]}}).status_code == 200
    page = new_page()
    page.context.add_init_script(_OVERLOAD)
    try:
        page.goto(console.url + "/#/wall")
        player = ".tile[data-tile='0'] .player"
        wait_until(lambda: page.get_attribute(player, "data-state") == "playing", 60, 0.5,
                   "the tile never played")
        assert page.get_attribute(player, "data-decoder") == "webcodecs"
        wait_until(lambda: page.get_attribute(player, "data-key-only") == "1", 60, 0.5,
                   "the overloaded tile never fell back to keyframes")
        assert page.is_visible(f"{player} .note")
        assert page.text_content(f"{player} .note") == catalogue("en")["wall.tile.key_only"]
        # what it shows stays recent: a keyframe at most ~1 s old when shown, held until the
        # next one (GOP 1 s), read through a page that answers 1/8 of the time
        ages = [a for a in (_age_on_screen(page, f"{player} video") for _ in range(6))
                if a is not None]
        assert len(ages) >= 3, ages
        assert max(ages) < 3.0, ages
        # the page keeps up again: after the keyframes-only spell, every frame again
        page.evaluate("window.__busy = false")
        wait_until(lambda: page.get_attribute(player, "data-key-only") != "1", 45, 0.5,
                   "the tile stayed on keyframes after the page caught up")
        assert not page.is_visible(f"{player} .note")
        shown = "(sel) => document.querySelector(sel).player.sink.shown"
        rates = []

        def full_rate() -> bool:  # >= 10 frames/s over 2 s (keyframes alone are 1/s)
            n0 = page.evaluate(shown, player)
            time.sleep(2)
            rates.append((page.evaluate(shown, player) - n0) / 2)
            return rates[-1] >= 10

        wait_until(full_rate, 40, 0, "no full frame rate (>= 10/s) once the page keeps up")
        ages = [a for a in (_age_on_screen(page, f"{player} video") for _ in range(3))
                if a is not None]
        assert ages and max(ages) < 1.0, ages
    finally:
        console.http().put("/api/me/settings", json={"wall": None})


def test_the_wall_is_saved_per_user_and_comes_back_after_a_reload(browser_page, console):
    page = _open_wall(browser_page, console, 4)
    page.click("#layout-1")
    page.wait_for_selector("#wall-grid[data-layout='1']")
    page.drag_and_drop("#cam-list li[data-camera='3']", ".tile[data-tile='0']")
    wait_until(lambda: page.get_attribute(".tile[data-tile='0']", "data-camera") == "3", 10)
    cam3 = console.camera_ids()[2]
    wait_until(lambda: console.http().get("/api/me/settings").json()["wall"]
               == {"layout": 1, "tiles": [cam3]}, 10)
    page.reload()
    page.wait_for_selector("#wall-grid[data-layout='1']")
    assert page.get_attribute(".tile[data-tile='0']", "data-camera") == str(cam3)
    wait_until(lambda: page.locator(PLAYING).count() == 1, 45, 0.5)
    # back to four tiles for the other tests
    r = console.http().put("/api/me/settings", json={"wall": None})
    assert r.status_code == 200


def test_switching_to_chinese_leaves_no_untranslated_string_on_the_wall(new_page, console):
    page = new_page(lang="en-US")
    _open_wall(page, console, 4)
    wait_until(lambda: page.locator(PLAYING).count() >= 1, 45, 0.5)
    assert_all_translated(page, "en")
    page.select_option("#lang-switch", "zh-CN")
    wait_until(lambda: page.text_content("#nav-wall") == catalogue("zh-CN")["common.nav.wall"], 20)
    page.wait_for_selector("#page[data-ready='1'] #wall-grid")
    wait_until(lambda: page.locator(PLAYING).count() >= 1, 45, 0.5)
    assert_all_translated(page, "zh-CN")
    assert console.http().get("/api/me/settings").json()["lang"] == "zh-CN"
    # the choice follows the user to another browser (an English one)
    other = new_page(lang="en-US")
    other.goto(console.url + "/#/wall")
    other.wait_for_selector("#wall-grid")
    assert other.text_content("#nav-wall") == catalogue("zh-CN")["common.nav.wall"]
    assert_all_translated(other, "zh-CN")
    console.http().put("/api/me/settings", json={"lang": None})


def test_hostile_settings_are_refused_with_a_clear_error_and_nothing_stored_changes(console):
    c = console.http()
    good = {"lang": "en", "wall": {"layout": 9, "tiles": [1, None, 2]}}
    assert c.put("/api/me/settings", json=good).status_code == 200
    bad = [
        ({"lang": "fr"}, "lang"),
        ({"lang": "x" * 100}, "lang"),
        ({"wall": {"layout": 5, "tiles": []}}, "wall.layout"),
        ({"wall": {"layout": True, "tiles": []}}, "wall.layout"),
        ({"wall": {"layout": 1, "tiles": [1, 2]}}, "wall.tiles"),
        ({"wall": {"layout": 4, "tiles": ["1"]}}, "wall.tiles"),
        ({"wall": {"layout": 4, "tiles": [-3]}}, "wall.tiles"),
        ({"wall": {"layout": 4, "tiles": [2**60]}}, "wall.tiles"),
        ({"wall": {"layout": 4, "tiles": [], "admin": True}}, "wall"),
        ({"wall": [1, 2]}, "wall"),
        ({"theme": "dark"}, "theme"),
    ]
    for body, field in bad:
        r = c.put("/api/me/settings", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["field"] == field, (body, r.json())
    r = c.put("/api/me/settings", content=b"{" * 10, headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    r = c.put("/api/me/settings", content=b" " * 2_000_000,
              headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert c.get("/api/me/settings").json() == good
    assert console.http(token="vs_nope").get("/api/me/settings").status_code == 401
    c.put("/api/me/settings", json={"lang": None, "wall": None})


def test_settings_round_trip_on_both_databases(db):
    from tests.web.console.helpers import CHEAP
    from viis.access import user_settings
    from viis.access.identity import IdentityService
    from viis.core.clock import ManualClock

    ident = IdentityService(ManualClock(), CHEAP)
    with db.session() as s:
        org = ident.add_organisation(s, "unit", "using_unit")
        u = ident.add_user(s, login="op", display_name="Op", organisation_id=org.id,
                           work_id="1", password="night-watch-2026", roles={"operator_on_duty"})
        assert user_settings.get(s, u.id) == {"lang": None, "wall": None}
        user_settings.put(s, u.id, {"lang": "zh-CN"}, 1)
        got = user_settings.put(s, u.id, {"wall": {"layout": 16, "tiles": [None] * 16}}, 2)
        assert got == {"lang": "zh-CN", "wall": {"layout": 16, "tiles": [None] * 16}}
