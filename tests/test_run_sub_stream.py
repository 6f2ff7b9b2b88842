"""`viis run` with `[simcam] sub_stream = true`: every simulated camera is registered with
its sub stream (half the width), which is what a live wall of many tiles plays (issue 3
item 3; Q2.1, Q19.1; bench/live_latency.py measures the 16-tile wall both ways)."""

from __future__ import annotations

import json
import subprocess
import time

from tests.viis_process import free_port, viis_run


def test_run_registers_each_simulated_camera_with_its_half_width_sub_stream(tmp_path):
    env = dict(VIIS_SIMCAM__COUNT="2", VIIS_SIMCAM__RTSP_PORT=str(free_port()),
               VIIS_SIMCAM__CONTROL_PORT=str(free_port()), VIIS_SIMCAM__WIDTH="320",
               VIIS_SIMCAM__HEIGHT="180", VIIS_SIMCAM__BITRATE="300000", VIIS_SIMCAM__GOP_S="1",
               VIIS_SIMCAM__SUB_STREAM="true", VIIS_HEALTH__ENABLED="false",
               VIIS_STORAGE__MIN_FREE_BYTES="1048576")
    with viis_run(tmp_path, free_port(), env, ready_s=120, poll_s=0.5) as run:
        cams = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            cams = run.api("GET", "/api/cameras")
            if len(cams) == 2 and all(c["status"]["state"] == "recording" for c in cams):
                break
            time.sleep(1)
        assert [c["name"] for c in cams] == ["sim-cam1", "sim-cam2"]
        for c in cams:
            assert c["sub_url"] == c["main_url"] + "/sub", c
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v:0",
             "-show_entries", "stream=codec_name,width,height", "-of", "json", cams[1]["sub_url"]],
            capture_output=True, text=True, timeout=60, check=True)
        stream = json.loads(probe.stdout)["streams"][0]
        assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 160, 90)
    assert run.code == 0, run.log()[-3000:]
