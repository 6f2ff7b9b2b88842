"""Timeline of a camera: recorded ranges and gaps with their causes, for a period.

Consecutive segments that touch (within ``JOIN_MS``) are merged into one range, so a day
is a handful of ranges, not 1,440 segments. Gaps keep their cause, for the console's hover.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from viis.media.index import gaps_between, segments_between

JOIN_MS = 1500
MAX_SPAN_MS = 32 * 86_400_000


@dataclass
class Range:
    start_ms: int
    end_ms: int
    segments: int
    bytes: int
    browser_playable: bool


@dataclass
class GapView:
    start_ms: int
    end_ms: int
    cause: str
    detail: str


def timeline(s: Session, camera_id: int, from_ms: int, to_ms: int) -> dict:
    if to_ms <= from_ms:
        raise ValueError("the period must end after it starts")
    if to_ms - from_ms > MAX_SPAN_MS:
        raise ValueError("a timeline covers at most 32 days; ask for a shorter period")
    ranges: list[Range] = []
    for seg in segments_between(s, camera_id, from_ms, to_ms):
        last = ranges[-1] if ranges else None
        if last and seg.start_ms <= last.end_ms + JOIN_MS and last.browser_playable == seg.browser_playable:
            last.end_ms = max(last.end_ms, seg.end_ms)
            last.segments += 1
            last.bytes += seg.bytes
        else:
            ranges.append(Range(seg.start_ms, seg.end_ms, 1, seg.bytes, seg.browser_playable))
    gaps = [GapView(g.start_ms, g.end_ms, g.cause, g.detail)
            for g in gaps_between(s, camera_id, from_ms, to_ms)]
    recorded = sum(min(r.end_ms, to_ms) - max(r.start_ms, from_ms) for r in ranges)
    return {"camera_id": camera_id, "from_ms": from_ms, "to_ms": to_ms,
            "recorded_ms": recorded,
            "ranges": [r.__dict__ for r in ranges], "gaps": [g.__dict__ for g in gaps]}
