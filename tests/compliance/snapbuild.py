"""Builders of compliance snapshots for the tests: a clean unit that breaches nothing on
2026-03-01, which each test changes in one place."""

from __future__ import annotations

import copy
import json

from viis.compliance.snapshot import parse

ON = "2026-03-01"


def clean() -> dict:
    return copy.deepcopy({
        "format": "viis-compliance-snapshot", "version": 1,
        "generated_at": "2026-03-01T09:00:00+08:00",
        "organisation": {"id": "org1", "name": "Harbour Hotel", "use": "business", "party": "unit"},
        "sites": [{"id": "s1", "name": "main building", "public_place": True,
                   "categories": ["qingdao-2020:residential_lodging_catering_markets_parking",
                                  "national-2025:crowded_venues"]}],
        "systems": [{"id": "sys1", "site": "s1", "purpose": "public security", "storage_days": 30,
                     "accepted_on": "2025-06-01", "in_use_on": "2025-06-01",
                     "contractors": [{"role": "builder", "name": "B Co", "qualification": "Q-1",
                                      "qualification_expires": "2027-01-01"},
                                     {"role": "maintainer", "name": "M Co", "qualification": "Q-2",
                                      "qualification_expires": "2027-01-01"}]}],
        "cameras": [{"id": "c1", "system": "sys1", "location_type": "entrance_exit",
                     "retention_days": 30, "signage": {"present": True, "photo": True}}],
        "filings": [{"id": "f1", "system": "sys1", "kind": "acceptance", "filed_on": "2025-06-20"},
                    {"id": "f2", "system": "sys1", "kind": "in_use", "filed_on": "2025-06-20"}],
        "activity": {
            "period": {"from": "2026-02-01", "to": "2026-02-28"},
            "recording": [{"camera": "c1", "coverage": 1.0}],
            "retention": [{"camera": "c1", "recording_days": 200, "kept_days": 30}],
            "integrity": [{"camera": "c1", "verified_at": "2026-02-28T23:00:00+08:00", "ok": True}],
            "faults": [],
            "duty": {"log_kept": True, "staff": [{"id": "u1", "name": "Wang", "trained_on": "2025-05-01"}],
                     "shifts": [{"staff": "u1", "on": "2026-02-27"}]},
            "retrievals": [{"id": "r1", "at": "2026-02-10T10:00:00+08:00", "requester_kind": "police",
                            "requester_unit": "Shinan district bureau", "requester_name": "Li",
                            "reason": "case 12", "content": "c1 10:00-11:00", "approved": True,
                            "approval_document": "QGA-2026-12", "staff_count": 2, "ids_shown": True}],
        },
    })


def snap(d: dict):
    return parse(json.loads(json.dumps(d)))
