"""One upper platform, seen from the lower-platform role (cascade up; Q13.1, Q12.1, N12.1):
:class:`CascadeClient` registers to it with digest, re-registers at half the granted period,
keeps alive, registers again after ``keepalive_misses`` unanswered keepalives or an error
answer to one (the upper restarted and forgot us) — with exponential backoff, capped, while
it fails — and answers its queries and subscriptions through its share list. Its
:meth:`CascadeClient.diagnose` says in plain words why it is not registered.

:class:`viis.interconnect.gb28181.cascade.Cascade` owns the SIP endpoint all clients share
and routes each upper's requests to its client.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from viis import __version__
from viis.core.logging import get_logger
from viis.interconnect.gb28181 import cascade_answers as ans
from viis.interconnect.gb28181.cascade_answers import parse_query
from viis.interconnect.gb28181.cascade_store import Share, UpperPlatform
from viis.interconnect.gb28181.causes import explain
from viis.interconnect.gb28181.clock import Clock, TimerHandle
from viis.interconnect.gb28181.dialog import Dialog, DialogError
from viis.interconnect.gb28181.endpoint import new_call_id
from viis.interconnect.gb28181.manscdp import Manscdp, ManscdpError
from viis.interconnect.gb28181.sip import (
    Address,
    SipRequest,
    SipResponse,
    make_response,
    new_tag,
)
from viis.interconnect.gb28181.transaction import ServerTransaction, TransactionTimeout

if TYPE_CHECKING:
    from viis.interconnect.gb28181.cascade import Cascade

log = get_logger("viis.interconnect.gb28181.cascade")

MANSCDP = "Application/MANSCDP+xml"
SEND_WINDOW = 8  # response messages in flight to one upper
# catalog subscriptions held per upper: a new one beyond this ends the oldest, so SUBSCRIBEs
# (UDP, source address spoofable) cannot grow dialogs and NOTIFY fan-out without bound
MAX_SUBSCRIPTIONS = 8
CLOCK_WARN_S = 2.0  # the upper's Date this far from our clock: a warning in diagnose()
# no final response (Timer F), or a TCP connection that could not be made (TransportError)
NO_ANSWER = (TransactionTimeout, OSError)

@dataclass
class Subscription:
    """A catalog subscription of an upper: its dialog (RFC 6665) and when it expires."""

    call_id: str
    dialog: Dialog
    event: str
    expires_at: float


def _number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` is also true for "²", which ``int`` refuses."""
    return text.isascii() and text.isdigit()


