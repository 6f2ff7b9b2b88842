"""Platform role (accept from below), registration step: REGISTER with digest, keepalive,
offline detection, and a per-peer diagnostic state with plain-language causes.

State is in memory (``Platform.peers``); the next step persists it and syncs catalogs.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from .causes import CAUSES
from .clock import Clock, LoopClock, TimerHandle
from .digest import DigestServer
from .manscdp import ManscdpError, safe_fromstring
from .sip import Address, SipMessage, SipParseError, SipRequest, decode_text
from .trace import SipTrace
from .transaction import ServerTransaction, TransactionLayer
from .transport import TcpTransport, UdpTransport

log = logging.getLogger(__name__)
BEIJING = timedelta(hours=8)


@dataclass
class PlatformConfig:
    server_id: str = "34020000002000000001"
    host: str = "0.0.0.0"
    port: int = 5060
    password: str | None = None  # global password; None = only per-device passwords
    passwords: dict[str, str] = field(default_factory=dict)  # device id -> password
    realm: str | None = None  # default: first 10 digits of server_id (the SIP domain)
    keepalive_interval: float = 60.0
    keepalive_misses: int = 3
    min_expires: int = 60
    max_expires: int = 86_400
    nonce_ttl: float = 300.0
    qop: bool = True
    udp: bool = True
    tcp: bool = True
    max_peers: int = 200_000

    @property
    def domain(self) -> str:
        return self.realm or self.server_id[:10]


@dataclass
class PeerState:
    device_id: str
    registered: bool = False
    online: bool = False
    address: tuple[str, int] | None = None  # packet source: where we send to (NAT-safe)
    transport: str = "UDP"
    contact: str = ""
    expires: int = 0
    registered_at: float | None = None  # clock.now() values
    expires_at: float | None = None
    last_seen: float | None = None
    last_keepalive: float | None = None
    keepalives: int = 0
    auth_failures: int = 0
    challenges_in_a_row: int = 0
    last_nonce: str = ""
    last_error: str = ""
    cause: str = ""  # plain-language cause of the last failure
    warnings: list[str] = field(default_factory=list)  # non-fatal (NAT, charset, framing)
    charset: str = ""

    def note(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)
            del self.warnings[:-10]

    def as_dict(self) -> dict:
        return asdict(self)


# The cause texts live in causes.py, shared with the cascade and media diagnostics.


class Platform:
    def __init__(
        self, config: PlatformConfig, *, clock: Clock | None = None,
        on_event: Callable[[str, PeerState], None] | None = None,
    ) -> None:
        self.cfg = config
        self.clock = clock or LoopClock()
        self.digest = DigestServer(config.domain, nonce_ttl=config.nonce_ttl, qop=config.qop)
        self.peers: dict[str, PeerState] = {}
        self.on_event = on_event or (lambda ev, p: None)
        self.udp: UdpTransport | None = None
        self.tcp: TcpTransport | None = None
        self.layer = TransactionLayer(self._send, self._on_request, clock=self.clock)
        self.parse_errors: list[tuple[tuple[str, int], str]] = []
        self._sweep: TimerHandle | None = None
        self.addresses: dict[str, tuple[str, int]] = {}
        # Hooks for the service layer (service.py): MANSCDP messages other than keepalives,
        # requests of other methods (BYE of a media dialog), and the per-peer SIP trace.
        self.on_manscdp: Callable[[PeerState, ET.Element, SipRequest], None] | None = None
        self.handlers: dict[str, Callable[[SipRequest, ServerTransaction], None]] = {}
        self.tracer: Callable[[str, SipMessage, tuple[str, int]], None] | None = None
        self.trace = SipTrace(self.clock, own_ids=[config.server_id])

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        # UDP and TCP listen on one port number. With port 0 the kernel picks a free UDP port
        # whose TCP twin may be taken: then try another (a fixed port fails at once).
        tries = 20 if self.cfg.port == 0 and self.cfg.udp and self.cfg.tcp else 1
        for attempt in range(tries):
            try:
                await self._listen()
                break
            except OSError:
                if self.udp:
                    self.udp.close()
                self.udp = self.tcp = None
                self.addresses.clear()
                if attempt == tries - 1:
                    raise
        self.schedule_sweep()

    async def _listen(self) -> None:
        if self.cfg.udp:
            self.udp = UdpTransport(self._receive, self._on_parse_error)
            self.addresses["UDP"] = await self.udp.start(self.cfg.host, self.cfg.port)
        if self.cfg.tcp:
            self.tcp = TcpTransport(self._receive, self._on_parse_error)
            port = self.addresses["UDP"][1] if "UDP" in self.addresses else self.cfg.port
            self.addresses["TCP"] = await self.tcp.start(self.cfg.host, port)

    async def stop(self) -> None:
        if self._sweep:
            self._sweep.cancel()
            self._sweep = None
        if self.udp:
            self.udp.close()
        if self.tcp:
            await self.tcp.close()

    def schedule_sweep(self) -> None:
        period = max(0.05, min(self.cfg.keepalive_interval / 4, 5.0))

        def tick() -> None:
            self.sweep()
            self._sweep = self.clock.call_later(period, tick)

        self._sweep = self.clock.call_later(period, tick)

    def _send(self, msg: SipMessage, addr: tuple[str, int], transport: str) -> None:
        t = self.tcp if transport.upper() == "TCP" else self.udp
        if t is None:
            raise RuntimeError(f"no {transport} transport")
        if self.tracer is not None:
            self.tracer("out", msg, addr)
        t.send(msg, addr)

    def _receive(self, msg: SipMessage) -> None:
        if self.tracer is not None:
            self.tracer("in", msg, msg.source or ("0.0.0.0", 0))
        self.layer.receive(msg)

    def _on_parse_error(self, addr: tuple[str, int], reason: str, raw: bytes) -> None:
        self.parse_errors.append((addr, reason))
        del self.parse_errors[:-100]
        if self.tracer is not None:
            self.trace.record_raw(addr, raw, reason)

    def set_trace(self, peer: str, on: bool = True, duration_s: float | None = 3600.0) -> None:
        """Switch the SIP trace of one peer (device ID, ``host:port`` or ``host``) at
        runtime; read it with ``self.trace.get(peer)``. With no trace on, the hot path
        pays one ``is None`` check per message."""
        if on:
            self.trace.enable(peer, duration_s)
        else:
            self.trace.disable(peer)
        if self.tracer is None or self.tracer is self.trace:  # leave a foreign hook alone
            live = any(self.trace.enabled(k) for k in self.trace.peers())
            self.tracer = self.trace if live else None

    # ---- clock-driven state ----------------------------------------------------------

    def sweep(self) -> None:
        now = self.clock.now()
        limit = self.cfg.keepalive_interval * self.cfg.keepalive_misses
        for p in self.peers.values():
            if p.registered and p.expires_at is not None and now >= p.expires_at:
                p.registered = False
                p.online = False
                p.last_error = "registration expired"
                p.cause = "registration expired without a re-REGISTER"
                self.on_event("expired", p)
            elif p.online:
                ref = p.last_keepalive if p.last_keepalive is not None else p.registered_at
                if ref is not None and now - ref > limit:
                    p.online = False
                    missed = int((now - ref) // self.cfg.keepalive_interval)
                    p.last_error = f"{missed} keepalives missed"
                    p.cause = (
                        f"offline: no keepalive for {now - ref:.0f} s "
                        f"({missed} intervals of {self.cfg.keepalive_interval:g} s)"
                    )
                    self.on_event("offline", p)

    # ---- requests --------------------------------------------------------------------

    def _on_request(self, req: SipRequest, txn: ServerTransaction) -> None:
        try:
            if req.method == "REGISTER":
                self._register(req, txn)
            elif req.method == "MESSAGE":
                self._message(req, txn)
            elif req.method == "OPTIONS":
                txn.reply(200, Allow="REGISTER, MESSAGE, OPTIONS")
            elif req.method in self.handlers:
                self.handlers[req.method](req, txn)
            else:
                txn.reply(501)
        except SipParseError as e:
            txn.reply(400, e.reason)

    def _peer(self, device_id: str) -> PeerState | None:
        p = self.peers.get(device_id)
        if p is None:
            if len(self.peers) >= self.cfg.max_peers:
                return None
            p = self.peers[device_id] = PeerState(device_id)
        return p

    def _password(self, device_id: str) -> str | None:
        return self.cfg.passwords.get(device_id, self.cfg.password)

    def _check_addresses(self, req: SipRequest, p: PeerState) -> None:
        src = req.source
        if src is None:
            return
        via = req.top_via
        if (via.host, via.port or 5060) != src:
            p.note(
                f"address mismatch: Via says {via.host}:{via.port or 5060} but packets come from "
                f"{src[0]}:{src[1]} (NAT or wrong local IP on the device); replying to the source"
            )
        contact = req.headers.getall("Contact")
        if contact and contact[0].strip() != "*":
            c = Address.parse(contact[0]).uri
            if (c.host, c.port or 5060) != src:
                p.note(
                    f"address mismatch: Contact says {c.host}:{c.port or 5060} but packets come "
                    f"from {src[0]}:{src[1]}; requests to the device go to the source address"
                )

    def _register(self, req: SipRequest, txn: ServerTransaction) -> None:
        now = self.clock.now()
        device_id = req.to.uri.user or req.from_.uri.user
        if not re.fullmatch(r"[0-9A-Za-z]{1,32}", device_id or ""):
            txn.reply(400, "Bad Device ID")
            return
        p = self._peer(device_id)
        if p is None:
            txn.reply(503, "Too Many Devices")
            return
        p.last_seen = now
        self._check_addresses(req, p)
        for w in req.warnings:
            p.note(f"framing: {w}")
        contacts = req.headers.getall("Contact")
        expires_text = req.get("Expires")
        if expires_text is None and contacts:
            expires_text = Address.parse(contacts[0]).params.get("expires")
        expires_text = None if expires_text is None else expires_text.strip()
        # ASCII digits only: "²".isdigit() is True but int() refuses it
        if not expires_text or not (expires_text.isascii() and expires_text.isdigit()):
            p.last_error = "REGISTER without Expires"
            p.cause = "the device sent REGISTER without an Expires value (answered 400)"
            txn.reply(400, "Missing Expires")
            return
        expires = int(expires_text)
        password = self._password(device_id)
        if password is None:
            p.auth_failures += 1
            p.last_error = "403 unknown device"
            p.cause = CAUSES["unknown-device"].format(want=device_id)
            txn.reply(403, "Forbidden")
            return
        res = self.digest.verify(
            req.get("Authorization"), method="REGISTER", password=password, now=now,
            expected_username=device_id,
        )
        if not res.ok and res.should_challenge:
            p.challenges_in_a_row += 1
            if res.code in ("stale", "foreign-nonce") and res.nonce == p.last_nonce:
                p.last_error = f"401 ({res.code}, same nonce again)"
            elif res.code != "missing":
                p.last_error = f"401 ({res.code})"
            if p.challenges_in_a_row > 3:
                p.cause = CAUSES["repeated-challenge"].format(n=p.challenges_in_a_row - 1)
            if res.nonce:
                p.last_nonce = res.nonce
            txn.reply(401, WWW_Authenticate=self.digest.challenge(now, stale=res.code == "stale"))
            return
        if not res.ok:
            p.auth_failures += 1
            p.challenges_in_a_row = 0
            p.last_error = f"403 ({res.code})"
            p.cause = CAUSES[res.code].format(
                got=res.realm if res.code == "realm-mismatch" else res.username,
                want=self.digest.realm if res.code == "realm-mismatch" else device_id,
            )
            txn.reply(403, "Forbidden")
            self.on_event("auth_failed", p)
            return
        p.challenges_in_a_row = 0
        p.last_error = ""
        p.cause = ""
        if expires == 0:
            was = p.registered
            p.registered = p.online = False
            p.expires_at = None
            txn.reply(200, Date=self.gb_date())
            if was:
                self.on_event("unregistered", p)
            return
        if expires < self.cfg.min_expires:
            txn.reply(423, Min_Expires=str(self.cfg.min_expires))
            p.last_error = f"423 (Expires {expires} < {self.cfg.min_expires})"
            return
        expires = min(expires, self.cfg.max_expires)
        first = not p.registered
        p.registered = p.online = True
        p.address = req.source
        p.transport = req.transport
        p.contact = contacts[0] if contacts else ""
        p.expires = expires
        p.registered_at = now
        p.expires_at = now + expires
        resp_contact = f"{p.contact};expires={expires}" if p.contact else None
        headers = {"Expires": str(expires), "Date": self.gb_date()}
        if resp_contact:
            headers["Contact"] = resp_contact
        txn.reply(200, **headers)
        self.on_event("registered" if first else "refreshed", p)

    def gb_date(self) -> str:
        """GB/T 28181 time sync: ISO-like Beijing time with milliseconds, no zone."""
        t = datetime.fromtimestamp(self.clock.wall(), UTC) + BEIJING
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}"

    def _message(self, req: SipRequest, txn: ServerTransaction) -> None:
        device_id = req.from_.uri.user
        p = self.peers.get(device_id)
        now = self.clock.now()
        try:
            declared = req.charset
            text, used = decode_text(req.body, declared or _xml_encoding(req.body))
        except UnicodeDecodeError:
            if p:
                p.last_error = "400 undecodable body"
                p.cause = (
                    "charset problem: the MANSCDP body is neither GB2312/GBK/GB18030 nor UTF-8"
                )
            txn.reply(400, "Bad Charset")
            return
        root: ET.Element | None = None
        if _KEEPALIVE.fullmatch(text):
            cmd = "Keepalive"  # the common message, recognised without an XML parser
        else:
            try:
                root = safe_fromstring(text)  # DOCTYPE refused; depth and element limits
            except ManscdpError as e:
                if p:
                    p.last_error = f"400 bad XML ({e.reason})"
                    p.cause = "the MANSCDP XML body is malformed"
                txn.reply(400, "Bad XML")
                return
            cmd = (root.findtext("CmdType") or "").strip()
        if p is None or not p.registered:
            # Keepalives from a device we do not know as registered: make it register again.
            txn.reply(403, "Not Registered")
            if p:
                p.last_error = f"{cmd or 'MESSAGE'} while not registered (answered 403)"
            return
        if p.address is not None and req.source is not None and req.source != p.address:
            p.note(f"source moved from {p.address[0]}:{p.address[1]} to {req.source[0]}:{req.source[1]}")
            p.address = req.source
        declared_xml = (_xml_encoding(req.body) or "").lower()
        if declared_xml == "gb2312" and used == "utf-8" and not req.body.isascii():
            p.note("charset: body declares GB2312 but is UTF-8; decoded as UTF-8")
        p.charset = used
        p.last_seen = now
        if cmd == "Keepalive" and (root is None or root.tag == "Notify"):
            p.last_keepalive = now
            p.keepalives += 1
            came_back = not p.online
            p.online = True
            txn.reply(200)
            if came_back:
                p.cause = ""
                self.on_event("online", p)
            return
        txn.reply(200)  # other notifications and responses: to the service layer
        if self.on_manscdp is not None and root is not None:
            self.on_manscdp(p, root, req)

    def diagnose(self, device_id: str) -> dict:
        p = self.peers.get(device_id)
        if p is None:
            return {"device_id": device_id, "known": False,
                    "cause": "never seen: no REGISTER arrived from this ID (check the server "
                    "address/port/ID configured on the device, and firewalls)"}
        d = p.as_dict()
        d["known"] = True
        return d


# A plain keepalive, exactly (the element order devices send, whitespace allowed, an XML
# declaration optional): a quarter of the cost of a keepalive was the XML parser. Anything
# else (other elements, comments, attributes, <Info>) takes the full, limited parser.
_KEEPALIVE = re.compile(
    r"\s*(?:<\?xml[^<>]{0,100}\?>)?\s*<Notify>\s*<CmdType>\s*Keepalive\s*</CmdType>\s*"
    r"<SN>\s*\d{1,10}\s*</SN>\s*<DeviceID>\s*[0-9A-Za-z]{1,32}\s*</DeviceID>\s*"
    r"<Status>\s*[A-Za-z]{1,10}\s*</Status>\s*</Notify>\s*"
)


def _xml_encoding(body: bytes) -> str | None:
    m = re.match(rb'\s*<\?xml[^>]*encoding\s*=\s*["\']([A-Za-z0-9_\-]+)', body)
    return m.group(1).decode() if m else None

