"""Evidence export packages (Q23, Q24.1, Q20.5, N16.1, N22.1, Q9.2).

An export is a copy of footage leaving the system, so it is made only for an approved
retrieval request, inside one of its open two-person sessions (Q24.1), and each camera
range of it passes the one door (:func:`viis.access.door.authorize_footage`, action
``export``) — which writes the register entry (Q19.1, N16.1) and refuses, among others,
the view-only requests of individuals (N21.1) and maintenance contractors (N19.1).

The package is a zip::

    manifest.json        what is inside and why: request, approval, both staff, options,
                         per camera range the media file, the source segments' SHA-256 with
                         their hash-chain proof up to the camera's chain head, and the
                         SHA-256 and size of every other file in the package
    manifest.sig         Ed25519 signature over the exact bytes of manifest.json
                         (viis.core.signing, key "evidence"; the algorithm is named, so SM2
                         can be added without changing the format)
    public-key.pem       the signing key's public half (a verifier should be given the
                         key out of band; the copy inside only proves integrity)
    approval/<sha>.<ext> the approval document as filed (Q24.1(2))
    media/*.mp4          one MP4 per approved camera × range
    README.txt           how to verify

Media: an original stream copy (:func:`viis.media.mp4_export.export_range`) when no privacy
mask applies and no watermark or publication blurring is asked; otherwise transcoded by
:mod:`viis.media.burn` with the masks burned in opaque (unless a lift is in force, Q9.2),
the watermark naming the request, the requester and the time, and faces and plates
pixelated for publication (N22.1). Before anything is copied, every source segment file is
hashed and compared with its index row: a changed original is refused, not exported.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import threading
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from viis.access.door import Sink, authorize_footage
from viis.access.models import Organisation, User
from viis.access.policy import Forbidden, Principal, Scope
from viis.access.retrieval import RetrievalService
from viis.access.retrieval_models import RetrievalRequest, RetrievalSession
from viis.core.clock import Clock, iso_utc
from viis.core.errors import NotFound, ValidationFailed, ViisError
from viis.core.logging import get_logger
from viis.core.signing import Signer
from viis.integrity.chain import gap_fields, segment_fields
from viis.integrity.models import ChainHead
from viis.integrity.verify import sha256_file
from viis.media import burn
from viis.media.index import gaps_between, segments_between
from viis.media.models import Gap, Segment
from viis.media.mp4_export import export_range
from viis.registry import masks as mask_store
from viis.registry.models import Camera

log = get_logger(__name__)

FORMAT = "viis-evidence/1"
KEY_NAME = "evidence"
MANIFEST, SIGNATURE, PUBLIC_KEY, README = "manifest.json", "manifest.sig", "public-key.pem", "README.txt"
MAX_RANGE_MS = 24 * 3_600_000


@dataclass(frozen=True)
class ExportOptions:
    watermark: bool = True  # Q24.1, Q20.5: a copy says whose it is
    publication: bool = False  # N22.1: faces and licence plates pixelated


@dataclass
class _Item:
    camera: Camera
    from_ms: int
    to_ms: int
    segments: list[Segment]
    gaps: list[Gap]
    masks: list[mask_store.Polygon]
    lift: dict | None
    weight: float = 1.0


@dataclass
class Plan:
    """What an export will contain; made (and passed through the door) before any work."""

    request: RetrievalRequest
    session: RetrievalSession
    scope: Scope
    principal: Principal
    options: ExportOptions
    items: list[_Item]
    created_ms: int
    package_id: str = field(default_factory=lambda: secrets.token_hex(8))


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False).encode()


def _person(s: Session, user_id: int | None) -> dict | None:
    u = s.get(User, user_id) if user_id is not None else None
    if u is None:
        return None
    org = s.get(Organisation, u.organisation_id)
    return {"user_id": u.id, "login": u.login, "name": u.display_name, "work_id": u.work_id,
            "organisation": org.name if org else ""}


def watermark_text(req: RetrievalRequest, requester: dict | None, at_ms: int) -> str:
    """The request, the requester and the time (ASCII: the picture's font has no CJK)."""
    who = "?"
    if requester:
        who = f"{requester['work_id']} {requester['login']}"
    return (f"VIIS EVIDENCE R-{req.id} {req.case_number or req.kind} | requester {who} | "
            f"exported {iso_utc(at_ms)}")


class EvidenceExporter:
    def __init__(self, app, retrievals: RetrievalService, lifting: mask_store.MaskLifting,
                 register: Sink, *, signer: Signer | None = None,
                 work_dir: Path | None = None) -> None:
        self.app = app
        self.clock: Clock = app.clock
        self.retrievals = retrievals
        self.lifting = lifting
        self.register = register
        self._signer = signer
        self.work_dir = work_dir or app.settings.data_dir / "evidence"

    @property
    def signer(self) -> Signer:
        if self._signer is None:
            self._signer = Signer.for_data_dir(self.app.settings.data_dir, KEY_NAME)
        return self._signer

    # --- plan: session, scope, the door ---------------------------------------------------
    def plan(self, p: Principal, request_id: int, session_id: int,
             options: ExportOptions) -> Plan:
        """Check the session and pass every camera range through the door (one register
        entry each, allowed or refused). Raises Forbidden/NotFound; nothing is copied yet."""
        if p.user_id is None:
            raise Forbidden("an export is made by a signed-in staff member of a retrieval "
                            "session", ("Q24.1",))
        now = self.clock.wall_ms()
        with self.app.db.session() as s:
            req = self.retrievals.get_for(s, p, request_id)
            sess = s.get(RetrievalSession, session_id)
            if sess is None or sess.request_id != req.id or \
                    p.user_id not in (sess.user_a_id, sess.user_b_id):
                raise NotFound(f"retrieval session {session_id} of request {request_id} "
                               "does not exist")
            if sess.closed_ms is not None:
                raise Forbidden(f"retrieval session {session_id} is closed", ("Q24.1",))
            scope = self.retrievals.scope_for(s, p.user_id, req.id)
            if scope is None or scope.session_id != sess.id:
                # an expired approval or a newer session: scope_for knows which is in force
                raise Forbidden(f"retrieval session {session_id} is not in force (expired, "
                                "or not the newest open session of this request)",
                                ("Q23.1", "Q24.1"))
            items: list[_Item] = []
            for r in scope.ranges:
                cam = s.get(Camera, r.camera_id)
                if cam is None:
                    raise NotFound(f"camera {r.camera_id} does not exist")
                authorize_footage(p, "export", cam.id, r.from_ms, r.to_ms,
                                  security_level=cam.security_level, scope=scope, now_ms=now,
                                  register=self.register)
                segs = segments_between(s, cam.id, r.from_ms, r.to_ms)
                gaps = gaps_between(s, cam.id, r.from_ms, r.to_ms)
                masks = mask_store.masks_for(s, cam.id)
                lift = self.lifting.in_force(s, req.id, cam.id, now)
                items.append(_Item(cam, r.from_ms, r.to_ms, segs, gaps, masks,
                                   mask_store.lift_view(lift) if lift is not None else None,
                                   weight=max(1.0, (r.to_ms - r.from_ms) / 1000)))
                s.expunge(cam)
                for x in segs + gaps:
                    s.expunge(x)
            if not any(it.segments for it in items):
                raise NotFound("no footage was recorded in the approved ranges")
            s.expunge(req)
            s.expunge(sess)
        return Plan(req, sess, scope, p, options, items, now)

    # --- build ------------------------------------------------------------------------------
    def build(self, plan: Plan, out: Path,
              progress: Callable[[float], None] | None = None) -> dict:
        """Write the package to ``out`` (zip, read-only) and return its manifest."""
        report = progress or (lambda _f: None)
        stage = self.work_dir / f"build-{plan.package_id}"
        if stage.exists():
            shutil.rmtree(stage)
        (stage / "media").mkdir(parents=True)
        try:
            manifest = self._build(plan, stage, report)
            self._zip(stage, out, manifest)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        with self.app.db.session() as s:  # the copy that left, in the tamper-evident log
            from viis.integrity.audit import AuditLog

            AuditLog(s, self.clock).append(
                "evidence.export", actor=plan.principal, subject=f"R-{plan.request.id}",
                details={"package_id": plan.package_id, "session_id": plan.session.id,
                         "manifest_sha256": hashlib.sha256(_canonical(manifest)).hexdigest(),
                         "items": [{"camera_id": i["camera"]["id"], "from_ms": i["from_ms"],
                                    "to_ms": i["to_ms"], "mode": i.get("mode")}
                                   for i in manifest["items"]],
                         "publication": plan.options.publication})
        report(1.0)
        log.info("evidence_exported", request_id=plan.request.id, session_id=plan.session.id,
                 package_id=plan.package_id, items=len(plan.items), by=plan.principal.user_id)
        return manifest

    def _build(self, plan: Plan, stage: Path, report: Callable[[float], None]) -> dict:
        req = plan.request
        root = self.app.settings.segments_path
        with self.app.db.session() as s:
            requester = _person(s, req.requester_id)
            staff = [_person(s, plan.session.user_a_id), _person(s, plan.session.user_b_id)]
            decided_by = _person(s, req.decided_by_id)
            orgs = {o.id: o.name for o in s.scalars(select(Organisation).where(
                Organisation.id.in_({req.requesting_org_id, req.approving_org_id})))}
            chains = [self._chain(s, it) for it in plan.items]
        wm = watermark_text(req, requester, plan.created_ms) if plan.options.watermark else None
        files: dict[str, Path] = {}
        approval = None
        doc = self.retrievals.document_path(req)
        if doc is not None:
            name = f"approval/{doc.name}"
            (stage / "approval").mkdir(exist_ok=True)
            shutil.copyfile(doc, stage / name)
            files[name] = stage / name
            approval = {"file": name, "sha256": req.document_sha256, "type": req.document_type,
                        "original_name": req.document_name, "bytes": req.document_bytes}
        total = sum(it.weight for it in plan.items if it.segments) or 1.0
        done = 0.0
        out_items = []
        for it, chain in zip(plan.items, chains, strict=True):
            entry = {"camera": {"id": it.camera.id, "uid": it.camera.uid, "name": it.camera.name,
                                "security_level": it.camera.security_level},
                     "from": iso_utc(it.from_ms), "to": iso_utc(it.to_ms),
                     "from_ms": it.from_ms, "to_ms": it.to_ms,
                     "gaps": [{"from_ms": g.start_ms, "to_ms": g.end_ms, "cause": g.cause,
                               "seq": g.seq} for g in it.gaps],
                     "sources": [{"seq": x.seq, "start_ms": x.start_ms, "end_ms": x.end_ms,
                                  "frames": x.frames, "bytes": x.bytes, "sha256": x.sha256,
                                  "chain_hash": x.chain_hash} for x in it.segments],
                     "chain": chain, "file": None}
            if not it.segments:
                entry["note"] = "no footage was recorded in this range"
                out_items.append(entry)
                continue
            for x in it.segments:  # the originals must still be what the index says
                sha, _n = sha256_file(root / x.path)
                if sha != x.sha256:
                    raise ViisError(f"the original of camera {it.camera.name} segment seq "
                                    f"{x.seq} does not match its recorded SHA-256; it is not "
                                    "exported (run `viis verify`)")
            name = f"media/{it.camera.uid}-{it.from_ms}-{it.to_ms}.mp4"
            copy = stage / (name + ".copy.mp4")
            info = export_range([(root / x.path, x.start_ms) for x in it.segments], it.from_ms,
                                it.to_ms, str(copy), creation_time=it.from_ms // 1000)
            burn_masks = [] if it.lift is not None else it.masks
            transcode = bool(burn_masks) or wm is not None or plan.options.publication
            entry.update(frames=info.frames, start_ms=info.start_ms, end_ms=info.end_ms,
                         masks=[m.as_dict() for m in it.masks],
                         masks_burned_in=bool(burn_masks), mask_lift=it.lift,
                         watermark=wm, publication=plan.options.publication)
            if transcode:
                expected = max(1, info.frames)
                base = done

                def tick(frames: int, base=base, expected=expected, w=it.weight) -> None:
                    report(0.97 * (base + w * min(1.0, frames / expected)) / total)

                res = burn.transcode(copy, stage / name,
                                     burn.BurnOptions(masks=burn_masks, watermark=wm,
                                                      publication=plan.options.publication),
                                     progress=tick)
                copy.unlink()
                entry.update(mode="transcoded", transcode={
                    "codec": "h264", "frames": res.frames, "width": res.width,
                    "height": res.height, "masked_fraction": round(res.masked_fraction, 4)})
                if plan.options.publication:
                    entry["transcode"]["detections"] = {"faces": res.faces, "plates": res.plates,
                                                        "detectors": res.detectors}
            else:
                os.replace(copy, stage / name)
                entry["mode"] = "stream-copy"
            entry["file"] = name
            files[name] = stage / name
            out_items.append(entry)
            done += it.weight
            report(0.97 * done / total)
        readme = stage / README
        readme.write_text(_README)
        files[README] = readme
        (stage / PUBLIC_KEY).write_bytes(self.signer.public_pem())
        files[PUBLIC_KEY] = stage / PUBLIC_KEY
        manifest = {
            "format": FORMAT, "package_id": plan.package_id,
            "created_at": iso_utc(plan.created_ms), "created_ms": plan.created_ms,
            "request": {"ref": f"R-{req.id}", "id": req.id, "kind": req.kind,
                        "legal_basis": req.legal_basis, "purpose": req.purpose,
                        "case_number": req.case_number, "requester": requester,
                        "requesting_org": orgs.get(req.requesting_org_id, ""),
                        "approving_org": orgs.get(req.approving_org_id, ""),
                        "decided_by": decided_by,
                        "decided_at": iso_utc(req.decided_ms) if req.decided_ms else None,
                        "expires_at": iso_utc(req.expires_ms) if req.expires_ms else None,
                        "review_pending": req.review_pending,
                        "staff_work_ids": req.staff_work_ids.split()},
            "approval": approval,
            "session": {"id": plan.session.id, "opened_at": iso_utc(plan.session.opened_ms),
                        "staff": staff},
            "exported_by": {"user_id": plan.principal.user_id, "login": plan.principal.name,
                            "work_id": plan.principal.work_id},
            "options": {"watermark": plan.options.watermark,
                        "publication": plan.options.publication},
            "items": out_items,
            "signing": {"algorithm": self.signer.algorithm, "key_id": self.signer.key_id,
                        "public_key": PUBLIC_KEY},
            "files": {n: {"sha256": sha256_file(p)[0], "bytes": p.stat().st_size}
                      for n, p in sorted(files.items())},
            "articles": ["Q23.1", "Q24.1", "Q20.5", "N16.1", "Q9.2"]
                        + (["N22.1"] if plan.options.publication else []),
        }
        return manifest

    def _chain(self, s: Session, it: _Item) -> dict | None:
        """Proof that the source segments are links of the camera's chain: the hash before
        the first of them and every link's fields from there up to the chain head, so a
        verifier recomputes the head offline (viis.integrity.chain.link_hash)."""
        if not it.segments:
            return None
        first = min(x.seq for x in it.segments)
        head = s.get(ChainHead, it.camera.id)
        if head is None:
            return None
        segs = s.scalars(select(Segment).where(Segment.camera_id == it.camera.id,
                                               Segment.seq >= first)).all()
        gaps = s.scalars(select(Gap).where(Gap.camera_id == it.camera.id,
                                           Gap.seq >= first)).all()
        links = sorted(list(segs) + list(gaps), key=lambda x: x.seq)
        prev = next(x.prev_hash for x in links if x.seq == first)
        out = []
        for x in links:
            if isinstance(x, Segment):
                out.append(segment_fields(it.camera.uid, x.seq, x.start_ms, x.end_ms, x.frames,
                                          x.bytes, x.sha256))
            else:
                out.append(gap_fields(it.camera.uid, x.seq, x.start_ms, x.end_ms, x.cause))
        return {"camera_uid": it.camera.uid, "prev_hash": prev, "links": out,
                "head": {"seq": head.seq, "hash": head.chain_hash,
                         "at": iso_utc(head.updated_ms)}}

    def _zip(self, stage: Path, out: Path, manifest: dict) -> None:
        body = _canonical(manifest)
        sig = self.signer.sign(body)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".part")
        with zipfile.ZipFile(tmp, "w") as z:
            z.writestr(MANIFEST, body, zipfile.ZIP_DEFLATED)
            z.writestr(SIGNATURE, json.dumps(sig.as_dict(), indent=1), zipfile.ZIP_DEFLATED)
            for name in manifest["files"]:
                kind = zipfile.ZIP_STORED if name.startswith("media/") else zipfile.ZIP_DEFLATED
                z.write(stage / name, name, kind)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o440)
        os.replace(tmp, out)


