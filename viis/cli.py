"""The ``viis`` command for operators and auditors.

There is deliberately no verb that deletes footage: only the retention sweeper removes a
segment, after its retention and with no hold on it (invariant 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from viis.core.clock import iso_utc, parse_time
from viis.core.config import load_settings
from viis.core.errors import ViisError
from viis.core.logging import configure


def _app(args):
    from viis.app import App

    settings = load_settings(args.config)
    configure(settings.log.level, settings.log.json_format)
    return App.open(settings)


def _cli_actor() -> str:
    """Who changed something from the command line, for the audit log."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid {os.getuid()}"


def _print(obj, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, ensure_ascii=False, indent=2, default=str))
    elif isinstance(obj, list):
        for row in obj:
            print("  ".join(f"{k}={v}" for k, v in row.items()))
    else:
        for k, v in obj.items():
            print(f"{k}: {v}")


def _camera_id(app, ref: str) -> int:
    from viis.core.errors import NotFound

    with app.db.session() as s:
        for c in app.cameras.list(s):
            if str(c.id) == ref or c.name == ref or c.uid == ref:
                return c.id
    raise NotFound(f"no camera {ref!r} (give its id, name or uid; `viis camera list` shows them)")


# -- verbs -----------------------------------------------------------------------------
def cmd_migrate(args) -> int:
    app = _app(args)
    print(f"schema up to date at {app.settings.db_url.split('@')[-1]}")
    return 0


def cmd_camera_list(args) -> int:
    from viis.registry.service import public_view

    app = _app(args)
    with app.db.session() as s:
        _print([public_view(c) for c in app.cameras.list(s)], args.json)
    return 0


def cmd_camera_add(args) -> int:
    from viis.registry.service import CameraInput, public_view

    app = _app(args)
    with app.db.session() as s:
        cam = app.cameras.add(s, CameraInput(
            name=args.name, main_url=args.url, sub_url=args.sub_url, username=args.username,
            password=args.password, site=args.site or "", location_type=args.location_type,
            security_level=args.security_level, retention_days=args.retention_days,
            priority=args.priority), actor=_cli_actor())
        _print(public_view(cam), args.json)
    return 0


def cmd_camera_set(args) -> int:
    from viis.registry.service import public_view

    app = _app(args)
    changes = {}
    for kv in args.changes:
        if "=" not in kv:
            raise ViisError(f"{kv!r}: write changes as field=value")
        k, v = kv.split("=", 1)
        changes[k] = int(v) if v.lstrip("-").isdigit() else (
            v.lower() == "true" if v.lower() in ("true", "false") else v)
    cid = _camera_id(app, args.camera)
    with app.db.session() as s:
        _print(public_view(app.cameras.update(s, cid, changes, actor=_cli_actor())), args.json)
    return 0


def cmd_verify(args) -> int:
    from viis.integrity.verify import Verifier

    app = _app(args)
    ids = [_camera_id(app, c) for c in args.camera] if args.camera else None
    frm = parse_time(args.from_) if args.from_ else None
    to = parse_time(args.to) if args.to else None
    with app.db.session() as s:
        rep = Verifier(s, app.settings.segments_path, deep=args.deep).run(ids, frm, to)
    if args.json:
        _print(rep.as_dict(), True)
    else:
        mode = "deep (files re-hashed)" if rep.deep else "fast (chain, files present)"
        print(f"verified {rep.links} links of {rep.cameras} camera(s), {rep.files_checked} files, "
              f"{rep.bytes_hashed} bytes hashed; {mode}")
        for p in rep.problems:
            print(f"PROBLEM {p.kind}: camera {p.camera}: {p.message}")
        print("OK: nothing removed, altered, reordered or inserted" if rep.ok
              else f"FAILED: {len(rep.problems)} problem(s)")
    return 0 if rep.ok else 1


def cmd_hold_add(args) -> int:
    from viis.media.retention import place_hold

    app = _app(args)
    cid = _camera_id(app, args.camera) if args.camera != "all" else None
    with app.db.session() as s:
        h = place_hold(s, camera_id=cid, start_ms=parse_time(args.from_), end_ms=parse_time(args.to),
                       reason=args.reason, owner=args.owner, legal_basis=args.legal_basis or "",
                       now_ms=app.clock.wall_ms())
        _print({"hold": h.id, "camera": cid or "all", "from": iso_utc(h.start_ms),
                "to": iso_utc(h.end_ms), "reason": h.reason, "owner": h.owner}, args.json)
    return 0


