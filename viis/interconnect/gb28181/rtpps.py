"""PS over RTP for GB/T 28181: packetizing, RFC 4571 framing, senders and receivers.

A frame (access unit) becomes PS bytes (:class:`.ps.PsMuxer`) and then RTP packets with
payload type 96, one timestamp per frame (the 90 kHz PTS), the marker bit on the frame's
last packet and at most ``mtu`` (1,400) bytes per packet. Over TCP each packet carries the
RFC 4571 two-byte length prefix. Three transports, as negotiated in the SDP of an INVITE:

- ``udp``: datagrams to ``remote``;
- ``tcp-passive``: we listen on ``local_port`` and the peer connects (``a=setup:passive``
  on our side);
- ``tcp-active``: we connect to ``remote`` (``a=setup:active``).

``PsReceiver`` checks the SSRC against the ``y=`` line's value (mismatches are counted and,
with ``ssrc_check``, dropped: the usual "stream never arrived" cause), counts sequence gaps
as lost packets and drops the damaged frame instead of handing on a corrupted one, then
waits for the next keyframe. It relies on GB's rule of one RTP timestamp per frame; packets
arriving out of order are counted as ``late`` and dropped (no reorder buffer).

Requirement ids: Q12.1, N12.1 (GB/T 28181 media transport), Q13.1 (video to the city
platforms by cascade). Senders never block: a slow TCP peer makes frames drop (counted)
until the next keyframe instead of buffering without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import Callable

from viis.core.logging import get_logger

from .clock import Clock, LoopClock
from .ps import PsDemuxer, PsFrame, PsMuxer

log = get_logger(__name__)

Addr = tuple[str, int]
MODES = ("udp", "tcp-passive", "tcp-active")
PT_PS = 96
MTU = 1400
RTP_HEADER = 12
UDP_RCVBUF = 2 << 20  # asked for; the kernel caps it at net.core.rmem_max
MAX_DROPOUT = 3000  # a larger sequence jump is a sender restart, not loss (RFC 3550 A.1)

_HDR = struct.Struct("!BBHII")
_HDR_TCP = struct.Struct("!HBBHII")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"transport mode must be one of {', '.join(MODES)}, not {mode!r}")


class RtpPacketizer:
    """Cuts a frame's PS bytes into RTP packets (or RFC 4571-framed packets for TCP)."""

    __slots__ = ("ssrc", "pt", "seq", "max_payload")

    def __init__(self, ssrc: int, pt: int = PT_PS, mtu: int = MTU, seq: int | None = None) -> None:
        if not 0 <= ssrc <= 0xFFFFFFFF:
            raise ValueError("SSRC must fit 32 bits")
        if mtu <= RTP_HEADER + 16:
            raise ValueError("MTU too small")
        self.ssrc = ssrc
        self.pt = pt & 0x7F
        self.seq = random.randrange(0x10000) if seq is None else seq & 0xFFFF
        self.max_payload = mtu - RTP_HEADER

    def packets(self, payload: bytes, ts: int) -> list[bytes]:
        """RTP packets for one frame: timestamp ``ts`` (90 kHz), marker on the last."""
        return self._cut(payload, ts, _HDR, ())

    def framed(self, payload: bytes, ts: int) -> bytes:
        """The same packets, each with its RFC 4571 length prefix, as one byte string."""
        return b"".join(self._cut(payload, ts, _HDR_TCP, (RTP_HEADER,)))

    def _cut(self, payload: bytes, ts: int, hdr: struct.Struct, extra: tuple) -> list[bytes]:
        mv = memoryview(payload)
        n = len(mv)
        step = self.max_payload
        pt, ssrc, seq = self.pt, self.ssrc, self.seq
        ts &= 0xFFFFFFFF
        pack = hdr.pack
        out = []
        off = 0
        while True:
            nxt = off + step
            last = nxt >= n
            chunk = mv[off:nxt]
            if extra:
                out.append(pack(len(chunk) + RTP_HEADER, 0x80, pt | 0x80 if last else pt,
                                seq, ts, ssrc))
            else:
                out.append(pack(0x80, pt | 0x80 if last else pt, seq, ts, ssrc))
            out.append(chunk)
            seq = (seq + 1) & 0xFFFF
            if last:
                break
            off = nxt
        self.seq = seq
        if extra:
            return out
        return [out[i] + out[i + 1] for i in range(0, len(out), 2)]


# --------------------------------------------------------------------------- sender


