"""Playback serving benchmark: how fast VIIS turns recorded segments into the fMP4 windows a
playback session sends (viis.media.playback.mse_window), against FFmpeg remuxing the same
ranges into fragmented MP4 (``ffmpeg -c copy -movflags frag_keyframe+empty_moov``), measured
in the same run on the same files.

    .venv/bin/python bench/playback.py [--seconds 60 --width 640 --height 360 --bitrate 600000]

A simulated camera (viis/simcam) is recorded for ``--seconds`` by the real recorder into
10 s segments; then every 20 s window of the recording is served 3 times. Reported: footage
seconds served per wall second ("x real time": 8x playback needs at least 8), the median
time to first byte of a window (what a seek waits for on the server), and FFmpeg's figures.
Writes bench/results/playback.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.media.recording import add_camera, make_app, rows  # noqa: E402
from viis.media import playback  # noqa: E402
from viis.media.recorder import Recorder  # noqa: E402
from viis.simcam.fleet import SimFleet  # noqa: E402

WINDOW_MS = 20_000


def record(tmp: Path, seconds: float, width: int, height: int, bitrate: int):
    # the simulator's default clip cache: the console tests' 640x360 clip is usually there
    fleet = SimFleet(1, width=width, height=height, fps=25, gop_s=1.0, cycle_s=60.0,
                     bitrate=bitrate)
    fleet.start()
    app = make_app(tmp, VIIS_STORAGE__SEGMENT_SECONDS="10")
    cam = add_camera(app, "bench", fleet.url(0))

    async def run():
        r = Recorder(app)
        await r.start()
        await asyncio.sleep(seconds)
        await r.stop()
    try:
        asyncio.run(run())
    finally:
        fleet.stop()
    return app, cam


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--bitrate", type=int, default=600_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="viis-bench-pb-") as d:
        tmp = Path(d)
        app, cam = record(tmp, a.seconds, a.width, a.height, a.bitrate)
        segs, _ = rows(app, cam)
        lo, hi = segs[0].start_ms, segs[-1].end_ms
        root = app.settings.segments_path
        windows = [(t, min(hi, t + WINDOW_MS)) for t in range(lo, hi - 1000, WINDOW_MS)]
        viis_s, first_s, served_ms, nbytes = 0.0, [], 0, 0
        for _ in range(a.repeat):
            for w0, w1 in windows:
                t0 = time.perf_counter()
                with app.db.session() as s:
                    w = playback.mse_window(s, root, cam, w0, w1)
                dt = time.perf_counter() - t0
                viis_s += dt
                first_s.append(dt)  # a window is sent after it is built: this is the first byte
                served_ms += w1 - w0
                nbytes += sum(len(p) for p in w.parts)
        ff_s, ff_ms = 0.0, 0
        for _ in range(a.repeat):
            for w0, w1 in windows:
                with app.db.session() as s:
                    paths = [root / x.path for x in segs if x.end_ms > w0 and x.start_ms < w1]
                    starts = [x.start_ms for x in segs if x.end_ms > w0 and x.start_ms < w1]
                lst = tmp / "list.txt"
                lst.write_text("".join(f"file '{p}'\n" for p in paths))
                out = tmp / "ff.mp4"
                t0 = time.perf_counter()
                subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(lst),
                                "-ss", f"{(w0 - starts[0]) / 1000:.3f}", "-t", f"{(w1 - w0) / 1000:.3f}",
                                "-c", "copy", "-movflags", "frag_keyframe+empty_moov+default_base_moof",
                                str(out)], check=True)
                ff_s += time.perf_counter() - t0
                ff_ms += w1 - w0
        app.close()
    res = {
        "footage_s": round((hi - lo) / 1000, 1), "windows": len(windows), "repeat": a.repeat,
        "resolution": f"{a.width}x{a.height}", "bitrate_mbps": round(nbytes * 8 / (served_ms / 1000) / 1e6, 2),
        "viis_x_realtime": round(served_ms / 1000 / viis_s, 1),
        "viis_window_p50_ms": round(statistics.median(first_s) * 1000, 1),
        "viis_window_max_ms": round(max(first_s) * 1000, 1),
        "ffmpeg_x_realtime": round(ff_ms / 1000 / ff_s, 1),
        "ffmpeg_window_ms": round(ff_s / (len(windows) * a.repeat) * 1000, 1),
        "ratio_viis_to_ffmpeg_speed": round((served_ms / viis_s) / (ff_ms / ff_s), 2),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "note": "the machine is shared by other engineers' work while this runs",
    }
    print(json.dumps(res, indent=2))
    out = ROOT / "bench" / "results" / "playback.json"
    out.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