def cmd_hold_list(args) -> int:
    from viis.media.retention import active_holds

    app = _app(args)
    with app.db.session() as s:
        _print([{"hold": h.id, "camera": h.camera_id or "all", "from": iso_utc(h.start_ms),
                 "to": iso_utc(h.end_ms), "reason": h.reason, "owner": h.owner}
                for h in active_holds(s)], args.json)
    return 0


def cmd_hold_release(args) -> int:
    from viis.media.retention import release_hold

    app = _app(args)
    with app.db.session() as s:
        h = release_hold(s, args.hold, by=args.by, now_ms=app.clock.wall_ms())
        _print({"hold": h.id, "released": iso_utc(h.released_ms), "by": h.released_by}, args.json)
    return 0


def cmd_retention_sweep(args) -> int:
    from viis.media.retention import sweep

    app = _app(args)
    r = sweep(app.db, app.settings.segments_path, app.clock)
    _print({"removed": r.removed, "bytes": r.removed_bytes, "kept_for_holds": r.kept_for_holds,
            "errors": r.errors}, args.json)
    return 0


def cmd_retention_report(args) -> int:
    from viis.media.retention import over_retention

    app = _app(args)
    with app.db.session() as s:
        rows = over_retention(s, app.rules, app.clock.wall_ms())
    _print([dict(r.__dict__, oldest=iso_utc(r.oldest_ms)) for r in rows], args.json)
    return 0


def cmd_capacity(args) -> int:
    from viis.media.capacity import forecast

    app = _app(args)
    with app.db.session() as s:
        f = forecast(s, app.settings.segments_path, app.clock.wall_ms(),
                     reserve_bytes=app.settings.storage.min_free_bytes,
                     warn_days=app.settings.storage.forecast_warn_days)
    _print(f.as_dict(), args.json)
    return 0


def cmd_run(args) -> int:
    from viis.runner import run

    return run(args.config)


def cmd_simcam(args) -> int:
    from viis.simcam import main as simcam_main

    return simcam_main(args.rest)


def cmd_compliance_evaluate(args) -> int:
    """Findings for a snapshot as of a date (docs/compliance-snapshot.md); exit 1 if any breach."""
    from datetime import date as _date
    from pathlib import Path

    from viis.compliance.engine import evaluate
    from viis.compliance.rulepack import RuleBook
    from viis.compliance.snapshot import MAX_BYTES, SnapshotError, loads

    try:
        on = _date.fromisoformat(args.on)
    except ValueError:
        raise ViisError(f"--on {args.on!r}: give a date YYYY-MM-DD (Asia/Shanghai)") from None
    packs = Path(args.rulepacks) if args.rulepacks else load_settings(args.config).rulepack_dir
    if getattr(args, "live", False):
        # The running installation's own register (viis.compliance.live), not a file.
        from viis.compliance.live import live_snapshot

        snap = live_snapshot(_app(args), getattr(args, "unit", None))
        findings = evaluate(snap, RuleBook.load(packs), on)
    else:
        if not args.snapshot:
            raise ViisError("give a snapshot file, or --live for this installation's register")
        path = Path(args.snapshot)
        try:
            if path.stat().st_size > MAX_BYTES:
                raise SnapshotError(f"{path}: {path.stat().st_size} bytes; at most {MAX_BYTES}")
            data = path.read_bytes()
        except OSError as e:
            raise ViisError(f"cannot read {path}: {e.strerror}") from None
        findings = evaluate(loads(data), RuleBook.load(packs), on)
    if args.json:
        print(json.dumps({"on": on.isoformat(), "findings": [f.as_dict() for f in findings]},
                         ensure_ascii=False, indent=2))
    else:
        rows = [("kind", "check", "subject", "requirements", "penalties", "detected", "due/rectify by")]
        for f in findings:
            rows.append((f.kind, f.check, f.subject, ",".join(f.requirements),
                         ",".join(f.penalty_ids) or "-", f.detected_on.isoformat(),
                         (f.due or f.rectify_by or "-").__str__()
                         if f.kind == "reminder" else str(f.rectify_by or "-")))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        breaches = sum(f.kind == "breach" for f in findings)
        print(f"{breaches} breach(es), {len(findings) - breaches} reminder(s) on {on}")
    return 1 if any(f.kind == "breach" for f in findings) else 0


