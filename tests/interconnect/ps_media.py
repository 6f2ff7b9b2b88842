"""Real H.264/H.265 streams for the PS and RTP tests: ffmpeg's testsrc encoded once per
session, split into access units; and ffprobe as the judge of what we produce."""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import pytest

from viis.media.h26x import access_units, is_keyframe, split_annexb

needs_ffmpeg = pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("ffprobe")),
                                  reason="ffmpeg/ffprobe not installed")
_DIR = Path(tempfile.mkdtemp(prefix="viis-ps-test-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)
FPS = 25
FRAME_90K = 90_000 // FPS


def _encode(codec: str, size: str, seconds: float, gop: int, bframes: int, extra: list[str],
            out: Path) -> None:
    enc = ["-c:v", "libx264", "-preset", "ultrafast", "-g", str(gop), "-bf", str(bframes)]
    if codec == "h265":
        enc = ["-c:v", "libx265", "-preset", "ultrafast",
               "-x265-params", f"log-level=error:keyint={gop}:min-keyint={gop}:bframes={bframes}"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=size={size}:rate={FPS}", "-t", str(seconds), *enc, *extra,
                    str(out)], check=True, timeout=300)


@cache
def clip(codec: str = "h264", size: str = "640x360", seconds: float = 4.0, gop: int = 25,
         bframes: int = 0) -> tuple[list[list[bytes]], Path]:
    """Access units (decode order) of a testsrc clip and the path of its MP4."""
    name = f"{codec}-{size}-{seconds}-{gop}-{bframes}"
    mp4 = _DIR / f"{name}.mp4"
    raw = _DIR / f"{name}.{codec}"
    _encode(codec, size, seconds, gop, bframes, [], mp4)
    bsf = "h264_mp4toannexb" if codec == "h264" else "hevc_mp4toannexb"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(mp4), "-c", "copy", "-bsf:v", bsf,
                    "-f", "h264" if codec == "h264" else "hevc", str(raw)], check=True, timeout=60)
    aus = access_units(codec, split_annexb(raw.read_bytes()))
    return aus, mp4


def keys(codec: str, aus: list[list[bytes]]) -> list[bool]:
    return [is_keyframe(codec, au) for au in aus]


def ffmpeg_ps(mp4: Path, codec: str, fmt: str) -> bytes:
    """The MP4's video stream-copied into a program stream by ffmpeg (-f vob / -f mpeg)."""
    out = mp4.with_suffix(f".{fmt}")
    bsf = "h264_mp4toannexb" if codec == "h264" else "hevc_mp4toannexb"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(mp4), "-c", "copy", "-bsf:v", bsf,
                    "-f", fmt, str(out)], check=True, timeout=60)
    return out.read_bytes()


def ffprobe_ps(data: bytes) -> dict:
    """ffprobe's view of a program stream: codec, size, decoded frame count, packet PTS."""
    path = Path(tempfile.mkstemp(suffix=".ps", dir=_DIR)[1])
    path.write_bytes(data)
    r = subprocess.run(["ffprobe", "-v", "error", "-f", "mpeg", "-count_frames",
                        "-select_streams", "v:0", "-show_entries",
                        "stream=codec_name,width,height,nb_read_frames:packet=pts",
                        "-of", "json", str(path)], capture_output=True, text=True, timeout=120)
    path.unlink()
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    s = info["streams"][0]
    return {"codec": s["codec_name"], "width": s["width"], "height": s["height"],
            "frames": int(s["nb_read_frames"]), "stderr": r.stderr,
            "pts": [int(p["pts"]) for p in info.get("packets", []) if "pts" in p]}
