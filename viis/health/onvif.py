"""ONVIF ``GetSystemDateAndTime`` (ONVIF Core, device management service): the camera's own
UTC clock, an independent clock check beside RTCP sender reports and the picture (Q19.3
accurate time; invariant 5).

The request needs no authentication in ONVIF (a client must be able to read the clock to
compute WS-UsernameToken digests), so none is sent. The offset is the camera's UTC minus the
middle of the request's round trip; the answer has whole seconds, so the reading is good to
about +-1 s plus half the round trip, enough against a tolerance of seconds.

The answer is parsed defensively: at most 64 KiB, no DTD/entities (refused before parsing),
every field range-checked; anything else is an :class:`OnvifError` with a plain message.
"""

from __future__ import annotations

import calendar
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime

MAX_BYTES = 64 * 1024
_ENVELOPE = (b'<?xml version="1.0" encoding="UTF-8"?>'
             b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
             b'<s:Body><GetSystemDateAndTime xmlns="http://www.onvif.org/ver10/device/wsdl"/>'
             b'</s:Body></s:Envelope>')


class OnvifError(ValueError):
    """The camera did not give a usable time."""


@dataclass(frozen=True)
class CameraTime:
    utc_ms: int        # the camera's UTC clock (whole seconds)
    offset_ms: int     # camera minus server, at the middle of the round trip
    rtt_ms: int
    sync: str          # DateTimeType: NTP or Manual


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(el: ET.Element, *path: str) -> ET.Element | None:
    for name in path:
        el = next((c for c in el if _local(c.tag) == name), None)
        if el is None:
            return None
    return el


def parse_response(body: bytes) -> tuple[int, str]:
    """(UTC ms, DateTimeType) from a GetSystemDateAndTimeResponse."""
    if len(body) > MAX_BYTES:
        raise OnvifError(f"answer of {len(body)} bytes is over {MAX_BYTES}")
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise OnvifError("answer carries a DTD or entities: refused")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise OnvifError(f"answer is not XML: {e}") from None
    body_el = _find(root, "Body")
    if body_el is None:
        raise OnvifError("no SOAP Body in the answer")
    fault = _find(body_el, "Fault")
    if fault is not None:
        reason = " ".join(t.strip() for t in fault.itertext() if t.strip())[:200]
        raise OnvifError(f"camera answered a SOAP fault: {reason}")
    sdt = _find(body_el, "GetSystemDateAndTimeResponse", "SystemDateAndTime")
    if sdt is None:
        raise OnvifError("no SystemDateAndTime in the answer")
    utc = _find(sdt, "UTCDateTime")
    if utc is None:
        raise OnvifError("the camera gives no UTCDateTime")
    vals = {}
    for part, names in (("Date", ("Year", "Month", "Day")), ("Time", ("Hour", "Minute", "Second"))):
        for n in names:
            el = _find(utc, part, n)
            text = (el.text or "").strip() if el is not None else ""
            if not text.isdigit() or len(text) > 4:
                raise OnvifError(f"UTCDateTime {part}/{n} is not a number: {text[:20]!r}")
            vals[n] = int(text)
    limits = {"Year": (1970, 9999), "Month": (1, 12), "Day": (1, 31), "Hour": (0, 23),
              "Minute": (0, 59), "Second": (0, 60)}
    for n, (lo, hi) in limits.items():
        if not lo <= vals[n] <= hi:
            raise OnvifError(f"UTCDateTime {n} {vals[n]} out of range")
    try:  # datetime refuses a day that does not exist in that month
        datetime(vals["Year"], vals["Month"], vals["Day"])
    except ValueError as e:
        raise OnvifError(f"UTCDateTime is not a date: {e}") from None
    secs = calendar.timegm((vals["Year"], vals["Month"], vals["Day"], vals["Hour"],
                            vals["Minute"], min(vals["Second"], 59), 0, 0, 0))
    kind_el = _find(sdt, "DateTimeType")
    kind = (kind_el.text or "").strip()[:16] if kind_el is not None else ""
    return secs * 1000, kind


def get_system_date_and_time(url: str, timeout: float = 3.0, clock_ms=None) -> CameraTime:
    """Ask the device service at ``url`` for its clock. ``clock_ms()`` is the server's wall
    clock in ms (default: the system clock)."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise OnvifError(f"ONVIF device service {url[:100]!r}: only http and https")
    now = clock_ms or (lambda: time.time_ns() // 1_000_000)
    req = urllib.request.Request(url, data=_ENVELOPE, method="POST", headers={
        "Content-Type": 'application/soap+xml; charset=utf-8; '
                        'action="http://www.onvif.org/ver10/device/wsdl/GetSystemDateAndTime"'})
    t0 = now()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as e:
        body = e.read(MAX_BYTES + 1)  # a SOAP fault comes with HTTP 400/500
        if not body:
            raise OnvifError(f"HTTP {e.code} from the device service") from None
    except (OSError, urllib.error.URLError) as e:
        raise OnvifError(f"device service unreachable: {e}") from None
    t1 = now()
    utc_ms, kind = parse_response(body)
    return CameraTime(utc_ms=utc_ms, offset_ms=utc_ms - (t0 + t1) // 2, rtt_ms=t1 - t0,
                      sync=kind)
