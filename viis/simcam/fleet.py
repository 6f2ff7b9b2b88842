"""Python API of the simulated camera fleet (runs in the project virtualenv).

>>> with SimFleet(3, width=320, height=180, cycle_s=10) as fleet:
...     url = fleet.url(0)              # rtsp://127.0.0.1:<port>/cam0
...     fleet.inject(1, "black", duration_s=5)
...     fleet.inject(2, "clock_offset", offset_s=30)

The clips are generated (or taken from the cache) in this process; the RTSP
server runs as a separate process under Debian's ``/usr/bin/python3``
(GStreamer's Python bindings exist only there), see ``gst_server.py``.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import json
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

from viis.simcam.clips import ClipSpec, ensure_clips

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("gst_server.py")
FAULTS = ("drop", "stall", "freeze", "black", "blur", "cover", "shift", "dark", "bright", "cast",
          "noise", "stripes", "blue", "clock_offset")

Credentials = tuple[str, str]

__all__ = ["FAULTS", "SimFleet", "SimFleetError", "describe"]


class SimFleetError(RuntimeError):
    pass


def _sub_size(width: int, height: int) -> tuple[int, int]:
    if width >= 1280:
        w = 640
    else:
        w = max(64, width // 2)
    h = max(64, int(round(w * height / width)))
    return w - w % 2, h - h % 2


class SimFleet:
    """N simulated cameras on a real RTSP server.

    Cameras are numbered 0..count-1; camera ``i`` is served at
    ``rtsp://<host>:<rtsp_port>/cam<i>`` (and ``/cam<i>/sub`` with
    ``sub_stream=True``).  Port 0 picks a free port; read the actual ports
    from :attr:`rtsp_port` and :attr:`control_port` after :meth:`start`.

    ``credentials``: ``None`` (open), one ``(user, password)`` for every
    camera, or a mapping/sequence per camera index (``None`` = open camera).
    """

    def __init__(
        self,
        count: int = 4,
        *,
        rtsp_port: int = 0,
        control_port: int = 0,
        width: int = 640,
        height: int = 360,
        fps: int = 25,
        bitrate: int | None = None,
        gop_s: float = 1.0,
        cycle_s: float = 60.0,
        cache_dir: str | os.PathLike | None = None,
        credentials: Credentials
        | Mapping[int, Credentials | None]
        | Sequence[Credentials | None]
        | None = None,
        auth_methods: Sequence[str] = ("basic", "digest"),
        sub_stream: bool = False,
        sub_width: int | None = None,
        sub_height: int | None = None,
        sub_bitrate: int | None = None,
        host: str = "127.0.0.1",
        bind: str | None = None,
        noise: int = 4,
        preset: str = "superfast",
        python: str = SYSTEM_PYTHON,
        start_timeout: float = 30.0,
        log_path: str | os.PathLike | None = None,
        verbose: bool = False,
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        self.count = int(count)
        self.spec = ClipSpec.create(
            width, height, fps, bitrate, gop_s=gop_s, cycle_s=cycle_s, noise=noise, preset=preset
        )
        self.sub_spec: ClipSpec | None = None
        if sub_stream:
            sw, sh = (
                (sub_width, sub_height) if sub_width and sub_height else _sub_size(width, height)
            )
            self.sub_spec = ClipSpec.create(
                sw, sh, fps, sub_bitrate, gop_s=gop_s, cycle_s=cycle_s, noise=noise, preset=preset
            )
        self.host = host
        self.bind = bind or host
        self.requested_rtsp_port = int(rtsp_port)
        self.requested_control_port = int(control_port)
        self.cache_dir = cache_dir
        self.credentials = self._normalise_credentials(credentials)
        self.auth_methods = [m.lower() for m in auth_methods]
        for m in self.auth_methods:
            if m not in ("basic", "digest"):
                raise ValueError(f"unknown auth method {m!r}")
        self.python = python
        self.start_timeout = start_timeout
        self.verbose = verbose
        self._log_path = Path(log_path) if log_path else None
        self._own_log = False
        self._proc: subprocess.Popen | None = None
        self._config_path: str | None = None
        self.rtsp_port: int | None = None
        self.control_port: int | None = None
        self.clip_dir: Path | None = None
        self.sub_clip_dir: Path | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ config

    def _normalise_credentials(self, credentials) -> dict[int, Credentials]:
        if credentials is None:
            return {}
        if (
            isinstance(credentials, tuple)
            and len(credentials) == 2
            and all(isinstance(x, str) for x in credentials)
        ):
            return {i: credentials for i in range(self.count)}
        if isinstance(credentials, Mapping):
            items = credentials.items()
        else:
            items = enumerate(credentials)
        out: dict[int, Credentials] = {}
        for i, cred in items:
            if cred is None:
                continue
            if not 0 <= int(i) < self.count:
                raise ValueError(f"credentials for unknown camera {i}")
            user, password = cred
            out[int(i)] = (str(user), str(password))
        return out

    @property
    def fps(self) -> int:
        return self.spec.fps

    @property
    def gop_frames(self) -> int:
        return self.spec.gop_frames

    @property
    def cycle_ms(self) -> int:
        """Length of the loop; decoded time codes are capture time mod this."""
        return self.spec.cycle_ms

    @property
    def pid(self) -> int | None:
        """Process id of the RTSP server (all simulator streaming CPU is there)."""
        return self._proc.pid if self._proc else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def url(self, i: int, *, sub: bool = False, with_credentials: bool = False) -> str:
        """RTSP URL of camera ``i`` (0-based)."""
        if not 0 <= i < self.count:
            raise IndexError(f"camera {i} out of range 0..{self.count - 1}")
        if sub and self.sub_spec is None:
            raise ValueError("fleet was started without sub streams")
        if self.rtsp_port is None:
            raise SimFleetError("fleet not started")
        auth = ""
        if with_credentials and i in self.credentials:
            user, password = self.credentials[i]
            auth = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}@"
        return f"rtsp://{auth}{self.host}:{self.rtsp_port}/cam{i}" + ("/sub" if sub else "")

    def onvif_url(self, i: int) -> str:
        """ONVIF device service of camera ``i`` (``GetSystemDateAndTime`` only): its clock,
        shifted like its pictures by an injected ``clock_offset``."""
        if not 0 <= i < self.count:
            raise IndexError(f"camera {i} out of range 0..{self.count - 1}")
        if self.control_port is None:
            raise SimFleetError("fleet not started")
        return f"http://127.0.0.1:{self.control_port}/onvif/cam{i}/device_service"

    @property
    def urls(self) -> list[str]:
        return [self.url(i) for i in range(self.count)]

    # ------------------------------------------------------------ start/stop

    def prepare(self, log=None) -> None:
        """Generate or load the clips (done by :meth:`start` if needed)."""
        self.clip_dir = ensure_clips(self.spec, self.cache_dir, log=log)
        if self.sub_spec is not None:
            self.sub_clip_dir = ensure_clips(self.sub_spec, self.cache_dir, log=log)

    def start(self) -> SimFleet:
        with self._lock:
            if self.running:
                return self
            log = (lambda m: print(m, file=sys.stderr)) if self.verbose else None
            if self.clip_dir is None:
                self.prepare(log=log)
            config = {
                "count": self.count,
                "bind": self.bind,
                "rtsp_port": self.requested_rtsp_port,
                "control_port": self.requested_control_port,
                "parent_pid": os.getpid(),
                "clips": {
                    "main": str(self.clip_dir),
                    "sub": str(self.sub_clip_dir) if self.sub_clip_dir else None,
                },
                "credentials": {
                    str(i): {"user": u, "password": p} for i, (u, p) in self.credentials.items()
                },
                "auth_methods": self.auth_methods,
            }
            fd, self._config_path = tempfile.mkstemp(prefix="viis-simcam-", suffix=".json")
            with os.fdopen(fd, "w") as fh:
                json.dump(config, fh)
            if self._log_path is None:
                fd, path = tempfile.mkstemp(prefix="viis-simcam-", suffix=".log")
                os.close(fd)
                self._log_path = Path(path)
                self._own_log = True
            env = {
                k: v
                for k, v in os.environ.items()
                if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
            }
            with open(self._log_path, "ab") as log_fh:
                self._proc = subprocess.Popen(
                    [self.python, "-I", str(SERVER_SCRIPT), "--config", self._config_path],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=log_fh,
                    env=env,
                    close_fds=True,
                )
            _LIVE.add(self)
            try:
                ready = self._read_ready()
                self.rtsp_port = int(ready["rtsp_port"])
                self.control_port = int(ready["control_port"])
                self._wait_mounts()
            except BaseException:
                self._stop_locked()
                raise
            return self

    def _read_ready(self) -> dict:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        buf = b""
        fd = self._proc.stdout.fileno()
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
                for line in buf.split(b"\n"):
                    if line.startswith(b"SIMCAM-READY "):
                        return json.loads(line[len(b"SIMCAM-READY ") :])
            elif self._proc.poll() is not None:
                break
        raise SimFleetError(f"simcam server did not start: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            text = Path(self._log_path).read_text(errors="replace") if self._log_path else ""
        except OSError:
            text = ""
        rc = self._proc.poll() if self._proc else None
        return f"exit code {rc}; log: {text[-3000:]}"

    def _wait_mounts(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        targets = [(i, False) for i in range(self.count)]
        if self.sub_spec is not None:
            targets += [(i, True) for i in range(self.count)]
        errors: dict[tuple[int, bool], str] = {}

        def check(i: int, sub: bool) -> None:
            user, password = self.credentials.get(i, (None, None))
            last = ""
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.poll() is not None:
                    last = "server exited"
                    break
                try:
                    status, _ = describe(
                        self.url(i, sub=sub), user=user, password=password, timeout=5
                    )
                    if status == 200:
                        errors.pop((i, sub), None)
                        return
                    last = f"DESCRIBE status {status}"
                    if status in (401, 403, 404):
                        break  # will not change by waiting
                except OSError as exc:
                    last = str(exc)
                time.sleep(0.1)
            errors[(i, sub)] = last

        for i, sub in targets:
            errors[(i, sub)] = "not checked"
        threads = [threading.Thread(target=check, args=t, daemon=True) for t in targets]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            first = next(iter(errors.items()))
            raise SimFleetError(f"mounts not answering, e.g. {first}: {self._log_tail()}")

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stop_locked(timeout)

    def _stop_locked(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout:
                proc.stdout.close()
        _LIVE.discard(self)
        if self._config_path:
            try:
                os.unlink(self._config_path)
            except OSError:
                pass
            self._config_path = None
        if self._own_log and self._log_path:
            try:
                os.unlink(self._log_path)
            except OSError:
                pass
            self._log_path = None
            self._own_log = False

    def __enter__(self) -> SimFleet:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -------------------------------------------------------------- control

    def _request(self, method: str, path: str, payload: dict | None = None, timeout: float = 15.0):
        if self.control_port is None or not self.running:
            raise SimFleetError("fleet not running")
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.control_port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("error")
            except (ValueError, AttributeError):
                detail = exc.reason
            if exc.code == 404:
                raise IndexError(detail) from None
            raise ValueError(detail) from None

    def status(self) -> dict:
        """Server status: fps, GOP, cycle and every camera's fault state."""
        return self._request("GET", "/status")

    def inject(self, i: int, fault: str, **params) -> dict:
        """Inject a fault into camera ``i``; returns the camera's state.

        ``drop`` (``refuse_s=0``, ``refuse_status=503``), ``stall``
        (``duration_s=5``), ``freeze``, ``black``, ``blur``, ``cover``,
        ``shift``, ``dark``, ``bright``, ``cast``, ``noise``, ``stripes``,
        ``blue``, ``clock_offset`` (``offset_s``, rounded to whole GOPs).
        All but ``drop`` accept ``duration_s``; picture faults and
        ``clock_offset`` take effect at the next keyframe and the call returns
        once they have (``wait=False`` returns at once).
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
        return self._request("POST", f"/cameras/{int(i)}/fault", {"fault": fault, **params})

    def clear(self, i: int, fault: str | None = None, *, wait: bool = True) -> dict:
        """Clear one fault (or all) of camera ``i``."""
        payload: dict = {"wait": wait}
        if fault:
            payload["fault"] = fault
        return self._request("POST", f"/cameras/{int(i)}/clear", payload)

    def camera_state(self, i: int) -> dict:
        return self.status()["cameras"][i]


_LIVE: weakref.WeakSet[SimFleet] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for fleet in list(_LIVE):
        try:
            fleet.stop(timeout=2.0)
        except Exception:  # noqa: BLE001
            pass


# ------------------------------------------------------------ RTSP helper


def describe(
    url: str,
    *,
    user: str | None = None,
    password: str | None = None,
    timeout: float = 5.0,
    auth: str = "auto",
) -> tuple[int, str]:
    """Send an RTSP DESCRIBE (with Basic or Digest auth if a 401 asks for it).

    ``auth``: ``"auto"`` (Digest if offered, else Basic), ``"basic"`` or
    ``"digest"``.  Returns (status code, body).  Raises OSError on
    connection problems.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.username and user is None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 554
    clean = f"rtsp://{host}:{port}{parts.path or '/'}"
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        reader = sock.makefile("rb")
        status, headers, body = _rtsp_request(sock, reader, "DESCRIBE", clean, 1, {})
        if status == 401 and user is not None:
            header = _authorization(headers, "DESCRIBE", clean, user, password or "", auth)
            if header:
                status, headers, body = _rtsp_request(
                    sock, reader, "DESCRIBE", clean, 2, {"Authorization": header}
                )
        return status, body


