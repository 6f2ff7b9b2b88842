"""Identity service: organisations, users, passwords, TOTP, lockout, sessions, API tokens
and staff training records (Q19.2, N16.1, Q21.1, N19.1).

Rules kept here:
- passwords are hashed with argon2id (argon2-cffi); plaintext is never stored, logged or
  returned, and must pass :func:`check_password_policy`;
- after ``max_failures`` failed sign-ins in a row an account is locked for ``lockout_ms``
  (time comes from the injected clock — tests drive it, nothing sleeps);
- a sign-in failure says the same thing whether the login, the password or the one-time
  code was wrong, so it does not reveal which;
- session and API tokens are 256-bit random values shown once; only their SHA-256 is stored;
  sessions expire (absolute and idle) and can be revoked;
- a user is *trained* only while both a skills and a confidentiality training record are
  valid; the policy refuses footage to an untrained user.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from viis.access import policy
from viis.access.models import ApiToken, AuthSession, Organisation, TrainingRecord, User
from viis.access.policy import Principal
from viis.core.clock import Clock, iso_utc
from viis.core.errors import NotFound, ValidationFailed, ViisError
from viis.core.logging import get_logger
from viis.integrity.audit import AuditLog

log = get_logger("viis.access.identity")

TRAINING_TOPICS = ("skills", "confidentiality")
MIN_PASSWORD = 12
MAX_PASSWORD = 256
SESSION_PREFIX = "vs_"
API_TOKEN_PREFIX = "vt_"
INITIAL_ADMIN = "admin"
INITIAL_ORG = "VIIS"
INITIAL_PASSWORD_FILE = "initial-admin-password"


class SignInFailed(ViisError):
    """Wrong login, password or code, or the account is inactive (deliberately vague)."""


class AccountLocked(ViisError):
    def __init__(self, until_ms: int):
        super().__init__(f"too many failed sign-ins; try again after {iso_utc(until_ms)}")
        self.until_ms = until_ms


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password_policy(password: str, login: str = "") -> None:
    """At least 12 characters, at least two of letters / digits / other characters, and
    not containing the login."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ValidationFailed(f"password must have at least {MIN_PASSWORD} characters",
                               field="password")
    if len(password) > MAX_PASSWORD:
        raise ValidationFailed(f"password must have at most {MAX_PASSWORD} characters",
                               field="password")
    classes = (any(c.isalpha() for c in password) + any(c.isdigit() for c in password)
               + any(not c.isalnum() for c in password))
    if classes < 2:
        raise ValidationFailed("password must mix at least two of letters, digits and other "
                               "characters", field="password")
    if login and login.lower() in password.lower():
        raise ValidationFailed("password must not contain the login", field="password")


def roles_of(user: User) -> frozenset[str]:
    return frozenset(r for r in user.roles.split() if r)


@dataclass
class SignIn:
    token: str  # shown once
    session: AuthSession
    user: User


