"""Alarms from devices below us (MANSCDP ``<Notify><CmdType>Alarm``) as health faults and
tickets on the channel's camera (Q19.3: faults are found, notified, repaired and tracked to
closure; Q13.2: devices integrated from below; Q12.1, N12.1).

A device alarm carries AlarmPriority (1 = most urgent … 4), AlarmMethod (1 telephone,
2 device, 3 SMS, 4 GPS, 5 video, 6 device fault, 7 other), AlarmTime, AlarmDescription and
``<Info><AlarmType>``, whose meaning depends on the method (GB/T 28181-2016, annex A, Alarm notification:
method 2: 1 video loss, 2 device tamper (enclosure opened), 3 storage disk full, 4 high
temperature, 5 low temperature; method 5: 1 manual video alarm … 11 video anomaly, 12 fast
movement; method 6: 1 storage disk fault, 2 storage fan fault). The table below is taken
from deployed platforms' reading of that annex, not checked against the standard's text.

What becomes of an alarm (:func:`classify`):

* a **fault** (video loss, tamper, disk full/fault, fan, temperature, video anomaly, a
  device fault without a type): a health fault of a mapped kind on the channel's camera —
  video loss is the health module's own ``video_signal_loss`` — so it opens a ticket with a
  repair deadline, is notified and, for a shared camera, goes up the cascade as an alarm;
* an **event** (motion, tripwire, intrusion and the other analytics of method 5, telephone,
  SMS and GPS alarms, an alarm input of method 2 without a type): kept in the device's
  recent alarms and logged, no ticket (nothing is broken, nothing to repair);
* anything **unknown** (method 7, a type the table lacks): a generic ``gb_device_alarm``
  fault with the device's own description, so nothing a device reports is lost.

An alarm for the device itself (DeviceID = the device, or a channel without a camera) is
a fault without a camera whose kind carries the device id (``gb_<kind>_<device id>``: one
NVR's full disk is not another's, nor VIIS's own ``disk_full``).

Every alarm is answered (200 by the platform, then the MANSCDP ``<Response><CmdType>Alarm``
with ``Result OK`` that some devices wait for before they stop repeating it).

Deduplication: the same alarm (device, channel, method, type) repeated within
``repeat_s`` is counted, not written; after that, a repeat refreshes the open fault (one
open fault per kind and camera, faults.py) or reopens its ticket. GB/T 28181-2016 has no
"alarm ended" message, so a fault this module opened is cleared after ``clear_s`` without a
repeat (devices repeat an alarm while the condition lasts); the ticket stays, and is closed
only after the health desk's hold time. A fault of the same kind that was already open
(e.g. the monitor's own signal loss) is left to whoever opened it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from viis.core.logging import get_logger
from viis.health.faults import clear_fault, raise_fault
from viis.health.models import Fault

from . import manscdp

log = get_logger(__name__)

METHODS = {1: "telephone alarm", 2: "device alarm", 3: "SMS alarm", 4: "GPS alarm",
           5: "video alarm", 6: "device fault", 7: "other alarm"}

#: (AlarmMethod, AlarmType) -> (fault kind, severity, label). Type None = sent without one.
FAULTS: dict[tuple[int, int | None], tuple[str, str, str]] = {
    (2, 1): ("video_signal_loss", "critical", "video loss"),
    (2, 2): ("device_tamper", "critical", "device tamper (enclosure opened)"),
    (2, 3): ("device_disk_full", "warning", "storage disk full"),
    (2, 4): ("device_high_temperature", "warning", "device high temperature"),
    (2, 5): ("device_low_temperature", "warning", "device low temperature"),
    (5, 11): ("video_anomaly", "warning", "video anomaly"),
    (6, 1): ("device_disk_fault", "critical", "storage disk fault"),
    (6, 2): ("device_fan_fault", "warning", "storage fan fault"),
    (6, None): ("device_fault", "warning", "device fault"),
}
#: fault kind -> (AlarmMethod, AlarmType) for alarms we send up (cascade): the same table
#: read backwards, so a fault travels up under the code it would arrive with from below,
#: plus VIIS's own storage faults as "storage disk full"
UPWARD: dict[str, tuple[int, int]] = {
    kind: (m, t) for (m, t), (kind, _, _) in FAULTS.items() if t is not None
} | {"disk_full": (2, 3), "retention_at_risk": (2, 3)}
#: alarms that report something seen, not something broken: no ticket
EVENTS: dict[tuple[int, int | None], str] = {
    (2, None): "alarm input", (5, 1): "manual video alarm", (5, 2): "motion detection",
    (5, 3): "left object", (5, 4): "object removed", (5, 5): "tripwire", (5, 6): "intrusion",
    (5, 7): "wrong direction", (5, 8): "loitering", (5, 9): "flow count", (5, 10): "density",
    (5, 12): "fast movement", (1, None): "telephone alarm", (3, None): "SMS alarm",
    (4, None): "GPS alarm",
}
GENERIC = "gb_device_alarm"
#: Catalog events (SUBSCRIBE NOTIFY or an unasked catalog MESSAGE) about a channel's state
CATALOG_FAULTS = {"VLOST": ("video_signal_loss", "critical", "video lost"),
                  "DEFECT": ("device_fault", "warning", "channel defect")}


@dataclass
class DeviceAlarm:
    device_id: str
    channel_id: str
    priority: int | None
    method: int | None
    alarm_type: int | None
    time_ms: int | None
    description: str
    kind: str | None  # the fault kind, None for an event
    severity: str
    label: str
    count: int = 1
    last_at: float = 0.0  # service clock
    fault_id: int | None = None
    cleared: bool = False
    event: str | None = None  # a catalog event (VLOST, DEFECT) instead of an Alarm
    base_kind: str | None = None  # kind before a camera-less fault got the device id

    def __post_init__(self) -> None:
        self.base_kind = self.kind

    @property
    def key(self) -> tuple[str, str, int | None, int | None, str | None]:
        return (self.device_id, self.channel_id, self.method, self.alarm_type, self.event)

    def view(self) -> dict[str, Any]:
        return {"channel_id": self.channel_id, "priority": self.priority,
                "method": self.method, "method_name": METHODS.get(self.method or 0, "unknown"),
                "alarm_type": self.alarm_type, "time_ms": self.time_ms,
                "description": self.description, "label": self.label,
                "fault_kind": self.kind, "severity": self.severity, "count": self.count,
                "fault_id": self.fault_id, "cleared": self.cleared, "event": self.event}


def _int(text: Any) -> int | None:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def classify(device_id: str, msg: manscdp.Manscdp) -> DeviceAlarm:
    """Read an Alarm notification (lenient: ``<info>``/``<alarmtype>`` in any case, missing
    fields) and decide whether it is a fault, an event or an unknown alarm."""
    info = msg.sections.get("Info") or {}
    atype = _int(info.get("AlarmType") if isinstance(info, dict) else None)
    if atype is None:
        atype = _int(msg.get("AlarmType"))
    method, priority = _int(msg.get("AlarmMethod")), _int(msg.get("AlarmPriority"))
    try:
        when = manscdp.parse_gb_time(str(msg.get("AlarmTime") or ""))
    except ValueError:
        when = None
    desc = (msg.get("AlarmDescription") or "").strip()[:500]
    channel = (msg.device_id or device_id).strip()[:32]
    key = (method or 0, atype)
    if key in FAULTS:
        kind, severity, label = FAULTS[key]
    elif method == 6:  # a device fault of a type the table lacks
        kind, severity, label = FAULTS[(6, None)]
    elif key in EVENTS:
        kind, severity, label = None, "info", EVENTS[key]
    elif method in (1, 3, 4):
        kind, severity, label = None, "info", EVENTS[(method, None)]
    else:
        kind = GENERIC
        severity = "critical" if priority in (1, 2) else "warning"
        label = f"{METHODS.get(method or 0, 'unknown alarm method')}, type {atype}"
    return DeviceAlarm(device_id, channel, priority, method, atype, when, desc, kind,
                       severity, label)


def fault_message(a: DeviceAlarm) -> str:
    where = (f"channel {a.channel_id} of GB/T 28181 device {a.device_id}"
             if a.channel_id != a.device_id else f"GB/T 28181 device {a.device_id}")
    text = f"{a.label} reported by {where}"
    if a.description:
        text += f": {a.description}"
    when = manscdp.gb_time(a.time_ms) if a.time_ms is not None else "no time given"
    if a.event:
        return f"{text} (catalog event {a.event}, at {when} Beijing time)"
    return (f"{text} (AlarmMethod {a.method}, AlarmType {a.alarm_type}, priority "
            f"{a.priority}, at {when} Beijing time)")


@dataclass
class _Slot:
    alarm: DeviceAlarm
    written_at: float
    timer: Any = None


@dataclass
class AlarmDesk:
    """Device alarms of one :class:`~.service.GbPlatformService` (runs on its loop)."""

    svc: Any
    repeat_s: float = 60.0
    clear_s: float = 600.0
    keep: int = 20  # recent alarms per device
    received: int = 0
    repeats: int = 0
    faults_written: int = 0
    acknowledged: int = 0
    _recent: dict[str, deque] = field(default_factory=dict)
    _slots: dict[tuple, _Slot] = field(default_factory=dict)

    def recent(self, device_id: str) -> list[dict[str, Any]]:
        return [a.view() for a in reversed(self._recent.get(device_id, ()))]

    def status(self) -> dict[str, int]:
        return {"received": self.received, "repeats": self.repeats,
                "faults_written": self.faults_written, "acknowledged": self.acknowledged,
                "open": sum(1 for s in self._slots.values()
                            if s.alarm.kind and not s.alarm.cleared)}

    def on_alarm(self, device_id: str, msg: manscdp.Manscdp) -> DeviceAlarm:
        """Called for each Alarm notification (already answered 200 by the platform)."""
        self.received += 1
        self.svc._spawn(self._acknowledge(device_id, msg))
        return self._handle(device_id, classify(device_id, msg))

    def catalog_event(self, device_id: str, channel_id: str, event: str) -> None:
        """A catalog event about a channel (Q19.3): ``VLOST`` (video lost) and ``DEFECT``
        open faults like the matching alarms (same dedup and quiet time); ``ON`` is the
        device saying the channel works again: it clears the video-loss and defect faults
        that alarms or events opened for that channel (the repair is seen, not guessed)."""
        ev = (event or "").strip().upper()
        channel_id = (channel_id or device_id).strip()[:32]
        if ev in CATALOG_FAULTS:
            kind, severity, label = CATALOG_FAULTS[ev]
            self._handle(device_id, DeviceAlarm(
                device_id, channel_id, None, None, None, self.svc.app.clock.wall_ms(),
                f"catalog event {ev}", kind, severity, label, event=ev))
        elif ev == "ON":
            for slot in list(self._slots.values()):
                a = slot.alarm
                if (a.device_id, a.channel_id) == (device_id, channel_id) and not a.cleared \
                        and a.fault_id is not None \
                        and a.base_kind in ("video_signal_loss", "device_fault"):
                    if slot.timer is not None:
                        slot.timer.cancel()
                        slot.timer = None
                    self.svc._spawn(self._clear(slot, why="catalog event ON"))

    def _handle(self, device_id: str, a: DeviceAlarm) -> DeviceAlarm:
        now = self.svc.clock.now()
        a.last_at = now
        slot = self._slots.get(a.key)
        if slot is not None and not slot.alarm.cleared and now - slot.written_at < self.repeat_s:
            slot.alarm.count += 1
            slot.alarm.last_at = now
            self.repeats += 1
            self._arm(slot)  # still going on: the quiet time starts again
            return slot.alarm
        if slot is not None and slot.timer is not None:
            slot.timer.cancel()
        if slot is not None and not slot.alarm.cleared:
            a.fault_id = slot.alarm.fault_id  # the fault it opened is still ours to clear
        if len(self._slots) >= 10_000 and a.key not in self._slots:  # bound a flood of keys
            oldest = min(self._slots, key=lambda k: self._slots[k].alarm.last_at)
            old = self._slots.pop(oldest)
            if old.timer is not None:
                old.timer.cancel()
        slot = self._slots[a.key] = _Slot(a, now)
        ring = self._recent.setdefault(device_id, deque(maxlen=self.keep))
        if len(self._recent) > 10_000 and device_id not in self._recent:
            self._recent.pop(next(iter(self._recent)))
        ring.append(a)
        log.warning("gb28181_alarm", device=device_id, channel=a.channel_id, method=a.method,
                    alarm_type=a.alarm_type, fault_kind=a.kind, description=a.description[:200])
        if a.kind is not None:
            self.svc._spawn(self._raise(slot))
        return a

    async def _acknowledge(self, device_id: str, msg: manscdp.Manscdp) -> None:
        """The alarm notification's answer (``<Response><CmdType>Alarm … <Result>OK``) after
        the 200: some devices repeat an alarm until they get it. Best effort."""
        try:
            p = self.svc.peer(device_id)
            body = manscdp.response("Alarm", msg.sn, msg.device_id or device_id,
                                    {"Result": "OK"}, charset=self.svc._charset(p))
            await self.svc.send_manscdp(p, body)
            self.acknowledged += 1
        except Exception as e:  # noqa: BLE001 - the device has its 200; note and go on
            log.info("gb28181_alarm_ack_failed", device=device_id, error=str(e)[:200])

    def _arm(self, slot: _Slot) -> None:
        if slot.timer is not None:
            slot.timer.cancel()
            slot.timer = None
        if self.clear_s > 0 and slot.alarm.fault_id is not None:
            slot.timer = self.svc.clock.call_later(
                self.clear_s, lambda: self.svc._spawn(self._clear(slot)))

    async def _raise(self, slot: _Slot) -> None:
        a = slot.alarm
        now_ms = self.svc.app.clock.wall_ms()
        store = self.svc.store

        def write() -> tuple[int, bool]:
            with self.svc.app.db.session() as s:
                ch = store.channel(s, a.device_id, a.channel_id)
                camera_id = ch.camera_id if ch is not None else None
                kind = a.kind if camera_id is not None else f"gb_{a.kind}_{a.device_id}"[:64]
                was_open = s.scalar(_open(kind, camera_id)) is not None
                f = raise_fault(s, kind, a.severity, fault_message(a), now_ms,
                                camera_id=camera_id)
                a.kind = kind
                return f.id, not was_open

        try:
            fault_id, ours = await self.svc._db(write)
        except Exception:
            log.exception("gb28181_alarm_fault_failed", device=a.device_id)
            return
        self.faults_written += 1
        if ours or slot.alarm.fault_id == fault_id:
            a.fault_id = fault_id
            self._arm(slot)

    async def _clear(self, slot: _Slot, why: str = "quiet time") -> None:
        a = slot.alarm
        if self._slots.get(a.key) is not slot or a.fault_id is None or a.cleared:
            return
        now_ms = self.svc.app.clock.wall_ms()

        def write() -> None:
            with self.svc.app.db.session() as s:
                f = s.get(Fault, a.fault_id)
                if f is not None and f.cleared_ms is None:
                    clear_fault(s, f.kind, now_ms, camera_id=f.camera_id)

        try:
            await self.svc._db(write)
        except Exception:
            log.exception("gb28181_alarm_clear_failed", device=a.device_id)
            return
        a.cleared = True
        log.info("gb28181_alarm_cleared", device=a.device_id, channel=a.channel_id,
                 fault_kind=a.kind, why=why)

    def close(self) -> None:
        for s in self._slots.values():
            if s.timer is not None:
                s.timer.cancel()


def _open(kind: str, camera_id: int | None):
    q = select(Fault).where(Fault.kind == kind, Fault.cleared_ms.is_(None))
    return q.where(Fault.camera_id.is_(None) if camera_id is None else Fault.camera_id == camera_id)


__all__ = ["EVENTS", "FAULTS", "GENERIC", "AlarmDesk", "DeviceAlarm", "classify",
           "fault_message"]
