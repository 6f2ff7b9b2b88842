"""Fault injection of the simulated cameras (Q2.1 collect video), each fault
measured from what a client receives and decodes."""

from __future__ import annotations

import time

import numpy as np

from tests.simcam.conftest import (
    CAM_BLACK,
    CAM_BLUR,
    CAM_COVER,
    CAM_DROP,
    CAM_FREEZE,
    CAM_SHIFT,
    CAM_STALL,
)
from tests.simcam.helpers import Receiver, laplacian_variance, phase_shift, scene
from viis.simcam import describe
from viis.simcam.clips import scene_box
from viis.simcam.timecode import decode_timecode

BOX = scene_box(320, 180)


def _after_switch(rx: Receiver, seconds: float = 1.0):
    time.sleep(0.3)  # frames already in flight before the switch
    return rx.collect(seconds, count_min=int(seconds * 20))


def test_drop_closes_the_connection_refuses_then_accepts_reconnect(fleet):
    url = fleet.url(CAM_DROP)
    rx = Receiver(url)
    try:
        rx.wait_frames(5)
        t0 = time.time() * 1000
        fleet.inject(CAM_DROP, "drop", refuse_s=2.5)
        deadline = time.monotonic() + 5
        while rx.alive and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not rx.alive, "client connection still open after drop"
        assert rx.ended_at - t0 < 2000
        assert describe(url)[0] == 503
    finally:
        rx.close()
    time.sleep(max(0.0, t0 / 1000 + 2.7 - time.time()))
    assert describe(url)[0] == 200
    with Receiver(url) as again:
        again.wait_frames(5)


def test_stall_stops_packets_for_the_period_then_resumes(fleet):
    with Receiver(fleet.url(CAM_STALL), keep_pixels=False) as rx:
        rx.wait_frames(5)
        t0 = time.time() * 1000
        fleet.inject(CAM_STALL, "stall", duration_s=2.0)
        time.sleep(4.0)
        arrivals = [t for t in rx.packets if t >= t0 - 100]
        assert rx.alive and rx.error is None
    gaps = np.diff(arrivals)
    assert 1800 <= gaps.max() <= 3500, gaps.max()
    resumed = [t for t in arrivals if t > t0 + 2000]
    assert len(resumed) >= 10, "stream did not resume after the stall"


def test_freeze_repeats_identical_pictures_until_cleared(fleet):
    with Receiver(fleet.url(CAM_FREEZE)) as rx:
        rx.wait_frames(5)
        try:
            fleet.inject(CAM_FREEZE, "freeze")
            frames = _after_switch(rx, 2.5)  # longer than a GOP: the IDR repeats too
        finally:
            fleet.clear(CAM_FREEZE)
        first = frames[0][2]
        assert all(np.array_equal(first, g) for _, _, g in frames)
        assert decode_timecode(first) is not None
        pts = [p for _, p, _ in frames]
        assert all(b > a for a, b in zip(pts, pts[1:]))
        moving = _after_switch(rx, 1.0)
        codes = {decode_timecode(g) for _, _, g in moving}
        assert len(codes) >= 20


def test_black_darkens_the_scene_keeps_the_osd_and_expires(fleet):
    with Receiver(fleet.url(CAM_BLACK)) as rx:
        rx.wait_frames(5)
        normal = [scene(g, BOX).mean() for _, _, g in rx.collect(0.5, 5)]
        fleet.inject(CAM_BLACK, "black", duration_s=2.0)
        t0 = time.monotonic()
        frames = _after_switch(rx, 1.0)
        dark = [scene(g, BOX).mean() for _, _, g in frames]
        assert min(normal) > 60 and max(dark) < 30, (min(normal), max(dark))
        assert all(decode_timecode(g) is not None for _, _, g in frames)
        time.sleep(max(0.0, 2.0 + 1.5 - (time.monotonic() - t0)))
        state = fleet.camera_state(CAM_BLACK)
        assert state["variant"] == "normal" and state["in_effect"]
        again = [scene(g, BOX).mean() for _, _, g in _after_switch(rx, 0.5)]
        assert min(again) > 60


def test_blur_lowers_the_sharpness_of_the_scene(fleet):
    with Receiver(fleet.url(CAM_BLUR)) as rx:
        rx.wait_frames(5)
        sharp = np.median([laplacian_variance(scene(g, BOX)) for _, _, g in rx.collect(0.5, 5)])
        try:
            fleet.inject(CAM_BLUR, "blur")
            frames = _after_switch(rx, 0.5)
        finally:
            fleet.clear(CAM_BLUR)
        blurred = np.median([laplacian_variance(scene(g, BOX)) for _, _, g in frames])
        assert blurred * 4 < sharp, (sharp, blurred)
        assert all(decode_timecode(g) is not None for _, _, g in frames)


def test_cover_darkens_a_large_part_of_the_frame(fleet):
    def dark_fraction(frames):
        return np.median([(scene(g, BOX) < 40).mean() for _, _, g in frames])

    with Receiver(fleet.url(CAM_COVER)) as rx:
        rx.wait_frames(5)
        before = dark_fraction(rx.collect(0.5, 5))
        try:
            fleet.inject(CAM_COVER, "cover")
            frames = _after_switch(rx, 0.5)
        finally:
            fleet.clear(CAM_COVER)
        covered = dark_fraction(frames)
        assert covered - before > 0.3, (before, covered)
        assert all(decode_timecode(g) is not None for _, _, g in frames)


def test_shift_moves_the_view(fleet):
    with Receiver(fleet.url(CAM_SHIFT)) as rx:
        rx.wait_frames(5)
        normal = rx.collect(0.5, 5)
        try:
            fleet.inject(CAM_SHIFT, "shift")
            shifted = _after_switch(rx, 0.5)
        finally:
            fleet.clear(CAM_SHIFT)
    ref = scene(normal[0][2], BOX)
    assert phase_shift(ref, scene(normal[-1][2], BOX)) == (0, 0)
    dy, dx = phase_shift(ref, scene(shifted[-1][2], BOX))
    assert abs(dx) >= 0.04 * 320 or abs(dy) >= 0.04 * 180, (dy, dx)
    assert all(decode_timecode(g) is not None for _, _, g in shifted)
