"""Cases: the police side of a finding (Q26–Q32, N26–N32).

A case is opened from a breach finding (the engine's or an inspection's), by its stable id;
the finding's requirement ids, citations (every penalty article of every pack, with the fine
ranges for the unit's use and party) and evidence are copied into it. Then::

    open ──order──▶ ordered ──reinspect──▶ rectified ──close──▶ closed
      │                ▲                      │
      │                └──order── unrectified ┴──decide──▶ decided ──appeal──▶ appealed
      └──close (dismissed, with a reason)            │                           │
                                                     └──────────close────────────┴──▶ closed

``decide`` takes a penalty the case cites and an amount a person chose; the amount must lie
inside that article's range for the chosen party (individual / unit / responsible_person)
and the unit's use (business / non-business), else it is refused with the range and the
article. A rectified case may be decided only under fines imposed with the order (并处);
fines "on refusal" (拒不改正的) need a re-inspection that found the breach not rectified,
which cannot be before the order's deadline has passed.

The decision carries the appeal information of Q32 (the ``[appeal]`` section of the packs in
force): administrative reconsideration and litigation deadlines, the payment deadline and
when the bureau may apply to the court for enforcement. The periods come from national laws
the packs do not carry (see :class:`AppealPeriods`); days are Asia/Shanghai calendar days.

Every change records who and when (``compliance_case_events``); an action the current state
does not allow is refused with the state and the allowed actions.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from viis.compliance.findings import BREACH, Finding
from viis.compliance.models import CaseEvent, ComplianceCase
from viis.compliance.rulepack import RuleBook
from viis.core.errors import NotFound, ValidationFailed

OPEN, ORDERED, RECTIFIED, UNRECTIFIED, DECIDED, APPEALED, CLOSED = (
    "open", "ordered", "rectified", "unrectified", "decided", "appealed", "closed")
STATES = (OPEN, ORDERED, RECTIFIED, UNRECTIFIED, DECIDED, APPEALED, CLOSED)

#: action → states it may start from. The target state is fixed except for ``reinspect``.
TRANSITIONS: dict[str, frozenset[str]] = {
    "order": frozenset({OPEN, UNRECTIFIED}),
    "reinspect": frozenset({ORDERED}),
    "decide": frozenset({RECTIFIED, UNRECTIFIED}),
    "appeal": frozenset({DECIDED, APPEALED}),
    "close": frozenset({OPEN, RECTIFIED, DECIDED, APPEALED}),
}
FINE_PARTIES = ("individual", "unit", "responsible_person")
APPEAL_KINDS = ("reconsideration", "litigation")


class CaseError(ValidationFailed):
    """A case action was refused; ``articles`` names the articles behind the refusal."""


@dataclass(frozen=True)
class AppealPeriods:
    """Periods of the appeal procedure Q32 refers to. They are set by national laws, not by
    either pack (the ``[appeal]`` section names the article and whether the bureau may apply
    to the court); VIIS carries them as settings and says so in every decision."""
    reconsideration_days: int = 60       # 行政复议法 第二十条: 60 days from knowing of the decision
    litigation_months: int = 6           # 行政诉讼法 第四十六条: 6 months from knowing of it
    after_reconsideration_days: int = 15  # 行政诉讼法 第四十五条: 15 days from the review decision
    payment_days: int = 15               # 行政处罚法 第六十七条: pay within 15 days of service
    enforcement_months: int = 3          # 行政强制法 第五十三条: apply within 3 months after

    def notes(self) -> list[str]:
        return [
            f"reconsideration: {self.reconsideration_days} days from service "
            "(Administrative Reconsideration Law art. 20; VIIS setting, not in the packs)",
            f"litigation: {self.litigation_months} months from service (Administrative "
            "Litigation Law art. 46), or {0} days from a reconsideration decision (art. 45)"
            .format(self.after_reconsideration_days),
            f"payment: {self.payment_days} days from service (Administrative Penalty Law art. 67)",
            f"court enforcement: the bureau may apply within {self.enforcement_months} months after "
            "the appeal periods end unpaid and unappealed (Administrative Compulsory Law art. 53)",
        ]


def add_months(d: date, months: int) -> date:
    """The same day ``months`` later; the month's last day when it has no such day."""
    m = d.month - 1 + months
    y, m = d.year + m // 12, m % 12 + 1
    return date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def appeal_info(book: RuleBook, served_on: date, periods: AppealPeriods | None = None) -> dict[str, Any]:
    """Q32: what the party may do against a decision served on ``served_on``, and by when.
    A period counted in days or months from service ends on the day so reached (the day of
    service is not counted), Asia/Shanghai calendar."""
    per = periods or AppealPeriods()
    packs = [p for p in book.in_force(served_on) if "appeal" in p.raw]
    articles = [a for p in packs for a in p.appeal_articles]
    court = any(bool(p.raw["appeal"].get("court_enforcement")) for p in packs)
    recon = served_on + timedelta(days=per.reconsideration_days)
    suit = add_months(served_on, per.litigation_months)
    last = max(recon, suit)
    return {
        "articles": articles,
        "served_on": served_on.isoformat(),
        "reconsideration_by": recon.isoformat(),
        "litigation_by": suit.isoformat(),
        "litigation_after_reconsideration_days": per.after_reconsideration_days,
        "payment_by": (served_on + timedelta(days=per.payment_days)).isoformat(),
        "court_enforcement": court,
        "court_enforcement_from": (last + timedelta(days=1)).isoformat() if court else None,
        "court_enforcement_apply_by": add_months(last, per.enforcement_months).isoformat() if court else None,
        "basis": per.notes(),
        "filings": [],
    }


