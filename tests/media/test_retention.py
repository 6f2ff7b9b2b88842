"""Retention and holds with a driven clock (Q19.7, Q20.3, N17.1; invariant 1): expired
unheld segments are removed, held and in-retention ones never are, and every removal stays
on record so the chain still verifies."""

import pytest
from sqlalchemy import select

from viis.core.clock import DAY_MS
from viis.core.errors import ValidationFailed
from viis.integrity.verify import Verifier
from viis.media.models import Segment
from viis.media.retention import (
    finish_removals,
    over_retention,
    place_hold,
    release_hold,
    sweep,
)
from viis.registry.service import CameraService

T0 = 1_767_225_600_000


@pytest.fixture
def cam_with_week(footage, clock):
    """A camera with one segment per day for 7 days, starting at T0."""
    clock.set_wall_ms(T0)
    cam = footage.camera(retention_days=30)
    for d in range(7):
        footage.segment(cam, T0 + d * DAY_MS)
        if d < 6:
            footage.gap(cam, T0 + d * DAY_MS + 60_000, T0 + (d + 1) * DAY_MS, "disabled")
    return cam


def stored(db):
    with db.session() as s:
        return [r.start_ms for r in s.scalars(select(Segment).where(Segment.removed_ms.is_(None))
                                               .order_by(Segment.start_ms))]


def test_nothing_inside_retention_is_removed(footage, cam_with_week, clock):
    clock.set_wall_ms(T0 + 30 * DAY_MS)  # first segment ends 60 s after T0: 30 days not over
    r = sweep(footage.db, footage.store, clock)
    assert r.removed == 0 and len(stored(footage.db)) == 7


def test_expired_unheld_segments_are_removed_and_the_chain_still_verifies(footage, cam_with_week, clock):
    clock.set_wall_ms(T0 + 32 * DAY_MS + 120_000)  # days 0, 1 and 2 have expired
    r = sweep(footage.db, footage.store, clock)
    assert r.removed == 3
    assert stored(footage.db) == [T0 + d * DAY_MS for d in range(3, 7)]
    assert len(list(footage.store.rglob("*.mp4"))) == 4
    with footage.db.session() as s:
        assert Verifier(s, footage.store, deep=True).run().ok


def test_held_segments_are_kept_past_retention_until_the_hold_is_released(footage, cam_with_week, clock):
    clock.set_wall_ms(T0)
    with footage.db.session() as s:
        hold = place_hold(s, camera_id=cam_with_week.id, start_ms=T0 + DAY_MS, end_ms=T0 + DAY_MS + 1000,
                          reason="case 2026-117", owner="investigator Li", now_ms=clock.wall_ms())
        hid = hold.id
    clock.set_wall_ms(T0 + 40 * DAY_MS)
    r = sweep(footage.db, footage.store, clock)
    assert r.kept_for_holds == 1
    assert stored(footage.db) == [T0 + DAY_MS]
    with footage.db.session() as s:
        release_hold(s, hid, by="investigator Li", now_ms=clock.wall_ms())
    assert sweep(footage.db, footage.store, clock).removed == 1
    assert stored(footage.db) == []
    with footage.db.session() as s:
        assert Verifier(s, footage.store).run().ok


def test_a_hold_on_all_cameras_protects_every_camera(footage, cam_with_week, clock):
    with footage.db.session() as s:
        place_hold(s, camera_id=None, start_ms=T0, end_ms=T0 + 7 * DAY_MS, reason="drill",
                   owner="bureau", now_ms=clock.wall_ms())
    clock.set_wall_ms(T0 + 100 * DAY_MS)
    assert sweep(footage.db, footage.store, clock).removed == 0


def test_lowering_retention_never_shortens_what_was_recorded_and_raising_extends_it(
        footage, cam_with_week, clock, rules):
    svc = CameraService(rules, clock)
    with footage.db.session() as s:
        svc.update(s, cam_with_week.id, {"retention_days": 60})
    clock.set_wall_ms(T0 + 45 * DAY_MS)
    assert sweep(footage.db, footage.store, clock).removed == 0
    with footage.db.session() as s:
        svc.update(s, cam_with_week.id, {"retention_days": 30})
    # Recorded under 30 days, raised to 60, lowered to 30 again: the 30 days have passed for
    # days 0..6 at day 45, so they go now; a lowering can never reach below the floor.
    assert sweep(footage.db, footage.store, clock).removed == 7


def test_a_removal_inside_retention_is_flagged_as_unlawful(footage, cam_with_week, clock):
    with footage.db.session() as s:
        seg = s.scalar(select(Segment).where(Segment.seq == 1))
        seg.removed_ms, seg.removed_reason = T0 + DAY_MS, "someone's script"
        (footage.store / seg.path).unlink()
    with footage.db.session() as s:
        r = Verifier(s, footage.store).run()
    assert [(p.kind, p.seq) for p in r.problems] == [("unlawful_removal", 1)]


def test_interrupted_removal_is_finished_at_start_up(footage, cam_with_week, clock):
    with footage.db.session() as s:  # step 1 done, crash before step 2
        seg = s.scalar(select(Segment).where(Segment.seq == 1))
        seg.removed_ms, seg.removed_reason = T0 + 40 * DAY_MS, "retention expired"
        path = footage.store / seg.path
    assert path.exists()
    assert finish_removals(footage.db, footage.store) == 1
    assert not path.exists()


def test_footage_kept_past_the_national_default_without_basis_is_reported(footage, cam_with_week, clock, rules):
    with footage.db.session() as s:
        CameraService(rules, clock).update(s, cam_with_week.id, {"retention_days": 90})
    clock.set_wall_ms(T0 + 33 * DAY_MS)
    with footage.db.session() as s:
        rep = over_retention(s, rules, clock.wall_ms())
    assert len(rep) == 1 and rep[0].segments == 3 and rep[0].limit_days == 30
    with footage.db.session() as s:
        s.get(type(cam_with_week), cam_with_week.id).retention_basis = "bank: 90 days by PBoC rule"
    with footage.db.session() as s:
        assert over_retention(s, rules, clock.wall_ms()) == []


@pytest.mark.parametrize("kw,needle", [
    ({"start_ms": T0, "end_ms": T0}, "end after"),
    ({"reason": " "}, "reason"),
    ({"owner": ""}, "owner"),
    ({"reason": "x" * 5000}, "too long"),
])
def test_bad_hold_input_is_refused(footage, cam_with_week, clock, kw, needle):
    args = dict(camera_id=cam_with_week.id, start_ms=T0, end_ms=T0 + 1000, reason="r", owner="o",
                now_ms=clock.wall_ms())
    args.update(kw)
    with footage.db.session() as s, pytest.raises(ValidationFailed, match=needle):
        place_hold(s, **args)
