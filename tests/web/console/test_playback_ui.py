"""The playback page in Debian's Chromium (issue 3, "done when"): seeking on the timeline
shows the frame whose painted time code matches the chosen time within one frame interval;
a gap the test injected (the camera dropped and refused connections) shows on the timeline at
its place, with its cause on hover; switching to Chinese leaves no string outside the
catalogue; the screenshot docs/screenshots/timeline.png is taken here."""

from __future__ import annotations

import time

import pytest

from tests.media.recording import rows
from tests.web.console.helpers import assert_all_translated, read_timecodes, screenshot, wait_until
from viis.simcam.timecode import resolve_capture_ms

FRAME_MS = 40  # the console's simulated cameras run at 25 fps
AXIS_H, ROW_H = 22, 26  # static/timeline.js
GAP_CAM = 1  # index of the simulated camera the test drops


@pytest.fixture(scope="module")
def gap(console):
    """Drop the second camera (refusing connections for 6 s) and wait for its gap to be
    recorded and closed by footage after it."""
    cam_id = console.camera_ids()[GAP_CAM]
    wait_until(lambda: len(rows(console.app, cam_id)[0]) >= 1, 60, 0.5, "no first segment")
    injected = console.app.clock.wall_ms()
    console.fleet.inject(GAP_CAM, "drop", refuse_s=6)

    def closed():
        segs, gaps = rows(console.app, cam_id)
        return gaps and any(s.start_ms >= gaps[0].end_ms for s in segs) and gaps[0]
    g = wait_until(closed, 90, 0.5, "the dropped camera left no closed gap")
    return cam_id, injected, g


def indexed_capture(console, cam: int, at_ms: int) -> int:
    """The capture time (painted time code) of the frame the segment index places at ``at_ms``:
    the last frame whose indexed wall time is at or before it. The index's own dating of
    frames (receive time, least latency; invariant 5) is the recorder's; the player must show
    exactly this frame."""
    import av

    from viis.simcam.timecode import decode_timecode

    seg = next(x for x in rows(console.app, cam)[0] if x.start_ms <= at_ms < x.end_ms)
    best = None
    with av.open(str(console.app.settings.segments_path / seg.path)) as c:
        for f in c.decode(video=0):
            if seg.start_ms + f.time * 1000 > at_ms + 0.5:
                break
            best = f
    return resolve_capture_ms(decode_timecode(best.to_ndarray(format="gray")), at_ms,
                              console.fleet.cycle_ms)


def _open(page, console):
    page.goto(console.url + "/#/playback")
    page.wait_for_selector("#page[data-ready]")
    wait_until(lambda: page.get_attribute("#page", "data-frame-ready") == "1", 60, 0.2,
               "the first picture never showed")


def _view(page):
    box = page.locator("#pb-timeline").bounding_box()
    lo = int(page.get_attribute("#pb-timeline", "data-from"))
    hi = int(page.get_attribute("#pb-timeline", "data-to"))
    return box, lo, hi


def test_seek_on_the_timeline_shows_the_frame_whose_time_code_matches(console, browser_page):
    page = browser_page
    cam = console.camera_ids()[0]
    wait_until(lambda: len(rows(console.app, cam)[0]) >= 2, 60, 0.5, "two segments recorded")
    _open(page, console)
    page.select_option("#pb-zoom", "60000")  # a minute across the canvas
    wait_until(lambda: page.get_attribute("#pb-timeline", "data-to") and
               int(page.get_attribute("#pb-timeline", "data-to")) - int(page.get_attribute("#pb-timeline", "data-from")) == 60_000,
               10, 0.1)
    box, lo, hi = _view(page)
    segs, _ = rows(console.app, cam)
    for into in (5_321, 2_777, 8_234):  # three seeks, each mid-GOP, inside recorded footage
        target = segs[0].start_ms + into
        assert segs[0].start_ms < target < segs[-1].end_ms and lo < target < hi
        x = (target - lo) / (hi - lo) * box["width"]
        before = page.get_attribute("#page", "data-seek-ms")
        page.mouse.click(box["x"] + x, box["y"] + AXIS_H + ROW_H / 2)
        wait_until(lambda b=before: page.get_attribute("#page", "data-seek-ms") != b, 10, 0.05)
        seek = int(page.get_attribute("#page", "data-seek-ms"))
        assert abs(seek - target) <= (hi - lo) / box["width"] + 1, "the click lands where aimed"
        wait_until(lambda: page.get_attribute("#page", "data-frame-ready") == "1", 30, 0.05,
                   "the sought frame never showed")
        code = wait_until(lambda: read_timecodes(page, ".pb-tile video")[0], 10, 0.1,
                          "no time code readable in the shown frame")
        shown = resolve_capture_ms(code, seek, console.fleet.cycle_ms)
        # the frame on screen at t is the one the index dates at or just before t: its time
        # code matches within one frame interval (and the index itself is close to t)
        expected = indexed_capture(console, cam, seek)
        assert abs(shown - expected) <= FRAME_MS, (into, shown - expected)
        assert abs(shown - seek) <= 250, ("the recorder's dating of frames is off", shown - seek)