class _SendProto(asyncio.Protocol):
    def __init__(self, owner: PsSender) -> None:
        self.owner = owner

    transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.owner._connected(transport)

    def connection_lost(self, exc) -> None:
        self.owner._disconnected(self.transport)

    def data_received(self, data: bytes) -> None:
        pass  # GB peers send nothing back on the media connection; ignore what comes


class _SendDgram(asyncio.DatagramProtocol):
    def __init__(self, owner: PsSender) -> None:
        self.owner = owner

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable etc.
        self.owner.stats["send_errors"] += 1
        self.owner.last_error = str(exc)


class _SocketOwner:
    """The datagram socket or connection (``_transport``) and the TCP listener (``_server``)
    of a sender or receiver, and closing them."""

    _transport: asyncio.BaseTransport | None
    _server: asyncio.base_events.Server | None

    async def _close_sockets(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


class PsSender(_SocketOwner):
    """Sends frames as PS over RTP to one peer. Build with ``await PsSender.open(...)``.

    ``send_frame`` never blocks: it returns False (and counts) when there is no peer yet,
    when a TCP peer falls ``max_buffer`` bytes behind, or while waiting for a keyframe
    (the first frame a peer gets is always a keyframe, so it decodes)."""

    def __init__(self, mode: str, ssrc: int, *, codec: str, pt: int, mtu: int,
                 max_buffer: int, on_close: Callable[[], None] | None) -> None:
        _check_mode(mode)
        self.mode = mode
        self.ssrc = ssrc = int(ssrc)  # the SDP's y= is a 10-digit decimal string
        self.muxer = PsMuxer(codec)
        self.packetizer = RtpPacketizer(ssrc, pt, mtu)
        self.max_buffer = max_buffer
        self.on_close = on_close
        self.local_port = 0
        self.remote: Addr | None = None
        self.last_error = ""
        self.stats = {"frames": 0, "packets": 0, "bytes": 0, "dropped_no_peer": 0,
                      "dropped_backpressure": 0, "skipped_before_key": 0, "send_errors": 0,
                      "connections": 0}
        self._transport: asyncio.BaseTransport | None = None
        self._server: asyncio.base_events.Server | None = None
        self._need_key = True
        self._closed = False
        self._connected_evt = asyncio.Event()

    @classmethod
    async def open(cls, mode: str, remote: Addr | None, ssrc: int, local_host: str = "0.0.0.0",
                   *, local_port: int = 0, codec: str = "h264", pt: int = PT_PS, mtu: int = MTU,
                   connect_timeout: float = 5.0, max_buffer: int = 4 << 20,
                   on_close: Callable[[], None] | None = None) -> PsSender:
        """Open the transport: UDP socket, TCP listener (passive) or TCP connection (active;
        raises ``ConnectionError``/``TimeoutError`` when the peer cannot be reached)."""
        self = cls(mode, ssrc, codec=codec, pt=pt, mtu=mtu, max_buffer=max_buffer,
                   on_close=on_close)
        loop = asyncio.get_running_loop()
        if mode == "udp":
            if remote is None:
                raise ValueError("UDP sending needs the remote address from the SDP")
            tr, _ = await loop.create_datagram_endpoint(
                lambda: _SendDgram(self), local_addr=(local_host, local_port),
                remote_addr=tuple(remote))
            self._transport = tr
            self.remote = (remote[0], remote[1])
            self.local_port = tr.get_extra_info("sockname")[1]
            self._connected_evt.set()
        elif mode == "tcp-passive":
            self._server = await loop.create_server(lambda: self._new_proto(), local_host,
                                                    local_port)
            self.local_port = self._server.sockets[0].getsockname()[1]
        else:
            if remote is None:
                raise ValueError("active TCP needs the remote address from the SDP")
            await asyncio.wait_for(
                loop.create_connection(lambda: self._new_proto(), remote[0], remote[1],
                                       local_addr=(local_host, local_port) if local_port else None),
                connect_timeout)
            self.remote = (remote[0], remote[1])
        return self

    def _new_proto(self) -> _SendProto:
        return _SendProto(self)

    def _connected(self, transport: asyncio.Transport) -> None:
        if self._closed:
            transport.close()
            return
        old = self._transport
        self._transport = transport
        self.stats["connections"] += 1
        peer = transport.get_extra_info("peername")
        self.remote = (peer[0], peer[1]) if peer else self.remote
        sock = transport.get_extra_info("sockname")
        if sock and self.mode == "tcp-active":
            self.local_port = sock[1]
        self._need_key = True  # a new peer starts at a keyframe
        self._connected_evt.set()
        if old is not None and old is not transport:
            old.close()  # a reconnecting peer replaces the stale connection

    def _disconnected(self, transport) -> None:
        if transport is not None and self._transport is transport:
            self._transport = None
            self._connected_evt.clear()
            if not self._closed and self.on_close is not None:
                self.on_close()

    @property
    def connected(self) -> bool:
        t = self._transport
        return t is not None and not t.is_closing()

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._connected_evt.wait(), timeout)
        except TimeoutError:
            return False
        return self.connected

    def send_frame(self, nals: list[bytes], pts90k: int, key: bool, params=(), *,
                   dts90k: int | None = None) -> bool:
        """Mux and send one frame; True when it was handed to the socket."""
        t = self._transport
        st = self.stats
        if t is None or t.is_closing():
            st["dropped_no_peer"] += 1
            self._need_key = True
            return False
        if self._need_key and not key:
            st["skipped_before_key"] += 1
            return False
        if self.mode != "udp" and t.get_write_buffer_size() > self.max_buffer:
            st["dropped_backpressure"] += 1
            self._need_key = True
            return False
        ps = self.muxer.mux(nals, pts90k, key, params, dts90k=dts90k)
        self._need_key = False
        return self._send(ps, pts90k)

    def send_ps(self, ps: bytes, pts90k: int) -> bool:
        """Send PS bytes already muxed for one frame (e.g. from a PS recording)."""
        t = self._transport
        if t is None or t.is_closing():
            self.stats["dropped_no_peer"] += 1
            return False
        return self._send(ps, pts90k)

    def _send(self, ps: bytes, pts90k: int) -> bool:
        st = self.stats
        pk = self.packetizer
        seq0 = pk.seq
        t = self._transport
        if self.mode == "udp":
            for p in pk.packets(ps, pts90k):
                t.sendto(p)
        else:
            t.write(pk.framed(ps, pts90k))
        st["frames"] += 1
        st["packets"] += (pk.seq - seq0) & 0xFFFF
        st["bytes"] += len(ps)
        return True

    async def close(self) -> None:
        self._closed = True
        await self._close_sockets()


