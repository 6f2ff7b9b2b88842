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
