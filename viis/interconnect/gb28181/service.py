"""The GB/T 28181 platform role as a service of the application (Q13.2: the police integrate
systems from below; Q12.1, N12.1: national standards). ``viis run`` starts it when
``[gb28181] enabled``; the REST routes (viis/web/routes_gb28181.py) and the GB recorder
source (invite_device) call it.

Owns: the :class:`~.platform.Platform` (REGISTER, keepalive, offline), persistence of peers
through :class:`~.devices.DeviceStore` (batched, in a worker thread, so 20,000 devices
registering at once never wait on a disk), the Catalog query on registration and
periodically (split answers aggregated by :class:`~.manscdp.CatalogAssembler`) and its sync
into the camera registry, DeviceInfo/DeviceStatus/RecordInfo queries, PTZ DeviceControl,
offline faults (``gb_offline_<device id>``, raised after ``keepalive_misses`` missed
keepalives, cleared when the device is back), and live/playback INVITE to a device
(:mod:`.invite`).

Threads: everything SIP runs on one asyncio loop. Callers on another loop (FastAPI's
TestClient, worker threads) go through :meth:`GbPlatformService.call`.
"""

from __future__ import annotations

import asyncio
import itertools
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from viis.core.errors import ConfigError
from viis.core.logging import get_logger
from viis.health.faults import clear_fault, raise_fault

from . import manscdp
from .alarms import AlarmDesk
from .causes import catalog_cause
from .clock import Clock
from .devices import DeviceSnapshot, DeviceStore, channel_view, device_view
from .invite import DeviceCalls
from .platform import PeerState, Platform, PlatformConfig
from .sip import SipRequest, SipResponse, new_branch, new_tag
from .transaction import TransactionTimeout

log = get_logger(__name__)
T = TypeVar("T")
FAULT_PREFIX = "gb_offline_"


class DeviceError(Exception):
    """A request to a device could not be made or was refused; the message says why."""


@dataclass
class RecordList:
    """A device's own recordings (RecordInfo, aggregated over split answers)."""

    channel_id: str
    items: list[dict[str, Any]]
    complete: bool
    sum_num: int | None


def fault_kind(device_id: str) -> str:
    return f"{FAULT_PREFIX}{device_id}"


