"""Camera administration behind the console (issue 3, item 5): "test connection" probes a
stream with the project's own RTSP client and answers codec, picture size and frame rate;
hostile URLs are refused with a reason and the password never comes back or reaches a log.
Signage photos (Q17.1, N13.1) are JPEG or PNG by their first bytes, size-limited and kept
under their SHA-256; a refused upload stores nothing."""

from __future__ import annotations

import hashlib
import logging
import struct
import zlib
from fractions import Fraction

import av
import numpy as np
import pytest

from tests.access.helpers import Site
from viis.registry.models import SignagePhoto
from viis.registry.service import MAX_SIGNAGE_BYTES
from viis.simcam.fleet import SimFleet

USER, SECRET = "viewer", "pr0be-S3cret-xyz"


@pytest.fixture(scope="module")
def cam_fleet(tmp_path_factory):
    f = SimFleet(1, width=320, height=180, fps=25, gop_s=1.0, cycle_s=6.0,
                 cache_dir=tmp_path_factory.mktemp("probe-clips"), credentials=(USER, SECRET))
    f.start()
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture
def site(tmp_path, db, clock):
    s = Site(tmp_path, db, clock)
    assert s.admin.post("/api/cameras", json={"name": "gate", "main_url": "rtsp://10.0.0.9/x"}).status_code == 201
    return s


def _image(fmt: str, w: int = 64, h: int = 48) -> bytes:
    """A real small picture: PNG written by hand, JPEG by FFmpeg's encoder."""
    if fmt == "PNG":
        def chunk(kind: bytes, body: bytes) -> bytes:
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        raw = b"".join(b"\0" + bytes([200, 30, 30]) * w for _ in range(h))
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height, enc.pix_fmt, enc.time_base = w, h, "yuvj420p", Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), (200, 30, 30), np.uint8), format="rgb24")
    return b"".join(bytes(p) for p in [*enc.encode(frame.reformat(format="yuvj420p")), *enc.encode(None)])


def test_test_connection_reports_codec_resolution_and_frame_rate(cam_fleet, site, caplog):
    caplog.set_level(logging.DEBUG)
    r = site.admin.post("/api/cameras/probe",
                        json={"url": cam_fleet.url(0), "username": USER, "password": SECRET})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["ok"] is True
    assert (got["codec"], got["width"], got["height"]) == ("h264", 320, 180)
    assert got["fps"] == pytest.approx(25, abs=0.5)
    assert got["browser_playable"] is True
    assert SECRET not in r.text
    assert SECRET not in caplog.text, "the password must never reach a log"


