"""Reports API: the unit's to-do list (``report.unit``) and the bureau's dashboard
(``report.bureau``), as JSON, CSV or PDF. Routes are added to the ``/api/compliance`` router."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import Depends, Query, Request, Response

from viis.compliance import reports
from viis.web.auth import allow
from viis.web.routes_compliance import router
from viis.web.routes_register import today

Format = Literal["json", "csv", "pdf"]


def _file(data: bytes | str, media: str, name: str) -> Response:
    return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/reports/todo", dependencies=[Depends(allow("report.unit"))], response_model=None)
def todo(request: Request, unit: Annotated[str, Query(min_length=1, max_length=64)],
         on: Annotated[date | None, Query()] = None, format: Format = "json") -> dict | Response:
    """What the unit must still do and by when (open findings, filing deadlines, reminders)."""
    app = request.app.state.viis
    day = on or today(request)
    with app.db.session() as s:
        items = reports.unit_todo(s, app.rules, unit, day, app.clock.wall_ms())
    if format == "csv":
        return _file(reports.to_csv(items, reports.TODO_COLUMNS), "text/csv; charset=utf-8", f"todo-{unit}.csv")
    if format == "pdf":
        return _file(reports.todo_pdf(unit, day, items), "application/pdf", f"todo-{unit}.pdf")
    return {"unit": unit, "on": day.isoformat(), "items": items}


@router.get("/reports/dashboard", dependencies=[Depends(allow("report.bureau"))], response_model=None)
def dashboard(request: Request, on: Annotated[date | None, Query()] = None, format: Format = "json",
              table: Literal["districts", "overdue", "cases"] = "districts") -> dict | Response:
    """By district, category and status; overdue filings; open cases. CSV: one ``table``."""
    app = request.app.state.viis
    day = on or today(request)
    with app.db.session() as s:
        d = reports.dashboard(s, app.rules, day, app.clock.wall_ms())
    if format == "csv":
        rows, cols = reports.dashboard_table(d, table)
        return _file(reports.to_csv(rows, cols), "text/csv; charset=utf-8", f"dashboard-{table}-{day}.csv")
    if format == "pdf":
        return _file(reports.dashboard_pdf(d), "application/pdf", f"dashboard-{day}.pdf")
    return d
