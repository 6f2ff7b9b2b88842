"""MANSCDP: the XML bodies of GB/T 28181 MESSAGE/NOTIFY requests (Q12.1, N12.1, Q13.1, Q13.2).

Owns parsing (tolerant of what real devices send, hostile to what attackers send),
building (in the peer's charset), the split of Catalog/RecordInfo responses into small
messages that survive UDP, the assembly of split responses, and GB time text.

Parsing rules, and why:
- Charset: UTF-8 first, then the declared charset, then GB18030 (``sip.decode_text``).
  GB2312 bodies that hold rarer characters (e.g. 镕) and GBK bodies decode as GB18030.
- The XML declaration is stripped and the text parsed as a string: ElementTree refuses
  multi-byte declared encodings from bytes.
- Any ``<!DOCTYPE`` or ``<!ENTITY`` is refused outright: MANSCDP has no use for a DTD, and
  refusing it removes entity expansion (billion laughs) and external entities.
- Limits: body size (``MAX_BODY``), nesting depth (``MAX_DEPTH``), element count
  (``MAX_ELEMENTS``); checked while parsing so a hostile body costs work bounded by them.
- Tag names are matched case-insensitively and returned in their canonical spelling
  (``<info>`` -> ``Info``, ``<cmdtype>`` -> ``CmdType``); values are stripped.
- Item ``Status`` ``ONLINE``/``OFFLINE`` (some devices) is normalised to ``ON``/``OFF``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from .clock import Clock, TimerHandle
from .sip import decode_text

MAX_BODY = 1 << 20  # bytes; a MESSAGE over UDP cannot exceed 64 KB, TCP catalogs can be big
MAX_DEPTH = 8  # Response > DeviceList > Item > Info > (room for vendor nesting)
MAX_ELEMENTS = 50_000
UDP_BODY_LIMIT = 1024  # body bytes per split message: with ~450 B of SIP head < 1472 B (no IP fragments)
ROOTS = ("Query", "Response", "Notify", "Control")
BEIJING = timedelta(hours=8)

_CANONICAL = [
    "Query", "Response", "Notify", "Control", "CmdType", "SN", "DeviceID", "Status", "Result",
    "SumNum", "DeviceList", "RecordList", "Item", "Info", "Name", "Manufacturer", "Model",
    "Owner", "CivilCode", "Block", "Address", "Parental", "ParentID", "SafetyWay",
    "RegisterWay", "CertNum", "Certifiable", "ErrCode", "EndTime", "Secrecy", "IPAddress",
    "Port", "Password", "Longitude", "Latitude", "BusinessGroupID", "PTZType", "PositionType",
    "RoomType", "UseType", "SupplyLightType", "DirectionType", "Resolution", "DownloadSpeed",
    "SVCSpaceSupportMode", "SVCTimeSupportMode", "StartTime", "Type", "FilePath", "RecorderID",
    "FileSize", "AlarmPriority", "AlarmMethod", "AlarmTime", "AlarmDescription", "AlarmType",
    "AlarmTypeParam", "EventType", "Event", "NotifyType", "DeviceName", "Firmware",
    "Channel", "Online", "DeviceTime", "Encode", "Record", "Alarmstatus", "DutyStatus",
    "Reason", "PTZCmd", "ControlPriority", "TeleBoot", "RecordCmd", "GuardCmd", "AlarmCmd",
    "IFameCmd", "DragZoomIn", "DragZoomOut", "HomePosition", "PresetList", "PresetID",
    "PresetName", "StartAlarmPriority", "EndAlarmPriority", "IndistinctQuery", "Expires",
    "Interval", "DeviceType", "MaxCamera", "MaxAlarm",
]
CANONICAL: dict[str, str] = {n.lower(): n for n in _CANONICAL}
LIST_TAGS = {"DeviceList", "RecordList", "PresetList", "Alarmstatus", "ItemList"}
_CMD_TYPES = [
    "Catalog", "DeviceInfo", "DeviceStatus", "RecordInfo", "Keepalive", "Alarm", "MediaStatus",
    "DeviceControl", "DeviceConfig", "ConfigDownload", "PresetQuery", "MobilePosition",
    "Broadcast",
]
CMD_TYPES: dict[str, str] = {c.lower(): c for c in _CMD_TYPES}
_FORBIDDEN = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class ManscdpError(ValueError):
    """The body is not MANSCDP we can read; ``reason`` says what to check."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Manscdp:
    root: str  # Query | Response | Notify | Control
    cmd: str  # CmdType, canonical case when known
    sn: int
    device_id: str
    fields: dict[str, str] = field(default_factory=dict)  # top-level scalar elements
    items: list[dict[str, Any]] = field(default_factory=list)  # items of the (first) list
    list_tag: str | None = None  # DeviceList, RecordList, ...
    sum_num: int | None = None
    num: int | None = None  # the list's Num attribute (items in this message)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)  # top-level <Info> etc.
    lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # every list by tag
    charset: str = ""  # the codec that decoded the body
    declared_charset: str | None = None
    warnings: list[str] = field(default_factory=list)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.fields.get(CANONICAL.get(name.lower(), name), default)


