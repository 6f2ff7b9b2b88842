"""Identity: argon2 hashes, password policy, lockout on a driven clock, TOTP, sessions and
API tokens (hashed, expiring, revocable), training validity (Q19.2, N16.1)."""

from __future__ import annotations

import pyotp
import pytest
from sqlalchemy import select

from tests.access.helpers import CHEAP, DAY_MS, PASSWORD
from viis.access.identity import (
    AccountLocked,
    IdentityService,
    SignInFailed,
    check_password_policy,
    token_hash,
)
from viis.access.models import ApiToken, AuthSession, User
from viis.core.errors import ValidationFailed


@pytest.fixture
def ident(clock):
    return IdentityService(clock, CHEAP, max_failures=3, lockout_ms=10 * 60_000,
                           session_ttl_ms=8 * 3_600_000, idle_ms=30 * 60_000)


def make(db, ident, login="alice", roles=("operator_on_duty",), **kw):
    with db.session() as s:
        org = ident.add_organisation(s, f"unit-{login}", "using_unit")
        return ident.add_user(s, login=login, display_name=login, organisation_id=org.id,
                              work_id="W7", password=PASSWORD, roles=set(roles), **kw).id


def test_passwords_are_argon2id_hashes_never_plaintext(db, clock):
    ident = IdentityService(clock)  # default (production) parameters
    uid = make(db, ident)
    with db.session() as s:
        u = s.get(User, uid)
        assert u.password_hash.startswith("$argon2id$") and PASSWORD not in u.password_hash
        with db.engine.connect() as c:
            assert PASSWORD not in repr(c.exec_driver_sql("SELECT * FROM users").fetchall())
    with db.session() as s:
        assert ident.sign_in(s, "alice", PASSWORD).user.id == uid


@pytest.mark.parametrize("pw,needle", [("short-1", "12"), ("a" * 20, "mix"),
                                       ("x" * 300 + "1", "at most"), ("alice-is-great-1", "login")])
def test_weak_passwords_are_refused(pw, needle):
    with pytest.raises(ValidationFailed, match=needle):
        check_password_policy(pw, "alice")


def test_lockout_after_repeated_failures_and_unlock_by_time_or_admin(db, ident, clock):
    uid = make(db, ident)
    for _ in range(3):
        with db.session() as s, pytest.raises(SignInFailed):
            ident.sign_in(s, "alice", "wrong-password-1")
    with db.session() as s, pytest.raises(AccountLocked):
        ident.sign_in(s, "alice", PASSWORD)  # even the right password while locked
    clock.advance(9 * 60)
    with db.session() as s, pytest.raises(AccountLocked):
        ident.sign_in(s, "alice", PASSWORD)
    clock.advance(61)
    with db.session() as s:
        ident.sign_in(s, "alice", PASSWORD)
    # a success resets the count; lock again, then an administrator unlocks
    for _ in range(3):
        with db.session() as s, pytest.raises(SignInFailed):
            ident.sign_in(s, "alice", "wrong-password-1")
    with db.session() as s:
        ident.unlock(s, uid)
    with db.session() as s:
        ident.sign_in(s, "alice", PASSWORD)


def test_unknown_login_and_wrong_password_fail_alike(db, ident):
    make(db, ident)
    msgs = []
    for login, pw in (("nobody", PASSWORD), ("alice", "wrong-password-1")):
        with db.session() as s, pytest.raises(SignInFailed) as e:
            ident.sign_in(s, login, pw)
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1]


