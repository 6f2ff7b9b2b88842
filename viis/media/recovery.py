"""Start-up recovery of the segment store (docs/design/storage.md, "Start-up recovery").

Runs before any camera is opened. Restores the invariant "every file in the store has an
index row and every row's file is whole" after a crash, a power cut or a full disk, and
reports what it did. It never deletes footage: a file it cannot index stays where it is
and the verifier reports it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import select

from viis.app import App
from viis.core.logging import get_logger
from viis.integrity.verify import sha256_file
from viis.media.index import SegmentRecord, append_segment, last_end_ms
from viis.media.models import RecorderRun, Segment
from viis.media.mp4_reader import parse_segment, recover_segment
from viis.media.retention import finish_removals
from viis.registry.models import Camera

log = get_logger(__name__)
BROWSER_CODECS = {"h264"}


def _start_ms(name: str) -> int | None:
    stem = name.split(".", 1)[0]
    return int(stem) if stem.isdigit() else None


def _index_file(app: App, cam: Camera, path: Path, start_ms: int) -> int:
    """Index a whole segment file found without a row; returns its duration in ms."""
    seg = parse_segment(path)
    video = seg.track_of_kind("video")
    audio = seg.track_of_kind("audio")
    clock = seg.stats()[seg.clock_track_id]
    sha, size = sha256_file(path)
    dur = clock.duration_ms
    rec = SegmentRecord(
        start_ms=start_ms, end_ms=start_ms + dur, frames=clock.samples, nbytes=size, sha256=sha,
        path=os.path.relpath(path, app.settings.segments_path),
        video_codec=video.codec if video else "none", width=video.width if video else 0,
        height=video.height if video else 0,
        fps=round(clock.samples * 1000 / dur, 3) if dur else 0.0,
        audio_codec=audio.codec if audio else None, recovered=True,
        browser_playable=bool(video and video.codec in BROWSER_CODECS))
    with app.db.session() as s:
        append_segment(s, s.get(Camera, cam.id), rec, app.clock.wall_ms())
    return dur


def recover_store(app: App) -> dict[str, Any]:
    root = app.settings.segments_path
    out: dict[str, Any] = {"crashed": False, "recovered": [], "indexed": [], "left": [],
                           "removals_finished": finish_removals(app.db, root)}
    with app.db.session() as s:
        for run in s.scalars(select(RecorderRun).where(RecorderRun.stopped_ms.is_(None))):
            run.crashed = True
            run.stopped_ms = app.clock.wall_ms()
            out["crashed"] = True
        cams = list(s.scalars(select(Camera)))
        known = set(s.scalars(select(Segment.path)))
    for cam in cams:
        cam_dir = root / cam.uid
        if not cam_dir.is_dir():
            continue
        found: list[tuple[int, Path, bool]] = []
        for dirpath, _d, files in os.walk(cam_dir):
            for name in files:
                start = _start_ms(name)
                p = Path(dirpath) / name
                if start is None:
                    continue
                if name.endswith(".mp4.tmp"):
                    found.append((start, p, True))
                elif name.endswith(".mp4") and os.path.relpath(p, root) not in known:
                    found.append((start, p, False))
        with app.db.session() as s:
            chain_end = last_end_ms(s, cam.id)
        for start, p, is_tmp in sorted(found):
            if chain_end is not None and start < chain_end:
                out["left"].append(str(p))  # older than the chain's end: not ours to add
                continue
            try:
                if is_tmp:
                    final = p.with_suffix("")  # drop .tmp
                    if final.exists():  # renamed already; the link step left the .tmp
                        p.unlink()
                        continue
                    info = recover_segment(p, final)
                    if info.frames == 0:
                        out["left"].append(str(final))
                        continue
                    dur = _index_file(app, cam, final, start)
                    out["recovered"].append({"path": str(final), "duration_ms": dur,
                                             "bytes_dropped": info.bytes_dropped})
                else:
                    dur = _index_file(app, cam, p, start)
                    out["indexed"].append(str(p))
                chain_end = start + dur
            except Exception as e:  # an unreadable file stays for the operator and verifier
                log.error("recovery_failed", path=str(p), error=str(e))
                out["left"].append(str(p))
    if out["crashed"] or out["recovered"] or out["indexed"] or out["left"]:
        log.warning("store_recovered", crashed=out["crashed"], recovered=len(out["recovered"]),
                    indexed=len(out["indexed"]), left=out["left"])
    return out
