"""Reports: the unit's to-do list and the bureau's dashboard, as data, CSV and PDF.

The to-do list (a using unit, Q16, Q19, N14, ...) is the engine run on the unit's live state
with a long reminder horizon, so every deadline it knows — filings, contractor qualifications
(Q14.1), fault repairs (Q19.3), privacy-room checks (N8.2) — appears with its date, next to the
open breaches and their proposed rectification dates, plus the filings drafted but not sent;
sorted by deadline (undated last).

The dashboard (a district or city bureau) counts, by district, category and status: the units
of the register evaluated on the day, filings received at the intake (on time or late), overdue
filings, and the police cases (open ones listed). Counting happens here, once; CSV and PDF are
renderings of the same rows.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from viis.compliance.engine import EngineSettings, Evaluator
from viis.compliance.filings import detect_unit_changes
from viis.compliance.live import snapshot_from_db
from viis.compliance.models import ComplianceCase
from viis.compliance.register import unit, units
from viis.compliance.registry_models import (
    ComplianceFiling,
    ComplianceSite,
    ComplianceSystem,
    IntakeFiling,
    IntakeKey,
)
from viis.compliance.rulepack import RuleBook
from viis.compliance.snapshot import parse

HORIZON_DAYS = 90     # VIIS setting: how far ahead the to-do list shows deadlines


def _findings(s: Session, book: RuleBook, code: str, on: date, now_ms: int, horizon: int):
    detect_unit_changes(s, code, today=on, now_ms=now_ms)
    snap = parse(snapshot_from_db(s, code, now_ms))
    return snap, Evaluator(book, on, EngineSettings(remind_days=horizon)).evaluate(snap)


def unit_todo(s: Session, book: RuleBook, code: str, on: date, now_ms: int,
              horizon: int = HORIZON_DAYS) -> list[dict[str, Any]]:
    """What the unit must still do and by when, most urgent first."""
    _, found = _findings(s, book, code, on, now_ms, horizon)
    items = []
    for f in found:
        deadline = f.due if f.kind == "reminder" else (f.rectify_by or f.due)
        items.append({"kind": f.kind, "check": f.check, "subject": f.subject,
                      "deadline": deadline.isoformat() if deadline else None,
                      "overdue": f.kind == "breach", "requirements": list(f.requirements),
                      "penalties": [c.penalty for c in f.penalties], "explanation": f.explanation,
                      "what_to_do": f.clears, "finding_id": f.id})
    u = unit(s, code)
    drafts = s.execute(select(ComplianceFiling, ComplianceSystem.code)
                       .join(ComplianceSystem, ComplianceSystem.id == ComplianceFiling.system_id)
                       .join(ComplianceSite, ComplianceSite.id == ComplianceSystem.site_id)
                       .where(ComplianceSite.unit_id == u.id, ComplianceFiling.state == "draft"))
    for f, sys_code in drafts:
        items.append({"kind": "draft_filing", "check": f"filing.{f.pack}.{f.kind}", "subject": f"system:{sys_code}",
                      "deadline": f.due_on.isoformat() if f.due_on else None, "overdue": bool(f.due_on and f.due_on < on),
                      "requirements": [], "penalties": [], "explanation": f"filing {f.id} is drafted but not submitted",
                      "what_to_do": f"Submit filing {f.id} by a channel the pack allows.", "finding_id": None})
    order = {"breach": 0, "draft_filing": 1, "reminder": 2}
    items.sort(key=lambda x: (x["deadline"] is None, x["deadline"] or "", order[x["kind"]], x["check"], x["subject"]))
    return items


def dashboard(s: Session, book: RuleBook, on: date, now_ms: int) -> dict[str, Any]:
    """The bureau's view on ``on``: by district, category and status."""
    districts: dict[str, dict[str, int]] = {}
    categories: dict[str, dict[str, int]] = {}
    status: dict[str, int] = {}
    overdue: list[dict[str, Any]] = []
    unit_district: dict[str, str] = {}

    def bump(d: dict, key: str, field: str, n: int = 1) -> None:
        row = d.setdefault(key, {})
        row[field] = row.get(field, 0) + n

    keys = {k.unit_code: k for k in s.scalars(select(IntakeKey))}
    local = {u.code: u for u in units(s)}
    sources: list[tuple[str, str, str, Any]] = [(c, u.name, u.district or "-", None) for c, u in local.items()]
    # snapshots the units sent (docs/compliance-snapshot.md); the local register wins a clash
    from viis.compliance.intake import latest_snapshots
    sources += [(c, raw["organisation"]["name"], (keys[c].district if c in keys else "") or "-", raw)
                for c, raw in latest_snapshots(s).items() if c not in local]
    ev = Evaluator(book, on, EngineSettings(remind_days=0))
    for code, name, dist, raw in sources:
        unit_district[code] = dist
        if raw is None:
            snap, found = _findings(s, book, code, on, now_ms, 0)
        else:
            snap = parse(raw)
            found = ev.evaluate(snap)
        bump(districts, dist, "units")
        for site in snap.sites:
            for c in site.categories:
                bump(categories, c, "sites")
        cats_of_site = {x.id: x.categories for x in snap.sites}
        where = _sites_of_subjects(snap)
        for f in found:
            status[f.kind] = status.get(f.kind, 0) + 1
            if f.kind != "breach":
                continue
            bump(districts, dist, "breaches")
            kind, _, rest = f.subject.partition(":")
            site = where.get(kind, {}).get(re.split(r"[#.@]", rest)[0])
            for c in cats_of_site.get(site, ()):
                bump(categories, c, "breaches")
            if f.check.startswith("filing.") and not f.check.endswith(".late"):
                bump(districts, dist, "overdue_filings")
                overdue.append({"district": dist, "unit": code, "unit_name": name, "subject": f.subject,
                                "check": f.check, "due": f.due.isoformat() if f.due else None,
                                "days_overdue": (on - f.due).days if f.due else None,
                                "requirements": list(f.requirements),
                                "penalties": [c.penalty for c in f.penalties]})
    for k in s.scalars(select(IntakeKey)):
        unit_district.setdefault(k.unit_code, k.district or "-")
    for r in s.scalars(select(IntakeFiling)):
        dist = r.district or unit_district.get(r.unit_code, "-")
        bump(districts, dist, "filings_received")
        if r.due_on and r.received_on > r.due_on:
            bump(districts, dist, "filings_late")
    cases_by_state: dict[str, int] = {}
    open_cases = []
    for c in s.scalars(select(ComplianceCase).order_by(ComplianceCase.id)):
        cases_by_state[c.state] = cases_by_state.get(c.state, 0) + 1
        if c.state != "closed":
            dist = unit_district.get(c.organisation, "-")
            bump(districts, dist, "open_cases")
            open_cases.append({"id": c.id, "district": dist, "unit": c.organisation,
                               "unit_name": c.organisation_name, "state": c.state, "check": c.check,
                               "rectify_by": c.rectify_by.isoformat() if c.rectify_by else None,
                               "penalties": [x["penalty"] for x in c.citations]})
    fields = ("units", "breaches", "overdue_filings", "filings_received", "filings_late", "open_cases")
    overdue.sort(key=lambda x: (x["due"] or "", x["unit"], x["subject"]))
    return {"on": on.isoformat(),
            "by_district": {d: {f: v.get(f, 0) for f in fields} for d, v in sorted(districts.items())},
            "by_category": {c: {"sites": v.get("sites", 0), "breaches": v.get("breaches", 0)}
                            for c, v in sorted(categories.items())},
            "findings_by_status": dict(sorted(status.items())),
            "cases_by_state": dict(sorted(cases_by_state.items())),
            "overdue_filings": overdue, "open_cases": open_cases}


