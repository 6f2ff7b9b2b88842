"""SIP message model (RFC 3261 §7, §20, §25): parse and build requests and responses.

Tolerant where GB/T 28181 devices bend the rules: header names in any case and compact
form, LF-only line ends, folded lines, a missing or wrong Content-Length (a UDP datagram is
the message, so its end is trusted), header values and bodies in GB2312/GBK/GB18030 whether
declared or not. Strict where input is hostile: size, header-count and line-length limits
are checked before any work proportional to them, and every failure is a ``SipParseError``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

MAX_MESSAGE = 65_535  # the largest UDP payload; TCP frames are held to the same bound
MAX_HEADERS = 200
MAX_LINE = 8_192
MAX_HEAD = 32_768  # start line + headers

COMPACT = {
    "i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
    "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
    "v": "via", "o": "event", "u": "allow-events", "r": "refer-to", "x": "session-expires",
}
CANONICAL = {
    "call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version", "max-forwards": "Max-Forwards",
}
REASONS = {
    100: "Trying", 180: "Ringing", 200: "OK", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    415: "Unsupported Media Type", 423: "Interval Too Brief", 481: "Call/Transaction Does Not Exist",
    480: "Temporarily Unavailable", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 603: "Decline", 500: "Server Internal Error",
    501: "Not Implemented", 503: "Service Unavailable",
}
# Headers whose comma-separated values are separate entries (RFC 3261 §7.3.1).
_MULTI = {"via", "contact", "route", "record-route", "allow", "supported", "require"}
_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_STATUS_LINE = re.compile(r"^SIP/2\.0\s+(\d{3})(?:\s+(.*))?$", re.IGNORECASE)
_REQUEST_LINE = re.compile(r"^([A-Za-z0-9\-.!%*_+`'~]+)\s+(\S+)\s+SIP/2\.0$", re.IGNORECASE)
BRANCH_MAGIC = "z9hG4bK"


class SipParseError(ValueError):
    """The bytes are not a SIP message we accept; ``reason`` is short and safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Header names repeat in every message: memoised (bounded, so hostile names cannot grow it).
_NORM: dict[str, str] = {}
_CANON: dict[str, str] = {}
_NAME_CACHE_MAX = 512


def norm_name(name: str) -> str:
    """Lower-case long form of a header name (compact forms expanded)."""
    n = _NORM.get(name)
    if n is None:
        n = name.strip().lower()
        n = COMPACT.get(n, n)
        if len(_NORM) < _NAME_CACHE_MAX:
            _NORM[name] = n
    return n


def canonical_name(name: str) -> str:
    c = _CANON.get(name)
    if c is None:
        n = norm_name(name)
        c = CANONICAL.get(n, "-".join(p.capitalize() for p in n.split("-")))
        if len(_CANON) < _NAME_CACHE_MAX:
            _CANON[name] = c
    return c


def decode_text(data: bytes, charset: str | None = None) -> tuple[str, str]:
    """Decode bytes from a device: UTF-8 if valid, else the declared charset, else GB18030.

    GB18030 is a superset of GB2312 and GBK, so text declared GB2312 that uses rarer
    characters still decodes. Returns (text, charset actually used). Raises
    ``UnicodeDecodeError`` only if nothing fits.
    """
    # UTF-8 first: it is self-validating, so GBK text almost never passes as UTF-8, while
    # GB18030 accepts nearly any byte string (UTF-8 declared as GB2312 would turn to mojibake).
    tried: list[str] = ["utf-8"]
    if charset:
        c = charset.strip().strip('"').lower()
        if c in ("gb2312", "gbk", "gb18030", "gb_2312-80", "euc-cn"):
            c = "gb18030"
        tried.append(c)
    for c in ("utf-8", "gb18030"):
        if c not in tried:
            tried.append(c)
    last: UnicodeDecodeError | None = None
    for c in tried:
        try:
            return data.decode(c), c
        except (UnicodeDecodeError, LookupError) as e:  # LookupError: unknown charset name
            if isinstance(e, UnicodeDecodeError):
                last = e
    assert last is not None
    raise last


