"""Findings: what the compliance engine reports (invariant 4: every article that applies).

A finding names the requirement ids breached (or, for a reminder, about to be), every
penalty article of every pack in force that sanctions them with the fine ranges for this
organisation's use and party, the evidence (record, field, value), the day the breach is
established, a deadline, and an explanation: why it fired and what would clear it.

Ids are stable: a hash of the check and its subject, never of the evaluation date, so the
same breach keeps its id from one evaluation to the next and a re-run gives equal findings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Any

BREACH = "breach"
REMINDER = "reminder"
_KIND_ORDER = {BREACH: 0, REMINDER: 1}


@dataclass(frozen=True)
class FineRange:
    party: str
    use: str
    min: int | None        # None: "up to max" (以下)
    max: int
    when: str              # with_order | on_refusal | on_refusal_or_serious_harm
    currency: str = "CNY"

    def as_dict(self) -> dict[str, Any]:
        return {"party": self.party, "use": self.use, "min": self.min, "max": self.max,
                "when": self.when, "currency": self.currency}


@dataclass(frozen=True)
class Citation:
    """One penalty article of one pack that sanctions the breach."""
    penalty: str           # the pack's penalty id: "Q28.1", "N29"
    article: str
    pack: str
    measures: tuple[str, ...]
    fines: tuple[FineRange, ...]
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"penalty": self.penalty, "article": self.article, "pack": self.pack,
                "measures": list(self.measures), "fines": [f.as_dict() for f in self.fines],
                "note": self.note}


@dataclass(frozen=True)
class Evidence:
    record: str            # "camera:c12", "filing:f3", "activity.faults:F9"
    field: str
    value: Any

    def as_dict(self) -> dict[str, Any]:
        v = self.value
        return {"record": self.record, "field": self.field,
                "value": v.isoformat() if hasattr(v, "isoformat") else v}


@dataclass(frozen=True)
class Finding:
    id: str
    kind: str              # breach | reminder
    check: str
    subject: str
    requirements: tuple[str, ...]
    penalties: tuple[Citation, ...]
    evidence: tuple[Evidence, ...]
    detected_on: date      # the day the evidence establishes the breach (reminder: evaluation day)
    due: date | None       # the legal deadline involved, where there is one
    rectify_by: date | None
    explanation: str
    clears: str
    defaults: tuple[str, ...] = ()   # notes of numbers that are VIIS defaults, not law

    @property
    def penalty_ids(self) -> tuple[str, ...]:
        return tuple(c.penalty for c in self.penalties)

    def sort_key(self) -> tuple:
        return (_KIND_ORDER[self.kind], self.check, self.subject, self.id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "check": self.check, "subject": self.subject,
            "requirements": list(self.requirements),
            "penalties": [c.as_dict() for c in self.penalties],
            "evidence": [e.as_dict() for e in self.evidence],
            "detected_on": self.detected_on.isoformat(),
            "due": self.due.isoformat() if self.due else None,
            "rectify_by": self.rectify_by.isoformat() if self.rectify_by else None,
            "explanation": self.explanation, "clears": self.clears,
            "defaults": list(self.defaults),
        }


def finding_id(org: str, check: str, subject: str) -> str:
    """Stable id of a finding: the same organisation, check and subject give the same id."""
    h = hashlib.sha256(f"{org}\x1f{check}\x1f{subject}".encode()).hexdigest()
    return "F" + h[:16]