_README = """VIIS evidence package (format viis-evidence/1)

manifest.json lists every file of this package with its SHA-256, the approved retrieval
request, the approval document, the two staff of the retrieval session, and for each camera
range the source segments' SHA-256 with their hash-chain proof up to the camera's chain head.
manifest.sig is a signature over the exact bytes of manifest.json.

Verify offline with the public key obtained from the exporting unit (not only the copy in
this package, which proves integrity but not origin):

    viis verify-export PACKAGE.zip --public-key evidence.pem

It names every file that was changed, added or removed, and a bad signature.
"""


# --- jobs: long exports run in the background with progress --------------------------------
@dataclass
class ExportJob:
    id: str
    request_id: int
    session_id: int
    user_ids: frozenset[int]
    created_ms: int
    status: str = "queued"  # queued | running | done | failed
    fraction: float = 0.0
    error: str | None = None
    path: Path | None = None
    manifest_sha256: str | None = None
    bytes: int | None = None

    def view(self) -> dict:
        return {"id": self.id, "request_id": self.request_id, "session_id": self.session_id,
                "status": self.status, "percent": round(100 * self.fraction, 1),
                "error": self.error, "created_at": iso_utc(self.created_ms),
                "bytes": self.bytes, "manifest_sha256": self.manifest_sha256}