def _sites_of_subjects(snap) -> dict[str, dict[str, str]]:
    """subject kind → id → site id, so a breach counts under its site's categories."""
    sys_site = {x.id: x.site for x in snap.systems}
    cam_site = {c.id: sys_site[c.system] for c in snap.cameras}
    return {"site": {x.id: x.id for x in snap.sites}, "system": sys_site, "camera": cam_site,
            "fault": {f.id: cam_site[f.camera] for f in snap.activity.faults}}


# --- renderings ---------------------------------------------------------------------------

def _cell(v: Any) -> str:
    """A CSV cell; a leading = + - @ is neutralised so a spreadsheet does not run it."""
    s = ", ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else str(v))
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in columns])
    return buf.getvalue()


TODO_COLUMNS = ["deadline", "kind", "check", "subject", "requirements", "penalties", "what_to_do"]
OVERDUE_COLUMNS = ["district", "unit", "unit_name", "subject", "check", "due", "days_overdue", "requirements",
                   "penalties"]
CASE_COLUMNS = ["id", "district", "unit", "unit_name", "state", "check", "rectify_by", "penalties"]
DISTRICT_COLUMNS = ["district", "units", "breaches", "overdue_filings", "filings_received", "filings_late",
                    "open_cases"]


def dashboard_table(d: dict[str, Any], table: str) -> tuple[list[dict[str, Any]], list[str]]:
    if table == "districts":
        return [{"district": k} | v for k, v in d["by_district"].items()], DISTRICT_COLUMNS
    if table == "overdue":
        return d["overdue_filings"], OVERDUE_COLUMNS
    if table == "cases":
        return d["open_cases"], CASE_COLUMNS
    raise ValueError(f"table {table!r}: one of districts, overdue, cases")


def _rows(rows: list[dict[str, Any]], columns: list[str]) -> list[list[str]]:
    return [columns] + [[_cell(r.get(c)) for c in columns] for r in rows]


def todo_pdf(code: str, on: date, items: list[dict[str, Any]]) -> bytes:
    from viis.compliance.pdf import report_pdf

    return report_pdf(f"待办事项 To-do — {code} — {on.isoformat()}",
                      [("待办 Items (by deadline)", _rows(items, TODO_COLUMNS[:-1]))])


def dashboard_pdf(d: dict[str, Any]) -> bytes:
    from viis.compliance.pdf import report_pdf

    return report_pdf(f"辖区统计 Bureau dashboard — {d['on']}", [
        ("各辖区违规 Breaches by district", {k: v["breaches"] for k, v in d["by_district"].items()}),
        ("各辖区逾期备案 Overdue filings by district", {k: v["overdue_filings"] for k, v in d["by_district"].items()}),
        ("各类场所违规 Breaches by category", {k.split(":", 1)[1]: v["breaches"] for k, v in d["by_category"].items()}),
        ("案件状态 Cases by state", d["cases_by_state"]),
        ("辖区 Districts", _rows(*dashboard_table(d, "districts"))),
        ("逾期备案 Overdue filings", _rows(d["overdue_filings"], OVERDUE_COLUMNS[:7])),
        ("未结案件 Open cases", _rows(d["open_cases"], CASE_COLUMNS)),
    ])
