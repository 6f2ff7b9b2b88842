"""GB/T 28181 SDP: y=/f= lines, TCP setup, playback/download, garbage (Q12.1, N12.1)."""

import random
import time

import pytest

from viis.interconnect.gb28181.sdp import GbSdp, SdpError, build_sdp, make_ssrc, parse_sdp

PLATFORM_OFFER = (
    "v=0\r\n"
    "o=34020000002000000001 0 0 IN IP4 192.168.1.10\r\n"
    "s=Play\r\n"
    "c=IN IP4 192.168.1.10\r\n"
    "t=0 0\r\n"
    "m=video 30000 RTP/AVP 96 97 98 99\r\n"
    "a=recvonly\r\n"
    "a=rtpmap:96 PS/90000\r\n"
    "a=rtpmap:98 H264/90000\r\n"
    "a=rtpmap:97 MPEG4/90000\r\n"
    "a=rtpmap:99 H265/90000\r\n"
    "y=0200000001\r\n"
)

# A camera's answer: LF only, y=/f= before the m= attributes end, a stray garbage line.
DEVICE_ANSWER = (
    "v=0\n"
    "o=34020000001320000001 0 0 IN IP4 192.168.1.64\n"
    "s=Play\n"
    "c=IN IP4 192.168.1.64\n"
    "t=0 0\n"
    "m=video 15060 TCP/RTP/AVP 96\n"
    "a=sendonly\n"
    "a=rtpmap:96 PS/90000\n"
    "a=setup:active\n"
    "a=connection:new\n"
    "y=0200000001\n"
    "f=v/2/4/25/1/4096a///\n"
    "\x01\x02garbage without equals\n"
    "a=filesize:0\n"
)


def test_platform_offer():
    s = parse_sdp(PLATFORM_OFFER)
    assert (s.session, s.origin_id, s.ip, s.port) == ("Play", "34020000002000000001", "192.168.1.10", 30000)
    assert s.transport == "UDP" and s.setup is None and s.direction == "recvonly"
    assert s.payloads == {96: "PS", 97: "MPEG4", 98: "H264", 99: "H265"}
    assert list(s.payloads) == [96, 97, 98, 99]  # m= order
    assert s.ssrc == "0200000001" and s.ssrc_int == 200000001
    assert s.warnings == []


def test_device_answer_tcp_active_with_f_and_garbage():
    s = parse_sdp(DEVICE_ANSWER.encode())
    assert s.transport == "TCP" and s.setup == "active" and s.connection == "new"
    assert s.direction == "sendonly" and s.f == "v/2/4/25/1/4096a///"
    assert s.ssrc == "0200000001" and s.port == 15060 and s.ip == "192.168.1.64"
    assert len(s.warnings) == 1 and "ignored" in s.warnings[0]
    assert s.extra == ["filesize:0"]


def test_playback_and_download():
    text = PLATFORM_OFFER.replace("s=Play", "s=Playback\r\nu=34020000001320000001:0").replace(
        "t=0 0", "t=1714536000 1714539600").replace("y=0200000001", "y=1200000002")
    s = parse_sdp(text)
    assert s.session == "Playback" and s.u == "34020000001320000001:0"
    assert (s.start, s.end) == (1714536000, 1714539600) and s.ssrc == "1200000002"
    d = parse_sdp(text.replace("s=Playback", "s=download") + "a=downloadspeed:4\r\n")
    assert d.session == "Download" and d.download_speed == 4


def test_tolerant_forms():
    text = (
        "  v=0\r\n O=dev 0 0 IN IP4 10.0.0.2\r\nS=Play\r\nm=video 6000/2 tcp/rtp/avp 96\r\n"
        "A=SETUP:PASSIVE\r\nt=0\r\ny= 0100000009 \r\n=oops\r\nzz\r\nm=audio 8000 RTP/AVP 8\r\n"
    )
    s = parse_sdp(text)
    assert s.ip == "10.0.0.2"  # no c=: origin address
    assert s.port == 6000 and s.transport == "TCP" and s.setup == "passive"
    assert s.ssrc == "0100000009" and s.payloads == {96: "PS"}
    assert any("more than one m=" in w for w in s.warnings)


