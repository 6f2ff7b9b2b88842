"""Video quality diagnosis evaluation (Q19.3 keep images clear; Q18.1/Q18.2/N23.1 cameras not
obstructed, covered or moved): a labelled set generated from the simulated cameras' scene and
fault renderers (``viis.simcam.clips``), run through the production code path.

    .venv/bin/python bench/vqd_eval.py            # full run (a few minutes)
    .venv/bin/python bench/vqd_eval.py --quick    # fewer clean hours, for development

What is real: every picture is rendered by the simulator's renderer, encoded by libx264 as
an IDR frame (with the simulator's temporal sensor noise), and decoded by
``viis.health.vqd.decode_keyframe_yuv`` (the decoder of the monitor). Each simulated camera
is one ``vqd.CameraJudge`` (diagnosis + the persistence rule, the object
``HealthMonitor`` uses per camera) with the production defaults: one sample every 10 s,
4 bad of 6 lasting 30 s, cleared after 3 good. Signal loss (no packets) runs
``vqd.SignalLoss`` with the monitor's default threshold on the driven sample time.
What is not: decoded pictures are cached per clip and cycled (24 distinct pictures per clip,
so two consecutive samples always differ, as on a live camera), so a camera-day costs
diagnosis only.

Episodes: each fault clip is 12 clean samples (the reference is learned from the first 3),
then the fault for 24 samples (4 min) from a jittered onset, then 24 clean samples. An
episode is detected when its fault type opens between the onset and the end of the fault;
any other opening anywhere (clean cameras, other faults' clips, outside the fault) is a
false positive of the type it names. Clean cameras (day street, another street, a still
scene, a night-like scene, rain-like noise, and a busy camera with lights switching and
people passing close to the lens) run for ``--clean-hours`` each to give false alarms per
camera-day.

Cost: CPU time (``time.thread_time``) of decode + diagnosis per keyframe at 1080p and 720p,
with the decode alone as the baseline measured in the same run, as cores per camera at the
10 s interval.

Writes bench/results/vqd_eval.json with ``faults`` (type -> precision, recall, ...),
``false_alarms_per_camera_day`` and ``cores_per_camera``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from viis.health import vqd  # noqa: E402
from viis.health.monitor import PersistenceRule  # noqa: E402
from viis.simcam.clips import ClipSpec, _Renderer, index_annexb, scene_box  # noqa: E402

INTERVAL_MS = 10_000
PICTURES = 24          # distinct pictures per clip
PRE, FAULT, POST = 12, 24, 24  # samples of an episode
TARGET = 0.95
# fault type -> (detector kinds that count as it, strengths, [headline type])
HEADLINE = ("signal_loss", "frozen", "black_uniform", "occlusion_50", "scene_change", "blur")
KINDS_OF = {
    "signal_loss": ("video_signal_loss",),
    "frozen": ("video_frozen",),
    "black_uniform": ("video_black", "video_no_signal"),
    "occlusion_50": ("video_occluded",),
    "partial_occlusion": ("video_occluded",),
    "scene_change": ("video_scene_change",),
    "blur": ("video_blur",),
    "too_dark": ("video_too_dark",),
    "too_bright": ("video_too_bright",),
    "colour_cast": ("video_colour_cast",),
    "noise": ("video_noise",),
    "stripes": ("video_stripes",),
}
TYPE_OF_KIND: dict[str, tuple[str, ...]] = {}
for _t, _ks in KINDS_OF.items():
    for _k in _ks:
        TYPE_OF_KIND.setdefault(_k, ())
        TYPE_OF_KIND[_k] += (_t,)

Planes = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]


# ---------------------------------------------------------------- pictures


def encode_decode(spec: ClipSpec, frames: list[np.ndarray]) -> list[Planes]:
    """yuv420p frames -> libx264 IDR frames (simulator's sensor noise) -> production decoder."""
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "rawvideo",
           "-pix_fmt", "yuv420p", "-s", f"{spec.width}x{spec.height}", "-r", "25", "-i", "pipe:0",
           "-vf", f"noise=c0s={spec.noise}:c0f=t", "-c:v", "libx264", "-preset", "superfast",
           "-crf", "23", "-g", "1", "-bf", "0", "-x264-params", "aud=1:repeat-headers=1",
           "-f", "h264", "pipe:1"]
    data = subprocess.run(cmd, input=b"".join(bytes(f) for f in frames), capture_output=True,
                          check=True).stdout
    out = []
    for off, size, key in index_annexb(data):
        assert key
        y, u, v = vqd.decode_keyframe_yuv("h264", data[off:off + size])
        out.append((y.copy(), None if u is None else u.copy(), None if v is None else v.copy()))
    assert len(out) == len(frames), (len(out), len(frames))
    return out


