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
* ``video_too_dark`` / ``video_too_bright`` - the median cell is darker / brighter than a
  usable picture (under/over-exposure; textured, so not black nor a uniform screen).
* ``video_colour_cast`` - the mean chroma moved away from the reference's *and* away from
  neutral (a failed white balance; a night scene turning grey is not a cast).
* ``video_noise`` - the median cell's high-frequency energy (the sharpness metric) rose well
  above the reference's (snow, interference, a failing sensor): blur's opposite; or the
  picture changes between two samples everywhere (median cell |difference|) several times
  more than the reference's own sensor noise did, with some extra high-frequency energy.
* ``video_stripes`` - the row (or column) profile of the difference to the reference has one
  dominant periodic component (interference bands).
* ``video_signal_loss`` - no keyframe from the camera for a time (:class:`SignalLoss`, judged
  by the monitor, not per sample).

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
         "video_scene_change", "video_too_dark", "video_too_bright", "video_colour_cast",
         "video_noise", "video_stripes")
SIGNAL_LOSS = "video_signal_loss"
ALL_KINDS = (*KINDS, SIGNAL_LOSS)
SEVERITY = {"video_black": "critical", "video_no_signal": "critical", "video_frozen": "critical",
            "video_occluded": "critical", "video_blur": "warning", "video_scene_change": "warning",
            "video_too_dark": "warning", "video_too_bright": "warning",
            "video_colour_cast": "warning", "video_noise": "warning", "video_stripes": "warning",
            SIGNAL_LOSS: "critical"}


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
    black_frac: float = 0.88        # share of dark-and-flat cells for "black"
    black_keeps_scene: float = 0.5  # ... unless the picture still correlates with the reference
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
    occl_mean_delta: float = 10.0   # a cover is an object: the cell's mean level changed too
    textured_edge_density: float = 0.03  # a reference cell with fewer edges cannot collapse
    # scene change
    shift_frac: float = 0.02        # displacement / picture width at or above -> moved
    shift_peak: float = 0.06        # phase correlation peak needed to trust a displacement
    similarity_min: float = 0.35    # zero-shift correlation with the reference below -> changed
    # exposure (median cell mean luma)
    too_dark_luma: float = 45.0
    too_bright_luma: float = 205.0
    # colour cast: chroma levels (8-bit, neutral = 128)
    neutral_chroma: float = 12.0    # |chroma - 128| below -> neutral (black must be neutral)
    screen_chroma: float = 20.0     # a flat picture this far from neutral is a "no video" screen
    cast_delta: float = 10.0        # moved this far from the reference's mean chroma ...
    cast_away: float = 6.0          # ... and this much further from neutral
    # noise: median over cells of sharpness / reference sharpness at or above
    noise_ratio: float = 1.6
    noise_temporal_ratio: float = 5.0  # median cell |sample - previous| / the reference's ...
    noise_temporal_min: float = 4.0    # ... and at least this many levels
    noise_support: float = 1.1         # with the spatial ratio at least this
    # stripes: one periodic component of the row/column profile of (picture - reference)
    stripes_amp: float = 5.0        # amplitude in levels
    stripes_share: float = 0.30     # share of the profile's detrended energy in that component
    # reference
    reference_samples: int = 3


# ------------------------------------------------------------------ decoding


def annexb(nals: list[bytes]) -> bytes:
    return b"".join(START_CODE + bytes(n) for n in nals)


def decode_keyframe(codec: str, nals: list[bytes] | bytes) -> np.ndarray:
    """Decode one self-contained keyframe; returns the luma plane (uint8, h x w)."""
    return decode_keyframe_yuv(codec, nals)[0]


