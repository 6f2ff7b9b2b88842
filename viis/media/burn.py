"""Transcoding an exported range when its pixels must change: privacy masks burned in
opaque (Q9.2), a visible watermark naming the request, the requester and the time (Q20.5,
Q24.1), and for publication faces and licence plates pixelated (N22.1).

This is the one place where VIIS decodes and re-encodes footage (invariant 6: stream copy
everywhere else). The input is the stream-copied MP4 of the range
(:func:`viis.media.mp4_export.export_range`); the output is a new faststart MP4, H.264,
same size and timestamps (a recording gap stays a frozen frame of the same length).
Audio, when the source has any, is copied unchanged.

Pixels are changed in the decoded YUV 4:2:0 planes, never in RGB, so the per-frame cost is a
few numpy operations on precomputed bitmaps:

* masks: each polygon is rasterised once per picture size (OpenCV ``fillPoly``), dilated by
  2 px so the edge never shows through, and written as black (Y=16, U=V=128) before the
  encoder sees the frame — nothing of the masked area exists in the output;
* watermark: a band along the bottom, darkened, with the text in white (Hershey font, so
  the text is ASCII; names that are not ASCII are shown by work ID and login instead);
* publication: OpenCV's Haar cascades shipped inside ``opencv-python-headless`` (frontal
  face, profile face, Russian plate number) run on the luma plane, downscaled, every few
  frames; each hit is enlarged and pixelated in all three planes. See the caveats in
  ``docs/design/evidence.md``: Haar detectors miss small, turned and dark faces, and the
  plate cascade was trained on Russian plates.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from viis.registry.masks import Polygon

BLACK_Y, NEUTRAL_C = 16, 128
WHITE_Y = 235
MASK_GROW_PX = 2
DETECT_EVERY = 5  # frames between detector runs (publication)
DETECT_WIDTH = 640  # detectors run on the luma plane scaled to this width
PIXEL_BLOCK = 16


@dataclass(frozen=True)
class BurnOptions:
    masks: Sequence[Polygon] = ()
    watermark: str | None = None
    publication: bool = False  # blur faces and licence plates (N22.1)
    crf: int = 20
    preset: str = "veryfast"


@dataclass
class BurnResult:
    frames: int = 0
    width: int = 0
    height: int = 0
    faces: int = 0  # detections pixelated (publication)
    plates: int = 0
    audio_packets: int = 0
    masked_fraction: float = 0.0  # share of the picture under masks
    detectors: list[str] = field(default_factory=list)


def ascii_text(text: str) -> str:
    """Hershey fonts draw ASCII only; anything else becomes '?'."""
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)


def mask_bitmap(masks: Sequence[Polygon], width: int, height: int) -> np.ndarray:
    """Boolean (height, width) of the pixels under any mask, grown by MASK_GROW_PX."""
    import cv2

    canvas = np.zeros((height, width), np.uint8)
    for poly in masks:
        pts = np.array([[x * width, y * height] for x, y in poly.points], np.float64)
        # fillPoly takes fixed-point coordinates: 4 fractional bits keep sub-pixel vertices
        cv2.fillPoly(canvas, [np.round(pts * 16).astype(np.int32)], 255, lineType=cv2.LINE_8,
                     shift=4)
    if MASK_GROW_PX and canvas.any():
        k = 2 * MASK_GROW_PX + 1
        canvas = cv2.dilate(canvas, np.ones((k, k), np.uint8))
    return canvas > 0


def _chroma(bitmap: np.ndarray) -> np.ndarray:
    h, w = bitmap.shape
    return bitmap.reshape(h // 2, 2, w // 2, 2).any(axis=(1, 3))


def watermark_band(text: str, width: int, height: int) -> tuple[slice, np.ndarray]:
    """(rows of the band, boolean text bitmap of the band)."""
    import cv2

    band_h = max(16, (height // 18) // 2 * 2)
    canvas = np.zeros((band_h, width), np.uint8)
    text = ascii_text(text)
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = band_h / 40.0
    thick = max(1, round(band_h / 18))
    (tw, _th), _ = cv2.getTextSize(text, font, scale, thick)
    if tw > width - 8:  # shrink to fit the picture width
        scale *= (width - 8) / tw
    cv2.putText(canvas, text, (4, int(band_h * 0.72)), font, scale, 255, thick, cv2.LINE_AA)
    return slice(height - band_h, height), canvas > 96


class _Detector:
    """Faces and plates on the luma plane (N22.1), every DETECT_EVERY frames."""

    CASCADES = (("face", "haarcascade_frontalface_default.xml"),
                ("face", "haarcascade_profileface.xml"),
                ("plate", "haarcascade_russian_plate_number.xml"))

    def __init__(self) -> None:
        import cv2

        self.cv2 = cv2
        self.cascades = []
        for kind, name in self.CASCADES:
            c = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, name))
            if c.empty():
                raise RuntimeError(f"the OpenCV package lacks {name}; install "
                                   "opencv-python-headless 4.x")
            self.cascades.append((kind, name, c))
        self.boxes: list[tuple[int, int, int, int]] = []
        self.prev: list[tuple[int, int, int, int]] = []

    def names(self) -> list[str]:
        return [n for _k, n, _c in self.cascades]

    def detect(self, y: np.ndarray, result: BurnResult) -> None:
        cv2 = self.cv2
        h, w = y.shape
        f = min(1.0, DETECT_WIDTH / w)
        small = cv2.resize(y, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA) \
            if f < 1 else y
        small = cv2.equalizeHist(small)
        boxes = []
        for kind, _name, c in self.cascades:
            found = c.detectMultiScale(small, scaleFactor=1.1, minNeighbors=4,
                                       minSize=(16, 16) if kind == "face" else (24, 8))
            for (x, yy, bw, bh) in (found if len(found) else ()):
                boxes.append(tuple(int(round(v / f)) for v in (x, yy, bw, bh)))
                if kind == "face":
                    result.faces += 1
                else:
                    result.plates += 1
        # keep the previous run's boxes too: a face moves between runs
        self.prev, self.boxes = self.boxes, boxes

    def apply(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        h, w = y.shape
        for (x, yy, bw, bh) in self.boxes + self.prev:
            gx, gy = bw // 4, bh // 4  # enlarge by 50 %: hair, the plate's frame
            x0, y0 = max(0, (x - gx) // 2 * 2), max(0, (yy - gy) // 2 * 2)
            x1, y1 = min(w, x + bw + gx), min(h, yy + bh + gy)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            _pixelate(y[y0:y1, x0:x1], PIXEL_BLOCK)
            _pixelate(u[y0 // 2:y1 // 2, x0 // 2:x1 // 2], PIXEL_BLOCK // 2)
            _pixelate(v[y0 // 2:y1 // 2, x0 // 2:x1 // 2], PIXEL_BLOCK // 2)


def _pixelate(region: np.ndarray, block: int) -> None:
    import cv2

    h, w = region.shape
    if h == 0 or w == 0:
        return
    small = cv2.resize(region, (max(1, w // block), max(1, h // block)),
                       interpolation=cv2.INTER_AREA)
    region[:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def transcode(src: str | os.PathLike, dst: str | os.PathLike, opts: BurnOptions, *,
              progress: Callable[[int], None] | None = None) -> BurnResult:
    """Write ``src`` to ``dst`` with ``opts`` burned into every frame. ``progress(frames)``
    is called every 25 frames. ``dst`` appears only when complete (written beside it, then
    renamed)."""
    dst = Path(dst)
    tmp = dst.with_name(dst.name + f".{os.getpid()}.part")
    result = BurnResult()
    try:
        _transcode(Path(src), tmp, opts, result, progress)
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()
    return result


def _transcode(src: Path, dst: Path, opts: BurnOptions, result: BurnResult,
               progress: Callable[[int], None] | None) -> None:
    with av.open(str(src)) as inp:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        ain = inp.streams.audio[0] if inp.streams.audio else None
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        with av.open(str(dst), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            vout = out.add_stream("libx264", rate=rate)
            vout.width, vout.height = vin.codec_context.width, vin.codec_context.height
            vout.pix_fmt = "yuv420p"
            vout.time_base = vin.time_base
            vout.options = {"crf": str(opts.crf), "preset": opts.preset}
            vout.thread_type = "AUTO"
            aout = None
            if ain is not None:
                try:
                    aout = out.add_stream_from_template(ain)
                except (ValueError, av.FFmpegError):
                    aout = None  # a codec MP4 cannot carry: the picture is what is evidence
            state = _FrameState(opts, result)
            streams = [vin] + ([ain] if aout is not None else [])
            for packet in inp.demux(*streams):
                if packet.stream is vin:
                    for frame in packet.decode():
                        out.mux(vout.encode(state.burn(frame)))
                        if progress is not None and result.frames % 25 == 0:
                            progress(result.frames)
                elif packet.dts is not None:
                    packet.stream = aout
                    out.mux(packet)
                    result.audio_packets += 1
            out.mux(vout.encode(None))
    if progress is not None:
        progress(result.frames)


class _FrameState:
    def __init__(self, opts: BurnOptions, result: BurnResult) -> None:
        self.opts, self.result = opts, result
        self.size: tuple[int, int] | None = None
        self.detector = _Detector() if opts.publication else None
        if self.detector is not None:
            result.detectors = self.detector.names()

    def _prepare(self, w: int, h: int) -> None:
        self.size = (w, h)
        self.result.width, self.result.height = w, h
        m = mask_bitmap(self.opts.masks, w, h) if self.opts.masks else None
        self.mask = m if m is not None and m.any() else None
        self.mask_c = _chroma(self.mask) if self.mask is not None else None
        self.result.masked_fraction = float(self.mask.mean()) if self.mask is not None else 0.0
        self.band = watermark_band(self.opts.watermark, w, h) if self.opts.watermark else None

    def burn(self, frame: av.VideoFrame) -> av.VideoFrame:
        w, h = frame.width, frame.height
        if w % 2 or h % 2:
            raise ValueError(f"a {w}x{h} picture cannot be 4:2:0; odd sizes are not supported")
        if self.size != (w, h):
            self._prepare(w, h)
        arr = frame.to_ndarray(format="yuv420p")  # (h * 3/2, w): Y, then U and V planes
        flat = arr.reshape(-1)  # views, so the planes below write into ``arr``
        q = w * h // 4
        y = flat[:w * h].reshape(h, w)
        u = flat[w * h:w * h + q].reshape(h // 2, w // 2)
        v = flat[w * h + q:].reshape(h // 2, w // 2)
        if self.detector is not None:
            if self.result.frames % DETECT_EVERY == 0:
                self.detector.detect(y, self.result)
            self.detector.apply(y, u, v)
        if self.mask is not None:  # after blurring: nothing may smear into a mask
            y[self.mask] = BLACK_Y
            u[self.mask_c] = NEUTRAL_C
            v[self.mask_c] = NEUTRAL_C
        if self.band is not None:
            rows, text = self.band
            yb = y[rows]
            yb[:] = (yb.astype(np.uint16) * 2 // 5 + 10).astype(np.uint8)
            yb[text] = WHITE_Y
            ch = slice(rows.start // 2, rows.stop // 2)
            u[ch] = NEUTRAL_C
            v[ch] = NEUTRAL_C
        out = av.VideoFrame.from_ndarray(arr, format="yuv420p")
        out.pts, out.time_base = frame.pts, frame.time_base
        self.result.frames += 1
        return out
