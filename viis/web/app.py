"""The HTTP API (FastAPI). Routers call services; they never touch SQL themselves.

Every error is JSON ``{"error": message, "field": ..., "articles": [...]}`` with a status
that says whose fault it was; nothing is stored when a request is refused.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import generate_latest
from starlette.middleware.base import BaseHTTPMiddleware

from viis import __version__
from viis.access.identity import AccountLocked, IdentityService, SignInFailed
from viis.access.policy import Forbidden
from viis.app import App
from viis.core.errors import NotFound, ValidationFailed, ViisError
from viis.core.logging import get_logger
from viis.core.metrics import REGISTRY
from viis.web.auth import Unauthorized, ensure_token, require_user

log = get_logger(__name__)


def _err(status: int, message: str, **extra: Any) -> JSONResponse:
    body = {"error": message}
    body.update({k: v for k, v in extra.items() if v})
    return JSONResponse(body, status_code=status)


class BodyLimit(BaseHTTPMiddleware):
    """Refuse oversized bodies before they are read (413), and log requests without their
    query strings (which may carry a token)."""

    async def dispatch(self, request: Request, call_next):
        limit = request.app.state.max_body
        cl = request.headers.get("content-length")
        if cl is not None:
            if not cl.isdigit():
                return _err(400, "Content-Length is not a number")
            if int(cl) > limit:
                return _err(413, f"request body of {cl} bytes is over the limit of {limit} bytes")
        elif request.method in ("POST", "PUT", "PATCH") and \
                request.headers.get("transfer-encoding", "").lower() == "chunked":
            return _err(411, "send a Content-Length; chunked request bodies are not accepted")
        response = await call_next(request)
        log.info("http", method=request.method, path=request.url.path, status=response.status_code)
        return response


def create_app(app: App, recorder=None, identity: IdentityService | None = None) -> FastAPI:
    """``recorder`` is the running :class:`viis.media.recorder.Recorder`, when there is one;
    ``identity`` the identity service (default: one on the app's clock)."""
    api = FastAPI(title="VIIS", version=__version__, docs_url="/api/docs",
                  openapi_url="/api/openapi.json", redoc_url=None)
    api.state.viis = app
    api.state.recorder = recorder
    api.state.api_token = ensure_token(app.settings.data_dir,
                                       app.settings.http.api_token.get_secret_value()
                                       if app.settings.http.api_token else None)
    api.state.max_body = app.settings.http.max_body_bytes
    api.state.identity = identity or IdentityService(app.clock)
    api.state.footage_scope = None  # retrieval sessions plug in here (routes_retrieval.install)
    api.add_middleware(BodyLimit)

    @api.exception_handler(Unauthorized)
    async def _unauth(_r, _e):
        return JSONResponse({"error": "sign in: POST /api/session, or send Authorization: "
                                      "Bearer <token>"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @api.exception_handler(SignInFailed)
    async def _signin(_r, e: SignInFailed):
        return _err(401, str(e))

    @api.exception_handler(AccountLocked)
    async def _locked(_r, e: AccountLocked):
        wait_s = max(1, (e.until_ms - app.clock.wall_ms() + 999) // 1000)
        return JSONResponse({"error": str(e)}, status_code=429, headers={"Retry-After": str(wait_s)})

    @api.exception_handler(Forbidden)
    async def _forbidden(_r, e: Forbidden):
        return _err(403, str(e), articles=list(e.articles))

    @api.exception_handler(ValidationFailed)
    async def _invalid(_r, e: ValidationFailed):
        return _err(422, str(e), field=e.field, articles=list(e.articles))

    # Most specific first: FastAPI picks the handler by the exception's class hierarchy.
    for exc_type, status in ((NotFound, 404), (ViisError, 400), (ValueError, 400)):
        api.add_exception_handler(exc_type, lambda _r, e, status=status: _err(status, str(e)))

    @api.exception_handler(RequestValidationError)
    async def _reqval(_r, e: RequestValidationError):
        errs = e.errors()
        first = errs[0] if errs else {}
        loc = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return _err(422, f"{loc}: {first.get('msg', 'invalid input')}" if loc else "invalid input",
                    field=loc or None)

    @api.get("/api/health")
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    @api.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(REGISTRY).decode(),
                                 media_type="text/plain; version=0.0.4")

    from viis.web import (
        routes_access,
        routes_cameras,
        routes_compliance,
        routes_footage,
        routes_masks,
        routes_retrieval,
        routes_storage,
    )

    # Every route names its policy action (viis.web.auth.allow); footage routes pass the
    # one door. Sign-in is the only open route besides health and metrics.
    for mod in (routes_cameras, routes_storage, routes_footage):
        api.include_router(mod.router, dependencies=[Depends(require_user)])
    api.include_router(routes_footage.ws_router)  # playback sessions check the user inside
    api.include_router(routes_access.router)
    api.include_router(routes_compliance.router)  # each route names its action; tips are open
    routes_retrieval.install(api)  # retrieval routes, the register, the session scope hook
    from viis.web import routes_health

    api.include_router(routes_health.router)  # health wall and fault tickets (Q19.3, Q19.6)
    from viis.web import routes_console

    api.include_router(routes_console.router)  # the console's files: open, they hold no data
    api.include_router(routes_console.settings_router)  # the user's language and saved wall
    from viis.web import routes_live

    routes_live.install(api, recorder)  # live view: WebSocket, the door checked per session
    routes_masks.install(api)  # privacy masks (Q9.2) and their two-person lifting
    from viis.web import routes_evidence

    routes_evidence.install(api)  # signed evidence packages of a retrieval session (Q24.1)
    from viis.web import routes_audit

    api.include_router(routes_audit.router)  # the audit log: search, signed checkpoints
    from viis.web import routes_duty

    routes_duty.install(api)  # shifts, duty log, monitoring room, reports (Q19.1, Q19.4, Q19.5)
    from viis.web import routes_gb28181

    routes_gb28181.install(api)  # GB/T 28181 devices below us: diagnosis, trace, PTZ (Q13.2)
    from viis.web import routes_gb_cascade

    routes_gb_cascade.install(api)  # GB/T 28181 upper platforms and their share lists (Q13.1)
    return api