def decode_keyframe_yuv(codec: str, nals: list[bytes] | bytes
                        ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Decode one self-contained keyframe; returns the planes (Y, U, V) as uint8 arrays
    without colour conversion (U and V None for a grey picture)."""
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

    def plane(i: int) -> np.ndarray:
        p = f.planes[i]
        return np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width]

    if f.format.name in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"):
        return plane(0), plane(1), plane(2)
    if f.format.name == "gray":
        return plane(0), None, None
    a = f.to_ndarray(format="yuv420p")
    h = f.height
    y = a[:h]
    rest = a[h:].reshape(-1)
    n = (h // 2) * (f.width // 2)
    return y, rest[:n].reshape(h // 2, f.width // 2), rest[n:2 * n].reshape(h // 2, f.width // 2)


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
    rows: np.ndarray           # mean of each row (stripes)
    cols: np.ndarray           # mean of each column
    chroma: tuple[float, float] | None = None  # mean U, V (None: grey or not given)


def _cells(a: np.ndarray, gx: int, gy: int) -> np.ndarray:
    """Per-cell mean of a 2-D array, cropping to a multiple of the grid."""
    h, w = a.shape
    ch, cw = h // gy, w // gx
    a = a[: ch * gy, : cw * gx]
    return a.reshape(gy, ch, gx, cw).mean(axis=(1, 3))


def measure(pic: np.ndarray, cfg: VqdConfig = VqdConfig(),
            chroma: tuple[float, float] | None = None) -> Metrics:
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
                   cell_entropy=ent.astype(np.float32), rows=pic.mean(axis=1), cols=pic.mean(axis=0), chroma=chroma)


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
    cell_mean: np.ndarray | None = None
    chroma: tuple[float, float] | None = None
    tmad: float | None = None  # median cell |sample - previous sample| while learning


class ReferenceBuilder:
    """Collects the first K healthy samples of a camera; the reference is their per-pixel and
    per-cell median (moving objects in one sample do not stick)."""

    def __init__(self, k: int) -> None:
        self.k = max(1, k)
        self._m: list[Metrics] = []
        self._t: list[float] = []  # change between consecutive samples: the sensor noise

    def add(self, m: Metrics, wall_ms: int, tmad: float | None = None) -> Reference | None:
        if self._m and self._m[0].pic.shape != m.pic.shape:
            self._m = []  # resolution changed: start over
            self._t = []
        self._m.append(m)
        if tmad is not None:
            self._t.append(tmad)
        if len(self._m) < self.k:
            return None
        ms, self._m = self._m, []
        ts, self._t = self._t, []
        med = lambda name: np.median(np.stack([getattr(x, name) for x in ms]), axis=0)  # noqa: E731
        chromas = [x.chroma for x in ms if x.chroma is not None]
        chroma = (tuple(float(c) for c in np.median(np.array(chromas), axis=0))
                  if len(chromas) == len(ms) else None)
        return Reference(pic=med("pic").astype(np.float32), cell_std=med("cell_std"), cell_sharp=med("cell_sharp"),
                         cell_edges=med("cell_edges"), cell_entropy=med("cell_entropy"),
                         samples=len(ms), wall_ms=wall_ms, cell_mean=med("cell_mean"),
                         chroma=chroma, tmad=float(np.median(ts)) if ts else None)


# ------------------------------------------------------------------ detectors


@dataclass(frozen=True)
class Verdict:
    kind: str
    bad: bool
    score: float
    threshold: float
    detail: str = ""
    cause: str = ""  # scene change: "moved" (a displacement was found) or "changed"

    def message(self) -> str:
        return f"{self.kind}: score {self.score:.3f} (threshold {self.threshold:g}){self.detail}"


def _chroma_dist(m: Metrics) -> float:
    """Distance of the mean chroma from neutral grey (0 when unknown)."""
    if m.chroma is None:
        return 0.0
    return math.hypot(m.chroma[0] - 128.0, m.chroma[1] - 128.0)


def detect_black(m: Metrics, cfg: VqdConfig = VqdConfig(), ref: Reference | None = None) -> Verdict:
    flat = m.cell_std < cfg.flat_std
    score = float(np.mean(flat & (m.cell_mean < cfg.dark_luma)))
    # a dark *coloured* flat screen (deep blue) is a "no video" screen, not a capped lens
    bad = score >= cfg.black_frac and _chroma_dist(m) < cfg.neutral_chroma
    detail = f"; share of dark flat cells, mean luma {m.mean:.1f}"
    if bad and ref is not None and ref.pic.shape == m.pic.shape:
        sim = _ncc(ref.pic, m.pic)
        if sim >= cfg.black_keeps_scene:  # the scene is still there, only very dark
            bad = False
            detail += f"; still the reference scene (correlation {sim:.2f}): too dark, not black"
    return Verdict("video_black", bad, score, cfg.black_frac, detail)


def detect_uniform(m: Metrics, cfg: VqdConfig = VqdConfig()) -> Verdict:
    flat = m.cell_std < cfg.flat_std
    score = float(np.mean(flat))
    med = float(np.median(m.cell_mean))
    lit = med >= cfg.dark_luma
    coloured = _chroma_dist(m) >= cfg.screen_chroma
    # a flat white picture is over-exposure (too bright), not a "no video" screen
    glare = med > cfg.too_bright_luma and not coloured
    bad = score >= cfg.uniform_frac and (lit or coloured) and not glare
    return Verdict("video_no_signal", bad, score, cfg.uniform_frac,
                   f"; share of flat cells, mean luma {m.mean:.1f}, chroma off grey by "
                   f"{_chroma_dist(m):.0f}")


def detect_exposure(m: Metrics, ref: Reference | None = None,
                    cfg: VqdConfig = VqdConfig()) -> tuple[Verdict, Verdict]:
    """Too dark / too bright: the median cell's mean luma (robust to a lamp or a dark
    corner). Judged after black and uniform screens, so what is left is textured. With a
    reference the change must also be global: (almost) no cell kept its brightness (a cover
    darkens only part of the picture, an exposure fault all of it)."""
    med = float(np.median(m.cell_mean))
    dark_global = bright_global = True
    if ref is not None and ref.cell_mean is not None and ref.cell_mean.shape == m.cell_mean.shape:
        ratio = (m.cell_mean - 16.0) / np.maximum(ref.cell_mean - 16.0, 4.0)
        # and the scene is still there, dimmed (a dark cover replaces it: occlusion)
        dark_global = (float(np.mean(ratio >= 0.6)) <= 0.05
                       and (ref.pic.shape != m.pic.shape
                            or _ncc(ref.pic, m.pic) >= cfg.black_keeps_scene))
        lift = m.cell_mean - ref.cell_mean
        bright_global = float(np.quantile(lift, 0.25)) > 0.0
    dark = Verdict("video_too_dark", med < cfg.too_dark_luma and dark_global, med,
                   cfg.too_dark_luma, "; median cell luma (under-exposed below the threshold)")
    bright = Verdict("video_too_bright", med > cfg.too_bright_luma and bright_global, med,
                     cfg.too_bright_luma, "; median cell luma (over-exposed above the threshold)")
    return dark, bright


def detect_colour_cast(m: Metrics, ref: Reference, cfg: VqdConfig = VqdConfig()) -> Verdict | None:
    if m.chroma is None or ref.chroma is None:
        return None
    du, dv = m.chroma[0] - ref.chroma[0], m.chroma[1] - ref.chroma[1]
    delta = math.hypot(du, dv)
    away = _chroma_dist(m) - math.hypot(ref.chroma[0] - 128.0, ref.chroma[1] - 128.0)
    bad = delta >= cfg.cast_delta and away >= cfg.cast_away
    return Verdict("video_colour_cast", bad, delta, cfg.cast_delta,
                   f"; mean chroma moved by dU={du:+.1f} dV={dv:+.1f} from the reference, "
                   f"{away:+.1f} away from neutral")


def detect_noise(m: Metrics, ref: Reference, cfg: VqdConfig = VqdConfig(),
                 tmad: float | None = None) -> Verdict | None:
    """Blur's opposite: high-frequency energy up in most cells (the median cell), where a
    passing object or a moved view changes only some. Moderate snow, mostly smoothed away
    by the encoder, still makes every cell differ from the previous sample: the temporal
    test (a one-off change - a light switched, the view moved - is one sample, which the
    persistence rule ignores)."""
    score = float(np.median(m.cell_sharp / np.maximum(ref.cell_sharp, 1.0)))
    bad = score >= cfg.noise_ratio
    detail = "; median cell high-frequency energy against the reference"
    if tmad is not None and ref.tmad is not None:
        t = tmad / max(ref.tmad, 0.5)
        detail += f"; change between samples {t:.1f}x the reference's ({tmad:.1f} levels)"
        bad = bad or (t >= cfg.noise_temporal_ratio and tmad >= cfg.noise_temporal_min
                      and score >= cfg.noise_support)
    return Verdict("video_noise", bad, score, cfg.noise_ratio, detail)


def _spectrum(profile: np.ndarray) -> np.ndarray:
    """Amplitude spectrum of a detrended 1-D profile without its slow part (fewer than 6
    cycles over the picture: the edge of a cover or a shadow, not interference)."""
    n = profile.shape[0]
    x = np.arange(n, dtype=np.float64)
    p = profile.astype(np.float64)
    p = p - np.polyval(np.polyfit(x, p, 1), x)
    f = np.abs(np.fft.rfft(p))
    f[:6] = 0.0
    return f


def _periodic(profile: np.ndarray) -> tuple[float, float, int]:
    """Amplitude (levels), share of the energy and frequency bin of the strongest periodic
    component of a 1-D profile."""
    n = profile.shape[0]
    if n < 16:
        return 0.0, 0.0, 0
    f = _spectrum(profile)
    k = int(np.argmax(f))
    energy = float((f * f).sum())
    if energy <= 0 or k == 0:
        return 0.0, 0.0, 0
    return 2.0 * float(f[k]) / n, float(f[k] * f[k]) / energy, k


def detect_stripes(m: Metrics, ref: Reference, cfg: VqdConfig = VqdConfig()) -> Verdict | None:
    if ref.pic.shape != m.pic.shape:
        return None
    d = m.pic - ref.pic
    best = (0.0, 0.0, 0, "")
    for axis, name in ((1, "horizontal"), (0, "vertical")):
        amp, share, k = _periodic(d.mean(axis=axis))
        if share < cfg.stripes_share or amp <= best[0]:
            continue
        # bands are added to the picture; a periodic texture that disappeared (a fence
        # behind a cover) also shows in the difference, but weaker in the picture than
        # in the reference
        if _spectrum(m.pic.mean(axis=axis))[k] <= _spectrum(ref.pic.mean(axis=axis))[k]:
            continue
        best = (amp, share, int(round(d.shape[1 - axis] / k)), name)
    amp, share, period, name = best
    return Verdict("video_stripes", amp >= cfg.stripes_amp, amp, cfg.stripes_amp,
                   f"; {name or 'no'} bands, amplitude {amp:.1f} levels, period {period} px, "
                   f"{share:.0%} of the profile's energy")


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
    if ref.cell_mean is not None and ref.cell_mean.shape == m.cell_mean.shape:
        # blur keeps each cell's mean level, a cover (an object) changes it
        collapsed &= np.abs(m.cell_mean - ref.cell_mean) >= cfg.occl_mean_delta
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
    return Verdict("video_scene_change", moved or changed, score, thr, detail,
                   "moved" if moved else "changed" if changed else "")


# ------------------------------------------------------------------ one camera


@dataclass
class Sample:
    wall_ms: int
    verdicts: dict[str, Verdict | None]
    metrics: Metrics


class CameraVqd:
    """Per-camera state: previous sample, reference, detectors with precedence.

    * black / no-signal: nothing else is judged (the picture carries no information);
    * too dark / too bright: the exposure hides texture, so blur, occlusion, scene change,
      colour cast, noise and stripes are not judged;
    * a displacement of the whole view (the camera moved): stripes and noise are dropped (a
      periodic facade or new texture moving into view is not interference);
    * stripes: noise is dropped (rolling bands change every sample too);
    * noise or stripes: blur, occlusion and scene change are dropped (interference changes
      edges and correlation; report the cause);
    * occluded: blur and scene change are dropped (a cover drags both with it).

    While the reference is being learned only black, no-signal, frozen and exposure are
    judged; the reference is learned from samples none of those flag."""

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

    def chroma(self, luma_shape: tuple[int, int], u: np.ndarray | None,
               v: np.ndarray | None) -> tuple[float, float] | None:
        """Mean chroma inside the region of interest (planes subsampled like the stream)."""
        if u is None or v is None:
            return None
        fy = u.shape[0] / luma_shape[0]
        fx = u.shape[1] / luma_shape[1]
        if self.roi is not None:
            x0, y0, x1, y1 = self.roi
            sl = (slice(int(y0 * fy), max(int(y0 * fy) + 1, int(y1 * fy))),
                  slice(int(x0 * fx), max(int(x0 * fx) + 1, int(x1 * fx))))
            u, v = u[sl], v[sl]
        return float(u.mean(dtype=np.float64)), float(v.mean(dtype=np.float64))

    def diagnose_luma(self, luma: np.ndarray, wall_ms: int, u: np.ndarray | None = None,
                      v: np.ndarray | None = None) -> Sample:
        return self.diagnose(self.picture(luma), wall_ms, self.chroma(luma.shape, u, v))

    def diagnose(self, pic: np.ndarray, wall_ms: int,
                 chroma: tuple[float, float] | None = None) -> Sample:
        cfg = self.cfg
        m = measure(pic, cfg, chroma)
        tmad = (float(np.median(_cells(np.abs(m.pic - self.prev.pic), *cfg.grid)))
                if self.prev is not None and self.prev.pic.shape == m.pic.shape else None)
        v: dict[str, Verdict | None] = dict.fromkeys(KINDS)
        v["video_black"] = detect_black(m, cfg, self.reference)
        v["video_no_signal"] = detect_uniform(m, cfg)
        blank = v["video_black"].bad or v["video_no_signal"].bad
        exposure = False
        if not blank:
            v["video_frozen"] = detect_frozen(m, self.prev, wall_ms - (self.prev_ms or wall_ms), cfg)
            v["video_too_dark"], v["video_too_bright"] = detect_exposure(m, self.reference, cfg)
            exposure = v["video_too_dark"].bad or v["video_too_bright"].bad
        ref = self.reference
        if ref is not None and ref.pic.shape != m.pic.shape:
            self.retake_reference()  # resolution changed
            ref = None
        if ref is not None and not blank and not exposure:
            v["video_blur"] = detect_blur(m, ref, cfg)
            v["video_occluded"] = detect_occlusion(m, ref, cfg)
            v["video_scene_change"] = detect_scene_change(m, ref, cfg)
            v["video_colour_cast"] = detect_colour_cast(m, ref, cfg)
            v["video_noise"] = detect_noise(m, ref, cfg, tmad)
            v["video_stripes"] = detect_stripes(m, ref, cfg)
            sc = v["video_scene_change"]
            if sc is not None and sc.bad and sc.cause == "moved":
                v["video_stripes"] = v["video_noise"] = None
            if _bad(v["video_stripes"]):
                v["video_noise"] = None
            if _bad(v["video_noise"]) or _bad(v["video_stripes"]):
                v["video_blur"] = v["video_occluded"] = v["video_scene_change"] = None
            if _bad(v["video_occluded"]):
                # a cover drags sharpness and correlation down with it: report the cause
                v["video_blur"] = None
                v["video_scene_change"] = None
        elif (ref is None and not blank and not exposure
              and not (v["video_frozen"] and v["video_frozen"].bad)):
            self.reference = self._builder.add(m, wall_ms, tmad)
        self.prev, self.prev_ms = m, wall_ms
        return Sample(wall_ms, v, m)


def _bad(v: Verdict | None) -> bool:
    return v is not None and v.bad


class CameraJudge:
    """Diagnosis plus one persistence rule per fault kind: what the monitor runs for every
    sample of a camera, and what the evaluation benchmark runs on its labelled clips (one
    code path). ``step`` returns the sample and the ("raise"|"clear", kind, verdict)
    transitions."""

    def __init__(self, cfg: VqdConfig, rule_factory, roi: tuple[int, int, int, int] | None = None):
        self.diag = CameraVqd(cfg, roi)
        self.rules: dict[str, Persistence] = {k: rule_factory() for k in KINDS}

    def step(self, luma: np.ndarray, wall_ms: int, u: np.ndarray | None = None,
             v: np.ndarray | None = None) -> tuple[Sample, list[tuple[str, str, Verdict | None]]]:
        sample = self.diag.diagnose_luma(luma, wall_ms, u, v)
        events: list[tuple[str, str, Verdict | None]] = []
        for kind, verdict in sample.verdicts.items():
            ev = self.rules[kind].update(None if verdict is None else verdict.bad, wall_ms)
            if ev:
                events.append((ev, kind, verdict))
        return sample, events


@dataclass
class SignalLoss:
    """Signal loss (no packets): raised when no keyframe arrived for ``loss_ms``, cleared at
    the next keyframe. Time is the caller's (the monitor's clock), never a sleep."""

    loss_ms: int
    active: bool = False

    def update(self, now_ms: int, last_seen_ms: int) -> str | None:
        lost = now_ms - last_seen_ms >= self.loss_ms
        if lost and not self.active:
            self.active = True
            return "raise"
        if not lost and self.active:
            self.active = False
            return "clear"
        return None


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
