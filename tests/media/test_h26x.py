"""H.264/H.265 helpers checked against real x264/x265 output and ffprobe."""

from __future__ import annotations

import json
import os
import random
import subprocess

import pytest

from viis.media import h26x
from viis.media.mp4 import parse_segment

H264_PROFILES = {"Baseline": 66, "Constrained Baseline": 66, "Main": 77, "High": 100,
                 "High 10": 110, "High 4:2:2": 122, "High 4:4:4 Predictive": 244}  # fmt: skip
H265_PROFILES = {"Main": 1, "Main 10": 2, "Rext": 4}


def encode(path, codec: str, size: str, *, pix_fmt="yuv420p", rate="25", frames=2, extra=()):
    w, h = size.split("x")
    vf = f"testsrc2=size=320x240:rate={rate},scale={w}:{h}"
    enc = (["-c:v", "libx264", "-preset", "ultrafast", "-bf", "0"] if codec == "h264" else
           ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:bframes=0"])  # fmt: skip
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", vf, "-frames:v", str(frames),
                    "-pix_fmt", pix_fmt, *enc, *extra, "-f", "h264" if codec == "h264" else "hevc",
                    str(path)], check=True, capture_output=True)  # fmt: skip
    return path


def ffprobe(path, *args) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
                         check=True, capture_output=True).stdout  # fmt: skip
    return json.loads(out)


CASES = [
    ("h264", "320x240", "yuv420p", "25", ()),
    ("h264", "1920x1080", "yuv420p", "25", ()),  # cropped: coded 1088 lines
    ("h264", "322x242", "yuv420p", "25", ("-profile:v", "baseline")),  # not a multiple of 16
    ("h264", "321x241", "yuv444p", "25", ()),  # odd size, High 4:4:4 (scaling lists path)
    ("h264", "640x360", "yuv422p", "30000/1001", ()),
    ("h264", "1920x1080", "yuv420p", "25", ("-x264-params", "interlaced=1")),  # field coding
    ("h265", "320x240", "yuv420p", "25", ()),
    ("h265", "1920x1080", "yuv420p", "25", ()),
    ("h265", "322x242", "yuv422p10le", "30000/1001", ()),  # conformance window, Rext
    ("h265", "321x241", "yuv444p", "25", ()),  # odd size
    ("h265", "176x144", "yuv420p10le", "15", ()),  # Main 10
]


@pytest.mark.parametrize("codec,size,pix_fmt,rate,extra", CASES)
def test_sps_matches_ffprobe(tmp_path, codec, size, pix_fmt, rate, extra):
    path = encode(tmp_path / "v.es", codec, size, pix_fmt=pix_fmt, rate=rate, extra=extra)
    nals = h26x.split_annexb(path.read_bytes())
    ps = h26x.parameter_sets(codec, nals)
    info = h26x.parse_sps(codec, ps["sps"][0])
    st = ffprobe(path, "-show_streams")["streams"][0]
    assert (
        (info.width, info.height) == (st["width"], st["height"]) == tuple(map(int, size.split("x")))
    )
    assert info.coded_width % 8 == 0 and info.coded_width >= info.width
    assert info.level_idc == st["level"]
    profiles = H264_PROFILES if codec == "h264" else H265_PROFILES
    assert info.profile_idc == profiles[st["profile"]]
    assert info.bit_depth_luma == (10 if "10" in pix_fmt else 8)
    assert info.chroma_format_idc == {"420": 1, "422": 2, "444": 3}[pix_fmt[3:6]]
    if "interlaced=1" not in extra:
        num, den = map(int, st["r_frame_rate"].split("/"))
        assert info.fps == pytest.approx(num / den, rel=1e-6)
    # the codec string carries profile and level
    cs = h26x.codec_string(codec, ps["sps"][0])
    if codec == "h264":
        assert cs == "avc1." + ps["sps"][0][1:4].hex()
    else:
        assert cs.startswith(f"hvc1.{info.profile_idc}.") and f".L{info.level_idc}." in cs + "."


def test_hevc_codec_string_layout(tmp_path):
    path = encode(tmp_path / "v.hevc", "h265", "320x240")
    sps = h26x.parameter_sets("h265", h26x.split_annexb(path.read_bytes()))["sps"][0]
    info = h26x.parse_h265_sps(sps)
    assert info.profile_compat_flags == 0x60000000  # Main: flags 1 and 2 set
    # ISO/IEC 14496-15 E.3: compat flags bit-reversed in hex, tier, level, constraint bytes
    assert h26x.codec_string("h265", sps) == f"hvc1.1.6.L{info.level_idc}.90"
    assert h26x.codec_string("h265", sps, "hev1").startswith("hev1.1.6.")


