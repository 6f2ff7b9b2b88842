"""GB/T 28181 playback answering cost: reading a recorded hour as frames for an upper platform.

    .venv/bin/python bench/gb28181_serve.py [--minutes 60]

Builds a recorded hour like tests/interconnect/test_two_instances.py (one libx264 minute,
320x180, 5 fps, written as 60 real segments and index rows on SQLite in a temporary
directory) and measures, in CPU seconds of this process (``time.process_time``; the machine
is shared):

- ``reader``: :class:`viis.interconnect.gb28181.feeds.RecordingReader` over the whole hour
  (index query, MP4 box parsing, one pread per picture, NAL split) - what a Playback or
  Download INVITE costs before PS packing (bench/gb28181_ps.py measures that part);
- ``baseline_read``: the same files read whole, one ``read()`` each (the least any reader
  must do to get the bytes).

Reports microseconds per frame, the hour's read speed as a multiple of real time, and the
ratio to the baseline. Writes bench/results/gb28181_serve.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.interconnect.gbmedia import MINUTE_MS, record_hour  # noqa: E402
from tests.media.recording import add_camera, make_app  # noqa: E402
from viis.interconnect.gb28181.feeds import RecordingReader  # noqa: E402

T0 = 1_767_225_600_000


def measure(minutes: int = 60) -> dict:
    with tempfile.TemporaryDirectory(prefix="viis-gb-serve-") as tmp:
        app = make_app(Path(tmp))
        try:
            cam = add_camera(app, "bench", "rtsp://127.0.0.1:9/none")
            record_hour(app.db, app.settings.segments_path, cam, T0, minutes=minutes)
            reader = RecordingReader.of_camera(app.db, app.settings.segments_path, cam)
            end = T0 + minutes * MINUTE_MS
            c0 = time.process_time()
            frames = nbytes = 0
            for f in reader.frames(T0, end):
                frames += 1
                nbytes += f.size
            reader_s = time.process_time() - c0
            files = sorted((app.settings.segments_path).rglob("*.mp4"))
            c0 = time.process_time()
            raw = 0
            for p in files:
                with open(p, "rb") as fh:
                    raw += len(fh.read())
            base_s = time.process_time() - c0
        finally:
            app.close()
    rec_s = minutes * 60
    return {
        "minutes": minutes, "frames": frames, "payload_bytes": nbytes, "file_bytes": raw,
        "reader_cpu_s": round(reader_s, 3),
        "reader_us_per_frame": round(reader_s * 1e6 / max(frames, 1), 1),
        "reader_x_realtime": round(rec_s / reader_s, 1) if reader_s else None,
        "baseline_read_cpu_s": round(base_s, 3),
        "ratio_to_baseline": round(reader_s / base_s, 1) if base_s else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=int, default=60)
    a = ap.parse_args()
    res = measure(a.minutes)
    out = ROOT / "bench" / "results" / "gb28181_serve.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
