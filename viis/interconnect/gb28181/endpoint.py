"""SIP user agent core (RFC 3261 §8, §12-§15) for GB/T 28181 (Q12.1, N12.1, Q13.1, Q13.2).

``SipEndpoint`` owns one UDP and one TCP transport on the same port, the transaction layer,
the dialog table and the trace hooks. It is what the cascade (lower-platform role), the media
answering and the platform role (accept from below) build on:

- out of dialog: ``await request(req, addr, transport, credentials)`` (one digest retry on
  401/407) and ``on_request(method, handler)`` for incoming requests;
- sessions: ``await invite(...) -> (Dialog, SipResponse)`` (ACKs the 2xx, raises
  ``InviteError`` on a non-2xx), ``cancel(call_id)``, ``await bye(dialog)``,
  ``await in_dialog(dialog, "INFO", body, content_type)``; incoming INVITEs go to
  ``on_invite(handler)`` whose ``InviteAnswer`` makes the endpoint create the UAS dialog,
  retransmit the 2xx until the ACK (§13.3.1.4), and route ACK, BYE and INFO to it;
- checks that keep a dialog safe from other traffic: in-dialog requests with unknown tags
  get 481, out-of-order CSeq 500, CANCEL 200 + 487 on the INVITE, a re-INVITE that only
  refreshes the session is answered with the same SDP, one that changes media gets 488.

Handlers are ``async`` (plain functions work too). Every timer runs on the injected clock.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from viis.core.logging import get_logger

from .clock import Clock, LoopClock, TimerHandle
from .dialog import Addr, Dialog, DialogError, dialog_key_of_request
from .digest import build_authorization
from .sip import (
    Address,
    Headers,
    SipMessage,
    SipParseError,
    SipRequest,
    SipResponse,
    Via,
    make_response,
    new_branch,
    new_tag,
)
from .transaction import (
    T1,
    T2,
    T4,
    ClientTransaction,
    ServerInviteTransaction,
    ServerTransaction,
    TransactionLayer,
    TransactionTimeout,
    TransportError,
)
from .transport import TcpTransport, UdpTransport

log = get_logger(__name__)

__all__ = [
    "InviteAnswer", "InviteError", "SipEndpoint", "Dialog", "DialogError", "TransactionTimeout",
    "TransportError",
    "new_branch", "new_tag", "new_call_id",
]

# Methods that exist only inside a dialog: without one they get 481 (§12.2.2).
_DIALOG_ONLY = {"BYE", "INFO", "UPDATE", "PRACK"}
_WILDCARD = {"", "0.0.0.0", "::"}
_KNOWN = {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "MESSAGE", "INFO", "SUBSCRIBE",
          "NOTIFY", "UPDATE", "PRACK", "REFER", "PUBLISH"}

Handler = Callable[[SipRequest, ServerTransaction], Awaitable[None] | None]
DialogHandler = Callable[[Dialog, SipRequest, ServerTransaction], Awaitable[Any] | Any]
TraceHook = Callable[[str, SipMessage, Addr, str], None]


def new_call_id() -> str:
    return new_branch()[7:] + new_tag()


class InviteError(Exception):
    """An INVITE we sent got a final non-2xx response (``response``, ``status``)."""

    def __init__(self, response: SipResponse) -> None:
        super().__init__(f"INVITE answered {response.status} {response.reason}")
        self.response = response
        self.status = response.status


@dataclass
class InviteAnswer:
    """What an ``on_invite`` handler decides.

    ``status`` 2xx: the endpoint sends it with ``sdp`` and creates the dialog. Callbacks
    (each may be sync or async): ``on_ack(dialog, ack)`` once the first ACK arrives;
    ``on_bye(dialog, bye_or_None)`` once when the dialog ends other than by our own
    ``bye()`` — the peer's BYE, no ACK within 64·T1 (we then send BYE), ``stop()``, or a
    CANCEL that arrived before this answer (``dialog.terminated_by == 'cancelled'``);
    ``on_request(dialog, req, txn)`` for INFO/MESSAGE/... in this dialog (else the
    endpoint-wide ``on_dialog_request`` handler).
    """

    status: int
    sdp: str = ""
    on_ack: Callable[..., Any] | None = None
    on_bye: Callable[..., Any] | None = None
    on_request: DialogHandler | None = None
    reason: str = ""
    headers: dict[str, str] | None = None
    content_type: str = "application/sdp"
    # Our Contact in the 2xx and the dialog (e.g. naming the platform ID used towards this
    # caller); default: <sip:local_id@contact host:port>.
    contact: str | None = None


class _PendingInvite:
    def __init__(self, req: SipRequest, addr: Addr, transport: str) -> None:
        self.req, self.addr, self.transport = req, addr, transport
        self.txn: ClientTransaction | None = None
        self.provisional = False
        self.cancel_requested = False
        self.cancel_sent = False
        self.abandoned = False  # the caller's task was cancelled: a late 2xx gets ACK + BYE
        self.acks: dict[str, SipRequest] = {}  # remote tag -> the ACK we sent its 2xx


class SipEndpoint:
    def __init__(
        self, local_id: str, domain: str, host: str = "0.0.0.0", port: int = 5060,
        udp: bool = True, tcp: bool = True, clock: Clock | None = None,
        charset: str = "GB2312", *, public_host: str | None = None, t1: float = T1,
        t2: float = T2, t4: float = T4, user_agent: str = "VIIS", max_dialogs: int = 10_000,
        answer_timeout: float = 30.0,
    ) -> None:
        self.local_id, self.domain = local_id, domain
        self.host, self.port = host, port
        self.use_udp, self.use_tcp = udp, tcp
        self.clock = clock or LoopClock()
        self.charset = charset
        self.public_host = public_host
        self.user_agent = user_agent
        self.max_dialogs = max_dialogs
        # Real seconds an on_invite handler may take (opening a camera stream can take a
        # few); then 500, so the caller is not left in Proceeding for ever.
        self.answer_timeout = answer_timeout
        self.layer = TransactionLayer(
            self._send, self._on_request, clock=self.clock, t1=t1, t2=t2, t4=t4,
            on_stray=self._on_stray,
        )
        self.udp: UdpTransport | None = None
        self.tcp: TcpTransport | None = None
        self.addresses: dict[str, Addr] = {}
        self.dialogs: dict[tuple[str, str, str], Dialog] = {}
        # Tests: return False to drop an outgoing message (a lossy network).
        self.send_hook: Callable[[SipMessage, Addr, str], bool] | None = None
        self.trace_hooks: list[TraceHook] = []
        self.parse_errors: deque[tuple[Addr, str]] = deque(maxlen=100)
        self.stats: Counter[str] = Counter()
        self._handlers: dict[str, Handler] = {}
        self._invite_handler: Callable[..., Any] | None = None
        self._dialog_handler: DialogHandler | None = None
        self._pending: dict[str, _PendingInvite] = {}
        self._answered: dict[str, _PendingInvite] = {}  # our INVITEs with a 2xx, for 64·T1
        self._ack_timers: dict[tuple[str, str, str], list[TimerHandle]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._host_cache: dict[str, str] = {}
        self._closed = True

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Bind UDP and TCP on the same port. With port 0 the kernel picks the UDP port; if
        that number is taken for TCP, another one is tried (up to 20 times)."""
        for attempt in range(20):
            if self.use_udp:
                self.udp = UdpTransport(self._on_message, self._on_parse_error)
                self.addresses["UDP"] = await self.udp.start(self.host, self.port)
            if self.use_tcp:
                self.tcp = TcpTransport(self._on_message, self._on_parse_error)
                self.tcp.on_connect_error = lambda a, e: self.layer.transport_error(a, "TCP", e)
                port = self.addresses["UDP"][1] if "UDP" in self.addresses else self.port
                try:
                    self.addresses["TCP"] = await self.tcp.start(self.host, port)
                except OSError:
                    if self.udp is not None:
                        self.udp.close()
                    if self.port != 0 or not self.use_udp or attempt == 19:
                        raise
                    continue
            break
        self._closed = False

    async def stop(self) -> None:
        """Send BYE on every active dialog (best effort, not awaited), then close."""
        for d in list(self.dialogs.values()):
            if d.active:
                try:
                    self.layer.start_client(d.make_request("BYE"), self._dest(d), d.transport)
                except Exception:
                    log.exception("sip.stop.bye_failed", call_id=d.call_id)
                self._end_dialog(d, "stop", None)
        await asyncio.sleep(0)
        self._closed = True
        for t in list(self._tasks):
            t.cancel()
        if self.udp:
            self.udp.close()
        if self.tcp:
            await self.tcp.close()

    @property
    def local_port(self) -> int:
        a = self.addresses.get("UDP") or self.addresses.get("TCP")
        return a[1] if a else self.port

    def contact_host(self, addr: Addr | None = None) -> str:
        """The address peers should reach us at: ``public_host``, the bound host, or (bound
        to a wildcard) the local address the kernel routes ``addr`` from."""
        if self.public_host:
            return self.public_host
        if self.host not in _WILDCARD:
            return self.host
        key = addr[0] if addr else ""
        if key not in self._host_cache:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.connect((addr[0] if addr else "192.0.2.1", addr[1] if addr else 9))
                    self._host_cache[key] = s.getsockname()[0]
            except OSError:
                self._host_cache[key] = "127.0.0.1"
        return self._host_cache[key]

    # ---- handlers ----------------------------------------------------------------------

    def on_request(self, method: str, handler: Handler) -> None:
        """Out-of-dialog requests of ``method``: ``async handler(req, txn)`` must answer
        through ``txn.reply(status, **headers)`` or ``txn.respond(response)``."""
        self._handlers[method.upper()] = handler

    def on_invite(self, handler: Callable[[SipRequest, ServerInviteTransaction], Any]) -> None:
        """``async handler(req, txn) -> InviteAnswer``; 100 Trying is already sent.
        ``txn.cancelled`` / ``txn.add_cancel_callback(fn)`` tell the handler the caller
        gave up (an INVITE CANCELled before its handler ran never reaches it)."""
        self._invite_handler = handler

    def on_dialog_request(self, handler: DialogHandler) -> None:
        """In-dialog requests other than ACK/BYE/INVITE with no per-dialog handler:
        ``async handler(dialog, req, txn)``; may return a status instead of replying."""
        self._dialog_handler = handler

    def add_trace(self, hook: TraceHook) -> None:
        """``hook(direction 'in'|'out', message, addr, transport)`` for every message."""
        self.trace_hooks.append(hook)

    # ---- wire --------------------------------------------------------------------------

    def _send(self, msg: SipMessage, addr: Addr, transport: str) -> None:
        if self._closed:
            return
        if self.send_hook is not None and self.send_hook(msg, addr, transport) is False:
            self.stats["dropped_by_hook"] += 1
            return
        self._trace("out", msg, addr, transport)
        t = self.tcp if transport.upper() == "TCP" else self.udp
        if t is None:
            raise RuntimeError(f"no {transport} transport on this endpoint")
        t.send(msg, addr)
        self.stats["sent"] += 1

    def _trace(self, direction: str, msg: SipMessage, addr: Addr, transport: str) -> None:
        for hook in self.trace_hooks:
            try:
                hook(direction, msg, addr, transport)
            except Exception:
                log.exception("sip.trace_hook_failed")

    def _on_parse_error(self, addr: Addr, reason: str, raw: bytes) -> None:
        self.stats["parse_errors"] += 1
        self.parse_errors.append((addr, reason))

    def _on_message(self, msg: SipMessage) -> None:
        if self._closed:
            return
        addr = msg.source or ("0.0.0.0", 0)
        self.stats["received"] += 1
        self._trace("in", msg, addr, msg.transport)
        try:
            self.layer.receive(msg)
        except SipParseError as e:
            # Parsed, but a header the layer needs (Via, CSeq, From/To) is unusable.
            self.stats["rejected"] += 1
            self.parse_errors.append((addr, e.reason))
            if isinstance(msg, SipRequest) and msg.method != "ACK":
                try:
                    self._send(make_response(msg, 400, e.reason[:60]), addr, msg.transport)
                except Exception:  # too broken to answer: drop
                    pass
        except Exception:
            log.exception("sip.receive_failed", source=str(addr))

    def _spawn(self, coro: Awaitable[Any], txn: ServerTransaction | None = None) -> asyncio.Task:
        """Run ``coro`` as a task; if it fails, log it and answer ``txn`` with 500 if it is
        still unanswered (a hostile header that only breaks on use must not leave the peer
        retransmitting into a transaction that never ends)."""

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sip.task_failed")
                if txn is not None and txn.state in ("trying", "proceeding"):
                    try:
                        txn.respond(make_response(txn.request, 500, to_tag=getattr(txn, "to_tag", None)))
                    except Exception:
                        log.exception("sip.task_failed.no_500")

        t = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    # ---- building requests ---------------------------------------------------------------

    def local_uri(self) -> str:
        return f"sip:{self.local_id}@{self.domain}"

    def contact(self, transport: str = "UDP", addr: Addr | None = None) -> str:
        t = ";transport=tcp" if transport.upper() == "TCP" else ""
        return f"<sip:{self.local_id}@{self.contact_host(addr)}:{self.local_port}{t}>"

    def build_request(
        self, method: str, uri: str, to: str, from_: str | None = None, *,
        transport: str = "UDP", addr: Addr | None = None, call_id: str | None = None,
        cseq: int = 1, from_tag: str | None = None, body: bytes | str = b"",
        content_type: str | None = None, headers: dict[str, str] | None = None,
        contact: bool | None = None, expires: int | None = None,
    ) -> SipRequest:
        """An out-of-dialog request with Via (rport, fresh branch), Max-Forwards, From (our
        ID at our domain, fresh tag unless given), To, Call-ID, CSeq, Contact (for INVITE,
        REGISTER, SUBSCRIBE, NOTIFY unless ``contact`` says), User-Agent and the body."""
        method = method.upper()
        req = SipRequest(method, uri)
        h = req.headers
        h.add("Via", f"SIP/2.0/{transport.upper()} {self.contact_host(addr)}:{self.local_port}"
                     f";rport;branch={new_branch()}")
        h.add("Max-Forwards", "70")
        frm = _angle(from_ or self.local_uri())
        h.add("From", f"{frm};tag={from_tag or new_tag()}")
        h.add("To", _angle(to))
        h.add("Call-ID", call_id or new_call_id())
        h.add("CSeq", f"{cseq} {method}")
        if contact if contact is not None else method in ("INVITE", "REGISTER", "SUBSCRIBE", "NOTIFY"):
            h.add("Contact", self.contact(transport, addr))
        if expires is not None:
            h.add("Expires", str(expires))
        h.add("User-Agent", self.user_agent)
        for k, v in (headers or {}).items():
            h.set(k, v)
        if isinstance(body, str):
            body = body.encode("utf-8")
        if body or content_type:
            h.set("Content-Type", content_type or "application/octet-stream")
        req.body = body
        return req

    def _fit_via(self, req: SipRequest, transport: str, addr: Addr) -> None:
        vias = req.headers.getall("Via")
        if not vias:
            req.headers.add(
                "Via", f"SIP/2.0/{transport.upper()} {self.contact_host(addr)}:{self.local_port}"
                       f";rport;branch={new_branch()}")
            return
        top = Via.parse(vias[0])
        if top.transport != transport.upper() or not top.branch:
            top.transport = transport.upper()
            top.params.setdefault("branch", new_branch())
            _replace_top_via(req, str(top))

    # ---- client side -------------------------------------------------------------------

    async def request(
        self, req: SipRequest, addr: Addr, transport: str = "UDP",
        credentials: tuple[str, str] | None = None,
    ) -> SipResponse:
        """Send an out-of-dialog request; on 401/407 with ``credentials`` retry once with
        digest (qop=auth when offered, RFC 2069 otherwise). Raises TransactionTimeout."""
        self._fit_via(req, transport, addr)
        resp = await self.layer.request(req, addr, transport)
        for attempt in range(2):
            if resp.status not in (401, 407) or credentials is None:
                break
            if attempt == 1 and not _stale(resp):
                break  # a second challenge without stale=true: the credentials are wrong
            again = _with_auth(req, resp, credentials)
            if again is None:
                break
            req = again
            resp = await self.layer.request(req, addr, transport)
        return resp

    async def invite(
        self, uri: str, addr: Addr, transport: str = "UDP", sdp: str = "",
        headers: dict[str, str] | None = None, credentials: tuple[str, str] | None = None,
        *, to: str | None = None, from_: str | None = None, call_id: str | None = None,
        content_type: str = "application/sdp",
    ) -> tuple[Dialog, SipResponse]:
        """INVITE ``uri`` at ``addr``; ACKs the 2xx and returns the confirmed dialog.

        Raises ``InviteError`` for a final non-2xx (after one digest retry when
        ``credentials`` are given), ``TransactionTimeout`` when nothing final came within
        Timer B (64·T1), ``TransportError`` when a TCP connection could not be made.
        Cancelling the awaiting task sends CANCEL; ``cancel(call_id)`` does too and makes
        this raise ``InviteError`` (487). For 64·T1 after the answer, a 2xx from another
        branch (forked) is ACKed and ended with BYE, and a retransmitted 2xx of a dialog we
        already ended is ACKed again (§13.2.2.4).
        """
        req = self.build_request(
            "INVITE", uri, to or uri, from_, transport=transport, addr=addr, call_id=call_id,
            body=sdp, content_type=content_type if sdp else None, headers=headers,
        )
        p = _PendingInvite(req, addr, transport)
        self._pending[req.call_id] = p
        try:
            resp = await self._invite_once(p)
            if resp.status in (401, 407) and credentials is not None and not p.cancel_requested:
                again = _with_auth(p.req, resp, credentials)
                if again is not None:
                    p.req, p.provisional = again, False
                    resp = await self._invite_once(p)
        except asyncio.CancelledError:
            p.abandoned = True
            self._request_cancel(p)
            raise
        finally:
            if self._pending.get(req.call_id) is p and not p.abandoned:
                del self._pending[req.call_id]
        if not 200 <= resp.status < 300:
            raise InviteError(resp)
        return self._confirm_uac(p, resp), resp

    async def _invite_once(self, p: _PendingInvite) -> SipResponse:
        fut: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()

        def final(r: SipResponse | Exception) -> None:
            if fut.done():
                if p.abandoned and isinstance(r, SipResponse) and 200 <= r.status < 300:
                    self._spawn(self._ack_and_bye(p, r))  # answered after we gave up
                elif p.abandoned and self._pending.get(p.req.call_id) is p:
                    del self._pending[p.req.call_id]
                return
            if isinstance(r, Exception):
                fut.set_exception(r)
            else:
                fut.set_result(r)

        def provisional(r: SipResponse) -> None:
            p.provisional = True
            if p.cancel_requested:
                self._send_cancel(p)

        self._fit_via(p.req, p.transport, p.addr)
        p.txn = self.layer.start_client(p.req, p.addr, p.transport, final)
        p.txn.on_provisional = provisional
        return await fut

    def _confirm_uac(self, p: _PendingInvite, resp: SipResponse) -> Dialog:
        d = Dialog.from_uac(p.req, resp, p.addr, p.transport)
        d.via_host, d.via_port = self.contact_host(p.addr), self.local_port
        d.local_sdp = p.req.body.decode("utf-8", "replace")
        d.remote_sdp = resp.body.decode("utf-8", "replace")
        d.created_at = self.clock.now()
        ack = d.make_request("ACK")
        d.last_ack = ack
        self.layer.send(ack, self._dest(d), d.transport)
        self.dialogs[d.id] = d
        self.stats["dialogs_uac"] += 1
        p.acks[d.remote_tag] = ack
        call_id = p.req.call_id
        if self._answered.get(call_id) is not p:
            self._answered[call_id] = p
            self.clock.call_later(64 * self.layer.t1, lambda: self._answered.pop(call_id, None)
                                  if self._answered.get(call_id) is p else None)
        log.info("sip.dialog.uac", call_id=d.call_id, peer=f"{d.peer[0]}:{d.peer[1]}")
        return d

    async def _ack_and_bye(self, p: _PendingInvite, resp: SipResponse) -> None:
        d = self._confirm_uac(p, resp)
        self._pending.pop(p.req.call_id, None)
        await self.bye(d)

    def cancel(self, call_id: str) -> bool:
        """CANCEL our pending INVITE with this Call-ID (sent once a provisional response
        has arrived, §9.1). The awaiting ``invite()`` then raises InviteError(487)."""
        p = self._pending.get(call_id)
        if p is None:
            return False
        self._request_cancel(p)
        return True

    def _request_cancel(self, p: _PendingInvite) -> None:
        p.cancel_requested = True
        if p.provisional:
            self._send_cancel(p)

    def _send_cancel(self, p: _PendingInvite) -> None:
        if p.cancel_sent or p.txn is None or p.txn.state in ("completed", "terminated"):
            return
        p.cancel_sent = True
        req = p.req
        c = SipRequest("CANCEL", req.uri)
        c.headers.add("Via", req.headers.getall("Via")[0])
        for r in req.headers.getall("Route"):
            c.headers.add("Route", r)
        c.headers.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            c.headers.add(name, req.get(name) or "")
        c.headers.add("CSeq", f"{req.cseq[0]} CANCEL")
        self.layer.start_client(c, p.addr, p.transport)

    async def bye(self, dialog: Dialog) -> SipResponse | None:
        """End the dialog now and tell the peer; the BYE's response, or None on timeout."""
        if not dialog.active:
            return None
        req = dialog.make_request("BYE")
        self._end_dialog(dialog, "local", None, notify=False)
        try:
            return await self.layer.request(req, self._dest(dialog), dialog.transport)
        except TransactionTimeout:
            return None

    async def in_dialog(
        self, dialog: Dialog, method: str, body: bytes | str = b"",
        content_type: str | None = None, headers: dict[str, str] | None = None,
    ) -> SipResponse:
        """Send INFO/MESSAGE/... inside the dialog. A 481 or 408 ends the dialog (§12.2.1.2)."""
        req = dialog.make_request(method, body, content_type, headers)
        try:
            resp = await self.layer.request(req, self._dest(dialog), dialog.transport)
        except TransactionTimeout:
            self._end_dialog(dialog, "timeout", None)
            raise
        if resp.status in (408, 481):
            self._end_dialog(dialog, f"peer answered {resp.status}", None)
        elif req.method == "INVITE" and 200 <= resp.status < 300:
            # A re-INVITE we sent: the 2xx is ACKed by us, like the first one (§13.2.2.4).
            dialog.invite_cseq = req.cseq[0]
            contacts = resp.headers.getall("Contact")
            if contacts:
                dialog.remote_target = str(Address.parse(contacts[0]).uri)
            dialog.local_sdp = req.body.decode("utf-8", "replace") or dialog.local_sdp
            dialog.remote_sdp = resp.body.decode("utf-8", "replace") or dialog.remote_sdp
            ack = dialog.make_request("ACK")
            dialog.last_ack = ack
            self.layer.send(ack, self._dest(dialog), dialog.transport)
        return resp

    def _dest(self, d: Dialog) -> Addr:
        """Where an in-dialog request goes: the address the dialog was set up with (NAT-safe;
        over TCP the same connection). If that TCP connection is gone and it was the peer's
        (an ephemeral port), dial the remote target (Contact) instead."""
        if d.transport.upper() != "TCP" or self.tcp is None or d.peer in self.tcp.conns:
            return d.peer
        if d.role == "uac":
            return d.peer  # we dialled it: its listening address
        try:
            target = Address.parse(d.remote_target).uri
        except SipParseError:
            return d.peer
        return (target.host, target.port or 5060) if target.host else d.peer

    # ---- server side -------------------------------------------------------------------

    def _on_request(self, req: SipRequest, txn: ServerTransaction) -> None:
        """Synchronous dispatch from the transaction layer."""
        self.stats[f"in_{req.method}" if req.method in _KNOWN else "in_other"] += 1
        try:
            if req.method == "CANCEL":
                self._on_cancel(req, txn)
                return
            to_tag = req.to.tag
            req.from_  # noqa: B018  validates From before any work
        except SipParseError as e:
            txn.reply(400, e.reason[:60])
            return
        if to_tag:
            d = self.dialogs.get(dialog_key_of_request(req))
            if d is None or not d.active:
                self.stats["unknown_dialog"] += 1
                txn.reply(481)
                return
            self._spawn(self._in_dialog_request(d, req, txn), txn)
            return
        if req.method == "INVITE":
            self._spawn(self._on_invite(req, txn), txn)  # type: ignore[arg-type]
            return
        h = self._handlers.get(req.method)
        if h is not None:
            self._spawn(self._run_handler(h, req, txn), txn)
        elif req.method == "OPTIONS":
            txn.reply(200, Allow=self._allow())
        elif req.method in _DIALOG_ONLY:
            txn.reply(481)
        else:
            txn.reply(405, Allow=self._allow())

    def _allow(self) -> str:
        methods = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", *self._handlers]
        return ", ".join(dict.fromkeys(methods))

    async def _run_handler(self, h: Handler, req: SipRequest, txn: ServerTransaction) -> None:
        try:
            await _maybe_await(h(req, txn))
        except Exception:
            log.exception("sip.handler_failed", method=req.method)
        if txn.state in ("trying", "proceeding"):
            log.warning("sip.handler_no_response", method=req.method)
            txn.reply(500, "No Response From Handler")

    def _on_cancel(self, req: SipRequest, txn: ServerTransaction) -> None:
        itxn = self.layer.invite_for_cancel(req)
        if itxn is None:
            txn.reply(481)
            return
        txn.reply(200)  # §9.2: the CANCEL itself succeeds whether or not it still mattered
        if itxn.cancel():
            self.stats["cancelled"] += 1

    async def _on_invite(self, req: SipRequest, txn: ServerInviteTransaction) -> None:
        if self._invite_handler is None:
            txn.respond(make_response(req, 405, to_tag=new_tag()))
            return
        if len(self.dialogs) >= self.max_dialogs:
            txn.respond(make_response(req, 503, "Too Many Dialogs", to_tag=new_tag()))
            return
        if txn.state != "proceeding":
            return  # CANCELled before the handler got to run: it is not bothered at all
        tag = new_tag()
        txn.to_tag = tag
        try:
            answer = await asyncio.wait_for(
                _maybe_await(self._invite_handler(req, txn)), self.answer_timeout)
        except TimeoutError:
            log.warning("sip.invite_handler_timeout", call_id=req.call_id[:80])
            answer = InviteAnswer(500, reason="No Answer In Time")
        except Exception:
            log.exception("sip.invite_handler_failed", call_id=req.call_id[:80])
            answer = InviteAnswer(500)
        if txn.state != "proceeding":
            # Cancelled meanwhile (or the handler answered itself): an accepted answer's
            # resources (a media sender, a register entry) are released through on_bye.
            if isinstance(answer, InviteAnswer) and 200 <= answer.status < 300 and answer.on_bye:
                d = Dialog.from_uas(req, tag, "")
                d.state, d.terminated_by = "terminated", "cancelled" if txn.cancelled else "answered"
                self._spawn(self._callback(answer.on_bye, d, None))
            return
        if not isinstance(answer, InviteAnswer):
            answer = InviteAnswer(500, reason="No Answer From Handler")
        if not 200 <= answer.status < 300:
            resp = make_response(req, answer.status, answer.reason, to_tag=tag)
            for k, v in (answer.headers or {}).items():
                resp.headers.set(k, v)
            txn.respond(resp)
            return
        d = Dialog.from_uas(req, tag, answer.contact or self.contact(req.transport, req.source))
        d.via_host, d.via_port = self.contact_host(req.source), self.local_port
        d.local_sdp, d.remote_sdp = answer.sdp, req.body.decode("utf-8", "replace")
        d.created_at = self.clock.now()
        d.handlers = {"ack": answer.on_ack, "bye": answer.on_bye, "request": answer.on_request}
        self.dialogs[d.id] = d
        self.stats["dialogs_uas"] += 1
        resp = self._ok_for_invite(req, d, answer.sdp, answer.content_type, answer.headers)
        txn.respond(resp)
        self._await_ack(d, resp)
        log.info("sip.dialog.uas", call_id=d.call_id, peer=f"{d.peer[0]}:{d.peer[1]}")

    def _ok_for_invite(self, req: SipRequest, d: Dialog, sdp: str, content_type: str,
                       headers: dict[str, str] | None) -> SipResponse:
        resp = make_response(req, 200, to_tag=d.local_tag)
        for rr in req.headers.getall("Record-Route"):
            resp.headers.add("Record-Route", rr)
        resp.headers.add("Contact", d.local_contact)
        resp.headers.add("User-Agent", self.user_agent)
        for k, v in (headers or {}).items():
            resp.headers.set(k, v)
        if sdp:
            resp.headers.set("Content-Type", content_type)
            resp.body = sdp.encode("utf-8")
        return resp

    def _await_ack(self, d: Dialog, resp: SipResponse) -> None:
        """§13.3.1.4: retransmit the 2xx (T1 doubling to T2, unreliable transports) until
        the ACK; after 64·T1 without one the session ends with a BYE."""
        d.awaiting_ack = True
        layer = self.layer
        timers: list[TimerHandle] = []
        self._ack_timers[d.id] = timers
        reliable = d.transport.upper() != "UDP"

        def retransmit(interval: float) -> None:
            if not d.awaiting_ack or not d.active:
                return
            self.stats["2xx_retransmits"] += 1
            layer.send(resp, d.peer, d.transport)
            nxt = min(2 * interval, layer.t2)
            timers.append(self.clock.call_later(nxt, lambda: retransmit(nxt)))

        def give_up() -> None:
            if not d.awaiting_ack or not d.active:
                return
            d.awaiting_ack = False
            self.stats["ack_timeouts"] += 1
            log.warning("sip.dialog.no_ack", call_id=d.call_id)
            try:
                layer.start_client(d.make_request("BYE"), self._dest(d), d.transport)
            except Exception:
                log.exception("sip.bye_failed", call_id=d.call_id)
            self._end_dialog(d, "ack-timeout", None)

        if not reliable:
            timers.append(self.clock.call_later(layer.t1, lambda: retransmit(layer.t1)))
        timers.append(self.clock.call_later(64 * layer.t1, give_up))

    def _stop_ack_timers(self, d: Dialog) -> None:
        for h in self._ack_timers.pop(d.id, []):
            h.cancel()

    def _on_stray(self, msg: SipMessage) -> None:
        if isinstance(msg, SipRequest):
            if msg.method != "ACK":
                return
            d = self.dialogs.get(dialog_key_of_request(msg))
            if d is None or not d.awaiting_ack or msg.cseq[0] != d.invite_cseq:
                self.stats["stray_ack"] += 1
                return
            d.awaiting_ack = False
            self._stop_ack_timers(d)
            first = "acked" not in d.data
            d.data["acked"] = True
            if first and d.handlers.get("ack"):
                self._spawn(self._callback(d.handlers["ack"], d, msg))
            return
        assert isinstance(msg, SipResponse)
        try:
            num, method = msg.cseq
        except SipParseError:
            return
        if method == "INVITE" and 200 <= msg.status < 300:
            d = self.dialogs.get((msg.call_id, msg.from_.tag or "", msg.to.tag or ""))
            if d is not None and d.last_ack is not None and num == d.invite_cseq:
                self.stats["ack_resent"] += 1
                self.layer.send(d.last_ack, self._dest(d), d.transport)  # our ACK was lost
                return
            p = self._answered.get(msg.call_id)
            if p is not None and num == p.req.cseq[0] and msg.from_.tag == p.req.from_.tag:
                ack = p.acks.get(msg.to.tag or "")
                if ack is not None:  # a dialog we already ended: its 2xx still wants an ACK
                    self.stats["ack_resent"] += 1
                    self.layer.send(ack, p.addr, p.transport)
                else:  # another branch answered too (forked): ACK it, then end it
                    self.stats["forked_2xx"] += 1
                    self._spawn(self._ack_and_bye(p, msg))
                return
            # A 2xx for no INVITE of ours (or an old one).
            log.info("sip.stray_2xx", call_id=msg.call_id[:80], status=msg.status)
        self.stats["stray_response"] += 1

    async def _in_dialog_request(self, d: Dialog, req: SipRequest, txn: ServerTransaction) -> None:
        if not d.check_remote_seq(req):
            self.stats["cseq_out_of_order"] += 1
            txn.reply(500, "CSeq Out Of Order")
            return
        if (req.transport == "TCP" and req.source and req.source != d.peer and self.tcp
                and d.peer not in self.tcp.conns):
            d.peer = req.source  # the peer reconnected: follow its new connection
        if req.method == "BYE":
            txn.reply(200)
            self._end_dialog(d, "remote", req)
            return
        if req.method == "INVITE":
            self._reinvite(d, req, txn)  # type: ignore[arg-type]
            return
        h = d.handlers.get("request") or self._dialog_handler
        if h is None:
            txn.reply(405, Allow="INVITE, ACK, BYE, CANCEL")
            return
        try:
            result = await _maybe_await(h(d, req, txn))
        except Exception:
            log.exception("sip.dialog_handler_failed", method=req.method, call_id=d.call_id)
            result = 500
        if txn.state in ("trying", "proceeding"):
            txn.reply(result if isinstance(result, int) else 200)

    def _reinvite(self, d: Dialog, req: SipRequest, txn: ServerInviteTransaction) -> None:
        """§14.2: a session refresh (no offer, or the same offer) gets 200 with our SDP
        unchanged; a change of media is not supported here and gets 488, which leaves the
        session as it was. Another INVITE while one awaits its ACK gets 491."""
        if d.awaiting_ack:
            txn.respond(make_response(req, 491))
            return
        offer = req.body.decode("utf-8", "replace")
        if offer.strip() and _sdp_core(offer) != _sdp_core(d.remote_sdp):
            resp = make_response(req, 488)
            resp.headers.add("Warning", '399 viis "media changes in a re-INVITE are not supported"')
            txn.respond(resp)
            self.stats["reinvite_refused"] += 1
            return
        contacts = req.headers.getall("Contact")
        if contacts:
            d.remote_target = str(Address.parse(contacts[0]).uri)  # target refresh (§12.2.2)
        d.invite_cseq = req.cseq[0]
        resp = self._ok_for_invite(req, d, d.local_sdp, "application/sdp", None)
        txn.respond(resp)
        self._await_ack(d, resp)
        self.stats["reinvite_refreshed"] += 1

    def add_dialog(self, d: Dialog) -> None:
        """Adopt a dialog made elsewhere (e.g. a SUBSCRIBE subscription, RFC 6665), so that
        requests inside it are routed to ``d.handlers['request']`` and checked like others."""
        if not d.via_port:
            d.via_host, d.via_port = self.contact_host(d.peer), self.local_port
        self.dialogs[d.id] = d

    def end_dialog(self, d: Dialog, why: str = "local") -> None:
        """Forget a dialog without sending anything (its on_bye is not called)."""
        self._end_dialog(d, why, None, notify=False)

    def _end_dialog(self, d: Dialog, why: str, req: SipRequest | None, *, notify: bool = True) -> None:
        if not d.active:
            return
        d.state = "terminated"
        d.terminated_by = why
        d.awaiting_ack = False
        self._stop_ack_timers(d)
        self.dialogs.pop(d.id, None)
        log.info("sip.dialog.ended", call_id=d.call_id, why=why)
        cb = d.handlers.get("bye")
        if notify and cb is not None:
            self._spawn(self._callback(cb, d, req))

    async def _callback(self, cb: Callable[..., Any], *args: Any) -> None:
        try:
            await _maybe_await(cb(*args))
        except Exception:
            log.exception("sip.dialog_callback_failed")


