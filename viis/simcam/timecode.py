"""Machine-readable time code burnt into every simulated camera frame.

Layout (all positions are fractions of the frame size, so a scaled picture
decodes too): a strip across the full width at the top of the picture,
``STRIP_HEIGHT`` of the frame height tall, split into ``BLOCKS`` equal blocks.
Each block is either black (luma 16) or white (luma 235):

====== ===== =============================================================
blocks bits  meaning
====== ===== =============================================================
0-3    4     sync pattern 1 0 1 0 (also the black/white reference levels)
4-23   20    milliseconds of capture time within the loop cycle, MSB first
24-31  8     CRC-8 (polynomial 0x07) of the 20 data bits packed in 3 bytes
====== ===== =============================================================

A read is accepted only if the sync pattern is right, the contrast between the
reference blocks is high, every block is clearly black or white and uniform,
and the CRC matches; anything else gives ``None`` rather than a wrong time.

The code carries the capture time modulo the cycle (the simulator aligns the
loop to the wall clock, see ``docs/design/simcam.md``);
:func:`resolve_capture_ms` turns it into absolute epoch milliseconds given an
approximate "now".
"""

from __future__ import annotations

import numpy as np

BLOCKS = 32
SYNC = (1, 0, 1, 0)
DATA_BITS = 20
CRC_BITS = 8
MAX_CODE_MS = (1 << DATA_BITS) - 1
STRIP_HEIGHT = 0.05  # fraction of the frame height
BLACK = 16
WHITE = 235
MIN_CONTRAST = 48.0

__all__ = [
    "BLOCKS",
    "MAX_CODE_MS",
    "STRIP_HEIGHT",
    "crc8",
    "decode_timecode",
    "draw_timecode",
    "encode_bits",
    "resolve_capture_ms",
    "strip_rows",
]


def crc8(data: bytes) -> int:
    """CRC-8 with polynomial 0x07, initial value 0."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _data_crc(value: int) -> int:
    return crc8(value.to_bytes(3, "big"))


def encode_bits(code_ms: int) -> list[int]:
    """The 32 block values (1 = white) for ``code_ms``."""
    if not 0 <= code_ms <= MAX_CODE_MS:
        raise ValueError(f"time code {code_ms} out of range 0..{MAX_CODE_MS}")
    bits = list(SYNC)
    bits += [(code_ms >> (DATA_BITS - 1 - i)) & 1 for i in range(DATA_BITS)]
    crc = _data_crc(code_ms)
    bits += [(crc >> (CRC_BITS - 1 - i)) & 1 for i in range(CRC_BITS)]
    return bits


def strip_rows(height: int) -> int:
    """Number of pixel rows the strip occupies in a frame ``height`` tall."""
    return max(4, int(round(height * STRIP_HEIGHT)))


def _block_edges(width: int) -> list[int]:
    return [int(round(i * width / BLOCKS)) for i in range(BLOCKS + 1)]


def draw_timecode(luma: np.ndarray, code_ms: int) -> None:
    """Draw the strip for ``code_ms`` into a luma plane (modified in place)."""
    height, width = luma.shape
    rows = strip_rows(height)
    edges = _block_edges(width)
    for i, bit in enumerate(encode_bits(code_ms)):
        luma[:rows, edges[i] : edges[i + 1]] = WHITE if bit else BLACK


def decode_timecode(gray: np.ndarray) -> int | None:
    """Read the time code (ms within the cycle) from a luma/gray picture.

    ``gray`` is a 2-D array (a 3-D RGB array is averaged over its channels).
    Returns ``None`` when no valid code is found.
    """
    img = np.asarray(gray)
    if img.ndim == 3:
        img = img.mean(axis=2)
    if img.ndim != 2:
        return None
    height, width = img.shape
    if height < 16 or width < BLOCKS * 2:
        return None
    # sample the middle half of each block, vertically and horizontally
    y_top = height * STRIP_HEIGHT
    y0 = int(np.floor(y_top * 0.25))
    y1 = max(y0 + 1, int(np.ceil(y_top * 0.75)))
    band = img[y0:y1].astype(np.float32)
    means = np.empty(BLOCKS, np.float32)
    stds = np.empty(BLOCKS, np.float32)
    bw = width / BLOCKS
    for i in range(BLOCKS):
        x0 = int(np.floor(i * bw + bw * 0.25))
        x1 = max(x0 + 1, int(np.ceil(i * bw + bw * 0.75)))
        cell = band[:, x0:x1]
        means[i] = cell.mean()
        stds[i] = cell.std()
    white = min(means[0], means[2])
    black = max(means[1], means[3])
    contrast = white - black
    if contrast < MIN_CONTRAST:
        return None
    threshold = (white + black) / 2.0
    if np.any(np.abs(means - threshold) < 0.25 * contrast):
        return None
    if np.any(stds > 0.2 * contrast):
        return None
    bits = [1 if m > threshold else 0 for m in means]
    if tuple(bits[:4]) != SYNC:
        return None
    value = 0
    for b in bits[4 : 4 + DATA_BITS]:
        value = (value << 1) | b
    crc = 0
    for b in bits[4 + DATA_BITS :]:
        crc = (crc << 1) | b
    if crc != _data_crc(value):
        return None
    return value


def resolve_capture_ms(code_ms: int, approx_now_ms: int | float, cycle_ms: int) -> int:
    """Absolute epoch milliseconds of a time code, using an approximate "now".

    The answer is the instant congruent to ``code_ms`` modulo ``cycle_ms``
    nearest to ``approx_now_ms``; it is right while the true error is less
    than half a cycle.
    """
    if cycle_ms <= 0:
        raise ValueError("cycle_ms must be positive")
    now = int(round(approx_now_ms))
    delta = (int(code_ms) - now) % cycle_ms
    if delta > cycle_ms / 2:
        delta -= cycle_ms
    return now + delta