def _expires(req: SipRequest) -> int:
    text = (req.get("Expires") or "3600").strip()
    return min(int(text), 86_400) if _number(text) and len(text) < 9 else 3600


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
        self._next_ka: float | None = None  # when the next keepalive is due (clock.now())
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
        self.cause = explain(f"cascade-{key}", host=u.host, port=u.port, transport=u.transport,
                             name=u.name, local_id=u.local_id, **kw)
        self.registered = False
        return False

    async def _send_register(self, expires: int) -> tuple[SipRequest, SipResponse] | None:
        """One REGISTER (the endpoint answers a digest challenge once); None = no answer."""
        u = self.upper
        self.cseq += 1
        req = self._request("REGISTER", expires=expires, call_id=self.call_id, cseq=self.cseq)
        try:
            resp = await self.c.endpoint.request(req, u.address, u.transport,
                                                 credentials=(u.local_id, u.password))
        except NO_ANSWER as e:
            self.last_error = f"REGISTER: {e}"[:200]
            return None
        self.cseq = max(self.cseq, resp.cseq[0])
        return req, resp

    async def _register_once(self, expires: int | None = None) -> bool:
        u = self.upper
        want = u.register_expires if expires is None else expires
        self.state = "registering" if want else self.state
        sent = await self._send_register(want)
        if sent is None:
            return self._fail("unreachable")
        req, resp = sent
        if resp.status == 423 and want:
            me = (resp.get("Min-Expires") or "").strip()
            if _number(me) and len(me) < 9:
                sent = await self._send_register(int(me))
                if sent is None:
                    return self._fail("unreachable")
                req, resp = sent
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
        """Keepalives on a fixed grid (``keepalive_s`` apart whatever the timer jitter, and
        kept across re-registrations) until the registration is due for refresh or lost."""
        u = self.upper
        assert self.registered_at is not None
        refresh_at = self.registered_at + self.granted_expires / 2
        now = self.clock.now()
        if self._next_ka is None or self._next_ka < now:
            self._next_ka = now + u.keepalive_s
        while True:
            now = self.clock.now()
            if now >= refresh_at:
                return  # re-register before expiry
            await self._sleep(max(0.0, min(self._next_ka, refresh_at) - now))
            if self._lost_reason:
                self.registered = False
                self.state = "lost"
                self.cause = self._lost_reason
                self._next_ka = None
                log.warning("gb.cascade.lost", upper=u.server_id, cause=self.cause)
                return
            now = self.clock.now()
            if now < self._next_ka:
                continue  # woken early (refresh due, or interrupted without news)
            self._next_ka += u.keepalive_s
            if self._next_ka <= now:  # far behind (a stalled loop): restart the grid
                self._next_ka = now + u.keepalive_s
            if self._ka_outstanding:
                self.keepalive_misses += 1
                if self.keepalive_misses >= u.keepalive_misses:
                    self.registered = False
                    self.state = "lost"
                    self.cause = explain("cascade-keepalive-lost", n=self.keepalive_misses)
                    self.last_error = "keepalives unanswered"
                    self._next_ka = None
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
            self._lost_reason = explain("cascade-forgot-us", status=resp.status)
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
        except ManscdpError as e:
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
            elif q.get("PTZCmd") and not sh.ptz_allowed:
                txn.reply(403, "PTZ Not Allowed")
            elif self.c.control_handler is not None:
                await _maybe_await(self.c.control_handler(self.upper, sh, q, txn))
                if txn.state in ("trying", "proceeding"):
                    txn.reply(200)
            else:
                txn.reply(501, "Not Implemented")
            return
        txn.reply(200)  # Notify/Response from the upper: accepted

    async def _catalog(self, q: Manscdp) -> list[bytes] | None:
        if q.device_id not in (self.upper.local_id, ""):
            return None
        shares = await self.c.shares_async(self.upper)
        return ans.catalog_bodies(self.upper, q.sn, shares, self.c.online)

    async def _device_info(self, q: Manscdp) -> list[bytes] | None:
        u = self.upper
        if q.device_id in (u.local_id, ""):
            n = len(await self.c.shares_async(u))
            return [ans.device_info_body(u, q.sn, u.local_id, self.c.name, n, __version__)]
        sh = await self.c.share_async(u, q.device_id)
        if sh is None:
            return None
        return [ans.device_info_body(u, q.sn, sh.channel_id, sh.name, 1, __version__)]

    async def _device_status(self, q: Manscdp) -> list[bytes] | None:
        u = self.upper
        now = self.c.app_clock_ms()
        if q.device_id in (u.local_id, ""):
            return [ans.device_status_body(u, q.sn, u.local_id, True, True, now)]
        sh = await self.c.share_async(u, q.device_id)
        if sh is None:
            return None
        on = self.c.online(sh.camera_id)
        return [ans.device_status_body(u, q.sn, sh.channel_id, on, on, now)]

    async def _record_info(self, q: Manscdp) -> list[bytes] | None:
        sh = await self.c.share_async(self.upper, q.device_id)
        if sh is None:
            return None  # unknown, or above the grade: never answered (Q13.1)
        try:
            start = ans.parse_gb_time(q.get("StartTime") or "")
            end = ans.parse_gb_time(q.get("EndTime") or "")
        except ValueError:
            self.last_error = "RecordInfo with unreadable StartTime/EndTime"
            return ans.record_info_bodies(self.upper, q.sn, sh, [])
        end = min(end, start + ans.MAX_RECORD_SPAN_MS)
        kind = (q.get("Type") or "").lower()
        # VIIS records continuously: only "time" recordings exist (an alarm query gets none)
        wanted = kind in ("", "all", "time")
        if end <= start or not wanted:
            return ans.record_info_bodies(self.upper, q.sn, sh, [])
        ranges = await self.c.recorded_ranges(self.upper, sh, start, end)
        if ranges is None:
            return None  # the one door refused: answered like an unknown channel
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
            while len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
                self._end_subscription(next(iter(self.subscriptions)))  # the oldest
                self.note(f"more than {MAX_SUBSCRIPTIONS} catalog subscriptions at once; the "
                          "oldest was ended")
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
    if _number(e) and len(e) < 9:
        return int(e)
    for c in resp.headers.getall("Contact"):
        v = Address.parse(c).params.get("expires", "")
        if _number(v) and len(v) < 9:
            return int(v)
    return want


def _realm(challenge: str) -> str:
    from viis.interconnect.gb28181.digest import parse_auth

    return parse_auth(challenge)[1].get("realm", "") if challenge else ""
