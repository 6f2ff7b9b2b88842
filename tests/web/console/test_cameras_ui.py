"""Camera administration in Debian's Chromium (issue 3, item 5): the cameras by site with
their status and thumbnails, search; adding a camera with "test connection" showing codec,
resolution and frame rate from the real stream; a retention below the legal minimum refused
citing its articles (Q19.7, N17.1); a forbidden place refused citing its article (Q9.1, N8.1);
disabling; the signage photo (Q17.1, N13.1) uploaded through the page."""

from __future__ import annotations

import struct
import zlib

from tests.web.console.helpers import wait_until


def _png(w: int = 32, h: int = 24) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    raw = b"".join(b"\0" + bytes([20, 120, 220]) * w for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _open(page, console):
    page.goto(console.url + "/#/cameras")
    page.wait_for_selector(".cam-card")


def test_cameras_are_listed_by_site_with_status_thumbnails_and_search(console, browser_page):
    page = browser_page
    _open(page, console)
    cards = page.locator(".cam-card")
    assert cards.count() == len(console.camera_ids())
    assert page.locator(".cams-tree h3").first.inner_text().startswith("test site")
    wait_until(lambda: page.locator(".cam-card[data-status='recording']").count() == cards.count(), 30, 0.3,
               "every simulated camera shows as recording")
    assert page.locator(".cam-card .badge.recording").first.inner_text() == "Recording"
    wait_until(lambda: page.locator(".cam-card .thumb img").count() >= 1, 60, 0.5, "no thumbnail")
    ok = page.evaluate("() => [...document.querySelectorAll('.cam-card .thumb img')].map(i => i.naturalWidth)")
    assert all(w > 0 for w in ok)
    page.fill("#cams-search", "cam4")  # names cam1-4; their stream paths are cam0-3
    assert page.locator(".cam-card").count() == 1
    assert page.locator(".cam-card .name").inner_text() == "cam4"


def test_add_a_camera_with_test_connection_and_refusals_that_cite_the_law(console, browser_page):
    page = browser_page
    _open(page, console)
    page.click("#cams-add")
    page.fill("#cf-name", "gate-9")
    page.fill("#cf-main-url", console.fleet.url(3))
    page.click("#cf-test")
    page.wait_for_selector("#cf-probe-codec", timeout=30_000)
    assert page.inner_text("#cf-probe-codec") == "H264"
    assert page.inner_text("#cf-probe-size") == "640×360"
    assert float(page.inner_text("#cf-probe-fps")) == 25
    # below the legal minimum: refused, the articles shown (Q19.7, N17.1)
    page.fill("#cf-retention", "7")
    page.click("#cf-save")
    page.wait_for_selector("#cf-status[data-field='retention_days']")
    text = page.inner_text("#cf-status")
    assert "below the legal minimum" in text and "Q19.7" in text and "N17.1" in text
    # a place where cameras are forbidden: refused with its article (Q9.1)
    page.fill("#cf-retention", "")
    page.select_option("#cf-location", "hotel_guest_room")
    page.click("#cf-save")
    page.wait_for_selector("#cf-status[data-field='location_type']")
    assert "forbidden" in page.inner_text("#cf-status") and "Q9.1" in page.inner_text("#cf-status")
    assert "gate-9" not in [c["name"] for c in console.http().get("/api/cameras").json()], \
        "nothing is stored by a refused save"
    page.select_option("#cf-location", "public_area")
    page.select_option("#cf-level", "3")
    page.click("#cf-save")
    page.wait_for_selector("#cf-status.ok")
    cam = next(c for c in console.http().get("/api/cameras").json() if c["name"] == "gate-9")
    assert cam["security_level"] == 3 and cam["location_type"] == "public_area"
    # the form stays open on the new camera: its signage photo (Q17.1, N13.1)
    page.set_input_files("#cf-signage-file", files=[{"name": "sign.png", "mimeType": "image/png",
                                                     "buffer": _png()}])
    page.wait_for_selector("#cf-signage-status.ok")
    page.wait_for_selector("#cf-signage-current img")
    r = console.http().get(f"/api/cameras/{cam['id']}/signage")
    assert r.status_code == 200 and r.content == _png()
    # a file that is not a picture is refused and the photo stays
    page.set_input_files("#cf-signage-file", files=[{"name": "sign.png", "mimeType": "image/png",
                                                     "buffer": b"<html>" + b" " * 200}])
    page.wait_for_selector("#cf-signage-status.error:not(:empty)")
    assert "JPEG or PNG" in page.inner_text("#cf-signage-status")
    assert console.http().get(f"/api/cameras/{cam['id']}/signage").content == _png()
    # disable it: the list says so
    page.click("#cf-cancel")
    page.click(f"#cam-toggle-{cam['id']}")
    wait_until(lambda: page.get_attribute(f".cam-card[data-camera='{cam['id']}']", "data-status") == "disabled",
               20, 0.2)
    assert console.http().get(f"/api/cameras/{cam['id']}").json()["enabled"] is False


def test_a_camera_that_cannot_be_reached_shows_offline(console, browser_page):
    r = console.http().post("/api/cameras", json={"name": "nowhere", "main_url": "rtsp://127.0.0.1:9/none"})
    assert r.status_code == 201
    page = browser_page
    _open(page, console)
    wait_until(lambda: page.get_attribute(f".cam-card[data-camera='{r.json()['id']}']", "data-status") == "offline",
               30, 0.3)
    page.click(f"#cam-edit-{r.json()['id']}")
    page.click("#cf-test")
    page.wait_for_selector("#cf-probe .error")
    assert "cannot be reached" in page.inner_text("#cf-probe")