def split_commas(value: str) -> list[str]:
    """Split on commas outside quotes and <...>."""
    if "," not in value:  # the common case (one Via, one Contact): no scan
        v = value.strip()
        return [v] if v else []
    if '"' not in value and "<" not in value:
        return [p for p in (x.strip() for x in value.split(",")) if p]
    out, cur, quote, angle = [], [], False, False
    for ch in value:
        if ch == '"':
            quote = not quote
        elif ch == "<" and not quote:
            angle = True
        elif ch == ">" and not quote:
            angle = False
        if ch == "," and not quote and not angle:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    tail = "".join(cur).strip()
    if tail:
        out.append(tail)
    return [p for p in out if p]


def parse_params(text: str) -> dict[str, str]:
    """``;a=b;c`` → {'a': 'b', 'c': ''} (names lower-cased, quotes kept off)."""
    params: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        k, _, v = part.partition("=")
        params[k.strip().lower()] = v.strip().strip('"')
    return params


@dataclass
class SipUri:
    scheme: str = "sip"
    user: str = ""
    host: str = ""
    port: int | None = None
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SipUri:
        t = text.strip().strip("<>")
        scheme, sep, rest = t.partition(":")
        if not sep or scheme.lower() not in ("sip", "sips", "tel"):
            raise SipParseError(f"bad URI {text[:60]!r}")
        rest, _, hdrs = rest.partition("?")
        hostpart, _, ptext = rest.partition(";")
        user = ""
        if "@" in hostpart:
            user, _, hostpart = hostpart.rpartition("@")
            user = user.split(":", 1)[0]  # drop a password part
        host, port = split_hostport(hostpart)
        return cls(scheme.lower(), user, host, port, parse_params(ptext))

    def __str__(self) -> str:
        s = f"{self.scheme}:"
        if self.user:
            s += f"{self.user}@"
        s += self.host if ":" not in self.host else f"[{self.host}]"
        if self.port:
            s += f":{self.port}"
        for k, v in self.params.items():
            s += f";{k}={v}" if v else f";{k}"
        return s


def split_hostport(text: str) -> tuple[str, int | None]:
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = text.partition(":")
    try:
        p = int(port) if port else None
    except ValueError as e:
        raise SipParseError(f"bad port {port[:10]!r}") from e
    if p is not None and not 0 < p < 65536:
        raise SipParseError(f"bad port {p}")
    return host, p


@dataclass
class Address:
    """A name-addr / addr-spec with header params (From, To, Contact)."""

    uri: SipUri
    display: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Address:
        t = text.strip()
        if "<" in t:
            display, _, rest = t.partition("<")
            uri, _, ptext = rest.partition(">")
            return cls(SipUri.parse(uri), display.strip().strip('"'), parse_params(ptext))
        uri, _, ptext = t.partition(";")
        return cls(SipUri.parse(uri), "", parse_params(ptext))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        s = f'"{self.display}" ' if self.display else ""
        s += f"<{self.uri}>"
        for k, v in self.params.items():
            s += f";{k}={v}" if v else f";{k}"
        return s


@dataclass
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Via:
        m = re.match(r"^\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z]+)\s+([^;\s]+)\s*(.*)$", text, re.I)
        if not m:
            raise SipParseError(f"bad Via {text[:60]!r}")
        host, port = split_hostport(m.group(2))
        return cls(m.group(1).upper(), host, port, parse_params(m.group(3)))

    @property
    def branch(self) -> str:
        return self.params.get("branch", "")

    @property
    def sent_by(self) -> tuple[str, int]:
        return self.host, self.port or 5060

    def __str__(self) -> str:
        s = f"SIP/2.0/{self.transport} {self.host}"
        if self.port:
            s += f":{self.port}"
        for k, v in self.params.items():
            s += f";{k}={v}" if v else f";{k}"
        return s


class Headers:
    """Ordered, case-insensitive headers; names kept as received, compact forms expanded."""

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = []
        self._keys: list[str] = []  # norm_name of each item, kept in step with _items
        for k, v in items or []:
            self.add(k, v)

    def add(self, name: str, value: str) -> None:
        self._items.append((canonical_name(name), str(value)))
        self._keys.append(norm_name(name))

    def set(self, name: str, value: str) -> None:
        n = norm_name(name)
        idx = self._keys.index(n) if n in self._keys else None
        self.remove(name)
        item = (canonical_name(name), str(value))
        if idx is None:
            self._items.append(item)
            self._keys.append(n)
        else:
            self._items.insert(idx, item)
            self._keys.insert(idx, n)

    def remove(self, name: str) -> None:
        n = norm_name(name)
        if n not in self._keys:
            return
        keep = [i for i, k in enumerate(self._keys) if k != n]
        self._items = [self._items[i] for i in keep]
        self._keys = [self._keys[i] for i in keep]

    def get(self, name: str, default: str | None = None) -> str | None:
        n = norm_name(name)
        try:
            return self._items[self._keys.index(n)][1]
        except ValueError:
            return default

    def getall(self, name: str) -> list[str]:
        n = norm_name(name)
        out: list[str] = []
        multi = n in _MULTI
        for k, (_, v) in zip(self._keys, self._items, strict=True):
            if k == n:
                out.extend(split_commas(v) if multi else [v])
        return out

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)


