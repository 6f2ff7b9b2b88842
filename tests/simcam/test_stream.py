"""Live RTSP streams of the simulated camera fleet (Q2.1 collect video):
real H.264 without B-frames, endless loop with increasing timestamps, and a
time code that follows the wall clock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.simcam.conftest import CAM_AUTH, CAM_OFFSET, CAM_STREAM, PASSWORD, USER
from tests.simcam.helpers import Receiver, capture_error_ms
from viis.simcam import SimFleet, describe
from viis.simcam.timecode import decode_timecode


def _ffprobe(url: str, *extra: str) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-of", "json", *extra, url],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


def test_ffprobe_sees_h264_at_configured_size_and_rate_without_b_frames(fleet):
    sub = fleet.sub_spec
    for url, (w, h) in (
        (fleet.url(CAM_STREAM), (320, 180)),
        (fleet.url(CAM_STREAM, sub=True), (sub.width, sub.height)),
    ):
        streams = _ffprobe(url, "-show_streams")["streams"]
        assert len(streams) == 1
        s = streams[0]
        assert s["codec_name"] == "h264"
        assert (s["width"], s["height"]) == (w, h)
        assert s["r_frame_rate"] == "25/1"
        assert s["has_b_frames"] == 0
    frames = _ffprobe(
        fleet.url(CAM_STREAM),
        "-show_entries",
        "frame=pict_type,key_frame",
        "-read_intervals",
        "%+2.5",
    )["frames"]
    types = [f["pict_type"] for f in frames]
    assert len(types) >= 50
    assert "B" not in types
    keys = [i for i, f in enumerate(frames) if f["key_frame"] == 1]
    assert len(keys) >= 2 and all(b - a == 25 for a, b in zip(keys, keys[1:]))


def test_stream_loops_with_increasing_pts_and_timecode_following_wall_clock(fleet):
    cycle = fleet.cycle_ms
    assert cycle == 6000
    with Receiver(fleet.url(CAM_STREAM)) as rx:
        rx.wait_frames(1)
        frames = rx.collect(7.0, count_min=150)
    pts = [p for _, p, _ in frames]
    assert all(b > a for a, b in zip(pts, pts[1:])), "PTS must strictly increase"
    codes = [decode_timecode(g) for _, _, g in frames]
    assert None not in codes
    steps = [(b - a) % cycle for a, b in zip(codes, codes[1:])]
    assert set(steps) == {40}, f"time code must advance 1000/fps per frame: {sorted(set(steps))}"
    assert any(b < a for a, b in zip(codes, codes[1:])), "no loop boundary crossed"
    # PTS advance like the time code: 40 ms per frame (90 kHz RTP clock)
    assert {b - a for a, b in zip(pts, pts[1:])} <= {3600}
    latency = [-e for e in capture_error_ms(frames, cycle)]
    assert len(latency) == len(frames)
    assert 0 <= min(latency) and max(latency) < 1000, (min(latency), max(latency))
    print(f"latency ms: median {np.median(latency):.1f} max {max(latency):.1f}")


def test_clock_offset_shifts_the_time_code(fleet):
    cycle = fleet.cycle_ms
    with Receiver(fleet.url(CAM_OFFSET)) as rx:
        rx.wait_frames(1)
        base = np.median(capture_error_ms(rx.collect(1.0, 10), cycle))
        try:
            state = fleet.inject(CAM_OFFSET, "clock_offset", offset_s=2.0)
            assert state["in_effect"] and state["clock_offset_frames"] == 50
            time.sleep(0.3)
            shifted = np.median(capture_error_ms(rx.collect(1.0, 10), cycle))
            assert abs(shifted - base - 2000) < 100, (base, shifted)
            # an epoch-reset style offset: the pixels show it modulo the cycle
            offset_s = -1_700_000_000.0
            state = fleet.inject(CAM_OFFSET, "clock_offset", offset_s=offset_s)
            frames_off = state["clock_offset_frames"]
            expected = (frames_off % (cycle * 25 // 1000)) * 40
            time.sleep(0.3)
            reset = np.median(capture_error_ms(rx.collect(1.0, 10), cycle))
            diff = (reset - base - expected + cycle / 2) % cycle - cycle / 2
            assert abs(diff) < 100, (base, reset, expected)
        finally:
            fleet.clear(CAM_OFFSET)
        time.sleep(0.3)
        back = np.median(capture_error_ms(rx.collect(1.0, 10), cycle))
        assert abs(back - base) < 100


def test_credentials_are_required_where_configured(fleet):
    url = fleet.url(CAM_AUTH)
    assert describe(url)[0] == 401
    assert describe(url, user=USER, password="wrong", auth="basic")[0] == 401
    assert describe(url, user=USER, password="wrong", auth="digest")[0] == 401
    assert describe(url, user=USER, password=PASSWORD, auth="basic")[0] == 200
    assert describe(url, user=USER, password=PASSWORD, auth="digest")[0] == 200
    assert describe(fleet.url(CAM_STREAM))[0] == 200  # open camera
    with Receiver(fleet.url(CAM_AUTH, with_credentials=True)) as rx:
        rx.wait_frames(3)


def test_stop_ends_the_server_process(simcam_cache):
    with SimFleet(1, width=320, height=180, cycle_s=4.0, cache_dir=simcam_cache) as f:
        pid = f.pid
        os.kill(pid, 0)
        assert describe(f.url(0))[0] == 200
        with pytest.raises(ValueError):
            f.inject(0, "explode")
        with pytest.raises(IndexError):
            f.inject(5, "black")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not f.running


def test_command_line_runs_in_foreground_until_sigterm(simcam_cache):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "viis.simcam",
            "--count",
            "2",
            "--port",
            "0",
            "--size",
            "320x180",
            "--cycle",
            "4",
            "--cache-dir",
            str(simcam_cache),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        info = json.loads(proc.stdout.readline())
        assert len(info["urls"]) == 2 and info["urls"][1].endswith("/cam1")
        assert describe(info["urls"][1])[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(info["pid"], 0)
