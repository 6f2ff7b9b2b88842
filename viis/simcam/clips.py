"""Generation and caching of the pre-encoded H.264 loop clips.

Frames are drawn with numpy (a textured street scene, a moving car, a
7-segment clock and the time-code strip of :mod:`viis.simcam.timecode`),
piped as raw yuv420p into ``ffmpeg -c:v libx264`` without B-frames, with a
fixed GOP and an access-unit delimiter before every frame.  The Annex-B
output is split into access units and a frame index (byte offset, size,
keyframe flag) is written next to it for the RTSP server.

All variants of one :class:`ClipSpec` share the same time-code layout, the
same GOP alignment and the same SPS/PPS, so the server can switch between
them at any keyframe.  Variants:

``normal``  the scene
``black``   scene black (lens capped / no light), OSD still drawn
``blur``    scene out of focus, OSD sharp
``cover``   a dark blob over about 40 % of the picture (something on the lens)
``shift``   the camera view turned: scene translated by ~8 % of the width
            and ~4 % of the height
``hold``    frame k shows the picture of the first frame of its GOP and has
            no sensor noise; the server loops one GOP of it to freeze the
            picture (P-frames are skip-only, so the decoded pictures repeat)
``dark``    under-exposed: scene contrast at 18 %, colours washed out (still
            textured: not black)
``bright``  over-exposed: scene lifted towards white, highlights clipped
``cast``    colour cast: chroma shifted (red/yellow, as a failed white balance)
``noise``   snow: strong per-frame luma and chroma noise (interference, a bad
            cable or a failing sensor)
``stripes`` rolling horizontal interference bands
``blue``    a uniform blue "no video" screen (encoder without a sensor
            signal), OSD still drawn

:func:`apply_fault` holds the fault renderers with a ``strength`` so the
evaluation benchmark (``bench/vqd_eval.py``) can draw each fault at other
strengths than the clips' defaults.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from viis.simcam import timecode

GENERATOR_VERSION = 5
# variants after "hold" are post-processed pictures (apply_fault); adding one keeps the cache
# of the others (ensure_clips encodes only the missing variants)
POST_FAULTS = ("dark", "bright", "cast", "noise", "stripes", "blue")
VARIANTS = ("normal", "black", "blur", "cover", "shift", "hold", *POST_FAULTS)
FAULT_VARIANTS = ("black", "blur", "cover", "shift", *POST_FAULTS)
#: default strength of every variant (meaning per fault: see apply_fault / _Renderer)
DEFAULT_STRENGTH = {"blur": 1.0, "cover": 1.0, "shift": 1.0, "dark": 0.18, "bright": 0.7,
                    "cast": 28.0, "noise": 36.0, "stripes": 18.0, "blue": 1.0}

__all__ = [
    "FAULT_VARIANTS",
    "POST_FAULTS",
    "VARIANTS",
    "ClipSpec",
    "apply_fault",
    "default_bitrate",
    "default_cache_dir",
    "ensure_clips",
    "index_annexb",
    "osd_boxes",
    "render_frame_yuv",
    "scene_box",
]


def default_cache_dir() -> Path:
    env = os.environ.get("VIIS_SIMCAM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "viis" / "simcam"


def default_bitrate(width: int, height: int) -> int:
    """4 Mbit/s at 1080p, scaled by pixel count, at least 250 kbit/s."""
    return max(250_000, int(round(4_000_000 * width * height / (1920 * 1080), -3)))


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    width: int = 640
    height: int = 360
    fps: int = 25
    bitrate: int = 0  # bits per second; 0 = default_bitrate(width, height)
    gop_frames: int = 25
    cycle_frames: int = 1500
    noise: int = 4  # strength of ffmpeg's temporal luma noise (sensor noise), 0 = off
    preset: str = "superfast"

    @classmethod
    def create(
        cls,
        width: int = 640,
        height: int = 360,
        fps: int = 25,
        bitrate: int | None = None,
        gop_s: float = 1.0,
        cycle_s: float = 60.0,
        noise: int = 4,
        preset: str = "superfast",
    ) -> ClipSpec:
        """Build a spec from seconds; the cycle is rounded up to whole GOPs."""
        if width % 2 or height % 2 or width < 64 or height < 64:
            raise ValueError("width and height must be even and at least 64")
        if not 1 <= int(fps) <= 120 or int(fps) != fps:
            raise ValueError("fps must be an integer 1..120")
        fps = int(fps)
        gop = max(1, int(round(gop_s * fps)))
        cycle = max(gop, int(round(cycle_s * fps)))
        cycle = -(-cycle // gop) * gop
        if cycle * 1000 // fps > timecode.MAX_CODE_MS:
            raise ValueError(f"cycle too long for the time code (max {timecode.MAX_CODE_MS} ms)")
        return cls(
            width=width,
            height=height,
            fps=fps,
            bitrate=int(bitrate) if bitrate else default_bitrate(width, height),
            gop_frames=gop,
            cycle_frames=cycle,
            noise=int(noise),
            preset=preset,
        )

    @property
    def effective_bitrate(self) -> int:
        return self.bitrate or default_bitrate(self.width, self.height)

    @property
    def cycle_ms(self) -> int:
        return self.cycle_frames * 1000 // self.fps

    def key(self) -> str:
        payload = json.dumps(
            [GENERATOR_VERSION, dataclasses.asdict(self), self.effective_bitrate], sort_keys=True
        )
        digest = hashlib.sha256(payload.encode()).hexdigest()[:10]
        return (
            f"{self.width}x{self.height}_{self.fps}fps_{self.effective_bitrate // 1000}k"
            f"_g{self.gop_frames}_c{self.cycle_frames}_{digest}"
        )


# ---------------------------------------------------------------- layout


def osd_boxes(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Pixel boxes (x0, y0, x1, y1) of the overlays: time-code strip, clock."""
    rows = timecode.strip_rows(height)
    clock = _clock_geometry(width, height)
    return [(0, 0, width, rows), clock["box"]]


