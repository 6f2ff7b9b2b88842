"""Time code burnt into simulated camera frames (Q2.1 collect video): it must
decode from pixels, survive scaling, and refuse garbage rather than lie."""

from __future__ import annotations

import numpy as np
import pytest

from viis.simcam import timecode
from viis.simcam.clips import ClipSpec, render_frame_yuv
from viis.simcam.timecode import decode_timecode, resolve_capture_ms


def _luma(spec: ClipSpec, variant: str, k: int) -> np.ndarray:
    yuv = render_frame_yuv(spec, variant, k)
    return yuv[: spec.width * spec.height].reshape(spec.height, spec.width)


@pytest.mark.parametrize("variant", ["normal", "black", "blur", "cover", "shift"])
def test_rendered_frame_decodes_to_its_capture_millisecond(variant):
    spec = ClipSpec.create(320, 180, 25, cycle_s=60)
    for k in (0, 1, 37, 1499):
        assert decode_timecode(_luma(spec, variant, k)) == k * 40


def test_timecode_decodes_from_a_scaled_picture():
    spec = ClipSpec.create(640, 360, 25, cycle_s=60)
    y = _luma(spec, "normal", 1234)
    half = y[::2, ::2]
    ys = (np.arange(int(360 * 1.5)) / 1.5).astype(int)
    xs = (np.arange(int(640 * 1.5)) / 1.5).astype(int)
    bigger = y[ys][:, xs]
    assert decode_timecode(half) == 1234 * 40
    assert decode_timecode(bigger) == 1234 * 40


def test_timecode_rejects_noise_flat_and_flipped_bits():
    rng = np.random.default_rng(1)
    for _ in range(50):
        noise = rng.integers(0, 256, size=(180, 320), dtype=np.uint8)
        assert decode_timecode(noise) is None
    assert decode_timecode(np.full((180, 320), 128, np.uint8)) is None
    assert decode_timecode(np.zeros((180, 320), np.uint8)) is None
    spec = ClipSpec.create(320, 180, 25, cycle_s=60)
    y = _luma(spec, "normal", 500).copy()
    assert decode_timecode(y) == 20000
    rows = timecode.strip_rows(180)
    edges = [round(i * 320 / timecode.BLOCKS) for i in range(timecode.BLOCKS + 1)]
    # flip one data bit: the CRC must catch it
    block = 10
    cell = y[:rows, edges[block] : edges[block + 1]]
    cell[:] = timecode.WHITE if cell.mean() < 128 else timecode.BLACK
    assert decode_timecode(y) is None


def test_resolve_capture_ms_picks_the_nearest_cycle():
    cycle = 60_000
    now = 1_700_000_000_123
    code = now % cycle
    assert resolve_capture_ms(code, now, cycle) == now
    assert resolve_capture_ms((code - 500) % cycle, now, cycle) == now - 500
    assert resolve_capture_ms((code + 29_000) % cycle, now, cycle) == now + 29_000
    assert resolve_capture_ms((code - 29_000) % cycle, now, cycle) == now - 29_000
    # across the cycle boundary
    assert resolve_capture_ms(59_990, 120_010, cycle) == 119_990
    assert resolve_capture_ms(10, 119_990, cycle) == 120_010
