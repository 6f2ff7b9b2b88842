"""Evidence export benchmark (issue 4): how fast a signed package of an approved retrieval
is made, against FFmpeg doing the bare media work on the same footage in the same run.

    .venv/bin/python bench/export_speed.py [--seconds 120] [--size 1280x720]

Footage: ``--seconds`` of FFmpeg's test picture, H.264 at 4 Mbit/s, 25 fps, written as the
recorder writes it (fragmented MP4 segments of 60 s, index rows, hash chain). A police
request over that range is filed, approved and opened by two staff; then the real
:class:`viis.access.evidence.EvidenceExporter` builds the package (door, register entry,
re-hashing the originals, chain proof, MP4, zip, Ed25519 signature). Timed: ``build``.

* ``export_x_realtime``: footage seconds per wall second, stream copy (no mask, no
  watermark). Baseline: ``ffmpeg -c copy`` of the same segments into one faststart MP4
  (``ffmpeg_copy_x_realtime``); ``export_vs_ffmpeg_copy`` = ours / FFmpeg's (>1 = faster).
* ``masked_export_fps``: frames per second with a privacy mask and the watermark burned in
  (libx264 veryfast, CRF 20). Baseline: ``ffmpeg -vf drawbox=...:t=fill`` with the same
  encoder settings (``ffmpeg_masked_fps``); ``masked_vs_ffmpeg`` = ours / FFmpeg's.
* ``publication_export_fps``: with face and plate pixelation (N22.1) as well.

``measure(workdir)`` returns the figures (``bench/audit.py`` merges them into audit.json);
run as a script it prints them and writes ``bench/results/export_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FPS = 25
MASK = {"label": "window", "points": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.5], [0.1, 0.5]]}


def _ffmpeg(*args: str) -> float:
    t = time.perf_counter()
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, capture_output=True)
    return time.perf_counter() - t


def measure(workdir: Path, seconds: int = 120, size: str = "1280x720") -> dict:
    from sqlalchemy import select

    from tests.access.retrieval_helpers import World
    from tests.access.test_evidence_helpers import encode, write_footage
    from viis.access.evidence import ExportOptions
    from viis.access.models import User
    from viis.core.clock import ManualClock
    from viis.core.db import Database

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    w_px, h_px = (int(x) for x in size.split("x"))
    aus = encode(workdir / "src.h264", seconds, size, bitrate="4M")
    db = Database(f"sqlite:///{workdir / 'viis.db'}")
    db.migrate()
    clock = ManualClock()
    world = World(workdir / "site", db, clock)
    app = world.site.app
    cam = world.cams[0]
    t0 = world.now() - 2 * 3_600_000
    write_footage(db, app.settings.segments_path, cam, t0, aus, segment_s=60, size=(w_px, h_px))
    rid = world.file(ranges=[(cam, t0, t0 + seconds * 1000)])["id"]
    world.approve(rid)
    sid = world.open(rid).json()["id"]
    exports = world.site.api.state.exports
    exporter = exports.exporter
    with world.site.app.db.session() as s:
        user = s.scalars(select(User).where(User.login == "inv1")).one()
        p = world.site.ident.principal(s, user)
    exporter.signer  # noqa: B018 - create the key outside the timed part

    def build(opts: ExportOptions, name: str) -> tuple[float, dict]:
        plan = exporter.plan(p, rid, sid, opts)
        t = time.perf_counter()
        manifest = exporter.build(plan, workdir / f"{name}.zip")
        return time.perf_counter() - t, manifest

    frames = seconds * FPS
    copy_s, m = build(ExportOptions(watermark=False), "copy")
    assert m["items"][0]["mode"] == "stream-copy"
    world.site.admin.put(f"/api/cameras/{cam}/privacy-masks", json={"masks": [MASK]})
    masked_s, m = build(ExportOptions(watermark=True), "masked")
    assert m["items"][0]["masks_burned_in"]
    pub_s, m = build(ExportOptions(watermark=True, publication=True), "publication")
    detections = m["items"][0]["transcode"]["detections"]

    segs = sorted((app.settings.segments_path).rglob("*.mp4"))
    listing = workdir / "concat.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in segs))
    ff_copy = _ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                      "-movflags", "+faststart", str(workdir / "ff-copy.mp4"))
    x, y = int(0.1 * w_px), int(0.1 * h_px)
    box = f"drawbox=x={x}:y={y}:w={int(0.3 * w_px)}:h={int(0.4 * h_px)}:color=black:t=fill"
    ff_masked = _ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-vf", box,
                        "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
                        "-movflags", "+faststart", str(workdir / "ff-masked.mp4"))
    exports.shutdown()
    db.dispose()
    return {
        "export_x_realtime": round(seconds / copy_s, 1),
        "ffmpeg_copy_x_realtime": round(seconds / ff_copy, 1),
        "export_vs_ffmpeg_copy": round(ff_copy / copy_s, 2),
        "masked_export_fps": round(frames / masked_s, 1),
        "ffmpeg_masked_fps": round(frames / ff_masked, 1),
        "masked_vs_ffmpeg": round(ff_masked / masked_s, 2),
        "publication_export_fps": round(frames / pub_s, 1),
        "publication_detections_on_test_picture": detections["faces"] + detections["plates"],
        "export_footage_s": seconds,
        "export_size": size,
        "export_bitrate": "4M",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--size", default="1280x720")
    args = ap.parse_args()
    os.environ.setdefault("VIIS_LOG__LEVEL", "WARNING")
    from viis.core.logging import configure

    configure("WARNING", False)
    with tempfile.TemporaryDirectory(prefix="viis-export-bench-") as d:
        result = measure(Path(d), args.seconds, args.size)
    result.update(machine=platform.machine(), cpus=os.cpu_count(),
                  python=platform.python_version(),
                  at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results" / "export_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
