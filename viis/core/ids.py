"""Identifiers."""

from __future__ import annotations

import uuid


def new_uid() -> str:
    """A random, globally unique id (used where ids must survive a database move)."""
    return uuid.uuid4().hex
