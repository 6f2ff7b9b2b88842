"""Playback from a device's own storage (issue 7 item 3: "RecordInfo and playback from a
device's own storage"; Q13.2: systems integrated from below; Q12.1, N12.1).

:class:`DevicePlayback` INVITEs a channel with ``s=Playback`` (``u=<channel>:0``, ``t=`` the
range in epoch seconds, a playback SSRC ``1…`` in ``y=``), receives the device's PS over RTP
(:class:`.rtpps.PsReceiver`: UDP, or TCP where we listen and the device connects), and
hands the pictures on as an MPEG program stream (re-muxed by :class:`.ps.PsMuxer`: the
device's own PS may carry audio, private streams or vendor oddities; what leaves VIIS is
the plain video PS that ffprobe/ffplay/VLC read as ``video/MP2P``). It ends at the device's ``MediaStatus 121`` (end of file), at its BYE, when
no picture came for ``idle_s``, or when the reader stops (then VIIS sends BYE).

It runs on the platform service's loop; :meth:`next_chunk` is what a reader on another
loop calls through :meth:`~.service.GbPlatformService.call` (the REST route
``GET /api/gb28181/devices/{d}/channels/{c}/playback`` does, after the one door decided
``playback`` for the channel's camera and wrote its register entry).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Any

from viis.core.logging import get_logger

from .ps import PsMuxer
from .rtpps import PsReceiver
from .sdp import GbSdp, build_sdp, make_ssrc, parse_sdp

if TYPE_CHECKING:
    from .service import GbPlatformService

log = get_logger(__name__)
_SEQ = itertools.count(5000)
MAX_QUEUED = 8 << 20  # bytes of PS waiting for a slow reader before pictures are dropped


class DevicePlayback:
    def __init__(self, svc: GbPlatformService, device_id: str, channel_id: str,
                 start_ms: int, end_ms: int, *, transport: str = "udp",
                 idle_s: float = 15.0) -> None:
        if transport not in ("udp", "tcp"):
            raise ValueError("transport must be 'udp' or 'tcp'")
        self.transport = transport
        self.svc, self.device_id, self.channel_id = svc, device_id, channel_id
        self.start_ms, self.end_ms = start_ms, end_ms
        self.idle_s = idle_s
        self.ssrc = make_ssrc(svc.config.server_id[:10], next(_SEQ), playback=True)
        self.receiver: PsReceiver | None = None
        self.dialog: Any = None
        self.muxer: PsMuxer | None = None
        self.ended: str | None = None  # why it ended: end of file, remote, idle, closed
        self.frames = self.dropped = self.bytes_out = 0
        self._chunks: list[bytes] = []
        self._queued = 0
        self._waiting = False  # drop until a keyframe after an overflow
        self._wake: asyncio.Event | None = None

    async def open(self) -> DevicePlayback:
        """INVITE the device; raises :class:`~.service.DeviceError` (unknown, not
        registered, refused, no answer)."""
        svc = self.svc
        p = svc.peer(self.device_id)
        self._wake = asyncio.Event()
        host = svc.local_host(p.address)
        tcp = self.transport == "tcp"  # we listen, the device connects (a=setup:passive)
        self.receiver = await PsReceiver.open(
            "tcp-passive" if tcp else "udp", self._on_frame, int(self.ssrc),
            local_host="127.0.0.1" if host == "127.0.0.1" else "0.0.0.0")
        offer = GbSdp(session="Playback", origin_id=svc.config.server_id, ip=host,
                      port=self.receiver.local_port, transport="TCP" if tcp else "UDP",
                      setup="passive" if tcp else None, payloads={96: "PS"},
                      ssrc=self.ssrc, u=f"{self.channel_id}:0", start=self.start_ms // 1000,
                      end=-(-self.end_ms // 1000))
        try:
            self.dialog, answer = await svc.invite_device(
                self.device_id, self.channel_id, build_sdp(offer), on_end=self._on_end)
        except BaseException:
            await self.receiver.close()
            raise
        try:
            ans = parse_sdp(answer)
            if ans.ssrc_int is not None and ans.ssrc_int != int(self.ssrc):
                self.receiver.expected_ssrc = ans.ssrc_int  # the device's own y=
        except Exception:  # noqa: BLE001 - an answer we cannot read: keep our SSRC
            pass
        log.info("gb28181_device_playback_started", device=self.device_id,
                 channel=self.channel_id, start_ms=self.start_ms, end_ms=self.end_ms)
        return self

    def _on_frame(self, f) -> None:
        if self.ended:
            return
        if self.muxer is None:
            if not f.key:
                return  # start at a keyframe: a reader cannot decode what comes before
            self.muxer = PsMuxer(f.codec or "h264")
        if self._waiting and not f.key:
            self.dropped += 1
            return
        data = self.muxer.mux(f.nals, f.pts90k, f.key)
        if self._queued + len(data) > MAX_QUEUED:
            self.dropped += 1
            self._waiting = True
            return
        self._waiting = False
        self.frames += 1
        self._chunks.append(data)
        self._queued += len(data)
        self._wake.set()

    def _on_end(self, _dialog, why: str) -> None:
        self.ended = self.ended or why
        self._wake.set()

    async def next_chunk(self) -> bytes:
        """The PS received since the last call; waits for some; ``b""`` once it ended (the
        pictures queued before the end are handed out first)."""
        while not self._chunks:
            if self.ended:
                return b""
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.idle_s)
            except TimeoutError:
                self.ended = self.ended or "idle"
                log.warning("gb28181_device_playback_idle", device=self.device_id,
                            channel=self.channel_id, idle_s=self.idle_s,
                            stats=self.receiver.stats if self.receiver else None)
        out = b"".join(self._chunks)
        self._chunks.clear()
        self._queued = 0
        self.bytes_out += len(out)
        return out

    async def close(self) -> None:
        """End it: BYE to the device (unless it ended the dialog) and close the socket."""
        self.ended = self.ended or "closed"
        if self.dialog is not None:
            await self.svc.bye(self.dialog)
        if self.receiver is not None:
            await self.receiver.close()
        if self._wake is not None:
            self._wake.set()
        log.info("gb28181_device_playback_ended", device=self.device_id,
                 channel=self.channel_id, why=self.ended, frames=self.frames,
                 dropped=self.dropped, bytes=self.bytes_out)

    def status(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "channel_id": self.channel_id,
                "start_ms": self.start_ms, "end_ms": self.end_ms, "ssrc": self.ssrc,
                "transport": self.transport,
                "frames": self.frames, "dropped": self.dropped, "bytes": self.bytes_out,
                "ended": self.ended}


__all__ = ["DevicePlayback"]