def scene_box(width: int, height: int) -> tuple[int, int, int, int]:
    """A box (x0, y0, x1, y1) holding only scene pixels (no overlay): the
    frame below the clock."""
    _, _, _, y1 = _clock_geometry(width, height)["box"]
    return (0, y1 + 2, width, height)


def _clock_geometry(width: int, height: int) -> dict:
    rows = timecode.strip_rows(height)
    digit_h = max(10, int(round(height * 0.09)))
    digit_w = max(6, int(round(digit_h * 0.55)))
    gap = max(2, digit_h // 6)
    pad = max(2, digit_h // 5)
    x0 = int(round(width * 0.02))
    y0 = rows + max(2, int(round(height * 0.015)))
    chars = 8  # MM:SS.hh
    sep_w = max(2, digit_h // 5)
    text_w = 6 * digit_w + 2 * sep_w + 7 * gap
    box = (x0, y0, min(width, x0 + text_w + 2 * pad), min(height, y0 + digit_h + 2 * pad))
    return {
        "box": box,
        "digit_h": digit_h,
        "digit_w": digit_w,
        "gap": gap,
        "pad": pad,
        "sep_w": sep_w,
        "chars": chars,
    }


def _seven_segment_glyphs(h: int, w: int, sep_w: int) -> dict[str, np.ndarray]:
    t = max(2, h // 7)
    half = h // 2
    segs = {
        "a": (slice(0, t), slice(0, w)),
        "b": (slice(0, half + t // 2), slice(w - t, w)),
        "c": (slice(half - t // 2, h), slice(w - t, w)),
        "d": (slice(h - t, h), slice(0, w)),
        "e": (slice(half - t // 2, h), slice(0, t)),
        "f": (slice(0, half + t // 2), slice(0, t)),
        "g": (slice(half - t // 2, half - t // 2 + t), slice(0, w)),
    }
    digits = {
        "0": "abcdef",
        "1": "bc",
        "2": "abged",
        "3": "abgcd",
        "4": "fgbc",
        "5": "afgcd",
        "6": "afgedc",
        "7": "abc",
        "8": "abcdefg",
        "9": "abcdfg",
    }
    glyphs: dict[str, np.ndarray] = {}
    for ch, on in digits.items():
        g = np.zeros((h, w), bool)
        for s in on:
            g[segs[s]] = True
        glyphs[ch] = g
    dot = np.zeros((h, sep_w), bool)
    dot[h - t : h, :] = True
    glyphs["."] = dot
    colon = np.zeros((h, sep_w), bool)
    colon[h // 4 : h // 4 + t, :] = True
    colon[3 * h // 4 - t : 3 * h // 4, :] = True
    glyphs[":"] = colon
    return glyphs


def clock_text(code_ms: int, cycle_ms: int) -> str:
    minutes = (code_ms // 60000) % 100
    seconds = (code_ms // 1000) % 60
    hundredths = (code_ms % 1000) // 10
    return f"{minutes:02d}:{seconds:02d}.{hundredths:02d}"


# ----------------------------------------------------------------- scene

_RGB2YUV = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]],
    np.float32,
)


def _rgb_to_yuv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float RGB 0..1 (H, W, 3) -> float Y (H, W), U, V (H/2, W/2)."""
    yuv = rgb @ _RGB2YUV.T
    y = yuv[..., 0] + 16.0
    h, w = y.shape
    uv = yuv[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3)) + 128.0
    return y, uv[..., 0], uv[..., 1]


def _box_blur(img: np.ndarray, radius: int, passes: int = 3) -> np.ndarray:
    """Separable box blur (approximately Gaussian after 3 passes), edge padded."""
    out = img.astype(np.float32)
    k = 2 * radius + 1
    for _ in range(passes):
        for axis in (0, 1):
            pad = [(0, 0)] * out.ndim
            pad[axis] = (radius + 1, radius)
            p = np.pad(out, pad, mode="edge")
            c = np.cumsum(p, axis=axis, dtype=np.float32)
            hi = np.take(c, np.arange(k, c.shape[axis]), axis=axis)
            lo = np.take(c, np.arange(0, c.shape[axis] - k), axis=axis)
            out = (hi - lo) / k
    return out


def _fill_ellipse(mask: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> None:
    h, w = mask.shape
    yy, xx = np.ogrid[:h, :w]
    mask[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0] = True


def _make_canvas(hc: int, wc: int, seed: int = 7) -> np.ndarray:
    """A textured street scene, float RGB 0..1."""
    rng = np.random.default_rng(seed)
    img = np.zeros((hc, wc, 3), np.float32)
    yy = np.linspace(0, 1, hc, dtype=np.float32)[:, None]
    xx = np.linspace(0, 1, wc, dtype=np.float32)[None, :]
    horizon = int(hc * 0.45)
    # sky gradient
    sky = np.stack([0.45 + 0.35 * yy, 0.6 + 0.3 * yy, 0.9 + 0.05 * yy], axis=-1)
    img[:horizon] = np.broadcast_to(sky[:horizon], (horizon, wc, 3))
    # ground: green-gray with a horizontal gradient
    ground = np.stack(
        [0.35 + 0.15 * xx + 0 * yy, 0.45 + 0.1 * xx + 0 * yy, 0.3 + 0.05 * xx + 0 * yy], axis=-1
    )
    img[horizon:] = ground[horizon:]
    # buildings with windows
    x = int(wc * 0.03)
    while x < wc * 0.97:
        bw = int(wc * rng.uniform(0.07, 0.14))
        top = int(hc * rng.uniform(0.12, 0.32))
        color = rng.uniform(0.25, 0.8, 3).astype(np.float32)
        img[top:horizon, x : x + bw] = color
        win_h = max(2, hc // 60)
        win_w = max(2, wc // 110)
        for wy in range(top + win_h, horizon - win_h, win_h * 3):
            for wx in range(x + win_w, x + bw - win_w, win_w * 3):
                lit = rng.random() < 0.4
                img[wy : wy + win_h, wx : wx + win_w] = (
                    (0.95, 0.9, 0.5) if lit else (0.1, 0.12, 0.2)
                )
        x += bw + int(wc * rng.uniform(0.01, 0.04))
    # road with dashed lane marking
    r0, r1 = int(hc * 0.62), int(hc * 0.84)
    img[r0:r1] = (0.22, 0.22, 0.24)
    img[r0 : r0 + max(1, hc // 200)] = 0.9
    img[r1 - max(1, hc // 200) : r1] = 0.9
    lane_y = (r0 + r1) // 2
    dash = max(4, wc // 40)
    th = max(1, hc // 150)
    for dx in range(0, wc, dash * 2):
        img[lane_y - th : lane_y + th, dx : dx + dash] = (0.95, 0.95, 0.95)
    # trees
    mask = np.zeros((hc, wc), bool)
    for _ in range(6):
        cx = rng.uniform(0.05, 0.95) * wc
        cy = hc * rng.uniform(0.42, 0.55)
        r = hc * rng.uniform(0.04, 0.07)
        _fill_ellipse(mask, cy, cx, r, r * 0.8)
    img[mask] = (0.1, 0.35, 0.12)
    # a checkerboard sign and a zone plate: high-frequency texture
    s0, s1 = int(hc * 0.86), int(hc * 0.98)
    c0, c1 = int(wc * 0.55), int(wc * 0.75)
    cell = max(2, wc // 160)
    ys, xs = np.mgrid[s0:s1, c0:c1]
    img[s0:s1, c0:c1] = (((ys // cell + xs // cell) % 2) * 0.8 + 0.1)[..., None]
    zc_y, zc_x = hc * 0.92, wc * 0.3
    zr = hc * 0.07
    ys, xs = np.mgrid[0:hc, 0:wc]
    d2 = ((ys - zc_y) ** 2 + (xs - zc_x) ** 2).astype(np.float32)
    zone = d2 < zr**2
    img[zone] = (0.5 + 0.4 * np.cos(d2[zone] * (np.pi / (zr * 1.5))))[:, None]
    return np.clip(img, 0.0, 1.0)


def _make_sprite(
    h: int, w: int, color: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """A simple car: RGB (h, w, 3) and alpha (h, w)."""
    rgb = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w), np.float32)
    body_top = int(h * 0.35)
    rgb[body_top : int(h * 0.85)] = color
    alpha[body_top : int(h * 0.85)] = 1.0
    rgb[int(h * 0.05) : body_top + 1, int(w * 0.2) : int(w * 0.75)] = np.array(color) * 0.8
    alpha[int(h * 0.05) : body_top + 1, int(w * 0.2) : int(w * 0.75)] = 1.0
    rgb[int(h * 0.12) : body_top, int(w * 0.27) : int(w * 0.68)] = (0.15, 0.2, 0.3)
    wheel = np.zeros((h, w), bool)
    r = h * 0.17
    _fill_ellipse(wheel, h * 0.82, w * 0.22, r, r)
    _fill_ellipse(wheel, h * 0.82, w * 0.78, r, r)
    rgb[wheel] = (0.05, 0.05, 0.05)
    alpha[wheel] = 1.0
    return rgb, alpha


class _Sprite:
    """A sprite in YUV with alpha, ready for compositing at even positions."""

    def __init__(self, rgb: np.ndarray, alpha: np.ndarray) -> None:
        h, w = alpha.shape
        h -= h % 2
        w -= w % 2
        rgb, alpha = rgb[:h, :w], alpha[:h, :w]
        self.y, self.u, self.v = _rgb_to_yuv(rgb)
        self.a = alpha.astype(np.float32)
        self.a2 = alpha.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)).astype(np.float32)
        self.h, self.w = h, w

    @classmethod
    def blurred(cls, rgb: np.ndarray, alpha: np.ndarray, radius: int) -> _Sprite:
        pad = 3 * radius + 2
        pad += pad % 2
        rgbp = np.pad(rgb * alpha[..., None], ((pad, pad), (pad, pad), (0, 0)))
        ap = np.pad(alpha, pad)
        rgbb = _box_blur(rgbp, radius)
        ab = _box_blur(ap, radius)
        safe = np.maximum(ab, 1e-4)[..., None]
        sprite = cls(np.clip(rgbb / safe, 0, 1), np.clip(ab, 0, 1))
        sprite.offset = -pad
        return sprite

    offset = 0


@dataclasses.dataclass
class _Mover:
    sprite: _Sprite
    lane_y: int  # canvas row of the sprite's top
    crossings: int  # crossings of the canvas per cycle
    direction: int  # +1 left->right, -1 right->left


def apply_fault(y: np.ndarray, u: np.ndarray, v: np.ndarray, fault: str, strength: float,
                k: int = 0) -> None:
    """Render a picture fault into one yuv420p frame in place (uint8 planes).

    ``strength`` per fault: ``dark`` contrast kept (0.18 = 18 %), ``bright`` lift towards
    white (0..1), ``cast`` chroma shift in levels, ``noise`` luma noise sigma in levels,
    ``stripes`` band amplitude in levels, ``blue`` unused. ``k`` (frame number) makes the
    noise new in every frame and rolls the stripes."""
    if fault == "dark":
        g = float(strength)
        y[:] = np.clip(16.0 + (y.astype(np.float32) - 16.0) * g, 0, 255).astype(np.uint8)
        for c in (u, v):
            c[:] = np.clip(128.0 + (c.astype(np.float32) - 128.0) * max(g, 0.4), 0, 255).astype(np.uint8)
    elif fault == "bright":
        a = float(strength)
        yf = y.astype(np.float32)
        y[:] = np.clip(yf * (1.0 - 0.6 * a) + 255.0 * a, 0, 235).astype(np.uint8)
        for c in (u, v):
            c[:] = np.clip(128.0 + (c.astype(np.float32) - 128.0) * (1.0 - a), 0, 255).astype(np.uint8)
    elif fault == "cast":
        d = float(strength)  # red/yellow: V up, U down by half
        v[:] = np.clip(v.astype(np.float32) + d, 0, 255).astype(np.uint8)
        u[:] = np.clip(u.astype(np.float32) - d / 2, 0, 255).astype(np.uint8)
    elif fault == "noise":
        rng = np.random.default_rng(1_000_003 + k)
        sigma = float(strength)
        y[:] = np.clip(y + rng.normal(0.0, sigma, y.shape).astype(np.float32), 0, 255).astype(np.uint8)
        for c in (u, v):
            c[:] = np.clip(c + rng.normal(0.0, sigma / 2, c.shape).astype(np.float32), 0, 255).astype(np.uint8)
    elif fault == "stripes":
        h = y.shape[0]
        period = max(6.0, h / 12.0)
        rows = np.arange(h, dtype=np.float32)[:, None]
        band = float(strength) * np.sin(2 * np.pi * (rows / period + k * 0.037))
        y[:] = np.clip(y + band, 0, 255).astype(np.uint8)
    elif fault == "blue":  # Y'CbCr of the (0, 0, 0.75) blue of a "no video" screen
        y[:] = 34
        u[:] = 212
        v[:] = 117
    elif fault != "normal":
        raise ValueError(f"unknown picture fault {fault!r}")


class _Renderer:
    """Draws frame k of one variant as a contiguous yuv420p buffer. ``strength`` scales
    the fault (blur radius, cover radii, view shift; see :func:`apply_fault` for the
    post-processed faults); None = :data:`DEFAULT_STRENGTH`."""

    def __init__(self, spec: ClipSpec, variant: str, strength: float | None = None,
                 seed: int = 7) -> None:
        self.spec = spec
        self.variant = variant
        self.strength = DEFAULT_STRENGTH.get(variant, 1.0) if strength is None else float(strength)
        w, h = spec.width, spec.height
        self.mx = 2 * int(round(w * 0.04))
        self.my = 2 * int(round(h * 0.04))
        wc, hc = w + 2 * self.mx, h + 2 * self.my
        canvas = _make_canvas(hc, wc, seed)
        blur_r = max(2, w // 110)
        if variant == "blur":
            canvas = _box_blur(canvas, max(1, int(round(blur_r * self.strength))))
            blur_r = max(1, int(round(blur_r * self.strength)))
        if variant == "shift":
            s = min(1.0, max(0.0, self.strength))  # view moved right/up
            self.oy, self.ox = self.my - int(round(s * self.my / 2)), self.mx + int(round(s * self.mx))
            self.oy -= self.oy % 2
        else:
            self.oy, self.ox = self.my, self.mx
        view = canvas[self.oy : self.oy + h, self.ox : self.ox + w]
        by, bu, bv = _rgb_to_yuv(view)
        if variant == "black":
            by[:] = 16.0
            bu[:] = 128.0
            bv[:] = 128.0
        self.cover = None
        if variant == "cover":
            self.cover, self.cover2 = self._cover_mask(w, h, self.strength)
            self.cover_y = 22.0
        self.bg_y = by.astype(np.float32)
        self.bg_u = bu.astype(np.float32)
        self.bg_v = bv.astype(np.float32)
        self.base_y = self._apply_cover(
            self.bg_y, self.cover, self.cover_y if self.cover is not None else 0, (0, 0)
        )
        self.base_u = self._apply_cover(self.bg_u, self._c2(), 128.0, (0, 0))
        self.base_v = self._apply_cover(self.bg_v, self._c2(), 128.0, (0, 0))
        self.base_y8 = np.clip(np.rint(self.base_y), 0, 255).astype(np.uint8)
        self.base_u8 = np.clip(np.rint(self.base_u), 0, 255).astype(np.uint8)
        self.base_v8 = np.clip(np.rint(self.base_v), 0, 255).astype(np.uint8)
        # moving cars
        cycle_s = spec.cycle_frames / spec.fps
        crossings = max(1, int(round(cycle_s / 12.0)))
        sh = 2 * int(round(h * 0.05))
        sw = 2 * int(round(w * 0.07))
        self.movers: list[_Mover] = []
        if variant != "black":
            for color, lane_frac, direction in (
                ((0.85, 0.1, 0.1), 0.66, 1),
                ((0.1, 0.3, 0.85), 0.745, -1),
            ):
                rgb, alpha = _make_sprite(sh, sw, color)
                sprite = (
                    _Sprite.blurred(rgb, alpha, blur_r)
                    if variant == "blur"
                    else _Sprite(rgb, alpha)
                )
                lane = int(hc * lane_frac) - sh // 2
                self.movers.append(_Mover(sprite, lane, crossings, direction))
        self.wc = wc
        # OSD
        self.geo = _clock_geometry(w, h)
        self.glyphs = _seven_segment_glyphs(
            self.geo["digit_h"], self.geo["digit_w"], self.geo["sep_w"]
        )
        self.frame = np.empty(w * h * 3 // 2, np.uint8)
        self.Y = self.frame[: w * h].reshape(h, w)
        self.U = self.frame[w * h : w * h * 5 // 4].reshape(h // 2, w // 2)
        self.V = self.frame[w * h * 5 // 4 :].reshape(h // 2, w // 2)

    def _c2(self):
        return getattr(self, "cover2", None)

    @staticmethod
    def _cover_mask(w: int, h: int, strength: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        # a blob from the lower-left corner, soft edge; about 40 % of the frame at strength 1
        # (radii scale with the square root of the strength)
        cx, cy = w * 0.18, h * 0.95
        r = float(np.sqrt(max(strength, 0.01)))
        rx, ry = w * 0.62 * r, h * 0.78 * r
        d = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
        edge = 0.08
        a = np.clip((1.0 + edge - d) / (2 * edge), 0.0, 1.0)
        a2 = a.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        return a.astype(np.float32), a2.astype(np.float32)

    @staticmethod
    def _apply_cover(plane, mask, value, origin):
        if mask is None:
            return plane
        y0, x0 = origin
        m = mask[y0 : y0 + plane.shape[0], x0 : x0 + plane.shape[1]]
        return plane * (1.0 - m) + value * m

    def _paste(self, mover: _Mover, k: int) -> None:
        spec = self.spec
        sp = mover.sprite
        travel = self.wc + sp.w
        phase = (k * mover.crossings / spec.cycle_frames) % 1.0
        if mover.direction < 0:
            phase = 1.0 - phase
        cx = int(phase * travel) - sp.w + sp.offset
        cy = mover.lane_y + sp.offset
        x = cx - self.ox
        y = cy - self.oy
        x -= x % 2
        y -= y % 2
        w, h = spec.width, spec.height
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(w, x + sp.w), min(h, y + sp.h)
        if x0 >= x1 or y0 >= y1:
            return
        sx0, sy0 = x0 - x, y0 - y
        a = sp.a[sy0 : sy0 + (y1 - y0), sx0 : sx0 + (x1 - x0)]
        yy = (
            self.bg_y[y0:y1, x0:x1] * (1 - a)
            + sp.y[sy0 : sy0 + (y1 - y0), sx0 : sx0 + (x1 - x0)] * a
        )
        if self.cover is not None:
            m = self.cover[y0:y1, x0:x1]
            yy = yy * (1 - m) + self.cover_y * m
        self.Y[y0:y1, x0:x1] = np.clip(np.rint(yy), 0, 255).astype(np.uint8)
        hx0, hy0, hx1, hy1 = x0 // 2, y0 // 2, x1 // 2, y1 // 2
        a2 = sp.a2[sy0 // 2 : sy0 // 2 + (hy1 - hy0), sx0 // 2 : sx0 // 2 + (hx1 - hx0)]
        for plane, bg, spl in ((self.U, self.bg_u, sp.u), (self.V, self.bg_v, sp.v)):
            val = (
                bg[hy0:hy1, hx0:hx1] * (1 - a2)
                + spl[sy0 // 2 : sy0 // 2 + (hy1 - hy0), sx0 // 2 : sx0 // 2 + (hx1 - hx0)] * a2
            )
            if self.cover is not None:
                m = self.cover2[hy0:hy1, hx0:hx1]
                val = val * (1 - m) + 128.0 * m
            plane[hy0:hy1, hx0:hx1] = np.clip(np.rint(val), 0, 255).astype(np.uint8)

    def _draw_osd(self, code_ms: int) -> None:
        g = self.geo
        x0, y0, x1, y1 = g["box"]
        self.Y[y0:y1, x0:x1] = 16
        self.U[y0 // 2 : (y1 + 1) // 2, x0 // 2 : (x1 + 1) // 2] = 128
        self.V[y0 // 2 : (y1 + 1) // 2, x0 // 2 : (x1 + 1) // 2] = 128
        x = x0 + g["pad"]
        y = y0 + g["pad"]
        dh = g["digit_h"]
        for ch in clock_text(code_ms, self.spec.cycle_ms):
            glyph = self.glyphs[ch]
            gw = glyph.shape[1]
            if x + gw > self.spec.width or y + dh > self.spec.height:
                break
            self.Y[y : y + dh, x : x + gw][glyph] = 235
            x += gw + g["gap"]
        rows = timecode.strip_rows(self.spec.height)
        timecode.draw_timecode(self.Y, code_ms)
        self.U[: (rows + 1) // 2] = 128
        self.V[: (rows + 1) // 2] = 128

    def render(self, k: int) -> np.ndarray:
        """yuv420p bytes of frame k (a view into a reused buffer)."""
        code_ms = k * 1000 // self.spec.fps
        self.Y[:] = self.base_y8
        self.U[:] = self.base_u8
        self.V[:] = self.base_v8
        for mover in self.movers:
            self._paste(mover, k)
        if self.variant in POST_FAULTS:
            apply_fault(self.Y, self.U, self.V, self.variant, self.strength, k)
        self._draw_osd(code_ms)
        return self.frame


def render_frame_yuv(spec: ClipSpec, variant: str, k: int,
                     strength: float | None = None) -> np.ndarray:
    """One uncompressed frame (yuv420p, flat uint8) of a variant; for tests."""
    r = _Renderer(spec, "normal" if variant == "hold" else variant, strength)
    if variant == "hold":
        k -= k % spec.gop_frames
    return r.render(k).copy()


# ------------------------------------------------------------- encoding


def index_annexb(data: bytes) -> list[tuple[int, int, bool]]:
    """Split an Annex-B stream with access-unit delimiters into frames.

    Returns (offset, size, keyframe) per access unit.
    """
    starts: list[tuple[int, int]] = []  # (nal start incl. zero prefix, nal type)
    pos = data.find(b"\x00\x00\x01")
    while pos >= 0:
        begin = pos - 1 if pos > 0 and data[pos - 1] == 0 else pos
        if pos + 3 < len(data):
            starts.append((begin, data[pos + 3] & 0x1F))
        pos = data.find(b"\x00\x00\x01", pos + 3)
    frames: list[list] = []
    for begin, nal_type in starts:
        if nal_type == 9 or not frames:
            frames.append([begin, False])
        if nal_type == 5:
            frames[-1][1] = True
    out = []
    for i, (begin, key) in enumerate(frames):
        end = frames[i + 1][0] if i + 1 < len(frames) else len(data)
        out.append((begin, end - begin, key))
    return out


def _ffmpeg_cmd(spec: ClipSpec, out: Path, variant: str) -> list[str]:
    br = spec.effective_bitrate
    g = spec.gop_frames
    noise = 0 if variant in ("hold", "blue") else spec.noise
    # stitchable: SPS/PPS do not depend on rate control, so they are the same
    # bytes in every variant and the server can splice variants at IDRs
    x264 = (
        f"aud=1:repeat-headers=1:stitchable=1:scenecut=0:open-gop=0"
        f":keyint={g}:min-keyint={g}:bframes=0"
    )
    if variant == "hold":
        # constant QP, P-frames much coarser than the IDR: the P-frames of a
        # repeated picture are skip-only; without deblocking the decoded
        # pictures then repeat exactly
        rate = ["-qp", "28"]
        x264 += ":ipratio=4:no-deblock=1"
    else:
        rate = ["-b:v", str(br), "-maxrate", str(br), "-bufsize", str(br)]
    cmd = [
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "yuv420p",
        "-s",
        f"{spec.width}x{spec.height}",
        "-r",
        str(spec.fps),
        "-i",
        "pipe:0",
    ]
    if noise > 0:
        cmd += ["-vf", f"noise=c0s={noise}:c0f=t"]
    cmd += [
        "-c:v",
        "libx264",
        "-preset",
        spec.preset,
        "-profile:v",
        "high",
        "-pix_fmt",
        "yuv420p",
        "-bf",
        "0",
        "-g",
        str(g),
        "-keyint_min",
        str(g),
        "-sc_threshold",
        "0",
        *rate,
        "-x264-params",
        x264,
        "-f",
        "h264",
        str(out),
    ]
    return cmd


def _encode_variant(spec: ClipSpec, variant: str, out_dir: Path) -> dict:
    t0 = time.monotonic()
    tmp = out_dir / f".{variant}.h264.tmp"
    proc = subprocess.Popen(
        _ffmpeg_cmd(spec, tmp, variant), stdin=subprocess.PIPE, stderr=subprocess.PIPE
    )
    renderer = _Renderer(spec, "normal" if variant == "hold" else variant)
    try:
        assert proc.stdin is not None
        held = None
        for k in range(spec.cycle_frames):
            if variant == "hold":
                if k % spec.gop_frames == 0:
                    held = bytes(renderer.render(k))
                proc.stdin.write(held)
            else:
                proc.stdin.write(memoryview(renderer.render(k)))
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    rc = proc.wait()
    if rc != 0:
        raise RuntimeError(f"ffmpeg failed for variant {variant} ({rc}): {err.strip()[-2000:]}")
    data = tmp.read_bytes()
    frames = index_annexb(data)
    if len(frames) != spec.cycle_frames:
        raise RuntimeError(f"{variant}: expected {spec.cycle_frames} frames, got {len(frames)}")
    for i, (_, _, key) in enumerate(frames):
        if key != (i % spec.gop_frames == 0):
            raise RuntimeError(f"{variant}: keyframe at unexpected position {i}")
    (out_dir / f"{variant}.json").write_text(json.dumps({"frames": frames}))
    os.replace(tmp, out_dir / f"{variant}.h264")
    return {"variant": variant, "bytes": len(data), "seconds": round(time.monotonic() - t0, 2)}


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_clips(
    spec: ClipSpec,
    cache_dir: str | os.PathLike | None = None,
    variants: Iterable[str] = VARIANTS,
    *,
    workers: int = 2,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Generate (or reuse from the cache) the clips of ``spec``.

    Returns the clip directory holding ``meta.json``, ``<variant>.h264`` and
    ``<variant>.json`` (frame index).  Safe against concurrent callers.
    """
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg not found")
    variants = list(dict.fromkeys(variants))
    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"unknown variant {v!r}")
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    out_dir = root / spec.key()
    with _locked(root / f".{spec.key()}.lock"):
        out_dir.mkdir(parents=True, exist_ok=True)
        meta_path = out_dir / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
        have = set(meta["variants"]) if meta else set()
        todo = [v for v in variants if v not in have or not (out_dir / f"{v}.h264").exists()]
        if todo:
            t0 = time.monotonic()
            results: list[dict] = []
            errors: list[BaseException] = []
            queue = list(todo)
            lock = threading.Lock()

            def work() -> None:
                while True:
                    with lock:
                        if not queue or errors:
                            return
                        v = queue.pop(0)
                    try:
                        r = _encode_variant(spec, v, out_dir)
                    except BaseException as exc:  # noqa: BLE001 - re-raised below
                        with lock:
                            errors.append(exc)
                        return
                    with lock:
                        results.append(r)
                    if log:
                        log(f"simcam: encoded {spec.key()}/{v} in {r['seconds']} s")

            threads = [threading.Thread(target=work, daemon=True) for _ in range(max(1, workers))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                raise errors[0]
            have |= {r["variant"] for r in results}
            meta = {
                "generator_version": GENERATOR_VERSION,
                "width": spec.width,
                "height": spec.height,
                "fps": spec.fps,
                "bitrate": spec.effective_bitrate,
                "gop_frames": spec.gop_frames,
                "cycle_frames": spec.cycle_frames,
                "cycle_ms": spec.cycle_ms,
                "noise": spec.noise,
                "preset": spec.preset,
                "variants": sorted(have),
                "generation_seconds": round(time.monotonic() - t0, 2),
            }
            tmp = out_dir / ".meta.json.tmp"
            tmp.write_text(json.dumps(meta, indent=1))
            os.replace(tmp, meta_path)
    return out_dir
