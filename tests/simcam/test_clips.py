"""Pre-encoded loop clips of the simulated cameras (Q2.1 collect video)."""

from __future__ import annotations

import json
import time

from viis.simcam.clips import VARIANTS, ClipSpec, ensure_clips


def test_clip_variants_share_gop_alignment_and_parameter_sets_and_are_cached(simcam_cache):
    spec = ClipSpec.create(320, 180, 25, gop_s=1.0, cycle_s=4.0)
    clip_dir = ensure_clips(spec, simcam_cache)
    headers = set()
    for variant in VARIANTS:
        frames = json.loads((clip_dir / f"{variant}.json").read_text())["frames"]
        assert len(frames) == 100
        assert [key for _, _, key in frames] == [i % 25 == 0 for i in range(100)]
        data = (clip_dir / f"{variant}.h264").read_bytes()
        offset, size, _ = frames[25]
        au = data[offset : offset + size]
        idr = au.find(b"\x00\x00\x01\x65")
        assert idr > 0
        headers.add(au[:idr])  # AUD + SPS + PPS before the IDR slice
    assert len(headers) == 1
    t0 = time.monotonic()
    assert ensure_clips(spec, simcam_cache) == clip_dir
    assert time.monotonic() - t0 < 1.0


def _planes(spec, variant, k=10, strength=None):
    import numpy as np

    from viis.simcam.clips import render_frame_yuv, scene_box
    f = render_frame_yuv(spec, variant, k, strength).astype(np.float32)
    w, h = spec.width, spec.height
    x0, y0, x1, y1 = scene_box(w, h)
    y = f[: w * h].reshape(h, w)[y0:y1]
    u = f[w * h: w * h * 5 // 4].reshape(h // 2, w // 2)[y0 // 2: y1 // 2]
    v = f[w * h * 5 // 4:].reshape(h // 2, w // 2)[y0 // 2: y1 // 2]
    return y, u, v


def test_picture_fault_renderers_do_what_their_names_say():
    """The simulator's faults of the health issue (Q19.3), drawn into the scene below the OSD:
    under/over-exposure, colour cast, snow, interference bands, a blue no-video screen."""
    import numpy as np
    spec = ClipSpec.create(320, 180, 25, gop_s=1.0, cycle_s=4.0)
    y0, u0, v0 = _planes(spec, "normal")
    y, _, _ = _planes(spec, "dark")
    assert y.mean() < 0.4 * y0.mean() and y.std() > 2  # darker, still textured
    y, _, _ = _planes(spec, "bright")
    assert np.median(y) > 205
    _, u, v = _planes(spec, "cast", strength=30)
    assert abs((v.mean() - v0.mean()) - 30) < 2 and abs((u.mean() - u0.mean()) + 15) < 2
    y, _, _ = _planes(spec, "noise", strength=30)
    assert (y - y0).std() > 20
    assert not np.array_equal(_planes(spec, "noise", k=11)[0], _planes(spec, "noise", k=12)[0])
    y, _, _ = _planes(spec, "stripes", strength=18)
    rows = (y - y0).mean(axis=1)
    assert rows.max() > 12 and rows.min() < -12
    y, u, v = _planes(spec, "blue")
    assert (y == 34).all() and (u == 212).all() and (v == 117).all()
