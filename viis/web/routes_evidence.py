"""Evidence export API (Q23, Q24.1, N16.1, N22.1): signed packages of an approved retrieval
request's scope, made inside one of its open two-person sessions.

``POST /api/retrievals/{rid}/sessions/{sid}/exports`` ``{"watermark": true,
"publication": false}`` passes every camera range through the one door (one register entry
each; refused → 403 and nothing is made) and answers 202 with a job; ``GET .../exports/{job}``
reports its status and percent done; ``GET .../exports/{job}/package.zip`` hands over the
package to either staff member of the session while the approval is in force.
The builder: :mod:`viis.access.evidence`; the offline check: :mod:`viis.access.verify_export`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from viis.access.evidence import EvidenceExporter, ExportJobs, ExportOptions
from viis.access.policy import Forbidden, Principal
from viis.web.auth import allow

router = APIRouter(prefix="/api/retrievals/{request_id}/sessions/{session_id}/exports",
                   tags=["evidence"])


class ExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    watermark: bool = True
    publication: bool = False


JobId = Annotated[str, Field(max_length=64)]


def _jobs(request: Request) -> ExportJobs:
    return request.app.state.exports


@router.post("", status_code=202)
def start_export(request_id: int, session_id: int, body: ExportIn, request: Request,
                 p: Principal = Depends(allow("evidence.export"))) -> dict:
    job = _jobs(request).submit(p, request_id, session_id,
                                ExportOptions(watermark=body.watermark,
                                              publication=body.publication))
    return job.view()


@router.get("/{job_id}")
def export_status(request_id: int, session_id: int, job_id: str, request: Request,
                  p: Principal = Depends(allow("evidence.export"))) -> dict:
    return _jobs(request).get(p, request_id, session_id, job_id).view()


@router.get("/{job_id}/package.zip")
def export_package(request_id: int, session_id: int, job_id: str, request: Request,
                   p: Principal = Depends(allow("evidence.export"))) -> FileResponse:
    jobs = _jobs(request)
    job = jobs.get(p, request_id, session_id, job_id)
    if job.status != "done" or job.path is None:
        raise Forbidden(f"export {job.id} is {job.status}, not done")
    app = request.app.state.viis
    with app.db.session() as s:  # the copy leaves only while the approval is in force
        scope = request.app.state.retrievals.scope_for(s, p.user_id, request_id)
    if scope is None or scope.session_id != session_id:
        raise Forbidden("the retrieval session is closed or its approval has expired",
                        ("Q23.1", "Q24.1"))
    return FileResponse(job.path, media_type="application/zip",
                        filename=f"evidence-R-{request_id}-{job.id}.zip")


def install(api: FastAPI) -> None:
    """Needs the retrieval service, the register and the mask lifting service."""
    exporter = EvidenceExporter(api.state.viis, api.state.retrievals, api.state.mask_lifting,
                                api.state.register)
    api.state.exports = ExportJobs(exporter)
    api.include_router(router)
