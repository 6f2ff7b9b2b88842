"""Sign-in, the signed-in user, organisations, users and training records.

Answers never carry a password, a password hash, a TOTP seed (except the otpauth URI once,
at enrolment) or a stored token hash; a new session or API token is shown once, when made.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from viis.access.identity import user_view
from viis.access.policy import Forbidden, Principal, check_grant, may_manage_user
from viis.core.clock import parse_time
from viis.core.errors import NotFound, ViisError
from viis.web.auth import COOKIE, allow

router = APIRouter(prefix="/api", tags=["access"])

Str64 = Annotated[str, Field(max_length=64)]
Str200 = Annotated[str, Field(max_length=200)]
Secret = Annotated[str, Field(max_length=256)]


class SignInIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    login: Str64
    password: Secret
    code: Annotated[str | None, Field(max_length=16)] = None


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current: Secret
    new: Secret


class PasswordResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    new: Secret


class CodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: Annotated[str, Field(max_length=16)]


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(max_length=100)]
    expires: Str64 | None = None


class OrgIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Str200
    kind: Annotated[str, Field(max_length=32)]
    parent_id: int | None = None


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    login: Str64
    display_name: Str200 = ""
    organisation_id: int
    work_id: Str64
    password: Secret
    roles: Annotated[list[Annotated[str, Field(max_length=32)]], Field(max_length=8)] = []
    clearance: int = 1
    active: bool = True


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_name: Str200 | None = None
    work_id: Str64 | None = None
    roles: Annotated[list[Annotated[str, Field(max_length=32)]], Field(max_length=8)] | None = None
    clearance: int | None = None
    active: bool | None = None


class TrainingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topic: Annotated[str, Field(max_length=32)]
    course: Str200
    completed: Str64
    valid_until: Str64
    note: Annotated[str, Field(max_length=2000)] = ""


def _ctx(request: Request):
    return request.app.state.viis, request.app.state.identity


def _own_user(s, ident, p: Principal):
    if p.user_id is None:
        raise ViisError("the bootstrap token has no user account; sign in as a user")
    return ident.user(s, p.user_id)


# --- session ---------------------------------------------------------------------------
@router.post("/session")
def sign_in(body: SignInIn, request: Request, response: Response) -> dict:
    """Sign in with login, password and (when enabled) a TOTP code. The answer carries the
    session token once; it is also set as an HttpOnly, SameSite=Strict cookie."""
    app, ident = _ctx(request)
    with app.db.session() as s:
        try:
            got = ident.sign_in(s, body.login, body.password, body.code)
        except ViisError:
            s.commit()  # keep the failure count / lock
            raise
        view = user_view(got.user, ident.is_trained(s, got.user.id))
        expires = got.session.expires_ms
    response.set_cookie(COOKIE, got.token, max_age=ident.session_ttl_ms // 1000, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")
    return {"token": got.token, "expires_ms": expires, "user": view}


@router.delete("/session")
def sign_out(request: Request, response: Response,
             p: Principal = Depends(allow("self"))) -> dict:
    app, ident = _ctx(request)
    if p.session_id is not None:
        with app.db.session() as s:
            ident.sign_out(s, p.session_id)
    response.delete_cookie(COOKIE, path="/")
    return {"signed_out": p.session_id is not None}


@router.get("/me")
def me(request: Request, p: Principal = Depends(allow("self"))) -> dict:
    app, ident = _ctx(request)
    if p.user_id is None:
        return {"login": p.name, "roles": sorted(p.roles), "bootstrap": True,
                "clearance": p.clearance, "trained": p.trained}
    with app.db.session() as s:
        u = ident.user(s, p.user_id)
        out = user_view(u, p.trained)
        org = ident.organisation(s, u.organisation_id)
        out["organisation"] = {"id": org.id, "name": org.name, "kind": org.kind}
    return out


@router.post("/me/password")
def change_password(body: PasswordChangeIn, request: Request,
                    p: Principal = Depends(allow("self"))) -> dict:
    app, ident = _ctx(request)
    with app.db.session() as s:
        ident.change_password(s, _own_user(s, ident, p), body.current, body.new,
                              keep_session_id=p.session_id)
    return {"changed": True}


@router.post("/me/totp")
def totp_begin(request: Request, p: Principal = Depends(allow("self"))) -> dict:
    """Start TOTP enrolment: the otpauth URI (with its seed) is shown this once."""
    app, ident = _ctx(request)
    with app.db.session() as s:
        return {"provisioning_uri": ident.begin_totp(_own_user(s, ident, p))}


@router.post("/me/totp/confirm")
def totp_confirm(body: CodeIn, request: Request, p: Principal = Depends(allow("self"))) -> dict:
    app, ident = _ctx(request)
    with app.db.session() as s:
        ident.confirm_totp(_own_user(s, ident, p), body.code)
    return {"totp_enabled": True}


def _token_view(t) -> dict:
    return {"id": t.id, "name": t.name, "created_ms": t.created_ms, "expires_ms": t.expires_ms,
            "last_used_ms": t.last_used_ms, "revoked_ms": t.revoked_ms}


@router.get("/me/tokens")
def list_tokens(request: Request, p: Principal = Depends(allow("self"))) -> list[dict]:
    app, ident = _ctx(request)
    with app.db.session() as s:
        return [_token_view(t) for t in ident.api_tokens(s, _own_user(s, ident, p).id)]


@router.post("/me/tokens", status_code=201)
def add_token(body: TokenIn, request: Request, p: Principal = Depends(allow("self"))) -> dict:
    """A named API token for scripts; the token is shown this once."""
    app, ident = _ctx(request)
    with app.db.session() as s:
        token, t = ident.add_api_token(s, _own_user(s, ident, p), body.name,
                                       parse_time(body.expires) if body.expires else None)
        return _token_view(t) | {"token": token}


@router.post("/me/tokens/{token_id}/revoke")
def revoke_token(token_id: int, request: Request, p: Principal = Depends(allow("self"))) -> dict:
    app, ident = _ctx(request)
    with app.db.session() as s:
        return _token_view(ident.revoke_api_token(s, _own_user(s, ident, p).id, token_id))


# --- organisations ----------------------------------------------------------------------
def _org_view(o) -> dict:
    return {"id": o.id, "name": o.name, "kind": o.kind, "parent_id": o.parent_id}


@router.get("/organisations", dependencies=[Depends(allow("org.read"))])
def list_orgs(request: Request) -> list[dict]:
    app, ident = _ctx(request)
    with app.db.session() as s:
        return [_org_view(o) for o in ident.organisations(s)]


@router.post("/organisations", status_code=201, dependencies=[Depends(allow("org.write"))])
def add_org(body: OrgIn, request: Request) -> dict:
    app, ident = _ctx(request)
    with app.db.session() as s:
        return _org_view(ident.add_organisation(s, body.name, body.kind, body.parent_id))


# --- users -------------------------------------------------------------------------------
def _managed_user(s, ident, p: Principal, user_id: int):
    u = ident.user(s, user_id)
    if not may_manage_user(p, u.organisation_id) and "auditor" not in p.roles:
        raise NotFound(f"no user {user_id}")
    return u


def _writable_user(s, ident, p: Principal, user_id: int):
    u = ident.user(s, user_id)
    if not may_manage_user(p, u.organisation_id):
        raise NotFound(f"no user {user_id}")
    return u


@router.get("/users")
def list_users(request: Request, p: Principal = Depends(allow("user.read"))) -> list[dict]:
    """A unit administrator sees its own organisation; auditors and platform admins all."""
    app, ident = _ctx(request)
    own_only = not (p.bootstrap or "platform_admin" in p.roles or "auditor" in p.roles)
    with app.db.session() as s:
        return [user_view(u) for u in ident.users(s, p.organisation_id if own_only else None)]


@router.post("/users", status_code=201)
def add_user(body: UserIn, request: Request, p: Principal = Depends(allow("user.write"))) -> dict:
    app, ident = _ctx(request)
    if not may_manage_user(p, body.organisation_id):
        raise Forbidden("a unit administrator adds users to its own organisation only")
    check_grant(p, set(body.roles))
    with app.db.session() as s:
        u = ident.add_user(s, login=body.login, display_name=body.display_name,
                           organisation_id=body.organisation_id, work_id=body.work_id,
                           password=body.password, roles=set(body.roles),
                           clearance=body.clearance, active=body.active,
                           must_change_password=True)
        return user_view(u, False)


@router.get("/users/{user_id}")
def get_user(user_id: int, request: Request, p: Principal = Depends(allow("user.read"))) -> dict:
    app, ident = _ctx(request)
    with app.db.session() as s:
        u = _managed_user(s, ident, p, user_id)
        return user_view(u, ident.is_trained(s, u.id))


@router.patch("/users/{user_id}")
def patch_user(user_id: int, body: UserPatch, request: Request,
               p: Principal = Depends(allow("user.write"))) -> dict:
    app, ident = _ctx(request)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("roles") is not None:
        check_grant(p, set(changes["roles"]))
    with app.db.session() as s:
        u = _writable_user(s, ident, p, user_id)
        if "roles" in changes and changes["roles"] is None:
            del changes["roles"]
        return user_view(ident.update_user(s, u.id, changes), ident.is_trained(s, u.id))


@router.post("/users/{user_id}/password")
def reset_password(user_id: int, body: PasswordResetIn, request: Request,
                   p: Principal = Depends(allow("user.write"))) -> dict:
    """An administrator sets a one-time password; the user must change it at next sign-in."""
    app, ident = _ctx(request)
    with app.db.session() as s:
        ident.set_password(s, _writable_user(s, ident, p, user_id), body.new, must_change=True)
    return {"changed": True, "must_change_password": True}


@router.post("/users/{user_id}/unlock")
def unlock(user_id: int, request: Request, p: Principal = Depends(allow("user.write"))) -> dict:
    app, ident = _ctx(request)
    with app.db.session() as s:
        return user_view(ident.unlock(s, _writable_user(s, ident, p, user_id).id))


def _training_view(r) -> dict:
    return {"id": r.id, "topic": r.topic, "course": r.course, "completed_ms": r.completed_ms,
            "valid_until_ms": r.valid_until_ms, "recorded_by": r.recorded_by, "note": r.note}


@router.get("/users/{user_id}/training")
def list_training(user_id: int, request: Request,
                  p: Principal = Depends(allow("user.read"))) -> list[dict]:
    app, ident = _ctx(request)
    with app.db.session() as s:
        return [_training_view(r) for r in ident.training(s, _managed_user(s, ident, p, user_id).id)]


@router.post("/users/{user_id}/training", status_code=201)
def add_training(user_id: int, body: TrainingIn, request: Request,
                 p: Principal = Depends(allow("training.write"))) -> dict:
    """Record skills or confidentiality training (Q19.2, N16.1)."""
    app, ident = _ctx(request)
    with app.db.session() as s:
        u = _writable_user(s, ident, p, user_id)
        return _training_view(ident.add_training(
            s, u.id, topic=body.topic, course=body.course,
            completed_ms=parse_time(body.completed), valid_until_ms=parse_time(body.valid_until),
            recorded_by=p.name, note=body.note))
