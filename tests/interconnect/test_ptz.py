"""PTZCmd encoding and decoding (Q12.1, N12.1; Q13.2: PTZ of devices from below)."""

import pytest

from viis.interconnect.gb28181 import manscdp
from viis.interconnect.gb28181.ptz import (
    PtzError,
    control_body,
    decode_ptz,
    encode_aux,
    encode_cruise,
    encode_fi,
    encode_preset,
    encode_ptz,
    encode_scan,
)


def _checksum_ok(h: str) -> bool:
    b = bytes.fromhex(h)
    return sum(b[:7]) % 256 == b[7]


def test_vector_from_the_notes():
    c = decode_ptz("A50F0101808000B6")
    assert (c.kind, c.pan, c.tilt, c.zoom) == ("ptz", "right", None, None)
    assert (c.pan_speed, c.tilt_speed, c.zoom_speed, c.address) == (0x80, 0x80, 0, 1)
    assert encode_ptz("right", address=1) == "A50F0101808000B6"


def test_stop_vector():
    assert encode_ptz() == "A50F0000000000B4"  # A5+0F = B4
    assert decode_ptz("a50f0000000000b4").kind == "stop"  # lower case accepted


@pytest.mark.parametrize("pan,tilt,zoom,code", [
    ("right", None, None, 0x01), ("left", None, None, 0x02), (None, "down", None, 0x04),
    (None, "up", None, 0x08), (None, None, "in", 0x10), (None, None, "out", 0x20),
    ("right", "up", None, 0x09), ("left", "down", None, 0x06), ("left", "up", "out", 0x2A),
    ("right", "down", "in", 0x15),
])
def test_every_ptz_bit_round_trips(pan, tilt, zoom, code):
    h = encode_ptz(pan, tilt, zoom, pan_speed=0x33, tilt_speed=0x44, zoom_speed=0xA, address=0x5C7)
    assert len(h) == 16 and h == h.upper() and _checksum_ok(h)
    assert int(h[6:8], 16) == code
    c = decode_ptz(h)
    assert (c.pan, c.tilt, c.zoom, c.address) == (pan, tilt, zoom, 0x5C7)
    assert (c.pan_speed, c.tilt_speed) == (0x33, 0x44)
    assert c.zoom_speed == (0xA if zoom else 0)
    # address 0x5C7: low byte in byte 3, high nibble in the low nibble of byte 7
    assert h[4:6] == "C7" and h[13] == "5"


@pytest.mark.parametrize("focus,iris,code", [
    ("far", None, 0x41), ("near", None, 0x42), (None, "open", 0x44), (None, "close", 0x48),
    ("near", "close", 0x4A),
])
def test_focus_iris_bits(focus, iris, code):
    h = encode_fi(focus, iris, focus_speed=0x10, iris_speed=0x20)
    assert int(h[6:8], 16) == code and _checksum_ok(h)
    c = decode_ptz(h)
    assert (c.kind, c.focus, c.iris) == ("fi", focus, iris)
    assert c.focus_speed == (0x10 if focus else 0) and c.iris_speed == (0x20 if iris else 0)


@pytest.mark.parametrize("op,code", [("set", 0x81), ("call", 0x82), ("delete", 0x83)])
def test_presets(op, code):
    h = encode_preset(op, 17, address=1)
    assert h[6:8] == f"{code:02X}" and h[10:12] == "11" and _checksum_ok(h)
    c = decode_ptz(h)
    assert (c.kind, c.op, c.preset) == ("preset", op, 17)
    with pytest.raises(ValueError):
        encode_preset(op, 0)


def test_cruise_scan_aux():
    c = decode_ptz(encode_cruise("add", 2, preset=5))
    assert (c.kind, c.op, c.group, c.preset, c.code) == ("cruise", "add", 2, 5, 0x84)
    assert decode_ptz(encode_cruise("remove", 2, preset=5)).code == 0x85
    c = decode_ptz(encode_cruise("stay", 3, value=0xABC))
    assert (c.op, c.group, c.value, c.code) == ("stay", 3, 0xABC, 0x87)
    assert decode_ptz(encode_cruise("speed", 3, value=300)).value == 300
    assert decode_ptz(encode_cruise("start", 1)).code == 0x88
    c = decode_ptz(encode_scan("start", 1, mode=2))
    assert (c.kind, c.op, c.value, c.code) == ("scan", "start", 2, 0x89)
    assert decode_ptz(encode_scan("speed", 1, speed=4095)).value == 4095
    c = decode_ptz(encode_aux("on", 1))
    assert (c.kind, c.op, c.group, c.code) == ("aux", "on", 1, 0x8C)
    assert decode_ptz(encode_aux("off", 1)).code == 0x8D


def test_version_nibble_check():
    # version 1: byte 2 = 0x10 | (0xA + 0x5 + 1) & 0xF = 0x10
    b = bytes([0xA5, 0x10, 0x01, 0x01, 0x80, 0x80, 0x00])
    h = (b + bytes([sum(b) & 0xFF])).hex()
    assert decode_ptz(h).version == 1


@pytest.mark.parametrize("bad,why", [
    ("A50F0101808000B7", "checksum"), ("A50E0101808000B5", "check nibble"),
    ("A40F0101808000B5", "A5"), ("A50F01018080", "16 hex"), ("A50F01018080ZZB6", "hexadecimal"),
    ("", "16 hex"), ("A50F01\r\n00FA00B7", "hexadecimal"), ("A5 0F 01 08 00FA", "hexadecimal"),
])
def test_rejects(bad, why):
    with pytest.raises(PtzError, match=why):
        decode_ptz(bad)


def test_out_of_range_values():
    with pytest.raises(ValueError):
        encode_ptz("right", pan_speed=256)
    with pytest.raises(ValueError):
        encode_ptz("right", address=0x1000)
    with pytest.raises(KeyError):
        encode_ptz("sideways")


def test_control_body_carries_ptzcmd():
    m = manscdp.parse(control_body("34020000001320000001", 7, encode_ptz("left", address=1)))
    assert (m.root, m.cmd, m.sn) == ("Control", "DeviceControl", 7)
    assert decode_ptz(m.fields["PTZCmd"]).pan == "left"
    assert m.sections["Info"] == {"ControlPriority": "5"}
