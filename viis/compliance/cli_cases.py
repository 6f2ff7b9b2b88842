"""``viis compliance case ...`` and ``viis compliance inspect ...``: the police side from the
command line (the same services as the API). ``--by`` names who acts; it is recorded."""

from __future__ import annotations

import argparse
import json
from datetime import date, datetime
from pathlib import Path

from viis.core.clock import SHANGHAI
from viis.core.errors import NotFound, ViisError


def _day(text: str | None, name: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ViisError(f"{name} {text!r}: give a date YYYY-MM-DD (Asia/Shanghai)") from None


def _today(app) -> date:
    return datetime.fromtimestamp(app.clock.wall_ms() / 1000, SHANGHAI).date()


def _out(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def _app(args):
    from viis.cli import _app as open_app

    return open_app(args)


def cmd_case(args) -> int:
    from viis.compliance import cases

    app = _app(args)
    now = app.clock.wall_ms()
    with app.db.session() as s:
        if args.action == "open":
            from viis.compliance.engine import evaluate
            from viis.compliance.snapshot import MAX_BYTES, loads

            p = Path(args.snapshot)
            if p.stat().st_size > MAX_BYTES:
                raise ViisError(f"{p}: over {MAX_BYTES} bytes")
            snap = loads(p.read_bytes())
            on = _day(args.on, "--on")
            f = next((x for x in evaluate(snap, app.rules, on) if x.id == args.finding), None)
            if f is None:
                raise NotFound(f"no finding {args.finding} for {snap.organisation.id} on {on}")
            o = snap.organisation
            c = cases.open_case(s, f, organisation=o.id, organisation_name=o.name, use=o.use,
                                party=o.party, actor=args.by, now_ms=now)
        elif args.action == "list":
            _out([cases.case_view(c) for c in cases.list_cases(s, args.state)])
            return 0
        elif args.action == "show":
            c = cases.get_case(s, args.id)
        elif args.action == "order":
            c = cases.order(s, args.id, rectify_by=_day(args.rectify_by, "--rectify-by"),
                            today=_today(app), actor=args.by, now_ms=now, order_ref=args.ref or "")
        elif args.action == "reinspect":
            c = cases.reinspect(s, args.id, rectified=args.result == "rectified",
                                on=_day(args.on, "--on") or _today(app), actor=args.by, now_ms=now,
                                note=args.note or "")
        elif args.action == "decide":
            c = cases.decide(s, args.id, penalty=args.penalty, party=args.party, amount=args.amount,
                             served_on=_day(args.served_on, "--served-on") or _today(app),
                             book=app.rules, actor=args.by, now_ms=now, decision_ref=args.ref or "")
        elif args.action == "appeal":
            c = cases.record_appeal(s, args.id, kind=args.kind, filed_on=_day(args.filed_on, "--filed-on"),
                                    actor=args.by, now_ms=now,
                                    reconsideration_decided_on=_day(args.after, "--after"))
        else:  # close
            c = cases.close(s, args.id, outcome=args.outcome, actor=args.by, now_ms=now)
        _out(cases.case_view(c, cases.events(s, c.id)))
    return 0


def cmd_inspect(args) -> int:
    from viis.compliance import inspections

    if args.action == "checklist":
        from viis.compliance.rulepack import RuleBook
        from viis.core.config import load_settings

        book = RuleBook.load(load_settings(args.config).rulepack_dir)
        on = _day(args.on, "--on") or datetime.now(SHANGHAI).date()
        _out([i.__dict__ for i in inspections.checklist(book, on, args.category)])
        return 0
    app = _app(args)
    now = app.clock.wall_ms()
    with app.db.session() as s:
        if args.action == "start":
            insp = inspections.start_inspection(
                s, app.rules, organisation=args.org, organisation_name=args.org_name, use=args.use,
                party=args.party, site=args.site, categories=args.category,
                on=_day(args.on, "--on") or _today(app), inspector=args.by, now_ms=now)
            iid = insp.id
        elif args.action == "result":
            photo = None
            if args.photo:
                p = Path(args.photo)
                if p.stat().st_size > inspections.MAX_PHOTO_BYTES:
                    raise ViisError(f"{p}: over {inspections.MAX_PHOTO_BYTES} bytes")
                photo = p.read_bytes()
            inspections.record_result(s, args.id, args.seq, result=args.result, note=args.note or "",
                                      photo=photo, actor=args.by, now_ms=now)
            iid = args.id
        elif args.action == "complete":
            iid = inspections.complete_inspection(s, args.id, actor=args.by, now_ms=now).id
        elif args.action == "findings":
            _out([f.as_dict() for f in inspections.inspection_findings(s, app.rules, args.id)])
            return 0
        else:  # show
            iid = args.id
        _out(inspections.inspection_view(inspections.get_inspection(s, iid), inspections.items_of(s, iid)))
    return 0


def add_verbs(comp, verb) -> None:
    """Add ``case`` and ``inspect`` under ``viis compliance``."""
    case = verb("case", cmd_case, "police cases: open, order, reinspect, decide, appeal, close", comp)
    cs = case.add_subparsers(dest="action", required=True)

    def act(sub, name: str, help: str, *, by: bool = True, ident: bool = True) -> argparse.ArgumentParser:
        a = sub.add_parser(name, help=help)
        if ident:
            a.add_argument("id", type=int)
        if by:
            a.add_argument("--by", required=True, help="who acts (recorded)")
        return a

    a = act(cs, "open", "open a case from a finding of a snapshot", ident=False)
    a.add_argument("snapshot")
    a.add_argument("--on", required=True)
    a.add_argument("--finding", required=True, help="the finding's stable id")
    a = act(cs, "list", "list cases", by=False, ident=False)
    a.add_argument("--state")
    act(cs, "show", "a case and its history", by=False)
    a = act(cs, "order", "order to rectify by a deadline")
    a.add_argument("--rectify-by", required=True)
    a.add_argument("--ref")
    a = act(cs, "reinspect", "record the re-inspection")
    a.add_argument("result", choices=("rectified", "not-rectified"))
    a.add_argument("--on")
    a.add_argument("--note")
    a = act(cs, "decide", "penalty decision: an amount within the cited range")
    a.add_argument("--penalty", required=True)
    a.add_argument("--party", required=True, choices=("individual", "unit", "responsible_person"))
    a.add_argument("--amount", type=int)
    a.add_argument("--served-on")
    a.add_argument("--ref")
    a = act(cs, "appeal", "record a reconsideration or a suit (Q32)")
    a.add_argument("--kind", required=True, choices=("reconsideration", "litigation"))
    a.add_argument("--filed-on", required=True)
    a.add_argument("--after", help="suit after a reconsideration decided on this day")
    a = act(cs, "close", "close the case")
    a.add_argument("--outcome", required=True)

    ins = verb("inspect", cmd_inspect, "inspections: checklist, start, result, complete, findings", comp)
    ii = ins.add_subparsers(dest="action", required=True)
    a = act(ii, "checklist", "the checklist for site categories (no database)", by=False, ident=False)
    a.add_argument("--category", action="append", required=True, help="pack:category (repeatable)")
    a.add_argument("--on")
    a = act(ii, "start", "start an inspection of a site", ident=False)
    a.add_argument("--org", required=True)
    a.add_argument("--org-name", required=True)
    a.add_argument("--use", required=True, choices=("business", "non_business"))
    a.add_argument("--party", default="unit", choices=("unit", "individual"))
    a.add_argument("--site", required=True)
    a.add_argument("--category", action="append", required=True)
    a.add_argument("--on")
    a = act(ii, "result", "record an item's result")
    a.add_argument("seq", type=int)
    a.add_argument("result", choices=("pass", "fail", "not_applicable"))
    a.add_argument("--note")
    a.add_argument("--photo", help="JPEG or PNG file")
    act(ii, "complete", "complete the inspection")
    act(ii, "findings", "findings raised by failed items", by=False)
    act(ii, "show", "an inspection and its items", by=False)
    add_unit_verbs(comp, verb)


# --- the unit side: to-do list and filings (Q16, N14.1) ------------------------------------------

def cmd_todo(args) -> int:
    """What the unit must still do and by when; CSV with --csv."""
    from viis.compliance import reports

    app = _app(args)
    on = _day(args.on, "--on") or _today(app)
    with app.db.session() as s:
        items = reports.unit_todo(s, app.rules, args.unit, on, app.clock.wall_ms())
    if args.csv:
        print(reports.to_csv(items, reports.TODO_COLUMNS), end="")
    else:
        _out(items)
    return 0


def cmd_filing(args) -> int:
    from viis.compliance import filings
    from viis.compliance.pdf import filing_pdf
    from viis.core.signing import Signer

    app = _app(args)
    now = app.clock.wall_ms()
    today = _today(app)
    with app.db.session() as s:
        if args.action == "create":
            f = filings.create_filing(s, app.rules, Signer.for_data_dir(app.settings.data_dir, "filing"),
                                      system_code=args.system, kind=args.kind, today=today, actor=args.by,
                                      now_ms=now)
        elif args.action == "submit":
            f = filings.submit(s, app.rules, args.id, channel=args.channel, today=today, now_ms=now)
        else:
            f = filings.get(s, args.id)
            if args.action == "package":
                Path(args.out).write_text(json.dumps(f.package, ensure_ascii=False, indent=2), encoding="utf-8")
            elif args.action == "pdf":
                Path(args.out).write_bytes(filing_pdf(
                    f.package, state=f.state, filed_on=f.filed_on.isoformat() if f.filed_on else None,
                    channel=f.channel, sha256=f.contents_sha256))
        _out(filings.filing_view(f))
    return 0


def add_unit_verbs(comp, verb) -> None:
    """``viis compliance todo`` and ``viis compliance filing create|submit|package|pdf``."""
    t = verb("todo", cmd_todo, "the unit's to-do list with deadlines", comp)
    t.add_argument("--unit", required=True)
    t.add_argument("--on")
    t.add_argument("--csv", action="store_true")
    f = verb("filing", cmd_filing, "filings: create, submit, package (signed JSON), pdf", comp)
    fs = f.add_subparsers(dest="action", required=True)
    a = fs.add_parser("create", help="generate and sign a filing from the live register")
    a.add_argument("--system", required=True)
    a.add_argument("--kind", required=True, help="a filing rule id: acceptance, in_use, change, ...")
    a.add_argument("--by", required=True)
    a = fs.add_parser("submit", help="record that the filing left by a channel (Q16.3)")
    a.add_argument("id", type=int)
    a.add_argument("--channel", required=True)
    for name in ("package", "pdf"):
        a = fs.add_parser(name, help=f"write the filing's {name} to a file")
        a.add_argument("id", type=int)
        a.add_argument("--out", required=True)