def test_the_injected_gap_shows_at_its_place_with_its_cause(console, browser_page, gap):
    page = browser_page
    cam_id, injected, g = gap
    assert injected - 3_000 <= g.start_ms <= injected + 3_000
    _open(page, console)
    page.check(f"#pb-cam-{cam_id}")
    page.wait_for_selector(f".pb-tile[data-camera='{cam_id}']")
    mid = (g.start_ms + g.end_ms) // 2
    page.select_option("#pb-zoom", "600000")  # ten minutes
    # jump to the gap's middle through the date/time fields (Asia/Shanghai)
    page.evaluate("""([ms]) => {
        const d = new Date(ms + 8 * 3600000).toISOString();
        document.getElementById('pb-date').value = d.slice(0, 10);
        document.getElementById('pb-time').value = d.slice(11, 19);
    }""", [mid])
    page.click("#pb-go")
    wait_until(lambda: page.get_attribute(f".pb-tile[data-camera='{cam_id}']", "data-state") == "gap",
               30, 0.1, "the player does not say there is no recording in the gap")

    def drawn():
        rows_ = page.get_attribute("#pb-timeline", "data-rows")
        return rows_ and any(x["id"] == cam_id and x["gaps"] for x in __import__("json").loads(rows_))
    wait_until(drawn, 30, 0.2, "the timeline never listed the gap")
    box, lo, hi = _view(page)
    row_y = AXIS_H + ROW_H * 1 + ROW_H / 2  # second row: the dropped camera
    px = lambda ms: (ms - lo) / (hi - lo) * box["width"]  # noqa: E731
    colour = """([x, y]) => {
        const c = document.getElementById('pb-timeline');
        const k = c.width / c.clientWidth;
        return Array.from(c.getContext('2d').getImageData(Math.round(x * k), Math.round(y * k), 1, 1).data);
    }"""
    red = page.evaluate(colour, [px(mid), row_y])
    assert red[0] > 200 and red[1] < 120, f"gap drawn red at its time: {red}"
    before = page.evaluate(colour, [px(g.start_ms - 3_000), row_y])
    assert before[1] > 120 and before[0] < 100, f"recorded footage before the gap is green: {before}"
    same_time_cam1 = page.evaluate(colour, [px(mid), AXIS_H + ROW_H / 2])
    assert same_time_cam1[1] > 120, "the other camera has no gap at that time"
    page.mouse.move(box["x"] + px(mid), box["y"] + row_y)
    tip = page.locator("#pb-tip")
    tip.wait_for(state="visible")
    cause = {"unreachable": "camera unreachable", "stream_error": "stream broke",
             "stalled": "camera sent nothing"}[g.cause]
    assert cause in tip.inner_text()
    time.sleep(0.3)
    screenshot(page, "timeline.png")


def test_the_playback_page_is_fully_translated(console, new_page, gap):
    page = new_page("zh-CN")
    _open(page, console)
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    cam_id = gap[0]
    page.check(f"#pb-cam-{cam_id}")
    page.wait_for_selector(f".pb-tile[data-camera='{cam_id}']")
    page.click("#pb-export")
    page.wait_for_selector("#ex-form")
    assert_all_translated(page, "zh-CN")
    page.locator("#pb-timeline").hover()
    assert_all_translated(page, "zh-CN")
    # and back to English through the language switch
    page.select_option("#lang-switch", "en")
    wait_until(lambda: page.evaluate("document.documentElement.lang") == "en", 15, 0.1)
    page.wait_for_selector("#page[data-ready]")
    assert_all_translated(page, "en")


