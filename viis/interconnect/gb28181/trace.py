"""Per-peer SIP message trace, switched on at runtime for one device or platform.

Why: "registration loops", "stream receive timeout" and garbled names are diagnosed by
reading the exact messages; a trace of everything would cost the hot path (20,000 devices)
and fill memory, so it is off by default and kept per peer in a bounded ring buffer.

``SipTrace`` is itself the hook both SIP owners call for every message:
``Platform.tracer = trace`` (``tracer(direction, msg, addr)``) and
``SipEndpoint.add_trace(trace)`` (``hook(direction, msg, addr, transport)``). With nothing
enabled a call costs one attribute check. A message belongs to a peer when the peer's ID is
the user part of its From, To or Request-URI, or the peer is written ``host:port`` /
``host`` and the packet came from or went to that address (for peers whose ID is not
known yet, e.g. a device that registers with a wrong ID).

Digest ``response=`` values are masked in the stored text (they allow an offline guess of
the password), and so are catalog items' ``<Password>`` elements.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from .clock import Clock
from .sip import SipMessage, SipRequest, SipResponse, decode_text

Addr = tuple[str, int]
_USER = re.compile(r"sips?:([^@;>\s:]+)@", re.IGNORECASE)
_RESPONSE = re.compile(r'(\bresponse\s*=\s*)("?)[0-9a-fA-F]+', re.IGNORECASE)
# a <Password> cut by the truncation to max_text (no closing tag) is masked too
_PASSWORD = re.compile(r"(<password>)[^<]*(</password>|\Z)", re.IGNORECASE)


@dataclass
class TraceEntry:
    t: float  # unix epoch seconds
    direction: str  # in | out
    addr: str  # remote host:port
    transport: str
    first_line: str
    size: int
    text: str  # decoded, masked, truncated to max_text

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _PeerTrace:
    entries: deque[TraceEntry]
    until: float | None  # wall time after which the trace switches itself off


class SipTrace:
    def __init__(self, clock: Clock | None = None, per_peer: int = 200, max_text: int = 8192,
                 max_peers: int = 64, own_ids: Iterable[str] = ()) -> None:
        self.clock = clock
        self.per_peer, self.max_text, self.max_peers = per_peer, max_text, max_peers
        self.own_ids = set(own_ids)  # our own IDs never name a peer
        self._peers: dict[str, _PeerTrace] = {}

    # ---- switching ---------------------------------------------------------------------

    def _wall(self) -> float:
        return self.clock.wall() if self.clock is not None else time.time()

    def enable(self, peer: str, duration_s: float | None = 3600.0) -> None:
        """Start (or extend) tracing ``peer`` (an ID, ``host:port`` or ``host``); it stops by
        itself after ``duration_s`` so a forgotten switch does not trace for ever."""
        if peer not in self._peers and len(self._peers) >= self.max_peers:
            raise ValueError(f"at most {self.max_peers} peers can be traced at once")
        until = None if duration_s is None else self._wall() + duration_s
        p = self._peers.get(peer)
        if p is None:
            self._peers[peer] = _PeerTrace(deque(maxlen=self.per_peer), until)
        else:
            p.until = until

    def disable(self, peer: str) -> None:
        """Stop tracing; what was recorded stays readable until ``clear``."""
        p = self._peers.get(peer)
        if p is not None:
            p.until = 0.0

    def clear(self, peer: str) -> None:
        self._peers.pop(peer, None)

    def enabled(self, peer: str) -> bool:
        p = self._peers.get(peer)
        return p is not None and (p.until is None or p.until > self._wall())

    @property
    def active(self) -> bool:
        return bool(self._peers)

    def peers(self) -> dict[str, dict]:
        now = self._wall()
        return {k: {"enabled": p.until is None or p.until > now, "until": p.until,
                    "entries": len(p.entries)} for k, p in self._peers.items()}

    def get(self, peer: str) -> list[dict]:
        p = self._peers.get(peer)
        return [e.as_dict() for e in p.entries] if p else []

    # ---- recording ---------------------------------------------------------------------

    def record(self, peer: str, direction: str, msg_bytes: bytes, addr: Addr,
               transport: str = "") -> bool:
        """Store one message under ``peer`` if its trace is on; returns whether it did."""
        p = self._peers.get(peer)
        if p is None:
            return False
        now = self._wall()
        if p.until is not None and p.until <= now:
            return False
        try:
            text = decode_text(msg_bytes[: self.max_text + 4])[0]
        except UnicodeDecodeError:
            text = msg_bytes[: self.max_text].decode("latin-1")
        text = _PASSWORD.sub(r"\1***\2", _RESPONSE.sub(r"\1\2***", text[: self.max_text]))
        first = text.split("\n", 1)[0].strip()[:200]
        p.entries.append(TraceEntry(now, direction, f"{addr[0]}:{addr[1]}", transport, first,
                                    len(msg_bytes), text))
        return True

    def __call__(self, direction: str, msg: SipMessage, addr: Addr, transport: str = "") -> None:
        """The hook for ``Platform.tracer`` and ``SipEndpoint.add_trace``."""
        if not self._peers:
            return
        for peer in self._matching(msg, addr):
            self.record(peer, direction, _wire(msg), addr,
                        transport or getattr(msg, "transport", "") or "")

    def record_raw(self, addr: Addr, raw: bytes, reason: str, transport: str = "") -> None:
        """Unparseable input (``on_error`` of a transport): kept for address-traced peers."""
        if not self._peers:
            return
        for key in (f"{addr[0]}:{addr[1]}", addr[0]):
            if key in self._peers:
                self.record(key, "in", f"[unparseable: {reason}]\r\n".encode() + raw, addr,
                            transport)

    def _matching(self, msg: SipMessage, addr: Addr) -> list[str]:
        names = set()
        for h in ("From", "To"):
            m = _USER.search(msg.headers.get(h) or "")
            if m:
                names.add(m.group(1))
        if isinstance(msg, SipRequest):
            m = _USER.search(msg.uri)
            if m:
                names.add(m.group(1))
        names -= self.own_ids
        names.update((f"{addr[0]}:{addr[1]}", addr[0]))
        return [n for n in names if n in self._peers]


def _wire(msg: SipMessage) -> bytes:
    """The message as on the wire, without ``encode()``'s rewrite of Content-Length (a
    wrong Content-Length from a device is exactly what a trace must show)."""
    if isinstance(msg, SipRequest | SipResponse):
        head = [msg.start_line()] + [f"{k}: {v}" for k, v in msg.headers.items()]
    else:
        head = [f"{k}: {v}" for k, v in msg.headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + msg.body