# --- helpers ------------------------------------------------------------------------------

def get_case(s: Session, case_id: int) -> ComplianceCase:
    c = s.get(ComplianceCase, case_id)
    if c is None:
        raise NotFound(f"no case {case_id}")
    return c


def _require(c: ComplianceCase, action: str) -> None:
    allowed = TRANSITIONS[action]
    if c.state not in allowed:
        can = sorted(a for a, frm in TRANSITIONS.items() if c.state in frm)
        raise CaseError(
            f"case {c.id} is {c.state}: cannot {action} (allowed from "
            f"{', '.join(sorted(allowed))}); possible now: {', '.join(can) or 'nothing, it is closed'}",
            field="state")


def _move(s: Session, c: ComplianceCase, action: str, to: str, actor: str, now_ms: int,
          detail: dict[str, Any]) -> ComplianceCase:
    if not actor or not actor.strip():
        raise CaseError("who acts must be named", field="actor")
    s.add(CaseEvent(case_id=c.id, action=action, from_state=c.state if action != "open" else None,
                    to_state=to, actor=actor, at_ms=now_ms, detail=detail))
    c.state = to
    c.updated_ms = now_ms
    s.flush()
    return c


def events(s: Session, case_id: int) -> list[CaseEvent]:
    return list(s.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)))


# --- the actions ----------------------------------------------------------------------------

def open_case(s: Session, finding: Finding, *, organisation_name: str, use: str, party: str,
              actor: str, now_ms: int, organisation: str, source: str = "engine",
              inspection_id: int | None = None) -> ComplianceCase:
    """Take up a breach finding; its citations and ranges are copied into the case."""
    if finding.kind != BREACH:
        raise CaseError(f"finding {finding.id} is a {finding.kind}, not a breach; no case is opened",
                        field="finding_id")
    if not finding.penalties:
        raise CaseError(f"finding {finding.id} ({', '.join(finding.requirements)}) cites no penalty "
                        "article; there is nothing to decide", field="finding_id",
                        articles=finding.requirements)
    busy = s.scalar(select(ComplianceCase.id).where(ComplianceCase.finding_id == finding.id,
                                                    ComplianceCase.state != CLOSED))
    if busy is not None:
        raise CaseError(f"finding {finding.id} already has open case {busy}", field="finding_id")
    c = ComplianceCase(
        finding_id=finding.id, source=source, inspection_id=inspection_id,
        organisation=organisation, organisation_name=organisation_name, use=use, party=party,
        check=finding.check, subject=finding.subject, requirements=list(finding.requirements),
        citations=[x.as_dict() for x in finding.penalties],
        evidence=[e.as_dict() for e in finding.evidence], explanation=finding.explanation,
        detected_on=finding.detected_on, state=OPEN, opened_by=actor, created_ms=now_ms,
        updated_ms=now_ms)
    s.add(c)
    s.flush()
    return _move(s, c, "open", OPEN, actor, now_ms, {"finding_id": finding.id, "source": source})


