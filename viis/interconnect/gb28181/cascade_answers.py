"""What the lower-platform role says to an upper platform, as MANSCDP XML bodies: Catalog
(split into small messages), DeviceInfo, DeviceStatus, RecordInfo (recorded ranges from the
recording index), Keepalive, Alarm and the Catalog ``<Event>`` notification.

Pure functions apart from :func:`record_ranges` (one read of the index). Bodies are encoded
in the upper platform's charset; a character that charset cannot hold (e.g. 镕 in GB2312)
is written as an XML character reference, which every XML parser reads back exactly,
instead of being lost or breaking the message (Q12.1, N12.1: speak the national standard
as the peer configured it).

Splitting: an upper asks for the catalog once and receives ``SumNum`` items in as many
messages as needed, each with ``<DeviceList Num=n>``. Over UDP a message is kept under
``UDP_BODY_MAX`` bytes of body so that, with its SIP headers, it fits one Ethernet frame —
fragmented datagrams are what loses catalogs on real NVRs and platforms (field notes).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape

from sqlalchemy.orm import Session

from viis.interconnect.gb28181.cascade_store import Share, UpperPlatform
from viis.interconnect.gb28181.manscdp import ManscdpError, safe_fromstring
from viis.interconnect.gb28181.sip import decode_text
from viis.media.index import segments_between

BEIJING = timedelta(hours=8)
UDP_BODY_MAX = 1000  # + ~400 bytes of SIP headers < 1472 (one frame, no fragmentation)
TCP_BODY_MAX = 60_000
MAX_ITEMS_PER_MESSAGE = 64
JOIN_MS = 1500  # segments closer than this are one recorded range (as the timeline does)
MAX_RECORD_SPAN_MS = 32 * 86_400_000
MAX_RECORD_ITEMS = 5000
MANUFACTURER = "VIIS"
Field = tuple[str, object]


class QueryError(ValueError):
    """The MANSCDP body cannot be read; ``reason`` is safe to log and show."""


@dataclass
class Query:
    root: str  # Query | Control | Notify | Response
    cmd: str
    sn: int
    device_id: str
    el: ET.Element
    charset: str  # what the body was actually decoded as

    def text(self, tag: str) -> str:
        """A top-level field, any case (devices bend the case of tags)."""
        for child in self.el:
            if child.tag.lower() == tag.lower():
                return (child.text or "").strip()
        return ""


def parse_query(body: bytes, declared: str | None = None) -> Query:
    """Read a MANSCDP body whatever its charset (GB2312/GBK/GB18030/UTF-8, declared or not)."""
    if len(body) > 65_535:
        raise QueryError("body too large")
    m = re.match(rb'\s*<\?xml[^>]*encoding\s*=\s*["\']([A-Za-z0-9_\-]+)', body)
    try:
        text, used = decode_text(body, declared or (m.group(1).decode() if m else None))
    except UnicodeDecodeError as e:
        raise QueryError("charset: the body is neither GB2312/GBK/GB18030 nor UTF-8") from e
    try:  # DOCTYPE/ENTITY refused, depth and element count bounded (manscdp's parser)
        el = safe_fromstring(text.strip().lstrip("\ufeff"))
    except ManscdpError as e:
        raise QueryError(str(e)) from None
    q = Query(el.tag, "", 0, "", el, used)
    q.cmd, q.device_id = q.text("CmdType"), q.text("DeviceID")
    sn = q.text("SN")
    q.sn = int(sn) if sn.isdigit() and len(sn) < 10 else 0
    return q


# ---- time ------------------------------------------------------------------------------

def gb_time(ms: int) -> str:
    """GB/T 28181 time: Beijing wall time, no zone, seconds."""
    return (datetime.fromtimestamp(ms / 1000, UTC) + BEIJING).strftime("%Y-%m-%dT%H:%M:%S")


def parse_gb_time(text: str) -> int:
    """Lenient: ``2024-05-01T12:00:00``, a space instead of T, fractions, or a zone."""
    t = text.strip().replace(" ", "T")
    if not t:
        raise ValueError("empty time")
    dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        return int(((dt - BEIJING).replace(tzinfo=UTC)).timestamp() * 1000)
    return int(dt.timestamp() * 1000)


# ---- XML -------------------------------------------------------------------------------

def _fields(fields: Iterable[Field]) -> str:
    out = []
    for tag, value in fields:
        if value is None:
            continue
        if isinstance(value, dict):
            out.append(f"<{tag}>{_fields(value.items())}</{tag}>")
        else:
            out.append(f"<{tag}>{escape(str(value))}</{tag}>")
    return "".join(out)


def codec_name(charset: str) -> str:
    c = charset.upper()
    return {"UTF-8": "utf-8", "GBK": "gbk", "GB18030": "gb18030"}.get(c, "gb2312")


def xml_body(root: str, cmd: str, sn: int, device_id: str, fields: Iterable[Field] = (), *,
             items: Sequence[Sequence[Field]] | None = None, list_tag: str = "DeviceList",
             sum_num: int | None = None, charset: str = "GB2312") -> bytes:
    parts = [f'<?xml version="1.0" encoding="{charset.upper()}"?>\r\n<{root}>\r\n',
             f"<CmdType>{cmd}</CmdType>\r\n<SN>{sn}</SN>\r\n<DeviceID>{escape(device_id)}"
             "</DeviceID>\r\n"]
    parts.append(_fields(fields))
    if items is not None:
        if sum_num is not None:
            parts.append(f"<SumNum>{sum_num}</SumNum>\r\n")
        parts.append(f'<{list_tag} Num="{len(items)}">\r\n')
        for it in items:
            parts.append(f"<Item>{_fields(it)}</Item>\r\n")
        parts.append(f"</{list_tag}>\r\n")
    parts.append(f"</{root}>\r\n")
    return "".join(parts).encode(codec_name(charset), errors="xmlcharrefreplace")


def split_bodies(build: Callable[[Sequence[Sequence[Field]]], bytes],
                 items: Sequence[Sequence[Field]], body_max: int,
                 max_items: int = MAX_ITEMS_PER_MESSAGE) -> list[bytes]:
    """Greedy: as many items per message as fit ``body_max`` (at least one each). Sizes are
    measured once per item (the list's Num attribute may grow by a few digits: margin), so
    a large catalog costs linear time."""
    if not items:
        return [build([])]
    base = len(build([]))
    sizes = [len(build([it])) - base for it in items]
    margin = 4
    out: list[bytes] = []
    start, total = 0, base + margin
    for i, size in enumerate(sizes):
        if i > start and (total + size > body_max or i - start >= max_items):
            out.append(build(items[start:i]))
            start, total = i, base + margin
        total += size
    out.append(build(items[start:]))
    return out


def body_max(upper: UpperPlatform) -> int:
    return UDP_BODY_MAX if upper.transport == "UDP" else TCP_BODY_MAX


# ---- answers ---------------------------------------------------------------------------

def catalog_item(upper: UpperPlatform, sh: Share, online: bool) -> list[Field]:
    return [("DeviceID", sh.channel_id), ("Name", sh.name), ("Manufacturer", MANUFACTURER),
            ("Model", "channel"), ("Owner", "0"), ("CivilCode", sh.channel_id[:6]),
            ("Address", sh.site or sh.name), ("Parental", "0"), ("ParentID", upper.local_id),
            ("SafetyWay", "0"), ("RegisterWay", "1"), ("Secrecy", "1" if sh.security_level > 1
                                                        else "0"),
            ("Status", "ON" if online else "OFF"),
            ("Info", {"PTZType": "1" if sh.ptz_allowed else "3"})]


def catalog_bodies(upper: UpperPlatform, sn: int, shares: Sequence[Share],
                   online: Callable[[int], bool], device_id: str | None = None) -> list[bytes]:
    items = [catalog_item(upper, sh, online(sh.camera_id)) for sh in shares]
    did = device_id or upper.local_id
    return split_bodies(lambda chunk: xml_body("Response", "Catalog", sn, did, items=chunk,
                                               sum_num=len(items), charset=upper.charset),
                        items, body_max(upper))


def catalog_event_bodies(upper: UpperPlatform, sn: int, changes: Sequence[tuple[Share, str]]
                         ) -> list[bytes]:
    """The NOTIFY body of a catalog subscription: items with ``<Event>`` ON/OFF/ADD/DEL."""
    items = [[*catalog_item(upper, sh, ev not in ("OFF", "DEL")), ("Event", ev)]
             for sh, ev in changes]
    return split_bodies(lambda chunk: xml_body("Notify", "Catalog", sn, upper.local_id,
                                               items=chunk, sum_num=len(items),
                                               charset=upper.charset),
                        items, body_max(upper))


def device_info_body(upper: UpperPlatform, sn: int, device_id: str, name: str, channels: int,
                     version: str) -> bytes:
    return xml_body("Response", "DeviceInfo", sn, device_id, [
        ("DeviceName", name), ("Result", "OK"), ("Manufacturer", MANUFACTURER),
        ("Model", "VIIS"), ("Firmware", version), ("Channel", channels)],
        charset=upper.charset)


def device_status_body(upper: UpperPlatform, sn: int, device_id: str, online: bool,
                       recording: bool, now_ms: int) -> bytes:
    return xml_body("Response", "DeviceStatus", sn, device_id, [
        ("Result", "OK"), ("Online", "ONLINE" if online else "OFFLINE"),
        ("Status", "OK" if online else "ERROR"), ("Encode", "ON"),
        ("Record", "ON" if recording else "OFF"), ("DeviceTime", gb_time(now_ms))],
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
    items = [[("DeviceID", sh.channel_id), ("Name", sh.name), ("FilePath", f"{a}-{b}"),
              ("Address", sh.site or sh.name), ("StartTime", gb_time(a)),
              ("EndTime", gb_time(b)), ("Secrecy", "0"), ("Type", "time")] for a, b in ranges]
    return split_bodies(lambda chunk: xml_body("Response", "RecordInfo", sn, sh.channel_id,
                                               [("Name", sh.name)], items=chunk,
                                               list_tag="RecordList", sum_num=len(items),
                                               charset=upper.charset),
                        items, body_max(upper))


def keepalive_body(upper: UpperPlatform, sn: int) -> bytes:
    return xml_body("Notify", "Keepalive", sn, upper.local_id, [("Status", "OK")],
                    charset=upper.charset)


#: health fault kind -> (AlarmMethod, AlarmType). Method 5 is a video alarm, 6 a device
#: fault (type 1 video loss, 3 storage full); unverified against the standard's text.
ALARM_TYPES = {"video_signal_loss": ("6", "1"), "disk_full": ("6", "3"),
               "retention_at_risk": ("6", "3")}
PRIORITY = {"critical": "1", "warning": "3", "info": "4"}


def alarm_body(upper: UpperPlatform, sn: int, device_id: str, kind: str, severity: str,
               description: str, at_ms: int) -> bytes:
    method, atype = ALARM_TYPES.get(kind, ("5", "11"))  # other picture faults: video anomaly
    return xml_body("Notify", "Alarm", sn, device_id, [
        ("AlarmPriority", PRIORITY.get(severity, "4")), ("AlarmMethod", method),
        ("AlarmTime", gb_time(at_ms)), ("AlarmDescription", description[:200]),
        ("Info", {"AlarmType": atype})], charset=upper.charset)
