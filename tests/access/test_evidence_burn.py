"""The pixel work of an evidence export (viis.media.burn): masks opaque and complete (Q9.2),
the watermark legible (Q24.1), publication pixelation (N22.1) with detectors that ship
inside the OpenCV wheel."""

from __future__ import annotations

import subprocess
from fractions import Fraction

import av
import numpy as np

from viis.media import burn
from viis.registry.masks import Polygon

TRIANGLE = Polygon("t", ((0.5, 0.1), (0.9, 0.9), (0.1, 0.9)))


def _frame(y: np.ndarray) -> av.VideoFrame:
    h, w = y.shape
    arr = np.concatenate([y, np.full((h // 2, w), 128, np.uint8)])
    f = av.VideoFrame.from_ndarray(arr, format="yuv420p")
    f.pts, f.time_base = 0, Fraction(1, 25)
    return f


def test_a_mask_covers_its_polygon_and_a_margin_around_it():
    m = burn.mask_bitmap([TRIANGLE], 200, 100)
    assert m[50, 100] and m[88, 20] and m[88, 180]  # inside, near the corners
    assert not m[5, 5] and not m[50, 10]  # outside
    # grown by 2 px: the pixel just outside the apex row is covered
    assert m[8, 100]


def test_masks_and_watermark_are_written_into_the_planes():
    rng = np.random.default_rng(1)
    y = rng.integers(40, 220, (120, 160), dtype=np.uint8)
    st = burn._FrameState(burn.BurnOptions(masks=[TRIANGLE], watermark="VIIS R-1 W-1 t"),
                          burn.BurnResult())
    out = st.burn(_frame(y.copy())).to_ndarray(format="yuv420p")
    yo = out[:120]
    m = burn.mask_bitmap([TRIANGLE], 160, 120)
    rows, text = burn.watermark_band("VIIS R-1 W-1 t", 160, 120)
    above = slice(0, rows.start)  # the watermark is drawn over everything, masks too
    assert (yo[above][m[above]] == burn.BLACK_Y).all()
    band = yo[rows]
    assert (band[text] == burn.WHITE_Y).all() and text.sum() > 50
    assert band[~text].mean() < y[rows][~text].mean()  # darkened behind the text


def test_names_the_font_cannot_draw_become_question_marks():
    assert burn.ascii_text("R-1 张三 W-7") == "R-1 ?? W-7"


def test_a_detection_is_pixelated_in_blocks():
    """N22.1: what the detector found is replaced by 16 px blocks, not a reversible blur."""
    rng = np.random.default_rng(2)
    y = rng.integers(0, 255, (240, 320), dtype=np.uint8)
    st = burn._FrameState(burn.BurnOptions(publication=True), burn.BurnResult())
    st.detector.detect = lambda *_a: None  # a fixed box instead of the cascades' guess
    st.detector.boxes = [(96, 64, 64, 64)]
    out = st.burn(_frame(y.copy())).to_ndarray(format="yuv420p")[:240]
    region = out[64:128, 96:160].astype(int)
    blocks = region.reshape(4, 16, 4, 16)
    assert blocks.std(axis=(1, 3)).max() < 1.0  # each block is one value
    assert y[64:128, 96:160].std() > 50
    assert (out[:40] == y[:40]).all()  # elsewhere the picture is untouched


def test_publication_transcode_runs_with_the_cascades_in_the_wheel(tmp_path):
    src = tmp_path / "src.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=320x240:rate=25", "-t", "1", "-c:v", "libx264", "-preset",
                    "ultrafast", str(src)], check=True)
    seen = []
    res = burn.transcode(src, tmp_path / "out.mp4", burn.BurnOptions(publication=True),
                         progress=seen.append)
    assert res.frames == 25 and seen[-1] == 25
    assert "haarcascade_frontalface_default.xml" in res.detectors
    assert "haarcascade_russian_plate_number.xml" in res.detectors
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 25
