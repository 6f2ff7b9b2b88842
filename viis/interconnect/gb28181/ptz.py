"""GB/T 28181 front-end control command (``<PTZCmd>``): 8 bytes as 16 hex digits (Q12.1).

Layout: byte 1 ``A5``; byte 2 version (high nibble) and check nibble ``(0xA + 0x5 +
version) mod 16`` (low); byte 3 address low 8 bits; byte 4 command; bytes 5–6 data;
byte 7 high nibble data (zoom speed, or the top bits of a 12-bit value) and low nibble
address high 4 bits; byte 8 checksum = sum of bytes 1–7 mod 256. Example from the notes:
``A50F0101808000B6`` = pan right at speed 0x80, tilt speed 0x80, address 1.

Commands (byte 4):
- PTZ ``0b00ZZTTPP``: 0x01 right, 0x02 left, 0x04 down, 0x08 up, 0x10 zoom in (tele),
  0x20 zoom out (wide); data 1 pan speed, data 2 tilt speed, byte 7 high nibble zoom speed;
  0x00 = stop.
- FI ``0x4X``: 0x41 focus far, 0x42 focus near, 0x44 iris open, 0x48 iris close; data 1
  focus speed, data 2 iris speed.
- Presets: 0x81 set, 0x82 call, 0x83 delete; data 2 preset number (1–255).
- Cruise: 0x84 add point, 0x85 delete point (data 1 group, data 2 preset), 0x86 speed,
  0x87 stay time (data 1 group, 12-bit value in data 2 + byte 7 high nibble), 0x88 start
  (data 1 group). Scan: 0x89 (data 1 group, data 2 0 start / 1 left edge / 2 right edge),
  0x8A scan speed (12-bit). Auxiliary switch: 0x8C on, 0x8D off (data 1 switch number).
  The FI, cruise, scan and auxiliary layouts follow how deployed platforms encode them; the
  standard's own text was not at hand to check them against.
"""

from __future__ import annotations

from dataclasses import dataclass

PAN_RIGHT, PAN_LEFT, TILT_DOWN, TILT_UP, ZOOM_IN, ZOOM_OUT = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
FOCUS_FAR, FOCUS_NEAR, IRIS_OPEN, IRIS_CLOSE = 0x01, 0x02, 0x04, 0x08
PRESET_OPS = {"set": 0x81, "call": 0x82, "delete": 0x83}
CRUISE_OPS = {"add": 0x84, "remove": 0x85, "speed": 0x86, "stay": 0x87, "start": 0x88}
SCAN_OPS = {"start": 0x89, "speed": 0x8A}
AUX_OPS = {"on": 0x8C, "off": 0x8D}
_BY_CODE = {v: ("preset", k) for k, v in PRESET_OPS.items()} | {
    v: ("cruise", k) for k, v in CRUISE_OPS.items()} | {
    v: ("scan", k) for k, v in SCAN_OPS.items()} | {v: ("aux", k) for k, v in AUX_OPS.items()}


class PtzError(ValueError):
    """Not a valid PTZCmd (length, header, check nibble or checksum)."""


@dataclass
class PtzCommand:
    kind: str  # ptz | fi | preset | cruise | scan | aux | stop | unknown
    code: int  # byte 4
    address: int = 0
    pan: str | None = None  # left | right
    tilt: str | None = None  # up | down
    zoom: str | None = None  # in | out
    pan_speed: int = 0
    tilt_speed: int = 0
    zoom_speed: int = 0
    focus: str | None = None  # far | near
    iris: str | None = None  # open | close
    focus_speed: int = 0
    iris_speed: int = 0
    op: str | None = None  # preset/cruise/scan/aux operation
    group: int = 0  # cruise/scan group or aux switch number
    preset: int = 0
    value: int = 0  # cruise speed / stay time, scan speed (12 bits), scan mode
    version: int = 0
    data1: int = 0
    data2: int = 0
    high: int = 0  # byte 7 high nibble


def _check(name: str, v: int, hi: int) -> int:
    if not 0 <= v <= hi:
        raise ValueError(f"{name} must be 0..{hi}, got {v}")
    return v


def _pack(code: int, data1: int = 0, data2: int = 0, high: int = 0, address: int = 0,
          version: int = 0) -> str:
    _check("address", address, 0xFFF)
    _check("version", version, 0xF)
    b = [0xA5, (version << 4) | ((0xA + 0x5 + version) & 0xF), address & 0xFF,
         _check("command", code, 0xFF), _check("data 1", data1, 0xFF),
         _check("data 2", data2, 0xFF), (_check("high nibble", high, 0xF) << 4) | (address >> 8)]
    b.append(sum(b) & 0xFF)
    return bytes(b).hex().upper()


def encode_ptz(
    pan: str | None = None, tilt: str | None = None, zoom: str | None = None,
    pan_speed: int = 0x80, tilt_speed: int = 0x80, zoom_speed: int = 0x8, address: int = 0,
) -> str:
    """Pan/tilt/zoom (all None = stop, speeds then 0). ``pan``: left|right, ``tilt``:
    up|down, ``zoom``: in|out. Pan and tilt speeds are always written (as deployed
    platforms do: the notes' ``A50F0101808000B6`` pans right with both at 0x80); the zoom
    speed only when zooming."""
    code = 0
    code |= {None: 0, "right": PAN_RIGHT, "left": PAN_LEFT}[pan]
    code |= {None: 0, "down": TILT_DOWN, "up": TILT_UP}[tilt]
    code |= {None: 0, "in": ZOOM_IN, "out": ZOOM_OUT}[zoom]
    if code == 0:
        return _pack(0, address=address)
    return _pack(code, pan_speed, tilt_speed, zoom_speed if zoom else 0, address)


