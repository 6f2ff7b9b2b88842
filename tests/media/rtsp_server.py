"""Test helper: a real GStreamer RTSP server in a subprocess.

Imported from the test virtualenv it gives :class:`GstRtspServer`; run as a
script under Debian's ``/usr/bin/python3`` (the only interpreter with working
GStreamer bindings) it *is* the server.  The server binds port 0 on 127.0.0.1
and prints ``READY <port>`` once it listens.

Mounts (320x240 video at 25 fps, keyframe every 25 frames, no B-frames):

* ``/h264``       H.264
* ``/h265``       H.265
* ``/h264aac``    H.264 + AAC (mpeg4-generic, 48 kHz mono)
* ``/h264pcma``   H.264 + PCMA (8 kHz)
* ``/big``        only with ``--big``: 1920x1080 H.264 at about 4 Mbit/s

With ``auth=True`` (``--auth``) every mount needs digest authentication as
``SECURE_USER``/``SECURE_PASSWORD`` (GstRtspServer's default token would turn
a missing login into 404 instead of a challenge, hence a separate instance).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

SYSTEM_PYTHON = "/usr/bin/python3"
SECURE_USER = "admin"
SECURE_PASSWORD = "Sup3r-Secret!pw"

_VIDEO = ("videotestsrc is-live=true pattern=ball ! "
          "video/x-raw,width=320,height=240,framerate=25/1 ! ")
_H264 = (_VIDEO + "x264enc tune=zerolatency bframes=0 key-int-max=25 speed-preset=ultrafast "
         "threads=1 ! rtph264pay name=pay0 pt=96 config-interval=-1")
_H265 = (_VIDEO + "x265enc tune=zerolatency key-int-max=25 speed-preset=ultrafast ! "
         "rtph265pay name=pay0 pt=96 config-interval=-1")
_BIG = ("videotestsrc is-live=true pattern=snow ! "
        "video/x-raw,width=1920,height=1080,framerate=25/1 ! "
        "x264enc tune=zerolatency bframes=0 key-int-max=50 speed-preset=ultrafast "
        "bitrate=4000 vbv-buf-capacity=1000 pass=cbr ! "
        "rtph264pay name=pay0 pt=96 config-interval=-1")


def _aac_encoder() -> str:
    return os.environ.get("VIIS_TEST_AACENC", "avenc_aac")


def mounts(big: bool = False) -> dict[str, str]:
    aac = (" audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! "
           "audio/x-raw,rate=48000,channels=1 ! " + _aac_encoder() +
           " ! rtpmp4gpay name=pay1 pt=97")
    pcma = (" audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! "
            "audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1 pt=8")
    m = {
        "/h264": "( " + _H264 + " )",
        "/h265": "( " + _H265 + " )",
        "/h264aac": "( " + _H264 + aac + " )",
        "/h264pcma": "( " + _H264 + pcma + " )",
    }
    if big:
        m["/big"] = "( " + _BIG + " )"
    return m


# ---------------------------------------------------------------------------
# the server (runs under /usr/bin/python3)


def _serve(big: bool, auth: bool) -> None:  # pragma: no cover - runs in the subprocess
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    gi.require_version("GstRtsp", "1.0")
    from gi.repository import GLib, Gst, GstRtsp, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service("0")
    mp = server.get_mount_points()
    for path, launch in mounts(big).items():
        f = GstRtspServer.RTSPMediaFactory()
        f.set_launch(launch)
        f.set_shared(True)
        if auth:
            perm = GstRtspServer.RTSPPermissions()
            perm.add_permission_for_role("user", "media.factory.access", True)
            perm.add_permission_for_role("user", "media.factory.construct", True)
            f.set_permissions(perm)
        mp.add_factory(path, f)
    if auth:
        # digest only, and no default token: every request needs the credentials
        a = GstRtspServer.RTSPAuth()
        a.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        a.add_digest(SECURE_USER, SECURE_PASSWORD, token)
        server.set_auth(a)

    if server.attach(None) == 0:
        print("FAILED attach", flush=True)
        sys.exit(2)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    loop.run()


# ---------------------------------------------------------------------------
# the controller (runs in the test process)


class GstRtspServer:
    """Start/stop a GStreamer RTSP server subprocess; use as a context manager."""

    def __init__(self, big: bool = False, auth: bool = False, start_timeout: float = 20.0):
        self.big = big
        self.auth = auth
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self._stderr = None
        self.port = 0

    def start(self) -> GstRtspServer:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env.pop("VIRTUAL_ENV", None)
        args = [SYSTEM_PYTHON, os.path.abspath(__file__)]
        args += (["--big"] if self.big else []) + (["--auth"] if self.auth else [])
        import tempfile

        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._stderr,
                                     text=True, env=env, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    self._stderr.seek(0)
                    err = self._stderr.read()[-2000:]
                    raise RuntimeError(f"GStreamer RTSP server exited early: {err}")
                if sel.select(timeout=0.2):
                    line = self.proc.stdout.readline()
                    if line.startswith("READY "):
                        self.port = int(line.split()[1])
                        return self
                    if line.startswith("FAILED"):
                        raise RuntimeError(f"GStreamer RTSP server: {line.strip()}")
        finally:
            sel.close()
        self.stop()
        raise RuntimeError("GStreamer RTSP server did not become ready")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def url(self, mount: str, user: str | None = None, password: str | None = None) -> str:
        cred = ""
        if user is not None:
            from urllib.parse import quote

            cred = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
            cred += "@"
        return f"rtsp://{cred}127.0.0.1:{self.port}{mount}"

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(5)

    def stop(self) -> None:
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGCONT)
                p.terminate()
                p.wait(5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                p.kill()
                p.wait(5)
        for f in (p.stdout, self._stderr):
            if f is not None:
                f.close()
        self.proc = None

    def __enter__(self) -> GstRtspServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":  # pragma: no cover
    _serve("--big" in sys.argv[1:], "--auth" in sys.argv[1:])