class GbPlatformService:
    def __init__(self, app, settings=None, *, clock: Clock | None = None,
                 flush_interval: float = 1.0, catalog_on_register: bool = True) -> None:
        st = settings or app.settings.gb28181
        self.app, self.settings = app, st
        self.config = PlatformConfig(
            server_id=st.server_id, host=st.host, port=st.port,
            password=st.password.get_secret_value() if st.password else None,
            passwords={k: v.get_secret_value() for k, v in st.device_passwords.items()},
            realm=st.domain, keepalive_interval=st.keepalive_s,
            keepalive_misses=st.keepalive_misses, min_expires=st.min_expires_s,
            udp="udp" in st.transports, tcp="tcp" in st.transports,
        )
        self.platform = Platform(self.config, clock=clock, on_event=self._on_event)
        self.platform.on_manscdp = self._on_manscdp
        self.platform.handlers["NOTIFY"] = self._on_notify
        self.clock = self.platform.clock
        self.store = DeviceStore(app.cameras, security_level=st.channel_security_level)
        self.assembler = manscdp.CatalogAssembler(self.clock, timeout=st.query_timeout_s)
        self.calls = DeviceCalls(self)
        self.alarms = AlarmDesk(self, repeat_s=st.alarm_repeat_s, clear_s=st.alarm_clear_s)
        self.flush_interval = flush_interval
        self.catalog_on_register = catalog_on_register
        self.loop: asyncio.AbstractEventLoop | None = None
        self.listeners: list[Callable[[str, PeerState], None]] = []  # events, e.g. for alarms
        self._sn = itertools.count(1)
        self._dirty: dict[str, bool] = {}  # device id -> its online status changed
        self._faults: dict[str, str | None] = {}  # device id -> fault message, None = clear
        self._answers: dict[tuple[str, int], asyncio.Future] = {}
        self._list_sn: dict[int, tuple[str, str]] = {}  # SN -> (device, target) of list queries
        self._catalog_at: dict[str, float] = {}
        self._restored: dict[str, float] = {}  # device id -> when we restarted without it
        self._known: set[str] = set()  # device ids with a row in gb_devices
        self._db_lock = asyncio.Lock()
        self._query_slots = asyncio.Semaphore(64)  # devices queried at once after registering
        self._tasks: set[asyncio.Task] = set()
        self._runner: asyncio.Task | None = None
        self.catalog_syncs = 0  # catalog answers handled (complete or partial)
        self._keepalives_saved = 0.0
        self._subscriptions: dict[str, Any] = {}  # device id -> renewal timer

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._restore(await self._db(self._load))
        await self.platform.start()
        self._runner = self.loop.create_task(self._run(), name="gb28181")
        log.info("gb28181_platform_started", server_id=self.config.server_id,
                 addresses={k: f"{h}:{p}" for k, (h, p) in self.platform.addresses.items()})

    async def stop(self) -> None:
        for h in self._subscriptions.values():
            h.cancel()
        self._subscriptions.clear()
        self.alarms.close()
        await self.calls.close()
        if self._runner:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.platform.stop()
        await self.flush()

    @property
    def port(self) -> int:
        a = self.platform.addresses.get("UDP") or self.platform.addresses.get("TCP")
        return a[1] if a else self.config.port

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task:
        t = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        """Run ``fn(*args)`` on the service's loop from any loop or thread."""
        assert self.loop is not None, "the GB/T 28181 service is not started"
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is self.loop:
            return await fn(*args, **kw)
        fut = asyncio.run_coroutine_threadsafe(fn(*args, **kw), self.loop)
        return await asyncio.wrap_future(fut)

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._db_lock:
            return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def _run(self) -> None:
        period = self.flush_interval
        while True:
            await asyncio.sleep(period)
            try:
                self._check_restored()
                await self.flush()
                self._periodic_catalogs()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("gb28181_housekeeping_failed")

    # ---- persistence -----------------------------------------------------------------

    def _wall_ms(self, t: float | None) -> int | None:
        if t is None:
            return None
        return int((self.clock.wall() - (self.clock.now() - t)) * 1000)

    def _load(self) -> list[dict[str, Any]]:
        """Rows of every known device (worker thread); those that were online are written
        offline: after a restart nothing is known to be alive until it says so."""
        with self.app.db.session() as s:
            rows = []
            for d in self.store.list(s):
                rows.append(dict(device_id=d.device_id, registered=d.registered,
                                 expires_ms=d.expires_ms, online=d.online,
                                 transport=d.transport, host=d.host, port=d.port,
                                 contact=d.contact, charset=d.charset,
                                 last_error=d.last_error, cause=d.cause))
                if d.online:
                    d.online = False
                    d.status_ms = self.app.clock.wall_ms()
            return rows

    def _restore(self, rows: list[dict[str, Any]]) -> None:
        """Devices known before a restart come back offline; one whose registration has
        not run out needs only a keepalive to be online again (no re-REGISTER)."""
        now, wall_ms = self.clock.now(), int(self.clock.wall() * 1000)
        for d in rows:
            p = PeerState(d["device_id"])
            exp = d["expires_ms"]
            p.registered = bool(d["registered"] and exp and exp > wall_ms)
            p.transport = d["transport"] or "UDP"
            p.address = (d["host"], d["port"]) if d["host"] else None
            p.contact, p.charset, p.last_error = d["contact"], d["charset"], d["last_error"]
            if p.registered:
                p.expires_at = now + (exp - wall_ms) / 1000
                p.registered_at = now
                p.expires = int((exp - wall_ms) / 1000)
            p.cause = ("offline: VIIS restarted; waiting for the device's keepalive or "
                       "REGISTER") if d["online"] or p.registered else d["cause"]
            self.platform.peers[p.device_id] = p
            self._known.add(p.device_id)
            if d["online"]:
                self._restored[p.device_id] = now
        log.info("gb28181_devices_restored", devices=len(rows))

    def _snapshot(self, p: PeerState, changed: bool) -> DeviceSnapshot:
        host, port = p.address if p.address else ("", 0)
        return DeviceSnapshot(
            p.device_id, registered=p.registered, online=p.online, transport=p.transport,
            host=host, port=port, contact=p.contact,
            registered_ms=self._wall_ms(p.registered_at), expires_ms=self._wall_ms(p.expires_at),
            last_keepalive_ms=self._wall_ms(p.last_keepalive), status_changed=changed,
            last_error=p.last_error, cause=p.cause, charset=p.charset)

    async def flush(self) -> None:
        """Write changed peers and raise/clear their offline faults (one transaction). The
        last keepalive of every online peer is written once a minute (not per keepalive:
        20,000 devices at 60 s would be 333 writes a second)."""
        now = self.clock.now()
        if now - self._keepalives_saved >= max(60.0, self.config.keepalive_interval):
            self._keepalives_saved = now
            for device_id, p in self.platform.peers.items():
                if p.online:
                    self._dirty.setdefault(device_id, False)
        dirty, self._dirty = self._dirty, {}
        faults, self._faults = self._faults, {}
        snaps = [self._snapshot(self.platform.peers[d], ch) for d, ch in dirty.items()
                 if d in self.platform.peers]
        if snaps or faults:
            await self._db(self._write, snaps, faults)

    def _write(self, snaps: list[DeviceSnapshot], faults: dict[str, str | None]) -> None:
        now = self.app.clock.wall_ms()
        with self.app.db.session() as s:
            self.store.save(s, snaps, now)
            for device_id, message in faults.items():
                if message is None:
                    clear_fault(s, fault_kind(device_id), now)
                else:
                    raise_fault(s, fault_kind(device_id), "warning", message, now)

    # ---- events ----------------------------------------------------------------------

    def _on_event(self, event: str, p: PeerState) -> None:
        # Called from the platform's sweep timer and packet callbacks: never let it raise.
        try:
            self._handle_event(event, p)
        except Exception:
            log.exception("gb28181_event_failed", gb_event=event, device=p.device_id)

    def _handle_event(self, event: str, p: PeerState) -> None:
        if event == "registered":
            self._known.add(p.device_id)
        # Unknown ids that fail authentication are not written: a scan must not fill the
        # database (they stay in memory, listed as recent failures).
        if event != "auth_failed" or p.device_id in self._known:
            self._dirty[p.device_id] = self._dirty.get(p.device_id, False) or event in (
                "registered", "online", "offline", "expired", "unregistered")
        if event in ("registered", "online", "refreshed"):
            self._restored.pop(p.device_id, None)
            if event != "refreshed" or p.online:
                self._faults[p.device_id] = None
        if event in ("offline", "expired", "unregistered"):
            self._faults[p.device_id] = (
                f"GB/T 28181 device {p.device_id} is offline: {p.cause or p.last_error or event}. "
                "Its cameras are not recorded until it is back; check its power, network and "
                "SIP settings.")
            log.warning("gb28181_device_offline", device=p.device_id, gb_event=event,
                        cause=p.cause)
        elif event in ("registered", "online"):
            log.info("gb28181_device_online", device=p.device_id, gb_event=event)
        if event == "registered" and self.catalog_on_register:
            self._spawn(self._initial_queries(p.device_id))
        for fn in self.listeners:
            try:
                fn(event, p)
            except Exception:
                log.exception("gb28181_listener_failed", gb_event=event)

    def _check_restored(self) -> None:
        limit = self.config.keepalive_interval * self.config.keepalive_misses
        now = self.clock.now()
        for device_id, since in list(self._restored.items()):
            p = self.platform.peers.get(device_id)
            if p is None or p.online:
                self._restored.pop(device_id, None)
            elif now - since > limit:
                self._restored.pop(device_id, None)
                p.cause = (f"offline: no keepalive or REGISTER for {now - since:.0f} s since "
                           "VIIS restarted")
                self._on_event("offline", p)

    async def _initial_queries(self, device_id: str) -> None:
        # Bounded: after an outage thousands of devices register within seconds, and their
        # catalogs would otherwise all be asked for (and written) at once. A device that
        # does not even answer the first MESSAGE is not asked the rest (each would hold a
        # slot for Timer F, 32 s).
        async with self._query_slots:
            steps = [("catalog query", self.sync_catalog), ("DeviceInfo query", self.device_info)]
            if self.settings.catalog_subscribe_s and device_id not in self._subscriptions:
                steps.append(("Catalog SUBSCRIBE", self.subscribe_catalog))
            for what, step in steps:
                try:
                    await step(device_id)
                except Exception as e:  # noqa: BLE001 - recorded on the peer for the diagnosis
                    self._note_error(device_id, f"{what} failed: {e}")
                    if isinstance(e.__cause__, TransactionTimeout):
                        return

    def _periodic_catalogs(self) -> None:
        now = self.clock.now()
        for device_id, p in list(self.platform.peers.items()):
            last = self._catalog_at.get(device_id)
            if p.online and last is not None and now - last >= self.settings.catalog_interval_s:
                self._catalog_at[device_id] = now  # also throttles a device that never answers
                self._spawn(self._initial_queries(device_id))

    def _note_error(self, device_id: str, text: str) -> None:
        p = self.platform.peers.get(device_id)
        if p is not None:
            p.last_error = text[:500]
            self._dirty.setdefault(device_id, False)
        log.warning("gb28181_query_failed", device=device_id, error=text[:300])

    # ---- MANSCDP in --------------------------------------------------------------------

    def _on_manscdp(self, p: PeerState, root: ET.Element | None, req: SipRequest) -> None:
        try:
            msg = manscdp.parse(req.body, req.charset)
        except manscdp.ManscdpError as e:
            p.note(f"MANSCDP: {e.reason}")
            return
        if msg.root == "Response" and msg.cmd in ("Catalog", "RecordInfo"):
            asked = self._list_sn.get(msg.sn)
            if asked is not None and asked[0] == p.device_id:
                msg.device_id = asked[1]  # some devices answer a channel's query as themselves
            self.assembler.add(msg)
            return
        fut = self._answers.get((p.device_id, msg.sn))
        if msg.root == "Response" and fut is not None and not fut.done():
            fut.set_result(msg)
            return
        if msg.root == "Notify" and msg.cmd == "Catalog":
            self._spawn(self._catalog_events(p.device_id, list(msg.items)))
            for it in msg.items:  # VLOST/DEFECT raise a fault, ON clears it (Q19.3)
                self.alarms.catalog_event(p.device_id, str(it.get("DeviceID") or ""),
                                          str(it.get("Event") or ""))
            return
        if msg.root == "Notify" and msg.cmd == "MediaStatus":
            self.calls.media_status(p.device_id, msg)
            return
        if msg.root == "Notify" and msg.cmd == "Alarm":  # a health fault/ticket (Q19.3)
            self.alarms.on_alarm(p.device_id, msg)

    # ---- requests out ----------------------------------------------------------------

    def peer(self, device_id: str) -> PeerState:
        p = self.platform.peers.get(device_id)
        if p is None:
            raise DeviceError(f"device {device_id} is unknown: it never registered")
        if not p.registered or p.address is None:
            raise DeviceError(f"device {device_id} is not registered ({p.cause or 'offline'})")
        return p

    def local_host(self, addr: tuple[str, int]) -> str:
        """The address a peer reaches us at: the bound host, or the one routed to it."""
        host = self.config.host
        if host not in ("0.0.0.0", "", "::"):
            return host
        import socket

        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect(addr)
                return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"

    def build_request(self, method: str, p: PeerState, *, to_user: str | None = None,
                      body: bytes = b"", content_type: str | None = None,
                      headers: dict[str, str] | None = None) -> SipRequest:
        assert p.address is not None
        user = to_user or p.device_id
        host = self.local_host(p.address)
        port = (self.platform.addresses.get(p.transport.upper())
                or next(iter(self.platform.addresses.values())))[1]
        req = SipRequest(method, f"sip:{user}@{p.address[0]}:{p.address[1]}")
        h = req.headers
        h.add("Via", f"SIP/2.0/{p.transport.upper()} {host}:{port};rport;branch={new_branch()}")
        h.add("Max-Forwards", "70")
        h.add("From", f"<sip:{self.config.server_id}@{self.config.domain}>;tag={new_tag()}")
        h.add("To", f"<sip:{user}@{self.config.domain}>")
        h.add("Call-ID", f"{new_tag()}{new_tag()}@{host}")
        h.add("CSeq", f"{next(self._sn) % 1_000_000 + 1} {method}")
        if method in ("INVITE", "SUBSCRIBE"):
            t = ";transport=tcp" if p.transport.upper() == "TCP" else ""
            h.add("Contact", f"<sip:{self.config.server_id}@{host}:{port}{t}>")
        h.add("User-Agent", "VIIS")
        for k, v in (headers or {}).items():
            h.set(k, v)
        if body:
            h.add("Content-Type", content_type or "Application/MANSCDP+xml")
        req.body = body
        return req

    async def send_manscdp(self, p: PeerState, body: bytes) -> SipResponse:
        req = self.build_request("MESSAGE", p, body=body)
        try:
            resp = await self.platform.layer.request(req, p.address, p.transport)
        except TransactionTimeout as e:
            raise DeviceError(f"device {p.device_id} did not answer the MESSAGE at "
                              f"{p.address[0]}:{p.address[1]} ({p.transport}): offline, or "
                              "NAT has closed the path (check the keepalive)") from e
        if resp.status >= 300:
            raise DeviceError(f"device {p.device_id} refused the MESSAGE: {resp.status} "
                              f"{resp.reason}")
        return resp

    def _charset(self, p: PeerState) -> str:
        return "UTF-8" if p.charset == "utf-8" else "GB2312"

    async def _query_one(self, device_id: str, cmd: str, root: str = "Query",
                         fields: dict[str, Any] | None = None,
                         target: str | None = None) -> manscdp.Manscdp:
        p = self.peer(device_id)
        sn = next(self._sn)
        fut = asyncio.get_running_loop().create_future()
        self._answers[(device_id, sn)] = fut
        try:
            body = manscdp.build(root, cmd, sn, target or device_id, fields,
                                 charset=self._charset(p))
            await self.send_manscdp(p, body)
            try:
                return await asyncio.wait_for(fut, self.settings.query_timeout_s)
            except TimeoutError as e:
                raise DeviceError(f"device {device_id} accepted the {cmd} request but sent no "
                                  f"answer within {self.settings.query_timeout_s:g} s") from e
        finally:
            self._answers.pop((device_id, sn), None)

    async def _query_list(self, device_id: str, cmd: str, target: str,
                          fields: dict[str, Any] | None = None) -> manscdp.AssembledList:
        p = self.peer(device_id)
        sn = next(self._sn)
        fut = self.assembler.wait(target, sn, cmd)
        body = manscdp.query(cmd, sn, target, fields, charset=self._charset(p))
        self._list_sn[sn] = (device_id, target)
        try:
            await self.send_manscdp(p, body)
            return await fut
        except DeviceError:
            fut.cancel()
            raise
        finally:
            self._list_sn.pop(sn, None)

    # ---- public API ------------------------------------------------------------------

    async def sync_catalog(self, device_id: str):
        """Catalog query; the (possibly split) answer is stored and synced into the camera
        registry. A partial answer (a part lost over UDP) adds and updates but removes
        nothing, and the peer's diagnosis says so."""
        self._catalog_at[device_id] = self.clock.now()
        result = await self._query_list(device_id, "Catalog", device_id)
        p = self.platform.peers.get(device_id)
        self.catalog_syncs += 1
        cause = catalog_cause(result)
        if cause and p is not None:
            p.note(cause)
            p.last_error = cause[:500]
            self._dirty.setdefault(device_id, False)
        now = self.app.clock.wall_ms()

        def write():
            with self.app.db.session() as s:
                return self.store.sync_catalog(s, device_id, result.items, result.complete, now)

        return await self._db(write)

    async def subscribe_catalog(self, device_id: str, expires: int | None = None) -> int:
        """SUBSCRIBE to the device's catalog: it then NOTIFYs channel changes (ON, OFF,
        VLOST, DEFECT, ADD, DEL, UPDATE), applied as they come. Renewed at 80 % of the
        granted time while the device stays registered. Returns the granted seconds."""
        p = self.peer(device_id)
        expires = expires or self.settings.catalog_subscribe_s
        sn = next(self._sn)
        req = self.build_request(
            "SUBSCRIBE", p, body=manscdp.query("Catalog", sn, device_id, charset=self._charset(p)),
            headers={"Event": f"Catalog;id={sn}", "Expires": str(expires)})
        try:
            resp = await self.platform.layer.request(req, p.address, p.transport)
        except TransactionTimeout as e:
            raise DeviceError(f"device {device_id} did not answer the Catalog SUBSCRIBE") from e
        if resp.status >= 300:
            p.note(f"the device refused the Catalog SUBSCRIBE ({resp.status} {resp.reason}): "
                   "channel status changes are seen at the next catalog query")
            raise DeviceError(f"device {device_id} refused the Catalog SUBSCRIBE: "
                              f"{resp.status} {resp.reason}")
        granted = resp.get("Expires") or ""
        granted_s = granted_seconds(granted, expires)
        old = self._subscriptions.pop(device_id, None)
        if old is not None:
            old.cancel()
        if granted_s > 0:
            def renew() -> None:
                self._subscriptions.pop(device_id, None)
                q = self.platform.peers.get(device_id)
                if q is not None and q.registered:
                    self._spawn(self._renew(device_id))

            self._subscriptions[device_id] = self.clock.call_later(granted_s * 0.8, renew)
        log.info("gb28181_catalog_subscribed", device=device_id, expires=granted_s)
        return granted_s

    async def _renew(self, device_id: str) -> None:
        try:
            await self.subscribe_catalog(device_id)
        except Exception as e:  # noqa: BLE001 - on the peer; the next REGISTER subscribes again
            self._note_error(device_id, f"Catalog SUBSCRIBE renewal failed: {e}")

    def _on_notify(self, req: SipRequest, txn) -> None:
        """NOTIFY of a catalog subscription (or an alarm one): answered 200, then handled
        as the same MANSCDP sent by MESSAGE."""
        p = self.platform.peers.get(req.from_.uri.user or "")
        if p is None or not p.registered:
            txn.reply(481, "Subscription Does Not Exist")
            return
        txn.reply(200)
        self._on_manscdp(p, None, req)

    async def _catalog_events(self, device_id: str, items: list[dict[str, Any]]) -> None:
        now = self.app.clock.wall_ms()

        def write():
            with self.app.db.session() as s:
                return self.store.apply_events(s, device_id, items, now)

        try:
            await self._db(write)
        except Exception:
            log.exception("gb28181_catalog_events_failed", device=device_id)

    async def device_info(self, device_id: str) -> dict[str, Any]:
        msg = await self._query_one(device_id, "DeviceInfo")
        now = self.app.clock.wall_ms()

        def write():
            with self.app.db.session() as s:
                self.store.set_info(s, device_id, msg.fields, now)

        await self._db(write)
        return dict(msg.fields)

    async def device_status(self, device_id: str) -> dict[str, Any]:
        msg = await self._query_one(device_id, "DeviceStatus")
        return dict(msg.fields)

    async def record_info(self, device_id: str, channel_id: str, start_ms: int, end_ms: int,
                          record_type: str = "all") -> RecordList:
        """A device's own recordings of a channel (RecordInfo; split answers aggregated)."""
        fields = {"StartTime": manscdp.gb_time(start_ms), "EndTime": manscdp.gb_time(end_ms),
                  "Secrecy": 0, "Type": record_type}
        r = await self._query_list(device_id, "RecordInfo", channel_id, fields)
        items = []
        for it in r.items:
            row = dict(it)
            for k, out in (("StartTime", "start_ms"), ("EndTime", "end_ms")):
                try:
                    row[out] = manscdp.parse_gb_time(str(it.get(k)))
                except ValueError:
                    row[out] = None
            items.append(row)
        items.sort(key=lambda x: x.get("start_ms") or 0)
        return RecordList(channel_id, items, r.complete, r.sum_num)

    async def ptz(self, device_id: str, channel_id: str, ptz_cmd: str) -> None:
        """Send a DeviceControl PTZCmd (16 hex digits from :mod:`.ptz`) to a channel."""
        p = self.peer(device_id)
        body = manscdp.build("Control", "DeviceControl", next(self._sn), channel_id,
                             {"PTZCmd": ptz_cmd, "Info": {"ControlPriority": 5}},
                             charset=self._charset(p))
        await self.send_manscdp(p, body)

    async def invite_device(self, device_id: str, channel_id: str, sdp_offer: str,
                            on_end: Callable[[Any, str], Any] | None = None):
        """INVITE a device's channel to send media (live ``s=Play`` or ``s=Playback``; the
        offer's ``y=`` is the SSRC); returns (dialog, answer SDP). ``on_end(dialog, why)``:
        the device hung up ('remote') or its playback reached the end ('end of file')."""
        return await self.calls.invite(device_id, channel_id, sdp_offer, on_end)

    async def bye(self, dialog) -> None:
        await self.calls.bye(dialog)

    # ---- views for the REST API --------------------------------------------------------

    def diagnose(self, device_id: str, stored: dict[str, Any] | None = None) -> dict[str, Any]:
        """The peer's state and a plain-language cause; ``stored`` is its ``device_view``."""
        d = self.platform.diagnose(device_id)
        live = self.platform.peers.get(device_id)
        view = dict(stored) if stored is not None else {"device_id": device_id}
        if live is not None:
            view.update(registered=live.registered, online=live.online,
                        transport=live.transport,
                        address=f"{live.address[0]}:{live.address[1]}" if live.address else "",
                        last_keepalive_ms=self._wall_ms(live.last_keepalive),
                        expires_ms=self._wall_ms(live.expires_at), last_error=live.last_error,
                        keepalives=live.keepalives, auth_failures=live.auth_failures,
                        warnings=list(live.warnings), charset=live.charset)
        view["alarms"] = self.alarms.recent(device_id)
        view["known"] = d["known"] or stored is not None
        view["cause"] = diagnosis(view, d.get("cause", ""))
        view["trace"] = self.trace.enabled(device_id)
        return view

    @property
    def trace(self):
        """The platform's per-peer SIP trace (:class:`.trace.SipTrace`)."""
        return self.platform.trace

    def listed_peers(self, attempts: int = 500) -> list[str]:
        """Peers the API lists beside the stored devices: the registered ones, and up to
        ``attempts`` of the most recent that tried and failed (a wrong password is exactly
        what an operator needs to see; the cap keeps a scan from flooding the list)."""
        peers = self.platform.peers
        failed = sorted((p for p in peers.values() if not p.registered and (
            p.auth_failures or p.challenges_in_a_row or p.last_error)),
            key=lambda p: p.last_seen or 0, reverse=True)[:attempts]
        return [k for k, p in peers.items() if p.registered] + [p.device_id for p in failed]

    def _trace_keys(self, device_id: str) -> list[str]:
        """A device's trace covers its ID (REGISTER, MESSAGE) and its address (INVITE and BYE
        go to its channels' IDs, which are not the device's)."""
        p = self.platform.peers.get(device_id)
        keys = [device_id]
        if p is not None and p.address is not None:
            keys.append(f"{p.address[0]}:{p.address[1]}")
        return keys

    def trace_switch(self, device_id: str, on: bool) -> None:
        for key in self._trace_keys(device_id):
            self.platform.set_trace(key, on)

    def trace_read(self, device_id: str) -> dict[str, Any]:
        t = self.trace
        seen, out = set(), []
        for key in self._trace_keys(device_id):
            for e in t.get(key):
                k = (e["t"], e["direction"], e["first_line"], e["size"])
                if k not in seen:
                    seen.add(k)
                    out.append(e)
        out.sort(key=lambda e: e["t"])
        return {"device_id": device_id, "enabled": t.enabled(device_id), "messages": out}


