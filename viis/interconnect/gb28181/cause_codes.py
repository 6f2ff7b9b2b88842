"""Stable codes for the plain-language GB/T 28181 causes, so that the console can say which
of the usual failures it is in the reader's language (issue 7 item 4; Q13.1, Q13.2).

The diagnosis of a peer is English text, written where the failure is seen (causes.py's
table — both roles, the cascade's as ``cascade-*`` — and a few sentences in platform.py and
service.py). Rather than thread a code through every one of those writers, this module
recognises the text: each cause template (``{name}`` fields) becomes an anchored pattern,
and the fields come back as arguments. ``classify(text) -> {"code", "args"}``; a text no
pattern knows is code ``other`` with the text itself as ``args["text"]`` (the console then
shows it as it is, marked untranslated). The templates are read from causes.CAUSES, so a
reworded cause there keeps its code; the sentences written inline elsewhere are mirrored
here and pinned by tests/interconnect/test_cause_codes.py.

``device_codes(view)`` and ``upper_codes(status)`` add ``cause_code``/``cause_args`` (and
``warning_codes`` for the non-fatal notes) to the REST views of routes_gb28181.py and
routes_gb_cascade.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from .causes import CAUSES

_FIELD = re.compile(r"\{(\w+)(![rsa])?(:[^{}]*)?\}")

#: Sentences written outside the cause tables (platform.py, service.py, the REST routes,
#: the platform's non-fatal notes), as patterns with named fields. Order matters: first match.
INLINE: tuple[tuple[str, str], ...] = (
    ("never-seen", r"never seen: no REGISTER arrived from this ID.*"),
    ("registration-expired", r"registration expired without a re-REGISTER"),
    ("keepalive-missed", r"offline: no keepalive for (?P<seconds>\d+) s \((?P<missed>\d+) "
                         r"intervals of (?P<interval>[0-9.e+-]+) s\)"),
    ("register-no-expires", r"the device sent REGISTER without an Expires value.*"),
    ("charset-undecodable", r"charset problem: the MANSCDP body is neither GB2312/GBK/GB18030 "
                            r"nor UTF-8.*"),
    ("xml-malformed", r"the MANSCDP XML body is malformed"),
    ("restarted-waiting", r"offline: VIIS restarted; waiting for the device's keepalive or "
                          r"REGISTER"),
    ("restarted-offline", r"offline: no keepalive or REGISTER for (?P<seconds>\d+) s since "
                          r"VIIS restarted"),
    ("online-note", r"online; note: (?P<note>.*)"),
    ("online", r"online"),
    ("registered-waiting", r"registered, waiting for a keepalive"),
    ("offline", r"offline"),
    ("platform-not-running", r"the GB/T 28181 platform role is not running.*"),
    ("cascade-not-running", r"the cascade is not running in this process.*"),
    ("cascade-internal-error", r"internal error while registering; retrying with backoff"),
    # non-fatal notes (PeerState.warnings, CascadeClient.warnings)
    ("nat-via", r"address mismatch: Via says (?P<claimed>\S+) but packets come from "
                r"(?P<source>\S+) \(NAT or wrong local IP on the device\); replying to the "
                r"source"),
    ("nat-contact", r"address mismatch: Contact says (?P<claimed>\S+) but packets come from "
                    r"(?P<source>\S+); requests to the device go to the source address"),
    ("charset-gb2312-utf8", r"charset: body declares GB2312 but is UTF-8; decoded as UTF-8"),
    ("source-moved", r"source moved from (?P<old>\S+) to (?P<new>\S+)"),
    ("framing", r"framing: (?P<detail>.*)"),
    ("manscdp-note", r"MANSCDP: (?P<detail>.*)"),
    ("subscribe-refused", r"the device refused the Catalog SUBSCRIBE \((?P<status>\d+) ?"
                          r"(?P<reason>[^)]*)\): channel status changes are seen at the next "
                          r"catalog query"),
    ("cannot-resolve", r"cannot resolve (?P<host>\S+): (?P<detail>.*)"),
    ("subscriptions-capped", r"more than (?P<max>\d+) catalog subscriptions at once; the "
                             r"oldest was ended"),
    # the cascade's notes on an upper platform (cascade_client.py, cascade.py)
    ("upper-date-unreadable", r"the upper's Date (?P<date>.*) is not GB time "
                              r"\(2024-05-01T12:00:00\.000\)"),
    ("upper-clock-offset", r"the upper platform's clock differs from ours by "
                           r"(?P<offset>[+-]?[0-9.]+) s \(its Date when we registered\): check "
                           r"NTP on both sides, footage times are compared across platforms"),
    ("query-unsupported", r"query (?P<cmd>.*) is not answered by this lower platform"),
    ("spoofed-source", r"a request claiming to be from (?P<sender>\S+) came from "
                       r"(?P<source>\S+), not from (?P<host>\S+); refused"),
)


def _pattern(template: str) -> re.Pattern:
    out, seen, pos = [], set(), 0
    for m in _FIELD.finditer(template):
        out.append(re.escape(template[pos:m.start()]))
        name = m.group(1)
        out.append(f"(?P={name})" if name in seen else f"(?P<{name}>.+?)")
        seen.add(name)
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out), re.S)


@lru_cache(maxsize=1)
def patterns() -> tuple[tuple[str, re.Pattern], ...]:
    """(code, pattern) in matching order: the cause table first, then the inline texts."""
    out = [(code, _pattern(text)) for code, text in CAUSES.items()]
    out += [(code, re.compile(rx, re.S)) for code, rx in INLINE]
    return tuple(out)


def _clean(value: str) -> str:
    v = value.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        v = v[1:-1]
    return v[:300]


def classify(text: str | None) -> dict[str, Any]:
    """``{"code": ..., "args": {...}}`` for a cause text; ``""`` -> code ``none``."""
    text = (text or "").strip()
    if not text:
        return {"code": "none", "args": {}}
    for code, rx in patterns():
        m = rx.fullmatch(text)
        if m:
            return {"code": code, "args": {k: _clean(v) for k, v in m.groupdict().items()
                                           if v is not None}}
    return {"code": "other", "args": {"text": text[:2000]}}


def _notes(warnings: Any) -> list[dict[str, Any]]:
    return [classify(w) for w in (warnings or [])[-10:] if isinstance(w, str)]


def device_codes(view: Mapping[str, Any]) -> dict[str, Any]:
    """Codes for a device view of routes_gb28181: its cause and its notes."""
    c = classify(view.get("cause"))
    if c["code"] == "online-note":
        c["args"]["note_code"] = classify(c["args"].get("note"))
    return {"cause_code": c["code"], "cause_args": c["args"],
            "warning_codes": _notes(view.get("warnings"))}


def upper_codes(status: Mapping[str, Any]) -> dict[str, Any]:
    """Codes for the ``status`` of an upper platform view of routes_gb_cascade."""
    c = classify(status.get("cause"))
    return {"cause_code": c["code"], "cause_args": c["args"],
            "warning_codes": _notes(status.get("warnings"))}


__all__ = ["INLINE", "classify", "device_codes", "patterns", "upper_codes"]
