import asyncio
import socket

import pytest

from viis.interconnect.gb28181.platform import Platform, PlatformConfig
from viis.interconnect.gb28181.sip import SipParseError, parse
from viis.interconnect.gb28181.transport import StreamFramer

from .test_sip import KEEPALIVE_BODY, REGISTER, message


def test_stream_framer_splits_by_content_length_across_chunks():
    body = KEEPALIVE_BODY.encode()
    one = message(body, str(len(body)))
    stream = b"\r\n\r\n" + REGISTER + one + REGISTER
    f = StreamFramer()
    frames = []
    for i in range(0, len(stream), 7):
        frames += f.feed(stream[i : i + 7])
    assert [parse(x, datagram=False).cseq[1] for x in frames] == ["REGISTER", "MESSAGE", "REGISTER"]
    assert parse(frames[1], datagram=False).body == body and not f.buf


def test_stream_framer_rejects_endless_headers_and_huge_length():
    f = StreamFramer()
    with pytest.raises(SipParseError):
        for _ in range(100):
            f.feed(b"X-Junk: " + b"a" * 1000 + b"\r\n")
    with pytest.raises(SipParseError):
        StreamFramer().feed(REGISTER.replace(b"Content-Length: 0", b"Content-Length: 99999999"))


def test_garbage_datagrams_do_not_disturb_a_registration():
    async def run():
        p = Platform(PlatformConfig(host="127.0.0.1", port=0, password="s", tcp=False))
        await p.start()
        port = p.addresses["UDP"][1]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            for junk in (b"\xff" * 1000, b"REGISTER sip:a SIP/2.0\r\n" + b"X: y\r\n" * 10_000, b"\r\n\r\n"):
                s.sendto(junk[:65000], ("127.0.0.1", port))
            s.sendto(REGISTER, ("127.0.0.1", port))
            data = await asyncio.wait_for(loop.sock_recv(s, 65535), 2)
            assert parse(data).status == 401
            assert len(p.parse_errors) == 2
        finally:
            s.close()
            await p.stop()

    asyncio.run(run())


def test_tcp_connections_are_capped_idle_ones_closed_and_non_readers_dropped():
    """A hostile or dead TCP peer cannot hold the SIP port: connections beyond the cap are
    closed on arrival, a silent one is closed after the idle timeout, and a peer that never
    reads our answers is dropped instead of growing our write buffer without end."""
    from viis.interconnect.gb28181.transport import TcpTransport

    async def run():
        got, errors = [], []
        t = TcpTransport(got.append, lambda a, r, p: errors.append(r), max_connections=2,
                         idle_timeout=1.5, max_write_buffer=10_000)
        host, port = await t.start("127.0.0.1", 0)
        conns = [await asyncio.open_connection(host, port) for _ in range(3)]
        for _ in range(50):
            if any("too many" in e for e in errors):
                break
            await asyncio.sleep(0.02)
        assert any("too many TCP connections (2)" in e for e in errors)
        assert await asyncio.wait_for(conns[2][0].read(), 5) == b""  # the third was closed
        # a working connection still delivers messages
        conns[0][1].write(REGISTER)
        await conns[0][1].drain()
        for _ in range(50):
            if got:
                break
            await asyncio.sleep(0.02)
        assert got and got[0].method == "REGISTER"
        # silence: both accepted connections are closed after the idle timeout
        assert await asyncio.wait_for(conns[1][0].read(), 10) == b""
        assert any("idle" in e for e in errors)
        assert t.accepted == 0
        # a peer that never reads: sends pile up past the limit and it is dropped
        r, w = await asyncio.open_connection(host, port)
        w.write(REGISTER)
        await w.drain()
        for _ in range(50):
            if len(got) > 1:
                break
            await asyncio.sleep(0.02)
        addr = got[-1].source
        for _ in range(2000):
            t.send(b"x" * 60_000, addr)
            if addr not in t.conns:
                break
            await asyncio.sleep(0)
        assert addr not in t.conns and any("does not read" in e for e in errors)
        for _, wr in conns + [(r, w)]:
            wr.close()
        t.server.close()

    asyncio.run(run())