def canonical(tag: str) -> str:
    if "}" in tag:  # a namespace some vendors add
        tag = tag.rsplit("}", 1)[1]
    return CANONICAL.get(tag.lower(), tag)


def xml_encoding(body: bytes) -> str | None:
    m = re.match(rb'\s*(?:\xef\xbb\xbf)?\s*<\?xml[^>]*encoding\s*=\s*["\']([A-Za-z0-9_\-]+)', body)
    return m.group(1).decode() if m else None


def _strip_decl(text: str) -> str:
    text = text.strip().lstrip("\ufeff").strip()
    if text.startswith("<?xml"):
        end = text.find("?>")
        if end >= 0:
            text = text[end + 2 :]
    return text.strip()


def _element_value(el: ET.Element, depth: int = 0) -> str | dict[str, Any]:
    children = list(el)
    if not children:
        return (el.text or "").strip()
    out: dict[str, Any] = {}
    for c in children:
        out[canonical(c.tag)] = _element_value(c, depth + 1)
    return out


def _item(el: ET.Element) -> dict[str, Any]:
    v = _element_value(el)
    d = v if isinstance(v, dict) else {}
    st = d.get("Status")
    if isinstance(st, str):
        up = st.upper()
        if up in ("ONLINE", "ON"):
            d["Status"] = "ON"
        elif up in ("OFFLINE", "OFF"):
            d["Status"] = "OFF"
    return d


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    t = text.strip()
    return int(t) if t.isascii() and t.isdigit() and len(t) <= 12 else None  # not "²"


def safe_fromstring(text: str, *, max_depth: int = MAX_DEPTH,
                    max_elements: int = MAX_ELEMENTS) -> ET.Element:
    """``ET.fromstring`` for untrusted MANSCDP text: DOCTYPE/ENTITY refused outright, the
    XML declaration stripped, depth and element count checked while parsing (so a hostile
    body costs work bounded by the limits). Raises ``ManscdpError`` only."""
    if _FORBIDDEN.search(text):
        raise ManscdpError("a DOCTYPE/ENTITY declaration is not allowed in MANSCDP (refused)")
    text = _strip_decl(text)
    if not text.startswith("<"):
        raise ManscdpError("the body does not start with an XML element")
    parser = ET.XMLPullParser(events=("start", "end"))
    depth = count = 0
    root: ET.Element | None = None
    try:
        for i in range(0, len(text), 16_384):
            parser.feed(text[i : i + 16_384])
            for ev, el in parser.read_events():
                if ev == "start":
                    depth += 1
                    count += 1
                    if root is None:
                        root = el
                    if depth > max_depth:
                        raise ManscdpError(f"XML nested deeper than {max_depth} levels")
                    if count > max_elements:
                        raise ManscdpError(f"more than {max_elements} XML elements")
                else:
                    depth -= 1
        parser.close()
    except ET.ParseError as e:
        raise ManscdpError(f"malformed XML: {e}") from e
    if root is None:
        raise ManscdpError("no XML element in the body")
    return root


