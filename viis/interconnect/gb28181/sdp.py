"""GB/T 28181 SDP: the offer/answer of live, playback and download INVITEs (Q12.1, N12.1).

GB SDP is RFC 4566 plus lines generic parsers reject: ``y=`` (the 10-digit SSRC) and
``f=`` (media format), with ``s=Play|Playback|Download``, ``u=<channel>:0`` and
``t=<start> <end>`` (epoch seconds) for playback, ``a=downloadspeed:n`` for download, and
``m=video <port> TCP/RTP/AVP`` with ``a=setup:active|passive`` + ``a=connection:new`` for
RTP over TCP (RFC 4571). ``parse_sdp`` is tolerant: unknown or garbage lines are kept in
``warnings`` and skipped, case and line ends vary, ``y=``/``f=`` may sit at session or media
level. Only a missing ``m=`` line (nothing to connect to) is an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_SDP = 65_536
SESSIONS = {"play": "Play", "playback": "Playback", "download": "Download", "talk": "Talk"}
DEFAULT_PAYLOADS = {96: "PS", 98: "H264", 97: "MPEG4"}
_IP_RE = re.compile(r"IN\s+IP[46]\s+(\S+)", re.IGNORECASE)


class SdpError(ValueError):
    """The SDP has nothing we can use (no ``m=`` line with a port)."""


@dataclass
class GbSdp:
    session: str = "Play"  # Play | Playback | Download | Talk
    origin_id: str = ""  # o= username: the sender's 20-digit ID
    ip: str = ""  # c= address (o= address when c= is absent)
    port: int = 0
    transport: str = "UDP"  # UDP | TCP
    setup: str | None = None  # passive | active (TCP only)
    direction: str = "recvonly"  # recvonly (the offerer receives) | sendonly | sendrecv
    payloads: dict[int, str] = field(default_factory=lambda: dict(DEFAULT_PAYLOADS))
    ssrc: str | None = None  # y=, 10 decimal digits
    f: str | None = None  # f=, e.g. v/2/4/25/1/4096a///
    u: str | None = None  # u=<channel>:0 for playback
    start: int = 0  # t= epoch seconds (0 0 for live)
    end: int = 0
    download_speed: int | None = None
    connection: str | None = None  # a=connection:new
    media: str = "video"
    warnings: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # unrecognised a= lines, kept verbatim

    @property
    def ssrc_int(self) -> int | None:
        """The value the RTP header's SSRC field carries (the decimal y= number)."""
        return int(self.ssrc) if self.ssrc and self.ssrc.isascii() and self.ssrc.isdigit() else None


