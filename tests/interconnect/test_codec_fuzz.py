"""Fuzz of the GB/T 28181 body codecs (Q12.1, N12.1: peers bend the standard; issue 7: input
from devices and upper platforms is hostile until read): SDP, MANSRTSP, PTZCmd, MANSCDP and
GB time, each fed seeded mutations of a valid message. Each may only raise its own declared
error (a ValueError), never anything else - an undeclared exception is an unanswered request
and a traceback per packet. The SIP parser has its own fuzz test (test_robustness)."""

from __future__ import annotations

import random

import pytest

from viis.interconnect.gb28181 import manscdp, mansrtsp, ptz, sdp

SDP = ("v=0\r\no=34020000001320000001 0 0 IN IP4 192.168.1.10\r\ns=Playback\r\nu=x:0\r\n"
       "c=IN IP4 192.168.1.10\r\nt=1714536000 1714539600\r\nm=video 30000 TCP/RTP/AVP 96 97 98\r\n"
       "a=rtpmap:96 PS/90000\r\na=recvonly\r\na=setup:passive\r\na=connection:new\r\n"
       "a=downloadspeed:4\r\ny=0100000001\r\nf=v/2/5/25/1/4096a/1/8/1\r\n")
RTSP = "PLAY RTSP/1.0\r\nCSeq: 3\r\nScale: 2.0\r\nRange: npt=100-\r\n\r\n"
XML = manscdp.catalog_responses("34020000001320000001", 5, [
    {"DeviceID": "34020000001310000001", "Name": "门口", "Status": "ON",
     "Info": {"PTZType": 1}}])[0].decode("gb2312")
PIECES = ["\x00", "é", "镕", "9" * 400, "-", ":", "=", " ", "\r\n", "1e999", "nan", "inf", "-1",
          "0x", "<", ">", "&", "99999999999999999999", "npt=", "Scale: ", "t=", "y=", "m=video ",
          "<Item>", "</DeviceList>", "<!DOCTYPE", "0001-01-01T00:00:00", "+14:00"]

TARGETS = {
    "sdp": (sdp.parse_sdp, SDP, sdp.SdpError),
    "mansrtsp": (mansrtsp.parse, RTSP, mansrtsp.MansRtspError),
    "ptz": (ptz.decode_ptz, "A50F010800FA00B7", ptz.PtzError),
    "manscdp": (manscdp.parse, XML, manscdp.ManscdpError),
    "gb_time": (manscdp.parse_gb_time, "2024-05-01T12:00:00.250+08:00", ValueError),
}


def mutate(rnd: random.Random, text: str) -> str:
    s = list(text)
    for _ in range(rnd.choice((1, 1, 2, 3, 6))):
        op, i = rnd.random(), rnd.randrange(len(s) + 1)
        if op < 0.4:
            s[i:i] = list(rnd.choice(PIECES))
        elif op < 0.7 and s:
            del s[i:i + rnd.randint(1, 20)]
        elif op < 0.85 and s:  # same length, a near-miss character (space, digit, sign)
            s[rnd.randrange(len(s))] = rnd.choice(" \t\r\n0123456789ABCDEFabcdef-+:.")
        elif s:
            s[rnd.randrange(len(s))] = chr(rnd.randrange(0, 0x3000))
    return "".join(s)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_mutated_input_raises_only_the_declared_error(name):
    fn, valid, declared = TARGETS[name]
    fn(valid)  # the seed itself is read
    rnd = random.Random(f"gb-{name}")
    for _ in range(4000):
        x = mutate(rnd, valid)
        try:
            fn(x)
        except declared:
            pass
        except Exception as e:  # noqa: BLE001 - the point of the test
            raise AssertionError(f"{name}: {type(e).__name__}: {e} for {x[:300]!r}") from e