def parse(
    body: bytes | str, charset: str | None = None, *, max_bytes: int = MAX_BODY,
    max_depth: int = MAX_DEPTH, max_elements: int = MAX_ELEMENTS,
) -> Manscdp:
    """Parse a MANSCDP body. ``charset`` is the SIP Content-Type charset, if any.

    Raises ``ManscdpError`` (never another exception) when the body cannot be read.
    """
    if isinstance(body, str):
        raw = body.encode("utf-8")
    else:
        raw = bytes(body)
    if len(raw) > max_bytes:
        raise ManscdpError(f"body of {len(raw)} bytes is over the {max_bytes} byte limit")
    declared = xml_encoding(raw)
    try:
        text, used = decode_text(raw, charset or declared)
    except UnicodeDecodeError as e:
        raise ManscdpError("charset: the body is neither UTF-8 nor GB2312/GBK/GB18030") from e
    if "\x00" in text:
        raise ManscdpError("NUL character in the body")
    root = safe_fromstring(text, max_depth=max_depth, max_elements=max_elements)
    root_tag = canonical(root.tag)
    if root_tag not in ROOTS:
        raise ManscdpError(f"root element <{root_tag}> is not Query/Response/Notify/Control")
    msg = Manscdp(root=root_tag, cmd="", sn=0, device_id="", charset=used,
                  declared_charset=declared)
    if declared and declared.lower() in ("gb2312", "gbk", "gb18030") and used == "utf-8" \
            and not raw.isascii():
        msg.warnings.append(f"charset: body declares {declared} but is UTF-8")
    for child in root:
        tag = canonical(child.tag)
        if tag in LIST_TAGS or (len(child) and all(canonical(c.tag) == "Item" for c in child)
                                and child.get("Num") is not None):
            items = [_item(c) for c in child if canonical(c.tag) == "Item"]
            msg.lists[tag] = items
            if msg.list_tag is None:
                msg.list_tag, msg.items = tag, items
                num = _int(child.get("Num") or child.get("num"))
                msg.num = num if num is not None else len(items)
                if child.get("Num") is not None and num != len(items):
                    msg.warnings.append(f"{tag} Num={child.get('Num')} but {len(items)} items")
        elif len(child):
            v = _element_value(child)
            assert isinstance(v, dict)
            msg.sections[tag] = v
        else:
            msg.fields[tag] = (child.text or "").strip()
    cmd = msg.fields.get("CmdType", "")
    msg.cmd = CMD_TYPES.get(cmd.lower(), cmd)
    msg.device_id = msg.fields.get("DeviceID", "")
    sn = _int(msg.fields.get("SN"))
    if sn is None:
        msg.warnings.append(f"SN missing or not a number: {msg.fields.get('SN')!r}")
    msg.sn = sn or 0
    msg.sum_num = _int(msg.fields.get("SumNum"))
    if not msg.cmd:
        raise ManscdpError("no CmdType in the body")
    return msg


# ---- building --------------------------------------------------------------------------


def _encode(text: str, charset: str) -> bytes:
    """Encode in the peer's charset; a character it cannot hold (镕 in GB2312) becomes an
    XML character reference (``&#38229;``), which every XML parser reads back exactly, so
    the bytes always match the declaration and nothing is lost."""
    c = charset.lower()
    try:
        return text.encode(c, "xmlcharrefreplace")
    except LookupError:  # an unknown charset name configured for a peer
        return text.encode("utf-8")


def _xml(name: str, value: Any, out: list[str]) -> None:
    if isinstance(value, Mapping):
        out.append(f"<{name}>\n")
        for k, v in value.items():
            _xml(k, v, out)
        out.append(f"</{name}>\n")
    elif value is None:
        return
    else:
        out.append(f"<{name}>{escape(str(value))}</{name}>\n")


def _head(root: str, cmd: str, sn: int, device_id: str, fields: Mapping[str, Any] | None,
          charset: str) -> str:
    out = [f'<?xml version="1.0" encoding="{charset}"?>\n<{root}>\n']
    _xml("CmdType", cmd, out)
    _xml("SN", sn, out)
    _xml("DeviceID", device_id, out)
    for k, v in (fields or {}).items():
        _xml(k, v, out)
    return "".join(out)


