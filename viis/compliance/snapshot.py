"""Compliance snapshot: a using unit's registry state and activity summary, as JSON.

The format (``viis-compliance-snapshot``, version 1) is described in
``docs/compliance-snapshot.md`` and ``docs/compliance-snapshot.schema.json``. It is what the
compliance engine evaluates and what a unit's installation sends to the bureau's platform, so
it is parsed as hostile input: a size limit before anything is decoded, a nesting limit, limits
on list lengths and text lengths, no unknown keys, and every error names the path of the bad
field (``cameras[3].retention_days: must be an integer, not text '30'``).

Dates (``YYYY-MM-DD``) are Asia/Shanghai calendar days; instants are ISO 8601 with an explicit
offset (``Z`` or ``+08:00``); a naive instant is refused (invariant 5).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NoReturn

from viis.core.errors import ViisError

FORMAT = "viis-compliance-snapshot"
VERSION = 1

MAX_BYTES = 512 * 1024 * 1024        # a bureau-size unit stays far below this
MAX_DEPTH = 12                       # the format nests 6 deep; more is hostile
MAX_ITEMS = 1_000_000                # per list
MAX_TEXT = 4096                      # per string

USES = ("business", "non_business")
PARTIES = ("unit", "individual")
CONTRACTOR_ROLES = ("designer", "builder", "installer", "maintainer")
REQUESTER_KINDS = ("police", "department", "emergency", "individual", "other")
ZONE_KINDS = ("military", "state_organ", "classified")   # Q7.3 (military), N10.1 (all three)
FAULT_CAUSES = ("third_party", "facility")               # Q18.1 / Q18.2
INTEGRITY_PROBLEMS = ("removed", "altered", "inserted", "reordered")


class SnapshotError(ViisError):
    """A snapshot was refused; ``path`` names the bad field (``cameras[3].retention_days``)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"snapshot: {path}: {message}" if path else f"snapshot: {message}")
        self.path = path
        self.reason = message


# --- the model -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Organisation:
    id: str
    name: str
    use: str                   # business | non_business: selects Q27/Q30 fine ranges
    party: str = "unit"        # unit | individual: selects the national fine ranges


@dataclass(frozen=True)
class Site:
    id: str
    name: str
    categories: tuple[str, ...]      # "pack-id:category-id" (Q7.1, N7.1, N9.1)
    public_place: bool = True
    # N8.2: forbidden-type areas (toilets, changing rooms, ...) the unit manages at the site,
    # which it must check routinely for devices; the last such check.
    privacy_areas: tuple[str, ...] = ()
    privacy_checked_on: date | None = None


@dataclass(frozen=True)
class Contractor:
    role: str
    name: str
    qualification: str = ""
    qualification_expires: date | None = None


@dataclass(frozen=True)
class Change:
    on: date
    what: str


@dataclass(frozen=True)
class System:
    id: str
    site: str
    purpose: str
    storage_days: int
    contractors: tuple[Contractor, ...] = ()
    accepted_on: date | None = None
    in_use_on: date | None = None
    removed_on: date | None = None
    changes: tuple[Change, ...] = ()
    # Q8.3, N7.3, N9.1: the unit is the one entitled to build here (management unit, security
    # duty holder); false when the registry records that it is not.
    authorised: bool = True


@dataclass(frozen=True)
class Camera:
    id: str
    system: str
    location_type: str
    retention_days: int
    public_place: bool | None = None     # None: the site's value
    signage: bool = False
    signage_photo: bool = False
    audio: bool = False
    security_level: int = 1
    retention_basis: str = ""            # legal basis for keeping past the national default
    installed_on: date | None = None
    lat: float | None = None             # WGS84, for the zones of Q7.3 / N10.1
    lon: float | None = None


@dataclass(frozen=True)
class Zone:
    """A military zone or the surroundings of a classified unit (Q7.3, N10.1)."""
    id: str
    name: str
    kind: str                  # military | state_organ | classified
    lat: float
    lon: float
    radius_m: float


@dataclass(frozen=True)
class Consent:
    """The zone's unit's consent (N10.1) or opinion (Q7.3) for a system, with its document."""
    zone: str
    system: str
    document: str
    on: date


@dataclass(frozen=True)
class Filing:
    id: str
    system: str
    kind: str                  # a filing rule id of a pack: acceptance, in_use, existing, ...
    filed_on: date
    channel: str = ""