class SipMessage:
    headers: Headers
    body: bytes
    # Set by the transport on receipt:
    source: tuple[str, int] | None = None
    transport: str = "UDP"
    # Notes for diagnostics (e.g. 'content-length larger than datagram').
    warnings: list[str]

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers or Headers()
        self.body = body
        self.warnings = []

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    @property
    def call_id(self) -> str:
        return self.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        raw = (self.get("CSeq") or "").split()
        if len(raw) != 2 or not (raw[0].isascii() and raw[0].isdigit()):  # "²" is a digit to isdigit
            raise SipParseError("bad CSeq")
        return int(raw[0]), raw[1].upper()

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.getall("Via")]

    @property
    def top_via(self) -> Via:
        vias = self.headers.getall("Via")
        if not vias:
            raise SipParseError("no Via")
        return Via.parse(vias[0])

    @property
    def from_(self) -> Address:
        return Address.parse(self.get("From") or "")

    @property
    def to(self) -> Address:
        return Address.parse(self.get("To") or "")

    @property
    def content_type(self) -> str:
        return (self.get("Content-Type") or "").split(";")[0].strip().lower()

    @property
    def charset(self) -> str | None:
        ct = self.get("Content-Type") or ""
        return parse_params(ct.partition(";")[2]).get("charset")

    def body_text(self) -> str:
        """Body as text: Content-Type charset, else the XML declaration, else UTF-8/GB18030."""
        cs = self.charset
        if not cs:
            m = re.match(rb'\s*<\?xml[^>]*encoding\s*=\s*["\']([A-Za-z0-9_\-]+)', self.body)
            cs = m.group(1).decode() if m else None
        return decode_text(self.body, cs)[0]

    def start_line(self) -> str:
        raise NotImplementedError

    def encode(self) -> bytes:
        self.headers.set("Content-Length", str(len(self.body)))
        lines = [self.start_line()] + [f"{k}: {v}" for k, v in self.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body

    __bytes__ = encode


class SipRequest(SipMessage):
    def __init__(self, method: str, uri: str, headers: Headers | None = None, body: bytes = b""):
        super().__init__(headers, body)
        self.method = method.upper()
        self.uri = uri

    def start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"

    def __repr__(self) -> str:
        return f"<SipRequest {self.method} {self.uri}>"


class SipResponse(SipMessage):
    def __init__(self, status: int, reason: str = "", headers: Headers | None = None, body=b""):
        super().__init__(headers, body)
        self.status = status
        self.reason = reason or REASONS.get(status, "")

    def start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<SipResponse {self.status} {self.reason}>"


def _find_head_end(data: bytes) -> tuple[int, int] | None:
    """(end of headers, start of body) for CRLFCRLF or LF-only LFLF, whichever comes first."""
    a = data.find(b"\r\n\r\n")
    b = data.find(b"\n\n")
    cands = [(i, i + 4) for i in [a] if i >= 0] + [(i, i + 2) for i in [b] if i >= 0]
    return min(cands) if cands else None


def head_length(data: bytes) -> tuple[int, int] | None:
    """For stream framing: (body start, Content-Length) once the head is complete."""
    he = _find_head_end(data[: MAX_HEAD + 4])
    if he is None:
        if len(data) > MAX_HEAD:
            raise SipParseError("header section too large")
        return None
    cl = 0
    for line in data[: he[0]].split(b"\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and norm_name(name.decode("latin-1")) == "content-length":
            v = value.strip()
            if not v.isdigit() or len(v) > 7:
                raise SipParseError("bad Content-Length")
            cl = int(v)
    if he[1] + cl > MAX_MESSAGE:
        raise SipParseError("message too large")
    return he[1], cl


def parse(data: bytes, *, datagram: bool = True) -> SipRequest | SipResponse:
    """Parse one message. For a datagram the payload end is the message end."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SipParseError("not bytes")
    data = bytes(data)
    if len(data) > MAX_MESSAGE:
        raise SipParseError("message too large")
    data = data.lstrip(b"\r\n")  # RFC 3261 §7.5: ignore leading CRLFs (keepalive pings)
    if not data:
        raise SipParseError("empty")
    he = _find_head_end(data[: MAX_HEAD + 4])
    if he is None:
        if len(data) > MAX_HEAD:
            raise SipParseError("header section too large")
        # Everything is head (no blank line): accept for datagrams, like many stacks do.
        if not datagram:
            raise SipParseError("incomplete header section")
        head, body = data, b""
    else:
        head, body = data[: he[0]], data[he[1] :]
    if b"\x00" in head:
        raise SipParseError("NUL in header section")
    if head.count(b"\n") > MAX_HEADERS + 1:
        raise SipParseError("too many headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = head.decode("gb18030")  # Chinese display names sent in GBK
        except UnicodeDecodeError as e:
            raise SipParseError("undecodable header bytes") from e
    raw_lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    first = raw_lines[0].strip()
    if len(first) > MAX_LINE:
        raise SipParseError("start line too long")
    # Unfold continuation lines (RFC 3261 §7.3.1).
    lines: list[str] = []
    for ln in raw_lines[1:]:
        if len(ln) > MAX_LINE:
            raise SipParseError("header line too long")
        if ln[:1] in (" ", "\t") and lines:
            lines[-1] += " " + ln.strip()
        elif ln.strip():
            lines.append(ln)
    headers = Headers()
    for ln in lines:
        name, sep, value = ln.partition(":")
        name = name.strip()
        if not sep or not _TOKEN.match(name):
            raise SipParseError(f"bad header line {ln[:40]!r}")
        headers.add(name, value.strip())
    msg: SipRequest | SipResponse
    m = _STATUS_LINE.match(first)
    if m:
        msg = SipResponse(int(m.group(1)), (m.group(2) or "").strip(), headers)
        if not 100 <= msg.status <= 699:
            raise SipParseError("bad status code")
    else:
        m = _REQUEST_LINE.match(first)
        if not m:
            raise SipParseError(f"bad start line {first[:40]!r}")
        msg = SipRequest(m.group(1), m.group(2), headers)
    for required in ("Via", "From", "To", "Call-ID", "CSeq"):
        if required not in headers:
            raise SipParseError(f"missing {required}")
    msg.cseq  # noqa: B018  validates
    cl_text = headers.get("Content-Length")
    if cl_text is not None:
        try:
            cl = int(cl_text.strip())
        except ValueError:
            if not datagram:
                raise SipParseError("bad Content-Length") from None
            msg.warnings.append("unparseable Content-Length; used the datagram length")
            cl = len(body)
        if cl < 0:
            raise SipParseError("bad Content-Length")
        if cl < len(body):
            if datagram and body[cl:].strip():
                # A wrong (short) Content-Length from a device: the datagram is the message.
                msg.warnings.append(
                    f"Content-Length {cl} smaller than the datagram body {len(body)}; kept the datagram"
                )
            else:
                body = body[:cl]
        elif cl > len(body):
            if not datagram:
                raise SipParseError("body shorter than Content-Length")
            msg.warnings.append(
                f"Content-Length {cl} larger than the datagram body {len(body)}; trusted the datagram"
            )
    msg.body = body
    return msg


def new_branch() -> str:
    return BRANCH_MAGIC + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(5)


def make_response(
    req: SipRequest, status: int, reason: str = "", *, to_tag: str | None = None
) -> SipResponse:
    """A response copying Via, From, To (adding a tag), Call-ID and CSeq (RFC 3261 §8.2.6)."""
    resp = SipResponse(status, reason)
    for v in req.headers.getall("Via"):
        resp.headers.add("Via", v)
    resp.headers.add("From", req.get("From") or "")
    to = req.get("To") or ""
    if status > 100 and ";tag=" not in to.replace(" ", "").lower():
        to += f";tag={to_tag or new_tag()}"
    resp.headers.add("To", to)
    resp.headers.add("Call-ID", req.call_id)
    resp.headers.add("CSeq", req.get("CSeq") or "")
    return resp
