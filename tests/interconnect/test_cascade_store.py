"""Upper platforms and share lists (Q13.1: graded, permissioned interfaces level by level;
Q12.1/N12.1: GB/T 28181 IDs), on SQLite and PostgreSQL."""

import pytest

from tests.interconnect.cascade_helpers import (
    CH,
    LOCAL,
    UPPER,
    add_camera,
    add_upper,
    app_on,
    share,
)
from viis.core.errors import ValidationFailed
from viis.interconnect.gb28181 import cascade_store as store


def test_upper_platform_round_trip_and_password_never_in_view_or_audit(db, clock):
    app = app_on(db, clock)
    u = add_upper(app, 5060, password="s3cret-pw")
    assert u.domain == UPPER[:10] and u.transport == "UDP" and u.charset == "GB2312"
    view = store.public_view(u)
    assert "password" not in view and view["has_password"] is True
    assert "s3cret-pw" not in repr(u)
    with db.session() as s:
        from sqlalchemy import select

        from viis.integrity.models import AuditEntry
        details = " ".join(e.details for e in s.scalars(select(AuditEntry)))
        assert "gb" in " ".join(e.kind for e in s.scalars(select(AuditEntry)))
        assert "s3cret-pw" not in details


@pytest.mark.parametrize("field,value", [
    ("server_id", "1234"), ("local_id", "34020000001320000001"), ("port", 0),
    ("transport", "SCTP"), ("charset", "latin-1"), ("password", ""), ("keepalive_s", 0),
    ("register_expires", 100),  # 3 x 60 s keepalive is not shorter than 100 s
])
def test_bad_upper_fields_are_refused(db, clock, field, value):
    app = app_on(db, clock)
    kw = {field: value}
    if field == "register_expires":
        kw["keepalive_s"] = 60
    with pytest.raises(ValidationFailed) as e:
        add_upper(app, kw.pop("port", 5060), **kw)
    assert e.value.field == field


def test_duplicate_server_id_refused(db, clock):
    app = app_on(db, clock)
    add_upper(app, 5060)
    with pytest.raises(ValidationFailed):
        add_upper(app, 5061)


def test_shares_channel_ids_levels_and_filter(db, clock, rules):
    """A camera above the platform's grade is refused when shared, and a camera whose level is
    raised later disappears from what the upper sees (Q13.1)."""
    app = app_on(db, clock)
    u = add_upper(app, 5060, level=2)
    low = add_camera(app, rules, "gate", level=1)
    mid = add_camera(app, rules, "hall", level=2)
    high = add_camera(app, rules, "vault", level=3)
    with pytest.raises(ValidationFailed) as e:
        share(app, u, [{"camera_id": high.id, "channel_id": CH.format(3)}])
    assert "Q13.1" in e.value.articles
    for bad in ("3402000000111000001", "34020000001110000001", "x" * 20):
        with pytest.raises(ValidationFailed):
            share(app, u, [{"camera_id": low.id, "channel_id": bad}])
    with pytest.raises(ValidationFailed):
        share(app, u, [{"camera_id": low.id, "channel_id": CH.format(1)},
                       {"camera_id": mid.id, "channel_id": CH.format(1)}])
    got = share(app, u, [{"camera_id": low.id, "channel_id": CH.format(1), "ptz_allowed": True},
                         {"camera_id": mid.id, "channel_id": "34020000001320000002"}])
    assert [(x.camera_id, x.ptz_allowed) for x in got] == [(low.id, True), (mid.id, False)]
    with db.session() as s:
        assert store.resolve_channel(s, u.id, CH.format(1)).camera_id == low.id
        assert store.resolve_channel(s, u.id, CH.format(3)) is None
        from viis.registry.models import Camera
        s.get(Camera, mid.id).security_level = 4  # raised after it was shared
    with db.session() as s:
        assert [x.camera_id for x in store.shares(s, u.id)] == [low.id]
        assert store.resolve_channel(s, u.id, "34020000001320000002") is None
        assert len(store.shares(s, u.id, effective=False)) == 2


def test_lowering_the_grade_drops_shares_above_it(db, clock, rules):
    app = app_on(db, clock)
    u = add_upper(app, 5060, level=3)
    a = add_camera(app, rules, "a", level=1)
    b = add_camera(app, rules, "b", level=3)
    share(app, u, [{"camera_id": a.id, "channel_id": CH.format(1)},
                   {"camera_id": b.id, "channel_id": CH.format(2)}])
    with db.session() as s:
        store.update_upper(s, u.id, {"max_security_level": 1}, actor="t", now_ms=1)
    with db.session() as s:
        assert [x.camera_id for x in store.shares(s, u.id, effective=False)] == [a.id]


def test_each_upper_has_its_own_share_list_and_channel_ids(db, clock, rules):
    app = app_on(db, clock)
    u1 = add_upper(app, 5060)
    u2 = add_upper(app, 5062, server_id="44010000002000000001", local_id=LOCAL)
    cam = add_camera(app, rules, "gate")
    share(app, u1, [{"camera_id": cam.id, "channel_id": CH.format(1)}])
    share(app, u2, [{"camera_id": cam.id, "channel_id": "44010000001310000077"}])
    with db.session() as s:
        assert store.resolve_channel(s, u1.id, CH.format(1)).camera_id == cam.id
        assert store.resolve_channel(s, u2.id, CH.format(1)) is None
        assert store.resolve_channel(s, u2.id, "44010000001310000077").camera_id == cam.id
        store.delete_upper(s, u1.id, actor="t", now_ms=1)
    with db.session() as s:
        assert [u.id for u in store.list_uppers(s)] == [u2.id]


def test_upper_platform_identity_at_the_one_door_and_in_the_register(db, clock, rules):
    """Every upward view is decided by the one door and written to the register under the
    upper platform's identity; its grade is its clearance (Q13.1, N16.1)."""
    from sqlalchemy import select

    from viis.access.door import Forbidden, authorize_footage
    from viis.access.register import Register
    from viis.access.retrieval_models import RegisterEntry
    from viis.interconnect.gb28181.cascade import Cascade

    app = app_on(db, clock)
    u = add_upper(app, 5060, level=2)
    low = add_camera(app, rules, "gate", level=2)
    high = add_camera(app, rules, "vault", level=3)
    c = Cascade(app)
    p = c.principal(UPPER)
    assert p == c.principal(u.id) and p.name == f"gb28181:{UPPER}" and p.clearance == 2
    sink = Register(db)
    authorize_footage(p, "live", low.id, security_level=2, register=sink, now_ms=clock.wall_ms())
    authorize_footage(p, "playback", low.id, clock.wall_ms() - 60_000, clock.wall_ms(),
                      security_level=2, register=sink, now_ms=clock.wall_ms())
    for action, cam, level in (("live", high.id, 3), ("export", low.id, 2)):
        with pytest.raises(Forbidden):
            authorize_footage(p, action, cam, security_level=level, register=sink,
                              now_ms=clock.wall_ms())
    with db.session() as s:
        rows = [(e.user_login, e.action, e.camera_id, e.outcome)
                for e in s.scalars(select(RegisterEntry).order_by(RegisterEntry.id))]
    who = f"gb28181:{UPPER}"
    assert rows == [(who, "live", low.id, "allowed"), (who, "playback", low.id, "allowed"),
                    (who, "live", high.id, "refused"), (who, "export", low.id, "refused")]
    with pytest.raises(LookupError):
        c.principal("44010000002000000001")