def parse_sdp(text: str | bytes) -> GbSdp:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if len(text) > MAX_SDP:
        raise SdpError(f"SDP of {len(text)} characters is over the {MAX_SDP} limit")
    s = GbSdp(payloads={})
    o_ip = c_ip = ""
    seen_m = False
    proto_payloads: list[int] = []
    for n, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            s.warnings.append(f"line {n} ignored: {line[:60]!r}")
            continue
        k, v = line[0].lower(), line[2:].strip()
        try:
            if k == "o":
                parts = v.split()
                s.origin_id = parts[0] if parts else ""
                m = _IP_RE.search(v)
                o_ip = m.group(1) if m else o_ip
            elif k == "s":
                s.session = SESSIONS.get(v.lower(), v)
            elif k == "u":
                s.u = v
            elif k == "c":
                m = _IP_RE.search(v)
                if m:
                    c_ip = m.group(1).split("/")[0]
                else:
                    s.warnings.append(f"line {n}: c= without an address: {v[:60]!r}")
            elif k == "t":
                parts = v.split()
                s.start, s.end = int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
            elif k == "m":
                if seen_m:
                    s.warnings.append(f"line {n}: more than one m= line; the first is used")
                    continue
                parts = v.split()
                s.media = parts[0].lower()
                s.port = int(parts[1].split("/")[0])
                if not 0 <= s.port <= 65535:
                    raise ValueError("port out of range")
                proto = parts[2].upper() if len(parts) > 2 else "RTP/AVP"
                s.transport = "TCP" if "TCP" in proto else "UDP"
                proto_payloads = [int(p) for p in parts[3:] if p.isdigit() and int(p) < 128]
                seen_m = True
            elif k == "a":
                name, _, val = v.partition(":")
                name = name.strip().lower()
                val = val.strip()
                if name in ("recvonly", "sendonly", "sendrecv", "inactive"):
                    s.direction = name
                elif name == "rtpmap":
                    pt, _, enc = val.partition(" ")
                    s.payloads[int(pt)] = enc.split("/")[0].strip()
                elif name == "setup":
                    s.setup = val.lower() or None
                elif name == "connection":
                    s.connection = val.lower()
                elif name == "downloadspeed":
                    s.download_speed = int(val)
                else:
                    s.extra.append(v)
            elif k == "y":
                digits = v.strip()
                if not (digits.isascii() and digits.isdigit()):  # "²" passes isdigit
                    s.warnings.append(f"line {n}: y= is not decimal digits: {digits[:20]!r}")
                else:
                    if len(digits) != 10:
                        s.warnings.append(f"y={digits} has {len(digits)} digits, not 10")
                    s.ssrc = digits
            elif k == "f":
                s.f = v
            # v=, b=, i=, e=, k=, z= ... are legal and of no use to us
        except (ValueError, IndexError):
            s.warnings.append(f"line {n} unreadable: {line[:60]!r}")
    if not seen_m:
        raise SdpError("no usable m= line in the SDP")
    s.ip = c_ip or o_ip
    for pt in proto_payloads:  # payloads listed on m= without rtpmap: static names
        s.payloads.setdefault(pt, DEFAULT_PAYLOADS.get(pt, ""))
    s.payloads = {pt: s.payloads[pt] for pt in proto_payloads if pt in s.payloads} | {
        pt: enc for pt, enc in s.payloads.items() if pt not in proto_payloads
    }
    if s.transport == "TCP" and s.setup not in ("active", "passive", "actpass", None):
        s.warnings.append(f"unknown a=setup:{s.setup}")
    return s


def build_sdp(s: GbSdp) -> str:
    """SDP text with CRLF line ends in the order devices and platforms expect."""
    proto = "TCP/RTP/AVP" if s.transport.upper() == "TCP" else "RTP/AVP"
    pts = " ".join(str(p) for p in s.payloads)
    lines = [
        "v=0",
        f"o={s.origin_id} 0 0 IN IP4 {s.ip}",
        f"s={s.session}",
    ]
    if s.u:
        lines.append(f"u={s.u}")
    lines += [
        f"c=IN IP4 {s.ip}",
        f"t={s.start} {s.end}",
        f"m={s.media} {s.port} {proto} {pts}",
        f"a={s.direction}",
    ]
    lines += [f"a=rtpmap:{pt} {enc}/90000" for pt, enc in s.payloads.items()]
    if s.transport.upper() == "TCP":
        lines.append(f"a=setup:{s.setup or 'passive'}")
        lines.append(f"a=connection:{s.connection or 'new'}")
    if s.download_speed is not None:
        lines.append(f"a=downloadspeed:{s.download_speed}")
    lines += [f"a={x}" for x in s.extra]
    if s.ssrc:
        lines.append(f"y={s.ssrc}")
    if s.f is not None:
        lines.append(f"f={s.f}")
    return "\r\n".join(lines) + "\r\n"


def make_ssrc(domain: str, seq: int, playback: bool = False) -> str:
    """The 10-digit GB SSRC: ``0`` live / ``1`` playback or download, digits 4–8 of the SIP
    domain, then a 4-digit sequence (wraps at 10,000)."""
    d = re.sub(r"\D", "", domain).ljust(8, "0")
    return ("1" if playback else "0") + d[3:8] + f"{seq % 10_000:04d}"
