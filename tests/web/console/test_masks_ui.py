"""Privacy masks (Q9.2, N13.1), issue 3 "done when": a mask drawn in the editor covers those
pixels in live view AND in playback. The test draws a polygon with the mouse on the camera's
snapshot, saves it, then reads the pixels of the rendered picture (video + overlay, from a
screenshot of the tile) in the live wall and on the playback page: black inside the polygon,
picture outside it, while the video itself (drawn onto a canvas without the overlay) still
has picture there. Also: the editor's refusals, the language check, docs/screenshots/masks.png.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.media.recording import rows
from tests.web.console.helpers import assert_all_translated, grab_frames, screenshot, wait_until

# the polygon, normalised to the full picture (a rectangle drawn as four corners)
X0, Y0, X1, Y1 = 0.30, 0.40, 0.62, 0.72
CORNERS = [(X0, Y0), (X1, Y0), (X1, Y1), (X0, Y1)]


def _png(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float32)


def _picture_rect(page, video_sel: str) -> dict:
    """Where the video's picture is shown inside its element (object-fit: contain)."""
    return page.evaluate("""(sel) => {
        const v = document.querySelector(sel);
        const cw = v.clientWidth, ch = v.clientHeight, vw = v.videoWidth, vh = v.videoHeight;
        const k = Math.min(cw / vw, ch / vh);
        return {x: (cw - vw * k) / 2, y: (ch - vh * k) / 2, w: vw * k, h: vh * k};
    }""", video_sel)


def _regions(img: np.ndarray, r: dict, scale: float):
    """Pixels well inside the mask, and a band of picture of the same size right of it."""
    def crop(a, b, c, d):
        return img[int((r["y"] + c * r["h"]) * scale):int((r["y"] + d * r["h"]) * scale),
                   int((r["x"] + a * r["w"]) * scale):int((r["x"] + b * r["w"]) * scale)]
    m = 0.02
    inside = crop(X0 + m, X1 - m, Y0 + m, Y1 - m)
    outside = crop(X1 + 0.04, min(0.98, X1 + 0.04 + (X1 - X0)), Y0 + m, Y1 - m)
    return inside, outside


def _assert_covered(page, tile_sel: str, video_sel: str, where: str):
    shot = _png(page.locator(tile_sel).screenshot())
    box = page.locator(tile_sel).bounding_box()
    scale = shot.shape[1] / box["width"]
    vbox = page.locator(video_sel).bounding_box()
    r = _picture_rect(page, video_sel)
    r = {**r, "x": r["x"] + vbox["x"] - box["x"], "y": r["y"] + vbox["y"] - box["y"]}
    inside, outside = _regions(shot, r, scale)
    assert inside.size > 400 and outside.size > 400
    assert inside.max() <= 12, f"{where}: pixels under the mask are not all black (max {inside.max()})"
    assert outside.std() > 10 and outside.mean() > 30, f"{where}: the picture around the mask is shown"
    # the video element itself still carries the picture there: the overlay is what hides it
    raw = grab_frames(page, video_sel)[0]
    assert raw is not None
    full = {"x": 0, "y": 0, "w": raw.shape[1], "h": raw.shape[0]}
    under, _ = _regions(raw.astype(np.float32), full, 1.0)
    assert under.mean() > 30, f"{where}: the test picture under the mask should not be black"