def _item_xml(item: Mapping[str, Any]) -> str:
    out: list[str] = []
    _xml("Item", item, out)
    return "".join(out)


def build(
    root: str, cmd: str, sn: int, device_id: str, fields: Mapping[str, Any] | None = None,
    items: Iterable[Mapping[str, Any]] | None = None, list_tag: str | None = None,
    charset: str = "GB2312",
) -> bytes:
    """Build a MANSCDP body. ``fields`` are written in order after DeviceID (a dict value
    becomes a nested element, e.g. ``Info``); ``items`` go under ``list_tag`` with ``Num``."""
    if root not in ROOTS:
        raise ValueError(f"root must be one of {ROOTS}")
    text = _head(root, cmd, sn, device_id, fields, charset)
    if items is not None:
        parts = [_item_xml(i) for i in items]
        tag = list_tag or "DeviceList"
        text += f'<{tag} Num="{len(parts)}">\n' + "".join(parts) + f"</{tag}>\n"
    text += f"</{root}>\n"
    return _encode(text, charset)


def split_list(
    root: str, cmd: str, sn: int, device_id: str, items: list[Mapping[str, Any]],
    list_tag: str, fields: Mapping[str, Any] | None = None, per_message: int = 20,
    charset: str = "GB2312", max_bytes: int = UDP_BODY_LIMIT,
) -> list[bytes]:
    """Split a list response into messages of at most ``per_message`` items and, where an
    item fits, at most ``max_bytes`` encoded bytes each; ``SumNum`` is the total and each
    list's ``Num`` the items in that message. An item too big on its own goes alone."""
    head_fields = {**(fields or {}), "SumNum": len(items)}  # RecordInfo: Name, then SumNum
    head = _encode(_head(root, cmd, sn, device_id, head_fields, charset), charset)
    width = len(str(len(items)))
    fixed = len(head) + len(f'<{list_tag} Num="{"9" * width}">\n</{list_tag}>\n</{root}>\n')
    enc = [_encode(_item_xml(i), charset) for i in items]
    out: list[bytes] = []
    i = 0
    while True:
        size, j = fixed, i
        while j < len(enc) and j - i < per_message and (j == i or size + len(enc[j]) <= max_bytes):
            size += len(enc[j])
            j += 1
        chunk = enc[i:j]
        tail = _encode(f"</{list_tag}>\n</{root}>\n", charset)
        out.append(head + f'<{list_tag} Num="{len(chunk)}">\n'.encode() + b"".join(chunk)
                   + tail)
        i = j
        if i >= len(enc):
            return out


def catalog_responses(
    device_id: str, sn: int, items: list[Mapping[str, Any]], per_message: int = 20,
    charset: str = "GB2312", max_bytes: int = UDP_BODY_LIMIT,
) -> list[bytes]:
    """Catalog ``<Response>`` split for UDP (see ``split_list``)."""
    return split_list("Response", "Catalog", sn, device_id, items, "DeviceList",
                      per_message=per_message, charset=charset, max_bytes=max_bytes)


def catalog_notify(
    device_id: str, sn: int, items: list[Mapping[str, Any]], per_message: int = 20,
    charset: str = "GB2312", max_bytes: int = UDP_BODY_LIMIT,
) -> list[bytes]:
    """Catalog subscription ``<Notify>``: each item carries ``Event`` (ON, OFF, VLOST,
    DEFECT, ADD, DEL, UPDATE)."""
    return split_list("Notify", "Catalog", sn, device_id, items, "DeviceList",
                      per_message=per_message, charset=charset, max_bytes=max_bytes)


def record_info_responses(
    device_id: str, sn: int, items: list[Mapping[str, Any]], name: str = "",
    per_message: int = 20, charset: str = "GB2312", max_bytes: int = UDP_BODY_LIMIT,
) -> list[bytes]:
    """RecordInfo ``<Response>`` split like the catalog; items carry DeviceID, Name,
    StartTime, EndTime (``gb_time``), Secrecy, Type, optional FilePath/Address/RecorderID."""
    return split_list("Response", "RecordInfo", sn, device_id, items, "RecordList",
                      fields={"Name": name}, per_message=per_message, charset=charset,
                      max_bytes=max_bytes)


