"""Video quality diagnosis (视频质量诊断, Q19.3 "keep images clear"; Q18.1/Q18.2/N23.1 cameras
not obstructed, covered or moved).

One keyframe per camera and interval is decoded alone (PyAV, Annex-B), reduced to a small
gray picture by an exact integer block mean, and judged with cheap numpy metrics. Each
detector gives a score, compares it with a threshold and yields a :class:`Verdict`; a
:class:`Persistence` rule (N bad of the last M samples, lasting at least a minimum time)
turns verdicts into open/clear transitions, so one odd frame raises nothing.

Detectors (``kind`` is the fault kind):

* ``video_black``      - most grid cells dark *and* flat (a textured night scene is not black).
* ``video_no_signal``  - most grid cells flat at any level (blue/grey "no video" screens).
* ``video_frozen``     - almost every cell bit-identical to the previous sample while the
  keyframe wall time advanced. A live camera's sensor noise always changes some pixels; a
  frozen encoder repeats the same decoded picture.
* ``video_blur``       - median per-cell sharpness (Laplacian energy) against the reference.
* ``video_occluded``   - share of textured reference cells whose edge density *and* entropy
  collapsed (part of the lens covered).
* ``video_scene_change`` - the view moved against the reference (phase correlation), or the
  picture no longer resembles the reference at all.

References are learned per camera from the first K healthy samples (:class:`ReferenceBuilder`)
and can be re-taken. See ``docs/design/health.md``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import av
import numpy as np

START_CODE = b"\x00\x00\x00\x01"

KINDS = ("video_black", "video_no_signal", "video_frozen", "video_blur", "video_occluded",
         "video_scene_change")
SEVERITY = {"video_black": "critical", "video_no_signal": "critical", "video_frozen": "critical",
            "video_occluded": "critical", "video_blur": "warning", "video_scene_change": "warning"}


class DecodeError(ValueError):
    """The keyframe did not decode to a picture."""


# ------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class VqdConfig:
    """Thresholds. Luma values are 8-bit levels of the downscaled picture."""

    min_width: int = 160            # downscaled width is kept in [min_width, max_width]
    max_width: int = 320
    grid: tuple[int, int] = (8, 6)  # cells across, down
    # black / no signal
    dark_luma: float = 40.0         # cell mean below -> dark
    flat_std: float = 5.0           # cell std (of the 2x2-pooled picture) below -> flat
    black_frac: float = 0.70        # share of dark-and-flat cells for "black"
    uniform_frac: float = 0.80      # share of flat cells for "no signal"
    # frozen
    frozen_mad: float = 0.02        # cell mean |difference| below -> unchanged
    frozen_frac: float = 0.90       # share of unchanged cells for "frozen"
    # blur
    blur_ratio: float = 0.40        # cell sharpness / reference below -> blurred ...
    blur_quantile: float = 0.75     # ... at this quantile of the textured cells
    # occlusion
    edge_level: float = 12.0        # gradient magnitude of an edge pixel
    occl_edge_ratio: float = 0.35   # cell edge density / reference below ...
    occl_std_ratio: float = 0.25    # ... and the cell went flat (std below this share of the
    occl_entropy_drop: float = 1.0  # reference's, or below flat_std) or lost this many bits
    occl_frac: float = 0.20         # share of textured reference cells collapsed -> occluded
    textured_edge_density: float = 0.03  # a reference cell with fewer edges cannot collapse
    # scene change
    shift_frac: float = 0.02        # displacement / picture width at or above -> moved
    shift_peak: float = 0.06        # phase correlation peak needed to trust a displacement
    similarity_min: float = 0.35    # zero-shift correlation with the reference below -> changed
    # reference
    reference_samples: int = 3


# ------------------------------------------------------------------ decoding


def annexb(nals: list[bytes]) -> bytes:
    return b"".join(START_CODE + bytes(n) for n in nals)


def decode_keyframe(codec: str, nals: list[bytes] | bytes) -> np.ndarray:
    """Decode one self-contained keyframe; returns the luma plane (uint8, h x w)."""
    data = nals if isinstance(nals, (bytes, bytearray)) else annexb(nals)
    ctx = av.CodecContext.create({"h265": "hevc"}.get(codec, codec), "r")
    ctx.thread_count = 1
    frames = []
    try:
        for pkt in ctx.parse(data) + ctx.parse(b""):
            frames.extend(ctx.decode(pkt))
        frames.extend(ctx.decode(None))
    except av.error.FFmpegError as e:
        raise DecodeError(f"{codec} keyframe does not decode: {e}") from e
    if not frames:
        raise DecodeError(f"{codec} keyframe gave no picture")
    f = frames[0]
    if f.format.name in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p",
                         "gray", "nv12"):
        p = f.planes[0]
        y = np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width]
        return y
    return f.to_ndarray(format="gray")


def downscale_factor(width: int, height: int, cfg: VqdConfig = VqdConfig()) -> int:
    """The smallest integer factor that divides both sides exactly and brings the width to at
    most ``max_width`` (but not below ``min_width``); 0 if none exists (then the picture is
    cropped to a multiple of the factor that fits)."""
    lo = max(1, -(-width // cfg.max_width))
    for s in range(lo, max(lo, width // cfg.min_width) + 1):
        if width % s == 0 and height % s == 0:
            return s
    return 0


def to_small(y: np.ndarray, cfg: VqdConfig = VqdConfig()) -> np.ndarray:
    """Block mean of the luma plane by an exact integer factor (float32)."""
    h, w = y.shape
    s = downscale_factor(w, h, cfg)
    if s == 0:  # no exact divisor in range: crop the odd rows/columns off the far edges
        s = max(1, -(-w // cfg.max_width))
        y = y[: h - h % s, : w - w % s]
        h, w = y.shape
    if s == 1:
        return y.astype(np.float32)
    a = y.reshape(h, w // s, s).sum(axis=2, dtype=np.uint32)
    a = a.reshape(h // s, s, w // s).sum(axis=1, dtype=np.uint32)
    return a.astype(np.float32) * (1.0 / (s * s))


# ------------------------------------------------------------------ metrics


@dataclass
class Metrics:
    pic: np.ndarray            # downscaled gray picture (region of interest)
    mean: float
    std: float
    cell_mean: np.ndarray      # (gy, gx)
    cell_std: np.ndarray       # of the 2x2-pooled picture: sensor noise mostly averaged out
    cell_sharp: np.ndarray     # mean squared Laplacian (of the pooled picture)
    cell_edges: np.ndarray     # share of pixels with a gradient above edge_level
    cell_entropy: np.ndarray   # bits, 32-bin histogram


def _cells(a: np.ndarray, gx: int, gy: int) -> np.ndarray:
    """Per-cell mean of a 2-D array, cropping to a multiple of the grid."""
    h, w = a.shape
    ch, cw = h // gy, w // gx
    a = a[: ch * gy, : cw * gx]
    return a.reshape(gy, ch, gx, cw).mean(axis=(1, 3))


def measure(pic: np.ndarray, cfg: VqdConfig = VqdConfig()) -> Metrics:
    gx, gy = cfg.grid
    h, w = pic.shape
    # pooled 2x2: halves sensor noise, keeps structure
    ph, pw = h // 2, w // 2
    pooled = pic[: ph * 2, : pw * 2].reshape(ph, 2, pw, 2).mean(axis=(1, 3))
    pm = _cells(pooled, gx, gy)
    pm2 = _cells(pooled * pooled, gx, gy)
    cell_std = np.sqrt(np.maximum(pm2 - pm * pm, 0.0))
    lap = np.zeros_like(pooled)
    lap[1:-1, 1:-1] = (pooled[:-2, 1:-1] + pooled[2:, 1:-1] + pooled[1:-1, :-2]
                       + pooled[1:-1, 2:] - 4.0 * pooled[1:-1, 1:-1])
    cell_sharp = _cells(lap * lap, gx, gy)
    gxr = np.zeros_like(pic)
    gyr = np.zeros_like(pic)
    gxr[:, 1:-1] = pic[:, 2:] - pic[:, :-2]
    gyr[1:-1, :] = pic[2:, :] - pic[:-2, :]
    edges = (np.abs(gxr) + np.abs(gyr)) > (2.0 * cfg.edge_level)
    cell_edges = _cells(edges.astype(np.float32), gx, gy)
    # entropy per cell: one bincount over (cell, bin)
    ch, cw = h // gy, w // gx
    q = np.clip(pic[: ch * gy, : cw * gx], 0, 255).astype(np.uint8) >> 3
    cell_id = (np.arange(gy).repeat(ch)[:, None] * gx + np.arange(gx).repeat(cw)[None, :])
    counts = np.bincount((cell_id * 32 + q).ravel(), minlength=gx * gy * 32)
    p = counts.reshape(gy, gx, 32).astype(np.float32) / float(ch * cw)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.nansum(np.where(p > 0, p * np.log2(p), 0.0), axis=2)
    return Metrics(pic=pic, mean=float(pic.mean()), std=float(pic.std()), cell_mean=_cells(pic, gx, gy),
                   cell_std=cell_std, cell_sharp=cell_sharp, cell_edges=cell_edges,
                   cell_entropy=ent.astype(np.float32))


# ------------------------------------------------------------------ reference


@dataclass
class Reference:
    pic: np.ndarray
    cell_std: np.ndarray
    cell_sharp: np.ndarray
    cell_edges: np.ndarray
    cell_entropy: np.ndarray
    samples: int
    wall_ms: int


class ReferenceBuilder:
    """Collects the first K healthy samples of a camera; the reference is their per-pixel and
    per-cell median (moving objects in one sample do not stick)."""

    def __init__(self, k: int) -> None:
        self.k = max(1, k)
        self._m: list[Metrics] = []

    def add(self, m: Metrics, wall_ms: int) -> Reference | None:
        if self._m and self._m[0].pic.shape != m.pic.shape:
            self._m = []  # resolution changed: start over
        self._m.append(m)
        if len(self._m) < self.k:
            return None
        ms, self._m = self._m, []
        med = lambda name: np.median(np.stack([getattr(x, name) for x in ms]), axis=0)  # noqa: E731
        return Reference(pic=med("pic").astype(np.float32), cell_std=med("cell_std"), cell_sharp=med("cell_sharp"),
                         cell_edges=med("cell_edges"), cell_entropy=med("cell_entropy"),
                         samples=len(ms), wall_ms=wall_ms)


# ------------------------------------------------------------------ detectors


@dataclass(frozen=True)
class Verdict:
    kind: str
    bad: bool
    score: float
    threshold: float
    detail: str = ""

    def message(self) -> str:
        return f"{self.kind}: score {self.score:.3f} (threshold {self.threshold:g}){self.detail}"


def detect_black(m: Metrics, cfg: VqdConfig = VqdConfig()) -> Verdict:
    flat = m.cell_std < cfg.flat_std
    score = float(np.mean(flat & (m.cell_mean < cfg.dark_luma)))
    return Verdict("video_black", score >= cfg.black_frac, score, cfg.black_frac,
                   f"; share of dark flat cells, mean luma {m.mean:.1f}")


def detect_uniform(m: Metrics, cfg: VqdConfig = VqdConfig()) -> Verdict:
    flat = m.cell_std < cfg.flat_std
    score = float(np.mean(flat))
    bad = score >= cfg.uniform_frac and float(np.median(m.cell_mean)) >= cfg.dark_luma
    return Verdict("video_no_signal", bad, score, cfg.uniform_frac,
                   f"; share of flat cells, mean luma {m.mean:.1f}")


def detect_frozen(m: Metrics, prev: Metrics | None, dt_ms: int,
                  cfg: VqdConfig = VqdConfig()) -> Verdict | None:
    """None when there is nothing to compare (first sample, size change, time did not move)."""
    if prev is None or prev.pic.shape != m.pic.shape or dt_ms <= 0:
        return None
    mad = _cells(np.abs(m.pic - prev.pic), *cfg.grid)
    score = float(np.mean(mad < cfg.frozen_mad))
    return Verdict("video_frozen", score >= cfg.frozen_frac, score, cfg.frozen_frac,
                   f"; share of unchanged cells over {dt_ms / 1000:.1f} s, "
                   f"mean |diff| {float(mad.mean()):.3f}")


def detect_blur(m: Metrics, ref: Reference, cfg: VqdConfig = VqdConfig()) -> Verdict | None:
    textured = ref.cell_sharp > 4.0
    if textured.sum() < 3:
        return None
    ratio = m.cell_sharp[textured] / ref.cell_sharp[textured]
    # blur is global: the sharpest quarter of the cells must have lost it too (a partial
    # cover or a dark corner is not blur)
    score = float(np.quantile(ratio, cfg.blur_quantile))
    return Verdict("video_blur", score < cfg.blur_ratio, score, cfg.blur_ratio,
                   f"; sharpness against the reference ({cfg.blur_quantile:.0%} quantile of cells)")


def detect_occlusion(m: Metrics, ref: Reference, cfg: VqdConfig = VqdConfig()) -> Verdict | None:
    textured = ref.cell_edges >= cfg.textured_edge_density
    n = int(textured.sum())
    if n < 4:
        return None
    flat = m.cell_std < np.maximum(cfg.flat_std, cfg.occl_std_ratio * ref.cell_std)
    lost = m.cell_entropy <= ref.cell_entropy - cfg.occl_entropy_drop
    collapsed = (m.cell_edges < cfg.occl_edge_ratio * ref.cell_edges) & (flat | lost) & textured
    score = float(collapsed.sum()) / n
    return Verdict("video_occluded", score >= cfg.occl_frac, score, cfg.occl_frac,
                   f"; share of textured cells with edges and entropy collapsed ({int(collapsed.sum())}/{n})")


def _window(h: int, w: int) -> np.ndarray:
    return (np.hanning(h)[:, None] * np.hanning(w)[None, :]).astype(np.float32)


def phase_correlation(a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """Displacement (dy, dx) of ``b`` against ``a`` and the peak height (0..1)."""
    h, w = a.shape
    win = _window(h, w)
    fa = np.fft.rfft2((a - a.mean()) * win)
    fb = np.fft.rfft2((b - b.mean()) * win)
    r = fb * np.conj(fa)
    r /= np.abs(r) + 1e-6
    c = np.fft.irfft2(r, s=(h, w))
    i = int(np.argmax(c))
    dy, dx = divmod(i, w)
    if dy > h // 2:
        dy -= h
    if dx > w // 2:
        dx -= w
    return dy, dx, float(c.flat[i])


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    d = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / d if d > 0 else 0.0


def detect_scene_change(m: Metrics, ref: Reference, cfg: VqdConfig = VqdConfig()) -> Verdict | None:
    if ref.pic.shape != m.pic.shape:
        return None
    h, w = m.pic.shape
    dy, dx, peak = phase_correlation(ref.pic, m.pic)
    disp = math.hypot(dx, dy) / w
    sim = _ncc(ref.pic, m.pic)
    moved = disp >= cfg.shift_frac and peak >= cfg.shift_peak
    changed = sim < cfg.similarity_min
    score = disp if moved or not changed else 1.0 - sim
    if moved:
        detail = f"; picture content displaced by dx={dx} dy={dy} px of {w}x{h} (peak {peak:.2f})"
        thr = cfg.shift_frac
    else:
        detail = f"; correlation with the reference {sim:.2f}, displacement {disp:.3f}"
        thr = cfg.shift_frac if not changed else 1.0 - cfg.similarity_min
    return Verdict("video_scene_change", moved or changed, score, thr, detail)


# ------------------------------------------------------------------ one camera


@dataclass
class Sample:
    wall_ms: int
    verdicts: dict[str, Verdict | None]
    metrics: Metrics


class CameraVqd:
    """Per-camera state: previous sample, reference, detectors with precedence. A sample
    judged black/no-signal is not judged for the other faults; while the reference is being
    learned only black, no-signal and frozen are judged."""

    def __init__(self, cfg: VqdConfig = VqdConfig(), roi: tuple[int, int, int, int] | None = None):
        self.cfg = cfg
        self.roi = roi
        self.prev: Metrics | None = None
        self.prev_ms: int | None = None
        self.reference: Reference | None = None
        self._builder = ReferenceBuilder(cfg.reference_samples)

    def retake_reference(self) -> None:
        self.reference = None
        self._builder = ReferenceBuilder(self.cfg.reference_samples)

    def picture(self, luma: np.ndarray) -> np.ndarray:
        if self.roi is not None:
            x0, y0, x1, y1 = self.roi
            luma = luma[y0:y1, x0:x1]
        return to_small(luma, self.cfg)

    def diagnose_luma(self, luma: np.ndarray, wall_ms: int) -> Sample:
        return self.diagnose(self.picture(luma), wall_ms)

    def diagnose(self, pic: np.ndarray, wall_ms: int) -> Sample:
        cfg = self.cfg
        m = measure(pic, cfg)
        v: dict[str, Verdict | None] = dict.fromkeys(KINDS)
        v["video_black"] = detect_black(m, cfg)
        v["video_no_signal"] = detect_uniform(m, cfg)
        blank = v["video_black"].bad or v["video_no_signal"].bad
        if not blank:
            v["video_frozen"] = detect_frozen(m, self.prev, wall_ms - (self.prev_ms or wall_ms), cfg)
        ref = self.reference
        if ref is not None and ref.pic.shape != m.pic.shape:
            self.retake_reference()  # resolution changed
            ref = None
        if ref is not None and not blank:
            v["video_blur"] = detect_blur(m, ref, cfg)
            v["video_occluded"] = detect_occlusion(m, ref, cfg)
            v["video_scene_change"] = detect_scene_change(m, ref, cfg)
            if v["video_occluded"] is not None and v["video_occluded"].bad:
                # a cover drags sharpness and correlation down with it: report the cause
                v["video_blur"] = None
                v["video_scene_change"] = None
        elif ref is None and not blank and not (v["video_frozen"] and v["video_frozen"].bad):
            self.reference = self._builder.add(m, wall_ms)
        self.prev, self.prev_ms = m, wall_ms
        return Sample(wall_ms, v, m)


# ------------------------------------------------------------------ persistence


@dataclass
class Persistence:
    """Raise when at least ``n`` of the last ``m`` judged samples are bad and the first bad one
    of the run is at least ``min_ms`` old; clear after ``clear_n`` good samples in a row.
    Samples that cannot be judged (None) are skipped."""

    n: int = 4
    m: int = 6
    min_ms: int = 30_000
    clear_n: int = 3
    active: bool = False
    since_ms: int | None = None
    window: deque = field(default_factory=deque)
    good_run: int = 0

    def update(self, bad: bool | None, wall_ms: int) -> str | None:
        """Returns "raise", "clear" or None."""
        if bad is None:
            return None
        self.window.append(bad)
        while len(self.window) > self.m:
            self.window.popleft()
        if bad:
            self.good_run = 0
            if self.since_ms is None:
                self.since_ms = wall_ms
        else:
            self.good_run += 1
            if not any(self.window):
                self.since_ms = None
        if not self.active:
            if (sum(self.window) >= self.n and self.since_ms is not None
                    and wall_ms - self.since_ms >= self.min_ms):
                self.active = True
                return "raise"
        elif self.good_run >= self.clear_n:
            self.active = False
            self.since_ms = None
            self.window.clear()
            return "clear"
        return None
