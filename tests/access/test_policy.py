"""The one authorisation function: role × security level × approved scope (no database)."""

from __future__ import annotations

import pytest

from viis.access import policy
from viis.access.door import Forbidden, authorize_footage
from viis.access.policy import Principal, Scope, ScopeRange, decide_admin, decide_footage

NOW = 1_767_225_600_000
H = 3_600_000


def who(*roles, clearance=3, trained=True, uid=7):
    return Principal(f"u{uid}", frozenset(roles), user_id=uid, clearance=clearance, trained=trained)


SCOPE = Scope("REQ-9", (ScopeRange(1, NOW - 10 * H, NOW - 8 * H),), frozenset({"playback", "export"}),
              NOW + H, principals=frozenset({7}))


def test_the_table_covers_every_role_and_action():
    assert set(policy.FOOTAGE_POLICY) == set(policy.ALL_ROLES)
    for role, row in policy.FOOTAGE_POLICY.items():
        assert set(row) == set(policy.FOOTAGE_ACTIONS), role
    for action, roles in policy.ADMIN_POLICY.items():
        assert roles <= set(policy.ROLES), action
    assert set(policy.ROLE_ORG_KINDS) == set(policy.ROLES)


def test_untrained_user_is_refused_footage_whatever_the_role():
    for action in policy.FOOTAGE_ACTIONS:
        d = decide_footage(who("operator_on_duty", trained=False), action, 1, 1, NOW - H, NOW, NOW)
        assert not d.allowed and d.articles == ("Q19.2", "N16.1")


def test_camera_level_above_clearance_is_refused():
    op = who("operator_on_duty", clearance=2)
    assert decide_footage(op, "live", 1, 2, None, None, NOW).allowed
    d = decide_footage(op, "live", 1, 3, None, None, NOW)
    assert not d.allowed and "Q13.1" in d.articles


def test_export_always_needs_an_approved_scope():
    op = who("operator_on_duty", "unit_admin", clearance=5)
    d = decide_footage(op, "export", 1, 1, NOW - 9 * H, NOW - 9 * H + 1000, NOW)
    assert not d.allowed and "Q24.1" in d.articles
    assert decide_footage(op, "export", 1, 1, NOW - 9 * H, NOW - 9 * H + 1000, NOW, SCOPE).allowed


@pytest.mark.parametrize("camera,frm,to,action,now,uid,ok", [
    (1, NOW - 9 * H, NOW - 9 * H + 60_000, "playback", NOW, 7, True),
    (1, NOW - 9 * H, NOW - 9 * H + 60_000, "export", NOW, 7, True),
    (2, NOW - 9 * H, NOW - 9 * H + 60_000, "playback", NOW, 7, False),   # other camera
    (1, NOW - 9 * H, NOW - 7 * H, "playback", NOW, 7, False),            # runs past the range
    (1, NOW - 9 * H, NOW - 9 * H + 60_000, "snapshot", NOW, 7, False),   # action not approved
    (1, NOW - 9 * H, NOW - 9 * H + 60_000, "playback", NOW + H, 7, False),  # approval expired
    (1, NOW - 9 * H, NOW - 9 * H + 60_000, "playback", NOW, 8, False),   # not party to it
])
def test_investigator_sees_only_the_approved_scope(camera, frm, to, action, now, uid, ok):
    d = decide_footage(who("police_investigator", uid=uid), action, camera, 1, frm, to, now, SCOPE)
    assert d.allowed is ok, d.reason
    assert not decide_footage(who("police_investigator"), action, camera, 1, frm, to, now).allowed


def test_contractor_never_copies_footage_even_with_a_scope():
    m = who("maintainer", clearance=5)
    assert decide_footage(m, "live", 1, 1, None, None, NOW).allowed
    d = decide_footage(m, "export", 1, 1, NOW - 9 * H, NOW - 9 * H + 1000, NOW, SCOPE)
    assert not d.allowed and "N19.1" in d.articles


def test_individual_scope_is_view_only():
    view_only = Scope("IND-1", (ScopeRange(1, 0, NOW),), frozenset({"playback"}), NOW + H)
    r = who("department_requester")
    assert decide_footage(r, "playback", 1, 1, NOW - H, NOW - H + 1, NOW, view_only).allowed
    assert not decide_footage(r, "export", 1, 1, NOW - H, NOW - H + 1, NOW, view_only).allowed


