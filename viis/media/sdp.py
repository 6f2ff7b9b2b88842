"""SDP (RFC 4566) parsing for RTSP DESCRIBE answers from IP cameras.

Only what a recording client needs is interpreted: media sections, rtpmap, fmtp,
control URLs (RFC 2326 appendix C.1.1) and ``a=range``.  Camera quirks are
tolerated (LF or CRLF line ends, trailing blanks, upper/lower case codec names,
missing rtpmap for static payload types, missing fields); hostile input (huge
documents, absurd line counts, binary junk) is refused with :class:`SdpError`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

__all__ = [
    "MAX_SDP_BYTES",
    "MediaDescription",
    "SdpError",
    "SessionDescription",
    "parse_sdp",
    "resolve_control",
    "strip_userinfo",
]

MAX_SDP_BYTES = 64 * 1024
MAX_SDP_LINES = 2000
MAX_MEDIA = 32
MAX_LINE = 8192


class SdpError(ValueError):
    """The session description is unusable (too large, malformed, not SDP)."""


# Static payload types (RFC 3551) that cameras send without an rtpmap line.
_STATIC_PT = {
    0: ("PCMU", 8000, 1),
    8: ("PCMA", 8000, 1),
    14: ("MPA", 90000, 1),
    26: ("JPEG", 90000, 1),
    32: ("MPV", 90000, 1),
    33: ("MP2T", 90000, 1),
}

_CODECS = {
    "H264": "h264",
    "H265": "h265",
    "HEVC": "h265",
    "MPEG4-GENERIC": "aac",  # checked against the mode/config below
    "MP4A-LATM": "aac_latm",
    "PCMA": "pcma",
    "PCMU": "pcmu",
    "JPEG": "mjpeg",
    "MP4V-ES": "mpeg4",
    "G726-32": "g726",
    "G726-16": "g726",
    "G726-24": "g726",
    "G726-40": "g726",
    "L16": "l16",
    "OPUS": "opus",
}
# Codecs this package can depacketize; others are listed with codec name but are
# not set up unless explicitly asked for.
SUPPORTED_CODECS = frozenset({"h264", "h265", "aac", "aac_latm", "pcma", "pcmu"})


@dataclass(slots=True)
class MediaDescription:
    index: int
    kind: str  # 'video', 'audio', 'application', ... (lower case)
    codec: str  # 'h264', 'h265', 'aac', 'aac_latm', 'pcma', 'pcmu', ... or 'unknown'
    payload_type: int
    clock_rate: int
    channels: int = 1
    encoding_name: str = ""  # as written in rtpmap (upper-cased)
    control: str = ""  # absolute URL (userinfo stripped), or '' if no base is known
    port: int = 0
    proto: str = ""
    direction: str = ""  # sendonly/recvonly/sendrecv/inactive if given
    framerate: float | None = None
    fmtp: dict[str, str] = field(default_factory=dict)  # keys lower-cased
    attributes: list[tuple[str, str]] = field(default_factory=list)
    # H.264
    profile_level_id: str | None = None
    packetization_mode: int = 0
    sprop_parameter_sets: list[bytes] = field(default_factory=list)
    # H.265
    sprop_vps: list[bytes] = field(default_factory=list)
    sprop_sps: list[bytes] = field(default_factory=list)
    sprop_pps: list[bytes] = field(default_factory=list)
    # AAC (RFC 3640 / RFC 6416)
    aac_config: bytes | None = None  # AudioSpecificConfig (or LATM StreamMuxConfig)
    mode: str | None = None
    sizelength: int = 0
    indexlength: int = 0
    indexdeltalength: int = 0
    constant_duration: int = 0

    @property
    def supported(self) -> bool:
        return self.codec in SUPPORTED_CODECS

    @property
    def parameter_sets(self) -> list[bytes]:
        """Out-of-band parameter sets (H.264: SPS/PPS; H.265: VPS/SPS/PPS)."""
        if self.codec == "h265":
            return [*self.sprop_vps, *self.sprop_sps, *self.sprop_pps]
        return list(self.sprop_parameter_sets)


@dataclass(slots=True)
class SessionDescription:
    version: int = 0
    origin: str = ""
    name: str = ""
    info: str = ""
    connection: str = ""
    control: str = ""  # session-level aggregate control URL (absolute)
    range: str | None = None  # raw a=range value, e.g. 'npt=0-'
    range_start: float | None = None
    range_end: float | None = None
    attributes: list[tuple[str, str]] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    def streams(self, kind: str | None = None) -> list[MediaDescription]:
        return [m for m in self.media if kind is None or m.kind == kind]


def strip_userinfo(url: str) -> str:
    """Remove ``user:pass@`` from an URL (cameras sometimes echo it back)."""
    i = url.find("://")
    if i < 0:
        return url
    rest = url[i + 3 :]
    end = len(rest)
    for ch in "/?#":
        j = rest.find(ch)
        if 0 <= j < end:
            end = j
    at = rest.rfind("@", 0, end)
    if at < 0:
        return url
    return url[: i + 3] + rest[at + 1 :]


def _is_absolute(url: str) -> bool:
    head = url[:12].lower()
    return head.startswith(("rtsp://", "rtsps://", "rtspu://", "http://", "https://"))


def resolve_control(base: str, control: str) -> str:
    """Resolve an ``a=control`` value against a base URL (RFC 2326 C.1.1).

    Relative values are appended below the base as cameras expect
    (``rtsp://h/live`` + ``trackID=1`` -> ``rtsp://h/live/trackID=1``), which is
    what deployed clients do rather than RFC 3986 sibling replacement.
    """
    control = control.strip()
    if not control or control == "*":
        return strip_userinfo(base)
    if _is_absolute(control):
        return strip_userinfo(control)
    if not base:
        return control
    base = strip_userinfo(base)
    if control.startswith("/"):
        # absolute path on the same host
        i = base.find("://")
        j = base.find("/", i + 3) if i >= 0 else -1
        host_part = base if j < 0 else base[:j]
        return host_part + control
    q = base.find("?")
    if q >= 0 and "?" not in control:
        # keep a query string on the base (some cameras: /live?channel=1)
        return base.rstrip("/") + "/" + control
    if base.endswith("/"):
        return base + control
    return base + "/" + control


def _b64(value: str) -> bytes | None:
    value = value.strip()
    if not value:
        return None
    pad = (-len(value)) % 4
    try:
        return base64.b64decode(value + "=" * pad, validate=False)
    except (binascii.Error, ValueError):
        return None


def _b64_list(value: str) -> list[bytes]:
    out = []
    for part in value.split(","):
        raw = _b64(part)
        if raw:
            out.append(raw)
    return out


def _parse_fmtp(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in value.split(";"):
        item = item.strip()
        if not item:
            continue
        k, sep, v = item.partition("=")
        out[k.strip().lower()] = v.strip() if sep else ""
    return out


def _int(value: str | None, default: int = 0) -> int:
    if value is None:
        return default
    try:
        return int(value.strip(), 10)
    except ValueError:
        return default


def _parse_npt(value: str) -> tuple[float | None, float | None]:
    v = value.strip()
    if not v.lower().startswith("npt"):
        return None, None
    _, _, rng = v.partition("=")
    a, _, b = rng.partition("-")

    def num(s: str) -> float | None:
        s = s.strip()
        if not s or s == "now":
            return None
        try:
            if ":" in s:
                parts = [float(p) for p in s.split(":")]
                total = 0.0
                for p in parts:
                    total = total * 60 + p
                return total
            return float(s)
        except ValueError:
            return None

    return num(a), num(b)


def _finish_media(m: MediaDescription, rtpmap: dict[int, tuple[str, int, int]]) -> None:
    enc = rtpmap.get(m.payload_type)
    if enc is None:
        enc = _STATIC_PT.get(m.payload_type)
    if enc is not None:
        name, rate, ch = enc
        m.encoding_name = name
        m.clock_rate = rate
        m.channels = ch
        m.codec = _CODECS.get(name, "unknown")
    else:
        m.codec = "unknown"
    f = m.fmtp
    if m.codec == "h264":
        m.profile_level_id = f.get("profile-level-id") or None
        m.packetization_mode = _int(f.get("packetization-mode"), 0)
        if "sprop-parameter-sets" in f:
            m.sprop_parameter_sets = _b64_list(f["sprop-parameter-sets"])
    elif m.codec == "h265":
        m.sprop_vps = _b64_list(f.get("sprop-vps", ""))
        m.sprop_sps = _b64_list(f.get("sprop-sps", ""))
        m.sprop_pps = _b64_list(f.get("sprop-pps", ""))
    elif m.codec in ("aac", "aac_latm"):
        m.mode = f.get("mode") or None
        m.sizelength = _int(f.get("sizelength"))
        m.indexlength = _int(f.get("indexlength"))
        m.indexdeltalength = _int(f.get("indexdeltalength"))
        m.constant_duration = _int(f.get("constantduration"))
        cfg = f.get("config")
        if cfg:
            try:
                m.aac_config = bytes.fromhex(cfg.strip())
            except ValueError:
                m.aac_config = None
        if m.codec == "aac":
            # mpeg4-generic also carries CELP etc.; only AAC modes are ours.
            mode = (m.mode or "").lower()
            if mode and mode not in ("aac-hbr", "aac-lbr", "generic"):
                m.codec = "unknown"
            elif not m.sizelength:
                # hbr defaults when the camera forgot them
                m.sizelength, m.indexlength, m.indexdeltalength = 13, 3, 3


def parse_sdp(text: str | bytes, base_url: str | None = None) -> SessionDescription:
    """Parse an SDP document.

    ``base_url`` is the RTSP base (Content-Base, else Content-Location, else the
    DESCRIBE URL); control URLs are resolved against it (userinfo stripped).
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        raw = bytes(text)
        if len(raw) > MAX_SDP_BYTES:
            raise SdpError(f"SDP too large: {len(raw)} bytes (limit {MAX_SDP_BYTES})")
        if b"\x00" in raw:
            raise SdpError("SDP contains NUL bytes (binary data, not a session description)")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
    elif len(text) > MAX_SDP_BYTES:
        raise SdpError(f"SDP too large: {len(text)} characters (limit {MAX_SDP_BYTES})")
    if "\x00" in text:
        raise SdpError("SDP contains NUL characters")
    text = text.lstrip("\ufeff")
    lines = text.splitlines()
    if len(lines) > MAX_SDP_LINES:
        raise SdpError(f"SDP has too many lines: {len(lines)} (limit {MAX_SDP_LINES})")

    sd = SessionDescription()
    base = strip_userinfo(base_url) if base_url else ""
    cur: MediaDescription | None = None
    rtpmaps: list[dict[int, tuple[str, int, int]]] = []
    session_control: str | None = None
    media_controls: list[str | None] = []
    seen_v = False
    any_valid = False

    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        if len(line) > MAX_LINE:
            raise SdpError(f"SDP line {lineno} too long ({len(line)} characters)")
        if len(line) < 2 or line[1] != "=":
            # tolerate junk lines some cameras add; but a document with no SDP
            # lines at all is rejected below
            continue
        t, v = line[0], line[2:].strip()
        any_valid = True
        if t == "v":
            seen_v = True
            sd.version = _int(v)
        elif t == "m":
            if len(sd.media) >= MAX_MEDIA:
                raise SdpError(f"SDP has more than {MAX_MEDIA} media sections")
            parts = v.split()
            if len(parts) < 3:
                raise SdpError(f"malformed m= line {lineno}")
            kind = parts[0].lower()
            port = _int(parts[1].split("/")[0])
            pt = _int(parts[3], -1) if len(parts) > 3 else -1
            cur = MediaDescription(
                index=len(sd.media), kind=kind, codec="unknown", payload_type=pt,
                clock_rate=0, port=port, proto=parts[2],
            )
            sd.media.append(cur)
            rtpmaps.append({})
            media_controls.append(None)
        elif t == "o" and cur is None:
            sd.origin = v
        elif t == "s" and cur is None:
            sd.name = v
        elif t == "i" and cur is None:
            sd.info = v
        elif t == "c" and cur is None:
            sd.connection = v
        elif t == "a":
            name, sep, val = v.partition(":")
            name = name.strip().lower()
            val = val.strip()
            if cur is None:
                sd.attributes.append((name, val))
                if name == "control":
                    session_control = val
                elif name == "range":
                    sd.range = val
                    sd.range_start, sd.range_end = _parse_npt(val)
                continue
            cur.attributes.append((name, val))
            if name == "rtpmap":
                pt_s, _, enc = val.partition(" ")
                pt = _int(pt_s, -1)
                enc_parts = enc.strip().split("/")
                ename = enc_parts[0].strip().upper()
                rate = _int(enc_parts[1]) if len(enc_parts) > 1 else 0
                ch = _int(enc_parts[2], 1) if len(enc_parts) > 2 else 1
                if pt >= 0 and ename:
                    rtpmaps[-1][pt] = (ename, rate, max(ch, 1))
            elif name == "fmtp":
                pt_s, _, params = val.partition(" ")
                if _int(pt_s, -1) == cur.payload_type or not cur.fmtp:
                    cur.fmtp = _parse_fmtp(params)
            elif name == "control":
                media_controls[-1] = val
            elif name in ("sendonly", "recvonly", "sendrecv", "inactive"):
                cur.direction = name
            elif name == "framerate":
                try:
                    cur.framerate = float(val)
                except ValueError:
                    pass
    if not any_valid or (not seen_v and not sd.media):
        raise SdpError("not a session description (no SDP lines found)")

    if session_control and session_control != "*":
        agg = resolve_control(base, session_control)
        if _is_absolute(session_control):
            base = agg
        sd.control = agg
    else:
        sd.control = base
    for m, rm, ctl in zip(sd.media, rtpmaps, media_controls, strict=True):
        _finish_media(m, rm)
        m.control = resolve_control(base, ctl) if ctl is not None else base
    return sd
