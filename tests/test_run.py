"""`viis run` with nothing configured brings up the whole system: 4 simulated cameras on a
real RTSP server, each recorded, and the API answering (the README's run command)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

VIIS = str(Path(sys.executable).with_name("viis"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_records_four_simulated_cameras_and_serves_the_api(tmp_path):
    port = free_port()
    env = dict(os.environ, VIIS_DATA_DIR=str(tmp_path / "data"), VIIS_HTTP__PORT=str(port),
               VIIS_SIMCAM__RTSP_PORT=str(free_port()), VIIS_SIMCAM__CONTROL_PORT=str(free_port()),
               VIIS_SIMCAM__WIDTH="320", VIIS_SIMCAM__HEIGHT="180", VIIS_SIMCAM__BITRATE="300000",
               VIIS_SIMCAM__GOP_S="1", VIIS_STORAGE__SEGMENT_SECONDS="4",
               VIIS_STORAGE__MIN_FREE_BYTES="1048576")
    env.pop("VIIS_CONFIG", None)
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen([VIIS, "run"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            cwd=tmp_path, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base + "/api/health", timeout=2) as r:
                    if json.load(r)["status"] == "ok":
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError((tmp_path / "run.log").read_text()[-3000:])
        token = (tmp_path / "data" / "api-token").read_text().strip()
        req = urllib.request.Request(base + "/api/cameras", headers={"Authorization": f"Bearer {token}"})
        cams = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with urllib.request.urlopen(req, timeout=5) as r:
                cams = json.load(r)
            if len(cams) == 4 and all(c["status"]["segments"] >= 1 for c in cams):
                break
            time.sleep(1)
        assert [c["name"] for c in cams] == [f"sim-cam{i}" for i in range(1, 5)]
        assert all(c["status"]["state"] == "recording" for c in cams), cams
        assert all(c["status"]["segments"] >= 1 for c in cams), cams
        with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
            assert "viis_segments_written_total" in r.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)  # a clean stop also stops the simulated fleet
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert code == 0, (tmp_path / "run.log").read_text()[-3000:]
    assert "api-token" in (tmp_path / "run.log").read_text()  # where the token is; never the token
    assert token not in (tmp_path / "run.log").read_text()