# --------------------------------------------------------------------------- receiver


class _RecvDgram(asyncio.DatagramProtocol):
    def __init__(self, owner: PsReceiver) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr) -> None:
        self.owner.last_source = (addr[0], addr[1])
        self.owner._packet(data)


class _RecvStream(asyncio.Protocol):
    """RFC 4571: each RTP packet preceded by its 16-bit length."""

    MAX_INVALID_RUN = 50

    def __init__(self, owner: PsReceiver) -> None:
        self.owner = owner
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.invalid_run = 0
        self.good_at: float | None = None  # last time it carried a packet we accepted

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.owner._stream_connected(self)

    def connection_lost(self, exc) -> None:
        self.owner._stream_lost(self)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        n = len(buf)
        pos = 0
        owner = self.owner
        accepted_before = owner.stats["packets"]
        while n - pos >= 2:
            length = (buf[pos] << 8) | buf[pos + 1]
            if n - pos - 2 < length:
                break
            if length:
                ok = owner._packet(bytes(buf[pos + 2:pos + 2 + length]))
                self.invalid_run = 0 if ok else self.invalid_run + 1
                if self.invalid_run > self.MAX_INVALID_RUN:
                    # Not RFC 4571 RTP (or hopelessly out of step): give up on this peer.
                    owner.stats["tcp_desync"] += 1
                    owner.last_error = "TCP stream is not RFC 4571-framed RTP"
                    buf.clear()
                    if self.transport is not None:
                        self.transport.close()
                    return
            pos += 2 + length
        if pos:
            del buf[:pos]
        if owner.stats["packets"] != accepted_before:
            self.good_at = owner.clock.now()