def keepalive(device_id: str, sn: int, status: str = "OK", charset: str = "GB2312") -> bytes:
    return build("Notify", "Keepalive", sn, device_id, {"Status": status}, charset=charset)


def query(cmd: str, sn: int, device_id: str, fields: Mapping[str, Any] | None = None,
          charset: str = "GB2312") -> bytes:
    """``<Query>`` for Catalog, DeviceInfo, DeviceStatus, RecordInfo (StartTime, EndTime,
    Secrecy, Type=all — some NVRs need Type), PresetQuery."""
    return build("Query", cmd, sn, device_id, fields, charset=charset)


def alarm_notify(
    device_id: str, sn: int, *, priority: int = 4, method: int = 6, time_ms: int,
    description: str = "", alarm_type: int | None = None, longitude: float | None = None,
    latitude: float | None = None, charset: str = "GB2312",
) -> bytes:
    """Alarm ``<Notify>``: AlarmMethod 5 = video alarm, 6 = device fault (health faults)."""
    fields: dict[str, Any] = {
        "AlarmPriority": priority, "AlarmMethod": method, "AlarmTime": gb_time(time_ms),
        "AlarmDescription": description,
    }
    if longitude is not None and latitude is not None:
        fields["Longitude"], fields["Latitude"] = f"{longitude:.6f}", f"{latitude:.6f}"
    if alarm_type is not None:
        fields["Info"] = {"AlarmType": alarm_type}
    return build("Notify", "Alarm", sn, device_id, fields, charset=charset)


def media_status(device_id: str, sn: int, notify_type: str = "121",
                 charset: str = "GB2312") -> bytes:
    """MediaStatus ``<Notify>``; 121 = end of the file being played back/downloaded."""
    return build("Notify", "MediaStatus", sn, device_id, {"NotifyType": notify_type},
                 charset=charset)


def response(cmd: str, sn: int, device_id: str, fields: Mapping[str, Any] | None = None,
             charset: str = "GB2312") -> bytes:
    """A single-message ``<Response>`` (DeviceInfo, DeviceStatus, DeviceControl Result)."""
    return build("Response", cmd, sn, device_id, fields, charset=charset)


# ---- time ------------------------------------------------------------------------------

_TIME_RE = re.compile(
    r"\s*(\d{4})-?(\d{2})-?(\d{2})[T ]?(\d{2}):?(\d{2}):?(\d{2})(?:[.,](\d{1,9}))?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*$", re.IGNORECASE,
)


def gb_time(ms_utc: int) -> str:
    """GB/T 28181 time text: Beijing local time, no zone, e.g. ``2024-05-01T12:00:00``."""
    t = datetime.fromtimestamp(ms_utc / 1000, UTC) + BEIJING
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def parse_gb_time(text: str) -> int:
    """Milliseconds since the epoch from GB time text. Lenient: ``T`` or space, optional
    fraction, no zone = Beijing; a ``Z`` or ``+hh:mm`` zone is honoured. ``ValueError``
    when it is not a time."""
    m = _TIME_RE.match(text or "")
    if not m:
        raise ValueError(f"not a GB time: {text!r}")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7), m.group(8)
    try:  # a peer's 0001-01-01T00:00:00 or 9999-12-31T23:59:59-14:00 leaves datetime's range
        dt = datetime(y, mo, d, h, mi, s, tzinfo=UTC)
        if zone is None:
            dt -= BEIJING
        elif zone.upper() != "Z":
            sign = 1 if zone[0] == "+" else -1
            z = zone[1:].replace(":", "")
            dt -= sign * timedelta(hours=int(z[:2]), minutes=int(z[2:]))
    except OverflowError:
        raise ValueError(f"GB time out of range: {text!r}") from None
    ms = int(dt.timestamp()) * 1000
    if frac:
        ms += int(frac[:3].ljust(3, "0"))
    return ms


# ---- assembling split responses -------------------------------------------------------


@dataclass
class AssembledList:
    device_id: str
    sn: int
    cmd: str
    sum_num: int | None
    items: list[dict[str, Any]]
    complete: bool
    messages: int = 0
    duplicates: int = 0
    first: Manscdp | None = None  # the first part (top-level fields such as Name)