class ExportJobs:
    """One worker (exports are CPU-bound when transcoding); jobs live in memory, packages on
    disk under ``<data_dir>/evidence``. A restart forgets unfinished jobs; their door
    decisions and register entries remain."""

    def __init__(self, exporter: EvidenceExporter, *, workers: int = 1) -> None:
        self.exporter = exporter
        self._jobs: dict[str, ExportJob] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="viis-export")

    def submit(self, p: Principal, request_id: int, session_id: int,
               options: ExportOptions) -> ExportJob:
        plan = self.exporter.plan(p, request_id, session_id, options)
        job = ExportJob(id=secrets.token_urlsafe(12), request_id=request_id,
                        session_id=session_id,
                        user_ids=frozenset({plan.session.user_a_id, plan.session.user_b_id}),
                        created_ms=plan.created_ms)
        with self._lock:
            self._jobs[job.id] = job
        self._pool.submit(self._run, job, plan)
        return job

    def _run(self, job: ExportJob, plan: Plan) -> None:
        job.status = "running"
        out = self.exporter.work_dir / f"{plan.package_id}.zip"

        def progress(f: float) -> None:
            job.fraction = max(job.fraction, min(f, 1.0))

        try:
            manifest = self.exporter.build(plan, out, progress)
            job.manifest_sha256 = hashlib.sha256(_canonical(manifest)).hexdigest()
            job.path, job.bytes = out, out.stat().st_size
            job.status, job.fraction = "done", 1.0
        except Exception as e:  # noqa: BLE001 - the job reports why; the server goes on
            log.error("evidence_export_failed", job=job.id, error=str(e)[:300])
            job.status, job.error = "failed", (str(e) if isinstance(e, ViisError)
                                               else f"export failed: {type(e).__name__}")

    def get(self, p: Principal, request_id: int, session_id: int, job_id: str) -> ExportJob:
        job = self._jobs.get(job_id) if len(job_id) <= 64 else None
        if job is None or job.request_id != request_id or job.session_id != session_id or \
                p.user_id not in job.user_ids:
            raise NotFound(f"export {job_id[:64]} does not exist")
        return job

    def wait(self, job_id: str, timeout: float = 600.0) -> ExportJob:
        """Tests and the CLI: block until the job ends."""
        import time

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            job = self._jobs[job_id]
            if job.status in ("done", "failed"):
                return job
            time.sleep(0.05)
        raise TimeoutError(f"export {job_id} still running after {timeout} s")

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def check_options(watermark: object, publication: object) -> ExportOptions:
    if not isinstance(watermark, bool) or not isinstance(publication, bool):
        raise ValidationFailed("watermark and publication are true or false", field="options")
    return ExportOptions(watermark=watermark, publication=publication)
