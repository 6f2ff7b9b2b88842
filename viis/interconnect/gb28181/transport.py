"""asyncio SIP transports: UDP (one datagram = one message) and TCP (Content-Length framing).

Both hand parsed messages to ``on_message`` with ``source`` and ``transport`` set, and
report what they could not parse to ``on_error(addr, reason, raw_prefix)`` instead of
raising, so one hostile peer cannot disturb the others.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from .sip import MAX_MESSAGE, SipMessage, SipParseError, head_length, parse

log = logging.getLogger(__name__)
Addr = tuple[str, int]
# 20,000 devices re-registering after a restart arrive faster than one core answers; the
# default 208 KB receive buffer (≈ 400 REGISTERs) would drop them and turn a burst into
# retransmission storms. 4 MB holds ≈ 8,000 (bench/gb28181.py measures the effect).
UDP_RCVBUF = 4 << 20
OnMessage = Callable[[SipMessage], None]
OnError = Callable[[Addr, str, bytes], None]


def _noerr(addr: Addr, reason: str, raw: bytes) -> None:
    log.debug("SIP parse error from %s: %s", addr, reason)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr) -> None:
        self.owner._datagram(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable etc.
        log.debug("UDP error: %s", exc)


class UdpTransport:
    name = "UDP"

    def __init__(self, on_message: OnMessage, on_error: OnError = _noerr) -> None:
        self.on_message, self.on_error = on_message, on_error
        self.transport: asyncio.DatagramTransport | None = None
        self.received = self.errors = 0

    async def start(self, host: str, port: int) -> Addr:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(host, port)
        )
        sock = self.transport.get_extra_info("socket")
        try:  # best effort, capped by net.core.rmem_max
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
        except (OSError, AttributeError):
            pass
        return self.local_addr

    @property
    def local_addr(self) -> Addr:
        assert self.transport is not None
        a = self.transport.get_extra_info("sockname")
        return a[0], a[1]

    def _datagram(self, data: bytes, addr: Addr) -> None:
        self.received += 1
        if not data.strip(b"\r\n\x00 "):
            return  # CRLF keepalive ping (RFC 5626) or empty
        try:
            msg = parse(data, datagram=True)
        except SipParseError as e:
            self.errors += 1
            self.on_error(addr, e.reason, data[:64])
            return
        msg.source, msg.transport = addr, "UDP"
        try:
            self.on_message(msg)
        except SipParseError as e:  # a header parsed on use (Via, From, ...) is malformed
            self.errors += 1
            self.on_error(addr, e.reason, data[:64])

    def send(self, msg: SipMessage | bytes, addr: Addr) -> None:
        if self.transport is None:
            raise RuntimeError("UDP transport not started")
        self.transport.sendto(msg if isinstance(msg, bytes) else msg.encode(), addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class StreamFramer:
    """Cuts a TCP byte stream into messages by Content-Length (absent = 0)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        out: list[bytes] = []
        while True:
            # Skip CRLF keepalives between messages.
            while self.buf[:2] == b"\r\n" or self.buf[:1] == b"\n":
                del self.buf[: 2 if self.buf[:2] == b"\r\n" else 1]
            if not self.buf:
                return out
            hl = head_length(bytes(self.buf))  # raises SipParseError on hostile input
            if hl is None:
                return out
            start, cl = hl
            if len(self.buf) < start + cl:
                if len(self.buf) > MAX_MESSAGE:
                    raise SipParseError("message too large")
                return out
            out.append(bytes(self.buf[: start + cl]))
            del self.buf[: start + cl]


