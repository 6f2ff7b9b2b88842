"""Evidence pictures: a decoded keyframe's luma plane as a JPEG (PyAV's MJPEG encoder, no
extra imaging library). Kept with the fault ticket (Q19.3)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np


def jpeg(luma: np.ndarray, quality: int = 5) -> bytes:
    """Gray JPEG of a luma plane (even size enforced by cropping one row/column)."""
    y = np.ascontiguousarray(luma[: luma.shape[0] & ~1, : luma.shape[1] & ~1], dtype=np.uint8)
    h, w = y.shape
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height = w, h
    ctx.pix_fmt = "yuvj420p"
    ctx.time_base = Fraction(1, 25)
    ctx.options = {"qmin": str(quality), "qmax": str(quality)}
    frame = av.VideoFrame.from_ndarray(y, format="gray").reformat(format="yuvj420p")
    data = b"".join(bytes(p) for p in ctx.encode(frame)) + b"".join(bytes(p) for p in ctx.encode(None))
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("the JPEG encoder gave no picture")
    return data
