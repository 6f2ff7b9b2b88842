"""API authentication for this first step: a bearer token of the local administrator.

The token is compared in constant time and never logged. The web console issue adds user
logins; the lawful-access issue adds roles. Both keep this module's ``principal`` contract.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from fastapi import Request

from viis.access.door import Principal

TOKEN_FILE = "api-token"


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


def principal(request: Request) -> Principal | None:
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        given = request.query_params.get("token", "")  # for <video src> and downloads
    expected: str = request.app.state.api_token
    if given and hmac.compare_digest(given.strip().encode(), expected.encode()):
        return Principal("admin", frozenset({"admin"}))
    return None
