"""`viis run` with ``[gb28181] cascade_enabled`` starts the lower-platform role (Q13.1): an
upper platform added through the API is registered to at once (REGISTER with our platform
ID), its state is in the API, ``viis run`` unregisters when it stops, and the upper's
password never reaches the log. (Off by default.)"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request

from tests.interconnect.cascade_helpers import LOCAL, UPPER
from tests.test_run import VIIS, free_port
from viis.core.config import Gb28181Settings
from viis.interconnect.gb28181.sip import make_response, parse


class Upper(threading.Thread):
    """A minimal upper platform on UDP: 200 to every request, each one kept."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                continue
            req = parse(data)
            self.requests.append(req)
            resp = make_response(req, 200)
            if req.get("Expires"):
                resp.headers.add("Expires", req.get("Expires"))
            self.sock.sendto(resp.encode(), addr)


def _api(base, token, method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def test_the_cascade_is_off_unless_enabled():
    assert Gb28181Settings().cascade_enabled is False


def test_viis_run_registers_to_an_upper_added_through_the_api(tmp_path):
    http, sip = free_port(), free_port()
    upper = Upper()
    upper.start()
    env = dict(os.environ, VIIS_DATA_DIR=str(tmp_path / "data"), VIIS_HTTP__PORT=str(http),
               VIIS_SIMCAM__ENABLED="false", VIIS_HEALTH__ENABLED="false",
               VIIS_GB28181__CASCADE_ENABLED="true", VIIS_GB28181__CASCADE_HOST="127.0.0.1",
               VIIS_GB28181__CASCADE_PORT=str(sip))
    env.pop("VIIS_CONFIG", None)
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen([VIIS, "run"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            cwd=tmp_path, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{http}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base + "/api/health", timeout=2) as r:
                    if json.load(r)["status"] == "ok":
                        break
            except OSError:
                time.sleep(0.3)
        else:
            raise AssertionError((tmp_path / "run.log").read_text()[-3000:])
        token = (tmp_path / "data" / "api-token").read_text().strip()
        up = _api(base, token, "POST", "/api/gb28181/uppers", {
            "name": "city", "server_id": UPPER, "host": "127.0.0.1", "port": upper.port,
            "password": "run-cascade-pw-9", "local_id": LOCAL, "keepalive_s": 60})
        deadline = time.monotonic() + 30
        state = {}
        while time.monotonic() < deadline:
            state = _api(base, token, "GET", f"/api/gb28181/uppers/{up['id']}")["status"]
            if state.get("registered"):
                break
            time.sleep(0.2)
        assert state.get("registered"), state
        reg = [r for r in upper.requests if r.method == "REGISTER"]
        assert reg and reg[0].from_.uri.user == LOCAL and reg[0].get("Expires") == "3600"
        assert reg[0].top_via.port == sip
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        upper.done.set()
    text = (tmp_path / "run.log").read_text()
    assert code == 0, text[-3000:]
    assert "gb.cascade.started" in text and "run-cascade-pw-9" not in text
    assert [r.get("Expires") for r in upper.requests if r.method == "REGISTER"][-1] == "0"
