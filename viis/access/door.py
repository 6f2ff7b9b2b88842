"""The one door to footage (invariant 3).

Live view, playback, snapshot and export all call :func:`authorize_footage` before a byte of
footage is read, and every use is written down. The decision is
:func:`viis.access.policy.decide_footage` (role × camera security level × scope of an
approved request); each decision, allowed or refused, becomes exactly one entry of the
retrieval register (Q19.1, Q24.1(3), N16.1) through the register sink in force
(:func:`register_to`; the web app installs one per request). When the register cannot be
written, the door stays shut: no footage without an entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from viis.access.policy import FOOTAGE_ACTIONS, Forbidden, Principal, Scope, decide_footage
from viis.core.clock import SystemClock, iso_utc
from viis.core.logging import get_logger

log = get_logger("viis.access.register")

__all__ = ["FOOTAGE_ACTIONS", "FootageUse", "Forbidden", "Principal", "authorize_footage",
           "register_to"]

_MOST_SECRET = 5


@dataclass(frozen=True)
class FootageUse:
    """What the door decided, for the register."""

    at_ms: int
    principal: Principal | None
    action: str
    camera_id: int
    from_ms: int | None
    to_ms: int | None
    allowed: bool
    reason: str
    articles: tuple[str, ...]
    role: str | None
    scope: Scope | None


Sink = Callable[[FootageUse], None]
_SINK: ContextVar[Sink | None] = ContextVar("viis_register_sink", default=None)


@contextmanager
def register_to(sink: Sink) -> Iterator[None]:
    """Within the block, every door decision is written to ``sink``."""
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


def _log(use: FootageUse) -> None:
    p = use.principal
    fields = dict(who=p.name if p else None, user_id=p.user_id if p else None,
                  action=use.action, camera_id=use.camera_id,
                  start=iso_utc(use.from_ms) if use.from_ms is not None else None,
                  end=iso_utc(use.to_ms) if use.to_ms is not None else None,
                  scope=use.scope.request_ref if use.scope else None)
    if use.allowed:
        log.info("footage_access", role=use.role, **fields)
    else:
        log.warning("footage_denied", reason=use.reason, articles=list(use.articles), **fields)


def authorize_footage(principal: Principal | None, action: str, camera_id: int,
                      from_ms: int | None = None, to_ms: int | None = None, *,
                      security_level: int | None = None, scope: Scope | None = None,
                      now_ms: int | None = None, register: Sink | None = None) -> None:
    """Raise :class:`Forbidden` unless the policy lets ``principal`` do ``action``.

    ``security_level`` is the camera's; when a caller does not know it the camera is treated
    as the most secret (level 5). ``scope`` is the approved retrieval request in force, if any.
    ``register`` overrides the sink in force (:func:`register_to`); without either the use
    is only logged (library callers outside the web app).
    """
    if action not in FOOTAGE_ACTIONS:
        raise ValueError(f"unknown footage action {action!r}")
    now = SystemClock().wall_ms() if now_ms is None else now_ms
    level = _MOST_SECRET if security_level is None else security_level
    d = decide_footage(principal, action, camera_id, level, from_ms, to_ms, now, scope)
    use = FootageUse(now, principal, action, camera_id, from_ms, to_ms, d.allowed, d.reason,
                     tuple(d.articles), d.role, scope)
    _log(use)
    sink = register or _SINK.get()
    if sink is not None:
        try:
            sink(use)
        except Exception as e:  # noqa: BLE001 - any failure keeps the door shut
            log.error("register_write_failed", error=str(e)[:200], action=action,
                      camera_id=camera_id)
            if d.allowed:
                raise Forbidden("the retrieval register could not be written; footage is not "
                                "released without an entry", ("Q19.1", "N16.1")) from e
    if not d.allowed:
        raise Forbidden(f"{action} of camera {camera_id} is not allowed: {d.reason}", d.articles)