def encode_fi(focus: str | None = None, iris: str | None = None, focus_speed: int = 0x80,
              iris_speed: int = 0x80, address: int = 0) -> str:
    """Focus far|near and iris open|close (both None = stop)."""
    bits = {None: 0, "far": FOCUS_FAR, "near": FOCUS_NEAR}[focus]
    bits |= {None: 0, "open": IRIS_OPEN, "close": IRIS_CLOSE}[iris]
    if bits == 0:
        return _pack(0, address=address)
    return _pack(0x40 | bits, focus_speed if focus else 0, iris_speed if iris else 0, 0, address)


def encode_preset(op: str, preset: int, address: int = 0) -> str:
    """Preset ``set`` | ``call`` | ``delete``, number 1..255."""
    if not 1 <= preset <= 255:
        raise ValueError("preset must be 1..255")
    return _pack(PRESET_OPS[op], 0, preset, 0, address)


def encode_cruise(op: str, group: int, preset: int = 0, value: int = 0, address: int = 0) -> str:
    """Cruise ``add``/``remove`` (group, preset), ``speed``/``stay`` (group, 12-bit value),
    ``start`` (group)."""
    code = CRUISE_OPS[op]
    _check("group", group, 0xFF)
    if op in ("speed", "stay"):
        _check("value", value, 0xFFF)
        return _pack(code, group, value & 0xFF, value >> 8, address)
    return _pack(code, group, _check("preset", preset, 0xFF) if op != "start" else 0, 0, address)


def encode_scan(op: str, group: int = 0, mode: int = 0, speed: int = 0, address: int = 0) -> str:
    """Auto-scan ``start`` (mode 0 start, 1 set left edge, 2 set right edge) or ``speed``."""
    if op == "speed":
        _check("speed", speed, 0xFFF)
        return _pack(SCAN_OPS[op], group, speed & 0xFF, speed >> 8, address)
    return _pack(SCAN_OPS[op], group, _check("mode", mode, 2), 0, address)


def encode_aux(op: str, switch: int, address: int = 0) -> str:
    """Auxiliary switch (wiper, light) ``on`` | ``off``."""
    return _pack(AUX_OPS[op], _check("switch", switch, 0xFF), 0, 0, address)


def decode_ptz(hex_text: str) -> PtzCommand:
    """Decode and verify a PTZCmd; ``PtzError`` says which check failed."""
    t = (hex_text or "").strip()
    if len(t) != 16:
        raise PtzError(f"PTZCmd must be 16 hex digits, got {len(t)}")
    try:
        b = bytes.fromhex(t)
    except ValueError as e:
        raise PtzError("PTZCmd is not hexadecimal") from e
    if len(b) != 8:  # fromhex skips whitespace: "A50F01\r\n00FA00B7" is 16 characters
        raise PtzError("PTZCmd is not hexadecimal")
    if b[0] != 0xA5:
        raise PtzError(f"first byte must be A5, got {b[0]:02X}")
    version = b[1] >> 4
    if (b[1] & 0xF) != (0xA + 0x5 + version) & 0xF:
        raise PtzError(f"byte 2 check nibble {b[1] & 0xF:X} does not match version {version}")
    if sum(b[:7]) & 0xFF != b[7]:
        raise PtzError(f"checksum {b[7]:02X} != {sum(b[:7]) & 0xFF:02X} (sum of bytes 1-7 mod 256)")
    code, d1, d2, high = b[3], b[4], b[5], b[6] >> 4
    c = PtzCommand("unknown", code, address=((b[6] & 0xF) << 8) | b[2], version=version,
                   data1=d1, data2=d2, high=high)
    if code == 0:
        c.kind = "stop"
    elif code & 0xC0 == 0:
        c.kind = "ptz"
        c.pan = "right" if code & PAN_RIGHT else "left" if code & PAN_LEFT else None
        c.tilt = "down" if code & TILT_DOWN else "up" if code & TILT_UP else None
        c.zoom = "in" if code & ZOOM_IN else "out" if code & ZOOM_OUT else None
        c.pan_speed, c.tilt_speed, c.zoom_speed = d1, d2, high
    elif code & 0xF0 == 0x40:
        c.kind = "fi"
        c.focus = "far" if code & FOCUS_FAR else "near" if code & FOCUS_NEAR else None
        c.iris = "open" if code & IRIS_OPEN else "close" if code & IRIS_CLOSE else None
        c.focus_speed, c.iris_speed = d1, d2
    elif code in _BY_CODE:
        c.kind, c.op = _BY_CODE[code]
        c.group = d1
        if c.kind == "preset":
            c.preset = d2
        elif c.kind == "cruise" and c.op in ("add", "remove"):
            c.preset = d2
        elif (c.kind, c.op) in (("cruise", "speed"), ("cruise", "stay"), ("scan", "speed")):
            c.value = d2 | (high << 8)
        elif c.kind == "scan":
            c.value = d2
    return c


def control_body(device_id: str, sn: int, ptz_cmd: str, priority: int = 5,
                 charset: str = "GB2312") -> bytes:
    """The ``<Control><CmdType>DeviceControl</CmdType>`` MANSCDP body carrying a PTZCmd."""
    from .manscdp import build

    return build("Control", "DeviceControl", sn, device_id,
                 {"PTZCmd": ptz_cmd, "Info": {"ControlPriority": priority}}, charset=charset)