def order(s: Session, case_id: int, *, rectify_by: date, today: date, actor: str, now_ms: int,
          order_ref: str = "") -> ComplianceCase:
    """An order to rectify by a deadline (责令限期改正); again after a failed re-inspection."""
    c = get_case(s, case_id)
    _require(c, "order")
    if rectify_by < today:
        raise CaseError(f"rectify_by {rectify_by} is before today ({today})", field="rectify_by")
    c.rectify_by = rectify_by
    c.order_ref = order_ref or None
    return _move(s, c, "order", ORDERED, actor, now_ms,
                 {"rectify_by": rectify_by.isoformat(), "order_ref": order_ref, "on": today.isoformat()})


def reinspect(s: Session, case_id: int, *, rectified: bool, on: date, actor: str, now_ms: int,
              note: str = "", inspection_id: int | None = None) -> ComplianceCase:
    """The re-inspection's result. "Not rectified" is a refusal to rectify only once the
    order's period has run out, so it cannot be recorded on or before ``rectify_by``."""
    c = get_case(s, case_id)
    _require(c, "reinspect")
    if not rectified and c.rectify_by is not None and on <= c.rectify_by:
        raise CaseError(f"the order runs until {c.rectify_by}; 'not rectified' can be found from "
                        f"{c.rectify_by + timedelta(days=1)}", field="rectified")
    return _move(s, c, "reinspect", RECTIFIED if rectified else UNRECTIFIED, actor, now_ms,
                 {"rectified": rectified, "on": on.isoformat(), "note": note,
                  "inspection_id": inspection_id})


def _range_text(f: dict[str, Any]) -> str:
    if f["min"] is None:
        return f"up to {f['max']:,} {f['currency']}"
    return f"{f['min']:,}–{f['max']:,} {f['currency']}"


def decide(s: Session, case_id: int, *, penalty: str, party: str, amount: int | None,
           served_on: date, book: RuleBook, actor: str, now_ms: int, decision_ref: str = "",
           note: str = "", periods: AppealPeriods | None = None) -> ComplianceCase:
    """A penalty decision on a cited article; the amount is a person's choice inside the range."""
    c = get_case(s, case_id)
    _require(c, "decide")
    cite = next((x for x in c.citations if x["penalty"] == penalty), None)
    if cite is None:
        raise CaseError(f"penalty {penalty} was not cited by this case; cited: "
                        f"{', '.join(x['penalty'] for x in c.citations)}", field="penalty",
                        articles=tuple(x["penalty"] for x in c.citations))
    where = f"{cite['pack']} article {cite['article']} ({penalty})"
    if party not in FINE_PARTIES:
        raise CaseError(f"party must be one of {', '.join(FINE_PARTIES)}", field="party")
    if c.party == "individual" and party != "individual":
        raise CaseError(f"the party of this case is an individual; {party} does not apply", field="party")
    if c.party == "unit" and party == "individual":
        raise CaseError("the party of this case is a unit: fine the unit or a responsible person",
                        field="party")
    # "any" is whoever broke the duty (unit or individual); responsible persons are fined only
    # where the article names them (直接负责的主管人员和其他直接责任人员).
    fines = [f for f in cite["fines"]
             if f["party"] == party or (f["party"] == "any" and party != "responsible_person")]
    if c.state == RECTIFIED:
        refused = [f for f in fines if f["when"] != "with_order"]
        fines = [f for f in fines if f["when"] == "with_order"]
        if refused and not fines and amount is not None:
            raise CaseError(f"{where} fines a {party} only on refusal to rectify; this case was "
                            "rectified", field="amount", articles=(penalty,))
    if not fines:
        if amount is not None:
            raise CaseError(f"{where} sets no fine for a {party} ({c.use.replace('_', '-')} use); "
                            "decide its measures without an amount", field="amount", articles=(penalty,))
        chosen = None
    else:
        if amount is None:
            raise CaseError(f"{where} fines a {party}: choose an amount within "
                            f"{' or '.join(_range_text(f) for f in fines)}", field="amount",
                            articles=(penalty,))
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise CaseError("amount must be a whole number", field="amount")
        chosen = next((f for f in fines if (f["min"] if f["min"] is not None else 1) <= amount <= f["max"]),
                      None)
        if chosen is None:
            raise CaseError(
                f"amount {amount:,} is outside the range of {where} for a {party}, "
                f"{c.use.replace('_', '-')} use: {' or '.join(_range_text(f) for f in fines)}",
                field="amount", articles=(penalty,))
    c.penalty, c.penalty_article, c.penalty_pack = penalty, cite["article"], cite["pack"]
    c.fine_party, c.amount = party, amount
    c.fine_min = chosen["min"] if chosen else None
    c.fine_max = chosen["max"] if chosen else None
    c.currency = chosen["currency"] if chosen else None
    c.decision_ref = decision_ref or None
    c.served_on = served_on
    c.appeal = appeal_info(book, served_on, periods)
    return _move(s, c, "decide", DECIDED, actor, now_ms,
                 {"penalty": penalty, "article": cite["article"], "pack": cite["pack"], "party": party,
                  "amount": amount, "range": chosen, "measures": cite["measures"],
                  "served_on": served_on.isoformat(), "decision_ref": decision_ref, "note": note})