Post = Callable[[np.ndarray, np.ndarray, np.ndarray, int], None]


def render_set(spec: ClipSpec, seed: int, variant: str = "normal", strength: float | None = None,
               post: Post | None = None, movers: bool = True, k0: int = 0) -> list[Planes]:
    r = _Renderer(spec, variant, strength, seed)
    if not movers:
        r.movers = []
    w, h = spec.width, spec.height
    frames = []
    step = max(1, spec.cycle_frames // PICTURES)
    for i in range(PICTURES):
        k = k0 + i * step
        f = r.render(k).copy()
        if post is not None:
            y = f[: w * h].reshape(h, w)
            u = f[w * h: w * h * 5 // 4].reshape(h // 2, w // 2)
            v = f[w * h * 5 // 4:].reshape(h // 2, w // 2)
            post(y, u, v, k)
        frames.append(f)
    return encode_decode(spec, frames)


def gain(g: float, chroma: float = 1.0, sigma: float = 0.0) -> Post:
    """Scene brightness (night, lights switching) and extra sensor noise; not a fault."""
    def post(y, u, v, k):
        rng = np.random.default_rng(k + 17)
        yf = 16.0 + (y.astype(np.float32) - 16.0) * g
        if sigma:
            yf += rng.normal(0, sigma, y.shape)
        y[:] = np.clip(yf, 0, 255).astype(np.uint8)
        for c in (u, v):
            c[:] = np.clip(128.0 + (c.astype(np.float32) - 128.0) * chroma, 0, 255).astype(np.uint8)
    return post


def person(y, u, v, k):
    """Someone passing close to the lens: a dark soft blob over about a third of the picture
    for one or two samples (a hard negative: transient, not a cover)."""
    h, w = y.shape
    yy, xx = np.mgrid[0:h, 0:w]
    cx = w * (0.3 + 0.4 * ((k * 7) % 10) / 10)
    d = ((xx - cx) / (w * 0.22)) ** 2 + ((yy - h * 0.65) / (h * 0.6)) ** 2
    a = np.clip((1.1 - d) / 0.2, 0, 1)
    y[:] = (y * (1 - a) + 30 * a).astype(np.uint8)


def uniform_screen(level: int, cb: int = 128, cr: int = 128) -> Post:
    def post(y, u, v, k):
        y[:] = level
        u[:] = cb
        v[:] = cr
    return post


def cover_share(spec: ClipSpec, strength: float) -> float:
    """Share of the diagnosed region (scene box) the cover hides (mask >= 0.5)."""
    r = _Renderer(spec, "cover", strength)
    x0, y0, x1, y1 = scene_box(spec.width, spec.height)
    return float((r.cover[y0:y1, x0:x1] >= 0.5).mean())


# ---------------------------------------------------------------- running cameras


@dataclass
class Opening:
    kind: str
    at: int            # sample index
    camera: str


class Camera:
    """One simulated camera: the production judge and signal-loss rule on a driven clock."""

    def __init__(self, name: str, roi, rule: PersistenceRule, loss_ms: int) -> None:
        self.name = name
        self.judge = vqd.CameraJudge(vqd.VqdConfig(), rule.new, roi)
        self.loss = vqd.SignalLoss(loss_ms)
        self.seen_ms = 0
        self.openings: list[Opening] = []
        self.cpu_s = 0.0
        self.samples = 0

    def tick(self, i: int, planes: Planes | None) -> None:
        now = i * INTERVAL_MS
        if planes is not None:
            self.seen_ms = now
            if self.loss.active:
                self.loss.active = False
            t0 = time.thread_time()
            _s, events = self.judge.step(planes[0], now, planes[1], planes[2])
            self.cpu_s += time.thread_time() - t0
            self.samples += 1
            for ev, kind, _v in events:
                if ev == "raise":
                    self.openings.append(Opening(kind, i, self.name))
        if self.loss.update(now, self.seen_ms) == "raise":
            self.openings.append(Opening(vqd.SIGNAL_LOSS, i, self.name))


@dataclass
class Episode:
    type: str
    strength: str
    camera: str
    onset: int
    end: int            # first sample after the fault
    detected: bool = False
    delay_s: float | None = None


def run_episode(ep_type: str, strength_label: str, name: str, clean: list[Planes],
                fault: list[Planes] | None, rule, loss_ms, roi, onset_jitter: int,
                loss_len: int = FAULT) -> tuple[Episode, Camera]:
    cam = Camera(name, roi, rule, loss_ms)
    onset = PRE + onset_jitter
    end = onset + (loss_len if ep_type == "signal_loss" else FAULT)
    total = end + POST
    frozen_pic = None
    for i in range(total):
        pic: Planes | None = clean[i % PICTURES]
        if onset <= i < end:
            if ep_type == "signal_loss":
                pic = None
            elif ep_type == "frozen":
                frozen_pic = frozen_pic or clean[onset % PICTURES]
                pic = frozen_pic
            else:
                pic = fault[i % PICTURES]
        cam.tick(i, pic)
    ep = Episode(ep_type, strength_label, name, onset, end)
    for o in cam.openings:
        if ep_type in TYPE_OF_KIND.get(o.kind, ()) and onset <= o.at <= end:
            ep.detected = True
            ep.delay_s = (o.at - onset) * INTERVAL_MS / 1000
            break
    return ep, cam


def is_true(o: Opening, ep: Episode | None) -> bool:
    return ep is not None and ep.type in TYPE_OF_KIND.get(o.kind, ()) and ep.onset <= o.at <= ep.end


# ---------------------------------------------------------------- cost


def cost(width: int, height: int, n: int) -> dict:
    spec = ClipSpec.create(width, height, 25, gop_s=1.0, cycle_s=4.0)
    r = _Renderer(spec, "normal")
    frames = [r.render(k * 7).copy() for k in range(n)]
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "rawvideo",
           "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-r", "25", "-i", "pipe:0",
           "-vf", "noise=c0s=4:c0f=t", "-c:v", "libx264", "-preset", "superfast",
           "-b:v", str(spec.effective_bitrate), "-g", "1", "-bf", "0",
           "-x264-params", "aud=1:repeat-headers=1", "-f", "h264", "pipe:1"]
    data = subprocess.run(cmd, input=b"".join(bytes(f) for f in frames), capture_output=True,
                          check=True).stdout
    kfs = [data[o:o + s] for o, s, _k in index_annexb(data)]
    judge = vqd.CameraJudge(vqd.VqdConfig(), PersistenceRule().new, scene_box(width, height))
    dec, full = [], []
    for rep in range(2):
        for i, kf in enumerate(kfs):
            t0 = time.thread_time()
            vqd.decode_keyframe_yuv("h264", kf)
            dec.append(time.thread_time() - t0)
            t0 = time.thread_time()
            y, u, v = vqd.decode_keyframe_yuv("h264", kf)
            judge.step(y, (rep * n + i) * INTERVAL_MS, u, v)
            full.append(time.thread_time() - t0)
    d, f = statistics.median(dec), statistics.median(full)
    return {"size": f"{width}x{height}", "idr_bytes_median": int(statistics.median(map(len, kfs))),
            "decode_s": round(d, 5), "decode_and_diagnose_s": round(f, 5),
            "ratio_to_decode": round(f / d, 2),
            "cores_per_camera": round(f / (INTERVAL_MS / 1000), 5),
            "baseline_decode_cores_per_camera": round(d / (INTERVAL_MS / 1000), 5)}


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clean-hours", type=float, default=12.0,
                    help="hours of every clean camera (6 cameras)")
    ap.add_argument("--quick", action="store_true", help="2 clean hours, one scene per fault")
    ap.add_argument("--seeds", default="7,11",
                    help="scene seeds of the fault episodes (other seeds = scenes the "
                         "detectors were not tuned on)")
    ap.add_argument("--out", default=str(ROOT / "bench/results/vqd_eval.json"))
    a = ap.parse_args(argv)
    if a.quick:
        a.clean_hours = 2.0
    t_start = time.monotonic()
    spec = ClipSpec.create(640, 360, 25, gop_s=1.0, cycle_s=24.0)
    roi = scene_box(spec.width, spec.height)
    rule = PersistenceRule()  # the production default
    loss_ms = int(max(30.0, 3 * INTERVAL_MS / 1000) * 1000)  # HealthMonitor's default
    seeds = tuple(int(x) for x in a.seeds.split(","))[:1 if a.quick else None]

    print("rendering clean scenes ...", flush=True)
    clean = {s: render_set(spec, s) for s in seeds}
    # fault sets: (type, label, variant, strength, post)
    plan: list[tuple[str, str, str, float | None, Post | None]] = [
        ("black_uniform", "black", "black", None, None),
        ("black_uniform", "blue screen", "blue", None, None),
        ("black_uniform", "grey screen", "normal", None, uniform_screen(128)),
        ("black_uniform", "dark blue screen", "normal", None, uniform_screen(29, 255, 107)),
        ("blur", "radius x0.7", "blur", 0.7, None),
        ("blur", "radius x1", "blur", 1.0, None),
        ("blur", "radius x1.5", "blur", 1.5, None),
        ("scene_change", "turned 4 % of the width", "shift", 0.5, None),
        ("scene_change", "turned 8 %", "shift", 1.0, None),
        ("too_dark", "contrast 15 %", "dark", 0.15, None),
        ("too_dark", "contrast 18 %", "dark", 0.18, None),
        ("too_dark", "contrast 25 %", "dark", 0.25, None),
        ("too_bright", "lift 0.6", "bright", 0.6, None),
        ("too_bright", "lift 0.8", "bright", 0.8, None),
        ("colour_cast", "15 levels", "cast", 15.0, None),
        ("colour_cast", "28 levels", "cast", 28.0, None),
        ("colour_cast", "40 levels", "cast", 40.0, None),
        ("noise", "sigma 20", "noise", 20.0, None),
        ("noise", "sigma 36", "noise", 36.0, None),
        ("noise", "sigma 50", "noise", 50.0, None),
        ("stripes", "amplitude 8", "stripes", 8.0, None),
        ("stripes", "amplitude 18", "stripes", 18.0, None),
        ("stripes", "amplitude 30", "stripes", 30.0, None),
    ]
    for st in (0.5, 0.8, 1.0, 1.3, 1.8):
        share = cover_share(spec, st)
        plan.append(("occlusion_50" if share >= 0.5 else "partial_occlusion",
                     f"cover {share:.0%} of the picture", "cover", st, None))
    episodes: list[Episode] = []
    cams: list[tuple[Camera, Episode | None]] = []
    jitter = 0
    print(f"rendering and running {len(plan)} fault sets x {len(seeds)} scenes ...", flush=True)
    for ep_type, label, variant, strength, post in plan:
        for s in seeds:
            fault = render_set(spec, s, variant, strength, post)
            for _rep in range(2):
                jitter = (jitter + 5) % 7
                ep, cam = run_episode(ep_type, label, f"{ep_type}/{label}/seed{s}/{_rep}", clean[s],
                                      fault, rule, loss_ms, roi, jitter)
                episodes.append(ep)
                cams.append((cam, ep))
    for s in seeds:  # frozen and signal loss need no rendering
        for rep in range(3):
            jitter = (jitter + 5) % 7
            ep, cam = run_episode("frozen", "picture repeats", f"frozen/seed{s}/{rep}", clean[s],
                                  None, rule, loss_ms, roi, jitter)
            episodes.append(ep)
            cams.append((cam, ep))
        for secs in (60, 120, 600):
            jitter = (jitter + 5) % 7
            ep, cam = run_episode("signal_loss", f"no packets {secs} s", f"loss{secs}/seed{s}",
                                  clean[s], None, rule, loss_ms, roi, jitter,
                                  loss_len=secs * 1000 // INTERVAL_MS)
            episodes.append(ep)
            cams.append((cam, ep))
        # a short drop-out below the threshold is not a signal loss (hard negative)
        ep, cam = run_episode("signal_loss", "no packets 20 s", f"blip20/seed{s}", clean[s], None,
                              rule, loss_ms, roi, 0, loss_len=2)
        cams.append((cam, None))

    print(f"rendering clean hard negatives and running {a.clean_hours:g} h each ...", flush=True)
    s0 = seeds[0]
    night = render_set(spec, s0, post=gain(0.42, 0.5, 5.0))
    rain = render_set(spec, s0, post=gain(1.0, 1.0, 7.0))
    still = render_set(spec, s0, movers=False)
    dim = render_set(spec, s0, post=gain(0.7))
    passing = render_set(spec, s0, post=person)
    other = render_set(spec, 23)
    n = int(a.clean_hours * 3600 * 1000 // INTERVAL_MS)
    clean_runs: dict[str, Callable[[int], Planes]] = {
        "day street": lambda i: clean[s0][i % PICTURES],
        "other street": lambda i: other[i % PICTURES],
        "still scene": lambda i: still[i % PICTURES],
        "night-like scene": lambda i: night[i % PICTURES],
        "rain-like noise": lambda i: rain[i % PICTURES],
        # lights dim for an hour every other hour; someone passes close to the lens for one
        # sample every 15 min and for two every hour
        "lights switching, people close to the lens": lambda i: (
            passing[i % PICTURES] if i % 90 in (45,) or i % 360 in (200, 201)
            else dim[i % PICTURES] if (i // 360) % 2 else clean[s0][i % PICTURES]),
    }
    clean_cams = []
    for name, pick in clean_runs.items():
        cam = Camera(f"clean/{name}", roi, rule, loss_ms)
        for i in range(n):
            cam.tick(i, pick(i))
        clean_cams.append(cam)
        cams.append((cam, None))
        print(f"  {name}: {len(cam.openings)} openings {[o.kind for o in cam.openings][:5]}",
              flush=True)

    # ---------------------------------------------------------------- scoring
    faults: dict[str, dict] = {}
    for t in KINDS_OF:
        eps = [e for e in episodes if e.type == t]
        det = [e for e in eps if e.detected]
        tp = fp = 0
        fp_where: list[str] = []
        for cam, ep in cams:
            for o in cam.openings:
                if t not in TYPE_OF_KIND.get(o.kind, ()):
                    continue
                if is_true(o, ep) and ep.type == t:
                    tp += 1
                elif is_true(o, ep):
                    continue  # e.g. an occluded opening on a partial-cover clip, counted there
                else:
                    fp += 1
                    fp_where.append(f"{cam.name}@{o.at}:{o.kind}")
        delays = [e.delay_s for e in det if e.delay_s is not None]
        by_strength: dict[str, list[int]] = {}
        for e in eps:
            by_strength.setdefault(e.strength, [0, 0])
            by_strength[e.strength][0] += e.detected
            by_strength[e.strength][1] += 1
        faults[t] = {
            "episodes": len(eps), "detected": len(det),
            "recall": round(len(det) / len(eps), 3) if eps else None,
            "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "false_positives": fp, "false_positive_examples": fp_where[:5],
            "delay_s_median": statistics.median(delays) if delays else None,
            "delay_s_max": max(delays) if delays else None,
            "recall_by_strength": {k: f"{d}/{n_}" for k, (d, n_) in by_strength.items()},
            "headline": t in HEADLINE,
        }
    days = len(clean_cams) * a.clean_hours / 24
    fa = sum(len(c.openings) for c in clean_cams)
    diag_s = sum(c.cpu_s for c, _ in cams)
    diag_n = sum(c.samples for c, _ in cams)
    print("measuring cost ...", flush=True)
    costs = [cost(1920, 1080, 8), cost(1280, 720, 8)]
    worst = max(c["cores_per_camera"] for c in costs)
    met = {t: (faults[t]["recall"] or 0) >= TARGET and (faults[t]["precision"] or 0) >= TARGET
           for t in HEADLINE}
    result = {
        "benchmark": "vqd_eval",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpu_count": __import__("os").cpu_count(), "python": platform.python_version()},
        "setup": {"picture": f"{spec.width}x{spec.height} libx264 crf 23 IDR, simulator noise "
                             f"c0s={spec.noise}; region of interest = scene box",
                  "interval_s": INTERVAL_MS / 1000,
                  "persistence": {"n": rule.n, "m": rule.m, "min_s": rule.min_s,
                                  "clear_n": rule.clear_n},
                  "signal_loss_s": loss_ms / 1000, "scenes": list(seeds),
                  "episode_samples": {"before": PRE, "fault": FAULT, "after": POST}},
        "faults": faults,
        "false_alarms_per_camera_day": round(fa / days, 3) if days else None,
        "clean": {"cameras": [c.name for c in clean_cams], "camera_days": round(days, 3),
                  "openings": fa,
                  "openings_by_camera": {c.name: [o.kind for o in c.openings] for c in clean_cams}},
        "cores_per_camera": worst,
        "cost": costs,
        "diagnosis_only_ms_per_sample_at_640x360": round(1000 * diag_s / diag_n, 3) if diag_n else None,
        "targets": {"recall": TARGET, "precision": TARGET, "false_alarms_per_camera_day": 1.0,
                    "cores_per_camera": 0.01},
        "targets_met": {**met, "false_alarms": (fa / days if days else 0) <= 1.0,
                        "cost": worst <= 0.01},
        "run_seconds": round(time.monotonic() - t_start, 1),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    for t, f in faults.items():
        print(f"{t:18s} recall {f['recall']}  precision {f['precision']}  "
              f"delay {f['delay_s_median']} s  by strength {f['recall_by_strength']}"
              + (f"  FP {f['false_positive_examples'][:2]}" if f["false_positives"] else ""))
    print(f"false alarms per camera-day: {result['false_alarms_per_camera_day']} "
          f"({fa} over {days:.2f} camera-days)")
    for c in costs:
        print(f"cost {c['size']}: {c['decode_and_diagnose_s'] * 1000:.1f} ms per keyframe "
              f"(decode alone {c['decode_s'] * 1000:.1f} ms, x{c['ratio_to_decode']}), "
              f"{c['cores_per_camera']} cores per camera at 10 s")
    print(f"targets met: {result['targets_met']}; wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
