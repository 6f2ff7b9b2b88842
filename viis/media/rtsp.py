"""RTSP client (RFC 2326) for recording cameras: asyncio, RTP over TCP interleaved.

One TCP connection per camera carries RTSP requests/responses and the
interleaved ``$``-framed RTP/RTCP packets (RFC 2326 §10.12).  The connection is
an :class:`asyncio.BufferedProtocol` that receives straight into one fixed
256 KiB ``bytearray`` and parses frames in place (``memoryview``/``struct``), so
memory per camera is bounded and no per-read ``bytes`` objects are made.

Typical use (hot path, recorder)::

    session = RtspSession(url, on_unit=writer.put, stall_timeout=10)
    await session.start()          # OPTIONS, DESCRIBE, SETUP..., PLAY
    await session.wait_closed()    # raises what ended the session

or, for tests and diagnosis::

    async with RtspSession(url) as s:
        async for unit in s: ...

Credentials (from the URL userinfo or ``username``/``password``) are never put
in exception messages, log lines or reprs; URLs are shown as
``rtsp://***@host/...``.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import logging
import os
import re
import socket
import time
import weakref
from collections.abc import Callable
from urllib.parse import quote, unquote, urlsplit

from viis.media.rtp import AccessUnit, RtpStream
from viis.media.sdp import (
    MediaDescription,
    SdpError,
    SessionDescription,
    parse_sdp,
    strip_userinfo,
)

__all__ = [
    "ConnectionLost",
    "RtspAuthError",
    "RtspClient",
    "RtspConnectError",
    "RtspConnectionLost",
    "RtspError",
    "RtspProtocolError",
    "RtspResponse",
    "RtspSession",
    "RtspStall",
    "RtspStatusError",
    "RtspTimeout",
    "RtspTooLarge",
    "mask_url",
]

log = logging.getLogger(__name__)

BUFFER_SIZE = 256 * 1024
MAX_HEADER = 16 * 1024
MAX_BODY = 128 * 1024
MAX_GARBAGE_PER_TICK = 64 * 1024
DEFAULT_PORT = 554
USER_AGENT = "VIIS-recorder/0.1"


# --------------------------------------------------------------------------
# errors


class RtspError(Exception):
    """Base class; messages never contain credentials."""


class RtspConnectError(RtspError, ConnectionError):
    """The TCP connection could not be made."""


class RtspTimeout(RtspError, TimeoutError):
    """A step (connect, a request) did not finish in time."""

    def __init__(self, msg: str, step: str = ""):
        super().__init__(msg)
        self.step = step


class RtspStall(RtspTimeout):
    """No RTP packet arrived for ``stall_timeout`` seconds while playing."""


class RtspConnectionLost(RtspError, ConnectionError):
    """The server closed or reset the connection."""


ConnectionLost = RtspConnectionLost


class RtspProtocolError(RtspError):
    """The server spoke something that is not (acceptable) RTSP."""

    def __init__(self, msg: str, status_line: str | None = None):
        super().__init__(msg)
        self.status_line = status_line


class RtspTooLarge(RtspProtocolError):
    """Header, body or garbage exceeded a limit."""


class RtspStatusError(RtspProtocolError):
    """A request was answered with a non-success status."""

    def __init__(self, msg: str, status: int, reason: str, method: str, status_line: str):
        super().__init__(msg, status_line)
        self.status = status
        self.reason = reason
        self.method = method


class RtspAuthError(RtspError):
    """Authentication needed but no credentials, or credentials rejected."""

    def __init__(self, msg: str, status_line: str | None = None):
        super().__init__(msg)
        self.status_line = status_line


# --------------------------------------------------------------------------
# URLs and credentials

_SECRET_QUERY = re.compile(r"(?i)((?:password|passwd|pwd|pass|user|username|token|auth)=)[^&#]*")


def mask_url(url: str) -> str:
    """URL for display: userinfo -> ``***``, secret-looking query values -> ``***``."""
    clean = strip_userinfo(url)
    if clean != url:
        i = clean.find("://")
        clean = clean[: i + 3] + "***@" + clean[i + 3 :]
    return _SECRET_QUERY.sub(r"\1***", clean)


class _Url:
    __slots__ = ("url", "host", "port", "username", "password")

    def __init__(self, url: str, username: str | None, password: str | None):
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise RtspError(f"invalid RTSP URL: {mask_url(url)}") from None
        if parts.scheme.lower() not in ("rtsp", "rtspt"):
            raise RtspError(f"unsupported URL scheme {parts.scheme!r} (only rtsp:// over TCP)")
        if not parts.hostname:
            raise RtspError(f"RTSP URL without host: {mask_url(url)}")
        self.host = parts.hostname
        self.port = port or DEFAULT_PORT
        self.username = username if username is not None else (
            unquote(parts.username) if parts.username is not None else None)
        self.password = password if password is not None else (
            unquote(parts.password) if parts.password is not None else None)
        u = strip_userinfo(url)
        if parts.scheme.lower() == "rtspt":
            u = "rtsp" + u[5:]
        self.url = u


def _safe_line(text: str, limit: int = 200) -> str:
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text[:limit])
    return text


# --------------------------------------------------------------------------
# messages


class RtspResponse:
    __slots__ = ("status", "reason", "status_line", "headers", "body")

    def __init__(self, status: int, reason: str, status_line: str,
                 headers: dict[str, list[str]], body: bytes):
        self.status = status
        self.reason = reason
        self.status_line = status_line
        self.headers = headers
        self.body = body

    def get(self, name: str, default: str | None = None) -> str | None:
        v = self.headers.get(name.lower())
        return v[-1] if v else default

    def get_all(self, name: str) -> list[str]:
        return self.headers.get(name.lower(), [])

    def __repr__(self) -> str:
        return f"RtspResponse({_safe_line(self.status_line)!r}, body={len(self.body)}B)"


class _Request:
    __slots__ = ("method", "uri", "headers")

    def __init__(self, method, uri, headers):
        self.method = method
        self.uri = uri
        self.headers = headers


_REQ_START = re.compile(rb"[A-Z_]{3,20} ")
_RTSP_PREFIX = b"RTSP/1."


def _parse_head(text: str) -> tuple[str, dict[str, list[str]]]:
    lines = text.split("\n")
    first = lines[0].strip()
    headers: dict[str, list[str]] = {}
    last: str | None = None
    for line in lines[1:]:
        line = line.rstrip("\r")
        if not line.strip():
            continue
        if line[0] in " \t" and last is not None:  # folded continuation
            headers[last][-1] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        last = name.strip().lower()
        headers.setdefault(last, []).append(value.strip())
    return first, headers


# --------------------------------------------------------------------------
# authentication

_AUTH_PARAM = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def _parse_challenges(values: list[str]) -> list[tuple[str, dict[str, str]]]:
    out = []
    for v in values:
        # a header may hold several challenges: split at scheme tokens
        for m in re.finditer(r"(?i)(basic|digest)\b((?:(?!\b(?:basic|digest)\s).)*)", v):
            params = {}
            for pm in _AUTH_PARAM.finditer(m.group(2)):
                q = pm.group(2)
                val = q.replace('\\"', '"') if q is not None else pm.group(3)
                params[pm.group(1).lower()] = val
            out.append((m.group(1).lower(), params))
    return out


class _Auth:
    __slots__ = ("username", "password", "scheme", "realm", "nonce", "opaque", "qop",
                 "algorithm", "nc", "cnonce")

    def __init__(self, username: str | None, password: str | None):
        self.username = username
        self.password = password
        self.scheme: str | None = None
        self.realm = self.nonce = self.opaque = ""
        self.qop: str | None = None
        self.algorithm = "MD5"
        self.nc = 0
        self.cnonce = ""

    @property
    def has_credentials(self) -> bool:
        return self.username is not None

    def update(self, resp: RtspResponse) -> bool:
        """Take the challenge of a 401; returns the ``stale`` flag."""
        chals = _parse_challenges(resp.get_all("www-authenticate"))
        digest = [p for s, p in chals if s == "digest"
                  and p.get("algorithm", "MD5").upper() in ("MD5", "MD5-SESS", "SHA-256")]
        if digest:
            p = digest[0]
            self.scheme = "digest"
            self.realm = p.get("realm", "")
            if p.get("nonce", "") != self.nonce:
                self.nc = 0
            self.nonce = p.get("nonce", "")
            self.opaque = p.get("opaque", "")
            self.algorithm = p.get("algorithm", "MD5").upper()
            qops = [q.strip().lower() for q in p.get("qop", "").split(",") if q.strip()]
            self.qop = "auth" if "auth" in qops else None
            self.cnonce = os.urandom(8).hex()
            return p.get("stale", "").lower() == "true"
        if any(s == "basic" for s, _ in chals):
            self.scheme = "basic"
            return False
        raise RtspAuthError("server answered 401 without a supported challenge (Basic/Digest)",
                            _safe_line(resp.status_line))

    def _h(self, s: str) -> str:
        if self.algorithm == "SHA-256":
            return hashlib.sha256(s.encode("utf-8")).hexdigest()
        return hashlib.md5(s.encode("utf-8")).hexdigest()

    def header(self, method: str, uri: str) -> str | None:
        if self.scheme is None or self.username is None:
            return None
        user, pw = self.username, self.password or ""
        if self.scheme == "basic":
            tok = base64.b64encode(f"{user}:{pw}".encode()).decode("ascii")
            return f"Basic {tok}"
        ha1 = self._h(f"{user}:{self.realm}:{pw}")
        if self.algorithm == "MD5-SESS":
            ha1 = self._h(f"{ha1}:{self.nonce}:{self.cnonce}")
        ha2 = self._h(f"{method}:{uri}")
        parts = [f'username="{user}"', f'realm="{self.realm}"', f'nonce="{self.nonce}"',
                 f'uri="{uri}"']
        if self.qop:
            self.nc += 1
            nc = f"{self.nc:08x}"
            resp = self._h(f"{ha1}:{self.nonce}:{nc}:{self.cnonce}:auth:{ha2}")
            parts += [f'response="{resp}"', "qop=auth", f"nc={nc}", f'cnonce="{self.cnonce}"']
        else:
            resp = self._h(f"{ha1}:{self.nonce}:{ha2}")
            parts.append(f'response="{resp}"')
        if self.algorithm != "MD5":
            parts.append(f"algorithm={self.algorithm}")
        if self.opaque:
            parts.append(f'opaque="{self.opaque}"')
        return "Digest " + ", ".join(parts)

    def __repr__(self) -> str:
        return f"<_Auth scheme={self.scheme} user={'***' if self.username else None}>"


# --------------------------------------------------------------------------
# connection protocol (hot path)


class _Pacer:
    """Read pacing shared by all connections of one event loop.

    A playing connection pauses reading after each read; one timer per loop and
    interval resumes all paused connections together.  Data waits in the
    kernel socket buffer meanwhile, so each wakeup reads a larger batch for
    all cameras at once: far fewer loop iterations and syscalls per stream
    than reading every TCP segment as it arrives (costs up to ``interval`` of
    extra latency).
    """

    _by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @classmethod
    def get(cls, interval: float) -> _Pacer:
        loop = asyncio.get_running_loop()
        per = cls._by_loop.setdefault(loop, {})
        p = per.get(interval)
        if p is None:
            p = per[interval] = cls(loop, interval)
        return p

    def __init__(self, loop, interval: float):
        self.loop = loop
        self.interval = interval
        self.paused: list[_Conn] = []
        self.handle = None

    def add(self, conn: _Conn) -> None:
        self.paused.append(conn)
        if self.handle is None:
            self.handle = self.loop.call_later(self.interval, self._tick)

    def _tick(self) -> None:
        self.handle = None
        paused, self.paused = self.paused, []
        for c in paused:
            t = c.transport
            if t is not None and not t.is_closing():
                t.resume_reading()


class _Conn(asyncio.BufferedProtocol):
    def __init__(self, session: RtspSession):
        self.session = session
        self.buf = bytearray(BUFFER_SIZE)
        self.mv = memoryview(self.buf)
        self.r = 0
        self.w = 0
        self.chan: list = [None] * 256
        self.transport: asyncio.Transport | None = None
        self.pending: dict[int, asyncio.Future] = {}
        self.streaming = False
        self.garbage = 0  # garbage bytes since the last housekeeping tick
        self.garbage_total = 0
        self.unknown_channel = 0
        self.dead = False
        self._msg_cache = None  # (header_len, body_len, message) waiting for its body
        self.offered = 0
        self.pace = _Pacer.get(session.read_interval) if session.read_interval > 0 else None

    # asyncio callbacks ------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def get_buffer(self, sizehint):
        self.offered = BUFFER_SIZE - self.w
        return self.mv[self.w:]

    def buffer_updated(self, nbytes):
        self.w = w = self.w + nbytes
        buf = self.buf
        mv = self.mv
        chan = self.chan
        r = self.r
        try:
            while r < w:
                if buf[r] == 0x24:
                    if w - r < 4:
                        break
                    end = r + 4 + ((buf[r + 2] << 8) | buf[r + 3])
                    if end > w:
                        break
                    h = chan[buf[r + 1]]
                    if h is not None:
                        h(mv, r + 4, end)
                    else:
                        self.unknown_channel += 1
                        self._garbage(end - r)
                    r = end
                else:
                    nr = self._text(r, w)
                    if nr < 0:
                        break
                    r = nr
        except Exception as exc:  # protocol errors, or the on_unit callback failing
            self.r = self.w = 0
            self.dead = True
            self.session._fail(exc)
            return
        if r == w:
            self.r = self.w = 0
        else:
            self.r = r
            if BUFFER_SIZE - w < 70000:
                n = w - r
                self.buf[0:n] = bytes(self.mv[r:w])
                self.r = 0
                self.w = n
        if self.pace is not None and self.streaming and nbytes < self.offered:
            # batch reads: let the kernel queue data until the next pacer tick
            self.transport.pause_reading()
            self.pace.add(self)

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.dead = True
        self.session._on_conn_lost(self, exc)

    # text messages ----------------------------------------------------------
    def _garbage(self, n: int) -> None:
        self.garbage += n
        self.garbage_total += n
        if self.garbage > MAX_GARBAGE_PER_TICK:
            raise RtspTooLarge(
                f"lost interleaved framing: {self.garbage} bytes of unparseable data")

    def _text(self, r: int, w: int) -> int:
        buf = self.buf
        cached = self._msg_cache
        if cached is None:
            n = w - r
            head = bytes(buf[r:r + 21])
            ok = head.startswith(_RTSP_PREFIX) or _REQ_START.match(head) is not None
            if not ok and n < 21:
                # may still become a message start once more bytes arrive
                if _RTSP_PREFIX.startswith(head[:7]) or re.fullmatch(rb"[A-Z_]*", head):
                    return -1
            if not ok:
                if self.streaming:
                    nxt = buf.find(b"$", r + 1, w)
                    skip = (nxt if nxt >= 0 else w) - r
                    self._garbage(skip)
                    return r + skip
                raise RtspProtocolError(
                    f"server sent data that is not RTSP: {_safe_line(head.decode('latin-1'), 24)!r}")
            lim = min(w, r + MAX_HEADER)
            a = buf.find(b"\n\r\n", r, lim)
            b = buf.find(b"\n\n", r, lim)
            if a < 0 and b < 0:
                if w - r >= MAX_HEADER:
                    raise RtspTooLarge(f"RTSP message header exceeds {MAX_HEADER} bytes")
                return -1
            he = (a + 3) if (b < 0 or (0 <= a < b)) else (b + 2)
            first, headers = _parse_head(bytes(buf[r:he]).decode("latin-1"))
            cl = headers.get("content-length")
            try:
                clen = int(cl[-1]) if cl else 0
            except ValueError:
                raise RtspProtocolError(
                    f"invalid Content-Length {_safe_line(cl[-1], 30)!r}") from None
            if clen < 0 or clen > MAX_BODY:
                raise RtspTooLarge(f"RTSP message body of {clen} bytes exceeds {MAX_BODY}")
            cached = (he - r, clen, first, headers)
        hl, clen, first, headers = cached
        if r + hl + clen > w:
            self._msg_cache = cached
            return -1
        self._msg_cache = None
        body = bytes(buf[r + hl:r + hl + clen]) if clen else b""
        if first.startswith("RTSP/"):
            parts = first.split(None, 2)
            try:
                status = int(parts[1])
            except (IndexError, ValueError):
                raise RtspProtocolError("malformed RTSP status line",
                                        _safe_line(first)) from None
            resp = RtspResponse(status, parts[2] if len(parts) > 2 else "", first, headers, body)
            self._dispatch(resp)
        else:
            parts = first.split()
            self.session._on_server_request(
                self, _Request(parts[0], parts[1] if len(parts) > 1 else "", headers))
        self.garbage = 0
        return r + hl + clen

    def _dispatch(self, resp: RtspResponse) -> None:
        cseq = resp.get("cseq")
        fut = None
        if cseq is not None:
            try:
                fut = self.pending.pop(int(cseq.strip()), None)
            except ValueError:
                fut = None
        elif self.pending:  # broken servers omit CSeq: oldest request
            fut = self.pending.pop(next(iter(self.pending)))
        if fut is not None and not fut.done():
            fut.set_result(resp)
        else:
            log.debug("unsolicited RTSP response %s", _safe_line(resp.status_line))

    def write(self, data: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(data)

    def close(self, abort: bool = False) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.abort() if abort else t.close()


# --------------------------------------------------------------------------
# session


def _select(spec, media: MediaDescription) -> bool:
    if spec is None:
        return media.supported and media.kind in ("video", "audio")
    if callable(spec):
        return bool(spec(media))
    for s in spec:
        if isinstance(s, int) and not isinstance(s, bool):
            if s == media.index:
                return True
        elif s == media.kind and media.supported:
            return True
        elif s == media.codec:
            return True
    return False


class RtspSession:
    """One RTSP session (one TCP connection) receiving the selected streams.

    Parameters: ``url`` (``rtsp://[user:pass@]host[:port]/path``);
    ``username``/``password`` override the URL userinfo; ``timeout`` bounds
    connect and every request; ``stall_timeout`` is how long playing may go
    without any RTP packet; ``media`` selects streams (kinds such as ``'video'``,
    codecs, stream indices, or a predicate; default: all supported video and
    audio); ``on_unit`` receives every :class:`AccessUnit` (hot path), without it
    units are queued for ``async for`` (at most ``queue_size``, oldest dropped);
    ``wall_clock`` returns UTC milliseconds; ``wait_keyframe`` drops video until
    a keyframe at start and after loss.
    """

    def __init__(self, url: str, *, username: str | None = None, password: str | None = None,
                 timeout: float = 10.0, stall_timeout: float = 10.0,
                 keepalive_interval: float | None = None, rtcp_interval: float = 5.0,
                 media=None, on_unit: Callable[[AccessUnit], None] | None = None,
                 wall_clock: Callable[[], int] | None = None, wait_keyframe: bool = True,
                 user_agent: str = USER_AGENT, max_redirects: int = 3,
                 queue_size: int = 1024, read_interval: float = 0.1):
        self._u = _Url(url, username, password)
        self._auth = _Auth(self._u.username, self._u.password)
        self.timeout = timeout
        self.stall_timeout = stall_timeout
        self.keepalive_interval = keepalive_interval
        self.rtcp_interval = rtcp_interval
        self._media_spec = media
        self._on_unit = on_unit
        self._wall_clock = wall_clock
        self._wait_keyframe = wait_keyframe
        self.user_agent = user_agent
        self.max_redirects = max_redirects
        self.queue_size = queue_size
        self.read_interval = read_interval
        self._queue: collections.deque[AccessUnit] = collections.deque()
        self._waiter: asyncio.Future | None = None
        self.queue_drops = 0
        self._conn: _Conn | None = None
        self._cseq = 0
        self.session_id: str | None = None
        self.session_timeout = 60
        self.public_methods: set[str] = set()
        self.sdp: SessionDescription | None = None
        self.base_url = ""
        self.streams: list[RtpStream] = []
        self.rtp_info: str | None = None
        self.state = "init"
        self._exc: BaseException | None = None
        self._closed: asyncio.Future | None = None
        self._tasks: set[asyncio.Task] = set()
        self._housekeeper: asyncio.Task | None = None
        self._use_get_parameter = False
        self.keepalives = 0
        self.keepalive_failures = 0
        self.rr_sent = 0
        self.started_mono: float | None = None

    # -- public ------------------------------------------------------------
    @property
    def url(self) -> str:
        """The URL for display (credentials masked)."""
        u = self._u.url
        if self._u.username is not None:
            i = u.find("://")
            u = u[: i + 3] + "***@" + u[i + 3 :]
        return _SECRET_QUERY.sub(r"\1***", u)

    def __repr__(self) -> str:
        return f"<RtspSession {self.url} state={self.state} streams={len(self.streams)}>"

    async def __aenter__(self) -> RtspSession:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def __aiter__(self):
        if self._on_unit is not None:
            raise TypeError("units go to on_unit; async iteration needs on_unit=None")
        return self

    async def __anext__(self) -> AccessUnit:
        q = self._queue
        while True:
            if q:
                return q.popleft()
            if self.state == "closed":
                if self._exc is not None:
                    raise self._exc
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def start(self) -> RtspSession:
        """Connect, OPTIONS, DESCRIBE (following redirects), SETUP, PLAY."""
        if self.state != "init":
            raise RtspError(f"session already {self.state}")
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        self.state = "starting"
        try:
            await self._start()
        except BaseException as exc:
            if self._exc is None and isinstance(exc, Exception):
                self._exc = exc
            self._shutdown()
            raise
        return self

    async def close(self) -> None:
        """TEARDOWN (best effort) and close the connection."""
        if self.state == "closed":
            return
        conn = self._conn
        if conn is not None and not conn.dead and self.session_id is not None \
                and self.state == "playing":
            self.state = "closing"
            try:
                await self._request("TEARDOWN", self._aggregate_url(),
                                    timeout=min(2.0, self.timeout), auth_retry=False)
            except (TimeoutError, RtspError, OSError) as exc:
                log.debug("TEARDOWN %s: %s", self.url, type(exc).__name__)
        self._shutdown()

    async def wait_closed(self) -> None:
        """Wait until the session ends; raises the error that ended it."""
        if self._closed is None:
            raise RtspError("session not started")
        await asyncio.shield(self._closed)
        if self._exc is not None:
            raise self._exc

    @property
    def error(self) -> BaseException | None:
        return self._exc

    def stats(self) -> dict:
        c = self._conn
        return {
            "url": self.url, "state": self.state, "session_id": self.session_id,
            "queue_drops": self.queue_drops, "keepalives": self.keepalives,
            "keepalive_failures": self.keepalive_failures, "rr_sent": self.rr_sent,
            "garbage_bytes": c.garbage_total if c else 0,
            "unknown_channel_frames": c.unknown_channel if c else 0,
            "streams": [s.stats() for s in self.streams],
        }

    # -- internals: lifecycle ---------------------------------------------------
    async def _start(self) -> None:
        url = self._u.url
        for _ in range(self.max_redirects + 1):
            await self._connect()
            resp = await self._request("OPTIONS", url)
            if self._is_redirect(resp):
                url = self._redirect(resp)
                continue
            if 200 <= resp.status < 300:
                pub = resp.get("public") or ""
                self.public_methods = {m.strip().upper() for m in pub.split(",") if m.strip()}
                self._use_get_parameter = "GET_PARAMETER" in self.public_methods
            resp = await self._request("DESCRIBE", url, {"Accept": "application/sdp"})
            if self._is_redirect(resp):
                url = self._redirect(resp)
                continue
            self._check(resp, "DESCRIBE", url)
            break
        else:
            raise RtspProtocolError(f"too many redirects (>{self.max_redirects}) for {self.url}")
        base = resp.get("content-base") or resp.get("content-location") or url
        self.base_url = strip_userinfo(base)
        try:
            self.sdp = parse_sdp(resp.body, self.base_url)
        except SdpError as exc:
            raise RtspProtocolError(f"DESCRIBE {self.url}: bad SDP: {exc}") from None
        await self._setup_all()
        self._conn.streaming = True
        hdrs = {"Range": "npt=0.000-"}
        resp = await self._request("PLAY", self._aggregate_url(), hdrs)
        self._check(resp, "PLAY", self._aggregate_url())
        self.rtp_info = resp.get("rtp-info")
        if self.state != "starting":
            raise self._exc or RtspConnectionLost(f"{self.url}: closed while starting")
        self.state = "playing"
        self.started_mono = time.monotonic()
        self._housekeeper = asyncio.get_running_loop().create_task(self._housekeeping())

    async def _setup_all(self) -> None:
        wanted = [m for m in self.sdp.media if _select(self._media_spec, m)]
        if not wanted:
            listed = ", ".join(f"{m.kind}/{m.codec}" for m in self.sdp.media) or "none"
            raise RtspProtocolError(f"{self.url}: no wanted stream in SDP (listed: {listed})")
        emit = self._on_unit if self._on_unit is not None else self._enqueue
        conn = self._conn
        n = 0
        for m in wanted:
            ch = 2 * n
            transport = f"RTP/AVP/TCP;unicast;interleaved={ch}-{ch + 1}"
            ctl = m.control or self.base_url
            resp = await self._request("SETUP", ctl, {"Transport": transport})
            if not 200 <= resp.status < 300:
                if n > 0 and resp.status != 401:
                    log.warning("SETUP of stream %d (%s) at %s refused: %s; skipped", m.index,
                                m.codec, self.url, _safe_line(resp.status_line))
                    continue
                if resp.status == 461:
                    raise RtspStatusError(
                        f"SETUP {self.url}: camera refuses RTP over TCP "
                        f"({_safe_line(resp.status_line)})", 461, resp.reason, "SETUP",
                        _safe_line(resp.status_line))
                self._check(resp, "SETUP", ctl)
            sess = resp.get("session")
            if sess:
                sid, _, params = sess.partition(";")
                self.session_id = sid.strip()
                mt = re.search(r"timeout\s*=\s*(\d+)", params)
                if mt:
                    self.session_timeout = max(1, int(mt.group(1)))
            tr = resp.get("transport") or ""
            mi = re.search(r"interleaved\s*=\s*(\d+)(?:-(\d+))?", tr)
            rtp_ch, rtcp_ch = ch, ch + 1
            if mi:
                rtp_ch = int(mi.group(1))
                rtcp_ch = int(mi.group(2)) if mi.group(2) else rtp_ch + 1
                if not (0 <= rtp_ch < 256 and 0 <= rtcp_ch < 256):
                    raise RtspProtocolError(f"SETUP {self.url}: bad interleaved channels",
                                            _safe_line(tr))
            st = RtpStream(len(self.streams), m, emit, wall_clock=self._wall_clock,
                           wait_keyframe=self._wait_keyframe)
            st.channel = rtcp_ch
            conn.chan[rtp_ch] = st.on_rtp
            conn.chan[rtcp_ch] = st.on_rtcp
            self.streams.append(st)
            n += 1

    def _aggregate_url(self) -> str:
        if self.sdp is not None and self.sdp.control:
            return self.sdp.control
        return self.base_url or self._u.url

    def _is_redirect(self, resp: RtspResponse) -> bool:
        return 300 <= resp.status < 400 and bool(resp.get("location"))

    def _redirect(self, resp: RtspResponse) -> str:
        loc = resp.get("location").strip()
        new = _Url(loc, self._u.username, self._u.password)
        log.info("RTSP redirect %s -> %s", self.url, mask_url(new.url))
        if self._conn is not None:
            self._conn.session = _Detached()
            self._conn.close()
        self._u = new
        return new.url

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        conn = _Conn(self)
        u = self._u
        try:
            await asyncio.wait_for(loop.create_connection(lambda: conn, u.host, u.port),
                                   self.timeout)
        except TimeoutError:
            raise RtspTimeout(f"connect to {self.url} timed out after {self.timeout}s",
                              "connect") from None
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise RtspConnectError(f"cannot connect to {self.url}: {why}") from None
        self._conn = conn

    def _check(self, resp: RtspResponse, method: str, url: str) -> None:
        if 200 <= resp.status < 300:
            return
        line = _safe_line(self._redact(resp.status_line))
        raise RtspStatusError(f"{method} {mask_url(url)} failed: {line}", resp.status,
                              _safe_line(self._redact(resp.reason)), method, line)

    def _redact(self, text: str) -> str:
        pw = self._u.password
        if pw and len(pw) >= 3:
            text = text.replace(pw, "***").replace(quote(pw, safe=""), "***")
        return text

    # -- requests ----------------------------------------------------------------
    async def _request(self, method: str, url: str, headers: dict | None = None,
                       body: bytes = b"", timeout: float | None = None,
                       auth_retry: bool = True) -> RtspResponse:
        retried = stale_retried = False
        while True:
            resp = await self._send(method, url, headers, body, timeout)
            if resp.status != 401 or not auth_retry:
                return resp
            line = _safe_line(self._redact(resp.status_line))
            if not self._auth.has_credentials:
                raise RtspAuthError(f"{method} {self.url}: server requires authentication and "
                                    f"no credentials were given ({line})", line)
            stale = self._auth.update(resp)
            if not retried:
                retried = True
                continue
            if stale and not stale_retried:
                stale_retried = True
                continue
            raise RtspAuthError(f"{method} {self.url}: credentials rejected ({line})", line)

    async def _send(self, method, url, headers, body, timeout) -> RtspResponse:
        conn = self._conn
        if conn is None or conn.dead:
            raise self._exc if isinstance(self._exc, RtspError) else RtspConnectionLost(
                f"{method} {self.url}: not connected")
        self._cseq += 1
        cseq = self._cseq
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {cseq}", f"User-Agent: {self.user_agent}"]
        if self.session_id is not None:
            lines.append(f"Session: {self.session_id}")
        auth = self._auth.header(method, url)
        if auth:
            lines.append(f"Authorization: {auth}")
        if headers:
            lines += [f"{k}: {v}" for k, v in headers.items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body
        fut = asyncio.get_running_loop().create_future()
        conn.pending[cseq] = fut
        conn.write(data)
        t = self.timeout if timeout is None else timeout
        try:
            resp = await asyncio.wait_for(fut, t)
            if self.state == "closed" and isinstance(self._exc, Exception):
                raise self._exc  # the connection failed right after this response
            return resp
        except TimeoutError:
            if self._exc is not None and isinstance(self._exc, RtspError):
                raise self._exc from None
            raise RtspTimeout(f"{method} {self.url}: no response within {t}s",
                              method) from None
        finally:
            conn.pending.pop(cseq, None)

    def _on_server_request(self, conn: _Conn, req: _Request) -> None:
        cseq = req.headers.get("cseq", ["0"])[-1]
        if req.method in ("OPTIONS", "GET_PARAMETER", "SET_PARAMETER"):
            status = "200 OK"
        else:
            status = "501 Not Implemented"
            log.info("server request %s from %s not supported", _safe_line(req.method, 20),
                     self.url)
        conn.write(f"RTSP/1.0 {status}\r\nCSeq: {_safe_line(cseq, 20)}\r\n"
                   f"User-Agent: {self.user_agent}\r\n\r\n".encode())

    # -- delivery ----------------------------------------------------------------
    def _enqueue(self, unit: AccessUnit) -> None:
        q = self._queue
        if len(q) >= self.queue_size:
            q.popleft()
            self.queue_drops += 1
        q.append(unit)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -- background ----------------------------------------------------------------
    async def _housekeeping(self) -> None:
        ka = self.keepalive_interval or max(1.0, self.session_timeout / 2)
        tick = max(0.05, min(1.0, self.stall_timeout / 4, ka / 2,
                             self.rtcp_interval / 2 if self.rtcp_interval > 0 else 1.0))
        now = time.monotonic()
        last_total = -1
        last_change = now
        next_rr = now + min(1.0, self.rtcp_interval)
        next_ka = now + ka
        try:
            while self.state == "playing":
                await asyncio.sleep(tick)
                conn = self._conn
                if conn is None or conn.dead:
                    return
                conn.garbage = 0
                now = time.monotonic()
                total = 0
                for st in self.streams:
                    total += st.packets
                if total != last_total:
                    last_total = total
                    last_change = now
                elif now - last_change >= self.stall_timeout:
                    self._fail(RtspStall(
                        f"{self.url}: no RTP packet for {now - last_change:.1f}s "
                        f"(stall timeout {self.stall_timeout}s)", "stall"))
                    return
                if now >= next_rr and self.rtcp_interval > 0:
                    next_rr = now + self.rtcp_interval
                    self._send_receiver_reports(now)
                if now >= next_ka:
                    next_ka = now + ka
                    self._spawn(self._keepalive())
        except asyncio.CancelledError:
            pass

    def _send_receiver_reports(self, now: float) -> None:
        conn = self._conn
        out = bytearray()
        for st in self.streams:
            if st.ssrc is None or st.channel < 0:
                continue
            pkt = st.build_receiver_report(now)
            out += bytes((0x24, st.channel, len(pkt) >> 8, len(pkt) & 0xFF))
            out += pkt
        if out and conn is not None:
            conn.write(bytes(out))
            self.rr_sent += 1

    async def _keepalive(self) -> None:
        method = "GET_PARAMETER" if self._use_get_parameter else "OPTIONS"
        url = self._aggregate_url()
        try:
            resp = await self._request(method, url)
            self.keepalives += 1
            if method == "GET_PARAMETER" and not 200 <= resp.status < 300:
                self._use_get_parameter = False
        except RtspAuthError as exc:
            self._fail(exc)
        except (RtspError, OSError) as exc:
            self.keepalive_failures += 1
            if self.state == "playing":
                log.warning("keepalive %s to %s failed: %s", method, self.url, exc)

    def _spawn(self, coro) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # -- ending ----------------------------------------------------------------
    def _on_conn_lost(self, conn: _Conn, exc: BaseException | None) -> None:
        if conn is not self._conn or self.state == "closed":
            return
        if self.state == "closing":
            self._shutdown()
            return
        why = f": {type(exc).__name__}" if exc else " (closed by server)"
        self._fail(RtspConnectionLost(f"connection to {self.url} lost{why}"))

    def _fail(self, exc: BaseException) -> None:
        if self.state == "closed":
            return
        if self._exc is None:
            self._exc = exc
        log.warning("RTSP session %s ended: %s", self.url, exc)
        self._shutdown()

    def _shutdown(self) -> None:
        prev = self.state
        self.state = "closed"
        conn = self._conn
        if conn is not None:
            err = self._exc if isinstance(self._exc, Exception) else RtspConnectionLost(
                f"{self.url}: session closed")
            for fut in list(conn.pending.values()):
                if not fut.done():
                    fut.set_exception(err)
            conn.pending.clear()
            conn.close(abort=prev != "closing")
        for st in self.streams:
            try:
                st.flush()
            except Exception:  # a failing callback at shutdown must not mask the cause
                log.exception("flush of stream %d failed", st.index)
        cur = asyncio.current_task() if _loop_running() else None
        hk = self._housekeeper
        if hk is not None and hk is not cur and not hk.done():
            hk.cancel()
        for t in list(self._tasks):
            if t is not cur and not t.done():
                t.cancel()
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


class _Detached:
    """Session stand-in for a connection abandoned after a redirect."""

    def _fail(self, exc):
        pass

    def _on_conn_lost(self, conn, exc):
        pass

    def _on_server_request(self, conn, req):
        pass


class RtspClient:
    """Connection settings for one camera; makes :class:`RtspSession` objects."""

    def __init__(self, url: str, **options):
        self._url = url
        self._options = options
        _Url(url, options.get("username"), options.get("password"))  # validate early

    @property
    def url(self) -> str:
        return mask_url(self._url)

    def __repr__(self) -> str:
        return f"<RtspClient {self.url}>"

    def session(self, **overrides) -> RtspSession:
        return RtspSession(self._url, **{**self._options, **overrides})

    async def open(self, on_unit: Callable[[AccessUnit], None] | None = None,
                   **overrides) -> RtspSession:
        """Start a playing session (OPTIONS, DESCRIBE, SETUP, PLAY)."""
        s = self.session(on_unit=on_unit, **overrides)
        await s.start()
        return s

    async def describe(self) -> SessionDescription:
        """DESCRIBE only (follows redirects, authenticates), then disconnect."""
        s = self.session()
        loop = asyncio.get_running_loop()
        s._closed = loop.create_future()
        s.state = "starting"
        try:
            url = s._u.url
            for _ in range(s.max_redirects + 1):
                await s._connect()
                resp = await s._request("DESCRIBE", url, {"Accept": "application/sdp"})
                if s._is_redirect(resp):
                    url = s._redirect(resp)
                    continue
                s._check(resp, "DESCRIBE", url)
                break
            else:
                raise RtspProtocolError(f"too many redirects for {s.url}")
            base = resp.get("content-base") or resp.get("content-location") or url
            try:
                return parse_sdp(resp.body, strip_userinfo(base))
            except SdpError as exc:
                raise RtspProtocolError(f"DESCRIBE {s.url}: bad SDP: {exc}") from None
        finally:
            s._shutdown()

