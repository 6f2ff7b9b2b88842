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
from collections.abc import Awaitable, Callable
from typing import Any

from viis import __version__
from viis.access.door import Forbidden, authorize_footage
from viis.access.policy import UPPER_PLATFORM, UPPER_PLATFORM_ORG, Principal
from viis.access.register import Register
from viis.core.logging import get_logger
from viis.interconnect.gb28181 import cascade_answers as ans
from viis.interconnect.gb28181 import cascade_store as store
from viis.interconnect.gb28181.cascade_client import (  # noqa: F401  (re-exported)
    NO_ANSWER,
    CascadeClient,
    Subscription,
    _maybe_await,
)
from viis.interconnect.gb28181.cascade_store import Share, UpperPlatform
from viis.interconnect.gb28181.clock import Clock, LoopClock, TimerHandle
from viis.interconnect.gb28181.endpoint import InviteAnswer, SipEndpoint
from viis.interconnect.gb28181.sip import SipRequest
from viis.interconnect.gb28181.trace import SipTrace
from viis.interconnect.gb28181.transaction import T1, ServerTransaction

log = get_logger(__name__)

InviteHandler = Callable[[UpperPlatform, SipRequest, Any], Awaitable[Any] | Any]


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
        if want:
            self._speak_as(next(iter(want.values())))
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

    async def recorded_ranges(self, upper: UpperPlatform, sh: Share, start: int, end: int
                              ) -> list[tuple[int, int]] | None:
        """RecordInfo is the timeline of a camera: it passes the one door as ``timeline``
        under the upper's identity, which writes its register entry (invariant 3, N16.1),
        and then reads the index. None when the door refuses."""
        who = self.principal(upper)
        now = self.app_clock_ms()
        sink = Register(self.app.db)

        def work() -> list[tuple[int, int]] | None:
            try:
                authorize_footage(who, "timeline", sh.camera_id, start, end,
                                  security_level=sh.security_level, register=sink, now_ms=now)
            except Forbidden:
                return None
            with self.app.db.session() as s:
                return ans.record_ranges(s, sh.camera_id, start, end)

        return await asyncio.get_running_loop().run_in_executor(None, work)

    def principal(self, upper_id: UpperPlatform | int | str) -> Principal:
        """The identity an upper platform's views are decided and registered under by the one
        door (viis.access.door): named after its server ID, in the role of an upper platform
        (live, playback and timeline within the platform's grade as its clearance; a copy
        only under an approved request naming it as the delivery target; no administration),
        its organisation the platform's name and server ID, which the register entry and
        the audit entry name as the unit. Q13.1, Q23.1, Q24.1, N16.1."""
        c = self.client(upper_id) if not isinstance(upper_id, UpperPlatform) else None
        u = upper_id if isinstance(upper_id, UpperPlatform) else (c.upper if c else None)
        if u is None:
            uid = self._upper_id(upper_id)
            if uid is None:
                raise LookupError(f"no upper platform {upper_id}")
            with self.app.db.session() as s:
                u = store.get_upper(s, uid)
        return Principal(f"gb28181:{u.server_id}", frozenset({UPPER_PLATFORM}),
                         org_kind=UPPER_PLATFORM_ORG,
                         organisation_name=f"{u.name} ({u.server_id})",
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
        self._speak_as(c.upper)  # the handler may read endpoint.domain (SSRC digits)
        answer = await _maybe_await(self.invite_handler(c.upper, req, txn))
        # the endpoint builds the dialog's Contact right after this returns (no await in
        # between): name our platform ID towards this upper in it, whatever ran meanwhile
        self._speak_as(c.upper)
        return answer

    def _speak_as(self, upper: UpperPlatform) -> None:
        """Our ID and domain towards ``upper`` on the shared endpoint (Contact, defaults)."""
        self.endpoint.local_id, self.endpoint.domain = upper.local_id, upper.domain

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