def test_totp_is_required_once_enabled_and_a_code_works_once(db, ident, clock):
    uid = make(db, ident)
    with db.session() as s:
        uri = ident.begin_totp(s.get(User, uid))
    secret = pyotp.parse_uri(uri).secret
    code = lambda: pyotp.TOTP(secret).at(clock.wall_ms() // 1000)  # noqa: E731
    with db.session() as s:  # enrolment pending: not yet enforced
        ident.sign_in(s, "alice", PASSWORD)
        with pytest.raises(ValidationFailed):
            ident.confirm_totp(s.get(User, uid), "000000" if code() != "000000" else "111111")
        ident.confirm_totp(s.get(User, uid), code())
    clock.advance(30)
    for bad in (None, "abcdef"):  # (a third failure would lock the account)
        with db.session() as s, pytest.raises(SignInFailed):
            ident.sign_in(s, "alice", PASSWORD, bad)
    good = code()
    with db.session() as s:
        ident.sign_in(s, "alice", PASSWORD, good)
    with db.session() as s, pytest.raises(SignInFailed):
        ident.sign_in(s, "alice", PASSWORD, good)  # replay of the same code


def test_sessions_are_hashed_expire_and_are_revocable(db, ident, clock):
    make(db, ident)
    with db.session() as s:
        got = ident.sign_in(s, "alice", PASSWORD)
    token = got.token
    with db.session() as s:
        stored = s.scalars(select(AuthSession.token_hash)).all()
        assert stored == [token_hash(token)] and token not in stored
        assert ident.resolve_session(s, token)[0].login == "alice"
        assert ident.resolve_session(s, token + "x") is None
    clock.advance(29 * 60)  # idle timeout is 30 min from the last use
    with db.session() as s:
        assert ident.resolve_session(s, token) is not None
    clock.advance(31 * 60)
    with db.session() as s:
        assert ident.resolve_session(s, token) is None  # idle
    with db.session() as s:
        t2 = ident.sign_in(s, "alice", PASSWORD)
    for _ in range(17):  # kept alive, it still ends at the absolute expiry (8 h)
        clock.advance(29 * 60)
        with db.session() as s:
            alive = ident.resolve_session(s, t2.token) is not None
    assert not alive
    with db.session() as s:
        t3 = ident.sign_in(s, "alice", PASSWORD)
    with db.session() as s:
        ident.sign_out(s, t3.session.id)
    with db.session() as s:
        assert ident.resolve_session(s, t3.token) is None


def test_api_tokens_are_hashed_named_expiring_and_revocable(db, ident, clock):
    uid = make(db, ident)
    with db.session() as s:
        tok, t = ident.add_api_token(s, s.get(User, uid), "nightly report",
                                     expires_ms=clock.wall_ms() + DAY_MS)
        tok2, t2 = ident.add_api_token(s, s.get(User, uid), "script")
    with db.session() as s:
        assert tok not in s.scalars(select(ApiToken.token_hash)).all()
        assert ident.resolve_api_token(s, tok).id == uid
        ident.revoke_api_token(s, uid, t2.id)
    with db.session() as s:
        assert ident.resolve_api_token(s, tok2) is None
    clock.advance(DAY_MS / 1000)
    with db.session() as s:
        assert ident.resolve_api_token(s, tok) is None


def test_training_needs_both_topics_and_lapses(db, ident, clock):
    uid = make(db, ident)
    now = clock.wall_ms()
    with db.session() as s:
        assert not ident.is_trained(s, uid)
        ident.add_training(s, uid, topic="skills", course="c", completed_ms=now - DAY_MS,
                           valid_until_ms=now + 10 * DAY_MS, recorded_by="t")
        assert not ident.is_trained(s, uid)  # confidentiality missing (Q19.2)
        ident.add_training(s, uid, topic="confidentiality", course="c", completed_ms=now - DAY_MS,
                           valid_until_ms=now + 20 * DAY_MS, recorded_by="t")
        assert ident.is_trained(s, uid)
        with pytest.raises(ValidationFailed):
            ident.add_training(s, uid, topic="cooking", course="c", completed_ms=now,
                               valid_until_ms=now + 1, recorded_by="t")
    clock.advance(10 * DAY_MS / 1000)
    with db.session() as s:
        assert not ident.is_trained(s, uid)


def test_roles_must_fit_the_organisation_kind(db, ident):
    with db.session() as s:
        org = ident.add_organisation(s, "contractor", "maintenance_contractor")
        with pytest.raises(ValidationFailed) as e:
            ident.add_user(s, login="bob", display_name="b", organisation_id=org.id, work_id="1",
                           password=PASSWORD, roles={"police_investigator"})
        assert "N19.1" in e.value.articles or "Q23.1" in e.value.articles
