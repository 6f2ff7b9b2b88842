"""The web console's files: ``/`` is the single page (``static/index.html``) and
``/static/...`` its ES modules, style sheet and translation catalogues (Q2.1 display).

No build step: what is in ``viis/web/static/`` is what the browser runs. The files carry no
data and no secret, so they are served to anyone (the sign-in page is one of them); every
page asks ``/api/me`` first and every API call the pages make checks the session. Files are
revalidated on each load (``Cache-Control: no-cache`` with an ETag answered by 304), so an
upgrade is seen at once and an unchanged file costs one round trip without a body.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from viis.access import user_settings
from viis.access.policy import Principal
from viis.core.errors import ViisError
from viis.web.auth import allow

STATIC = Path(__file__).with_name("static")

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}
#: Headers on every console file: no framing by other sites, no sniffing, and scripts only
#: from this origin (the console has no inline script).
SECURITY = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "media-src 'self' blob:; connect-src 'self'; "
                               "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
}
MAX_PATH = 200

router = APIRouter(tags=["console"], include_in_schema=False)
settings_router = APIRouter(prefix="/api/me", tags=["console"])


def _etag(path: Path) -> str:
    st = path.stat()
    return '"' + hashlib.sha256(f"{path.name}:{st.st_size}:{st.st_mtime_ns}".encode())\
        .hexdigest()[:20] + '"'


def _serve(path: Path, request: Request) -> Response:
    etag = _etag(path)
    headers = {"ETag": etag, "Cache-Control": "no-cache", **SECURITY}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=TYPES[path.suffix], headers=headers)


@router.get("/")
def index(request: Request) -> Response:
    return _serve(STATIC / "index.html", request)


@router.get("/static/{name:path}")
def static(name: str, request: Request) -> Response:
    """A console file. Only known file types under ``static/``; anything else (``..``,
    absolute paths, hidden files, other types) is a 404 that names no file system path."""
    missing = JSONResponse({"error": "no such console file"}, status_code=404)
    if len(name) > MAX_PATH or "\\" in name or "\x00" in name:
        return missing
    parts = name.split("/")
    if any(not p or p.startswith(".") for p in parts):
        return missing
    path = (STATIC / name).resolve()
    if not path.is_relative_to(STATIC.resolve()) or path.suffix not in TYPES or not path.is_file():
        return missing
    return _serve(path, request)


# --- the signed-in user's console settings ----------------------------------------------
class SettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lang: Annotated[str | None, Field(max_length=16)] = None
    wall: dict[str, Any] | None = None


def _user_id(p: Principal) -> int:
    if p.user_id is None:
        raise ViisError("the bootstrap token has no user account; sign in as a user")
    return p.user_id


@settings_router.get("/settings")
def get_settings(request: Request, p: Principal = Depends(allow("self"))) -> dict:
    """The console's language and saved live wall for this user (nulls when never set)."""
    app = request.app.state.viis
    with app.db.session() as s:
        return user_settings.get(s, _user_id(p))


@settings_router.put("/settings")
def put_settings(body: SettingsIn, request: Request,
                 p: Principal = Depends(allow("self"))) -> dict:
    """Save the given settings (``lang``: en or zh-CN; ``wall``: {layout, tiles})."""
    app = request.app.state.viis
    with app.db.session() as s:
        return user_settings.put(s, _user_id(p), body.model_dump(exclude_unset=True),
                                 app.clock.wall_ms())