# ---- helpers ---------------------------------------------------------------------------


async def _maybe_await(x: Any) -> Any:
    return await x if inspect.isawaitable(x) else x


def _angle(addr: str) -> str:
    a = addr.strip()
    return a if "<" in a else f"<{a}>"


def _replace_top_via(req: SipRequest, value: str) -> None:
    vias = req.headers.getall("Via")
    req.headers.remove("Via")
    for v in [value, *vias[1:]]:
        req.headers.add("Via", v)


def _with_auth(req: SipRequest, resp: SipResponse, credentials: tuple[str, str]) -> SipRequest | None:
    """The same request with Authorization (or Proxy-Authorization), CSeq + 1, new branch."""
    header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
    challenge = resp.get(header)
    if not challenge:
        return None
    user, password = credentials
    try:
        auth = build_authorization(
            challenge, username=user, password=password, method=req.method, uri=req.uri,
        )
    except ValueError:
        return None  # not a digest challenge
    again = SipRequest(req.method, req.uri, Headers(req.headers.items()), req.body)
    top = Via.parse(req.headers.getall("Via")[0])
    top.params["branch"] = new_branch()
    for k in ("received",):
        top.params.pop(k, None)
    _replace_top_via(again, str(top))
    again.headers.set("CSeq", f"{req.cseq[0] + 1} {req.method}")
    again.headers.set("Authorization" if resp.status == 401 else "Proxy-Authorization", auth)
    return again


def _stale(resp: SipResponse) -> bool:
    value = resp.get("WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate") or ""
    return "stale=true" in value.replace(" ", "").replace('"', "").lower()


def _sdp_core(sdp: str) -> list[str]:
    """SDP lines that describe the media (o= version bumps and ordering do not count)."""
    lines = [ln.strip() for ln in sdp.replace("\r\n", "\n").split("\n") if ln.strip()]
    return sorted(ln for ln in lines if not ln.startswith(("o=", "t=")))
