"""Structured logs: one JSON object per line on stderr (or key=value for a terminal).

Secrets never reach a log: :func:`redact` masks URL userinfo and known secret keys, and is
applied to every event by a processor.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
SECRET_KEYS = {"password", "passwd", "secret", "token", "authorization", "credentials"}


def redact(value: Any) -> Any:
    if isinstance(value, str):
        return _USERINFO.sub(r"\g<scheme>***@", value)
    if isinstance(value, dict):
        return {k: ("***" if str(k).lower() in SECRET_KEYS else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    return value


def _redact_processor(_logger, _name, event: dict[str, Any]) -> dict[str, Any]:
    return redact(event)


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written (not when logging was set up)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str = "INFO", json_format: bool = True) -> None:
    renderer = structlog.processors.JSONRenderer(ensure_ascii=False) if json_format \
        else structlog.dev.ConsoleRenderer(colors=False)
    logging.basicConfig(level=level, stream=_Stderr(), format="%(message)s", force=True)
    # HTTP client libraries log whole request URLs at INFO, and a URL may carry a token
    # (?token= for <video src> and downloads): they speak only when something goes wrong.
    for noisy in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)
