"""The verifier: proves that nothing was removed, altered, reordered or inserted (Q20.3,
N15.1, N23.1), or names each place where something was.

Fast mode checks the chain links (hashes, sequence, head), the timeline (no unexplained
hole, no overlap), that every stored segment's file exists with its size, that no file sits
in the store without an index row, and that every removal was lawful (after retention, no
hold). Deep mode also re-hashes every file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from viis.core.clock import iso_utc
from viis.integrity.chain import gap_fields, genesis, link_hash, segment_fields
from viis.integrity.models import ChainHead
from viis.media.models import Gap, Hold, Segment
from viis.registry.models import Camera

# Consecutive links may overlap or leave a hole this small without a finding: timestamps of
# the first frame after a reconnect are measured, not computed.
TOLERANCE_MS = 1500

PROBLEM_KINDS = (
    "altered_row",       # a row's fields no longer match its own hash
    "altered_file",      # a file's SHA-256 differs from the one recorded (deep)
    "swapped_file",      # a file holds the content recorded for another segment (deep)
    "missing_file",      # a stored segment's file is gone
    "size_mismatch",     # a stored segment's file has another size than recorded
    "missing_link",      # one or more links (rows) of the chain are gone
    "reordered",         # links are out of order (sequence or time)
    "inserted",          # a link or file that the chain does not account for
    "unexplained_hole",  # time between two links that no gap explains
    "overlap",           # two links cover the same time
    "head_mismatch",     # the newest link is not the recorded chain head
    "unlawful_removal",  # a segment was removed inside its retention or under a hold
)


@dataclass
class Problem:
    kind: str
    camera: str
    message: str
    seq: int | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    path: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Report:
    cameras: int = 0
    links: int = 0
    files_checked: int = 0
    bytes_hashed: int = 0
    deep: bool = False
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {"ok": self.ok, "cameras": self.cameras, "links": self.links,
                "files_checked": self.files_checked, "bytes_hashed": self.bytes_hashed,
                "deep": self.deep, "problems": [p.as_dict() for p in self.problems]}


def _fields(camera: Camera, link: Segment | Gap) -> dict:
    if isinstance(link, Segment):
        return segment_fields(camera.uid, link.seq, link.start_ms, link.end_ms, link.frames,
                              link.bytes, link.sha256)
    return gap_fields(camera.uid, link.seq, link.start_ms, link.end_ms, link.cause)


def _label(link: Segment | Gap) -> str:
    kind = "segment" if isinstance(link, Segment) else f"gap ({link.cause})"
    return f"{kind} seq {link.seq} [{iso_utc(link.start_ms)} .. {iso_utc(link.end_ms)}]"


def sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


class Verifier:
    def __init__(self, session: Session, store_root: Path, *, deep: bool = False,
                 now_ms: int | None = None) -> None:
        self.s = session
        self.root = Path(store_root)
        self.deep = deep
        self.now_ms = now_ms
        self.report = Report(deep=deep)

    def _add(self, kind: str, cam: Camera, msg: str, link: Segment | Gap | None = None,
             **kw) -> None:
        if link is not None:
            kw.setdefault("seq", link.seq)
            kw.setdefault("start_ms", link.start_ms)
            kw.setdefault("end_ms", link.end_ms)
        self.report.problems.append(Problem(kind, cam.name, msg, **kw))

    def run(self, camera_ids: Iterable[int] | None = None, from_ms: int | None = None,
            to_ms: int | None = None) -> Report:
        q = select(Camera).order_by(Camera.id)
        if camera_ids is not None:
            q = q.where(Camera.id.in_(list(camera_ids)))
        for cam in self.s.scalars(q):
            self.report.cameras += 1
            self._camera(cam, from_ms, to_ms)
        return self.report

    # -- one camera ------------------------------------------------------------------
    def _camera(self, cam: Camera, from_ms: int | None, to_ms: int | None) -> None:
        segs = list(self.s.scalars(select(Segment).where(Segment.camera_id == cam.id)))
        gaps = list(self.s.scalars(select(Gap).where(Gap.camera_id == cam.id)))
        links: list[Segment | Gap] = sorted(segs + gaps, key=lambda r: (r.seq, isinstance(r, Gap)))
        in_range = self._range_filter(from_ms, to_ms)
        self.report.links += sum(1 for x in links if in_range(x))
        self._check_chain(cam, links, in_range)
        self._check_head(cam, links)
        by_sha = {s.sha256: s for s in segs}
        holds = list(self.s.scalars(select(Hold).where(
            (Hold.camera_id == cam.id) | Hold.camera_id.is_(None))))
        for seg in segs:
            if in_range(seg):
                self._check_segment_file(cam, seg, by_sha, holds)
        if from_ms is None and to_ms is None:
            self._check_unindexed(cam, segs)

    @staticmethod
    def _range_filter(from_ms: int | None, to_ms: int | None):
        def f(link: Segment | Gap) -> bool:
            if from_ms is not None and link.end_ms < from_ms:
                return False
            return not (to_ms is not None and link.start_ms > to_ms)
        return f

    def _check_chain(self, cam: Camera, links: list[Segment | Gap], in_range) -> None:
        prev: Segment | Gap | None = None
        prev_hash = genesis(cam.uid)
        prev_seq = 0
        for link in links:
            report = in_range(link) or (prev is not None and in_range(prev))
            recomputed = link_hash(link.prev_hash, _fields(cam, link))
            if recomputed != link.chain_hash and report:
                self._add("altered_row", cam,
                          f"{_label(link)}: its recorded fields do not match its hash "
                          "(times, size, checksum or cause were changed after recording)", link)
            if link.seq == prev_seq:
                if report:
                    self._add("inserted", cam, f"{_label(link)}: a second link with sequence "
                              f"{link.seq}; the chain accounts for only one", link)
                continue
            missing = link.seq > prev_seq + 1
            if missing:
                if report:
                    lo, hi = prev_seq + 1, link.seq - 1
                    span = f"seq {lo}" if lo == hi else f"seq {lo}..{hi}"
                    after = f"after {_label(prev)}" if prev else "at the start of the chain"
                    self._add("missing_link", cam,
                              f"{hi - lo + 1} link(s) missing ({span}) {after}, before {_label(link)}",
                              seq=lo, start_ms=prev.end_ms if prev else None, end_ms=link.start_ms)
            elif link.prev_hash != prev_hash and report:
                self._add("inserted", cam, f"{_label(link)} does not link to the link before it: "
                          "it was inserted or replaced", link)
            if prev is not None and report and not missing:  # a missing link explains a hole
                self._check_time(cam, prev, link)
            prev, prev_hash, prev_seq = link, link.chain_hash, link.seq

    def _check_time(self, cam: Camera, prev: Segment | Gap, link: Segment | Gap) -> None:
        if link.start_ms < prev.start_ms:
            self._add("reordered", cam, f"{_label(link)} starts before the earlier link "
                      f"{_label(prev)}: links were reordered", link)
        elif link.start_ms < prev.end_ms - TOLERANCE_MS:
            self._add("overlap", cam, f"{_label(link)} overlaps {_label(prev)} by "
                      f"{prev.end_ms - link.start_ms} ms", link)
        elif link.start_ms > prev.end_ms + TOLERANCE_MS:
            self._add("unexplained_hole", cam,
                      f"{link.start_ms - prev.end_ms} ms without footage or gap between "
                      f"{_label(prev)} and {_label(link)}",
                      start_ms=prev.end_ms, end_ms=link.start_ms, seq=link.seq)

    def _check_head(self, cam: Camera, links: list[Segment | Gap]) -> None:
        head = self.s.get(ChainHead, cam.id)
        last = links[-1] if links else None
        if head is None and last is None:
            return
        if head is None:
            self._add("head_mismatch", cam, "links exist but no chain head was recorded", last)
            return
        if last is None:
            self._add("missing_link", cam, f"the chain head names seq {head.seq} but no link exists",
                      seq=head.seq)
            return
        if last.seq > head.seq:
            for link in links:
                if link.seq > head.seq:
                    self._add("inserted", cam, f"{_label(link)} comes after the recorded chain "
                              f"head (seq {head.seq}): it was added outside the recorder", link)
        elif last.seq < head.seq:
            self._add("missing_link", cam, f"the newest links (seq {last.seq + 1}..{head.seq}) "
                      f"are gone; the chain head names seq {head.seq}", seq=last.seq + 1,
                      start_ms=last.end_ms)
        elif last.chain_hash != head.chain_hash:
            self._add("head_mismatch", cam, f"{_label(last)} has another hash than the recorded "
                      "chain head", last)

    def _check_segment_file(self, cam: Camera, seg: Segment, by_sha: dict[str, Segment],
                            holds: list[Hold]) -> None:
        path = self.root / seg.path
        if seg.removed_ms is not None:
            self._check_removal(cam, seg, holds)
            return
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            self._add("missing_file", cam, f"{_label(seg)}: file {seg.path} is gone", seg,
                      path=seg.path)
            return
        self.report.files_checked += 1
        if size != seg.bytes and not self.deep:
            self._add("size_mismatch", cam, f"{_label(seg)}: file is {size} bytes, "
                      f"{seg.bytes} were recorded", seg, path=seg.path)
            return
        if self.deep:
            digest, n = sha256_file(path)
            self.report.bytes_hashed += n
            if digest != seg.sha256:
                other = by_sha.get(digest)
                if other is not None and other.seq != seg.seq:
                    self._add("swapped_file", cam, f"{_label(seg)}: file {seg.path} holds the "
                              f"content of {_label(other)}", seg, path=seg.path)
                else:
                    self._add("altered_file", cam, f"{_label(seg)}: file {seg.path} was altered "
                              f"(SHA-256 {digest[:16]}…, recorded {seg.sha256[:16]}…)", seg,
                              path=seg.path)

    def _check_removal(self, cam: Camera, seg: Segment, holds: list[Hold]) -> None:
        removed = seg.removed_ms or 0
        if removed < seg.retain_until_ms:
            self._add("unlawful_removal", cam, f"{_label(seg)} was removed at {iso_utc(removed)}, "
                      f"inside its retention (until {iso_utc(seg.retain_until_ms)})", seg)
            return
        for h in holds:
            active = h.created_ms <= removed and (h.released_ms is None or h.released_ms > removed)
            if active and h.start_ms < seg.end_ms and h.end_ms > seg.start_ms:
                self._add("unlawful_removal", cam, f"{_label(seg)} was removed at "
                          f"{iso_utc(removed)} while hold {h.id} ({h.reason}) covered it", seg)
                return

    def _check_unindexed(self, cam: Camera, segs: list[Segment]) -> None:
        cam_dir = self.root / cam.uid
        if not cam_dir.is_dir():
            return
        known = {s.path for s in segs}
        for dirpath, _dirs, files in os.walk(cam_dir):
            for name in files:
                if name.endswith(".tmp"):
                    continue  # being written; recovered at the next start if the writer died
                rel = os.path.relpath(os.path.join(dirpath, name), self.root)
                if rel not in known:
                    self._add("inserted", cam, f"file {rel} is in the store but in no index row: "
                              "it was put there outside the recorder", path=rel)
