"""Register export benchmark: the retrieval register as PDF (Q19.1, Q24.1(3), N16.1) for a
full page of 1,000 entries, with the CSV of the same entries as the baseline measured in the
same run.

    .venv/bin/python bench/register_pdf.py [--entries 1000]

Timed: ``register.to_pdf`` and ``register.to_csv`` on entries built in memory (no database:
the search is the same for both). Writes bench/results/register_pdf.json (pdf_s, csv_s,
pdf_over_csv, pdf_bytes, pages).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from viis.access.register import to_csv, to_pdf  # noqa: E402
from viis.access.retrieval_models import RegisterEntry  # noqa: E402


def entries(n: int) -> list[RegisterEntry]:
    t0 = 1_767_225_600_000
    return [RegisterEntry(id=i + 1, at_ms=t0 + i * 60_000, outcome="allowed", action="playback",
                          camera_id=1 + i % 20, from_ms=t0 - 3_600_000, to_ms=t0, unit_id=3,
                          unit_name="市南分局 Shinan district bureau", user_id=7, user_login="inv1",
                          user_name="王警官", user_work_id="PA-031245", second_user_id=8,
                          second_name="李警官", second_work_id="PA-031246", request_id=1 + i // 10,
                          request_kind="police", session_id=1 + i // 10, case_number="QD-2026-0042",
                          purpose="调查入室盗窃 investigate a burglary at the north gate",
                          legal_basis="Criminal Procedure Law art. 54",
                          reason="police_investigator within R-1", articles="Q23.1 Q24.1")
            for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=1000)
    n = ap.parse_args().entries
    es = entries(n)
    t = time.perf_counter()
    csv_text = to_csv(es)
    csv_s = time.perf_counter() - t
    t = time.perf_counter()
    pdf = to_pdf(es, {"request": "1"})
    pdf_s = time.perf_counter() - t
    out = {"entries": n, "pdf_s": round(pdf_s, 3), "csv_s": round(csv_s, 4),
           "pdf_over_csv": round(pdf_s / csv_s, 1), "pdf_bytes": len(pdf),
           "csv_bytes": len(csv_text.encode()),
           "pages": len(re.findall(rb"/Type /Page\b", pdf)),
           "python": platform.python_version(), "machine": platform.machine()}
    print(json.dumps(out, indent=2))
    res = ROOT / "bench" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "register_pdf.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
