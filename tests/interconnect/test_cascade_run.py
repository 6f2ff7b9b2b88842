"""`viis run` with ``[gb28181] cascade_enabled`` starts the lower-platform role (Q13.1): an
upper platform added through the API is registered to at once (REGISTER with our platform
ID), its state is in the API, ``viis run`` unregisters when it stops, and the upper's
password never reaches the log. (Off by default.)"""

from __future__ import annotations

import socket
import threading
import time

from tests.interconnect.cascade_helpers import LOCAL, UPPER
from tests.viis_process import free_port, viis_run
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


def test_the_cascade_is_off_unless_enabled():
    assert Gb28181Settings().cascade_enabled is False


def test_viis_run_registers_to_an_upper_added_through_the_api(tmp_path):
    sip = free_port()
    upper = Upper()
    upper.start()
    env = dict(VIIS_SIMCAM__ENABLED="false", VIIS_HEALTH__ENABLED="false",
               VIIS_GB28181__CASCADE_ENABLED="true", VIIS_GB28181__CASCADE_HOST="127.0.0.1",
               VIIS_GB28181__CASCADE_PORT=str(sip))
    try:
        with viis_run(tmp_path, free_port(), env) as run:
            up = run.api("POST", "/api/gb28181/uppers", {
                "name": "city", "server_id": UPPER, "host": "127.0.0.1", "port": upper.port,
                "password": "run-cascade-pw-9", "local_id": LOCAL, "keepalive_s": 60})
            deadline = time.monotonic() + 30
            state = {}
            while time.monotonic() < deadline:
                state = run.api("GET", f"/api/gb28181/uppers/{up['id']}")["status"]
                if state.get("registered"):
                    break
                time.sleep(0.2)
            assert state.get("registered"), state
            reg = [r for r in upper.requests if r.method == "REGISTER"]
            assert reg and reg[0].from_.uri.user == LOCAL and reg[0].get("Expires") == "3600"
            assert reg[0].top_via.port == sip
    finally:
        upper.done.set()
    text = run.log()
    assert run.code == 0, text[-3000:]
    assert "gb.cascade.started" in text and "run-cascade-pw-9" not in text
    assert [r.get("Expires") for r in upper.requests if r.method == "REGISTER"][-1] == "0"
