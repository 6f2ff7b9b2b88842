"""Timeline of a camera: recorded ranges and gaps with their causes, for a period.

Consecutive segments that touch (within ``JOIN_MS``) are merged into one range, so a day
is a handful of ranges, not 1,440 segments. Gaps keep their cause, for the console's hover.

Zoom: the console asks for a period with a ``resolution_ms`` (what one pixel of its canvas
covers). Ranges closer than that are merged and the gaps between them, too short to see, are
counted on the range (``hidden_gaps`` and their ``hidden_causes``) rather than listed, so a
day at one pixel per minute is still a few hundred items at most. Whatever the caller asks,
the answer holds at most ``MAX_ITEMS`` ranges plus gaps: when a period would need more, the
resolution is doubled until it fits, and the answer says which resolution it used. Times are
UTC milliseconds (invariant 5); the console shows them in Asia/Shanghai.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from viis.media.index import gaps_between, segments_between

JOIN_MS = 1500
MAX_SPAN_MS = 32 * 86_400_000
MAX_ITEMS = 2000


@dataclass
class Range:
    start_ms: int
    end_ms: int
    segments: int
    bytes: int
    browser_playable: bool
    hidden_gaps: int = 0
    hidden_causes: dict[str, int] = field(default_factory=dict)


@dataclass
class GapView:
    start_ms: int
    end_ms: int
    cause: str
    detail: str


def _merge(segs, gaps: list[GapView], join_ms: int) -> tuple[list[Range], list[GapView]]:
    ranges: list[Range] = []
    for seg in segs:
        last = ranges[-1] if ranges else None
        if last and seg.start_ms <= last.end_ms + join_ms and last.browser_playable == seg.browser_playable:
            last.end_ms = max(last.end_ms, seg.end_ms)
            last.segments += 1
            last.bytes += seg.bytes
        else:
            ranges.append(Range(seg.start_ms, seg.end_ms, 1, seg.bytes, seg.browser_playable))
    if join_ms <= JOIN_MS:
        return ranges, gaps
    shown: list[GapView] = []
    hidden: list[Counter] = [Counter() for _ in ranges]
    i = 0
    for g in gaps:
        # the range that swallowed this gap, if any
        while i < len(ranges) and ranges[i].end_ms < g.end_ms:
            i += 1
        if i < len(ranges) and ranges[i].start_ms <= g.start_ms and g.end_ms <= ranges[i].end_ms:
            hidden[i][g.cause] += 1
            continue
        if shown and g.start_ms <= shown[-1].end_ms + join_ms and g.cause == shown[-1].cause:
            shown[-1].end_ms = max(shown[-1].end_ms, g.end_ms)  # one cause, one visible gap
            continue
        shown.append(GapView(g.start_ms, g.end_ms, g.cause, g.detail))
    for r, c in zip(ranges, hidden, strict=True):
        r.hidden_gaps = sum(c.values())
        r.hidden_causes = dict(c)
    return ranges, shown


def timeline(s: Session, camera_id: int, from_ms: int, to_ms: int, *,
             resolution_ms: int | None = None, max_items: int = MAX_ITEMS) -> dict:
    if to_ms <= from_ms:
        raise ValueError("the period must end after it starts")
    if to_ms - from_ms > MAX_SPAN_MS:
        raise ValueError("a timeline covers at most 32 days; ask for a shorter period")
    if resolution_ms is not None and not 1 <= resolution_ms <= to_ms - from_ms:
        raise ValueError("resolution_ms must be between 1 and the length of the period")
    segs = segments_between(s, camera_id, from_ms, to_ms)
    gaps = [GapView(g.start_ms, g.end_ms, g.cause, g.detail)
            for g in gaps_between(s, camera_id, from_ms, to_ms)]
    join = max(JOIN_MS, resolution_ms or 0)
    while True:
        ranges, shown = _merge(segs, gaps, join)
        if len(ranges) + len(shown) <= max_items or join >= to_ms - from_ms:
            break
        join *= 2
    # from the segments themselves: merged ranges at coarse zoom span their short gaps
    recorded = sum(max(0, min(x.end_ms, to_ms) - max(x.start_ms, from_ms)) for x in segs)
    return {"camera_id": camera_id, "from_ms": from_ms, "to_ms": to_ms,
            "recorded_ms": recorded, "resolution_ms": join,
            "ranges": [r.__dict__ for r in ranges], "gaps": [g.__dict__ for g in shown]}
