"""MANSRTSP: playback control sent as INFO inside a playback dialog (Q12.1, N12.1).

Bodies are RTSP-like requests (``Content-Type: Application/MANSRTSP``)::

    PLAY RTSP/1.0        PLAY RTSP/1.0         PAUSE RTSP/1.0       TEARDOWN RTSP/1.0
    CSeq: 2              CSeq: 3               CSeq: 4              CSeq: 5
    Range: npt=now-      Scale: 2.0            PauseTime: now
                         Range: npt=120-

``Range: npt=<s>-`` seeks to <s> seconds from the start of the playback (``hh:mm:ss`` too);
``npt=now-`` resumes where paused; ``Scale`` is the speed (0.25..32; devices send
``2``, ``2.0``, ``0.5``). Tolerant of header case, LF line ends and missing CSeq.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

METHODS = ("PLAY", "PAUSE", "TEARDOWN")
MAX_BODY = 4096
_NPT = re.compile(r"\s*npt\s*=\s*([^-\s]*)\s*-\s*([^\s]*)\s*$", re.IGNORECASE)


class MansRtspError(ValueError):
    """Not a MANSRTSP request we can act on."""


@dataclass
class MansRtsp:
    method: str  # PLAY | PAUSE | TEARDOWN
    cseq: int = 0
    scale: float | None = None
    range_start: float | None = None  # seconds from the start; None with range_now or absent
    range_now: bool = False  # Range: npt=now-  (resume)
    range_end: float | None = None
    pause_time: float | None = None  # seconds, or None with pause_now
    pause_now: bool = False


def _npt_seconds(text: str) -> float:
    t = text.strip()
    if ":" in t:
        parts = t.split(":")
        if len(parts) > 3:
            raise ValueError(t)
        secs = 0.0
        for p in parts:
            secs = secs * 60 + float(p)
    else:
        secs = float(t)
    if not math.isfinite(secs) or secs < 0:
        raise ValueError(t)
    return secs


def parse(body: bytes | str) -> MansRtsp:
    if isinstance(body, bytes):
        if len(body) > MAX_BODY:
            raise MansRtspError(f"MANSRTSP body over {MAX_BODY} bytes")
        body = body.decode("utf-8", "replace")
    lines = [ln.strip() for ln in body.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise MansRtspError("empty MANSRTSP body")
    first = lines[0].split()
    method = first[0].upper() if first else ""
    if method not in METHODS:
        raise MansRtspError(f"unknown MANSRTSP method {method[:20]!r}")
    m = MansRtsp(method)
    for ln in lines[1:]:
        name, sep, value = ln.partition(":")
        if not sep:
            continue
        name, value = name.strip().lower(), value.strip()
        try:
            if name == "cseq":
                m.cseq = int(value)
            elif name == "scale":
                s = float(value)
                if not math.isfinite(s) or not 0.0 < s <= 64.0:
                    raise MansRtspError(f"Scale {value!r} out of range")
                m.scale = s
            elif name == "range":
                r = _NPT.match(value)
                if not r:
                    raise MansRtspError(f"unreadable Range {value[:40]!r}")
                start, end = r.group(1), r.group(2)
                if start.lower() in ("now", ""):
                    m.range_now = True
                else:
                    m.range_start = _npt_seconds(start)
                if end:
                    m.range_end = _npt_seconds(end)
            elif name == "pausetime":
                if value.lower() == "now" or not value:
                    m.pause_now = True
                else:
                    m.pause_time = _npt_seconds(value)
        except ValueError as e:
            if isinstance(e, MansRtspError):
                raise
            raise MansRtspError(f"unreadable {name}: {value[:40]!r}") from e
    if m.method == "PAUSE" and m.pause_time is None:
        m.pause_now = True
    return m


def build(method: str, cseq: int, *, scale: float | None = None,
          range_start: float | str | None = None, pause_time: float | str | None = None) -> bytes:
    """A MANSRTSP body; ``range_start="now"`` resumes, a number seeks (seconds)."""
    method = method.upper()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    lines = [f"{method} RTSP/1.0", f"CSeq: {cseq}"]
    if method == "PAUSE":
        lines.append(f"PauseTime: {'now' if pause_time in (None, 'now') else f'{float(pause_time):g}'}")
    if scale is not None:
        lines.append(f"Scale: {_num(scale)}")
    if range_start is not None:
        lines.append(f"Range: npt={'now' if range_start == 'now' else f'{float(range_start):g}'}-")
    return ("\r\n".join(lines) + "\r\n").encode()


def _num(v: float | str) -> str:
    f = float(v)
    return f"{f:.1f}" if f == int(f) else f"{f:g}"