class TcpTransport:
    """A listening TCP transport; also dials out when asked to send to an unknown peer."""

    name = "TCP"

    def __init__(self, on_message: OnMessage, on_error: OnError = _noerr, *,
                 max_connections: int = 20_000, idle_timeout: float = 900.0,
                 max_write_buffer: int = 4 << 20) -> None:
        """``max_connections`` accepted at once (more are closed on arrival);
        ``idle_timeout`` seconds without a byte closes an accepted connection (a device
        keeps alive every 60 s, so 900 s is 15 missed keepalives); a peer that does not
        read what we send is dropped once ``max_write_buffer`` bytes wait for it."""
        self.on_message, self.on_error = on_message, on_error
        self.max_connections, self.idle_timeout = max_connections, idle_timeout
        self.max_write_buffer = max_write_buffer
        self.accepted = 0  # connections being served now
        self.server: asyncio.base_events.Server | None = None
        self.conns: dict[Addr, asyncio.StreamWriter] = {}
        self.received = self.errors = 0
        self._tasks: set[asyncio.Task] = set()
        self._serving: set[asyncio.Task] = set()  # accepted connections' readers
        self._dialing: dict[Addr, list[bytes]] = {}  # messages waiting for a connection
        # Called when dialling out fails, so waiting transactions fail at once.
        self.on_connect_error: Callable[[Addr, Exception], None] | None = None

    async def start(self, host: str, port: int) -> Addr:
        self.server = await asyncio.start_server(self._serve, host, port)
        a = self.server.sockets[0].getsockname()
        return a[0], a[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        addr = (peer[0], peer[1])
        if self.accepted >= self.max_connections:
            self.errors += 1
            self.on_error(addr, f"too many TCP connections ({self.max_connections}): closed", b"")
            writer.close()
            return
        self.accepted += 1
        self.conns[addr] = writer
        task = asyncio.current_task()
        if task is not None:
            self._serving.add(task)
        framer = StreamFramer()
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(65536), self.idle_timeout)
                except TimeoutError:
                    self.on_error(addr, f"TCP connection idle for {self.idle_timeout:g} s: "
                                        "closed", b"")
                    break
                if not data:
                    break
                try:
                    frames = framer.feed(data)
                except SipParseError as e:
                    # The stream cannot be resynchronised: drop the connection.
                    self.errors += 1
                    self.on_error(addr, e.reason, bytes(framer.buf[:64]))
                    break
                for raw in frames:
                    self.received += 1
                    try:
                        msg = parse(raw, datagram=False)
                    except SipParseError as e:
                        self.errors += 1
                        self.on_error(addr, e.reason, raw[:64])
                        continue
                    msg.source, msg.transport = addr, "TCP"
                    try:
                        self.on_message(msg)
                    except SipParseError as e:  # malformed header parsed on use
                        self.errors += 1
                        self.on_error(addr, e.reason, raw[:64])
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.accepted -= 1
            if self.conns.get(addr) is writer:
                del self.conns[addr]
            writer.close()
            self._serving.discard(task)  # type: ignore[arg-type]

    def send(self, msg: SipMessage | bytes, addr: Addr) -> None:
        data = msg if isinstance(msg, bytes) else msg.encode()
        w = self.conns.get(addr)
        if w is not None and not w.is_closing():
            if w.transport.get_write_buffer_size() > self.max_write_buffer:
                # the peer reads nothing we send: drop it rather than buffer without end
                self.errors += 1
                self.on_error(addr, "TCP peer does not read: connection dropped", b"")
                w.close()
                if self.conns.get(addr) is w:
                    del self.conns[addr]
                return
            w.write(data)
            return
        queued = self._dialing.get(addr)
        if queued is not None:  # a connection to addr is being made: send on it when up
            queued.append(data)
            return
        self._dialing[addr] = [data]
        t = asyncio.get_running_loop().create_task(self._dial_and_send(addr))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _dial_and_send(self, addr: Addr) -> None:
        try:
            reader, writer = await asyncio.open_connection(addr[0], addr[1])
        except OSError as e:
            # Refused or unreachable: tell the transaction layer now (RFC 3261 §17.1.4)
            # instead of letting Timer B/F run for 32 s.
            self._dialing.pop(addr, None)
            self.on_error(addr, f"TCP connect failed: {e}", b"")
            if self.on_connect_error is not None:
                self.on_connect_error(addr, e)
            return
        self.conns[addr] = writer
        for data in self._dialing.pop(addr, []):
            writer.write(data)
        t = asyncio.get_running_loop().create_task(self._read_dialled(addr, reader, writer))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _read_dialled(self, addr, reader, writer) -> None:
        framer = StreamFramer()
        try:
            while data := await reader.read(65536):
                for raw in framer.feed(data):
                    try:
                        msg = parse(raw, datagram=False)
                    except SipParseError as e:
                        self.on_error(addr, e.reason, raw[:64])
                        continue
                    msg.source, msg.transport = addr, "TCP"
                    try:
                        self.on_message(msg)
                    except SipParseError as e:  # malformed header parsed on use
                        self.errors += 1
                        self.on_error(addr, e.reason, raw[:64])
        except (ConnectionError, SipParseError) as e:
            self.on_error(addr, str(e), b"")
        finally:
            if self.conns.get(addr) is writer:
                del self.conns[addr]
            writer.close()

    async def close(self) -> None:
        for w in list(self.conns.values()):
            w.close()
        if self.server is not None:
            self.server.close()
        # Let accepted connections' readers see EOF and end by themselves: cancelling them
        # makes asyncio log "Unhandled exception in client_connected_cb".
        if self._serving:
            await asyncio.wait(list(self._serving), timeout=1.0)
        if self.server is not None:
            await self.server.wait_closed()
        for t in list(self._tasks):
            t.cancel()
