"""Evidence export packages end to end through the API (Q23, Q24.1, Q9.2, N16.1, N21.1):
real footage, the door's register entries, signed packages checked offline by
``viis verify-export``, and the exported pixels read back with PyAV."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest

from tests.access.retrieval_helpers import HOUR_MS, World
from tests.access.test_evidence_helpers import encode, write_footage
from viis.cli import main as viis

SECONDS = 8
# a window of the flat opposite: x 10..40 %, y 10..50 % of the picture
WINDOW = {"label": "flat window", "points": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.5], [0.1, 0.5]]}


@pytest.fixture(scope="module")
def aus(tmp_path_factory):
    return encode(tmp_path_factory.mktemp("enc") / "v.h264", SECONDS)


class Ev:
    """A world with 8 s of footage on both cameras and an approved police request."""

    def __init__(self, tmp_path, db, clock, aus):
        self.w = w = World(tmp_path, db, clock)
        self.site = w.site
        self.t0 = w.now() - 2 * HOUR_MS
        for cam in w.cams:
            write_footage(self.site.app.db, self.site.app.settings.segments_path, cam, self.t0, aus)
        self.ranges = [(c, self.t0, self.t0 + SECONDS * 1000) for c in w.cams]
        self.rid = w.file(ranges=self.ranges)["id"]
        w.approve(self.rid)
        r = w.open(self.rid)
        assert r.status_code == 201, r.text
        self.sid = r.json()["id"]
        self.tmp = tmp_path

    def url(self, rid=None, sid=None) -> str:
        return f"/api/retrievals/{rid or self.rid}/sessions/{sid or self.sid}/exports"

    def export(self, login="inv1", **body) -> dict:
        c = self.w.c(login)
        r = c.post(self.url(), json=body)
        assert r.status_code == 202, r.text
        job = r.json()
        seen = []
        deadline = time.monotonic() + 600  # generous: the machine is shared
        while job["status"] not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.1)
            job = c.get(f"{self.url()}/{job['id']}").json()
            seen.append(job["percent"])
        assert job["status"] == "done", job
        assert job["percent"] == 100.0
        assert seen == sorted(seen)  # progress only goes forward
        r = c.get(f"{self.url()}/{job['id']}/package.zip")
        assert r.status_code == 200, r.text
        path = self.tmp / f"pkg-{job['id']}.zip"
        path.write_bytes(r.content)
        return {"job": job, "path": path}

    def public_key(self) -> Path:
        p = self.tmp / "evidence.pem"
        p.write_bytes(self.site.api.state.exports.exporter.signer.public_pem())
        return p


@pytest.fixture
def ev(tmp_path, db, clock, aus):
    e = Ev(tmp_path, db, clock, aus)
    yield e
    e.site.api.state.exports.shutdown()


def manifest(path: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("manifest.json"))


def frames(path: Path, member: str) -> list[np.ndarray]:
    """Luma planes of every frame of a media file inside the package."""
    with zipfile.ZipFile(path) as z:
        data = z.read(member)
    with av.open(io.BytesIO(data)) as c:
        return [f.to_ndarray(format="yuv420p")[: f.height] for f in c.decode(video=0)]


def verify_cli(path: Path, key: Path | None, capsys) -> tuple[int, str]:
    args = ["verify-export", str(path)] + (["--public-key", str(key)] if key else [])
    code = viis(args)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_a_fresh_package_verifies_offline_and_lists_every_file(ev, capsys):
    """Q24.1, N16.1: media, approval, both staff, source hashes with chain proof, signature."""
    ev.site.admin.put(f"/api/cameras/{ev.w.cams[0]}/privacy-masks", json={"masks": [WINDOW]})
    got = ev.export()
    code, out = verify_cli(got["path"], ev.public_key(), capsys)
    assert code == 0, out
    assert "OK" in out
    m = manifest(got["path"])
    assert m["request"]["ref"] == f"R-{ev.rid}" and m["request"]["case_number"] == "QD-2026-0042"
    assert {p["login"] for p in m["session"]["staff"]} == {"inv1", "inv2"}
    assert m["approval"]["file"].startswith("approval/") and m["approval"]["type"] == "pdf"
    names = set(zipfile.ZipFile(got["path"]).namelist())
    assert names == set(m["files"]) | {"manifest.json", "manifest.sig"}
    assert len(m["items"]) == 2
    for item in m["items"]:
        assert item["frames"] == SECONDS * 25
        assert [s["seq"] for s in item["sources"]] == [1, 2]
        assert item["chain"]["head"]["seq"] == 2
        assert item["mode"] == "transcoded"  # the watermark is asked by default
    assert m["items"][0]["masks_burned_in"] and not m["items"][1]["masks_burned_in"]
    # one register entry per camera range through the door, with both staff
    entries = [e for e in ev.w.register() if e["action"] == "export"]
    assert [(e["camera_id"], e["outcome"]) for e in entries] == [(c, "allowed") for c in ev.w.cams]
    assert {e["second_name"] for e in entries} == {"Inv2"}
    from viis.integrity.audit import AuditLog
    with ev.site.app.db.session() as s:
        (audit,) = AuditLog(s).search(kind="evidence.export")
        assert json.loads(audit.details)["package_id"] == m["package_id"]


def test_without_the_package_key_the_cli_says_what_it_proves(ev, capsys):
    got = ev.export(watermark=False)
    code, out = verify_cli(got["path"], None, capsys)
    assert code == 0, out
    assert "not who made it" in out


def test_no_mask_and_no_watermark_exports_the_original_stream_copy(ev):
    """Invariant 6: stream copy when nothing must change in the pixels."""
    got = ev.export(watermark=False)
    m = manifest(got["path"])
    assert {i["mode"] for i in m["items"]} == {"stream-copy"}
    with zipfile.ZipFile(got["path"]) as z:
        data = z.read(m["items"][0]["file"])
    with av.open(io.BytesIO(data)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in c.demux(video=0) if _.size) == SECONDS * 25


def test_burned_in_masks_and_watermark_are_in_the_exported_pixels(ev):
    """Q9.2: the masked window is opaque black in every frame; Q24.1/Q20.5: the watermark
    band is there, dark with white text; the original shows picture in both places."""
    ev.site.admin.put(f"/api/cameras/{ev.w.cams[0]}/privacy-masks", json={"masks": [WINDOW]})
    masked = ev.export()
    plain = ev.export(watermark=False)
    m = manifest(masked["path"])
    ys = frames(masked["path"], m["items"][0]["file"])
    # the other camera recorded the same picture and has no mask: its stream copy is the original
    orig = frames(plain["path"], manifest(plain["path"])["items"][1]["file"])
    assert len(ys) == len(orig) == SECONDS * 25
    h, w = ys[0].shape
    # the mask's interior, 4 px in from its edges
    inner = (slice(int(0.1 * h) + 4, int(0.5 * h) - 4), slice(int(0.1 * w) + 4, int(0.4 * w) - 4))
    band_h = max(16, (h // 18) // 2 * 2)
    band = slice(h - band_h, h)
    for y, o in zip(ys, orig, strict=True):
        assert y[inner].max() <= 24, "mask pixels must be opaque black"
        assert o[inner].std() > 10  # the original has picture there
        assert (y[band] >= 200).sum() > 200, "the watermark text is drawn"
        assert np.median(y[band]) < 90, "on a darkened band"
    # the second camera has no mask: its picture is there, with the watermark
    y2 = frames(masked["path"], m["items"][1]["file"])[0]
    assert y2[inner].std() > 10
    assert f"R-{ev.rid}" in m["items"][1]["watermark"]
    assert "W-inv1" in m["items"][1]["watermark"]


def _rewrite(src: Path, dst: Path, change) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        items = {i.filename: zin.read(i) for i in zin.infolist()}
        for name, data in change(items).items():
            zout.writestr(name, data)


def _flip(data: bytes, at: int | None = None) -> bytes:
    i = len(data) // 2 if at is None else at
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


def test_verify_export_names_every_changed_added_or_removed_file(ev, tmp_path, capsys):
    """Done-when: a byte of media, manifest or approval changed, a file added or removed."""
    got = ev.export(watermark=False)
    key = ev.public_key()
    m = manifest(got["path"])
    media = m["items"][0]["file"]
    approval = m["approval"]["file"]
    cases = {
        "media": (lambda d: d | {media: _flip(d[media])}, media),
        "approval": (lambda d: d | {approval: _flip(d[approval])}, approval),
        "manifest": (lambda d: d | {"manifest.json": d["manifest.json"].replace(
            b"QD-2026-0042", b"QD-2026-0043")}, "manifest.json"),
        "added": (lambda d: d | {"media/extra.mp4": b"not evidence"}, "media/extra.mp4"),
        "removed": (lambda d: {k: v for k, v in d.items() if k != approval}, approval),
        "signature": (lambda d: d | {"manifest.sig": d["manifest.sig"].replace(
            b'"value": "', b'"value": "AAAA')}, "manifest.json"),
    }
    for why, (change, named) in cases.items():
        bad = tmp_path / f"bad-{why}.zip"
        _rewrite(got["path"], bad, change)
        code, out = verify_cli(bad, key, capsys)
        assert code == 1, (why, out)
        assert named in out, (why, out)
    # a byte flipped in the zip file itself, inside the stored media member
    raw = bytearray(got["path"].read_bytes())
    with zipfile.ZipFile(got["path"]) as z:
        info = z.getinfo(media)
    raw[info.header_offset + 30 + len(media) + 5000] ^= 0x01
    bad = tmp_path / "bad-raw.zip"
    bad.write_bytes(bytes(raw))
    code, out = verify_cli(bad, key, capsys)
    assert code == 1 and media in out, out


def test_a_package_signed_by_another_key_fails(ev, tmp_path, capsys):
    from viis.core.signing import Signer

    got = ev.export(watermark=False)
    other = tmp_path / "other.pem"
    other.write_bytes(Signer.generate().public_pem())
    code, out = verify_cli(got["path"], other, capsys)
    assert code == 1 and "signature" in out


def test_verify_export_refuses_hostile_files_clearly(tmp_path, capsys):
    not_zip = tmp_path / "x.zip"
    not_zip.write_bytes(b"PK\x03\x04 nonsense")
    assert verify_cli(not_zip, None, capsys)[0] == 1
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../../etc/passwd", b"x")
        z.writestr("manifest.json", b"{not json")
        z.writestr("manifest.sig", b"{}")
    code, out = verify_cli(evil, None, capsys)
    assert code == 1 and "unsafe" in out and "manifest.json" in out
    assert viis(["verify-export", str(tmp_path / "missing.zip")]) in (1, 2)
    capsys.readouterr()


def test_an_individual_request_cannot_export(ev):
    """N21.1: view only. The refusal is a register entry."""
    w = ev.w
    body = w.body("individual", staff=("W-op1", "W-op2"), document=False,
                  person_name="Li Hua", person_relation="self", case_number="",
                  ranges=[ev.ranges[0]])
    rid = w.c("op1").post("/api/retrievals", json=body).json()["id"]
    from tests.access.retrieval_helpers import doc
    w.approve(rid, "uadmin", document=doc())
    sid = w.open(rid, "op1", "op2").json()["id"]
    r = w.c("op1").post(ev.url(rid, sid), json={})
    assert r.status_code == 403, r.text
    assert "N21.1" in r.json()["articles"] or "export" in r.json()["error"]
    refused = [e for e in w.register() if e["request_id"] == rid and e["action"] == "export"]
    assert [e["outcome"] for e in refused] == ["refused"]


def test_exports_need_an_open_session_in_force_and_its_own_staff(ev):
    w = ev.w
    assert w.c("inv4").post(ev.url(), json={}).status_code == 404  # not party to the session
    assert w.c("dep1").post(ev.url(), json={}).status_code == 404  # cannot see the request
    got = ev.export(watermark=False)
    job = got["job"]["id"]
    assert w.c("inv2").get(f"{ev.url()}/{job}").status_code == 200  # the second staff member
    assert w.c("inv4").get(f"{ev.url()}/{job}").status_code == 404
    assert w.c("inv1").get(f"{ev.url()}/nope").status_code == 404
    for _ in range(9 * 3):  # the approval (8 h) expires; the staff stay signed in
        ev.w.clock.advance(20 * 60)
        assert w.c("inv1").get("/api/me").status_code == 200
    assert w.c("inv1").post(ev.url(), json={}).status_code == 403
    assert w.c("inv1").get(f"{ev.url()}/{job}/package.zip").status_code == 403


def test_malformed_export_bodies_are_refused_and_start_nothing(ev):
    c = ev.w.c("inv1")
    for body in ({"watermark": "yes"}, {"publication": 1}, {"watermark": True, "x": 1}, []):
        r = c.post(ev.url(), json=body)
        assert r.status_code == 422, (body, r.text)
    assert [e for e in ev.w.register() if e["action"] == "export"] == []


def test_a_changed_original_is_not_exported(ev):
    """Q20.3: the exporter re-hashes the source segments; a changed one fails the job."""
    from sqlalchemy import select

    from viis.media.models import Segment
    with ev.site.app.db.session() as s:
        seg = s.scalars(select(Segment).where(Segment.camera_id == ev.w.cams[1])).first()
        path = ev.site.app.settings.segments_path / seg.path
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    c = ev.w.c("inv1")
    job = c.post(ev.url(), json={"watermark": False}).json()
    job = ev.site.api.state.exports.wait(job["id"])
    assert job.status == "failed"
    assert "does not match its recorded SHA-256" in job.error
    assert c.get(f"{ev.url()}/{job.id}/package.zip").status_code == 403


def test_an_approved_mask_lift_exports_the_picture_and_says_so(ev):
    """Q9.2: with a lift approved by a second user, the masked area is exported as recorded."""
    ev.site.admin.put(f"/api/cameras/{ev.w.cams[0]}/privacy-masks", json={"masks": [WINDOW]})
    ev.site.api.state.mask_lifting.enabled = True
    lifts = f"/api/retrievals/{ev.rid}/mask-lifts"
    lid = ev.w.c("inv1").post(lifts, json={"camera_id": ev.w.cams[0], "reason": "scene"}).json()["id"]
    assert ev.w.c("appr").post(f"{lifts}/{lid}/approve", json={}).status_code == 200
    got = ev.export()
    m = manifest(got["path"])
    item = m["items"][0]
    assert item["mask_lift"]["id"] == lid and not item["masks_burned_in"]
    y = frames(got["path"], item["file"])[0]
    h, w = y.shape
    assert y[int(0.1 * h) + 4:int(0.5 * h) - 4, int(0.1 * w) + 4:int(0.4 * w) - 4].std() > 10


def test_viis_export_fetches_a_package_from_the_running_server(ev, tmp_path, capsys):
    """The CLI is a client of the real HTTP server: same door, same register, progress."""
    import socket
    import threading

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(ev.site.api, host="127.0.0.1", port=port,
                                           access_log=False, log_config=None, lifespan="off"))
    server.install_signal_handlers = lambda: None
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        token = tmp_path / "token"
        token.write_text(ev.w.c("inv1").headers["Authorization"].split()[1])
        out = tmp_path / "pkg.zip"
        code = viis(["export", str(ev.rid), str(ev.sid), "--url", f"http://127.0.0.1:{port}",
                     "--token-file", str(token), "--out", str(out), "--no-watermark"])
        got = capsys.readouterr()
        assert code == 0, got.err
        assert "done" in got.err and str(out) in got.out
        code, text = verify_cli(out, ev.public_key(), capsys)
        assert code == 0, text
        # a refusal is reported with the server's reason, exit 1
        token.write_text(ev.w.c("inv4").headers["Authorization"].split()[1])
        assert viis(["export", str(ev.rid), str(ev.sid), "--url", f"http://127.0.0.1:{port}",
                     "--token-file", str(token)]) == 1
        assert "refused (404)" in capsys.readouterr().err
    finally:
        server.should_exit = True
        thread.join(30)


def test_the_plain_mp4_route_gives_no_unmasked_copy(ev):
    """Q9.2: masks are always burned in; the stream-copy route refuses a masked camera."""
    ev.site.admin.put(f"/api/cameras/{ev.w.cams[0]}/privacy-masks", json={"masks": [WINDOW]})
    q = f"start={ev.t0}&end={ev.t0 + 4000}"
    r = ev.w.c("inv1").get(f"/api/cameras/{ev.w.cams[0]}/export.mp4?{q}")
    assert r.status_code == 403 and "Q9.2" in r.json()["articles"]
    assert "evidence package" in r.json()["error"]
    assert ev.w.c("inv1").get(f"/api/cameras/{ev.w.cams[1]}/export.mp4?{q}").status_code == 200
    ev.site.api.state.mask_lifting.enabled = True
    lifts = f"/api/retrievals/{ev.rid}/mask-lifts"
    lid = ev.w.c("inv1").post(lifts, json={"camera_id": ev.w.cams[0], "reason": "scene"}).json()["id"]
    ev.w.c("appr").post(f"{lifts}/{lid}/approve", json={})
    assert ev.w.c("inv1").get(f"/api/cameras/{ev.w.cams[0]}/export.mp4?{q}").status_code == 200


def _luma(jpeg: bytes) -> np.ndarray:
    with av.open(io.BytesIO(jpeg)) as c:
        f = next(c.decode(video=0))
        return f.to_ndarray(format="gray")


def test_snapshots_carry_the_masks_in_their_pixels(ev):
    """Q9.2, N13.1: a snapshot is a still copy, so its masks are painted into it; only a user
    who may set masks (the editor, asking unmasked=true) or an approved lift sees under them."""
    cam = ev.w.cams[0]
    at = ev.t0 + 3000
    url = f"/api/cameras/{cam}/snapshot.jpg?at={at}"
    before = _luma(ev.w.c("inv1").get(url).content)
    h, w = before.shape
    inner = (slice(int(0.1 * h) + 4, int(0.5 * h) - 4), slice(int(0.1 * w) + 4, int(0.4 * w) - 4))
    outside = (slice(int(0.6 * h), int(0.9 * h)), slice(int(0.5 * w), int(0.9 * w)))
    assert before[inner].std() > 10  # picture there while no mask is set
    assert ev.site.admin.put(f"/api/cameras/{cam}/privacy-masks",
                             json={"masks": [WINDOW]}).status_code == 200
    for q in ("", "&unmasked=true"):  # an investigator cannot ask the masks away
        y = _luma(ev.w.c("inv1").get(url + q).content)
        assert y[inner].max() <= 24, "mask pixels must be opaque black"
        assert abs(float(y[outside].mean()) - float(before[outside].mean())) < 3
    ev.site.user("editor", ("unit_admin", "operator_on_duty"))  # may view and set masks
    editor = ev.w.c("editor")
    r = editor.get(url + "&unmasked=true")  # the mask editor's picture
    assert r.status_code == 200, r.text
    assert _luma(r.content)[inner].std() > 10
    assert _luma(editor.get(url).content)[inner].max() <= 24  # masked unless asked
    ev.site.api.state.mask_lifting.enabled = True  # an approved lift shows the picture
    lifts = f"/api/retrievals/{ev.rid}/mask-lifts"
    lid = ev.w.c("inv1").post(lifts, json={"camera_id": cam, "reason": "scene"}).json()["id"]
    assert ev.w.c("appr").post(f"{lifts}/{lid}/approve", json={}).status_code == 200
    assert _luma(ev.w.c("inv1").get(url).content)[inner].std() > 10
