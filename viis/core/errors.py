"""Error classes of VIIS. Each says what went wrong and, where it can, what to do."""

from __future__ import annotations


class ViisError(Exception):
    """Base class: an error the user or operator can act on."""


class ConfigError(ViisError):
    """The settings file or an environment override is invalid."""


class ValidationFailed(ViisError):
    """Input was refused. ``field`` names the input, ``articles`` the requirement ids cited."""

    def __init__(self, message: str, *, field: str | None = None, articles: tuple[str, ...] = ()):
        super().__init__(message)
        self.field = field
        self.articles = articles


class NotFound(ViisError):
    """The thing asked for does not exist."""


class StorageFull(ViisError):
    """The segment store has less free space than the configured reserve."""