async def start_with(app) -> GbPlatformService | None:
    """Start the platform role for ``viis run`` when ``[gb28181] enabled``; the service is
    kept as ``app.gb28181`` (the recorder's GB source and the REST routes use it)."""
    if not app.settings.gb28181.enabled:
        return None
    if app.settings.gb28181.password is None:
        log.warning("gb28181_no_password", hint="no [gb28181] password: every REGISTER is "
                    "refused (403) until one is set")
    svc = GbPlatformService(app)
    try:
        await svc.start()
    except OSError as e:
        st = app.settings.gb28181
        raise ConfigError(f"[gb28181] cannot listen for SIP on {st.host}:{st.port} "
                          f"({e.strerror or e}): another program (another VIIS, a SIP server) "
                          "holds the port; stop it or set [gb28181] port") from e
    app.gb28181 = svc
    return svc


def granted_seconds(text: str, asked: int) -> int:
    """A SUBSCRIBE's granted Expires: ASCII digits only ("²".isdigit() is True but int()
    refuses it, which let a device's odd answer raise out of the subscription); anything
    else keeps what we asked for."""
    t = (text or "").strip()
    return int(t) if t and len(t) <= 9 and t.isascii() and t.isdigit() else asked


def diagnosis(view: dict[str, Any], cause: str) -> str:
    """One plain-language sentence on the peer's state (issue 7, diagnostics)."""
    if cause:
        return cause
    if not view.get("known"):
        return "never seen: no REGISTER arrived from this ID"
    if view.get("online"):
        warnings = view.get("warnings") or []
        return f"online; note: {warnings[-1]}" if warnings else "online"
    if view.get("registered"):
        return "registered, waiting for a keepalive"
    return "offline"


__all__ = ["DeviceError", "GbPlatformService", "RecordList", "channel_view", "device_view",
           "fault_kind", "start_with"]
