"""The one door to footage (invariant 3).

Live view, playback, snapshot and export all call :func:`authorize_footage` before a byte of
footage is read, and every use is written down. The decision is
:func:`viis.access.policy.decide_footage` (role × camera security level × scope of an
approved request); refusals are logged too. The log line becomes the retrieval register
(Q19.1, Q24.1, N16.1) in a later step — callers do not change.
"""

from __future__ import annotations

from viis.access.policy import FOOTAGE_ACTIONS, Forbidden, Principal, Scope, decide_footage
from viis.core.clock import SystemClock, iso_utc
from viis.core.logging import get_logger

log = get_logger("viis.access.register")

__all__ = ["FOOTAGE_ACTIONS", "Forbidden", "Principal", "authorize_footage"]

_MOST_SECRET = 5


def authorize_footage(principal: Principal | None, action: str, camera_id: int,
                      from_ms: int | None = None, to_ms: int | None = None, *,
                      security_level: int | None = None, scope: Scope | None = None,
                      now_ms: int | None = None) -> None:
    """Raise :class:`Forbidden` unless the policy lets ``principal`` do ``action``.

    ``security_level`` is the camera's; when a caller does not know it the camera is treated
    as the most secret (level 5). ``scope`` is the approved retrieval request in force, if any.
    """
    if action not in FOOTAGE_ACTIONS:
        raise ValueError(f"unknown footage action {action!r}")
    now = SystemClock().wall_ms() if now_ms is None else now_ms
    level = _MOST_SECRET if security_level is None else security_level
    d = decide_footage(principal, action, camera_id, level, from_ms, to_ms, now, scope)
    fields = dict(who=principal.name if principal else None,
                  user_id=principal.user_id if principal else None,
                  action=action, camera_id=camera_id,
                  start=iso_utc(from_ms) if from_ms is not None else None,
                  end=iso_utc(to_ms) if to_ms is not None else None,
                  scope=scope.request_ref if scope else None)
    if not d.allowed:
        log.warning("footage_denied", reason=d.reason, articles=list(d.articles), **fields)
        raise Forbidden(f"{action} of camera {camera_id} is not allowed: {d.reason}", d.articles)
    log.info("footage_access", role=d.role, **fields)
