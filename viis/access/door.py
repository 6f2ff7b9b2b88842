"""The one door to footage (invariant 3).

Live view, playback, snapshot and export all call :func:`authorize_footage` before a byte of
footage is read, and every use is written down. In this first step the only principal is
the local administrator token; the lawful-access issue replaces the decision with roles,
security levels and approved retrieval requests, and the log line with the register
(Q19.1, Q24.1, N16.1) — callers do not change.
"""

from __future__ import annotations

from dataclasses import dataclass

from viis.core.clock import iso_utc
from viis.core.errors import ViisError
from viis.core.logging import get_logger

log = get_logger("viis.access.register")
FOOTAGE_ACTIONS = ("live", "playback", "snapshot", "export", "timeline")


class Forbidden(ViisError):
    """The principal may not do this."""


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]


def authorize_footage(principal: Principal | None, action: str, camera_id: int,
                      from_ms: int | None = None, to_ms: int | None = None) -> None:
    if action not in FOOTAGE_ACTIONS:
        raise ValueError(f"unknown footage action {action!r}")
    if principal is None or "admin" not in principal.roles:
        raise Forbidden(f"{action} of camera {camera_id} is not allowed for this user")
    log.info("footage_access", who=principal.name, action=action, camera_id=camera_id,
             start=iso_utc(from_ms) if from_ms is not None else None,
             end=iso_utc(to_ms) if to_ms is not None else None)