@dataclass
class _Pending:
    cmd: str
    sum_num: int | None
    items: dict[Any, dict[str, Any]]
    messages: int = 0
    duplicates: int = 0
    first: Manscdp | None = None
    timer: TimerHandle | None = None
    waiters: list[Callable[[AssembledList], None]] = field(default_factory=list)


def _item_key(cmd: str, item: Mapping[str, Any]) -> Any:
    if cmd == "Catalog" and item.get("DeviceID"):
        return item["DeviceID"]
    return repr(sorted(item.items()))


class CatalogAssembler:
    """Aggregates split list responses (Catalog, RecordInfo, ...) by (device, SN).

    ``add(msg)`` returns the ``AssembledList`` once every one of ``SumNum`` items has
    arrived (order and duplicates do not matter: catalog items are keyed by DeviceID,
    others by content). If no part arrives for ``timeout`` seconds, the partial result
    (``complete=False``) goes to ``on_result`` and to waiters — incomplete catalogs over UDP
    are a known failure (fragmentation) and the caller should say so.
    """

    def __init__(
        self, clock: Clock, timeout: float = 10.0,
        on_result: Callable[[AssembledList], None] | None = None,
        max_pending: int = 1000, max_items: int = 200_000,
    ) -> None:
        self.clock, self.timeout = clock, timeout
        self.on_result = on_result or (lambda r: None)
        self.max_pending, self.max_items = max_pending, max_items
        self.pending: dict[tuple[str, int], _Pending] = {}

    def _result(self, key: tuple[str, int], p: _Pending, complete: bool) -> AssembledList:
        return AssembledList(key[0], key[1], p.cmd, p.sum_num, list(p.items.values()),
                             complete, p.messages, p.duplicates, p.first)

    def _finish(self, key: tuple[str, int], complete: bool) -> AssembledList | None:
        p = self.pending.pop(key, None)
        if p is None:
            return None
        if p.timer:
            p.timer.cancel()
        r = self._result(key, p, complete)
        for w in p.waiters:
            w(r)
        self.on_result(r)
        return r

    def _arm(self, key: tuple[str, int], p: _Pending) -> None:
        if p.timer:
            p.timer.cancel()
        p.timer = self.clock.call_later(self.timeout, lambda: self._finish(key, False))

    def _open(self, key: tuple[str, int], cmd: str) -> _Pending | None:
        p = self.pending.get(key)
        if p is None:
            if len(self.pending) >= self.max_pending:
                return None
            p = self.pending[key] = _Pending(cmd, None, {})
            self._arm(key, p)
        return p

    def expect(self, device_id: str, sn: int, cmd: str = "Catalog",
               callback: Callable[[AssembledList], None] | None = None) -> None:
        """Start waiting for (device, SN) before the query is sent, so a device that never
        answers still yields an (empty, incomplete) result after the timeout."""
        p = self._open((device_id, sn), cmd)
        if p is not None and callback is not None:
            p.waiters.append(callback)

    def wait(self, device_id: str, sn: int, cmd: str = "Catalog"):
        """An asyncio future for (device, SN); resolves with the complete or partial list."""
        import asyncio

        fut: asyncio.Future[AssembledList] = asyncio.get_running_loop().create_future()

        def done(r: AssembledList) -> None:
            if not fut.done():
                fut.set_result(r)

        self.expect(device_id, sn, cmd, done)
        return fut

    def add(self, msg: Manscdp) -> AssembledList | None:
        key = (msg.device_id, msg.sn)
        p = self._open(key, msg.cmd)
        if p is None:
            return None
        p.messages += 1
        if p.first is None:
            p.first = msg
        if msg.sum_num is not None:
            p.sum_num = msg.sum_num
        for it in msg.items:
            k = _item_key(p.cmd, it)
            if k in p.items:
                p.duplicates += 1
                p.items[k] = it  # a re-sent part: the latest copy wins
            elif len(p.items) < self.max_items:
                p.items[k] = it
        if p.sum_num is not None and len(p.items) >= p.sum_num:
            return self._finish(key, True)
        self._arm(key, p)
        return None
