"""The recording index: appends segments and gaps as links of the camera's hash chain, and
answers read-side questions (timeline, segments covering a range).

Appending is the only way rows enter ``segments`` and ``gaps``. A link is appended in one
transaction with the chain head update; the head row is locked (``FOR UPDATE`` on
PostgreSQL, the database write lock on SQLite) so two writers cannot fork a chain.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from viis.integrity.chain import gap_fields, genesis, link_hash, segment_fields
from viis.integrity.models import ChainHead
from viis.media.models import Gap, Segment
from viis.registry.models import Camera

GAP_CAUSES = (
    "unreachable",      # the camera could not be reached or refused us
    "stalled",          # connected, but no packets came
    "stream_error",     # the stream broke (protocol error, lost connection)
    "recorder_restart",  # the recorder was stopped cleanly and started again
    "crash_recovery",   # the recorder died; the unflushed tail of the open segment is lost
    "disk_full",        # recording stopped to protect in-retention footage (invariant 1)
    "disabled",         # an administrator disabled the camera
    "clock_adjust",     # the camera's media clock drifted from the server's; re-anchored
    "injected",         # a test or drill injected a fault
)


@dataclass
class SegmentRecord:
    """What the recorder knows of a closed segment file."""

    start_ms: int
    end_ms: int
    frames: int
    nbytes: int
    sha256: str
    path: str  # relative to the segment store root
    video_codec: str
    width: int
    height: int
    fps: float
    audio_codec: str | None = None
    clock_offset_ms: int | None = None
    recovered: bool = False
    browser_playable: bool = True


def _head(s: Session, camera: Camera) -> tuple[int, str]:
    q = select(ChainHead).where(ChainHead.camera_id == camera.id)
    if s.bind is not None and s.bind.dialect.name == "postgresql":
        q = q.with_for_update()
    head = s.scalar(q)
    if head is None:
        return 0, genesis(camera.uid)
    return head.seq, head.chain_hash


def _set_head(s: Session, camera: Camera, seq: int, h: str, now_ms: int) -> None:
    head = s.get(ChainHead, camera.id)
    if head is None:
        s.add(ChainHead(camera_id=camera.id, seq=seq, chain_hash=h, updated_ms=now_ms))
    else:
        head.seq, head.chain_hash, head.updated_ms = seq, h, now_ms


def append_segment(s: Session, camera: Camera, rec: SegmentRecord, now_ms: int) -> Segment:
    if rec.end_ms < rec.start_ms:
        raise ValueError(f"segment ends before it starts ({rec.start_ms}..{rec.end_ms})")
    seq, prev = _head(s, camera)
    seq += 1
    h = link_hash(prev, segment_fields(camera.uid, seq, rec.start_ms, rec.end_ms, rec.frames,
                                       rec.nbytes, rec.sha256))
    dur = rec.end_ms - rec.start_ms
    row = Segment(
        camera_id=camera.id, seq=seq, start_ms=rec.start_ms, end_ms=rec.end_ms, duration_ms=dur,
        frames=rec.frames, bytes=rec.nbytes, video_codec=rec.video_codec, width=rec.width,
        height=rec.height, fps=rec.fps, bitrate_bps=int(rec.nbytes * 8000 / dur) if dur else 0,
        audio_codec=rec.audio_codec, clock_offset_ms=rec.clock_offset_ms, sha256=rec.sha256,
        path=rec.path, prev_hash=prev, chain_hash=h, recovered=rec.recovered,
        browser_playable=rec.browser_playable, created_ms=now_ms,
        retain_until_ms=rec.end_ms + camera.retention_days * 86_400_000,
    )
    s.add(row)
    _set_head(s, camera, seq, h, now_ms)
    s.flush()
    return row


def append_gap(s: Session, camera: Camera, start_ms: int, end_ms: int, cause: str,
               detail: str, now_ms: int) -> Gap:
    if cause not in GAP_CAUSES:
        raise ValueError(f"unknown gap cause {cause!r}")
    if end_ms < start_ms:
        raise ValueError(f"gap ends before it starts ({start_ms}..{end_ms})")
    seq, prev = _head(s, camera)
    seq += 1
    h = link_hash(prev, gap_fields(camera.uid, seq, start_ms, end_ms, cause))
    row = Gap(camera_id=camera.id, seq=seq, start_ms=start_ms, end_ms=end_ms, cause=cause,
              detail=detail[:2000], prev_hash=prev, chain_hash=h, created_ms=now_ms)
    s.add(row)
    _set_head(s, camera, seq, h, now_ms)
    s.flush()
    return row


def last_end_ms(s: Session, camera_id: int) -> int | None:
    """End of the newest link (segment or gap) of a camera."""
    a = s.scalar(select(Segment.end_ms).where(Segment.camera_id == camera_id)
                 .order_by(Segment.seq.desc()).limit(1))
    b = s.scalar(select(Gap.end_ms).where(Gap.camera_id == camera_id)
                 .order_by(Gap.seq.desc()).limit(1))
    vals = [v for v in (a, b) if v is not None]
    return max(vals) if vals else None


def segments_between(s: Session, camera_id: int, from_ms: int, to_ms: int,
                     *, include_removed: bool = False) -> list[Segment]:
    q = select(Segment).where(
        Segment.camera_id == camera_id, Segment.end_ms > from_ms, Segment.start_ms < to_ms,
    ).order_by(Segment.start_ms)
    if not include_removed:
        q = q.where(Segment.removed_ms.is_(None))
    return list(s.scalars(q))


def gaps_between(s: Session, camera_id: int, from_ms: int, to_ms: int) -> list[Gap]:
    return list(s.scalars(select(Gap).where(
        Gap.camera_id == camera_id,
        or_(and_(Gap.end_ms > from_ms, Gap.start_ms < to_ms),
            and_(Gap.start_ms == Gap.end_ms, Gap.start_ms >= from_ms, Gap.start_ms < to_ms)),
    ).order_by(Gap.start_ms)))