# -- parser ----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="viis", description="VIIS video image information system")
    p.add_argument("--config", help="settings file (TOML); default ./viis.toml or $VIIS_CONFIG")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    sub = p.add_subparsers(dest="verb", required=True)

    def verb(name: str, fn: Callable, help: str, parent=sub):
        sp = parent.add_parser(name, help=help)
        sp.set_defaults(fn=fn)
        return sp

    verb("run", cmd_run, "run the system: recorder, retention, web API")
    sc = verb("simcam", cmd_simcam, "run the simulated camera fleet (see `viis simcam -- --help`)")
    sc.add_argument("rest", nargs=argparse.REMAINDER)
    verb("migrate", cmd_migrate, "create or upgrade the database schema")

    cam = sub.add_parser("camera", help="camera registry").add_subparsers(dest="sub", required=True)
    verb("list", cmd_camera_list, "list cameras (credentials never shown)", cam)
    a = verb("add", cmd_camera_add, "add a camera", cam)
    a.add_argument("name")
    a.add_argument("url", help="main stream rtsp:// URL (recorded)")
    a.add_argument("--sub-url")
    a.add_argument("--username")
    a.add_argument("--password")
    a.add_argument("--site")
    a.add_argument("--location-type", default="public_area")
    a.add_argument("--security-level", type=int, default=1)
    a.add_argument("--retention-days", type=int)
    a.add_argument("--priority", type=int, default=50)
    st = verb("set", cmd_camera_set, "change camera fields: viis camera set CAM field=value ...", cam)
    st.add_argument("camera")
    st.add_argument("changes", nargs="+")

    v = verb("verify", cmd_verify, "prove footage complete and unaltered (Q20.3, N23.1)")
    v.add_argument("--camera", action="append", help="camera id, name or uid (repeatable)")
    v.add_argument("--from", dest="from_", help="ISO time (naive = Asia/Shanghai) or UTC ms")
    v.add_argument("--to")
    v.add_argument("--deep", action="store_true", help="re-hash every file")

    hold = sub.add_parser("hold", help="evidence holds").add_subparsers(dest="sub", required=True)
    ha = verb("add", cmd_hold_add, "keep a camera's footage in a range past retention", hold)
    ha.add_argument("camera", help="camera id/name/uid, or 'all'")
    ha.add_argument("--from", dest="from_", required=True)
    ha.add_argument("--to", required=True)
    ha.add_argument("--reason", required=True)
    ha.add_argument("--owner", required=True)
    ha.add_argument("--legal-basis")
    verb("list", cmd_hold_list, "active holds", hold)
    hr = verb("release", cmd_hold_release, "release a hold", hold)
    hr.add_argument("hold", type=int)
    hr.add_argument("--by", required=True)

    ret = sub.add_parser("retention", help="retention").add_subparsers(dest="sub", required=True)
    verb("sweep", cmd_retention_sweep, "remove expired, unheld segments now", ret)
    verb("report", cmd_retention_report, "footage kept past the legal default (N17.1)", ret)
    verb("capacity", cmd_capacity, "disk capacity forecast")
    comp = sub.add_parser("compliance", help="compliance engine").add_subparsers(dest="sub", required=True)
    ce = verb("evaluate", cmd_compliance_evaluate, "findings of a snapshot as of a date", comp)
    ce.add_argument("snapshot", nargs="?", help="snapshot JSON (docs/compliance-snapshot.md)")
    ce.add_argument("--live", action="store_true", help="evaluate this installation's register")
    ce.add_argument("--unit", help="with --live: the unit's code (needed when there are several)")
    ce.add_argument("--on", required=True, help="evaluation day YYYY-MM-DD (Asia/Shanghai)")
    ce.add_argument("--rulepacks", help="rule pack directory (default: settings rulepack_dir)")
    ce.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")
    from viis.compliance.cli_cases import add_verbs

    add_verbs(comp, verb)  # viis compliance case ..., viis compliance inspect ...
    from viis.integrity.cli_audit import add_verbs as add_audit_verbs

    add_audit_verbs(sub, verb)  # viis audit verify, viis audit checkpoint
    from viis.access.cli_evidence import add_verbs as add_evidence_verbs

    add_evidence_verbs(sub, verb)  # viis export, viis verify-export (Q24.1)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Log lines go to stderr from the first one, so a verb's stdout (JSON, CSV) stays clean;
    # verbs that open the app reconfigure from the settings.
    configure()
    try:
        return args.fn(args)
    except ViisError as e:
        print(f"viis: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"viis: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
