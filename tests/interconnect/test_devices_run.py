"""`viis run` with ``[gb28181] enabled`` starts the platform role (Q13.2): a device's
REGISTER is challenged, answered 200 with the GB time-sync Date after digest, and the device
is listed by the API. (Off by default: ``Gb28181Settings().enabled`` is false.)"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

from tests.test_run import VIIS, free_port
from viis.core.config import Gb28181Settings
from viis.interconnect.gb28181.digest import build_authorization
from viis.interconnect.gb28181.sip import parse

DEV = "34020000001320000042"


def _register(port: int, auth: str | None, cseq: int) -> str:
    lines = ["REGISTER sip:34020000002000000001@3402000000 SIP/2.0",
             "Via: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bK-run-" + str(cseq),
             f"From: <sip:{DEV}@3402000000>;tag=t1", f"To: <sip:{DEV}@3402000000>",
             "Call-ID: run-test-1", f"CSeq: {cseq} REGISTER",
             f"Contact: <sip:{DEV}@127.0.0.1:5999>", "Expires: 3600", "Max-Forwards: 70"]
    if auth:
        lines.append(f"Authorization: {auth}")
    return "\r\n".join(lines + ["Content-Length: 0", "", ""])


def _ask(sock: socket.socket, port: int, text: str):
    sock.sendto(text.encode(), ("127.0.0.1", port))
    data, _ = sock.recvfrom(65535)
    return parse(data)


def test_the_platform_role_is_off_unless_enabled():
    assert Gb28181Settings().enabled is False


def test_viis_run_with_gb28181_enabled_answers_register(tmp_path):
    http, sip = free_port(), free_port()
    env = dict(os.environ, VIIS_DATA_DIR=str(tmp_path / "data"), VIIS_HTTP__PORT=str(http),
               VIIS_SIMCAM__ENABLED="false", VIIS_HEALTH__ENABLED="false",
               VIIS_GB28181__ENABLED="true", VIIS_GB28181__HOST="127.0.0.1",
               VIIS_GB28181__PORT=str(sip), VIIS_GB28181__PASSWORD="run-secret-1")
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
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(10)
            challenge = _ask(s, sip, _register(sip, None, 1))
            assert challenge.status == 401
            auth = build_authorization(challenge.get("WWW-Authenticate"), username=DEV,
                                       password="run-secret-1", method="REGISTER",
                                       uri="sip:34020000002000000001@3402000000")
            ok = _ask(s, sip, _register(sip, auth, 2))
            assert ok.status == 200, ok
            assert len(ok.get("Date") or "") == 23 and "T" in ok.get("Date")  # GB time sync
        token = (tmp_path / "data" / "api-token").read_text().strip()
        req = urllib.request.Request(base + "/api/gb28181/devices",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = json.load(r)
        assert body["enabled"] and [d["device_id"] for d in body["devices"]] == [DEV]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    text = (tmp_path / "run.log").read_text()
    assert code == 0, text[-3000:]
    assert "gb28181_platform_started" in text and "run-secret-1" not in text  # never logged
