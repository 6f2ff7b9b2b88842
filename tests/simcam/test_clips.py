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
