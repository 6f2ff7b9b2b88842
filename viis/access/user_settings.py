"""Per-user settings of the web console: the interface language (zh-CN or en) and the saved
live wall (layout and which camera is in which tile). Issue 3 items 3 and 7.

A saved wall names cameras by id only; what a user may see is decided again by the door
each time a tile opens (invariant 3), so a stale or edited wall grants nothing.
"""

from __future__ import annotations

import json

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from viis.core.db import Base
from viis.core.errors import ValidationFailed

LANGS = ("en", "zh-CN")
LAYOUTS = (1, 4, 9, 16)
MAX_WALL_JSON = 4096


class UserSetting(Base):
    __tablename__ = "user_settings"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    lang: Mapped[str | None] = mapped_column(String(16))
    wall: Mapped[str | None] = mapped_column(Text)  # JSON {"layout": n, "tiles": [id|null]}
    updated_ms: Mapped[int] = mapped_column()


def check_wall(wall: object) -> dict:
    """``{"layout": 1|4|9|16, "tiles": [camera id or null, ...]}`` with at most ``layout``
    tiles; anything else is refused naming the field."""
    if not isinstance(wall, dict) or set(wall) - {"layout", "tiles"}:
        raise ValidationFailed('wall must be {"layout": n, "tiles": [...]}', field="wall")
    layout = wall.get("layout")
    if isinstance(layout, bool) or layout not in LAYOUTS:
        raise ValidationFailed("wall.layout must be 1, 4, 9 or 16", field="wall.layout")
    tiles = wall.get("tiles", [])
    if not isinstance(tiles, list) or len(tiles) > layout:
        raise ValidationFailed(f"wall.tiles must be a list of at most {layout} entries",
                               field="wall.tiles")
    for t in tiles:
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or not 0 < t < 2**53):
            raise ValidationFailed("wall.tiles holds camera ids (positive whole numbers) or null",
                                   field="wall.tiles")
    return {"layout": layout, "tiles": tiles}


def get(s: Session, user_id: int) -> dict:
    row = s.get(UserSetting, user_id)
    if row is None:
        return {"lang": None, "wall": None}
    return {"lang": row.lang, "wall": json.loads(row.wall) if row.wall else None}


def put(s: Session, user_id: int, changes: dict, now_ms: int) -> dict:
    """Set the given settings (``lang``, ``wall``); a key given as null clears it."""
    if "lang" in changes and changes["lang"] is not None and changes["lang"] not in LANGS:
        raise ValidationFailed(f"lang must be one of {', '.join(LANGS)}", field="lang")
    wall = None
    if changes.get("wall") is not None:
        wall = json.dumps(check_wall(changes["wall"]), separators=(",", ":"))
        if len(wall) > MAX_WALL_JSON:
            raise ValidationFailed("wall is too large", field="wall")
    row = s.get(UserSetting, user_id)
    if row is None:
        row = UserSetting(user_id=user_id, updated_ms=now_ms)
        s.add(row)
    if "lang" in changes:
        row.lang = changes["lang"]
    if "wall" in changes:
        row.wall = wall
    row.updated_ms = now_ms
    s.flush()
    return get(s, user_id)
