"""Simulated camera fleet: N cameras on a real RTSP server (Q2.1 collect video).

Pre-encoded H.264 loops (no per-camera encoding) served by GStreamer's RTSP
server, aligned to the wall clock, with a burnt-in clock and machine-readable
time code, and per-camera fault injection.  See ``docs/design/simcam.md``.
"""

from __future__ import annotations

from viis.simcam.fleet import FAULTS, SimFleet, SimFleetError, describe
from viis.simcam.timecode import decode_timecode, resolve_capture_ms

__all__ = [
    "FAULTS",
    "SimFleet",
    "SimFleetError",
    "decode_timecode",
    "describe",
    "main",
    "resolve_capture_ms",
]


def main(argv: list[str] | None = None) -> int:
    """``viis simcam`` / ``python -m viis.simcam``: run a fleet in the foreground."""
    from viis.simcam.cli import main as _main

    return _main(argv)