def record_appeal(s: Session, case_id: int, *, kind: str, filed_on: date, actor: str, now_ms: int,
                  reconsideration_decided_on: date | None = None, ref: str = "") -> ComplianceCase:
    """The party applied for reconsideration or sued (Q32); refused when past its deadline."""
    c = get_case(s, case_id)
    _require(c, "appeal")
    if kind not in APPEAL_KINDS:
        raise CaseError(f"kind must be one of {', '.join(APPEAL_KINDS)}", field="kind")
    info = dict(c.appeal or {})
    if filed_on < date.fromisoformat(info["served_on"]):
        raise CaseError(f"filed_on {filed_on} is before the decision was served ({info['served_on']})",
                        field="filed_on")
    if kind == "reconsideration":
        due = date.fromisoformat(info["reconsideration_by"])
    elif reconsideration_decided_on is not None:
        due = reconsideration_decided_on + timedelta(days=info["litigation_after_reconsideration_days"])
    else:
        due = date.fromisoformat(info["litigation_by"])
    if filed_on > due:
        raise CaseError(f"a {kind} filed on {filed_on} is late: the last day was {due}",
                        field="filed_on", articles=tuple(info.get("articles", ())))
    entry = {"kind": kind, "filed_on": filed_on.isoformat(), "due": due.isoformat(), "ref": ref,
             "recorded_by": actor}
    info["filings"] = [*info.get("filings", []), entry]
    c.appeal = info
    return _move(s, c, "appeal", APPEALED, actor, now_ms, entry)


def close(s: Session, case_id: int, *, outcome: str, actor: str, now_ms: int) -> ComplianceCase:
    """Close: dismissed (open), rectified without a penalty, paid or enforced (decided), or the
    appeal's result (appealed). ``outcome`` says which, in words."""
    c = get_case(s, case_id)
    _require(c, "close")
    if not outcome or not outcome.strip():
        raise CaseError("say how the case ends (outcome)", field="outcome")
    c.outcome = outcome
    return _move(s, c, "close", CLOSED, actor, now_ms, {"outcome": outcome})


def case_view(c: ComplianceCase, evs: list[CaseEvent] | None = None) -> dict[str, Any]:
    out = {
        "id": c.id, "finding_id": c.finding_id, "source": c.source, "inspection_id": c.inspection_id,
        "organisation": c.organisation, "organisation_name": c.organisation_name, "use": c.use,
        "party": c.party, "check": c.check, "subject": c.subject, "requirements": c.requirements,
        "citations": c.citations, "evidence": c.evidence, "explanation": c.explanation,
        "detected_on": c.detected_on.isoformat(), "state": c.state,
        "rectify_by": c.rectify_by.isoformat() if c.rectify_by else None, "order_ref": c.order_ref,
        "decision": None if c.penalty is None else {
            "penalty": c.penalty, "article": c.penalty_article, "pack": c.penalty_pack,
            "party": c.fine_party, "amount": c.amount, "min": c.fine_min, "max": c.fine_max,
            "currency": c.currency, "decision_ref": c.decision_ref,
            "served_on": c.served_on.isoformat() if c.served_on else None},
        "appeal": c.appeal, "outcome": c.outcome, "opened_by": c.opened_by,
        "created_ms": c.created_ms, "updated_ms": c.updated_ms,
        "allowed_actions": sorted(a for a, frm in TRANSITIONS.items() if c.state in frm),
    }
    if evs is not None:
        out["events"] = [{"action": e.action, "from": e.from_state, "to": e.to_state, "actor": e.actor,
                          "at_ms": e.at_ms, "detail": e.detail} for e in evs]
    return out


def list_cases(s: Session, state: str | None = None, limit: int = 200) -> list[ComplianceCase]:
    q = select(ComplianceCase).order_by(ComplianceCase.id.desc()).limit(limit)
    if state:
        if state not in STATES:
            raise CaseError(f"state must be one of {', '.join(STATES)}", field="state")
        q = q.where(ComplianceCase.state == state)
    return list(s.scalars(q))
