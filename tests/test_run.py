"""`viis run` with nothing configured brings up the whole system: 4 simulated cameras on a
real RTSP server, each recorded, and the API answering (the README's run command)."""

from __future__ import annotations

import time
import urllib.request

from tests.viis_process import VIIS, free_port, viis_run

__all__ = ["VIIS", "free_port"]  # imported from here by older tests


def test_run_records_four_simulated_cameras_and_serves_the_api(tmp_path):
    env = dict(VIIS_SIMCAM__RTSP_PORT=str(free_port()), VIIS_SIMCAM__CONTROL_PORT=str(free_port()),
               VIIS_SIMCAM__WIDTH="320", VIIS_SIMCAM__HEIGHT="180", VIIS_SIMCAM__BITRATE="300000",
               VIIS_SIMCAM__GOP_S="1", VIIS_STORAGE__SEGMENT_SECONDS="4",
               VIIS_STORAGE__MIN_FREE_BYTES="1048576")
    with viis_run(tmp_path, free_port(), env, ready_s=120, poll_s=0.5) as run:
        cams = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            cams = run.api("GET", "/api/cameras")
            if len(cams) == 4 and all(c["status"]["segments"] >= 1 for c in cams):
                break
            time.sleep(1)
        assert [c["name"] for c in cams] == [f"sim-cam{i}" for i in range(1, 5)]
        assert all(c["status"]["state"] == "recording" for c in cams), cams
        assert all(c["status"]["segments"] >= 1 for c in cams), cams
        with urllib.request.urlopen(run.base + "/metrics", timeout=5) as r:
            assert "viis_segments_written_total" in r.read().decode()
    assert run.code == 0, run.log()[-3000:]
    assert "api-token" in run.log()  # where the token is; never the token
    assert run.token not in run.log()
