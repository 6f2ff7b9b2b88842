"""SIP transactions (RFC 3261 §17) with retransmission timers on an injectable clock.

Client non-INVITE: Timer E (retransmit at T1, doubling to T2, UDP only), Timer F (64·T1
timeout), Timer K (T4 absorbing stray responses on UDP, 0 on TCP).
Client INVITE: Timer A (retransmit, doubling), Timer B (64·T1), ACK for non-2xx, Timer D.
Server non-INVITE: retransmits the last response when the request is retransmitted,
Timer J (64·T1 on UDP, 0 on TCP).
Server INVITE (``ServerInviteTransaction``): 100 Trying at once; a non-2xx final response is
retransmitted on Timer G (T1 doubling to T2, UDP only) until the ACK (same branch) arrives,
then Timer I (T4 on UDP, 0 on TCP) absorbs stray ACKs; Timer H (64·T1) gives up waiting for
the ACK. A 2xx moves it to Accepted (RFC 6026) for Timer L (64·T1): retransmitted INVITEs
are absorbed there, and the 2xx itself is retransmitted by the UA core until the dialog's
ACK (a new transaction) arrives (RFC 3261 §13.3.1.4; see endpoint.py).

Requests and responses leave through ``send(message, addr, transport)``. Responses go
to the packet source (RFC 3581 behaviour), which is what GB/T 28181 devices behind NAT need.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from .clock import Clock, LoopClock, TimerHandle
from .sip import (
    BRANCH_MAGIC,
    SipMessage,
    SipParseError,
    SipRequest,
    SipResponse,
    Via,
    make_response,
)

log = logging.getLogger(__name__)

T1, T2, T4 = 0.5, 4.0, 5.0
Addr = tuple[str, int]
SendFn = Callable[[SipMessage, Addr, str], None]


class TransactionTimeout(Exception):
    """Timer B or F fired: no final response."""


class TransportError(ConnectionError):
    """The request could not be sent (e.g. the TCP connection was refused)."""


class _Base:
    def __init__(self, layer: TransactionLayer, key: tuple, addr: Addr, transport: str):
        self.layer, self.key, self.addr, self.transport = layer, key, addr, transport
        self.state = "trying"
        self._timers: dict[str, TimerHandle] = {}

    @property
    def reliable(self) -> bool:
        return self.transport.upper() != "UDP"

    def _start(self, name: str, delay: float, fn: Callable[[], None]) -> None:
        self._stop(name)
        self._timers[name] = self.layer.clock.call_later(delay, fn)

    def _stop(self, name: str) -> None:
        h = self._timers.pop(name, None)
        if h:
            h.cancel()

    def _terminate(self) -> None:
        self.state = "terminated"
        for name in list(self._timers):
            self._stop(name)
        self.layer._drop(self)


class ClientTransaction(_Base):
    def __init__(self, layer, key, request: SipRequest, addr, transport, on_final):
        super().__init__(layer, key, addr, transport)
        self.request = request
        self.invite = request.method == "INVITE"
        self.on_final: Callable[[SipResponse | Exception], None] = on_final
        self.on_provisional: Callable[[SipResponse], None] | None = None
        self.retransmits = 0
        self._interval = layer.t1

    def start(self) -> None:
        self.layer._send(self.request, self.addr, self.transport)
        if not self.reliable:
            self._start("A" if self.invite else "E", self._interval, self._retransmit)
        self._start("B" if self.invite else "F", 64 * self.layer.t1, self._timeout)

    def _retransmit(self) -> None:
        if self.state not in ("trying", "calling", "proceeding"):
            return
        self.retransmits += 1
        self.layer._send(self.request, self.addr, self.transport)
        if self.invite:
            self._interval *= 2
        elif self.state == "proceeding":
            self._interval = self.layer.t2
        else:
            self._interval = min(2 * self._interval, self.layer.t2)
        self._start("A" if self.invite else "E", self._interval, self._retransmit)

    def _timeout(self) -> None:
        if self.state in ("completed", "terminated"):
            return
        self._terminate()
        self.on_final(TransactionTimeout(f"{self.request.method} to {self.addr}: no final response"))

    def receive(self, resp: SipResponse) -> None:
        if self.state == "terminated":
            return
        if self.state == "completed":
            if self.invite and resp.status >= 300:
                self._send_ack(resp)  # retransmitted final response: ACK again
            return
        if resp.status < 200:
            self.state = "proceeding"
            if self.invite:
                self._stop("A")
            if self.on_provisional:
                self.on_provisional(resp)
            return
        self._stop("A")
        self._stop("E")
        self._stop("B")
        self._stop("F")
        if self.invite and resp.status < 300:
            self._terminate()  # the TU ACKs a 2xx
        elif self.invite:
            self.state = "completed"
            self._send_ack(resp)
            self._start("D", 0 if self.reliable else 32.0, self._terminate)
        else:
            self.state = "completed"
            self._start("K", 0 if self.reliable else self.layer.t4, self._terminate)
        self.on_final(resp)

    def _send_ack(self, resp: SipResponse) -> None:
        req = self.request
        ack = SipRequest("ACK", req.uri)
        ack.headers.add("Via", req.headers.getall("Via")[0])
        for name in ("Route",):
            for v in req.headers.getall(name):
                ack.headers.add(name, v)
        ack.headers.add("Max-Forwards", "70")
        ack.headers.add("From", req.get("From") or "")
        ack.headers.add("To", resp.get("To") or "")
        ack.headers.add("Call-ID", req.call_id)
        ack.headers.add("CSeq", f"{req.cseq[0]} ACK")
        self.layer._send(ack, self.addr, self.transport)


class ServerTransaction(_Base):
    def __init__(self, layer, key, request: SipRequest, addr, transport):
        super().__init__(layer, key, addr, transport)
        self.request: SipRequest | None = request  # None once completed over UDP (Timer J)
        self.last_response: SipResponse | None = None

    def respond(self, resp: SipResponse) -> None:
        if self.state in ("completed", "terminated"):
            return
        self.last_response = resp
        self.layer._send(resp, self.addr, self.transport)
        if resp.status < 200:
            self.state = "proceeding"
            return
        self.state = "completed"
        if self.reliable:
            self._start("J", 0, self._terminate)
        else:
            self.layer._linger(self)  # Timer J (64·T1), on the layer's one queue

    def reply(self, status: int, reason: str = "", **headers: str) -> SipResponse:
        """Build a response to the request, add headers (underscores → dashes), send it."""
        if self.request is None:  # completed and lingering (Timer J): nothing more to say
            assert self.last_response is not None
            return self.last_response
        resp = make_response(self.request, status, reason)
        for k, v in headers.items():
            resp.headers.add(k.replace("_", "-"), v)
        self.respond(resp)
        return resp

    def retransmitted(self) -> None:
        if self.last_response is not None and self.state in ("proceeding", "completed"):
            self.layer._send(self.last_response, self.addr, self.transport)


class ServerInviteTransaction(ServerTransaction):
    """INVITE server transaction (RFC 3261 §17.2.1 with the RFC 6026 Accepted state).

    States: proceeding → completed (non-2xx; Timer G retransmits, Timer H gives up) →
    confirmed (ACK; Timer I) → terminated; or proceeding → accepted (2xx; Timer L) →
    terminated. ``on_ack_timeout`` is called when Timer H fires (no ACK for a non-2xx).
    ``cancelled`` is set when a CANCEL matched it before a final response.
    """

    def __init__(self, layer, key, request: SipRequest, addr, transport):
        super().__init__(layer, key, request, addr, transport)
        self.state = "proceeding"
        self.cancelled = False
        self.to_tag: str | None = None  # the UAS's tag, so a 487 carries the same one
        self.on_ack_timeout: Callable[[], None] | None = None
        self.on_cancel: list[Callable[[], None]] = []
        self._interval = layer.t1

    def trying(self) -> None:
        """Send 100 Trying (the TU may take longer than 200 ms to answer, §17.2.1)."""
        if self.state == "proceeding" and self.last_response is None:
            resp = make_response(self.request, 100)
            self.last_response = resp
            self.layer._send(resp, self.addr, self.transport)

    def respond(self, resp: SipResponse) -> None:
        if self.state == "accepted" and 200 <= resp.status < 300:
            self.layer._send(resp, self.addr, self.transport)  # TU's 2xx retransmission
            return
        if self.state != "proceeding":
            return
        self.last_response = resp
        self.layer._send(resp, self.addr, self.transport)
        if resp.status < 200:
            return
        if resp.status < 300:
            self.state = "accepted"
            self._start("L", 64 * self.layer.t1, self._terminate)
            return
        self.state = "completed"
        if not self.reliable:
            self._start("G", self._interval, self._timer_g)
        self._start("H", 64 * self.layer.t1, self._timer_h)

    def _timer_g(self) -> None:
        if self.state != "completed" or self.last_response is None:
            return
        self.layer._send(self.last_response, self.addr, self.transport)
        self._interval = min(2 * self._interval, self.layer.t2)
        self._start("G", self._interval, self._timer_g)

    def _timer_h(self) -> None:
        if self.state != "completed":
            return
        self._terminate()
        if self.on_ack_timeout:
            self.on_ack_timeout()

    def ack(self) -> None:
        """The ACK for our non-2xx final response arrived (same branch as the INVITE)."""
        if self.state != "completed":
            return
        self.state = "confirmed"
        self._stop("G")
        self._stop("H")
        self._start("I", 0 if self.reliable else self.layer.t4, self._terminate)

    def retransmitted(self) -> None:
        # In Accepted, retransmitted INVITEs are absorbed (RFC 6026 §7.1): the UA core is
        # retransmitting the 2xx on its own timer already.
        if self.state in ("proceeding", "completed") and self.last_response is not None:
            self.layer._send(self.last_response, self.addr, self.transport)

    def add_cancel_callback(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` when a CANCEL matches (at once if one already did)."""
        if self.cancelled:
            fn()
        else:
            self.on_cancel.append(fn)

    def cancel(self) -> bool:
        """A CANCEL matched: answer 487 if no final response was sent. True if it did."""
        if self.state != "proceeding":
            return False
        self.cancelled = True
        self.respond(make_response(self.request, 487, "Request Terminated", to_tag=self.to_tag))
        for cb in list(self.on_cancel):
            try:
                cb()
            except Exception:
                log.exception("on_cancel callback failed")
        return True