@dataclass(frozen=True)
class Gap:
    start: datetime
    end: datetime
    cause: str = ""


@dataclass(frozen=True)
class Recording:
    camera: str
    coverage: float            # 0..1 over the activity period
    gaps: tuple[Gap, ...] = ()


@dataclass(frozen=True)
class Retention:
    camera: str
    recording_days: int        # how long the camera has been recording, as of the report
    kept_days: int             # age in whole days of the oldest footage still kept
    removed_in_retention: int = 0   # segments removed before their retention ended
    basis: str = ""            # hold or legal basis for footage kept past the default


@dataclass(frozen=True)
class IntegrityProblem:
    kind: str
    detail: str = ""


@dataclass(frozen=True)
class Integrity:
    camera: str
    verified_at: datetime
    ok: bool
    problems: tuple[IntegrityProblem, ...] = ()


@dataclass(frozen=True)
class Fault:
    id: str
    camera: str
    kind: str
    first_seen: datetime
    notified_at: datetime | None = None
    repaired_at: datetime | None = None
    emergency_measure: str = ""
    cause: str = ""            # third_party | facility (Q18.1 / Q18.2) for an obstruction


@dataclass(frozen=True)
class Staff:
    id: str
    name: str
    trained_on: date | None = None


@dataclass(frozen=True)
class Shift:
    staff: str
    on: date


@dataclass(frozen=True)
class Retrieval:
    id: str
    at: datetime
    requester_kind: str
    requester_unit: str = ""
    requester_name: str = ""
    reason: str = ""
    content: str = ""
    approved: bool = False
    approval_document: str = ""
    staff_count: int = 0
    ids_shown: bool = False


