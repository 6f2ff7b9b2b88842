"""Real footage for evidence tests and the export benchmark: H.264 encoded by FFmpeg,
written as the recorder writes it (fragmented MP4 segments, read-only files, index rows
and hash-chain links)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from viis.media import h26x
from viis.media.index import SegmentRecord, append_segment
from viis.media.mp4 import SegmentWriter, Track
from viis.registry.models import Camera

FPS = 25
TICKS = 90000 // FPS


def encode(path: Path, seconds: float, size: str = "640x360", *, source: str = "testsrc2",
           bitrate: str | None = None) -> list[bytes]:
    """Access units of ``seconds`` of FFmpeg's test picture (a keyframe every second)."""
    rate = ["-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate] if bitrate else []
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"{source}=size={size}:rate={FPS}", "-t", str(seconds), "-c:v", "libx264",
                    "-preset", "ultrafast", *rate, "-pix_fmt", "yuv420p", "-x264-params",
                    f"keyint={FPS}:min-keyint={FPS}:scenecut=0:bframes=0", "-f", "h264",
                    str(path)], check=True, capture_output=True)
    return h26x.access_units("h264", h26x.split_annexb(path.read_bytes()))


def write_footage(db, store: Path, camera_id: int, start_ms: int, aus: list[bytes], *,
                  segment_s: int = 4, now_ms: int | None = None,
                  size: tuple[int, int] = (640, 360)) -> list[int]:
    """Write ``aus`` as segments of ``segment_s`` seconds from ``start_ms``; returns their
    sequence numbers."""
    per = segment_s * FPS
    seqs = []
    with db.session() as s:
        cam = s.get(Camera, camera_id)
        uid = cam.uid
    for i in range(0, len(aus), per):
        chunk = aus[i:i + per]
        t0 = start_ms + i * 1000 // FPS
        rel = f"{uid}/{t0}.mp4"
        path = store / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        w = SegmentWriter(path, [Track.video("h264", chunk[0])], fragment_duration=1.0)
        for j, au in enumerate(chunk):
            w.write_sample(1, j * TICKS, au, h26x.is_keyframe("h264", au))
        w.close({1: len(chunk) * TICKS})
        path.chmod(0o444)
        data = path.read_bytes()
        dur = len(chunk) * 1000 // FPS
        rec = SegmentRecord(start_ms=t0, end_ms=t0 + dur, frames=len(chunk), nbytes=len(data),
                            sha256=hashlib.sha256(data).hexdigest(), path=rel,
                            video_codec="h264", width=size[0], height=size[1], fps=float(FPS))
        with db.session() as s:
            seg = append_segment(s, s.get(Camera, camera_id), rec, now_ms or t0 + dur)
            seqs.append(seg.seq)
    return seqs