def test_a_wrong_password_is_named_as_such_and_not_echoed(cam_fleet, site, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wr0ng-Passw0rd-abc"
    r = site.admin.post("/api/cameras/probe",
                        json={"url": cam_fleet.url(0), "username": USER, "password": wrong})
    assert r.status_code == 200
    got = r.json()
    assert got["ok"] is False and got["step"] == "auth"
    assert "password" in got["error"]
    assert wrong not in r.text and wrong not in caplog.text


def test_an_unreachable_camera_fails_within_the_time_limit(site):
    r = site.admin.post("/api/cameras/probe", json={"url": "rtsp://127.0.0.1:9/none"})
    assert r.status_code == 200
    assert r.json()["ok"] is False and r.json()["step"] == "connect"


@pytest.mark.parametrize("url, needle", [
    ("http://127.0.0.1/x", "rtsp://"),
    ("file:///etc/passwd", "rtsp://"),
    ("rtsp://user:pw@127.0.0.1/x", "own fields"),
    ("rtsp://169.254.169.254/latest", "link-local"),
    ("rtsp://224.0.0.1/x", "multicast"),
    ("rtsp://0.0.0.0/x", "reserved"),
    ("rtsp:///nohost", "no host"),
    ("rtsp://127.0.0.1:0/x", "port 0"),
    ("rtsp://127.0.0.1/x\r\nInjected: 1", "control characters"),
    ("", "empty"),
])
def test_hostile_urls_are_refused_clearly(site, url, needle):
    r = site.admin.post("/api/cameras/probe", json={"url": url})
    assert r.status_code == 422, r.text
    assert needle in r.json()["error"]
    assert r.json()["field"] == "url"


def test_oversized_and_malformed_probe_bodies_are_refused(site):
    assert site.admin.post("/api/cameras/probe", json={"url": "rtsp://h/" + "a" * 3000}).status_code == 422
    assert site.admin.post("/api/cameras/probe", json={"url": "rtsp://h/x", "password": "p" * 500}).status_code == 422
    assert site.admin.post("/api/cameras/probe", json={"url": "rtsp://h/x", "extra": 1}).status_code == 422
    assert site.admin.post("/api/cameras/probe", content=b"not json",
                           headers={"content-type": "application/json"}).status_code == 422


def test_only_administrators_may_probe(site):
    site.user("op", ("operator_on_duty",))
    r = site.sign_in("op").post("/api/cameras/probe", json={"url": "rtsp://127.0.0.1:9/x"})
    assert r.status_code == 403


# --- signage (Q17.1, N13.1) -------------------------------------------------------------------

def _signage_rows(site):
    with site.app.db.session() as s:
        return s.query(SignagePhoto).count()


@pytest.mark.parametrize("fmt, media_type", [("JPEG", "image/jpeg"), ("PNG", "image/png")])
def test_a_signage_photo_is_kept_under_its_sha256_and_shown_with_the_camera(site, fmt, media_type):
    """Q17.1, N13.1: the sign announcing the camera, as evidence on the camera's record."""
    data = _image(fmt)
    r = site.admin.put("/api/cameras/1/signage", content=data,
                       headers={"content-type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert r.json()["media_type"] == media_type
    got = site.admin.get("/api/cameras/1/signage")
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"] == media_type
    assert site.admin.get("/api/cameras/1").json()["signage"]["sha256"] == hashlib.sha256(data).hexdigest()
    # the same picture again is not stored twice
    assert site.admin.put("/api/cameras/1/signage", content=data).status_code == 200
    assert _signage_rows(site) == 1


@pytest.mark.parametrize("body, needle", [
    (b"GIF89a" + b"\0" * 200, "JPEG or PNG"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>" + b" " * 100, "JPEG or PNG"),
    (b"%PDF-1.4" + b"\0" * 200, "JPEG or PNG"),
    (b"\xff\xd8\xff", "too small"),
    (b"", "too small"),
])
def test_uploads_that_are_not_pictures_are_refused_and_nothing_is_stored(site, body, needle):
    r = site.admin.put("/api/cameras/1/signage", content=body, headers={"content-type": "image/jpeg"})
    assert r.status_code == 422, r.text
    assert needle in r.json()["error"]
    assert _signage_rows(site) == 0
    assert site.admin.get("/api/cameras/1/signage").status_code == 404


def test_an_oversized_signage_photo_is_refused_before_it_is_stored(site):
    site.api.state.max_body = MAX_SIGNAGE_BYTES * 2  # past the body limit, the photo limit holds
    big = b"\xff\xd8\xff\xe0" + b"\0" * (MAX_SIGNAGE_BYTES + 10)
    r = site.admin.put("/api/cameras/1/signage", content=big)
    assert r.status_code == 422 and "over the limit" in r.json()["error"]
    site.api.state.max_body = 1_000_000
    r = site.admin.put("/api/cameras/1/signage", content=big)
    assert r.status_code == 413
    assert _signage_rows(site) == 0


def test_signage_for_an_unknown_camera_is_404_and_others_may_only_look(site):
    assert site.admin.put("/api/cameras/99/signage", content=_image("PNG")).status_code == 404
    site.user("aud", ("auditor",))
    c = site.sign_in("aud")
    assert c.put("/api/cameras/1/signage", content=_image("PNG")).status_code == 403
    assert site.admin.put("/api/cameras/1/signage", content=_image("PNG")).status_code == 200
    assert c.get("/api/cameras/1/signage").status_code == 200
    assert _signage_rows(site) == 1


def test_location_types_come_from_the_rule_packs_with_the_forbidding_articles(site):
    """Invariant 4: the console's list of places is the packs' vocabulary; forbidden places
    carry the articles (Q9.1, N8.1) a refusal will cite."""
    r = site.admin.get("/api/cameras/location-types")
    assert r.status_code == 200
    types = {x["id"]: x for x in r.json()}
    assert types["public_area"]["forbidden"] is False
    assert types["hotel_guest_room"]["forbidden"] is True
    assert "Q9.1" in types["hotel_guest_room"]["articles"]
    refused = site.admin.patch("/api/cameras/1", json={"location_type": "hotel_guest_room"})
    assert refused.status_code == 422
    assert set(types["hotel_guest_room"]["articles"]) <= set(refused.json()["articles"])