@dataclass(frozen=True)
class Activity:
    period_from: date | None = None
    period_to: date | None = None
    recording: tuple[Recording, ...] = ()
    retention: tuple[Retention, ...] = ()
    integrity: tuple[Integrity, ...] = ()
    faults: tuple[Fault, ...] = ()
    duty_log_kept: bool | None = None
    staff: tuple[Staff, ...] = ()
    shifts: tuple[Shift, ...] = ()
    retrievals: tuple[Retrieval, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    organisation: Organisation
    generated_at: datetime
    sites: tuple[Site, ...] = ()
    systems: tuple[System, ...] = ()
    cameras: tuple[Camera, ...] = ()
    filings: tuple[Filing, ...] = ()
    activity: Activity = field(default_factory=Activity)
    zones: tuple[Zone, ...] = ()
    consents: tuple[Consent, ...] = ()


# --- parsing ---------------------------------------------------------------------------------

def _fail(path: str, msg: str) -> NoReturn:
    raise SnapshotError(msg, path)


def _tname(v: Any) -> str:
    return {str: "text", int: "integer", float: "number", bool: "boolean", list: "list",
            dict: "object", type(None): "null"}.get(type(v), type(v).__name__)


def _show(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def _obj(d: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(d, dict):
        _fail(path, f"must be an object, not {_tname(d)}")
    for k in d:
        if k not in required and k not in optional:
            _fail(f"{path}.{k}" if path else k,
                  f"unknown key; known keys: {', '.join(sorted(required + optional))}")
    for k in required:
        if k not in d:
            _fail(path or "(top)", f"missing key {k!r}")
    return d


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _text(d: dict, key: str, path: str, *, required: bool = True, default: str = "",
          choices: tuple[str, ...] = ()) -> str:
    if key not in d:
        return default
    v = d[key]
    p = _at(path, key)
    if not isinstance(v, str) or (required and not v.strip()):
        _fail(p, f"must be non-empty text, not {_tname(v)} {_show(v)}")
    if len(v) > MAX_TEXT:
        _fail(p, f"text longer than {MAX_TEXT} characters")
    if choices and v not in choices:
        _fail(p, f"{_show(v)} is not one of {', '.join(choices)}")
    return v


def _int(d: dict, key: str, path: str, *, default: int | None = None, minimum: int = 0,
         maximum: int = 10**9) -> int:
    if key not in d:
        if default is None:
            _fail(path, f"missing key {key!r}")
        return default
    v = d[key]
    p = _at(path, key)
    if not isinstance(v, int) or isinstance(v, bool):
        _fail(p, f"must be an integer, not {_tname(v)} {_show(v)}")
    if not minimum <= v <= maximum:
        _fail(p, f"{v} is outside {minimum}..{maximum}")
    return v


def _bool(d: dict, key: str, path: str, default: bool | None = False) -> bool | None:
    if key not in d:
        return default
    v = d[key]
    if not isinstance(v, bool):
        _fail(_at(path, key), f"must be true or false, not {_tname(v)} {_show(v)}")
    return v


def _date(d: dict, key: str, path: str, *, optional: bool = True) -> date | None:
    if key not in d or (optional and d[key] is None):
        if not optional:
            _fail(path, f"missing key {key!r}")
        return None
    v = d[key]
    p = _at(path, key)
    if not isinstance(v, str) or len(v) != 10:
        _fail(p, f"must be a date YYYY-MM-DD (Asia/Shanghai), not {_tname(v)} {_show(v)}")
    try:
        return date.fromisoformat(v)
    except ValueError:
        _fail(p, f"{_show(v)} is not a date YYYY-MM-DD")


def _instant(d: dict, key: str, path: str, *, optional: bool = True) -> datetime | None:
    if key not in d or (optional and d[key] is None):
        if not optional:
            _fail(path, f"missing key {key!r}")
        return None
    v = d[key]
    p = _at(path, key)
    if not isinstance(v, str) or len(v) > 40:
        _fail(p, f"must be an ISO 8601 time with offset, not {_tname(v)} {_show(v)}")
    try:
        t = datetime.fromisoformat(v)
    except ValueError:
        _fail(p, f"{_show(v)} is not an ISO 8601 time")
    if t.tzinfo is None:
        _fail(p, f"{_show(v)} has no UTC offset; write Z or +08:00 (times are explicit)")
    return t


def _list(d: dict, key: str, path: str) -> list:
    if key not in d:
        return []
    v = d[key]
    p = _at(path, key)
    if not isinstance(v, list):
        _fail(p, f"must be a list, not {_tname(v)}")
    if len(v) > MAX_ITEMS:
        _fail(p, f"{len(v)} items; at most {MAX_ITEMS}")
    return v


def _depth_ok(v: Any, limit: int) -> bool:
    stack = [(v, 1)]
    while stack:
        x, dep = stack.pop()
        if dep > limit:
            return False
        if isinstance(x, dict):
            stack.extend((y, dep + 1) for y in x.values() if isinstance(y, dict | list))
        elif isinstance(x, list):
            stack.extend((y, dep + 1) for y in x if isinstance(y, dict | list))
    return True


def loads(data: str | bytes, *, max_bytes: int = MAX_BYTES) -> Snapshot:
    """Parse a snapshot from JSON text; refuse oversize, malformed or out-of-format input."""
    size = len(data.encode("utf-8") if isinstance(data, str) else data)
    if size > max_bytes:
        raise SnapshotError(f"{size} bytes; at most {max_bytes}")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SnapshotError(f"not UTF-8 at byte {e.start}") from None
    try:
        raw = json.loads(data, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise SnapshotError(f"not valid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:  # the C decoder guards its recursion; depth bombs land here
        raise SnapshotError(f"nested deeper than {MAX_DEPTH} levels") from None
    return parse(raw)


def _no_constant(name: str) -> NoReturn:
    raise SnapshotError(f"{name} is not a JSON number")


def parse(raw: Any) -> Snapshot:
    """Build a :class:`Snapshot` from decoded JSON, checking every field."""
    if not _depth_ok(raw, MAX_DEPTH):
        raise SnapshotError(f"nested deeper than {MAX_DEPTH} levels")
    top = _obj(raw, "", ("format", "version", "organisation", "generated_at"),
               ("sites", "systems", "cameras", "filings", "activity", "zones", "consents"))
    if top["format"] != FORMAT:
        _fail("format", f"{_show(top['format'])} is not {FORMAT!r}")
    if top["version"] != VERSION or isinstance(top["version"], bool):
        _fail("version", f"{_show(top['version'])}: this VIIS reads version {VERSION}")
    o = _obj(top["organisation"], "organisation", ("id", "name", "use"), ("party",))
    org = Organisation(_text(o, "id", "organisation"), _text(o, "name", "organisation"),
                       _text(o, "use", "organisation", choices=USES),
                       _text(o, "party", "organisation", default="unit", choices=PARTIES))
    gen = _instant(top, "generated_at", "", optional=False)

    sites, site_ids = [], set()
    for i, s in enumerate(_list(top, "sites", "")):
        p = f"sites[{i}]"
        _obj(s, p, ("id", "name"), ("categories", "public_place", "privacy_areas", "privacy_checked_on"))
        cats = _strs(s, "categories", p)
        for j, c in enumerate(cats):
            if c.count(":") != 1 or not all(c.split(":")):
                _fail(f"{p}.categories[{j}]", f"{_show(c)} must be 'pack-id:category-id'")
        site = Site(_text(s, "id", p), _text(s, "name", p), cats, _bool(s, "public_place", p, True),
                    _strs(s, "privacy_areas", p), _date(s, "privacy_checked_on", p))
        _unique(site_ids, site.id, f"{p}.id", "site")
        sites.append(site)

    systems, sys_ids = [], set()
    for i, s in enumerate(_list(top, "systems", "")):
        p = f"systems[{i}]"
        _obj(s, p, ("id", "site", "purpose", "storage_days"),
             ("contractors", "accepted_on", "in_use_on", "removed_on", "changes", "authorised"))
        contractors = []
        for j, c in enumerate(_list(s, "contractors", p)):
            cp = f"{p}.contractors[{j}]"
            _obj(c, cp, ("role", "name"), ("qualification", "qualification_expires"))
            contractors.append(Contractor(_text(c, "role", cp, choices=CONTRACTOR_ROLES),
                                          _text(c, "name", cp),
                                          _text(c, "qualification", cp, required=False),
                                          _date(c, "qualification_expires", cp)))
        changes = []
        for j, c in enumerate(_list(s, "changes", p)):
            cp = f"{p}.changes[{j}]"
            _obj(c, cp, ("on", "what"))
            changes.append(Change(_date(c, "on", cp, optional=False), _text(c, "what", cp)))
        system = System(_text(s, "id", p), _text(s, "site", p), _text(s, "purpose", p),
                        _int(s, "storage_days", p, minimum=0, maximum=36500), tuple(contractors),
                        _date(s, "accepted_on", p), _date(s, "in_use_on", p),
                        _date(s, "removed_on", p), tuple(changes), _bool(s, "authorised", p, True))
        if system.site not in site_ids:
            _fail(f"{p}.site", f"no site {_show(system.site)} in sites")
        _unique(sys_ids, system.id, f"{p}.id", "system")
        systems.append(system)

    cameras, cam_ids = [], set()
    for i, c in enumerate(_list(top, "cameras", "")):
        p = f"cameras[{i}]"
        _obj(c, p, ("id", "system", "location_type", "retention_days"),
             ("public_place", "signage", "audio", "security_level", "retention_basis",
              "installed_on", "lat", "lon"))
        sig = c.get("signage", {"present": False})
        _obj(sig, f"{p}.signage", ("present",), ("photo",))
        cam = Camera(_text(c, "id", p), _text(c, "system", p), _text(c, "location_type", p),
                     _int(c, "retention_days", p, maximum=36500),
                     _bool(c, "public_place", p, None),
                     _bool(sig, "present", f"{p}.signage"), _bool(sig, "photo", f"{p}.signage"),
                     _bool(c, "audio", p), _int(c, "security_level", p, default=1, minimum=1, maximum=9),
                     _text(c, "retention_basis", p, required=False), _date(c, "installed_on", p),
                     _num(c, "lat", p, -90, 90), _num(c, "lon", p, -180, 180))
        if (cam.lat is None) != (cam.lon is None):
            _fail(f"{p}.lat", "give both lat and lon, or neither")
        if cam.system not in sys_ids:
            _fail(f"{p}.system", f"no system {_show(cam.system)} in systems")
        _unique(cam_ids, cam.id, f"{p}.id", "camera")
        cameras.append(cam)

    filings, fil_ids = [], set()
    for i, f in enumerate(_list(top, "filings", "")):
        p = f"filings[{i}]"
        _obj(f, p, ("id", "system", "kind", "filed_on"), ("channel",))
        filing = Filing(_text(f, "id", p), _text(f, "system", p), _text(f, "kind", p),
                        _date(f, "filed_on", p, optional=False), _text(f, "channel", p, required=False))
        if filing.system not in sys_ids:
            _fail(f"{p}.system", f"no system {_show(filing.system)} in systems")
        _unique(fil_ids, filing.id, f"{p}.id", "filing")
        filings.append(filing)

    activity = _activity(top.get("activity", {}), cam_ids)

    zones, zone_ids = [], set()
    for i, z in enumerate(_list(top, "zones", "")):
        p = f"zones[{i}]"
        _obj(z, p, ("id", "name", "kind", "lat", "lon", "radius_m"))
        zone = Zone(_text(z, "id", p), _text(z, "name", p), _text(z, "kind", p, choices=ZONE_KINDS),
                    _num(z, "lat", p, -90, 90, required=True), _num(z, "lon", p, -180, 180, required=True),
                    _num(z, "radius_m", p, 0, 1_000_000, required=True))
        _unique(zone_ids, zone.id, f"{p}.id", "zone")
        zones.append(zone)
    consents = []
    for i, c in enumerate(_list(top, "consents", "")):
        p = f"consents[{i}]"
        _obj(c, p, ("zone", "system", "document", "on"))
        con = Consent(_text(c, "zone", p), _text(c, "system", p), _text(c, "document", p),
                      _date(c, "on", p, optional=False))
        if con.zone not in zone_ids:
            _fail(f"{p}.zone", f"no zone {_show(con.zone)} in zones")
        if con.system not in sys_ids:
            _fail(f"{p}.system", f"no system {_show(con.system)} in systems")
        consents.append(con)
    return Snapshot(org, gen, tuple(sites), tuple(systems), tuple(cameras), tuple(filings), activity,
                    tuple(zones), tuple(consents))


def _num(d: dict, key: str, path: str, lo: float, hi: float, *, required: bool = False) -> float | None:
    if key not in d:
        if required:
            _fail(path, f"missing key {key!r}")
        return None
    v = d[key]
    p = _at(path, key)
    if not isinstance(v, int | float) or isinstance(v, bool):
        _fail(p, f"must be a number, not {_tname(v)} {_show(v)}")
    if not lo <= v <= hi:
        _fail(p, f"{v} is outside {lo}..{hi}")
    return float(v)


def _strs(d: dict, key: str, path: str) -> tuple[str, ...]:
    out = []
    for j, v in enumerate(_list(d, key, path)):
        if not isinstance(v, str) or not v or len(v) > MAX_TEXT:
            _fail(f"{path}.{key}[{j}]", f"must be non-empty text, not {_tname(v)} {_show(v)}")
        out.append(v)
    return tuple(out)


def _unique(seen: set[str], v: str, path: str, what: str) -> None:
    if v in seen:
        _fail(path, f"duplicate {what} id {_show(v)}")
    seen.add(v)


def _camera_ref(d: dict, path: str, cams: set[str]) -> str:
    c = _text(d, "camera", path)
    if c not in cams:
        _fail(f"{path}.camera", f"no camera {_show(c)} in cameras")
    return c


def _activity(a: Any, cams: set[str]) -> Activity:
    p = "activity"
    _obj(a, p, (), ("period", "recording", "retention", "integrity", "faults", "duty", "retrievals"))
    pf = pt = None
    if "period" in a:
        per = _obj(a["period"], f"{p}.period", ("from", "to"))
        pf, pt = _date(per, "from", f"{p}.period", optional=False), _date(per, "to", f"{p}.period", optional=False)
        if pt < pf:
            _fail(f"{p}.period.to", "is before from")

    recording = []
    for i, r in enumerate(_list(a, "recording", p)):
        rp = f"{p}.recording[{i}]"
        _obj(r, rp, ("camera", "coverage"), ("gaps",))
        cov = r["coverage"]
        if not isinstance(cov, int | float) or isinstance(cov, bool) or not 0 <= cov <= 1:
            _fail(f"{rp}.coverage", f"must be a number from 0 to 1, not {_tname(cov)} {_show(cov)}")
        gaps = []
        for j, g in enumerate(_list(r, "gaps", rp)):
            gp = f"{rp}.gaps[{j}]"
            _obj(g, gp, ("start", "end"), ("cause",))
            gap = Gap(_instant(g, "start", gp, optional=False), _instant(g, "end", gp, optional=False),
                      _text(g, "cause", gp, required=False))
            if gap.end < gap.start:
                _fail(f"{gp}.end", "is before start")
            gaps.append(gap)
        recording.append(Recording(_camera_ref(r, rp, cams), float(cov), tuple(gaps)))

    retention = []
    for i, r in enumerate(_list(a, "retention", p)):
        rp = f"{p}.retention[{i}]"
        _obj(r, rp, ("camera", "recording_days", "kept_days"), ("removed_in_retention", "basis"))
        retention.append(Retention(_camera_ref(r, rp, cams), _int(r, "recording_days", rp),
                                   _int(r, "kept_days", rp),
                                   _int(r, "removed_in_retention", rp, default=0),
                                   _text(r, "basis", rp, required=False)))

    integrity = []
    for i, r in enumerate(_list(a, "integrity", p)):
        rp = f"{p}.integrity[{i}]"
        _obj(r, rp, ("camera", "verified_at", "ok"), ("problems",))
        probs = []
        for j, x in enumerate(_list(r, "problems", rp)):
            xp = f"{rp}.problems[{j}]"
            _obj(x, xp, ("kind",), ("detail",))
            probs.append(IntegrityProblem(_text(x, "kind", xp, choices=INTEGRITY_PROBLEMS),
                                          _text(x, "detail", xp, required=False)))
        ok = _bool(r, "ok", rp)
        if ok and probs:
            _fail(f"{rp}.ok", "is true but problems are listed")
        integrity.append(Integrity(_camera_ref(r, rp, cams), _instant(r, "verified_at", rp, optional=False),
                                   ok, tuple(probs)))

    faults, fids = [], set()
    for i, r in enumerate(_list(a, "faults", p)):
        rp = f"{p}.faults[{i}]"
        _obj(r, rp, ("id", "camera", "kind", "first_seen"),
             ("notified_at", "repaired_at", "emergency_measure", "cause"))
        f = Fault(_text(r, "id", rp), _camera_ref(r, rp, cams), _text(r, "kind", rp),
                  _instant(r, "first_seen", rp, optional=False), _instant(r, "notified_at", rp),
                  _instant(r, "repaired_at", rp), _text(r, "emergency_measure", rp, required=False),
                  _text(r, "cause", rp, choices=FAULT_CAUSES))
        _unique(fids, f.id, f"{rp}.id", "fault")
        faults.append(f)

    staff, shifts, log_kept = [], [], None
    if "duty" in a:
        dp = f"{p}.duty"
        d = _obj(a["duty"], dp, (), ("log_kept", "staff", "shifts"))
        log_kept = _bool(d, "log_kept", dp, None)
        sids: set[str] = set()
        for i, s in enumerate(_list(d, "staff", dp)):
            sp = f"{dp}.staff[{i}]"
            _obj(s, sp, ("id", "name"), ("trained_on",))
            st = Staff(_text(s, "id", sp), _text(s, "name", sp), _date(s, "trained_on", sp))
            _unique(sids, st.id, f"{sp}.id", "staff")
            staff.append(st)
        for i, s in enumerate(_list(d, "shifts", dp)):
            sp = f"{dp}.shifts[{i}]"
            _obj(s, sp, ("staff", "on"))
            sh = Shift(_text(s, "staff", sp), _date(s, "on", sp, optional=False))
            if sh.staff not in sids:
                _fail(f"{sp}.staff", f"no staff {_show(sh.staff)} in {dp}.staff")
            shifts.append(sh)

    retrievals, rids = [], set()
    for i, r in enumerate(_list(a, "retrievals", p)):
        rp = f"{p}.retrievals[{i}]"
        _obj(r, rp, ("id", "at", "requester_kind"),
             ("requester_unit", "requester_name", "reason", "content", "approved",
              "approval_document", "staff_count", "ids_shown"))
        x = Retrieval(_text(r, "id", rp), _instant(r, "at", rp, optional=False),
                      _text(r, "requester_kind", rp, choices=REQUESTER_KINDS),
                      _text(r, "requester_unit", rp, required=False),
                      _text(r, "requester_name", rp, required=False),
                      _text(r, "reason", rp, required=False), _text(r, "content", rp, required=False),
                      _bool(r, "approved", rp), _text(r, "approval_document", rp, required=False),
                      _int(r, "staff_count", rp, default=0, maximum=1000), _bool(r, "ids_shown", rp))
        _unique(rids, x.id, f"{rp}.id", "retrieval")
        retrievals.append(x)

    return Activity(pf, pt, tuple(recording), tuple(retention), tuple(integrity), tuple(faults),
                    log_kept, tuple(staff), tuple(shifts), tuple(retrievals))
