"""Test helper for GB/T 28181 media answering: real H.264 recordings in the segment store.

``synthetic_minute`` encodes one minute of 320x180 video with libx264 (PyAV) in which every
picture carries the simulated cameras' time code (:mod:`viis.simcam.timecode`) of its
recording time modulo one minute. ``record_hour`` writes that minute as real fragmented-MP4
segments (the recorder's :class:`SegmentWriter`) at consecutive minutes and appends them to
the camera's index and hash chain (:func:`append_segment`), so a recorded hour costs one
minute of encoding. The files of an hour are copies of one minute: a reader sees 60
distinct segments whose time codes read ``recording time mod 60 s``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from viis.media import h26x
from viis.media.index import SegmentRecord, append_segment
from viis.media.mp4_format import Track
from viis.media.mp4_writer import SegmentWriter
from viis.registry.models import Camera
from viis.simcam.timecode import decode_timecode, draw_timecode

W, H, FPS, GOP = 320, 180, 5, 10
MINUTE_MS = 60_000


def synthetic_minute(fps: int = FPS, gop: int = GOP) -> list[tuple[int, list[bytes], bool]]:
    """(ms within the minute, NAL units, keyframe) for one minute of video."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = W, H, "yuv420p"
    enc.time_base = Fraction(1, fps)
    enc.framerate = Fraction(fps, 1)
    enc.gop_size = gop
    enc.options = {"preset": "ultrafast", "tune": "zerolatency", "bf": "0",
                   "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:repeat-headers=1"}
    out: list[tuple[int, list[bytes], bool]] = []
    n = 60 * fps
    for i in range(n):
        ms = i * 1000 // fps
        y = np.full((H, W), 60 + (i % 50), np.uint8)
        y[H // 2:, (i * 4) % W:] = 200  # something that moves
        draw_timecode(y, ms)
        yuv = np.concatenate([y, np.full((H // 2, W), 128, np.uint8)])
        frame = av.VideoFrame.from_ndarray(yuv.reshape(H * 3 // 2, W), format="yuv420p")
        frame.pts = i
        for pkt in enc.encode(frame):
            out.append((int(pkt.pts) * 1000 // fps, h26x.split_annexb(bytes(pkt)), pkt.is_keyframe))
    for pkt in enc.encode(None):
        out.append((int(pkt.pts) * 1000 // fps, h26x.split_annexb(bytes(pkt)), pkt.is_keyframe))
    return out


def write_minute(path: Path, frames) -> tuple[int, int, str]:
    """One segment file of the minute; (frames, bytes, sha256)."""
    first = next(n for _t, n, k in frames if k)
    track = Track.video("h264", first, track_id=1)
    w = SegmentWriter(str(path), [track], fragment_duration=1.0, creation_time=0)
    for t, nals, key in frames:
        w.write_sample(1, t * 90, nals, key)
    info = w.close({1: MINUTE_MS * 90})
    return info.frames, info.size, info.sha256


def record_hour(db, root: Path, camera_id: int, start_ms: int, minutes: int = 60,
                now_ms: int | None = None, frames=None) -> list[int]:
    """``minutes`` segments of one minute from ``start_ms`` (a multiple of a minute keeps
    the time codes equal to recording time mod 60 s). Returns the segment ids."""
    assert start_ms % MINUTE_MS == 0
    frames = frames if frames is not None else synthetic_minute()
    with db.session() as s:
        uid = s.get(Camera, camera_id).uid
    d = root / uid / "gbtest"
    d.mkdir(parents=True, exist_ok=True)
    proto = d / "minute.proto"
    nframes, nbytes, sha = write_minute(proto, frames)
    ids = []
    for i in range(minutes):
        t = start_ms + i * MINUTE_MS
        p = d / f"{t}.mp4"
        shutil.copyfile(proto, p)
        os.chmod(p, 0o444)
        rec = SegmentRecord(start_ms=t, end_ms=t + MINUTE_MS, frames=nframes, nbytes=nbytes,
                            sha256=sha, path=str(p.relative_to(root)), video_codec="h264",
                            width=W, height=H, fps=float(FPS))
        with db.session() as s:
            ids.append(append_segment(s, s.get(Camera, camera_id), rec,
                                      now_ms if now_ms is not None else t + MINUTE_MS).id)
    proto.unlink()
    return ids


def decode_codes(nal_frames: list[list[bytes]]) -> list[int | None]:
    """Time codes of the pictures decoded from H.264 access units (NAL lists)."""
    dec = av.CodecContext.create("h264", "r")
    codes: list[int | None] = []
    for nals in nal_frames:
        data = b"".join(b"\x00\x00\x00\x01" + n for n in nals)
        for fr in dec.decode(av.Packet(data)):
            codes.append(decode_timecode(fr.to_ndarray(format="gray")))
    return codes


def sha256_file(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()