def _codes(page, console, approx):
    codes = read_timecodes(page, ".pb-tile video")
    return [None if c is None else resolve_capture_ms(c, approx, console.fleet.cycle_ms) for c in codes]


def test_two_cameras_play_in_step_at_speed_and_step_frame_by_frame(console, browser_page):
    page = browser_page
    b = console.camera_ids()[2]  # beside the first camera, which is always shown
    wait_until(lambda: len(rows(console.app, b)[0]) >= 2, 60, 0.5, "two segments recorded")
    _open(page, console)
    page.check(f"#pb-cam-{b}")
    page.wait_for_selector(f".pb-tile[data-camera='{b}']")
    segs = rows(console.app, b)[0]
    target = segs[0].start_ms + 3_210
    page.evaluate("""([ms]) => {
        const d = new Date(ms + 8 * 3600000).toISOString();
        document.getElementById('pb-date').value = d.slice(0, 10);
        document.getElementById('pb-time').value = d.slice(11, 19);
    }""", [target])
    page.click("#pb-go")
    seek = (target // 1000) * 1000  # the time field has whole seconds
    wait_until(lambda: page.get_attribute("#page", "data-seek-ms") == str(seek), 10, 0.05)
    wait_until(lambda: page.get_attribute("#page", "data-frame-ready") == "1", 30, 0.05)
    both = wait_until(lambda: all(_codes(page, console, seek)) and _codes(page, console, seek), 10, 0.1)
    expected = [indexed_capture(console, c, seek) for c in (console.camera_ids()[0], b)]
    assert all(abs(x - e) <= FRAME_MS for x, e in zip(both, expected, strict=True)), (both, expected)
    # frame step: exactly one frame later on both cameras
    page.click("#pb-step")
    wait_until(lambda: page.get_attribute("#page", "data-frame-ready") == "1", 10, 0.05)
    stepped = wait_until(lambda: all(_codes(page, console, seek)) and _codes(page, console, seek), 10, 0.1)
    assert [x - y for x, y in zip(stepped, both, strict=True)] == [FRAME_MS, FRAME_MS]
    # 4x for a while: the position moves about four times as fast, both cameras together
    page.select_option("#pb-speed", "4")
    start = int(page.get_attribute("#page", "data-position-ms"))
    t0 = time.monotonic()
    page.click("#pb-play")
    time.sleep(2.5)
    page.click("#pb-play")  # pause
    wall = time.monotonic() - t0
    wait_until(lambda: page.get_attribute("#page", "data-frame-ready") == "1", 20, 0.05)
    pos = int(page.get_attribute("#page", "data-position-ms"))
    assert 2.0 * wall * 1000 <= pos - start <= 4.5 * wall * 1000, (pos - start, wall)
    after = wait_until(lambda: all(_codes(page, console, pos)) and _codes(page, console, pos), 10, 0.1)
    expected = [indexed_capture(console, c, pos) for c in (console.camera_ids()[0], b)]
    assert all(abs(x - e) <= FRAME_MS for x, e in zip(after, expected, strict=True)), (after, expected)


def test_export_this_range_files_a_retrieval_request_and_shows_a_refusal_with_its_article(console, browser_page):
    """A copy leaves only through an approved request (Q23): the page files one for the
    chosen range; a police request by a unit's operator is refused citing Q23.1."""
    page = browser_page
    _open(page, console)
    page.click("#pb-mark-in")
    page.click("#pb-export")
    page.wait_for_selector("#ex-form")
    page.select_option("#ex-kind", "police")
    page.fill("#ex-basis", "Public Security Organs Procedure art. 1")
    page.fill("#ex-purpose", "theft at the gate")
    page.fill("#ex-case", "QD-1")
    page.fill("#ex-staff", "W-1 W-2")
    page.click("#ex-submit")
    page.wait_for_selector("#ex-status:not(:empty)")
    text = page.inner_text("#ex-status")
    assert "refused" in text and "Q23.1" in text
