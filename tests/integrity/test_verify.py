"""The verifier names each removed, altered, inserted or reordered piece of footage
(Q20.3, N15.1, N23.1; invariant 2)."""

from pathlib import Path

from sqlalchemy import delete, select, update

from viis.integrity.verify import Verifier
from viis.media.models import Gap, Segment

T0 = 1_767_225_600_000


def record(footage, n=6, with_gap_after=None):
    cam = footage.camera()
    t = T0
    for i in range(n):
        footage.segment(cam, t)
        t += 60_000
        if with_gap_after == i:
            footage.gap(cam, t, t + 30_000, "unreachable")
            t += 30_000
    return cam


def verify(footage, deep=False, **kw):
    with footage.db.session() as s:
        return Verifier(s, footage.store, deep=deep).run(**kw)


def kinds(report):
    return sorted((p.kind, p.seq) for p in report.problems)


def test_untouched_footage_verifies_clean_fast_and_deep(footage):
    record(footage, with_gap_after=2)
    fast, deep = verify(footage), verify(footage, deep=True)
    assert fast.ok and deep.ok, (fast.problems, deep.problems)
    assert deep.links == 7 and deep.files_checked == 6 and deep.bytes_hashed == 6 * 2048


def _path(footage, seq) -> Path:
    with footage.db.session() as s:
        return footage.store / s.scalar(select(Segment.path).where(Segment.seq == seq))


def test_flipped_byte_is_reported_as_altered_file_by_deep_verify(footage):
    record(footage)
    p = _path(footage, 4)
    p.chmod(0o644)
    data = bytearray(p.read_bytes())
    data[100] ^= 0x01
    p.write_bytes(bytes(data))
    assert verify(footage).ok  # same size: only re-hashing can see it
    assert kinds(verify(footage, deep=True)) == [("altered_file", 4)]


def test_deleted_file_is_reported_as_missing(footage):
    record(footage)
    _path(footage, 2).unlink()
    r = verify(footage)
    assert kinds(r) == [("missing_file", 2)]
    assert "is gone" in r.problems[0].message


def test_deleted_row_is_reported_as_missing_link_with_its_place(footage):
    record(footage)
    p = _path(footage, 3)
    with footage.db.session() as s:
        s.execute(delete(Segment).where(Segment.seq == 3))
    p.chmod(0o644)
    p.unlink()  # a careful vandal removes the file too
    r = verify(footage)
    assert kinds(r) == [("missing_link", 3)]
    assert "seq 3" in r.problems[0].message


def test_deleted_row_with_file_left_behind_also_reports_the_unindexed_file(footage):
    record(footage)
    with footage.db.session() as s:
        s.execute(delete(Segment).where(Segment.seq == 5))
    r = verify(footage)
    assert [p.kind for p in r.problems] == ["missing_link", "inserted"]


def test_inserted_forged_segment_is_reported(footage):
    cam = record(footage, n=3, with_gap_after=1)
    # A forger fills the gap with footage: a file and a row, with a hash computed by the
    # public algorithm, but it cannot link into the chain without rewriting every later link.
    import hashlib

    from viis.integrity.chain import link_hash, segment_fields

    with footage.db.session() as s:
        gap = s.scalar(select(Gap))
        data = b"forged" * 300
        rel = f"{cam.uid}/forged.mp4"
        (footage.store / rel).write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        seq = 99
        prev = gap.chain_hash
        h = link_hash(prev, segment_fields(cam.uid, seq, gap.start_ms, gap.end_ms, 750, len(data), sha))
        s.add(Segment(camera_id=cam.id, seq=seq, start_ms=gap.start_ms, end_ms=gap.end_ms,
                      duration_ms=gap.end_ms - gap.start_ms, frames=750, bytes=len(data),
                      video_codec="h264", width=640, height=360, fps=25.0, bitrate_bps=1,
                      sha256=sha, path=rel, prev_hash=prev, chain_hash=h, created_ms=0,
                      retain_until_ms=gap.end_ms + 30 * 86_400_000))
    r = verify(footage)
    assert r.problems and all(p.kind in {"inserted", "missing_link", "reordered"} for p in r.problems)
    assert any(p.kind == "inserted" and p.seq == 99 for p in r.problems)


def test_two_swapped_files_are_each_named_by_deep_verify(footage):
    record(footage)
    a, b = _path(footage, 2), _path(footage, 3)
    da, db_ = a.read_bytes(), b.read_bytes()
    for p in (a, b):
        p.chmod(0o644)
    a.write_bytes(db_)
    b.write_bytes(da)
    r = verify(footage, deep=True)
    assert kinds(r) == [("swapped_file", 2), ("swapped_file", 3)]
    assert "content of segment seq 3" in r.problems[0].message


def test_two_swapped_rows_are_reported_as_reordered(footage):
    record(footage)
    with footage.db.session() as s:
        a = s.scalar(select(Segment).where(Segment.seq == 2))
        b = s.scalar(select(Segment).where(Segment.seq == 3))
        ta, tb = (a.start_ms, a.end_ms), (b.start_ms, b.end_ms)
        s.execute(update(Segment).where(Segment.id == a.id).values(start_ms=tb[0], end_ms=tb[1]))
        s.execute(update(Segment).where(Segment.id == b.id).values(start_ms=ta[0], end_ms=ta[1]))
    r = verify(footage)
    ks = {p.kind for p in r.problems}
    assert "reordered" in ks and "altered_row" in ks
    assert {p.seq for p in r.problems if p.kind == "altered_row"} == {2, 3}


def test_edited_times_are_reported_as_altered_row(footage):
    record(footage)
    with footage.db.session() as s:
        s.execute(update(Segment).where(Segment.seq == 4).values(end_ms=Segment.end_ms - 10_000))
    assert ("altered_row", 4) in kinds(verify(footage))


def test_truncated_chain_tail_is_reported_against_the_head(footage):
    record(footage)
    with footage.db.session() as s:
        s.execute(delete(Segment).where(Segment.seq == 6))
    _path_gone = [p for p in footage.store.rglob("*.mp4")]
    r = verify(footage)
    assert ("missing_link", 6) in kinds(r)


def test_hole_without_gap_row_is_unexplained(footage):
    cam = footage.camera()
    footage.segment(cam, T0)
    footage.segment(cam, T0 + 120_000)  # one minute nobody accounts for
    r = verify(footage)
    assert kinds(r) == [("unexplained_hole", 2)]


def test_range_limits_the_findings_to_that_time(footage):
    record(footage)
    _path(footage, 1).unlink()
    assert verify(footage, from_ms=T0 + 180_000).ok
    assert not verify(footage, to_ms=T0 + 30_000).ok