class IdentityService:
    def __init__(self, clock: Clock, hasher: PasswordHasher | None = None, *,
                 max_failures: int = 5, lockout_ms: int = 15 * 60_000,
                 session_ttl_ms: int = 12 * 3_600_000, idle_ms: int = 30 * 60_000) -> None:
        self.clock = clock
        self.hasher = hasher or PasswordHasher()
        self.max_failures = max_failures
        self.lockout_ms = lockout_ms
        self.session_ttl_ms = session_ttl_ms
        self.idle_ms = idle_ms
        self._dummy: str | None = None

    # --- organisations -----------------------------------------------------------------
    def add_organisation(self, s: Session, name: str, kind: str,
                         parent_id: int | None = None) -> Organisation:
        if kind not in policy.ORG_KINDS:
            raise ValidationFailed(f"organisation kind must be one of {', '.join(policy.ORG_KINDS)}",
                                   field="kind")
        name = name.strip()
        if not name:
            raise ValidationFailed("organisation name is empty", field="name")
        if s.scalar(select(Organisation).where(Organisation.name == name)):
            raise ValidationFailed(f"organisation {name!r} exists", field="name")
        if parent_id is not None:
            self.organisation(s, parent_id)
        org = Organisation(name=name, kind=kind, parent_id=parent_id, created_ms=self.clock.wall_ms())
        s.add(org)
        s.flush()
        return org

    def organisation(self, s: Session, org_id: int) -> Organisation:
        org = s.get(Organisation, org_id)
        if org is None:
            raise NotFound(f"no organisation {org_id}")
        return org

    def organisations(self, s: Session) -> list[Organisation]:
        return list(s.scalars(select(Organisation).order_by(Organisation.id)))

    # --- users -------------------------------------------------------------------------
    def add_user(self, s: Session, *, login: str, display_name: str, organisation_id: int,
                 work_id: str, password: str, roles: set[str] | frozenset[str] = frozenset(),
                 clearance: int = 1, active: bool = True,
                 must_change_password: bool = False) -> User:
        login = login.strip()
        if not login or len(login) > 64 or not all(c.isalnum() or c in "._-@" for c in login):
            raise ValidationFailed("login must be 1-64 letters, digits or . _ - @", field="login")
        if s.scalar(select(User).where(User.login == login)):
            raise ValidationFailed(f"login {login!r} is taken", field="login")
        org = self.organisation(s, organisation_id)
        self._check_roles(set(roles), org.kind)
        self._check_clearance(clearance)
        check_password_policy(password, login)
        now = self.clock.wall_ms()
        u = User(login=login, display_name=display_name.strip() or login, organisation_id=org.id,
                 work_id=work_id.strip(), password_hash=self.hasher.hash(password),
                 must_change_password=must_change_password, password_changed_ms=now,
                 totp_enabled=False, roles=" ".join(sorted(roles)), clearance=clearance,
                 active=active, failed_logins=0, created_ms=now, updated_ms=now)
        s.add(u)
        s.flush()
        log.info("user_added", user_id=u.id, login=login, roles=sorted(roles))
        return u

    def user(self, s: Session, user_id: int) -> User:
        u = s.get(User, user_id)
        if u is None:
            raise NotFound(f"no user {user_id}")
        return u

    def users(self, s: Session, organisation_id: int | None = None) -> list[User]:
        q = select(User).order_by(User.id)
        if organisation_id is not None:
            q = q.where(User.organisation_id == organisation_id)
        return list(s.scalars(q))

    def update_user(self, s: Session, user_id: int, changes: dict) -> User:
        u = self.user(s, user_id)
        org = self.organisation(s, changes.get("organisation_id", u.organisation_id))
        roles = set(changes["roles"]) if "roles" in changes else set(roles_of(u))
        self._check_roles(roles, org.kind)
        if "clearance" in changes:
            self._check_clearance(changes["clearance"])
        for k in ("display_name", "work_id", "clearance", "active", "organisation_id"):
            if k in changes and changes[k] is not None:
                setattr(u, k, changes[k])
        u.roles = " ".join(sorted(roles))
        u.updated_ms = self.clock.wall_ms()
        if changes.get("active") is False:
            self.revoke_all(s, u.id)
        log.info("user_changed", user_id=u.id, fields=sorted(changes))
        return u

    @staticmethod
    def _check_roles(roles: set[str], org_kind: str) -> None:
        unknown = roles - set(policy.ROLES)
        if policy.UPPER_PLATFORM in unknown:
            raise ValidationFailed(f"role {policy.UPPER_PLATFORM} is the identity of a GB/T 28181 "
                                   "upper platform, never a user's", field="roles",
                                   articles=("Q13.1",))
        if unknown:
            raise ValidationFailed(f"unknown roles: {', '.join(sorted(unknown))}", field="roles")
        for r in sorted(roles):
            if org_kind not in policy.ROLE_ORG_KINDS[r]:
                raise ValidationFailed(f"role {r} cannot be held in a {org_kind} organisation",
                                       field="roles", articles=("Q21.1", "N19.1", "Q23.1", "Q23.2"))

    @staticmethod
    def _check_clearance(c: int) -> None:
        if not isinstance(c, int) or not 1 <= c <= 5:
            raise ValidationFailed("clearance must be 1 to 5", field="clearance",
                                   articles=("Q5.1", "Q13.1"))

    # --- passwords ---------------------------------------------------------------------
    def set_password(self, s: Session, user: User, new: str, *, must_change: bool = False) -> None:
        check_password_policy(new, user.login)
        user.password_hash = self.hasher.hash(new)
        user.password_changed_ms = user.updated_ms = self.clock.wall_ms()
        user.must_change_password = must_change
        self.revoke_all(s, user.id)
        log.info("password_set", user_id=user.id, by_admin=must_change)

    def change_password(self, s: Session, user: User, old: str, new: str,
                        keep_session_id: int | None = None) -> None:
        if not self._verify(user, old):
            raise SignInFailed("the current password is wrong")
        if old == new:
            raise ValidationFailed("the new password must differ from the current one",
                                   field="password")
        check_password_policy(new, user.login)
        user.password_hash = self.hasher.hash(new)
        user.password_changed_ms = user.updated_ms = self.clock.wall_ms()
        user.must_change_password = False
        self.revoke_all(s, user.id, except_session=keep_session_id)
        log.info("password_changed", user_id=user.id)

    def _verify(self, user: User | None, password: str) -> bool:
        if user is None:
            if self._dummy is None:
                self._dummy = self.hasher.hash(secrets.token_hex(16))
            try:  # same cost as a real check: no timing oracle for unknown logins
                self.hasher.verify(self._dummy, password)
            except (VerificationError, InvalidHashError):
                pass
            return False
        try:
            self.hasher.verify(user.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        if self.hasher.check_needs_rehash(user.password_hash):
            user.password_hash = self.hasher.hash(password)
        return True

    # --- TOTP --------------------------------------------------------------------------
    def begin_totp(self, user: User) -> str:
        """Store a fresh seed (not yet enforced) and return its otpauth:// URI, shown once."""
        user.totp_secret = pyotp.random_base32()
        user.totp_enabled = False
        user.totp_last_step = None
        return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.login, issuer_name="VIIS")

    def confirm_totp(self, user: User, code: str) -> None:
        if not user.totp_secret or not self._check_totp(user, code):
            raise ValidationFailed("the one-time code is wrong", field="code")
        user.totp_enabled = True
        log.info("totp_enabled", user_id=user.id)

    def disable_totp(self, user: User) -> None:
        user.totp_secret, user.totp_enabled, user.totp_last_step = None, False, None
        log.info("totp_disabled", user_id=user.id)

    def _check_totp(self, user: User, code: str | None) -> bool:
        if not code or not user.totp_secret:
            return False
        code = code.strip()
        if not (code.isdigit() and len(code) == 6):
            return False
        totp = pyotp.TOTP(user.totp_secret)
        now_s = self.clock.wall_ms() // 1000
        step_now = now_s // totp.interval
        for step in (step_now - 1, step_now, step_now + 1):
            if user.totp_last_step is not None and step <= user.totp_last_step:
                continue  # a code works once (replay)
            if hmac.compare_digest(totp.at(step * totp.interval), code):
                user.totp_last_step = step
                return True
        return False

    # --- sign in / sessions ------------------------------------------------------------
    def sign_in(self, s: Session, login: str, password: str, code: str | None = None) -> SignIn:
        user = self.authenticate(s, login, password, code)
        now = self.clock.wall_ms()
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        sess = AuthSession(user_id=user.id, token_hash=token_hash(token), created_ms=now,
                           expires_ms=now + self.session_ttl_ms, last_seen_ms=now)
        s.add(sess)
        s.flush()
        log.info("sign_in", user_id=user.id, session_id=sess.id)
        AuditLog(s, self.clock).append("auth.login", actor=user.login, subject=f"user {user.id}",
                                       details={"session_id": sess.id})
        return SignIn(token, sess, user)

    def authenticate(self, s: Session, login: str, password: str, code: str | None = None) -> User:
        """Check credentials (lockout, TOTP, failure count) without opening a session: sign-in
        and the second staff member of a retrieval session (Q24.1) both use it. The caller
        commits on failure to keep the failure count."""
        now = self.clock.wall_ms()
        login = login.strip()
        # A login with control characters (NUL included, which PostgreSQL refuses in text) or
        # of absurd length names nobody: it fails like a wrong password, not with a 500.
        plain = 0 < len(login) <= 256 and not any(ord(ch) < 32 or ord(ch) == 127 for ch in login)
        user = s.scalar(select(User).where(User.login == login)) if plain else None
        if user is not None and user.locked_until_ms is not None and now < user.locked_until_ms:
            log.warning("sign_in_locked", user_id=user.id)
            AuditLog(s, self.clock).append("auth.login_failed", actor=login, subject=f"user {user.id}",
                                           details={"locked_until_ms": user.locked_until_ms})
            raise AccountLocked(user.locked_until_ms)
        ok = self._verify(user, password)
        if ok and user is not None and user.totp_enabled:
            ok = self._check_totp(user, code)
        if not ok or user is None or not user.active:
            if user is not None:
                self._failed(user, now)
            log.warning("sign_in_failed", login=login[:64])
            AuditLog(s, self.clock).append(
                "auth.locked" if user is not None and user.locked_until_ms == now + self.lockout_ms
                else "auth.login_failed", actor=login,
                subject=f"user {user.id}" if user is not None else "unknown login",
                details={"known_user": user is not None})
            raise SignInFailed("sign-in failed: login, password or one-time code is wrong")
        user.failed_logins = 0
        user.locked_until_ms = None
        return user

    def _failed(self, user: User, now: int) -> None:
        user.failed_logins += 1
        if user.failed_logins >= self.max_failures:
            user.locked_until_ms = now + self.lockout_ms
            user.failed_logins = 0
            log.warning("account_locked", user_id=user.id, until=iso_utc(user.locked_until_ms))

    def unlock(self, s: Session, user_id: int) -> User:
        u = self.user(s, user_id)
        u.locked_until_ms, u.failed_logins = None, 0
        log.info("account_unlocked", user_id=u.id)
        return u

    def resolve_session(self, s: Session, token: str) -> tuple[User, AuthSession] | None:
        if not token.startswith(SESSION_PREFIX):
            return None
        sess = s.scalar(select(AuthSession).where(AuthSession.token_hash == token_hash(token)))
        now = self.clock.wall_ms()
        if sess is None or sess.revoked_ms is not None or now >= sess.expires_ms \
                or now >= sess.last_seen_ms + self.idle_ms:
            return None
        user = s.get(User, sess.user_id)
        if user is None or not user.active:
            return None
        sess.last_seen_ms = now
        return user, sess

    def sign_out(self, s: Session, session_id: int) -> None:
        sess = s.get(AuthSession, session_id)
        if sess is not None and sess.revoked_ms is None:
            sess.revoked_ms = self.clock.wall_ms()
            log.info("sign_out", user_id=sess.user_id, session_id=sess.id)
            who = s.get(User, sess.user_id)
            AuditLog(s, self.clock).append("auth.logout", actor=who.login if who else None,
                                           subject=f"user {sess.user_id}",
                                           details={"session_id": sess.id})

    def revoke_all(self, s: Session, user_id: int, except_session: int | None = None) -> None:
        now = self.clock.wall_ms()
        for sess in s.scalars(select(AuthSession).where(AuthSession.user_id == user_id,
                                                         AuthSession.revoked_ms.is_(None))):
            if sess.id != except_session:
                sess.revoked_ms = now

    # --- API tokens --------------------------------------------------------------------
    def add_api_token(self, s: Session, user: User, name: str,
                      expires_ms: int | None = None) -> tuple[str, ApiToken]:
        name = name.strip()
        if not name or len(name) > 100:
            raise ValidationFailed("token name must be 1-100 characters", field="name")
        token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
        t = ApiToken(user_id=user.id, name=name, token_hash=token_hash(token),
                     created_ms=self.clock.wall_ms(), expires_ms=expires_ms)
        s.add(t)
        s.flush()
        log.info("api_token_added", user_id=user.id, token_id=t.id, name=name)
        return token, t

    def api_tokens(self, s: Session, user_id: int) -> list[ApiToken]:
        return list(s.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)))

    def revoke_api_token(self, s: Session, user_id: int, token_id: int) -> ApiToken:
        t = s.get(ApiToken, token_id)
        if t is None or t.user_id != user_id:
            raise NotFound(f"no API token {token_id}")
        if t.revoked_ms is None:
            t.revoked_ms = self.clock.wall_ms()
            log.info("api_token_revoked", user_id=user_id, token_id=t.id)
        return t

    def resolve_api_token(self, s: Session, token: str) -> User | None:
        if not token.startswith(API_TOKEN_PREFIX):
            return None
        t = s.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
        now = self.clock.wall_ms()
        if t is None or t.revoked_ms is not None or (t.expires_ms is not None and now >= t.expires_ms):
            return None
        user = s.get(User, t.user_id)
        if user is None or not user.active:
            return None
        t.last_used_ms = now
        return user

    # --- training (Q19.2, N16.1) -------------------------------------------------------
    def add_training(self, s: Session, user_id: int, *, topic: str, course: str,
                     completed_ms: int, valid_until_ms: int, recorded_by: str,
                     note: str = "") -> TrainingRecord:
        self.user(s, user_id)
        if topic not in TRAINING_TOPICS:
            raise ValidationFailed(f"topic must be one of {', '.join(TRAINING_TOPICS)}",
                                   field="topic", articles=("Q19.2",))
        if valid_until_ms <= completed_ms:
            raise ValidationFailed("valid_until must be after completed", field="valid_until")
        rec = TrainingRecord(user_id=user_id, topic=topic, course=course.strip(),
                             completed_ms=completed_ms, valid_until_ms=valid_until_ms,
                             recorded_by=recorded_by, note=note, created_ms=self.clock.wall_ms())
        s.add(rec)
        s.flush()
        return rec

    def training(self, s: Session, user_id: int) -> list[TrainingRecord]:
        return list(s.scalars(select(TrainingRecord).where(TrainingRecord.user_id == user_id)
                              .order_by(TrainingRecord.id)))

    def is_trained(self, s: Session, user_id: int) -> bool:
        now = self.clock.wall_ms()
        valid = {r.topic for r in self.training(s, user_id)
                 if r.completed_ms <= now < r.valid_until_ms}
        return all(t in valid for t in TRAINING_TOPICS)

    # --- first start -------------------------------------------------------------------
    def ensure_initial_admin(self, s: Session, data_dir) -> User | None:
        """At first start (no user at all) create the administrator ``admin`` with a random
        password written to ``<data_dir>/initial-admin-password`` (mode 0600, never logged)
        and a forced change at first sign-in. Returns the new user, or None when users exist.

        The account is a platform administrator and an operator on duty in its own using
        unit, clearance 5, so the console can be run end to end; like every user it sees no
        footage until skills and confidentiality training are on record (Q19.2, N16.1)."""
        if s.scalar(select(User.id).limit(1)) is not None:
            return None
        org = s.scalar(select(Organisation).where(Organisation.name == INITIAL_ORG)) \
            or self.add_organisation(s, INITIAL_ORG, policy.USING_UNIT)
        password = secrets.token_urlsafe(18)
        path = Path(data_dir) / INITIAL_PASSWORD_FILE
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        user = self.add_user(s, login=INITIAL_ADMIN, display_name="Administrator",
                             organisation_id=org.id, work_id="admin", password=password,
                             roles={policy.PLATFORM_ADMIN, policy.OPERATOR}, clearance=5,
                             must_change_password=True)
        log.warning("initial_admin_created", login=INITIAL_ADMIN, password_file=str(path))
        return user

    # --- principal ---------------------------------------------------------------------
    def principal(self, s: Session, user: User, session_id: int | None = None) -> Principal:
        org = s.get(Organisation, user.organisation_id)
        return Principal(name=user.login, roles=roles_of(user), user_id=user.id,
                         organisation_id=user.organisation_id, org_kind=org.kind if org else None,
                         clearance=user.clearance, trained=self.is_trained(s, user.id),
                         work_id=user.work_id, session_id=session_id,
                         must_change_password=user.must_change_password)


def user_view(user: User, trained: bool | None = None) -> dict:
    """What the API shows of a user: never the password hash, TOTP seed or tokens."""
    out = {"id": user.id, "login": user.login, "display_name": user.display_name,
           "organisation_id": user.organisation_id, "work_id": user.work_id,
           "roles": sorted(roles_of(user)), "clearance": user.clearance, "active": user.active,
           "totp_enabled": user.totp_enabled, "must_change_password": user.must_change_password,
           "locked_until_ms": user.locked_until_ms, "created_ms": user.created_ms}
    if trained is not None:
        out["trained"] = trained
    return out