def test_admin_actions_by_role():
    assert decide_admin(who("unit_admin"), "camera.write").allowed
    assert not decide_admin(who("operator_on_duty"), "camera.write").allowed
    assert not decide_admin(who("police_investigator"), "hold.write").allowed
    assert not decide_admin(None, "camera.read").allowed
    with pytest.raises(ValueError):
        decide_admin(who("unit_admin"), "launch.missiles")


def test_unit_admin_cannot_grant_police_or_platform_roles():
    ua = who("unit_admin")
    policy.check_grant(ua, {"operator_on_duty", "auditor"})
    with pytest.raises(Forbidden):
        policy.check_grant(ua, {"platform_admin"})


def test_the_door_delegates_and_keeps_its_signature():
    with pytest.raises(Forbidden):
        authorize_footage(None, "live", 1)
    with pytest.raises(Forbidden):  # unknown level counts as most secret
        authorize_footage(who("operator_on_duty", clearance=3), "live", 1, now_ms=NOW)
    authorize_footage(who("operator_on_duty", clearance=3), "live", 1, security_level=3, now_ms=NOW)
    with pytest.raises(ValueError):
        authorize_footage(who("operator_on_duty"), "delete", 1)


def upper(clearance=2, server="34020000002000000001"):
    """The principal of a GB/T 28181 upper platform (viis.interconnect.gb28181.cascade)."""
    return Principal(f"gb28181:{server}", frozenset({policy.UPPER_PLATFORM}),
                     org_kind=policy.UPPER_PLATFORM_ORG, organisation_name=f"city ({server})",
                     clearance=clearance, trained=True, work_id=server)


def test_upper_platform_watches_within_its_grade_and_copies_only_what_is_delivered_to_it():
    up = upper()
    for action in ("live", "playback", "timeline"):  # Q13.1: by security level
        d = decide_footage(up, action, 1, 2, NOW - H, NOW, NOW)
        assert d.allowed and d.reason == "upper_platform within clearance", action
        d = decide_footage(up, action, 1, 3, NOW - H, NOW, NOW)
        assert not d.allowed and "Q13.1" in d.articles
    assert not decide_footage(up, "snapshot", 1, 1, NOW, NOW, NOW).allowed
    frm, to = NOW - 9 * H, NOW - 9 * H + 60_000
    d = decide_footage(up, "export", 1, 1, frm, to, NOW)  # no request: Q23.1, Q24.1
    assert not d.allowed and "Q24.1" in d.articles and "delivery target" in d.reason
    mine = Scope("R-3", SCOPE.ranges, frozenset({"export"}), NOW + H, request_id=3,
                 delivery="34020000002000000001")
    assert decide_footage(up, "export", 1, 1, frm, to, NOW, mine).allowed
    # a human staff's scope, another upper's delivery, outside the range, expired: refused
    for sc, t, now in ((SCOPE, to, NOW),
                       (Scope("R-4", SCOPE.ranges, frozenset({"export"}), NOW + H,
                              delivery="34020000002000000002"), to, NOW),
                       (mine, NOW - 7 * H, NOW), (mine, to, NOW + H)):
        d = decide_footage(up, "export", 1, 1, frm, t, now, sc)
        assert not d.allowed and "Q24.1" in d.articles, d.reason


def test_upper_platform_administers_nothing_and_is_no_user_role():
    for action in policy.ADMIN_ACTIONS:
        d = decide_admin(upper(clearance=5), action)
        assert not d.allowed and d.articles == ("Q13.1",), action
    assert policy.UPPER_PLATFORM not in policy.ROLES  # the users' roles
    assert policy.UPPER_PLATFORM in policy.ALL_ROLES
    assert policy.UPPER_PLATFORM not in policy.ROLE_ORG_KINDS
    assert policy.UPPER_PLATFORM_ORG not in policy.ORG_KINDS
    assert all(policy.UPPER_PLATFORM not in roles for roles in policy.ADMIN_POLICY.values())


def test_the_door_registers_an_upper_platform_under_its_organisation():
    seen = []
    authorize_footage(upper(), "live", 1, security_level=1, now_ms=NOW, register=seen.append)
    assert seen[0].allowed and seen[0].principal.organisation_name.startswith("city (")