class TransactionLayer:
    def __init__(
        self, send: SendFn, on_request: Callable[[SipRequest, ServerTransaction], None],
        *, clock: Clock | None = None, t1: float = T1, t2: float = T2, t4: float = T4,
        on_stray: Callable[[SipMessage], None] | None = None, auto_trying: bool = True,
    ) -> None:
        self.send_fn, self.on_request, self.on_stray = send, on_request, on_stray
        self.auto_trying = auto_trying
        self.clock = clock or LoopClock()
        self.t1, self.t2, self.t4 = t1, t2, t4
        self.clients: dict[tuple, ClientTransaction] = {}
        self.servers: dict[tuple, ServerTransaction] = {}
        self.sent = 0
        self._lingering: deque[tuple[float, ServerTransaction]] = deque()
        self._linger_timer: TimerHandle | None = None

    def _linger(self, txn: ServerTransaction) -> None:
        """Timer J of completed non-INVITE server transactions over UDP. Every one waits the
        same 64·T1, so deadlines arrive in order: one FIFO and one clock timer serve them
        all, instead of a timer (handle, callback, heap entry) per keepalive — with 20,000
        devices about 10,000 are lingering at any time."""
        self._lingering.append((self.clock.now() + 64 * self.t1, txn))
        txn.request = None  # from now on only the response is re-sent: let the request go
        if self._linger_timer is None:
            self._linger_timer = self.clock.call_later(64 * self.t1, self._expire_lingering)

    def _expire_lingering(self) -> None:
        self._linger_timer = None
        now, q = self.clock.now(), self._lingering
        while q and q[0][0] <= now:
            txn = q.popleft()[1]
            if txn.state == "completed":
                txn._terminate()
        if q:  # batch the next ones: Timer J is a lower bound, 20 ms late is harmless
            delay = max(q[0][0] - now, 0.02)
            self._linger_timer = self.clock.call_later(delay, self._expire_lingering)

    def _send(self, msg: SipMessage, addr: Addr, transport: str) -> None:
        self.sent += 1
        try:
            self.send_fn(msg, addr, transport)
        except Exception:  # a dead TCP connection must not break the timers
            log.exception("send to %s failed", addr)

    def _drop(self, txn: _Base) -> None:
        table = self.clients if isinstance(txn, ClientTransaction) else self.servers
        if table.get(txn.key) is txn:
            del table[txn.key]

    @staticmethod
    def _client_key(msg: SipMessage) -> tuple:
        return (msg.top_via.branch, msg.cseq[1])

    @staticmethod
    def _server_key(req: SipRequest) -> tuple:
        via = req.top_via
        method = "INVITE" if req.method == "ACK" else req.method
        if via.branch.startswith(BRANCH_MAGIC):
            return (via.branch, via.sent_by, method)
        # RFC 2543 peers (some old DVRs): match on the dialog-ish fields instead.
        return (req.call_id, req.cseq[0], method, req.from_.tag, str(via))

    def start_client(
        self, req: SipRequest, addr: Addr, transport: str = "UDP",
        on_final: Callable[[SipResponse | Exception], None] | None = None,
    ) -> ClientTransaction:
        key = self._client_key(req)
        txn = ClientTransaction(self, key, req, addr, transport, on_final or (lambda r: None))
        self.clients[key] = txn
        txn.start()
        return txn

    async def request(self, req: SipRequest, addr: Addr, transport: str = "UDP") -> SipResponse:
        fut: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()

        def done(r: SipResponse | Exception) -> None:
            if fut.done():
                return
            if isinstance(r, Exception):
                fut.set_exception(r)
            else:
                fut.set_result(r)

        self.start_client(req, addr, transport, done)
        return await fut

    def receive(self, msg: SipMessage) -> None:
        """Entry point for every parsed message from a transport (source/transport set)."""
        addr = msg.source or ("0.0.0.0", 0)
        if isinstance(msg, SipResponse):
            txn = self.clients.get(self._client_key(msg))
            if txn:
                txn.receive(msg)
            elif self.on_stray:
                self.on_stray(msg)
            return
        assert isinstance(msg, SipRequest)
        _mark_received(msg, addr)
        key = self._server_key(msg)
        stxn = self.servers.get(key)
        if stxn is not None:
            if msg.method == "ACK":
                if isinstance(stxn, ServerInviteTransaction) and stxn.state == "completed":
                    stxn.ack()
                elif isinstance(stxn, ServerInviteTransaction) and stxn.state == "accepted":
                    # A 2xx ACK that reuses the INVITE branch (seen on old devices): it
                    # still belongs to the dialog layer.
                    if self.on_stray:
                        self.on_stray(msg)
                return
            stxn.retransmitted()
            return
        if msg.method == "ACK":
            if self.on_stray:
                self.on_stray(msg)  # ACK for a 2xx belongs to the dialog layer
            return
        if msg.method == "INVITE":
            itxn = ServerInviteTransaction(self, key, msg, addr, msg.transport)
            self.servers[key] = itxn
            if self.auto_trying:
                itxn.trying()
            self.on_request(msg, itxn)
            return
        stxn = ServerTransaction(self, key, msg, addr, msg.transport)
        self.servers[key] = stxn
        self.on_request(msg, stxn)

    def transport_error(self, addr: Addr, transport: str, exc: Exception) -> int:
        """Fail the client transactions waiting on ``addr`` over ``transport`` (§17.1.4)."""
        failed = 0
        for txn in list(self.clients.values()):
            if txn.addr == addr and txn.transport.upper() == transport.upper() and \
                    txn.state in ("trying", "calling", "proceeding"):
                txn._terminate()
                txn.on_final(TransportError(f"{txn.request.method} to {addr}: {exc}"))
                failed += 1
        return failed

    def invite_for_cancel(self, cancel: SipRequest) -> ServerInviteTransaction | None:
        """The INVITE server transaction a CANCEL refers to (same branch, §9.2)."""
        via = cancel.top_via
        if via.branch.startswith(BRANCH_MAGIC):
            key: tuple = (via.branch, via.sent_by, "INVITE")
        else:
            key = (cancel.call_id, cancel.cseq[0], "INVITE", cancel.from_.tag, str(via))
        txn = self.servers.get(key)
        return txn if isinstance(txn, ServerInviteTransaction) else None

    def send(self, msg: SipMessage, addr: Addr, transport: str) -> None:
        """Send outside any transaction (ACK for a 2xx, the UA core's 2xx retransmissions)."""
        self._send(msg, addr, transport)


def _mark_received(req: SipRequest, addr: Addr) -> None:
    """Add received= and fill rport= on the top Via (RFC 3261 §18.2.1, RFC 3581)."""
    vias = req.headers.getall("Via")
    if not vias:
        raise SipParseError("no Via")
    via = Via.parse(vias[0])
    changed = False
    if via.host != addr[0]:
        via.params["received"] = addr[0]
        changed = True
    if "rport" in via.params and not via.params["rport"]:
        via.params["rport"] = str(addr[1])
        via.params.setdefault("received", addr[0])
        changed = True
    if changed:
        req.headers.remove("Via")
        req.headers.add("Via", str(via))
        for v in vias[1:]:
            req.headers.add("Via", v)