def _rtsp_request(sock, reader, method, url, cseq, extra) -> tuple[int, list[tuple[str, str]], str]:
    lines = [f"{method} {url} RTSP/1.0", f"CSeq: {cseq}", "Accept: application/sdp"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    status_line = reader.readline().decode(errors="replace")
    if not status_line:
        raise ConnectionError("connection closed by server")
    m = re.match(r"RTSP/1\.0 (\d{3})", status_line)
    if not m:
        raise ConnectionError(f"bad RTSP status line {status_line!r}")
    headers: list[tuple[str, str]] = []
    while True:
        line = reader.readline().decode(errors="replace")
        if line in ("\r\n", "\n", ""):
            break
        if ":" in line:
            k, v = line.split(":", 1)
            headers.append((k.strip(), v.strip()))
    length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
    body = reader.read(length).decode(errors="replace") if length else ""
    return int(m.group(1)), headers, body


def _authorization(headers, method, uri, user, password, auth="auto") -> str | None:
    challenges = [v for k, v in headers if k.lower() == "www-authenticate"]
    for ch in challenges:
        if ch.lower().startswith("digest") and auth in ("auto", "digest"):
            params = dict(re.findall(r'(\w+)="?([^",]*)"?', ch[6:]))
            realm, nonce = params.get("realm", ""), params.get("nonce", "")
            ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
            ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
            resp = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
            return (
                f'Digest username="{user}", realm="{realm}", nonce="{nonce}", '
                f'uri="{uri}", response="{resp}"'
            )
    for ch in challenges:
        if ch.lower().startswith("basic") and auth in ("auto", "basic"):
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            return f"Basic {token}"
    return None
