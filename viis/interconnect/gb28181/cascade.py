"""Lower-platform role (cascade up): VIIS registers to any number of upper platforms — the
video sharing platform, the police image platform, the emergency command platform — and
answers them as a GB/T 28181 lower platform (Q13.1: interfaces kept to those platforms,
connected level by level, with permissions by security level; Q12.1, N12.1: the national
standard).

- :class:`CascadeClient`, one per upper platform: REGISTER with digest (qop or not),
  re-register at half the granted period, keepalive at the configured interval, and after
  ``keepalive_misses`` unanswered keepalives, or an upper that answers a keepalive with an
  error (it restarted and forgot us), register again — with exponential backoff, capped,
  while it fails. Its :meth:`CascadeClient.diagnose` says in plain words why it is not
  registered (wrong password, unknown platform ID, unreachable, rejected re-register).
- Answers to the upper: Catalog (split into small messages), DeviceInfo, DeviceStatus,
  RecordInfo from the recording index, Catalog SUBSCRIBE with NOTIFY when a shared camera
  goes offline or online, Alarm notifications for health faults — all in the upper's
  charset, all through its share list: a camera above the platform's grade is never in a
  catalog, never answered in RecordInfo and never playable (:meth:`Cascade.channel`).
- :class:`Cascade` owns one SIP endpoint for all upper platforms, routes each request to
  its client by the upper's ID and source address, and is the hook for the media side:
  :meth:`Cascade.set_invite_handler` (INVITEs from an upper, resolved to the upper) and
  :meth:`Cascade.principal` (the identity the one door writes register entries under).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from viis import __version__
from viis.access.policy import OPERATOR, Principal
from viis.core.logging import get_logger
from viis.interconnect.gb28181 import cascade_answers as ans
from viis.interconnect.gb28181 import cascade_store as store
from viis.interconnect.gb28181.cascade_answers import Query, QueryError, parse_query
from viis.interconnect.gb28181.cascade_store import Share, UpperPlatform
from viis.interconnect.gb28181.clock import Clock, LoopClock, TimerHandle
from viis.interconnect.gb28181.dialog import Dialog, DialogError
from viis.interconnect.gb28181.endpoint import InviteAnswer, SipEndpoint, new_call_id
from viis.interconnect.gb28181.sip import (
    Address,
    SipRequest,
    SipResponse,
    make_response,
    new_tag,
)
from viis.interconnect.gb28181.trace import SipTrace
from viis.interconnect.gb28181.transaction import T1, ServerTransaction, TransactionTimeout

log = get_logger(__name__)

MANSCDP = "Application/MANSCDP+xml"
SEND_WINDOW = 8  # response messages in flight to one upper
CLOCK_WARN_S = 2.0  # the upper's Date this far from our clock: a warning in diagnose()
# no final response (Timer F), or a TCP connection that could not be made (TransportError)
NO_ANSWER = (TransactionTimeout, OSError)
InviteHandler = Callable[[UpperPlatform, SipRequest, Any], Awaitable[Any] | Any]

CAUSES = {
    "unreachable": "no answer from {host}:{port} over {transport}: the upper platform is down, "
    "its address or port is wrong here, or a firewall drops SIP",
    "wrong-password": "the upper platform refused our credentials ({status} after our digest "
    "answer): the password configured here for {name} does not match the one it holds for our "
    "platform ID {local_id}",
    "rechallenged": "the upper platform challenged again after our digest answer (401): wrong "
    "password, or its realm {realm!r} is not the one it holds our password under",
    "no-challenge": "the upper platform answered 401 without a digest challenge we can answer",
    "unknown-id": "the upper platform does not know our platform ID {local_id} ({status}): add "
    "this VIIS there as a lower platform with that ID",
    "bad-request": "the upper platform rejected our REGISTER as malformed (400 {reason}); a "
    "known cause is a re-register it does not accept — a new registration (new Call-ID) "
    "follows",
    "server-error": "the upper platform answered {status} {reason}: it is overloaded or "
    "misconfigured; retrying with backoff",
    "forgot-us": "the upper platform answered {status} to a keepalive: it no longer knows us "
    "(restarted, or our registration expired there); registering again",
    "keepalive-lost": "{n} keepalives in a row got no answer: the upper platform is gone or "
    "the network drops SIP; registering again",
}


@dataclass
class Subscription:
    """A catalog subscription of an upper: its dialog (RFC 6665) and when it expires."""

    call_id: str
    dialog: Dialog
    event: str
    expires_at: float


def _expires(req: SipRequest) -> int:
    text = (req.get("Expires") or "3600").strip()
    return min(int(text), 86_400) if text.isdigit() and len(text) < 9 else 3600


async def _maybe_await(x: Any) -> Any:
    return await x if asyncio.iscoroutine(x) or isinstance(x, asyncio.Future) else x


class CascadeClient:
    """Registration, keepalive and answers towards one upper platform."""

    def __init__(self, cascade: Cascade, upper: UpperPlatform) -> None:
        self.c = cascade
        self.upper = upper
        self.state = "idle"  # idle | registering | registered | backoff | stopped
        self.registered = False
        self.call_id = new_call_id()
        self.from_tag = new_tag()
        self.cseq = 0
        self.sn = 0
        self.granted_expires = 0
        self.registered_at: float | None = None  # clock.now()
        self.registrations = 0
        self.failures = 0  # consecutive failed registrations
        self.backoffs: list[float] = []  # delays waited, newest last (diagnostics, tests)
        self.next_attempt_at: float | None = None
        self.keepalives_sent = self.keepalives_ok = 0
        self.keepalive_misses = 0  # in a row
        self.last_keepalive_ok: float | None = None
        self.last_error = ""
        self.cause = ""
        self.warnings: list[str] = []
        self.subscriptions: dict[str, Subscription] = {}
        self.known: dict[str, Share] | None = None  # channel -> share, as subscribers know it
        self.messages_sent = 0
        self.clock_offset_s: float | None = None  # upper's Date minus our wall clock
        self._ka_outstanding = False
        self._lost_reason = ""
        self._wake: asyncio.Future | None = None
        self._timer: TimerHandle | None = None
        self._task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._ips: set[str] = set()

    # ---- lifecycle -----------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        return self.c.clock

    @property
    def transport(self) -> str:
        return self.upper.transport

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(self.upper.host, self.upper.port,
                                           type=socket.SOCK_DGRAM)
            self._ips = {i[4][0] for i in infos}
        except OSError as e:
            self._ips = set()
            self.note(f"cannot resolve {self.upper.host}: {e}")
        self._task = loop.create_task(self._run(), name=f"gb-cascade-{self.upper.server_id}")

    async def stop(self, *, unregister: bool = True) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for t in list(self._tasks):
            t.cancel()
        if unregister and self.registered:
            try:  # best effort, short: Expires 0
                await asyncio.wait_for(self._register_once(expires=0), 2.0)
            except (TimeoutError, *NO_ANSWER):
                pass
        self.registered = False
        self.state = "stopped"

    def note(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)
            del self.warnings[:-10]

    def _spawn(self, coro) -> asyncio.Task:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    # ---- clock-driven waiting (tests drive the clock) -------------------------------------

    async def _sleep(self, delay: float) -> None:
        """Wait ``delay`` on the injected clock, or until :meth:`_interrupt`."""
        fut = asyncio.get_running_loop().create_future()
        self._wake = fut

        def fire() -> None:
            if not fut.done():
                fut.set_result(None)

        self._timer = self.clock.call_later(delay, fire)
        try:
            await fut
        finally:
            self._timer.cancel()
            self._wake = None

    def _interrupt(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def backoff_delay(self) -> float:
        base, cap = self.c.backoff_base, self.c.backoff_cap
        return min(cap, base * 2 ** max(0, self.failures - 1))

    async def _run(self) -> None:
        while True:
            try:
                ok = await self._register_once()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # never let one upper's surprise end its client
                log.exception("gb.cascade.register_error", upper=self.upper.server_id)
                self.last_error = f"REGISTER: {type(e).__name__}"
                self.cause = "internal error while registering; retrying with backoff"
                self.registered = False
                ok = False
            if not ok:
                self.failures += 1
                delay = self.backoff_delay()
                self.backoffs.append(delay)
                del self.backoffs[:-50]
                self.state = "backoff"
                self.next_attempt_at = self.clock.now() + delay
                log.warning("gb.cascade.register_failed", upper=self.upper.server_id,
                            cause=self.cause, retry_in_s=delay)
                await self._sleep(delay)
                continue
            self.failures = 0
            self.next_attempt_at = None
            await self._keepalive_until_refresh()

    # ---- registration ----------------------------------------------------------------------

    def _request(self, method: str, *, body: bytes = b"", expires: int | None = None,
                 call_id: str | None = None, cseq: int | None = None) -> SipRequest:
        u = self.upper
        ep = self.c.endpoint
        uri = f"sip:{u.server_id}@{u.domain}"
        to = f"sip:{u.local_id if method == 'REGISTER' else u.server_id}@{u.domain}"
        req = ep.build_request(
            method, uri, to, f"sip:{u.local_id}@{u.domain}", transport=u.transport,
            addr=u.address, call_id=call_id or new_call_id(), cseq=cseq or 1,
            from_tag=self.from_tag if method == "REGISTER" else new_tag(), body=body,
            content_type=MANSCDP if body else None, expires=expires,
            contact=method == "REGISTER")
        if method == "REGISTER":
            # our Contact carries our platform ID, not the endpoint's default one
            req.headers.set("Contact", f"<sip:{u.local_id}@{ep.contact_host(u.address)}:"
                                       f"{ep.local_port}>")
        return req

    def _fail(self, key: str, **kw: Any) -> bool:
        u = self.upper
        self.cause = CAUSES[key].format(host=u.host, port=u.port, transport=u.transport,
                                        name=u.name, local_id=u.local_id, **kw)
        self.registered = False
        return False

    async def _register_once(self, expires: int | None = None) -> bool:
        u = self.upper
        want = u.register_expires if expires is None else expires
        self.state = "registering" if want else self.state
        self.cseq += 1
        req = self._request("REGISTER", expires=want, call_id=self.call_id, cseq=self.cseq)
        try:
            resp = await self.c.endpoint.request(req, u.address, u.transport,
                                                 credentials=(u.local_id, u.password))
        except NO_ANSWER as e:
            self.last_error = f"REGISTER: {e}"[:200]
            return self._fail("unreachable")
        self.cseq = max(self.cseq, resp.cseq[0])
        if resp.status == 423 and want:
            me = (resp.get("Min-Expires") or "").strip()
            if me.isdigit():
                self.cseq += 1
                req = self._request("REGISTER", expires=int(me), call_id=self.call_id,
                                    cseq=self.cseq)
                try:
                    resp = await self.c.endpoint.request(req, u.address, u.transport,
                                                         credentials=(u.local_id, u.password))
                except NO_ANSWER as e:
                    self.last_error = f"REGISTER: {e}"[:200]
                    return self._fail("unreachable")
                self.cseq = max(self.cseq, resp.cseq[0])
        self.last_error = f"REGISTER {resp.status} {resp.reason}".strip()
        if 200 <= resp.status < 300:
            if not want:
                self.registered = False
                self.state = "unregistered"
                return True
            granted = _granted(resp, want)
            first = not self.registered
            self.registered = True
            self.state = "registered"
            self.granted_expires = granted
            self.registered_at = self.clock.now()
            self.registrations += 1
            self._time_sync(resp.get("Date"))
            self.cause = self.last_error = ""
            self._lost_reason = ""
            self.keepalive_misses = 0
            self._ka_outstanding = False
            if first:
                log.info("gb.cascade.registered", upper=u.server_id, expires=granted)
            return True
        sent_auth = resp.cseq[0] > req.cseq[0]  # the endpoint answered a challenge
        if resp.status == 401:
            if sent_auth:
                realm = _realm(resp.get("WWW-Authenticate") or "")
                return self._fail("rechallenged", realm=realm)
            return self._fail("no-challenge")
        if resp.status in (403,) and sent_auth:
            return self._fail("wrong-password", status=resp.status)
        if resp.status in (403, 404):
            return self._fail("unknown-id", status=resp.status)
        if resp.status == 400:
            self.call_id, self.from_tag, self.cseq = new_call_id(), new_tag(), 0
            return self._fail("bad-request", reason=resp.reason)
        return self._fail("server-error", status=resp.status, reason=resp.reason)

    def _time_sync(self, date: str | None) -> None:
        """GB/T 28181 time sync: the upper's 200 to REGISTER carries its time (Beijing, no
        zone). VIIS does not set the system clock from it (NTP does); it measures the
        difference and warns when it is over ``CLOCK_WARN_S`` (Q19.3: accurate time)."""
        if not date:
            return
        try:
            theirs = ans.parse_gb_time(date) / 1000
        except ValueError:
            self.note(f"the upper's Date {date[:40]!r} is not GB time (2024-05-01T12:00:00.000)")
            return
        self.clock_offset_s = round(theirs - self.clock.wall(), 3)
        if abs(self.clock_offset_s) > CLOCK_WARN_S:
            self.note(f"the upper platform's clock differs from ours by {self.clock_offset_s:+.1f} s "
                      "(its Date when we registered): check NTP on both sides, footage times "
                      "are compared across platforms")

    # ---- keepalive ---------------------------------------------------------------------------

    async def _keepalive_until_refresh(self) -> None:
        u = self.upper
        assert self.registered_at is not None
        refresh_at = self.registered_at + self.granted_expires / 2
        while True:
            now = self.clock.now()
            if now >= refresh_at:
                return  # re-register before expiry
            await self._sleep(min(u.keepalive_s, refresh_at - now))
            if self._lost_reason:
                self.registered = False
                self.state = "lost"
                self.cause = self._lost_reason
                log.warning("gb.cascade.lost", upper=u.server_id, cause=self.cause)
                return
            if self.clock.now() >= refresh_at:
                return
            if self._ka_outstanding:
                self.keepalive_misses += 1
                if self.keepalive_misses >= u.keepalive_misses:
                    self.registered = False
                    self.state = "lost"
                    self.cause = CAUSES["keepalive-lost"].format(n=self.keepalive_misses)
                    self.last_error = "keepalives unanswered"
                    log.warning("gb.cascade.lost", upper=u.server_id, cause=self.cause)
                    return
            self._spawn(self._keepalive())

    def next_sn(self) -> int:
        self.sn += 1
        return self.sn

    async def _keepalive(self) -> None:
        u = self.upper
        self._ka_outstanding = True
        self.keepalives_sent += 1
        try:
            resp = await self.send_message(ans.keepalive_body(u, self.next_sn()))
        except NO_ANSWER:
            return  # counted as a miss at the next tick
        if 200 <= resp.status < 300:
            self._ka_outstanding = False
            self.keepalive_misses = 0
            self.keepalives_ok += 1
            self.last_keepalive_ok = self.clock.now()
        elif resp.status >= 400:
            self._ka_outstanding = False
            self._lost_reason = CAUSES["forgot-us"].format(status=resp.status)
            self._interrupt()

    # ---- sending to the upper ---------------------------------------------------------------

    async def send_message(self, body: bytes) -> SipResponse:
        """A MANSCDP MESSAGE to the upper platform (responses, alarms, keepalives)."""
        u = self.upper
        req = self._request("MESSAGE", body=body)
        self.messages_sent += 1
        return await self.c.endpoint.request(req, u.address, u.transport)

    async def _send_all(self, bodies: list[bytes], what: str) -> int:
        """Send the messages of one answer, at most ``SEND_WINDOW`` transactions in flight
        (one at a time would cost a round trip per message: a 1,000-camera catalog over a
        20 ms link would take 20 s); returns how many the upper accepted."""
        window = asyncio.Semaphore(SEND_WINDOW)

        async def one(b: bytes) -> bool:
            async with window:
                try:
                    r = await self.send_message(b)
                except NO_ANSWER:
                    self.last_error = f"{what}: a response message got no answer"
                    return False
                if 200 <= r.status < 300:
                    return True
                self.last_error = f"{what}: the upper answered {r.status} to a response message"
                return False

        return sum(await asyncio.gather(*(one(b) for b in bodies)))

    # ---- requests from the upper ---------------------------------------------------------------

    def from_upper(self, req: SipRequest) -> bool:
        return req.source is None or not self._ips or req.source[0] in self._ips

    async def on_message(self, req: SipRequest, txn: ServerTransaction) -> None:
        try:
            q = parse_query(req.body, req.charset)
        except QueryError as e:
            self.last_error = f"MESSAGE from the upper: {e}"
            txn.reply(400, "Bad MANSCDP")
            return
        if q.root == "Query":
            handler = {"Catalog": self._catalog, "DeviceInfo": self._device_info,
                       "DeviceStatus": self._device_status,
                       "RecordInfo": self._record_info}.get(q.cmd)
            if handler is None:
                txn.reply(200)  # accepted, not supported: the upper gets no response message
                self.note(f"query {q.cmd!r} is not answered by this lower platform")
                return
            bodies = await handler(q)
            if bodies is None:
                txn.reply(404, "Not Found")  # not ours, or not shared with this upper (Q13.1)
                return
            txn.reply(200)
            self._spawn(self._send_all(bodies, q.cmd))
            return
        if q.root == "Control":
            sh = await self.c.share_async(self.upper, q.device_id)
            if sh is None:
                txn.reply(404, "Not Found")
            elif q.text("PTZCmd") and not sh.ptz_allowed:
                txn.reply(403, "PTZ Not Allowed")
            elif self.c.control_handler is not None:
                await _maybe_await(self.c.control_handler(self.upper, sh, q, txn))
                if txn.state in ("trying", "proceeding"):
                    txn.reply(200)
            else:
                txn.reply(501, "Not Implemented")
            return
        txn.reply(200)  # Notify/Response from the upper: accepted

    async def _catalog(self, q: Query) -> list[bytes] | None:
        if q.device_id not in (self.upper.local_id, ""):
            return None
        shares = await self.c.shares_async(self.upper)
        return ans.catalog_bodies(self.upper, q.sn, shares, self.c.online)

    async def _device_info(self, q: Query) -> list[bytes] | None:
        u = self.upper
        if q.device_id in (u.local_id, ""):
            n = len(await self.c.shares_async(u))
            return [ans.device_info_body(u, q.sn, u.local_id, self.c.name, n, __version__)]
        sh = await self.c.share_async(u, q.device_id)
        if sh is None:
            return None
        return [ans.device_info_body(u, q.sn, sh.channel_id, sh.name, 1, __version__)]

    async def _device_status(self, q: Query) -> list[bytes] | None:
        u = self.upper
        now = self.c.app_clock_ms()
        if q.device_id in (u.local_id, ""):
            return [ans.device_status_body(u, q.sn, u.local_id, True, True, now)]
        sh = await self.c.share_async(u, q.device_id)
        if sh is None:
            return None
        on = self.c.online(sh.camera_id)
        return [ans.device_status_body(u, q.sn, sh.channel_id, on, on, now)]

    async def _record_info(self, q: Query) -> list[bytes] | None:
        sh = await self.c.share_async(self.upper, q.device_id)
        if sh is None:
            return None  # unknown, or above the grade: never answered (Q13.1)
        try:
            start = ans.parse_gb_time(q.text("StartTime"))
            end = ans.parse_gb_time(q.text("EndTime"))
        except ValueError:
            self.last_error = "RecordInfo with unreadable StartTime/EndTime"
            return [ans.xml_body("Response", "RecordInfo", q.sn, sh.channel_id,
                                 [("Name", sh.name)], items=[], list_tag="RecordList",
                                 sum_num=0, charset=self.upper.charset)]
        end = min(end, start + ans.MAX_RECORD_SPAN_MS)
        kind = q.text("Type").lower()
        # VIIS records continuously: only "time" recordings exist (an alarm query gets none)
        wanted = kind in ("", "all", "time")
        ranges = await self.c.ranges_async(sh.camera_id, start, end) \
            if end > start and wanted else []
        return ans.record_info_bodies(self.upper, q.sn, sh, ranges)

    # ---- catalog subscription --------------------------------------------------------------

    def _contact(self) -> str:
        ep = self.c.endpoint
        return f"<sip:{self.upper.local_id}@{ep.contact_host(self.upper.address)}:{ep.local_port}>"

    async def on_subscribe(self, req: SipRequest, txn: ServerTransaction) -> None:
        """A new catalog subscription: a dialog of the endpoint (so that refreshes and
        unsubscribes inside it reach :meth:`_in_subscription`, and NOTIFYs carry its tags and
        CSeq), answered 200 with the granted Expires."""
        event = (req.get("Event") or "").strip()
        if not event.lower().startswith("catalog"):
            txn.reply(489, "Bad Event")
            return
        expires = _expires(req)
        tag = new_tag()
        ep = self.c.endpoint
        if expires:
            d = Dialog.from_uas(req, tag, self._contact())
            d.via_host, d.via_port = ep.contact_host(req.source), ep.local_port
            d.created_at = self.clock.now()
            d.handlers = {"request": self._in_subscription}
            ep.dialogs[d.id] = d
            self.subscriptions[req.call_id] = Subscription(
                req.call_id, d, event, self.clock.now() + expires)
        r = make_response(req, 200, to_tag=tag)
        r.headers.add("Expires", str(expires))
        r.headers.add("Contact", self._contact())
        txn.respond(r)

    async def _in_subscription(self, d: Dialog, req: SipRequest, txn: ServerTransaction) -> int:
        """Refresh (``Expires: n``) or end (``Expires: 0``) a subscription in its dialog."""
        if req.method != "SUBSCRIBE":
            return 405
        expires = _expires(req)
        sub = self.subscriptions.get(d.call_id)
        if not expires or sub is None:
            self._end_subscription(d.call_id)
        else:
            sub.expires_at = self.clock.now() + expires
        txn.reply(200, Expires=str(expires), Contact=self._contact())
        return 200

    def _end_subscription(self, call_id: str) -> None:
        sub = self.subscriptions.pop(call_id, None)
        if sub is not None and sub.dialog.active:
            self.c.endpoint._end_dialog(sub.dialog, "unsubscribed", None, notify=False)

    async def notify_catalog(self, changes: list[tuple[Share, str]]) -> int:
        """NOTIFY every live catalog subscription of these channel events; returns how many
        NOTIFYs were accepted."""
        now = self.clock.now()
        for k in [k for k, s in self.subscriptions.items()
                  if s.expires_at <= now or not s.dialog.active]:
            self._end_subscription(k)
        ok = 0
        for sub in list(self.subscriptions.values()):
            for body in ans.catalog_event_bodies(self.upper, self.next_sn(), changes):
                left = max(0, int(sub.expires_at - now))
                try:
                    r = await self.c.endpoint.in_dialog(
                        sub.dialog, "NOTIFY", body, MANSCDP,
                        headers={"Event": sub.event,
                                 "Subscription-State": f"active;expires={left}"})
                except (*NO_ANSWER, DialogError):
                    self.last_error = "catalog NOTIFY got no answer; the subscription ended"
                    self.subscriptions.pop(sub.call_id, None)
                    break
                if 200 <= r.status < 300:
                    ok += 1
                elif not sub.dialog.active:  # 481/408: the upper dropped the subscription
                    self.subscriptions.pop(sub.call_id, None)
                    break
        return ok

    async def send_alarm(self, device_id: str, kind: str, severity: str, description: str,
                         at_ms: int) -> bool:
        body = ans.alarm_body(self.upper, self.next_sn(), device_id, kind, severity,
                              description, at_ms)
        try:
            r = await self.send_message(body)
        except NO_ANSWER:
            self.last_error = "Alarm notification got no answer"
            return False
        return 200 <= r.status < 300

    # ---- diagnostics -----------------------------------------------------------------------------

    def diagnose(self) -> dict[str, Any]:
        now = self.clock.now()
        wall = self.clock.wall()

        def at(t: float | None) -> float | None:
            return None if t is None else round(wall - (now - t), 3)

        expires_in = None
        if self.registered and self.registered_at is not None:
            expires_in = round(self.registered_at + self.granted_expires - now, 1)
        return {
            "upper_id": self.upper.id, "server_id": self.upper.server_id,
            "name": self.upper.name, "state": self.state, "registered": self.registered,
            "registered_at": at(self.registered_at), "expires_in_s": expires_in,
            "registrations": self.registrations, "failures_in_a_row": self.failures,
            "next_attempt_in_s": None if self.next_attempt_at is None
            else round(max(0.0, self.next_attempt_at - now), 1),
            "keepalives_sent": self.keepalives_sent, "keepalives_ok": self.keepalives_ok,
            "keepalive_misses_in_a_row": self.keepalive_misses,
            "last_keepalive_ok": at(self.last_keepalive_ok),
            "last_error": self.last_error, "cause": self.cause, "warnings": list(self.warnings),
            "subscriptions": len(self.subscriptions), "messages_sent": self.messages_sent,
            "clock_offset_s": self.clock_offset_s,
        }


def _granted(resp: SipResponse, want: int) -> int:
    e = (resp.get("Expires") or "").strip()
    if e.isdigit():
        return int(e)
    for c in resp.headers.getall("Contact"):
        v = Address.parse(c).params.get("expires", "")
        if v.isdigit():
            return int(v)
    return want


def _realm(challenge: str) -> str:
    from viis.interconnect.gb28181.digest import parse_auth

    return parse_auth(challenge)[1].get("realm", "") if challenge else ""


class Cascade:
    """All upper platforms of this VIIS, on one SIP endpoint."""

    def __init__(self, app, *, host: str = "0.0.0.0", port: int = 5061,
                 clock: Clock | None = None, t1: float = T1, status_fn:
                 Callable[[int], bool | None] | None = None, backoff_base: float = 2.0,
                 backoff_cap: float = 120.0, status_poll_s: float = 5.0,
                 name: str = "VIIS", public_host: str | None = None) -> None:
        self.app = app
        self.clock = clock or LoopClock()
        self.name = name
        self.endpoint = SipEndpoint("00000000002000000000", "0000000000", host, port,
                                    clock=self.clock, t1=t1, public_host=public_host,
                                    user_agent=f"VIIS/{__version__}")
        self.endpoint.on_request("MESSAGE", self._on_message)
        self.endpoint.on_request("SUBSCRIBE", self._on_subscribe)
        self.endpoint.on_invite(self._on_invite)
        self.trace = SipTrace(clock=self.clock)  # per upper, off until switched on
        self.endpoint.add_trace(self.trace)
        self.clients: dict[int, CascadeClient] = {}
        self.status_fn = status_fn
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.status_poll_s = status_poll_s
        self.invite_handler: InviteHandler | None = None
        self.control_handler: Callable[..., Any] | None = None
        self._raw: dict[int, bool] = {}  # recorder state per camera
        self._last: dict[int, bool] = {}  # the state subscribers last heard of
        self._lost: set[int] = set()  # cameras with an open signal-loss fault
        self._poll: TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task] = set()
        self._reload_lock = asyncio.Lock()
        self.alarms_sent = 0

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if isinstance(self.clock, LoopClock) and self.clock._loop is None:
            self.clock._loop = self._loop  # diagnose() is also read from the API's threads
        await self.endpoint.start()
        await self.reload()
        self._schedule_poll()
        log.info("gb.cascade.started", port=self.endpoint.local_port, uppers=len(self.clients))

    async def stop(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
        await asyncio.gather(*(c.stop() for c in self.clients.values()), return_exceptions=True)
        self.clients.clear()
        for t in list(self._tasks):
            t.cancel()
        await self.endpoint.stop()

    @property
    def local_port(self) -> int:
        return self.endpoint.local_port

    def request_reload(self) -> None:
        """Thread-safe: re-read the upper platforms soon (the REST API calls this)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(lambda: self._spawn(self.reload()))

    async def reload(self) -> None:
        """Start, restart or stop clients to match the enabled upper platforms in the DB."""
        async with self._reload_lock:
            await self._reload()

    async def _reload(self) -> None:
        uppers = await self._db(lambda s: store.list_uppers(s))
        want = {u.id: u for u in uppers if u.enabled}
        self.trace.own_ids = {u.local_id for u in uppers}
        for uid in list(self.clients):
            c = self.clients[uid]
            if uid not in want or want[uid] != c.upper:
                await c.stop()
                del self.clients[uid]
        for uid, u in want.items():
            if uid not in self.clients:
                c = self.clients[uid] = CascadeClient(self, u)
                await c.start()
        for c in list(self.clients.values()):
            await self._sync_shares(c, await self.shares_async(c.upper))

    async def _sync_shares(self, c: CascadeClient, shares: list[Share]) -> int:
        """Catalog events ADD/DEL for channels that came into or left what the upper may see
        (a share list edited, a camera disabled or raised above the grade: Q13.1)."""
        now = {sh.channel_id: sh for sh in shares}
        before, c.known = c.known, now
        if before is None:
            return 0
        changes = [(sh, "ADD") for ch, sh in now.items() if ch not in before]
        changes += [(sh, "DEL") for ch, sh in before.items() if ch not in now]
        if changes and c.subscriptions:
            await c.notify_catalog(changes)
        return len(changes)

    def _spawn(self, coro) -> asyncio.Task:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    async def _db(self, fn: Callable[[Any], Any]) -> Any:
        def work():
            with self.app.db.session() as s:
                return fn(s)

        return await asyncio.get_running_loop().run_in_executor(None, work)

    def app_clock_ms(self) -> int:
        return self.app.clock.wall_ms()

    # ---- lookups (the media side and the answers use these) ------------------------------------

    def client(self, upper_id: int | str) -> CascadeClient | None:
        if isinstance(upper_id, int):
            return self.clients.get(upper_id)
        return next((c for c in self.clients.values() if c.upper.server_id == upper_id), None)

    def _upper_id(self, upper: UpperPlatform | int | str) -> int | None:
        if isinstance(upper, UpperPlatform):
            return upper.id
        if isinstance(upper, int):
            return upper
        c = self.client(upper)
        if c is not None:
            return c.upper.id
        with self.app.db.session() as s:
            try:
                return store.get_upper(s, upper).id
            except Exception:
                return None

    def share(self, upper: UpperPlatform | int | str, channel_id: str) -> Share | None:
        """The share behind an upper's channel ID, or None when it may not see it (Q13.1)."""
        uid = self._upper_id(upper)
        if uid is None:
            return None
        with self.app.db.session() as s:
            return store.resolve_channel(s, uid, channel_id)

    def channel(self, upper_id: UpperPlatform | int | str, channel_id: str) -> int | None:
        """The camera an upper platform means by ``channel_id``, or None: unknown channel,
        disabled camera, or a camera above the platform's grade is never playable (Q13.1)."""
        sh = self.share(upper_id, channel_id)
        return sh.camera_id if sh is not None else None

    async def channel_async(self, upper: UpperPlatform | int | str, channel_id: str) -> int | None:
        """:meth:`channel` off the event loop (its database read in a worker thread)."""
        return await asyncio.get_running_loop().run_in_executor(None, self.channel, upper,
                                                                channel_id)

    async def share_async(self, upper: UpperPlatform, channel_id: str) -> Share | None:
        return await self._db(lambda s: store.resolve_channel(s, upper.id, channel_id))

    async def shares_async(self, upper: UpperPlatform) -> list[Share]:
        return await self._db(lambda s: store.shares(s, upper.id, effective=True))

    async def ranges_async(self, camera_id: int, start: int, end: int) -> list[tuple[int, int]]:
        return await self._db(lambda s: ans.record_ranges(s, camera_id, start, end))

    def principal(self, upper_id: UpperPlatform | int | str) -> Principal:
        """The identity an upper platform's views are decided and registered under by the one
        door (viis.access.door): named after its server ID, with the platform's grade as its
        clearance, watching like the operator on duty (live and playback within clearance;
        a copy still needs an approved request). Q13.1, N16.1."""
        c = self.client(upper_id) if not isinstance(upper_id, UpperPlatform) else None
        u = upper_id if isinstance(upper_id, UpperPlatform) else (c.upper if c else None)
        if u is None:
            uid = self._upper_id(upper_id)
            if uid is None:
                raise LookupError(f"no upper platform {upper_id}")
            with self.app.db.session() as s:
                u = store.get_upper(s, uid)
        return Principal(f"gb28181:{u.server_id}", frozenset({OPERATOR}),
                         clearance=u.max_security_level, trained=True, work_id=u.server_id)

    def set_invite_handler(self, fn: InviteHandler | None) -> None:
        """``fn(upper, req, txn) -> InviteAnswer`` (sync or async) answers INVITEs of upper
        platforms; the endpoint then makes the dialog and routes ACK/BYE/INFO as the
        answer's callbacks say. Resolve the channel with :meth:`channel`."""
        self.invite_handler = fn

    def set_control_handler(self, fn: Callable[..., Any] | None) -> None:
        """``fn(upper, share, query, txn)`` for DeviceControl of a shared channel whose PTZ
        is allowed (refused with 403 before it reaches ``fn`` when not)."""
        self.control_handler = fn

    # ---- incoming requests ---------------------------------------------------------------------

    def _client_for(self, req: SipRequest) -> CascadeClient | None:
        try:
            sender = req.from_.uri.user
        except Exception:
            return None
        c = self.client(sender)
        if c is not None and not c.from_upper(req):
            c.note(f"a request claiming to be from {sender} came from {req.source[0]}, not "
                   f"from {c.upper.host}; refused")
            return None
        return c

    async def _on_message(self, req: SipRequest, txn: ServerTransaction) -> None:
        c = self._client_for(req)
        if c is None:
            txn.reply(403, "Unknown Upper Platform")
            return
        await c.on_message(req, txn)

    async def _on_subscribe(self, req: SipRequest, txn: ServerTransaction) -> None:
        c = self._client_for(req)
        if c is None:
            txn.reply(403, "Unknown Upper Platform")
            return
        await c.on_subscribe(req, txn)

    async def _on_invite(self, req: SipRequest, txn) -> InviteAnswer:
        c = self._client_for(req)
        if c is None:
            return InviteAnswer(403, reason="Unknown Upper Platform")
        if self.invite_handler is None:
            return InviteAnswer(501, reason="No Media Answering")
        answer = await _maybe_await(self.invite_handler(c.upper, req, txn))
        # the endpoint builds the dialog's Contact right after this returns (no await in
        # between): name our platform ID towards this upper in it
        self.endpoint.local_id, self.endpoint.domain = c.upper.local_id, c.upper.domain
        return answer

    # ---- camera status and health ----------------------------------------------------------------

    def online(self, camera_id: int) -> bool:
        """Recording (the recorder's state, or True without a status source) and no open
        signal-loss fault."""
        if camera_id in self._lost:
            return False
        if camera_id not in self._raw:
            if self.status_fn is None:
                return True
            self._raw[camera_id] = bool(self.status_fn(camera_id))
        return self._raw[camera_id]

    def _schedule_poll(self) -> None:
        if self.status_fn is None or self.status_poll_s <= 0:
            return

        def tick() -> None:
            self._spawn(self.poll_status())
            self._poll = self.clock.call_later(self.status_poll_s, tick)

        self._poll = self.clock.call_later(self.status_poll_s, tick)

    async def _check(self, camera_ids: list[int]) -> int:
        """NOTIFY subscribers of the cameras whose state differs from the last one seen."""
        changed: dict[int, bool] = {}
        for cid in camera_ids:
            now = self.online(cid)
            before = self._last.get(cid)
            self._last[cid] = now
            if before is not None and before != now:
                changed[cid] = now
        if changed:
            await self._notify_changes(changed)
        return len(changed)

    async def poll_status(self) -> int:
        """Read every shared camera's state and NOTIFY subscribers of the changes; returns
        the number of cameras that changed."""
        ids: list[int] = []
        for c in list(self.clients.values()):
            shares = await self.shares_async(c.upper)
            await self._sync_shares(c, shares)
            ids += [sh.camera_id for sh in shares]
        ids = list(dict.fromkeys(ids))
        if self.status_fn is not None:
            for cid in ids:
                self._raw[cid] = bool(self.status_fn(cid))
        return await self._check(ids)

    async def camera_status_changed(self, camera_id: int, online: bool) -> None:
        """Push a camera's recording state (instead of waiting for the next poll)."""
        self._raw[camera_id] = online
        await self._check([camera_id])

    async def _notify_changes(self, changed: dict[int, bool]) -> None:
        for c in list(self.clients.values()):
            if not c.subscriptions:
                continue
            shares = [sh for sh in await self.shares_async(c.upper) if sh.camera_id in changed]
            if shares:
                await c.notify_catalog([(sh, "ON" if changed[sh.camera_id] else "OFF")
                                        for sh in shares])

    def send(self, event: Any) -> None:
        """Notifier interface for fault tickets (viis.health.tickets): may be called from any
        thread; the work happens on the cascade's loop."""
        if self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(lambda: self._spawn(self.ticket_event(event)))

    async def ticket_event(self, event: Any) -> int:
        """A health fault: a signal loss turns the shared channel OFF (and back ON when it
        clears); an opened fault is an Alarm notification to every upper platform that may
        see the camera (platform-wide faults: to all, under our platform ID). Returns the
        number of alarms accepted."""
        d = event.as_dict() if hasattr(event, "as_dict") else dict(event)
        t = d.get("ticket") or {}
        name, kind, cam = d.get("event"), str(t.get("kind") or ""), t.get("camera_id")
        at_ms = int(d.get("at_ms") or self.app_clock_ms())
        if kind == "video_signal_loss" and cam is not None:
            self._last.setdefault(cam, self.online(cam))
            if name in ("opened", "recurred"):
                self._lost.add(cam)
            elif name in ("cleared", "closed"):
                self._lost.discard(cam)
            await self._check([cam])
        if name not in ("opened", "recurred"):
            return 0
        sent = 0
        for c in list(self.clients.values()):
            if not c.registered:
                continue
            if cam is None:
                device = c.upper.local_id
            else:
                sh = next((x for x in await self.shares_async(c.upper) if x.camera_id == cam),
                          None)
                if sh is None:
                    continue  # not shared with this upper, or above its grade (Q13.1)
                device = sh.channel_id
            if await c.send_alarm(device, kind, str(t.get("severity") or "warning"),
                                  str(t.get("message") or kind), at_ms):
                sent += 1
        self.alarms_sent += sent
        return sent

    def attach_health(self, desk: Any) -> None:
        """Receive the fault-ticket events of a viis.health.tickets.TicketDesk besides its
        own notifier."""
        desk.notifier = _Fanout([x for x in (desk.notifier, self) if x is not None])

    # ---- diagnostics ----------------------------------------------------------------------------

    def diagnose(self) -> list[dict[str, Any]]:
        return [c.diagnose() for c in self.clients.values()]

    def call(self, fn: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run ``fn`` on the cascade's loop from another thread (the API's) and return its
        result."""
        assert self._loop is not None

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def trace_switch(self, server_id: str, on: bool, duration_s: float = 3600.0) -> None:
        """Keep (or stop keeping) every SIP message to and from one upper platform."""
        if on:
            self.trace.enable(server_id, duration_s)
        else:
            self.trace.disable(server_id)

    def trace_read(self, server_id: str) -> dict[str, Any]:
        return {"enabled": self.trace.enabled(server_id), "messages": self.trace.get(server_id)}


class _Fanout:
    def __init__(self, targets: list[Any]) -> None:
        self.targets = targets

    def send(self, event: Any) -> None:
        for t in self.targets:
            try:
                t.send(event)
            except Exception:
                log.exception("gb.cascade.fanout_failed")

    def __getattr__(self, name: str) -> Any:  # flush/close/stats of the real notifier
        return getattr(self.targets[0], name)


async def start_cascade(app: Any, recorder: Any = None, desk: Any = None) -> Cascade | None:
    """For ``viis run``: the cascade on ``[gb28181] cascade_*`` when enabled, with the
    recorder as the source of channel status and the health desk's fault tickets as alarms."""
    st = getattr(app.settings, "gb28181", None)
    if st is None or not getattr(st, "cascade_enabled", False):
        return None

    def status(camera_id: int) -> bool:
        if recorder is None:
            return True
        return (recorder.status(camera_id) or {}).get("state") == "recording"

    c = Cascade(app, host=st.cascade_host, port=st.cascade_port, status_fn=status,
                public_host=st.cascade_public_host)
    await c.start()
    if desk is not None:
        c.attach_health(desk)
    return c
