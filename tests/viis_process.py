"""`viis run` as a child process for the tests that start the whole system: free ports, the
environment (a fresh data directory, no VIIS_CONFIG), waiting for /api/health, the API token
the first start writes, and a clean stop (SIGTERM, at most 60 s, then the process group is
killed and the test fails). One place for what tests/test_run.py and the GB/T 28181
``viis run`` tests each used to spell out."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

VIIS = str(Path(sys.executable).with_name("viis"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningViis:
    proc: subprocess.Popen
    base: str  # http://127.0.0.1:<port>
    token: str
    log_path: Path
    code: int | None = None  # the exit code, once stopped

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def api(self, method: str, path: str, body=None):
        """JSON in, JSON out, with the admin token."""
        req = urllib.request.Request(self.base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)


@contextmanager
def viis_run(tmp_path: Path, http_port: int, env: dict[str, str] | None = None, *,
             ready_s: float = 90, poll_s: float = 0.3) -> Iterator[RunningViis]:
    """Start ``viis run`` with ``VIIS_*`` settings ``env`` (data in ``tmp_path/data``, its log
    in ``tmp_path/run.log``), yield once /api/health says ok, stop it cleanly on exit; the
    exit code is then in ``.code`` (asserted by the caller, after the block)."""
    full = dict(os.environ, VIIS_DATA_DIR=str(tmp_path / "data"),
                VIIS_HTTP__PORT=str(http_port), **(env or {}))
    full.pop("VIIS_CONFIG", None)
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([VIIS, "run"], env=full, stdout=log, stderr=subprocess.STDOUT,
                                cwd=tmp_path, start_new_session=True)
    run = RunningViis(proc, f"http://127.0.0.1:{http_port}", "", log_path)
    try:
        deadline = time.monotonic() + ready_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(run.base + "/api/health", timeout=2) as r:
                    if json.load(r)["status"] == "ok":
                        break
            except OSError:
                time.sleep(poll_s)
        else:
            raise AssertionError(run.log()[-3000:])
        run.token = (tmp_path / "data" / "api-token").read_text().strip()
        yield run
    finally:
        proc.send_signal(signal.SIGTERM)  # a clean stop also stops what viis run started
        try:
            run.code = proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