class PsReceiver(_SocketOwner):
    """Receives PS over RTP and hands complete frames to ``on_frame``.

    Stats: ``received``/``bytes`` (everything that arrived), ``first_packet_at``/
    ``last_packet_at`` (clock seconds, any packet), ``packets`` (RTP with the expected
    SSRC), ``ssrc_mismatch`` (RTP with another SSRC; ``last_ssrc`` is the SSRC last seen,
    ``mismatched_ssrc`` the wrong one: what the peer really sends), ``invalid`` (not RTP),
    ``lost`` (sequence gaps), ``late`` (duplicate or out of order, dropped), ``frames``,
    ``frames_dropped`` (damaged by loss or too large), ``skipped_before_key``,
    ``demux_errors``, ``refused_connections`` (TCP-passive: a second connection while the
    current one delivers the agreed SSRC). ``causes.stream_cause`` reads these."""

    # TCP-passive: a new connection replaces the current one only after this much silence
    # of accepted packets on it (a device reconnecting after a half-open drop)
    TAKEOVER_SILENCE_S = 2.0

    def __init__(self, mode: str, on_frame: Callable[[PsFrame], None], expected_ssrc: int | None,
                 *, clock: Clock | None, codec: str | None, ssrc_check: bool,
                 wait_key_after_loss: bool, max_frame_bytes: int,
                 on_close: Callable[[], None] | None) -> None:
        _check_mode(mode)
        self.mode = mode
        self.on_frame = on_frame
        self.expected_ssrc = None if expected_ssrc is None else int(expected_ssrc)
        self.ssrc_check = ssrc_check
        self.wait_key_after_loss = wait_key_after_loss
        self.max_frame_bytes = max_frame_bytes
        self.on_close = on_close
        self.clock = clock or LoopClock()
        self.demuxer = PsDemuxer(codec)
        self.local_port = 0
        self.last_source: Addr | None = None
        self.last_error = ""
        self.ssrc: int | None = None  # the SSRC being received
        self.stats: dict = {"received": 0, "bytes": 0, "packets": 0, "lost": 0, "late": 0,
                            "ssrc_mismatch": 0, "last_ssrc": None, "mismatched_ssrc": None,
                            "invalid": 0, "demux_errors": 0,
                            "seq_jumps": 0, "frames": 0, "frames_dropped": 0,
                            "skipped_before_key": 0, "callback_errors": 0, "tcp_desync": 0,
                            "connections": 0, "first_packet_at": None, "last_packet_at": None}
        self._transport: asyncio.BaseTransport | None = None
        self._server: asyncio.base_events.Server | None = None
        self._stream: _RecvStream | None = None
        self._seq: int | None = None
        self._cur_ts: int | None = None
        self._parts: list[bytes] = []
        self._size = 0
        self._damaged = False
        self._need_key = True
        self._discont = False
        self._closed = False

    @classmethod
    async def open(cls, mode: str, on_frame: Callable[[PsFrame], None],
                   expected_ssrc: int | None = None, local_host: str = "0.0.0.0",
                   remote: Addr | None = None, *, local_port: int = 0,
                   clock: Clock | None = None, codec: str | None = None,
                   ssrc_check: bool = True, wait_key_after_loss: bool = True,
                   max_frame_bytes: int = 8 << 20, connect_timeout: float = 5.0,
                   on_close: Callable[[], None] | None = None) -> PsReceiver:
        """Bind (UDP), listen (TCP passive: the peer connects to ``local_port``) or connect
        to ``remote`` (TCP active)."""
        self = cls(mode, on_frame, expected_ssrc, clock=clock, codec=codec,
                   ssrc_check=ssrc_check, wait_key_after_loss=wait_key_after_loss,
                   max_frame_bytes=max_frame_bytes, on_close=on_close)
        loop = asyncio.get_running_loop()
        if mode == "udp":
            tr, _ = await loop.create_datagram_endpoint(
                lambda: _RecvDgram(self), local_addr=(local_host, local_port))
            sock = tr.get_extra_info("socket")
            with contextlib.suppress(OSError):  # a keyframe arrives as a burst of packets
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
            self._transport = tr
            self.local_port = tr.get_extra_info("sockname")[1]
        elif mode == "tcp-passive":
            self._server = await loop.create_server(lambda: _RecvStream(self), local_host,
                                                    local_port)
            self.local_port = self._server.sockets[0].getsockname()[1]
        else:
            if remote is None:
                raise ValueError("active TCP needs the remote address from the SDP")
            tr, _ = await asyncio.wait_for(
                loop.create_connection(lambda: _RecvStream(self), remote[0], remote[1]),
                connect_timeout)
            self.local_port = tr.get_extra_info("sockname")[1]
        return self

    # ---- TCP connections

    def _stream_connected(self, proto: _RecvStream) -> None:
        if self._closed:
            proto.transport.close()
            return
        old = self._stream
        if (old is not None and old.transport is not None and not old.transport.is_closing()
                and old.good_at is not None
                and self.clock.now() - old.good_at < self.TAKEOVER_SILENCE_S):
            # the current sender is delivering the agreed SSRC: a second connection (a
            # stray or hostile peer) must not cut it off
            self.stats["refused_connections"] = self.stats.get("refused_connections", 0) + 1
            proto.transport.close()
            return
        self._stream = proto
        self.stats["connections"] += 1
        peer = proto.transport.get_extra_info("peername")
        self.last_source = (peer[0], peer[1]) if peer else None
        if old is not None and old.transport is not None:
            old.transport.close()  # one stream per session: a silent one is replaced
        self._abandon_frame()
        self._seq = None

    def _stream_lost(self, proto: _RecvStream) -> None:
        if self._stream is proto:
            self._stream = None
            self._abandon_frame()
            if not self._closed and self.on_close is not None:
                self.on_close()

    # ---- packets to frames

    def _packet(self, p: bytes) -> bool:
        """One RTP packet; False when it is not RTP at all."""
        st = self.stats
        now = self.clock.now()
        st["received"] += 1
        st["bytes"] += len(p)
        if st["first_packet_at"] is None:
            st["first_packet_at"] = now
        st["last_packet_at"] = now
        n = len(p)
        if n < RTP_HEADER or p[0] & 0xC0 != 0x80:
            st["invalid"] += 1
            return False
        b0, b1, seq, ts, ssrc = _HDR.unpack_from(p)
        off = RTP_HEADER + 4 * (b0 & 0x0F)
        if b0 & 0x10:
            if n < off + 4:
                st["invalid"] += 1
                return False
            off += 4 + 4 * ((p[off + 2] << 8) | p[off + 3])
        end = n - p[-1] if b0 & 0x20 else n
        if off > end:
            st["invalid"] += 1
            return False
        st["last_ssrc"] = ssrc
        if self.expected_ssrc is not None and ssrc != self.expected_ssrc:
            st["ssrc_mismatch"] += 1
            st["mismatched_ssrc"] = ssrc
            if self.ssrc_check:
                return True
        st["packets"] += 1
        if self.ssrc is not None and ssrc != self.ssrc:  # the sender restarted
            self._abandon_frame()
            self._seq = None
        self.ssrc = ssrc
        gap = False
        if self._seq is not None:
            d = (seq - self._seq) & 0xFFFF
            if d == 0 or d >= 0x8000:
                st["late"] += 1
                return True
            if d > 1:
                gap = True
                if d - 1 < MAX_DROPOUT:
                    st["lost"] += d - 1
                else:
                    st["seq_jumps"] += 1
        self._seq = seq
        if self._cur_ts is not None and ts != self._cur_ts:
            if gap:
                self._damaged = True  # the lost packets may be this frame's tail
            self._finish_frame()  # previous frame ended without a marker
        if gap:
            self._damaged = True  # ... or the head of this one
        self._cur_ts = ts
        if not self._damaged:
            self._size += end - off
            if self._size > self.max_frame_bytes:
                self._damaged = True
                self._parts.clear()
            else:
                self._parts.append(p[off:end])
        if b1 & 0x80:
            self._finish_frame()
        return True

    def _abandon_frame(self) -> None:
        if self._cur_ts is not None:
            self._damaged = True
            self._finish_frame()

    def _finish_frame(self) -> None:
        st = self.stats
        parts, damaged = self._parts, self._damaged
        self._parts, self._size, self._damaged, self._cur_ts = [], 0, False, None
        if damaged:
            st["frames_dropped"] += 1
            self.demuxer.reset()
            self._discont = True
            if self.wait_key_after_loss:
                self._need_key = True
            return
        d = self.demuxer
        frames = d.feed(b"".join(parts))
        frames += d.flush()
        st["demux_errors"] = d.errors
        for f in frames:
            if self._need_key and not f.key:
                st["skipped_before_key"] += 1
                if st["frames"]:
                    self._discont = True
                continue
            self._need_key = False
            if self._discont:
                f.discont = True
                self._discont = False
            st["frames"] += 1
            try:
                self.on_frame(f)
            except Exception:
                st["callback_errors"] += 1
                log.exception("PS receiver frame callback failed")

    async def close(self) -> None:
        self._closed = True
        self._cur_ts = None
        self._parts = []
        if self._stream is not None and self._stream.transport is not None:
            self._stream.transport.close()
        self._stream = None
        await self._close_sockets()
