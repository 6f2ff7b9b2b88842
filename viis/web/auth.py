"""API authentication and the per-route policy check.

A request is signed in by (first match wins) the ``Authorization: Bearer`` header, the
``viis_session`` cookie, or a ``token`` query parameter (for ``<video src>`` and downloads).
The token may be a session token (``vs_…``), an API token (``vt_…``) or the local bootstrap
token in ``<data_dir>/api-token``, which acts as a ``platform_admin`` without a user account
(it administers; it touches no footage). Tokens are compared by hash or in constant time and
never logged.

Every route depends on :func:`allow` with its action (or, for footage, on the one door).
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from fastapi import Request

from viis.access.policy import PLATFORM_ADMIN, Principal, Scope, check_admin

TOKEN_FILE = "api-token"
COOKIE = "viis_session"


class Unauthorized(Exception):
    pass


def ensure_token(data_dir: Path, configured: str | None) -> str:
    if configured:
        return configured
    path = data_dir / TOKEN_FILE
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


BOOTSTRAP = Principal("admin", frozenset({PLATFORM_ADMIN}), clearance=5, trained=False,
                      bootstrap=True)


def given_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and given.strip():
        return given.strip()
    cookie = request.cookies.get(COOKIE)
    if cookie:
        return cookie.strip()
    return request.query_params.get("token", "").strip()


def principal(request: Request) -> Principal | None:
    """The signed-in principal, or None. Computed once per request."""
    if hasattr(request.state, "principal"):
        return request.state.principal
    p = _resolve(request)
    request.state.principal = p
    return p


def _resolve(request: Request) -> Principal | None:
    given = given_token(request)
    if not given or len(given) > 200:
        return None
    expected: str = request.app.state.api_token
    if hmac.compare_digest(given.encode(), expected.encode()):
        return BOOTSTRAP
    app = request.app.state.viis
    ident = request.app.state.identity
    with app.db.session() as s:
        found = ident.resolve_session(s, given)
        if found is not None:
            user, sess = found
            return ident.principal(s, user, session_id=sess.id)
        user = ident.resolve_api_token(s, given)
        if user is not None:
            return ident.principal(s, user)
    return None


def require_user(request: Request) -> Principal:
    p = principal(request)
    if p is None:
        raise Unauthorized()
    return p


def allow(action: str) -> Callable[[Request], Principal]:
    """A route dependency: signed in, and the policy allows ``action``. A user whose password
    must be changed can only act on itself until it is."""
    from viis.access.policy import Forbidden

    def dependency(request: Request) -> Principal:
        p = require_user(request)
        if p.must_change_password and action != "self":
            raise Forbidden("change your password first (POST /api/me/password)")
        try:
            return check_admin(p, action)
        except Forbidden as e:
            _audit_denied(request, p, action, str(e))
            raise

    dependency.__name__ = f"allow_{action.replace('.', '_')}"
    dependency.action = action  # type: ignore[attr-defined]
    return dependency


def _audit_denied(request: Request, p: Principal, action: str, reason: str) -> None:
    """A refused admin action is an audit entry (footage refusals are the door's). The
    request is refused whether or not the entry can be written."""
    from viis.integrity.audit import AuditLog

    app = request.app.state.viis
    try:
        with app.db.session() as s:
            AuditLog(s, app.clock).append("access.denied", actor=p, subject=action,
                                          details={"method": request.method,
                                                   "path": request.url.path[:300],
                                                   "reason": reason[:500]})
    except Exception:  # noqa: BLE001 - refused anyway; the failure is logged
        from viis.core.logging import get_logger

        get_logger(__name__).exception("audit_denied_write_failed", action=action)


def footage_scope(request: Request, p: Principal | None) -> Scope | None:
    """The approved retrieval request in force for this request, if any. The retrieval
    step plugs its lookup (retrieval session → scope) into ``app.state.footage_scope``."""
    hook = getattr(request.app.state, "footage_scope", None)
    return hook(request, p) if hook and p is not None else None
