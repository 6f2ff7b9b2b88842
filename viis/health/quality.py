"""Storage quality (Q19.6: stored video meets the national standards): resolution, frame rate
and bit rate of what was *actually recorded* (the segment index, not the camera's claimed
profile), checked against the minimums of the rule packs in force (``storage_min_width``,
``storage_min_height``, ``storage_min_fps``; the packs set no bit rate, so that minimum is the
setting ``health.storage_min_bitrate_bps``, 0 = not checked). A camera below a minimum gets
the fault ``storage_quality`` (warning, so a ticket opens); it clears when the recent
recordings meet them again.

Figures over the window: the smallest width and height recorded (one low-resolution segment
is already footage below the standard), the duration-weighted frame rate and the bit rate
(bytes x 8 / duration) of the live segments.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from viis.core.clock import SHANGHAI, ms_to_datetime
from viis.health.faults import clear_fault, raise_fault
from viis.media.models import Segment

KIND = "storage_quality"
SEVERITY = "warning"


@dataclass(frozen=True)
class Minimum:
    value: float
    source: str  # "storage_min_width, default, Q19.6, qingdao-2020" or "setting ..."


def minimums(app, now_ms: int, min_bitrate_bps: int) -> dict[str, Minimum]:
    """The minimums in force on the (Asia/Shanghai) day of ``now_ms``."""
    day = ms_to_datetime(now_ms).astimezone(SHANGHAI).date()
    out: dict[str, Minimum] = {}
    for key, name in (("width", "storage_min_width"), ("height", "storage_min_height"),
                      ("fps", "storage_min_fps")):
        lim = app.rules.limit(name, day)
        if lim is not None:
            out[key] = Minimum(float(lim.value),
                               f"{name}, {lim.source}, {', '.join(lim.articles)}, {lim.pack}")
    if min_bitrate_bps > 0:
        out["bitrate_bps"] = Minimum(float(min_bitrate_bps),
                                     "health.storage_min_bitrate_bps (VIIS setting; no rule "
                                     "pack sets a bit rate)")
    return out


def recorded(s: Session, camera_id: int, since_ms: int, until_ms: int) -> dict | None:
    """What was recorded for the camera in [since, until): None when nothing was."""
    segs = list(s.scalars(select(Segment).where(
        Segment.camera_id == camera_id, Segment.removed_ms.is_(None),
        Segment.end_ms > since_ms, Segment.start_ms < until_ms)))
    segs = [x for x in segs if x.duration_ms > 0]
    if not segs:
        return None
    dur = sum(x.duration_ms for x in segs)
    return {"segments": len(segs), "seconds": dur / 1000,
            "width": min(x.width for x in segs), "height": min(x.height for x in segs),
            "fps": sum(x.fps * x.duration_ms for x in segs) / dur,
            "bitrate_bps": sum(x.bytes for x in segs) * 8000 / dur,
            "codecs": sorted({x.video_codec for x in segs})}


def judge(rec: dict, mins: dict[str, Minimum]) -> list[str]:
    """The shortfalls, one plain sentence each."""
    unit = {"width": "px", "height": "px", "fps": "fps", "bitrate_bps": "bit/s"}
    out = []
    for key, m in mins.items():
        if rec[key] < m.value:
            out.append(f"{key} {rec[key]:.4g} {unit[key]} below the minimum {m.value:g} "
                       f"({m.source})")
    return out


def check_storage_quality(app, now_ms: int, *, window_s: float = 3600.0,
                          min_bitrate_bps: int = 256_000,
                          mins: dict[str, Minimum] | None = None) -> dict[int, dict]:
    """Check every camera's recent recordings; raise or clear ``storage_quality``. Returns
    per camera the figures, the minimums and the shortfalls."""
    mins = minimums(app, now_ms, min_bitrate_bps) if mins is None else mins
    since = now_ms - int(window_s * 1000)
    out: dict[int, dict] = {}
    with app.db.session() as s:
        for cam in app.cameras.list(s):
            rec = recorded(s, cam.id, since, now_ms)
            if rec is None:
                continue  # nothing recorded: signal loss and the recorder say why
            short = judge(rec, mins)
            out[cam.id] = {"recorded": rec, "shortfalls": short,
                           "minimums": {k: m.value for k, m in mins.items()}}
            if short:
                raise_fault(s, KIND, SEVERITY,
                            f"{KIND}: recorded {rec['width']}x{rec['height']} at "
                            f"{rec['fps']:.1f} fps, {rec['bitrate_bps'] / 1000:.0f} kbit/s over "
                            f"{rec['seconds']:.0f} s: " + "; ".join(short) + " (Q19.6)",
                            now_ms, camera_id=cam.id)
            else:
                clear_fault(s, KIND, now_ms, camera_id=cam.id)
    return out
