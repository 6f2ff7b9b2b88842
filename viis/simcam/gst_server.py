#!/usr/bin/python3
"""RTSP server of the simulated camera fleet (GStreamer, Debian's system Python).

Run as ``/usr/bin/python3 gst_server.py --config CONFIG.json``.  It uses the
standard library and PyGObject only: GStreamer's Python bindings exist only
for Debian's ``/usr/bin/python3``, not in the project virtualenv.

One GstRtspServer with a mount per camera (``/cam<i>`` and optionally
``/cam<i>/sub``); every client gets its own ``appsrc ! h264parse !
rtph264pay`` media (not shared: a shared media that is being torn down after a
DESCRIBE-only client answers the next DESCRIBE with 503), starting at a
keyframe.  One scheduler thread pushes the pre-encoded access units of every
camera in real time, without re-encoding (buffers share the clip memory): the
loop is aligned to the wall clock, frame ``k`` of the cycle is sent at the
instant ``T`` with ``T mod cycle == k / fps`` (plus the camera's injected
clock offset).  Timestamps are derived from the global frame slot, so they
always increase, across loops, clip switches and stalls.

A JSON control interface on HTTP (127.0.0.1) injects faults per camera:

``GET  /status``                      state of every camera
``POST /cameras/<i>/fault``           body ``{"fault": NAME, ...params}``
``POST /cameras/<i>/clear``           body ``{}`` or ``{"fault": NAME}``
``POST /onvif/cam<i>/device_service``  ONVIF ``GetSystemDateAndTime`` (SOAP 1.2): the
                                      camera's clock, shifted by its injected offset

Faults: ``drop`` (``refuse_s``, ``refuse_status``: DESCRIBE/SETUP/PLAY are
refused, OPTIONS never is, see ``_on_client_connected``), ``stall``
(``duration_s``), ``freeze``, ``black``, ``blur``, ``cover``, ``shift``,
``dark``, ``bright``, ``cast``, ``noise``, ``stripes``, ``blue``, ``clock_offset`` (``offset_s``); all but ``drop`` take ``duration_s`` after
which they clear themselves.  Picture changes take effect at the next
keyframe; with ``"wait": true`` (default) the request returns when they do.

When the server is listening it prints one line
``SIMCAM-READY {"rtsp_port": ..., "control_port": ..., "pid": ...}`` on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

# PyGObject marshals the GstRTSPContext argument of RTSPClient::send-message
# as an object and GLib warns once; the argument is not used.
warnings.filterwarnings("ignore", message=".*G_VALUE_HOLDS_OBJECT.*")

PICTURE_FAULTS = ("black", "blur", "cover", "shift", "dark", "bright", "cast", "noise",
                  "stripes", "blue")
ALL_FAULTS = PICTURE_FAULTS + ("freeze", "stall", "drop", "clock_offset")


def log(msg: str) -> None:
    sys.stderr.write(f"simcam-server: {msg}\n")
    sys.stderr.flush()


# ------------------------------------------------------------------ clips


class Clip:
    """One variant: a list of Gst.Buffers (one access unit each)."""

    def __init__(self, path_h264: str, path_index: str) -> None:
        with open(path_h264, "rb") as fh:
            data = fh.read()
        with open(path_index) as fh:
            frames = json.load(fh)["frames"]
        self.buffers: list[Gst.Buffer] = []
        self.sizes: list[int] = []
        self.keys: list[bool] = []
        for offset, size, key in frames:
            buf = Gst.Buffer.new_wrapped(data[offset : offset + size])
            if not key:
                buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
            self.buffers.append(buf)
            self.sizes.append(size)
            self.keys.append(bool(key))
        self.nbytes = len(data)


class ClipSet:
    """All variants of one stream size (main or sub)."""

    def __init__(self, directory: str) -> None:
        with open(os.path.join(directory, "meta.json")) as fh:
            meta = json.load(fh)
        self.meta = meta
        self.width = meta["width"]
        self.height = meta["height"]
        self.fps = meta["fps"]
        self.gop = meta["gop_frames"]
        self.cycle = meta["cycle_frames"]
        self.clips = {
            v: Clip(os.path.join(directory, f"{v}.h264"), os.path.join(directory, f"{v}.json"))
            for v in meta["variants"]
        }
        for v, clip in self.clips.items():
            if len(clip.buffers) != self.cycle:
                raise ValueError(
                    f"{directory}/{v}: {len(clip.buffers)} frames, expected {self.cycle}"
                )

    def caps(self) -> Gst.Caps:
        return Gst.Caps.from_string(
            "video/x-h264,stream-format=byte-stream,alignment=au,"
            f"width={self.width},height={self.height},framerate={self.fps}/1"
        )


# ---------------------------------------------------------------- cameras


class Feed:
    """One appsrc (one prepared shared media) fed by the scheduler."""

    def __init__(self, appsrc: Gst.Element, media) -> None:
        self.appsrc = appsrc
        self.media = media
        self.need_key = True
        self.playing = False  # a client has PLAYed this media
        self.preroll_slot: int | None = None  # slot of the first push
        self.slot0: int | None = None
        self.pts0 = 0
        self.pushed = 0


class Stream:
    def __init__(self, name: str, path: str, clips: ClipSet) -> None:
        self.name = name
        self.path = path
        self.clips = clips
        self.feeds: list[Feed] = []


class Camera:
    def __init__(self, index: int, fps: int, gop: int, cycle: int) -> None:
        self.index = index
        self.name = f"cam{index}"
        self.fps = fps
        self.gop = gop
        self.cycle = cycle
        self.streams: list[Stream] = []
        self.clients: set = set()
        # requested state
        self.variant = "normal"
        self.freeze = False
        self.offset_frames = 0
        self.offset_s = 0.0
        self.stall_until = 0.0
        self.refuse_until = 0.0
        self.refuse_status = 503
        self.expires: dict[str, float] = {}
        # state in effect (changes only at keyframes)
        self.active_variant = "normal"
        self.active_freeze = False
        self.active_offset = 0
        self.frozen_gop = 0
        self.freeze_slot = 0
        self.stalled = False
        self.frames_sent = 0
        self.drops = 0
        self.last_switch = 0.0

    def in_effect(self) -> bool:
        return (
            self.active_variant == self.variant
            and self.active_freeze == self.freeze
            and self.active_offset == self.offset_frames
        )

    def state(self) -> dict:
        now = time.time()
        return {
            "index": self.index,
            "paths": [s.path for s in self.streams],
            "variant": self.variant,
            "freeze": self.freeze,
            "clock_offset_s": self.offset_s,
            "clock_offset_frames": self.offset_frames,
            "stalled": self.stall_until > now,
            "stall_until": self.stall_until or None,
            "refusing": self.refuse_until > now,
            "refuse_until": self.refuse_until or None,
            "in_effect": self.in_effect(),
            "active": {
                "variant": self.active_variant,
                "freeze": self.active_freeze,
                "clock_offset_frames": self.active_offset,
            },
            "expires": dict(self.expires),
            "clients": len(self.clients),
            "feeds": sum(len(s.feeds) for s in self.streams),
            "frames_sent": self.frames_sent,
            "drops": self.drops,
            "last_switch": self.last_switch or None,
        }


# ------------------------------------------------------------------ auth


class _SimAuth(GstRtspServer.RTSPAuth):
    """RTSPAuth for a fleet where some cameras need credentials.

    * A request for an open camera without (valid) credentials gets an
      anonymous token; a protected camera gets no token, hence ``401`` with
      the challenges (a default token would turn that into ``404``).
    * GstRtspServer accepts Basic and Digest credentials whatever the
      supported methods are; the methods only choose the WWW-Authenticate
      challenges, and PyGObject cannot pass BASIC|DIGEST (the type is
      introspected as an enum).  With both methods the Digest challenge is
      generated here and the server adds the Basic one to 401 responses
      (``send-message`` signal).
    """

    def __init__(self, realm: str, digest: bool, open_camera) -> None:
        super().__init__()
        self._open_camera = open_camera  # callable(path) -> bool
        self._anonymous = GstRtspServer.RTSPToken()
        self._anonymous.set_string("media.factory.role", "anonymous")
        self.set_supported_methods(
            GstRtsp.RTSPAuthMethod.DIGEST if digest else GstRtsp.RTSPAuthMethod.BASIC
        )
        self.set_realm(realm)

    def do_authenticate(self, ctx) -> bool:
        GstRtspServer.RTSPAuth.do_authenticate(self, ctx)
        if ctx.token is None:
            path = ctx.uri.abspath if ctx.uri is not None else None
            if self._open_camera(path):
                ctx.set_token(self._anonymous)
        return True


# ----------------------------------------------------------------- server


class SimServer:
    def __init__(self, config: dict) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.running = True
        self.main = ClipSet(config["clips"]["main"])
        self.sub = ClipSet(config["clips"]["sub"]) if config["clips"].get("sub") else None
        if self.sub and (self.sub.fps, self.sub.gop, self.sub.cycle) != (
            self.main.fps,
            self.main.gop,
            self.main.cycle,
        ):
            raise ValueError("sub stream clips must have the same fps, GOP and cycle")
        self.fps = self.main.fps
        self.gop = self.main.gop
        self.cycle = self.main.cycle
        self.cameras: list[Camera] = []
        count = int(config["count"])
        for i in range(count):
            cam = Camera(i, self.fps, self.gop, self.cycle)
            cam.streams.append(Stream("main", f"/cam{i}", self.main))
            if self.sub:
                cam.streams.append(Stream("sub", f"/cam{i}/sub", self.sub))
            self.cameras.append(cam)
        self.basic_challenge: str | None = None
        self.max_late_ms = 0.0  # worst lateness of the scheduler at a slot
        self.resyncs = 0  # times the scheduler skipped frames to catch up
        self.loop = GLib.MainLoop()
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address(config.get("bind", "127.0.0.1"))
        self.server.set_service(str(config.get("rtsp_port", 0)))
        # one thread per client: a DESCRIBE waits for the next keyframe to
        # preroll its media, which must not hold up the other clients
        self.server.get_thread_pool().set_max_threads(int(config.get("max_threads", 256)))
        self._setup_auth_and_mounts()
        self.server.connect("client-connected", self._on_client_connected)

    # --------------------------------------------------------- mounts/auth

    def _setup_auth_and_mounts(self) -> None:
        creds = self.config.get("credentials") or {}
        methods = self.config.get("auth_methods") or ["basic", "digest"]
        auth = None
        roles: dict[int, str] = {}
        if creds:
            protected = {int(k) for k in creds}

            def open_camera(path: str | None) -> bool:
                cam = self._camera_of_path(path)
                return cam is not None and cam.index not in protected

            realm = self.config.get("realm", "VIIS simcam")
            auth = _SimAuth(realm, "digest" in methods, open_camera)
            if "basic" in methods and "digest" in methods:
                self.basic_challenge = f'Basic realm="{realm}"'
            by_pair: dict[tuple[str, str], str] = {}
            digest_users: dict[str, str] = {}
            for key, cred in creds.items():
                pair = (cred["user"], cred["password"])
                role = by_pair.get(pair)
                if role is None:
                    role = f"role{len(by_pair)}"
                    by_pair[pair] = role
                    token = GstRtspServer.RTSPToken()
                    token.set_string("media.factory.role", role)
                    if "basic" in methods:
                        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(*pair), token)
                    if "digest" in methods:
                        if pair[0] in digest_users and digest_users[pair[0]] != pair[1]:
                            raise ValueError(f"digest user {pair[0]!r} has two passwords")
                        digest_users[pair[0]] = pair[1]
                        auth.add_digest(pair[0], pair[1], token)
                roles[int(key)] = role
            self.server.set_auth(auth)
        mounts = self.server.get_mount_points()
        for cam in self.cameras:
            for stream in cam.streams:
                factory = GstRtspServer.RTSPMediaFactory()
                factory.set_launch(
                    "( appsrc name=src is-live=true format=time do-timestamp=false "
                    "min-latency=0 block=false max-bytes=33554432 leaky-type=downstream "
                    "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
                )
                factory.set_shared(False)
                factory.set_eos_shutdown(False)
                factory.connect("media-configure", self._on_media_configure, cam, stream)
                if auth is not None:
                    role = roles.get(cam.index, "anonymous")
                    factory.add_role_from_structure(
                        Gst.Structure.new_from_string(
                            f"{role}, media.factory.access=(boolean)true, "
                            "media.factory.construct=(boolean)true"
                        )
                    )
                mounts.add_factory(stream.path, factory)

    def _on_media_configure(self, factory, media, cam: Camera, stream: Stream) -> None:
        element = media.get_element()
        appsrc = element.get_by_name("src")
        appsrc.set_property("caps", stream.clips.caps())
        feed = Feed(appsrc, media)
        pipeline = element.get_parent()
        if pipeline is not None:
            # the RTSP server's sinks sync to the clock; their default 20 ms
            # processing deadline would delay every packet by 20 ms
            pipeline.connect("deep-element-added", self._on_element_added)
        with self.lock:
            stream.feeds.append(feed)
        media.connect("unprepared", self._on_media_unprepared, cam, stream, feed)
        media.connect("new-state", self._on_media_new_state, feed)

    @staticmethod
    def _on_media_new_state(media, state, feed: Feed) -> None:
        feed.playing = state == Gst.State.PLAYING

    @staticmethod
    def _on_element_added(pipeline, sub_bin, element) -> None:
        if element.find_property("processing-deadline") is not None:
            element.set_property("processing-deadline", 0)

    def _on_media_unprepared(self, media, cam: Camera, stream: Stream, feed: Feed) -> None:
        with self.lock:
            if feed in stream.feeds:
                stream.feeds.remove(feed)

    # -------------------------------------------------------------- clients

    def _camera_of_path(self, path: str | None) -> Camera | None:
        if not path:
            return None
        first = path.strip("/").split("/", 1)[0]
        if first.startswith("cam") and first[3:].isdigit():
            idx = int(first[3:])
            if 0 <= idx < len(self.cameras):
                return self.cameras[idx]
        return None

    def _on_client_connected(self, server, client) -> None:
        # OPTIONS is never refused: GstRtspServer (1.22 at least) answers a
        # non-OK pre-options-request with gst_rtsp_message_free(ctx->response)
        # on a response that lives on handle_request's stack, i.e. free() of
        # a stack address -> "munmap_chunk(): invalid pointer" abort.  The
        # DESCRIBE/SETUP/PLAY error paths do not free it, so a refusal starts
        # at the first request that touches the media.
        client.connect("pre-options-request", self._on_pre_request, False)
        for sig in ("pre-describe-request", "pre-setup-request", "pre-play-request"):
            client.connect(sig, self._on_pre_request, True)
        client.connect("closed", self._on_client_closed)
        if self.basic_challenge:
            client.connect("send-message", self._on_send_message)

    def _on_send_message(self, client, ctx, message) -> None:
        """Add the Basic challenge next to the Digest one in 401 responses."""
        try:
            if message.get_type() != GstRtsp.RTSPMsgType.RESPONSE:
                return
            if message.parse_response()[1] != GstRtsp.RTSPStatusCode.UNAUTHORIZED:
                return
            field = GstRtsp.RTSPHeaderField.WWW_AUTHENTICATE
            values = []
            for i in range(8):
                res, value = message.get_header(field, i)
                if res != GstRtsp.RTSPResult.OK:
                    break
                values.append(value.lower())
            if any(v.startswith("digest") for v in values) and not any(
                v.startswith("basic") for v in values
            ):
                message.add_header(field, self.basic_challenge)
        except Exception as exc:  # noqa: BLE001
            log(f"send-message: {exc}")

    def _on_pre_request(self, client, ctx, refusable: bool):
        try:
            path = ctx.uri.abspath if ctx.uri is not None else None
        except Exception:  # noqa: BLE001
            path = None
        cam = self._camera_of_path(path)
        if cam is None:
            return GstRtsp.RTSPStatusCode.OK
        with self.lock:
            if refusable and cam.refuse_until > time.time():
                return GstRtsp.RTSPStatusCode(cam.refuse_status)
            cam.clients.add(client)
        return GstRtsp.RTSPStatusCode.OK

    def _on_client_closed(self, client) -> None:
        with self.lock:
            for cam in self.cameras:
                cam.clients.discard(client)

    def _close_clients(self, cam: Camera) -> bool:
        with self.lock:
            clients = list(cam.clients)
            cam.clients.clear()
        for client in clients:
            try:
                client.close()
            except Exception as exc:  # noqa: BLE001
                log(f"closing client of {cam.name}: {exc}")
        return False

    # ------------------------------------------------------------- faults

    def inject(self, index: int, params: dict) -> dict:
        if not 0 <= index < len(self.cameras):
            raise KeyError(f"no camera {index}")
        cam = self.cameras[index]
        fault = params.get("fault")
        if fault not in ALL_FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {', '.join(ALL_FAULTS)}")
        if fault in PICTURE_FAULTS and fault not in self.main.clips:
            raise ValueError(f"fault {fault!r}: its clip was not generated")
        now = time.time()
        duration = params.get("duration_s")
        duration = float(duration) if duration is not None else None
        with self.lock:
            if fault == "drop":
                refuse = float(params.get("refuse_s") or 0.0)
                if refuse > 0:
                    status = int(params.get("refuse_status") or 503)
                    try:
                        GstRtsp.RTSPStatusCode(status)
                    except (ValueError, TypeError):
                        raise ValueError(f"refuse_status {status} is not an RTSP status") from None
                    cam.refuse_until = now + refuse
                    cam.refuse_status = status
                cam.drops += 1
                GLib.idle_add(self._close_clients, cam)
            elif fault == "stall":
                cam.stall_until = now + (duration if duration is not None else 5.0)
            elif fault == "freeze":
                cam.freeze = True
                self._expire_at(cam, "freeze", now, duration)
            elif fault in PICTURE_FAULTS:
                cam.variant = fault
                self._expire_at(cam, "variant", now, duration)
            elif fault == "clock_offset":
                offset_s = float(params.get("offset_s", 0.0))
                cam.offset_s = offset_s
                gops = round(offset_s * self.fps / self.gop)
                cam.offset_frames = gops * self.gop
                self._expire_at(cam, "offset", now, duration)
        if params.get("wait", True) and fault not in ("drop", "stall"):
            self._wait_in_effect(cam)
        elif fault == "drop":
            time.sleep(0.05)
        with self.lock:
            return cam.state()

    @staticmethod
    def _expire_at(cam: Camera, key: str, now: float, duration: float | None) -> None:
        if duration is not None and duration > 0:
            cam.expires[key] = now + duration
        else:
            cam.expires.pop(key, None)

    def clear(self, index: int, params: dict) -> dict:
        if not 0 <= index < len(self.cameras):
            raise KeyError(f"no camera {index}")
        cam = self.cameras[index]
        fault = params.get("fault")
        with self.lock:
            if fault in (None, "all"):
                self._reset(cam, ("variant", "freeze", "offset", "stall", "refuse"))
            elif fault in PICTURE_FAULTS:
                if cam.variant == fault:
                    self._reset(cam, ("variant",))
            elif fault == "freeze":
                self._reset(cam, ("freeze",))
            elif fault == "clock_offset":
                self._reset(cam, ("offset",))
            elif fault == "stall":
                self._reset(cam, ("stall",))
            elif fault == "drop":
                self._reset(cam, ("refuse",))
            else:
                raise ValueError(f"unknown fault {fault!r}")
        if params.get("wait", True):
            self._wait_in_effect(cam)
        with self.lock:
            return cam.state()

    @staticmethod
    def _reset(cam: Camera, keys) -> None:
        for key in keys:
            cam.expires.pop(key, None)
            if key == "variant":
                cam.variant = "normal"
            elif key == "freeze":
                cam.freeze = False
            elif key == "offset":
                cam.offset_frames = 0
                cam.offset_s = 0.0
            elif key == "stall":
                cam.stall_until = 0.0
            elif key == "refuse":
                cam.refuse_until = 0.0

    def _wait_in_effect(self, cam: Camera) -> None:
        deadline = time.time() + 2.0 * self.gop / self.fps + 1.0
        while time.time() < deadline:
            with self.lock:
                if cam.in_effect():
                    return
            time.sleep(0.005)

    def status(self) -> dict:
        with self.lock:
            return {
                "pid": os.getpid(),
                "fps": self.fps,
                "gop_frames": self.gop,
                "cycle_frames": self.cycle,
                "cycle_ms": self.cycle * 1000 // self.fps,
                "main": {"width": self.main.width, "height": self.main.height},
                "sub": {"width": self.sub.width, "height": self.sub.height} if self.sub else None,
                "scheduler": {"max_late_ms": round(self.max_late_ms, 2), "resyncs": self.resyncs},
                "cameras": [cam.state() for cam in self.cameras],
            }

    # ---------------------------------------------------------- scheduler

    def _slot_time_ns(self, n: int) -> int:
        return n * 1_000_000_000 // self.fps

    def scheduler(self) -> None:
        fps = self.fps
        n = time.time_ns() * fps // 1_000_000_000 + 1
        while self.running:
            due = self._slot_time_ns(n)
            now = time.time_ns()
            if due > now:
                time.sleep((due - now) / 1e9)
                continue
            late_ms = (now - due) / 1e6
            if late_ms > self.max_late_ms:
                self.max_late_ms = late_ms
            if now - due > 4 * 1_000_000_000 // fps:
                # fell behind (suspended, overloaded, clock step): resynchronise
                self.resyncs += 1
                n = now * fps // 1_000_000_000
                continue
            try:
                self._tick(n)
            except Exception:  # noqa: BLE001
                log("scheduler error:\n" + traceback.format_exc())
            n += 1

    def _tick(self, n: int) -> None:
        now = time.time()
        frame_ns = 1_000_000_000 // self.fps
        with self.lock:
            work = []
            for cam in self.cameras:
                self._expire(cam, now)
                if not cam.in_effect():
                    new_pos = (n + cam.offset_frames) % self.cycle
                    if new_pos % self.gop == 0:
                        if cam.freeze and not cam.active_freeze:
                            cam.frozen_gop = new_pos // self.gop
                            cam.freeze_slot = n
                        cam.active_variant = cam.variant
                        cam.active_freeze = cam.freeze
                        cam.active_offset = cam.offset_frames
                        cam.last_switch = now
                if cam.stall_until > now:
                    # the connection stays, no data: resume at a keyframe
                    cam.stalled = True
                    for stream in cam.streams:
                        for feed in stream.feeds:
                            feed.need_key = True
                    continue
                cam.stalled = False
                if cam.active_freeze:
                    variant = "hold"
                    pos = cam.frozen_gop * self.gop + (n - cam.freeze_slot) % self.gop
                else:
                    variant = cam.active_variant
                    pos = (n + cam.active_offset) % self.cycle
                for stream in cam.streams:
                    if stream.feeds:
                        clip = stream.clips.clips.get(variant) or stream.clips.clips["normal"]
                        work.append((cam, stream, list(stream.feeds), clip, pos))
        for cam, stream, feeds, clip, pos in work:
            key = clip.keys[pos]
            base = clip.buffers[pos]
            size = clip.sizes[pos]
            for feed in feeds:
                if not feed.playing and feed.preroll_slot is not None:
                    # prepared (DESCRIBEd) but not playing: the pipeline holds
                    # the data; feed on for a while so that a quick PLAY gets a
                    # continuous stream, but do not pile up stale frames
                    if n - feed.preroll_slot >= 2 * self.gop:
                        feed.need_key = True
                        continue
                if feed.need_key:
                    if not key:
                        continue
                    feed.need_key = False
                if feed.slot0 is None:
                    feed.slot0 = n
                    feed.preroll_slot = n
                    feed.pts0 = self._running_time(feed.appsrc)
                buf = base.copy_region(
                    Gst.BufferCopyFlags.MEMORY | Gst.BufferCopyFlags.FLAGS, 0, size
                )
                pts = feed.pts0 + self._slot_time_ns(n - feed.slot0)
                buf.pts = pts
                buf.dts = pts
                buf.duration = frame_ns
                ret = feed.appsrc.emit("push-buffer", buf)
                if ret == Gst.FlowReturn.OK:
                    feed.pushed += 1
                    if stream.name == "main":
                        cam.frames_sent += 1

    @staticmethod
    def _running_time(element: Gst.Element) -> int:
        clock = element.get_clock()
        if clock is None:
            return 0
        rt = clock.get_time() - element.get_base_time()
        return max(0, rt)

    def _expire(self, cam: Camera, now: float) -> None:
        for key, at in list(cam.expires.items()):
            if now >= at:
                self._reset(cam, (key,))

    # --------------------------------------------------------------- run

    def run(self) -> int:
        self.server.attach(None)
        rtsp_port = self.server.get_bound_port()
        control = ThreadingHTTPServer(
            (self.config.get("control_bind", "127.0.0.1"), int(self.config.get("control_port", 0))),
            _make_handler(self),
        )
        control.daemon_threads = True
        control_port = control.server_address[1]
        threading.Thread(target=control.serve_forever, name="control", daemon=True).start()
        sched = threading.Thread(target=self.scheduler, name="scheduler", daemon=True)
        sched.start()
        parent = self.config.get("parent_pid")
        if parent:
            threading.Thread(target=self._watch_parent, args=(int(parent),), daemon=True).start()
        for signum in (signal.SIGINT, signal.SIGTERM):
            GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, self._quit)
        ready = {"rtsp_port": rtsp_port, "control_port": control_port, "pid": os.getpid()}
        sys.stdout.write("SIMCAM-READY " + json.dumps(ready) + "\n")
        sys.stdout.flush()
        log(
            f"{len(self.cameras)} cameras on rtsp://{self.config.get('bind', '127.0.0.1')}:{rtsp_port}/cam<i>, "
            f"control http://127.0.0.1:{control_port}/status"
        )
        try:
            self.loop.run()
        finally:
            self.running = False
            control.shutdown()
        return 0

    def _quit(self, *args) -> bool:
        self.running = False
        self.loop.quit()
        return False

    def _watch_parent(self, pid: int) -> None:
        while self.running:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                log(f"parent {pid} gone, exiting")
                GLib.idle_add(self._quit)
                return
            except PermissionError:
                pass
            if os.getppid() == 1 and pid != 1:
                log("orphaned, exiting")
                GLib.idle_add(self._quit)
                return
            time.sleep(0.5)


def _make_handler(sim: SimServer):
    class Handler(BaseHTTPRequestHandler):
        server_version = "viis-simcam/1"

        def log_message(self, fmt, *args):  # quiet
            pass

        def _send(self, code: int, payload) -> None:
            body = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            if not length:
                return {}
            data = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(data, dict):
                raise ValueError("body must be a JSON object")
            return data

        def do_GET(self):  # noqa: N802
            if self.path.rstrip("/") in ("", "/status"):
                self._send(200, sim.status())
            else:
                self._send(404, {"error": "not found"})

        def _onvif_time(self, index: int) -> None:
            """ONVIF GetSystemDateAndTime of camera ``index``: UTC plus the clock offset its
            pictures show (whole seconds, as ONVIF gives them)."""
            length = int(self.headers.get("Content-Length") or 0)
            request = self.rfile.read(min(length, 65536)) if length else b""
            if b"GetSystemDateAndTime" not in request:
                body = (b'<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/'
                        b'05/soap-envelope"><s:Body><s:Fault><s:Code><s:Value>s:Sender'
                        b'</s:Value></s:Code><s:Reason><s:Text xml:lang="en">only '
                        b'GetSystemDateAndTime</s:Text></s:Reason></s:Fault></s:Body>'
                        b'</s:Envelope>')
                code = 400
            else:
                with sim.lock:
                    cam = sim.cameras[index]
                    offset = cam.offset_frames / sim.fps
                t = time.gmtime(time.time() + offset)
                body = (
                    '<?xml version="1.0" encoding="UTF-8"?><s:Envelope '
                    'xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
                    'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" '
                    'xmlns:tt="http://www.onvif.org/ver10/schema"><s:Body>'
                    "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
                    "<tt:DateTimeType>Manual</tt:DateTimeType>"
                    "<tt:DaylightSavings>false</tt:DaylightSavings>"
                    "<tt:TimeZone><tt:TZ>CST-8</tt:TZ></tt:TimeZone><tt:UTCDateTime>"
                    f"<tt:Time><tt:Hour>{t.tm_hour}</tt:Hour><tt:Minute>{t.tm_min}</tt:Minute>"
                    f"<tt:Second>{t.tm_sec}</tt:Second></tt:Time><tt:Date><tt:Year>{t.tm_year}"
                    f"</tt:Year><tt:Month>{t.tm_mon}</tt:Month><tt:Day>{t.tm_mday}</tt:Day>"
                    "</tt:Date></tt:UTCDateTime></tds:SystemDateAndTime>"
                    "</tds:GetSystemDateAndTimeResponse></s:Body></s:Envelope>").encode()
                code = 200
            self.send_response(code)
            self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # noqa: N802
            parts = self.path.strip("/").split("/")
            if (len(parts) == 3 and parts[0] == "onvif" and parts[1].startswith("cam")
                    and parts[1][3:].isdigit() and parts[2] == "device_service"):
                index = int(parts[1][3:])
                if index >= len(sim.cameras):
                    self._send(404, {"error": f"no camera {index}"})
                else:
                    self._onvif_time(index)
                return
            try:
                body = self._body()
                if len(parts) == 3 and parts[0] == "cameras" and parts[2] in ("fault", "clear"):
                    index = int(parts[1])
                    if parts[2] == "fault":
                        self._send(200, sim.inject(index, body))
                    else:
                        self._send(200, sim.clear(index, body))
                else:
                    self._send(404, {"error": "not found"})
            except KeyError as exc:
                self._send(404, {"error": str(exc)})
            except (ValueError, TypeError) as exc:
                self._send(400, {"error": str(exc)})

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="JSON config file (see fleet.py)")
    args = parser.parse_args(argv)
    with open(args.config) as fh:
        config = json.load(fh)
    Gst.init(None)
    sim = SimServer(config)
    return sim.run()


if __name__ == "__main__":
    sys.exit(main())
