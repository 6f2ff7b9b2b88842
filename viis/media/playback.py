"""The read side: footage of a camera for a time range as one MP4 (stream copy across
segment boundaries), a JPEG snapshot at a time, and fragmented MP4 for MediaSource: a whole
range (:func:`mse`) or the short windows of a playback session (:func:`mse_window`).

Callers (web, CLI) pass the one door (viis.access.door) first; this module only reads.
Exported files are copies kept in ``<data_dir>/exports`` for an hour so that a player's
range requests reuse one file; the originals are never touched.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from sqlalchemy.orm import Session

from viis.core.errors import NotFound, ValidationFailed
from viis.media.index import gaps_between, segments_between
from viis.media.mp4_export import ExportInfo, export_range, iter_mse
from viis.media.mp4_format import ExportError

MAX_EXPORT_MS = 24 * 3_600_000
EXPORT_TTL_S = 3600


@dataclass
class Export:
    path: Path
    info: ExportInfo | None
    gaps: list[tuple[int, int, str]]


def _sources(s: Session, root: Path, camera_id: int, from_ms: int, to_ms: int):
    segs = segments_between(s, camera_id, from_ms, to_ms)
    if not segs:
        raise NotFound("no footage of this camera in that time range")
    return segs, [(root / seg.path, seg.start_ms) for seg in segs]


def _check_range(from_ms: int, to_ms: int) -> None:
    if to_ms <= from_ms:
        raise ValidationFailed("the range must end after it starts", field="end")
    if to_ms - from_ms > MAX_EXPORT_MS:
        raise ValidationFailed("an export covers at most 24 hours; split the range", field="end")


def export(s: Session, root: Path, export_dir: Path, camera_id: int, from_ms: int,
           to_ms: int) -> Export:
    """Write (or reuse) the MP4 of ``[from_ms, to_ms)``: it starts at the last keyframe at or
    before ``from_ms`` and ends with the last frame before ``to_ms``."""
    _check_range(from_ms, to_ms)
    segs, sources = _sources(s, root, camera_id, from_ms, to_ms)
    gaps = [(g.start_ms, g.end_ms, g.cause) for g in gaps_between(s, camera_id, from_ms, to_ms)]
    key = hashlib.sha256(repr((camera_id, from_ms, to_ms, [x.sha256 for x in segs])).encode())
    export_dir.mkdir(parents=True, exist_ok=True)
    _prune(export_dir)
    out = export_dir / f"{key.hexdigest()[:32]}.mp4"
    if out.exists():
        return Export(out, None, gaps)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    try:
        info = export_range(sources, from_ms, to_ms, str(tmp), creation_time=from_ms // 1000)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return Export(out, info, gaps)


def _prune(export_dir: Path) -> None:
    cutoff = time.time() - EXPORT_TTL_S
    for p in export_dir.glob("*.mp4"):
        try:
            if p.stat().st_mtime < cutoff:
                p.unlink()
        except FileNotFoundError:
            pass


def snapshot(s: Session, root: Path, camera_id: int, at_ms: int, *, quality: int = 3,
             masks=()) -> bytes:
    """JPEG of the frame shown at ``at_ms`` (decoded from the keyframe before it). ``masks``
    (privacy polygons, Q9.2/N13.1) are painted opaque black into the picture before encoding:
    a snapshot is a still copy, so it carries its masks in its pixels."""
    segs = segments_between(s, camera_id, at_ms, at_ms + 1)
    if not segs:
        raise NotFound("no footage of this camera at that time")
    seg = segs[0]
    offset_s = (at_ms - seg.start_ms) / 1000.0
    with av.open(str(root / seg.path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frame = None
        for f in container.decode(stream):
            if f.time is not None and f.time > offset_s + 1e-3 and frame is not None:
                break
            frame = f
        if frame is None:
            raise NotFound("the segment at that time holds no decodable frame")
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height = frame.width, frame.height
    enc.pix_fmt = "yuvj420p"
    enc.time_base = Fraction(1, 25)
    enc.options = {"qmin": str(quality), "qmax": str(quality)}
    picture = frame.reformat(format="yuvj420p")
    if masks:
        picture = _masked(picture, masks)
    out = io.BytesIO()
    for pkt in enc.encode(picture):
        out.write(bytes(pkt))
    for pkt in enc.encode(None):
        out.write(bytes(pkt))
    return out.getvalue()


def _masked(picture: av.VideoFrame, masks) -> av.VideoFrame:
    """``picture`` (yuvj420p) with the masked pixels black, grown like burned-in exports."""
    from viis.media.burn import mask_bitmap

    w, h = picture.width, picture.height  # 4:2:0 pictures have even sizes
    planes = picture.to_ndarray()  # (h * 3 / 2, w): Y, then the U and V quarter planes
    cover = mask_bitmap(masks, w, h)
    planes[:h][cover] = 0
    chroma = cover.reshape(h // 2, 2, w // 2, 2).any(axis=(1, 3))
    u = planes[h: h + h // 4].reshape(h // 2, w // 2)
    v = planes[h + h // 4: h + h // 2].reshape(h // 2, w // 2)
    u[chroma] = 128
    v[chroma] = 128
    out = av.VideoFrame.from_ndarray(planes, format="yuvj420p")
    out.pts, out.time_base = picture.pts, picture.time_base
    return out


def mse(s: Session, root: Path, camera_id: int, from_ms: int, to_ms: int) -> Iterator[bytes]:
    """Fragmented MP4 (init + fragments, decode times continuous) for MediaSource."""
    _check_range(from_ms, to_ms)
    _segs, sources = _sources(s, root, camera_id, from_ms, to_ms)
    for _kind, data in iter_mse(sources, from_ms, to_ms):
        yield data


MAX_WINDOW_MS = 5 * 60_000


@dataclass
class MseWindow:
    """Fragmented MP4 of a window of a playback session: ``origin_ms`` is the wall time (UTC
    ms) of media time 0 of these bytes, i.e. of the keyframe at or before the window's start,
    so the player can seek exactly to the asked time and place windows on one timeline."""

    origin_ms: float
    from_ms: int
    to_ms: int
    parts: list[bytes]


def mse_window(s: Session, root: Path, camera_id: int, from_ms: int, to_ms: int) -> MseWindow | None:
    """The window ``[from_ms, to_ms)`` for MediaSource, or None when nothing is recorded there
    (the caller then asks :func:`next_recorded_ms`). Windows are short (at most
    ``MAX_WINDOW_MS``): a player asks for the next one as it plays, at any speed."""
    if to_ms <= from_ms:
        raise ValidationFailed("the window must end after it starts", field="to")
    if to_ms - from_ms > MAX_WINDOW_MS:
        raise ValidationFailed(f"a playback window covers at most {MAX_WINDOW_MS // 1000} s",
                               field="to")
    segs = segments_between(s, camera_id, from_ms, to_ms)
    if not segs:
        return None
    origin: list[float] = []
    try:
        parts = [data for _kind, data in iter_mse([(root / x.path, x.start_ms) for x in segs],
                                                  from_ms, to_ms, on_origin=origin.append)]
    except ExportError:
        return None
    if not origin or not parts:
        return None
    return MseWindow(origin[0], from_ms, to_ms, parts)


def next_recorded_ms(s: Session, camera_id: int, after_ms: int, before_ms: int) -> int | None:
    """Start of the first footage after ``after_ms`` (and before ``before_ms``): where a player
    jumps to across a gap."""
    segs = segments_between(s, camera_id, after_ms, before_ms)
    starts = [x.start_ms for x in segs if x.start_ms > after_ms]
    return min(starts) if starts else None