def test_decoder_config_records_match_ffmpeg(tmp_path):
    for codec in ("h264", "h265"):
        es = encode(tmp_path / f"v.{codec}", codec, "640x360", frames=3)
        mp4 = tmp_path / f"{codec}.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(es), "-c", "copy", "-tag:v",
                        "avc1" if codec == "h264" else "hvc1", "-movflags",
                        "frag_keyframe+empty_moov", str(mp4)], check=True)  # fmt: skip
        theirs = parse_segment(mp4).track_of_kind("video").config
        ps = h26x.parameter_sets(codec, h26x.split_annexb(es.read_bytes()))
        if codec == "h264":
            ours = h26x.avcc(ps["sps"], ps["pps"])
            assert ours == theirs
            assert h26x.parse_avcc(ours) == ps
        else:
            ours = h26x.hvcc(ps["vps"], ps["sps"], ps["pps"])
            assert ours[:13] == theirs[:13]  # version, profile/tier/compat/constraints/level
            assert ours[16] == theirs[16] and ours[17:19] == theirs[17:19]  # chroma, bit depths
            assert ours[21] & 0x3F == theirs[21] & 0x3F  # layers, nesting, length size
            parsed = h26x.parse_hvcc(theirs)
            assert h26x.parse_hvcc(ours) == ps
            assert all(parsed[k] == ps[k] for k in ("vps", "sps", "pps"))


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_access_units_and_keyframes_match_ffprobe(tmp_path, codec):
    extra = (["-x264-params", "keyint=10:min-keyint=10:scenecut=0"] if codec == "h264" else
             ["-g", "10", "-keyint_min", "10", "-sc_threshold", "0"])  # fmt: skip
    path = encode(tmp_path / "v.es", codec, "320x240", frames=35, extra=extra)
    aus = h26x.access_units(codec, h26x.split_annexb(path.read_bytes()))
    pk = ffprobe(path, "-show_packets", "-show_entries", "packet=flags")["packets"]
    assert len(aus) == len(pk) == 35
    ours = [h26x.is_keyframe(codec, au) for au in aus]
    assert ours == ["K" in p["flags"] for p in pk]
    assert ours.count(True) == 4
    assert all(h26x.is_parameter_set(codec, n) for au in aus[:1] for n in au[:2])


def test_split_annexb_start_codes_and_trailing_zeros():
    a, b, c = b"\x67\x42\x00\x1e", b"\x68\xce\x06\xe2", b"\x65\x88\x00\x00\x03\x00\x01"
    stream = (
        b"junk" + b"\x00\x00\x00\x01" + a + b"\x00\x00" + b"\x00\x00\x01" + b + b"\x00\x00\x01" + c
    )
    assert h26x.split_annexb(stream) == [a, b, c]
    assert h26x.split_annexb(b"") == [] and h26x.split_annexb(b"\x00\x00\x01") == []
    assert [h26x.h264_nal_type(n) for n in (a, b, c)] == [7, 8, 5]
    assert h26x.is_keyframe("h264", [a, b, c]) and not h26x.is_keyframe("h264", [a, b])


def test_unescape_rbsp():
    assert h26x.unescape_rbsp(b"\x00\x00\x03\x01") == b"\x00\x00\x01"
    assert h26x.unescape_rbsp(b"\x00\x00\x03\x00\x00\x03\x02") == b"\x00\x00\x00\x00\x02"
    assert h26x.unescape_rbsp(b"\x01\x00\x03\x00") == b"\x01\x00\x03\x00"
    assert h26x.unescape_rbsp(b"\x00\x00\x03") == b"\x00\x00"


def test_bit_reader_exp_golomb():
    bits = "1" + "010" + "011" + "00100" + "00101" + "0001000"  # ue 0,1,2,3; se -2; ue 7
    r = h26x.BitReader(int(bits, 2).to_bytes(3, "big"))
    assert [r.ue(), r.ue(), r.ue(), r.ue(), r.se(), r.ue()] == [0, 1, 2, 3, -2, 7]
    with pytest.raises(h26x.BitstreamError):
        h26x.BitReader(b"\x00\x00").ue()
    with pytest.raises(h26x.BitstreamError):
        h26x.BitReader(b"\xff").u(9)


def test_malformed_sps_raises_bitstream_error(tmp_path):
    rng = random.Random(7)
    for codec in ("h264", "h265"):
        path = encode(tmp_path / "v.es", codec, "1920x1080", frames=1)
        sps = h26x.parameter_sets(codec, h26x.split_annexb(path.read_bytes()))["sps"][0]
        for n in range(len(sps)):  # every truncation: a result or BitstreamError
            try:
                info = h26x.parse_sps(codec, sps[:n])
            except h26x.BitstreamError:
                continue
            assert info.width > 0
        hdr = sps[: 1 if codec == "h264" else 2]
        for _ in range(300):  # garbage after a valid header
            junk = hdr + os.urandom(rng.randrange(1, 40))
            try:
                h26x.parse_sps(codec, junk)
            except h26x.BitstreamError:
                pass
    with pytest.raises(h26x.BitstreamError):
        h26x.parse_h264_sps(b"\x68\x00\x00\x00")  # a PPS
    with pytest.raises(ValueError):
        h26x.parse_sps("vp8", b"\x00")
