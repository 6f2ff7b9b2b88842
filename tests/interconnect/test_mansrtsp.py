"""MANSRTSP playback control: pause, resume, seek, speed (Q12.1, N12.1)."""

import pytest

from viis.interconnect.gb28181.mansrtsp import MansRtspError, build, parse


def test_pause_now():
    m = parse(b"PAUSE RTSP/1.0\r\nCSeq: 4\r\nPauseTime: now\r\n")
    assert (m.method, m.cseq, m.pause_now, m.pause_time) == ("PAUSE", 4, True, None)


def test_pause_without_pausetime_means_now():
    assert parse("PAUSE RTSP/1.0\nCSeq: 1\n").pause_now


def test_resume():
    m = parse(b"PLAY RTSP/1.0\r\nCSeq: 5\r\nRange: npt=now-\r\n")
    assert (m.method, m.range_now, m.range_start, m.scale) == ("PLAY", True, None, None)


@pytest.mark.parametrize("rng,secs", [("npt=120-", 120.0), ("npt=120.5-", 120.5),
                                      ("npt = 0:02:00-", 120.0), ("NPT=1:00:00-", 3600.0),
                                      ("npt=0-", 0.0)])
def test_seek(rng, secs):
    m = parse(f"PLAY RTSP/1.0\r\nCSeq: 6\r\nRange: {rng}\r\n")
    assert m.range_start == secs and not m.range_now


def test_seek_with_end():
    assert parse("PLAY RTSP/1.0\r\nCSeq: 6\r\nRange: npt=10-20\r\n").range_end == 20.0


@pytest.mark.parametrize("scale,val", [("2.0", 2.0), ("2", 2.0), ("0.5", 0.5), ("0.25", 0.25),
                                       ("4.000000", 4.0)])
def test_scale(scale, val):
    m = parse(f"PLAY RTSP/1.0\r\nCSeq: 7\r\nScale: {scale}\r\n")
    assert m.scale == val and not m.range_now and m.range_start is None


def test_header_case_and_whitespace():
    m = parse(b"\r\n  play RTSP/1.0\ncseq:9\nscale:  1.0 \n")
    assert (m.method, m.cseq, m.scale) == ("PLAY", 9, 1.0)


def test_teardown():
    assert parse("TEARDOWN RTSP/1.0\r\nCSeq: 10\r\n").method == "TEARDOWN"


@pytest.mark.parametrize("body", [
    "", "GET / HTTP/1.1\r\n", "PLAY RTSP/1.0\r\nScale: -1\r\n", "PLAY RTSP/1.0\r\nScale: nan\r\n",
    "PLAY RTSP/1.0\r\nScale: inf\r\n", "PLAY RTSP/1.0\r\nScale: 0\r\n",
    "PLAY RTSP/1.0\r\nRange: clock=20240501T000000Z-\r\n", "PLAY RTSP/1.0\r\nRange: npt=-5-\r\n",
    "PLAY RTSP/1.0\r\nCSeq: x\r\n", "PLAY RTSP/1.0\r\nRange: npt=1:2:3:4-\r\n",
])
def test_rejects(body):
    with pytest.raises(MansRtspError):
        parse(body)


def test_oversized():
    with pytest.raises(MansRtspError):
        parse(b"PLAY RTSP/1.0\r\n" + b"X: y\r\n" * 1000)


def test_build_forms_round_trip():
    assert build("PAUSE", 1) == b"PAUSE RTSP/1.0\r\nCSeq: 1\r\nPauseTime: now\r\n"
    assert build("PLAY", 2, range_start="now") == b"PLAY RTSP/1.0\r\nCSeq: 2\r\nRange: npt=now-\r\n"
    assert build("PLAY", 3, range_start=120) == b"PLAY RTSP/1.0\r\nCSeq: 3\r\nRange: npt=120-\r\n"
    assert build("PLAY", 4, scale=2) == b"PLAY RTSP/1.0\r\nCSeq: 4\r\nScale: 2.0\r\n"
    m = parse(build("PLAY", 5, scale=0.5, range_start=30.5))
    assert (m.cseq, m.scale, m.range_start) == (5, 0.5, 30.5)
    with pytest.raises(ValueError):
        build("RECORD", 1)