@pytest.fixture(scope="module")
def masked(console, chromium):
    """Draw and save the polygon through the editor (as an administrator would)."""
    from tests.web.console.conftest import _context

    cam = console.camera_ids()[0]
    wait_until(lambda: len(rows(console.app, cam)[0]) >= 1, 60, 0.5, "no footage to draw on")
    ctx = _context(chromium, console, token=console.token)
    page = ctx.new_page()
    try:
        page.goto(f"{console.url}/#/cameras/{cam}/masks")
        page.wait_for_selector("#page[data-masks-ready]")
        wait_until(lambda: page.evaluate("document.getElementById('mk-img').naturalWidth") > 0, 30, 0.2,
                   "the editor shows no snapshot")
        page.wait_for_timeout(200)
        rect = page.evaluate("JSON.parse(document.getElementById('mk-canvas').dataset.rect)")
        box = page.locator("#mk-canvas").bounding_box()
        at = lambda x, y: (box["x"] + rect["x"] + x * rect["w"], box["y"] + rect["y"] + y * rect["h"])  # noqa: E731
        page.click("#mk-new")
        for x, y in CORNERS:
            page.mouse.click(*at(x, y))
        page.mouse.click(*at(*CORNERS[0]))  # the first corner again closes the polygon
        assert page.get_attribute("#mk-canvas", "data-masks") == "1"
        # drag the third corner a little and back: corners move
        page.mouse.move(*at(X1, Y1))
        page.mouse.down()
        page.mouse.move(*at(X1 + 0.05, Y1 + 0.05), steps=4)
        page.mouse.move(*at(X1, Y1), steps=4)
        page.mouse.up()
        page.fill("#mk-label-0", "window of the flat opposite")
        page.click("#mk-save")
        page.wait_for_selector("#mk-status.ok")
        screenshot(page, "masks.png")
    finally:
        ctx.close()
    got = console.http().get(f"/api/cameras/{cam}/privacy-masks").json()["masks"]
    assert len(got) == 1 and got[0]["label"] == "window of the flat opposite"
    assert np.allclose(got[0]["points"], CORNERS, atol=0.01), got[0]["points"]
    return cam


def test_the_mask_drawn_in_the_editor_covers_those_pixels_in_live_view(console, browser_page, masked):
    page = browser_page
    page.goto(console.url + "/#/wall")
    tile = f".tile[data-camera='{masked}']"
    page.wait_for_selector(tile)
    wait_until(lambda: page.get_attribute(f"{tile} .player", "data-state") == "playing", 60, 0.2,
               "the live tile never played")
    wait_until(lambda: grab_frames(page, f"{tile} video")[0] is not None, 30, 0.2)
    _assert_covered(page, tile, f"{tile} video", "live view")


def test_the_mask_covers_the_same_pixels_in_playback(console, browser_page, masked):
    page = browser_page
    page.goto(console.url + "/#/playback")
    page.wait_for_selector("#page[data-ready]")
    tile = f".pb-tile[data-camera='{masked}']"
    page.wait_for_selector(tile)
    wait_until(lambda: page.get_attribute("#page", "data-frame-ready") == "1", 60, 0.2,
               "the playback picture never showed")
    _assert_covered(page, tile, f"{tile} video", "playback")
    page.click("#pb-play")  # and while playing
    page.wait_for_timeout(1500)
    _assert_covered(page, tile, f"{tile} video", "playback, playing")


def test_the_editor_refuses_what_the_api_refuses_and_keeps_the_saved_masks(console, browser_page, masked):
    page = browser_page
    page.goto(f"{console.url}/#/cameras/{masked}/masks")
    page.wait_for_selector("#page[data-masks-ready]")
    assert page.get_attribute("#mk-canvas", "data-masks") == "1", "the saved mask is loaded"
    page.fill("#mk-label-0", "x" * 64)
    page.evaluate("document.getElementById('mk-label-0').value = 'y'.repeat(65)")
    page.dispatch_event("#mk-label-0", "input")
    page.click("#mk-save")
    page.wait_for_selector("#mk-status.error:not(:empty)")
    got = console.http().get(f"/api/cameras/{masked}/privacy-masks").json()["masks"]
    assert got[0]["label"] == "window of the flat opposite", "a refused save changes nothing"


def test_the_cameras_and_mask_pages_are_fully_translated(console, new_page, masked):
    page = new_page("zh-CN")
    page.goto(f"{console.url}/#/cameras/{masked}/masks")
    page.wait_for_selector("#page[data-masks-ready]")
    assert_all_translated(page, "zh-CN")
    page.goto(f"{console.url}/#/cameras")
    page.wait_for_selector(".cam-card")
    page.click(f"#cam-edit-{masked}")
    page.wait_for_selector("#cf-form")
    assert_all_translated(page, "zh-CN")
