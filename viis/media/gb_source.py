"""Recording a GB/T 28181 device channel like an RTSP camera (Q13.2: the police integrate
other units' systems from below; Q12.1, N12.1).

A camera whose ``main_url`` is ``gb28181://<device id>/<channel id>`` (made by the platform
role's catalog sync, :mod:`viis.interconnect.gb28181.devices`) is opened by
:func:`open_session` as a :class:`GbSession` instead of an RTSP session. It offers what the
recorder uses of :class:`viis.media.rtsp.RtspSession` — ``start()``, ``streams`` (index,
``media.kind``/``media.codec``, ``clock_rate``, ``parameter_sets``), ``wait_closed()``,
``close()`` and the ``on_unit(AccessUnit)`` callback — so segments, gaps, the hash chain,
live view and diagnosis work unchanged.

``start()`` asks the platform role to INVITE the channel (``s=Play``, our PS receiver's
port, a live SSRC ``y=``), receives PS over RTP (:class:`.rtpps.PsReceiver`, UDP or TCP
passive), demultiplexes it into access units and returns once the first keyframe told the
codec and parameter sets. No frame for ``stall_timeout`` ends the session as a stall, a BYE
from the device as a lost connection: the recorder turns either into a gap with its cause
and reconnects with backoff, like for an RTSP camera.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from viis.core.logging import get_logger
from viis.media import h26x, rtsp
from viis.media.rtp import AccessUnit

log = get_logger(__name__)

SCHEME = "gb28181://"
_SSRC_SEQ = itertools.count(1)


def is_gb_url(url: str) -> bool:
    return url.strip().lower().startswith(SCHEME)


def open_session(url: str, *, gb=None, username: str | None = None,
                 password: str | None = None, timeout: float = 10.0,
                 stall_timeout: float = 10.0, media=None,
                 on_unit: Callable[[AccessUnit], None] | None = None,
                 wall_clock: Callable[[], int] | None = None, transport: str = "udp"):
    """The source session for ``url``: :class:`GbSession` for ``gb28181://`` (through the
    platform role ``gb``), else an RTSP session (``url`` already carries credentials as
    the recorder builds it)."""
    if is_gb_url(url):
        return GbSession(url, gb, timeout=timeout, stall_timeout=stall_timeout,
                         on_unit=on_unit, wall_clock=wall_clock, transport=transport)
    return rtsp.RtspSession(url, username=username, password=password, timeout=timeout,
                            stall_timeout=stall_timeout, media=media, on_unit=on_unit,
                            wall_clock=wall_clock)


@dataclass
class GbMedia:
    kind: str
    codec: str


@dataclass
class GbStream:
    """What the recorder reads of an RTSP stream."""

    index: int
    media: GbMedia
    clock_rate: int = 90000
    parameter_sets: dict[str, bytes] = field(default_factory=dict)
    last_sr = None  # no RTCP sender reports over GB PS: no camera clock offset from them


class GbSession:
    def __init__(self, url: str, gb, *, timeout: float = 10.0, stall_timeout: float = 10.0,
                 on_unit: Callable[[AccessUnit], None] | None = None,
                 wall_clock: Callable[[], int] | None = None, transport: str = "udp") -> None:
        from viis.interconnect.gb28181.devices import parse_gb_url

        parsed = parse_gb_url(url)
        if parsed is None:
            raise rtsp.RtspConnectError(f"not a GB/T 28181 channel URL: {url!r} (expected "
                                        "gb28181://<device id>/<channel id>)")
        self.device_id, self.channel_id = parsed
        self.gb = gb
        self.timeout, self.stall_timeout = timeout, stall_timeout
        self.on_unit = on_unit or (lambda u: None)
        self.wall_clock = wall_clock or (lambda: time.time_ns() // 1_000_000)
        self.transport = transport
        self.streams: list[GbStream] = []
        self.receiver = None
        self.dialog = None
        self.ssrc: str = ""
        self.frames = 0
        self._first_key: asyncio.Future | None = None
        self._closed: asyncio.Future | None = None
        self._held: list[AccessUnit] | None = None  # until the recorder picked its streams
        self._last_frame = 0.0
        self._watch: asyncio.Task | None = None

    # -- the RtspSession surface the recorder uses -------------------------------------
    async def start(self) -> None:
        from viis.interconnect.gb28181.rtpps import PsReceiver
        from viis.interconnect.gb28181.sdp import GbSdp, build_sdp, make_ssrc, parse_sdp

        if self.gb is None:
            raise rtsp.RtspConnectError("gb28181:// cameras need the GB/T 28181 platform role: "
                                        "enable [gb28181] in the settings")
        loop = asyncio.get_running_loop()
        self._first_key = loop.create_future()
        self._closed = loop.create_future()
        try:
            peer = self.gb.peer(self.device_id)
        except Exception as e:  # DeviceError: unknown or not registered
            raise rtsp.RtspConnectError(str(e)) from e
        host = self.gb.local_host(peer.address)
        self.ssrc = make_ssrc(self.gb.config.server_id[:10], next(_SSRC_SEQ))
        mode = "tcp-passive" if self.transport == "tcp" else "udp"
        self.receiver = await PsReceiver.open(mode, self._on_frame, int(self.ssrc),
                                              local_host="0.0.0.0" if host != "127.0.0.1"
                                              else "127.0.0.1")
        offer = GbSdp(session="Play", origin_id=self.gb.config.server_id, ip=host,
                      port=self.receiver.local_port, transport="TCP" if mode != "udp" else "UDP",
                      setup="passive" if mode != "udp" else None, payloads={96: "PS"},
                      ssrc=self.ssrc)
        try:
            self.dialog, answer = await asyncio.wait_for(
                self.gb.invite_device(self.device_id, self.channel_id, build_sdp(offer),
                                      on_end=self._on_end), self.timeout + 5)
        except Exception as e:  # noqa: BLE001 - refused, timed out: the recorder's gap cause
            await self._close_receiver()
            raise rtsp.RtspConnectError(f"GB/T 28181 INVITE of {self.device_id}/"
                                        f"{self.channel_id} failed: {e}") from e
        try:
            ans = parse_sdp(answer)
            if ans.ssrc_int is not None and ans.ssrc_int != int(self.ssrc):
                # devices may answer with their own y=: receive what they say they send
                self.receiver.expected_ssrc = ans.ssrc_int
        except Exception:  # noqa: BLE001 - an answer we cannot read: keep our SSRC
            pass
        try:
            await asyncio.wait_for(asyncio.shield(self._first_key), self.stall_timeout)
        except TimeoutError:
            await self.close()
            raise rtsp.RtspStall(f"no video from GB/T 28181 channel {self.channel_id} within "
                                 f"{self.stall_timeout:g} s of the INVITE (stream never "
                                 "arrived: check the device's route to our media port)",
                                 "PLAY") from None
        self._watch = loop.create_task(self._watchdog())
        loop.call_soon(self._release_held)  # after the recorder picked its streams

    async def wait_closed(self) -> None:
        exc = await asyncio.shield(self._closed)
        if exc is not None:
            raise exc

    async def close(self) -> None:
        self._finish(None)
        if self._watch is not None:
            self._watch.cancel()
        d, self.dialog = self.dialog, None
        if d is not None and getattr(d, "active", True):
            try:
                await self.gb.bye(d)
            except Exception as e:  # noqa: BLE001 - best effort at the end
                log.warning("gb_source_bye_failed", channel=self.channel_id, error=str(e)[:200])
        await self._close_receiver()

    # -- internals -----------------------------------------------------------------------
    def _finish(self, exc: BaseException | None) -> None:
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(exc)

    async def _close_receiver(self) -> None:
        r, self.receiver = self.receiver, None
        if r is not None:
            await r.close()

    def _on_end(self, _dialog, why: str) -> None:
        self.dialog = None
        self._finish(rtsp.RtspConnectionLost(f"GB/T 28181 device {self.device_id} ended the "
                                             f"stream of channel {self.channel_id} ({why})"))

    async def _watchdog(self) -> None:
        step = max(0.2, self.stall_timeout / 4)
        while True:
            await asyncio.sleep(step)
            if time.monotonic() - self._last_frame > self.stall_timeout:
                self._finish(rtsp.RtspStall(f"no video from GB/T 28181 channel "
                                            f"{self.channel_id} for {self.stall_timeout:g} s",
                                            "PLAY"))
                return

    def _on_frame(self, f) -> None:
        self._last_frame = time.monotonic()
        unit = AccessUnit(0, f.pts90k, list(f.nals), bool(f.key), self.wall_clock(),
                          self._last_frame, bool(f.discont))
        self.frames += 1
        if not self.streams:
            if not f.key:
                return
            ps = h26x.parameter_sets(f.codec, f.nals)
            if not ps["sps"]:
                return  # a keyframe without its parameter sets: wait for one with them
            st = GbStream(0, GbMedia("video", f.codec))
            self._params(st, f.codec, f.nals)
            self.streams.append(st)
            self._held = [unit]
            if self._first_key is not None and not self._first_key.done():
                self._first_key.set_result(None)
            return
        if f.key:
            self._params(self.streams[0], f.codec, f.nals)
        if self._held is not None:
            self._held.append(unit)  # the recorder has not picked its streams yet
            return
        self.on_unit(unit)

    @staticmethod
    def _params(st: GbStream, codec: str, nals) -> None:
        ps = h26x.parameter_sets(codec, nals)
        for name in ("vps", "sps", "pps"):
            if ps.get(name):
                st.parameter_sets[name] = bytes(ps[name][0])

    def _release_held(self) -> None:
        held, self._held = self._held or [], None
        for u in held:
            self.on_unit(u)