def test_bad_values_become_warnings():
    s = parse_sdp("m=video 99999 RTP/AVP 96\r\nt=a b\r\ny=12ab\r\nc=IN\r\na=rtpmap:x PS\r\n"
                  "m=video 1 RTP/AVP 96\r\n")
    assert s.port == 1 and s.ssrc is None and len(s.warnings) >= 4
    assert any("not 10" in w for w in parse_sdp("m=video 1 RTP/AVP 96\r\ny=123\r\n").warnings)
    odd = parse_sdp("m=video 1 RTP/AVP 96\r\ny=010000000\u00b2\r\n")  # isdigit() says yes
    assert odd.ssrc is None and odd.ssrc_int is None and any("y=" in w for w in odd.warnings)


@pytest.mark.parametrize("text", ["", "v=0\r\ns=Play\r\n", "garbage", "m=video\r\n", "x" * 70_000])
def test_no_media_line_is_an_error(text):
    with pytest.raises(SdpError):
        parse_sdp(text)


@pytest.mark.parametrize("transport,setup", [("UDP", None), ("TCP", "passive"), ("TCP", "active")])
def test_build_parse_round_trip(transport, setup):
    s = GbSdp(session="Playback", origin_id="34020000002000000001", ip="10.1.2.3", port=40000,
              transport=transport, setup=setup, ssrc=make_ssrc("3402000000", 17, playback=True),
              u="34020000001320000001:0", start=1714536000, end=1714539600, f="v/2/4/25/1/4096a///",
              download_speed=None)
    text = build_sdp(s)
    assert text.endswith("\r\n") and "\n\n" not in text
    assert ("TCP/RTP/AVP" in text) == (transport == "TCP")
    back = parse_sdp(text)
    for k in ("session", "origin_id", "ip", "port", "transport", "ssrc", "u", "start", "end", "f",
              "payloads", "direction"):
        assert getattr(back, k) == getattr(s, k), k
    assert back.setup == (setup if transport == "TCP" else None)
    assert text.index("y=") > text.index("m=") and back.warnings == []


def test_build_download_speed():
    text = build_sdp(GbSdp(session="Download", ip="1.2.3.4", port=1, download_speed=4))
    assert "a=downloadspeed:4\r\n" in text and parse_sdp(text).download_speed == 4


def test_make_ssrc():
    assert make_ssrc("3402000000", 1) == "0200000001"
    assert make_ssrc("3402000000", 12, playback=True) == "1200000012"
    assert make_ssrc("4401020049", 10_003) == "0102000003"  # digits 4-8, sequence wraps
    assert all(len(make_ssrc("3402000000", n)) == 10 for n in (0, 9999, 123456))


def test_fuzz_parse_sdp_raises_only_sdp_error():
    rng = random.Random(4566)
    seeds = [PLATFORM_OFFER.encode(), DEVICE_ANSWER.encode()]
    t0 = time.perf_counter()
    n = ok = 0
    while time.perf_counter() - t0 < 1.0:
        b = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 10)):
            pos = rng.randrange(len(b) + 1)
            op = rng.randrange(4)
            if op == 0 and b:
                b[min(pos, len(b) - 1)] = rng.randrange(256)
            elif op == 1:
                del b[pos : pos + rng.randint(1, 15)]
            elif op == 2:
                b[pos:pos] = rng.choice([b"\r\n", b"=", b"m=video ", b"y=", b"a=rtpmap:", b":", b" ",
                                         b"\xff", b"-1", b"99999999999999999999"])
            else:
                b = b[: rng.randrange(len(b) + 1)]
        n += 1
        try:
            s = parse_sdp(bytes(b))
        except SdpError:
            continue
        ok += 1
        assert 0 <= s.port <= 65535 and s.transport in ("UDP", "TCP")
        build_sdp(s)
    assert n > 500 and ok > 0
