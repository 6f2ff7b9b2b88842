"""What the lower-platform role says to an upper platform, as MANSCDP XML bodies: Catalog
(split into small messages), DeviceInfo, DeviceStatus, RecordInfo (recorded ranges from the
recording index), Keepalive, Alarm and the Catalog ``<Event>`` notification.

The XML itself — parsing (charsets, limits, DOCTYPE refused), building, the split of list
answers, GB time — is :mod:`viis.interconnect.gb28181.manscdp`, the one MANSCDP codec of
both roles; this module maps shares, cameras and recorded ranges onto it. Pure functions
apart from :func:`record_ranges` (one read of the index). Bodies are encoded in the upper
platform's charset; a character that charset cannot hold (e.g. 镕 in GB2312) is written as an
XML character reference, which every XML parser reads back exactly, instead of being lost or
breaking the message (Q12.1, N12.1: speak the national standard as the peer configured it).

Splitting: an upper asks for the catalog once and receives ``SumNum`` items in as many
messages as needed, each with ``<DeviceList Num=n>``. Over UDP a message is kept under
``UDP_BODY_MAX`` bytes of body so that, with its SIP headers, it fits one Ethernet frame —
fragmented datagrams are what loses catalogs on real NVRs and platforms (field notes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from viis.interconnect.gb28181 import manscdp
from viis.interconnect.gb28181.alarms import UPWARD
from viis.interconnect.gb28181.cascade_store import Share, UpperPlatform
from viis.interconnect.gb28181.manscdp import Manscdp, gb_time, parse_gb_time
from viis.media.index import segments_between

__all__ = ["gb_time", "parse_gb_time", "parse_query"]

UDP_BODY_MAX = 1000  # + ~400 bytes of SIP headers < 1472 (one frame, no fragmentation)
TCP_BODY_MAX = 60_000
MAX_QUERY_BYTES = 65_535  # a MESSAGE body from an upper: what one UDP datagram can hold
MAX_ITEMS_PER_MESSAGE = 64
JOIN_MS = 1500  # segments closer than this are one recorded range (as the timeline does)
MAX_RECORD_SPAN_MS = 32 * 86_400_000
MAX_RECORD_ITEMS = 5000
MANUFACTURER = "VIIS"
Item = dict[str, Any]


def parse_query(body: bytes, declared: str | None = None) -> Manscdp:
    """Read a MANSCDP body from an upper whatever its charset (GB2312/GBK/GB18030/UTF-8,
    declared or not), at most ``MAX_QUERY_BYTES``; ``ManscdpError`` when it cannot be read."""
    return manscdp.parse(body, declared, max_bytes=MAX_QUERY_BYTES)


def body_max(upper: UpperPlatform) -> int:
    return UDP_BODY_MAX if upper.transport == "UDP" else TCP_BODY_MAX


def _split(upper: UpperPlatform) -> dict[str, Any]:
    return {"per_message": MAX_ITEMS_PER_MESSAGE, "charset": upper.charset,
            "max_bytes": body_max(upper)}


# ---- answers ---------------------------------------------------------------------------

def catalog_item(upper: UpperPlatform, sh: Share, online: bool) -> Item:
    return {"DeviceID": sh.channel_id, "Name": sh.name, "Manufacturer": MANUFACTURER,
            "Model": "channel", "Owner": "0", "CivilCode": sh.channel_id[:6],
            "Address": sh.site or sh.name, "Parental": "0", "ParentID": upper.local_id,
            "SafetyWay": "0", "RegisterWay": "1",
            "Secrecy": "1" if sh.security_level > 1 else "0",
            "Status": "ON" if online else "OFF",
            "Info": {"PTZType": "1" if sh.ptz_allowed else "3"}}


def catalog_bodies(upper: UpperPlatform, sn: int, shares: Sequence[Share],
                   online: Callable[[int], bool], device_id: str | None = None) -> list[bytes]:
    items = [catalog_item(upper, sh, online(sh.camera_id)) for sh in shares]
    return manscdp.catalog_responses(device_id or upper.local_id, sn, items, **_split(upper))


def catalog_event_bodies(upper: UpperPlatform, sn: int, changes: Sequence[tuple[Share, str]]
                         ) -> list[bytes]:
    """The NOTIFY body of a catalog subscription: items with ``<Event>`` ON/OFF/ADD/DEL."""
    items = [catalog_item(upper, sh, ev not in ("OFF", "DEL")) | {"Event": ev}
             for sh, ev in changes]
    return manscdp.catalog_notify(upper.local_id, sn, items, **_split(upper))


def device_info_body(upper: UpperPlatform, sn: int, device_id: str, name: str, channels: int,
                     version: str) -> bytes:
    return manscdp.response("DeviceInfo", sn, device_id, {
        "DeviceName": name, "Result": "OK", "Manufacturer": MANUFACTURER, "Model": "VIIS",
        "Firmware": version, "Channel": channels}, charset=upper.charset)


def device_status_body(upper: UpperPlatform, sn: int, device_id: str, online: bool,
                       recording: bool, now_ms: int) -> bytes:
    return manscdp.response("DeviceStatus", sn, device_id, {
        "Result": "OK", "Online": "ONLINE" if online else "OFFLINE",
        "Status": "OK" if online else "ERROR", "Encode": "ON",
        "Record": "ON" if recording else "OFF", "DeviceTime": gb_time(now_ms)},
        charset=upper.charset)


def record_ranges(s: Session, camera_id: int, from_ms: int, to_ms: int,
                  limit: int = MAX_RECORD_ITEMS) -> list[tuple[int, int]]:
    """Recorded ranges of a camera within [from_ms, to_ms): consecutive segments merged, gaps
    (and removed segments) left out, clipped to the window."""
    out: list[list[int]] = []
    for seg in segments_between(s, camera_id, from_ms, to_ms):
        a, b = max(seg.start_ms, from_ms), min(seg.end_ms, to_ms)
        if b <= a:
            continue
        if out and a <= out[-1][1] + JOIN_MS:
            out[-1][1] = max(out[-1][1], b)
        elif len(out) < limit:
            out.append([a, b])
        else:
            break
    return [(a, b) for a, b in out]


def record_info_bodies(upper: UpperPlatform, sn: int, sh: Share,
                       ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    items = [{"DeviceID": sh.channel_id, "Name": sh.name, "FilePath": f"{a}-{b}",
              "Address": sh.site or sh.name, "StartTime": gb_time(a), "EndTime": gb_time(b),
              "Secrecy": "0", "Type": "time"} for a, b in ranges]
    return manscdp.record_info_responses(sh.channel_id, sn, items, name=sh.name,
                                         **_split(upper))


def keepalive_body(upper: UpperPlatform, sn: int) -> bytes:
    return manscdp.keepalive(upper.local_id, sn, charset=upper.charset)


#: health fault kind -> (AlarmMethod, AlarmType). Method 5 is a video alarm, 6 a device
#: fault (type 1 video loss, 3 storage full); unverified against the standard's text.
ALARM_TYPES = UPWARD  # one alarm table for both directions (alarms.py)
PRIORITY = {"critical": 1, "warning": 3, "info": 4}


def alarm_body(upper: UpperPlatform, sn: int, device_id: str, kind: str, severity: str,
               description: str, at_ms: int) -> bytes:
    method, atype = ALARM_TYPES.get(kind, (5, 11))  # other picture faults: video anomaly
    return manscdp.alarm_notify(device_id, sn, priority=PRIORITY.get(severity, 4),
                                method=method, time_ms=at_ms, description=description[:200],
                                alarm_type=atype, charset=upper.charset)
