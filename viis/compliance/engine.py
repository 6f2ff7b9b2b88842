"""Compliance engine: a snapshot, a date and the rule packs in force → findings.

Each check maps a kind of breach to the requirement ids it breaches; the numbers (days,
hours, minimums), the forbidden places, the filing duties and the penalties with their fine
ranges come from the packs (invariant 4). A finding cites every penalty of every pack in force
that punishes one of its requirement ids (``RuleBook.penalties_for_any``), minus the ones a
check knows do not fit the kind of breach (documented per check in docs/design/compliance.md).

Deterministic: the result depends only on (snapshot, date, packs, settings). Calendar days are
Asia/Shanghai; an instant is compared with the end of the evaluation day in Shanghai.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from viis.compliance.findings import (
    BREACH,
    REMINDER,
    Citation,
    Evidence,
    Finding,
    FineRange,
    finding_id,
)
from viis.compliance.rulepack import FilingRule, RuleBook
from viis.compliance.snapshot import Camera, Site, Snapshot, SnapshotError, System
from viis.core.clock import SHANGHAI


@dataclass(frozen=True)
class EngineSettings:
    """VIIS settings, not law: the law gives no number for these."""
    # Proposed rectification period (限期改正): the police order sets the real one.
    rectify_days: int = 30
    # A deadline this many days ahead (or fewer) yields a reminder.
    remind_days: int = 14


RECTIFY_NOTE = ("rectify_by is a proposal (VIIS setting rectify_days); the texts leave the "
                "period of an order to rectify (责令限期改正) to the police")


def _day(t: datetime) -> date:
    return t.astimezone(SHANGHAI).date()


class Evaluator:
    """The packs in force on one date, prepared once; evaluates any number of snapshots."""

    def __init__(self, book: RuleBook, on: date, settings: EngineSettings | None = None) -> None:
        self.book = book
        self.on = on
        self.settings = settings or EngineSettings()
        self.end_of_day = datetime(on.year, on.month, on.day, tzinfo=SHANGHAI) + timedelta(days=1)
        packs = book.in_force(on)
        self.packs = packs
        self.pack_by_id = {p.id: p for p in book.packs}
        self.reqs_in_force = frozenset(r for p in packs for r in p.requirements)
        self.forbidden = book.forbidden_locations(on)
        self.vocabulary = frozenset(lt.id for p in book.packs for lt in p.location_types)
        self.categories = {f"{p.id}:{c.id}": c for p in packs for c in p.site_categories}
        self.known_categories = frozenset(f"{p.id}:{c.id}" for p in book.packs for c in p.site_categories)
        rules = [p.retention for p in packs if p.retention]
        self.retention_min = max((r.min_days for r in rules), default=None)
        self.retention_min_articles = tuple(a for r in rules for a in r.articles)
        self.retention_max = book.retention_default_max(on)
        self.retention_max_articles = tuple(a for r in rules if r.default_max_days for a in r.articles)
        self.tamper = book.tamper_articles(on)
        self.fault_repair = book.limit("fault_repair", on)
        self.privacy_check = book.limit("privacy_check_interval", on)
        self.forbidden_ids = frozenset(lt.id for p in book.packs for lt in p.location_types if lt.forbidden)
        self.filings = book.filing_rules(on)
        self._cite_cache: dict[tuple, tuple[Citation, ...]] = {}

    # --- citations -------------------------------------------------------------------------

    def citations(self, reqs: tuple[str, ...], use: str, party: str,
                  exclude: frozenset[str] = frozenset(),
                  skip_measure: str | None = None) -> tuple[Citation, ...]:
        key = (reqs, use, party, exclude, skip_measure)
        got = self._cite_cache.get(key)
        if got is not None:
            return got
        out = []
        for x in self.book.penalties_for_any(reqs, self.on):
            if x.id in exclude or (skip_measure and skip_measure in x.measures):
                continue
            parties = {"any", party} | ({"responsible_person"} if party == "unit" else set())
            fines = tuple(FineRange(f.party, f.use, f.min, f.max, f.when, x.currency)
                          for f in x.fines if f.party in parties and f.use in ("any", use))
            out.append(Citation(x.id, x.article, x.pack, x.measures, fines, x.note))
        got = tuple(out)
        self._cite_cache[key] = got
        return got

    def requirement_citations(self, req: str, use: str, party: str) -> tuple[Citation, ...]:
        """The citations for a breach of one requirement established outside the checks (a
        failed inspection item): the same penalties and ranges a check citing ``req`` gives,
        with the same exclusion for filing duties (an order to remove sanctions unlawful
        building, not a missing filing). N30 is kept: an inspector's finding under article 23
        may be the moving or removing of cameras it punishes."""
        filing = any(req in f.articles for f in self.filings)
        return self.citations((req,), use, party,
                              skip_measure="order_remove_by_deadline" if filing else None)

    # --- one snapshot ----------------------------------------------------------------------

    def evaluate(self, snap: Snapshot) -> list[Finding]:
        return _Run(self, snap).run()


class _Run:
    def __init__(self, ev: Evaluator, snap: Snapshot) -> None:
        self.ev = ev
        self.s = snap
        self.on = ev.on
        self.org = snap.organisation
        self.report_day = min(_day(snap.generated_at), ev.on)
        self.out: list[Finding] = []
        self.sites = {x.id: x for x in snap.sites}
        self.systems = {x.id: x for x in snap.systems}
        self._exempt: dict[str, frozenset[str]] = {}
        for i, site in enumerate(snap.sites):
            for j, c in enumerate(site.categories):
                if c not in ev.known_categories:
                    raise SnapshotError(f"unknown site category {c!r}; the packs define "
                                        f"{', '.join(sorted(ev.known_categories))}",
                                        f"sites[{i}].categories[{j}]")

    # helpers -------------------------------------------------------------------------------
    def exempt(self, site: Site) -> frozenset[str]:
        """Duties lifted at this site (N9¶2): exempt in every category the site has in that pack."""
        got = self._exempt.get(site.id)
        if got is None:
            by_pack: dict[str, set[str] | None] = {}
            for c in site.categories:
                cat = self.ev.categories.get(c)
                if cat is None:
                    continue
                cur = by_pack.get(cat.pack)
                by_pack[cat.pack] = set(cat.exempt) if cur is None else cur & set(cat.exempt)
            got = frozenset(a for v in by_pack.values() if v for a in v)
            self._exempt[site.id] = got
        return got

    def unit_exempt(self) -> frozenset[str]:
        sets = [self.exempt(x) for x in self.s.sites]
        return frozenset.intersection(*sets) if sets else frozenset()

    def reqs(self, ids: Iterable[str], exempt: frozenset[str] = frozenset()) -> tuple[str, ...]:
        seen: list[str] = []
        for a in ids:
            if a in self.ev.reqs_in_force and a not in exempt and a not in seen:
                seen.append(a)
        return tuple(sorted(seen))

    def add(self, kind: str, check: str, subject: str, reqs: tuple[str, ...],
            evidence: list[Evidence], detected: date, explanation: str, clears: str, *,
            due: date | None = None, rectify: bool = True, exclude: frozenset[str] = frozenset(),
            skip_measure: str | None = None, defaults: tuple[str, ...] = ()) -> None:
        if not reqs:
            return  # nothing in force (or everything exempt) makes this a duty here
        cites = self.ev.citations(reqs, self.org.use, self.org.party, exclude, skip_measure)
        rectify_by = None
        if kind == BREACH and rectify:
            rectify_by = detected + timedelta(days=self.ev.settings.rectify_days)
            defaults = defaults + (RECTIFY_NOTE,)
        self.out.append(Finding(
            finding_id(self.org.id, check, subject), kind, check, subject, reqs, cites,
            tuple(evidence), detected, due, rectify_by, explanation, clears, defaults))

    def active(self, system: System) -> bool:
        return system.removed_on is None or system.removed_on > self.on

    # the run -------------------------------------------------------------------------------
    def run(self) -> list[Finding]:
        for system in self.s.systems:
            self.filings(system)
            self.contractors(system)
            self.authority(system)
        self.mandatory_sites()
        self.privacy_checks()
        self.cameras()
        self.zones()
        self.activity()
        self.out.sort(key=Finding.sort_key)
        return self.out

    # --- filings (Q16.1, Q16.2, Q35.1, N14.1) -------------------------------------------------
    def filings(self, system: System) -> None:
        ev = self.ev
        site = self.sites[system.site]
        exempt = self.exempt(site)
        start = system.in_use_on or system.accepted_on
        mine = [f for f in self.s.filings if f.system == system.id and f.filed_on <= self.on]
        anchors = {r.pack: r for r in ev.filings if r.trigger == "anchor"}
        for rule in ev.filings:
            duty = self.reqs((a for a in rule.articles if ev.book.penalties_for(a, self.on)), exempt)
            if not duty:
                continue
            kinds = {rule.id} | {r.id for r in ev.filings if r.pack == rule.pack and r.articles == rule.articles
                                 and r.trigger in ("acceptance", "in_use", "anchor")
                                 and rule.trigger in ("acceptance", "in_use", "anchor")}
            anchor = anchors.get(rule.pack)
            events: list[tuple[str, date | None]] = []
            if rule.trigger == "anchor":
                if start is not None and start < rule.anchor and (system.removed_on is None
                                                                   or system.removed_on > rule.anchor):
                    events.append(("", None))
            elif rule.trigger in ("acceptance", "in_use"):
                event = system.accepted_on if rule.trigger == "acceptance" else system.in_use_on
                if event is not None and not (anchor and start is not None and start < anchor.anchor):
                    events.append(("", event))
            elif rule.trigger == "removal":
                if system.removed_on is not None:
                    events.append(("", system.removed_on))
            elif rule.trigger == "change":
                eff = ev.pack_by_id[rule.pack].effective_from
                for i, ch in enumerate(system.changes):
                    if ch.on >= eff and not (start is None or ch.on < start):
                        events.append((f"#{i}", ch.on))
            for suffix, event in events:
                self.filing(system, rule, duty, kinds, event, suffix, mine)

    def filing(self, system: System, rule: FilingRule, duty: tuple[str, ...], kinds: set[str],
               event: date | None, suffix: str, mine: list) -> None:
        due = rule.due(event)
        cands = [f for f in mine if f.kind in kinds and (rule.trigger != "change" or f.filed_on >= event)]
        first = min(cands, key=lambda f: (f.filed_on, f.id)) if cands else None
        subject = f"system:{system.id}{suffix}"
        check = f"filing.{rule.pack}.{rule.id}"
        what = {"acceptance": "acceptance", "in_use": "going into use", "removal": "removal",
                "change": "change", "anchor": f"the fixed date {rule.anchor}"}[rule.trigger]
        ev_list = [Evidence(f"system:{system.id}", {"acceptance": "accepted_on", "in_use": "in_use_on",
                                                    "removal": "removed_on", "change": f"changes[{suffix[1:]}].on",
                                                    "anchor": "in_use_on"}[rule.trigger],
                            event if event else (system.in_use_on or system.accepted_on))]
        defaults = (rule.note,) if rule.source == "default" else ()
        base = (f"{', '.join(rule.articles)}: file with the {rule.authority.replace('_', ' ')} within "
                f"{rule.days} days of {what} ({event or rule.anchor}); last day {due}")
        # Orders to remove (Q27 for Q35.1) sanction unlawful building, not a missing filing.
        skip = "order_remove_by_deadline"
        if first is not None and first.filed_on <= due:
            return
        if first is not None:
            self.add(BREACH, check + ".late", subject, duty,
                     ev_list + [Evidence(f"filing:{first.id}", "filed_on", first.filed_on)],
                     due + timedelta(days=1),
                     f"{base}; filed {first.filed_on}, {(first.filed_on - due).days} day(s) late.",
                     "Nothing now: the filing is on record; the late filing stays on the record.",
                     due=due, rectify=False, skip_measure=skip, defaults=defaults)
        elif self.on > due:
            self.add(BREACH, check, subject, duty, ev_list + [Evidence(f"system:{system.id}",
                                                                       "filings", f"no {'/'.join(sorted(kinds))} filing")],
                     due + timedelta(days=1),
                     f"{base}; no filing of kind {'/'.join(sorted(kinds))} is on record "
                     f"({(self.on - due).days} day(s) overdue).",
                     f"Record a filing of kind {rule.id!r} for system {system.id} with the "
                     f"{rule.authority.replace('_', ' ')}.", due=due, skip_measure=skip, defaults=defaults)
        elif (due - self.on).days <= self.ev.settings.remind_days:
            self.add(REMINDER, check + ".due", subject, duty, ev_list, self.on,
                     f"{base}; {(due - self.on).days} day(s) left.",
                     f"Record a filing of kind {rule.id!r} on or before {due}.", due=due,
                     skip_measure=skip, defaults=defaults)

    # --- contractors (Q14.1) --------------------------------------------------------------------
    def contractors(self, system: System) -> None:
        for i, c in enumerate(system.contractors):
            maint = c.role == "maintainer"
            if maint and not self.active(system):
                continue
            when = self.on if maint else (system.accepted_on or system.in_use_on or self.on)
            subject = f"system:{system.id}.contractors[{i}]"
            rec = f"system:{system.id}.contractors[{i}]"
            if not c.qualification:
                self.add(BREACH, "contractor_unqualified", subject, self.reqs(("Q14.1",)),
                         [Evidence(rec, "qualification", "")], min(when, self.on),
                         f"Q14.1: the {c.role} {c.name!r} has no qualification on record.",
                         "Record the contractor's qualification (certificate and expiry), or "
                         "replace the contractor with a qualified one.")
            elif c.qualification_expires is not None and c.qualification_expires < when:
                self.add(BREACH, "contractor_unqualified", subject, self.reqs(("Q14.1",)),
                         [Evidence(rec, "qualification_expires", c.qualification_expires)],
                         c.qualification_expires + timedelta(days=1),
                         f"Q14.1: the {c.role} {c.name!r} qualification expired on "
                         f"{c.qualification_expires}, before {'today' if maint else 'the work was accepted'} ({when}).",
                         "Record a renewed qualification, or a qualified contractor.")
            elif (maint and c.qualification_expires is not None
                  and (c.qualification_expires - self.on).days <= self.ev.settings.remind_days):
                self.add(REMINDER, "contractor_qualification_expiring", subject, self.reqs(("Q14.1",)),
                         [Evidence(rec, "qualification_expires", c.qualification_expires)], self.on,
                         f"Q14.1: the maintainer {c.name!r} qualification expires on {c.qualification_expires}.",
                         "Record the renewed qualification before it expires.",
                         due=c.qualification_expires)

    # --- authority to build (Q8.3 → Q27; N7.3, N9.1 → N26) ------------------------------------------
    def authority(self, system: System) -> None:
        """Q8.3: nobody without authority builds in a public place; N7.3 / N9.1: only the
        management unit (N7 places) or the security duty holder (other public places) installs.
        The national requirement is the one the site's national category names."""
        if system.authorised or not self.active(system):
            return
        site = self.sites[system.site]
        if not site.public_place:
            return
        arts = ["Q8.3"]
        for c in site.categories:
            cat = self.ev.categories.get(c)
            if cat is not None:
                arts += [a for a in cat.articles if a in ("N7.3", "N9.1")]
        self.add(BREACH, "unauthorised_installation", f"system:{system.id}", self.reqs(arts),
                 [Evidence(f"system:{system.id}", "authorised", False)],
                 system.in_use_on or system.accepted_on or self.report_day,
                 f"{', '.join(self.reqs(arts))}: the system at the public place {site.name!r} was "
                 "built by a unit that is not entitled to build there (not the managing unit or "
                 "the security duty holder, and no authority on record).",
                 "Remove the system and delete its footage (Q27, N26), or record the authority "
                 "that entitles the unit (authorised = true).")

    # --- routine checks of privacy rooms (N8.2 → N27.2) ------------------------------------------
    def privacy_checks(self) -> None:
        lim = self.ev.privacy_check
        if lim is None:
            return
        days = int(lim.value)
        note = (f"{lim.name} = {lim.value} {lim.unit}: {lim.note}",) if lim.source == "default" else ()
        for i, site in enumerate(self.s.sites):
            if not site.privacy_areas:
                continue
            for j, a in enumerate(site.privacy_areas):
                if a not in self.ev.forbidden_ids:
                    raise SnapshotError(f"{a!r} is not a location type where cameras are forbidden; "
                                        f"the packs name {', '.join(sorted(self.ev.forbidden_ids))}",
                                        f"sites[{i}].privacy_areas[{j}]")
            last = site.privacy_checked_on
            due = None if last is None else last + timedelta(days=days)
            rec = f"site:{site.id}"
            if due is not None and due >= self.on:
                if (due - self.on).days <= self.ev.settings.remind_days:
                    self.add(REMINDER, "privacy_check_due", rec, self.reqs(lim.articles),
                             [Evidence(rec, "privacy_checked_on", last)], self.on,
                             f"{', '.join(lim.articles)}: the next routine check of the privacy areas "
                             f"({', '.join(site.privacy_areas)}) for cameras is due by {due}.",
                             f"Check them and record privacy_checked_on on or before {due}.",
                             due=due, defaults=note)
                continue
            self.add(BREACH, "privacy_check_overdue", rec, self.reqs(lim.articles),
                     [Evidence(rec, "privacy_areas", list(site.privacy_areas)),
                      Evidence(rec, "privacy_checked_on", last)],
                     due + timedelta(days=1) if due else self.report_day,
                     f"{', '.join(lim.articles)}: the unit managing {', '.join(site.privacy_areas)} must "
                     f"check them routinely for cameras and report any found; "
                     + (f"the last check was {last}, more than {days} days ago." if last
                        else "no check is on record."),
                     "Check the areas, report any device found to the police, and record the "
                     "day (privacy_checked_on).", due=due, defaults=note)

    # --- zones near military and classified units (Q7.3, N10.1 → N28) ----------------------------
    def zones(self) -> None:
        if not self.s.zones:
            return
        consent = {(c.zone, c.system): c for c in sorted(self.s.consents, key=lambda c: c.on, reverse=True)}
        for cam in self.s.cameras:
            if cam.lat is None or cam.lon is None:
                continue
            system = self.systems[cam.system]
            if not self.active(system):
                continue
            start = cam.installed_on or system.in_use_on or system.accepted_on or self.report_day
            for z in self.s.zones:
                dist = _metres(cam.lat, cam.lon, z.lat, z.lon)
                if dist > z.radius_m:
                    continue
                c = consent.get((z.id, system.id))
                earliest = min((x.on for x in self.s.consents if x.zone == z.id and x.system == system.id),
                               default=None)
                if earliest is not None and earliest <= start:
                    continue
                arts = ("N10.1", "Q7.3") if z.kind == "military" else ("N10.1",)
                rec = f"camera:{cam.id}"
                evid = [Evidence(rec, "distance_m", round(dist, 1)), Evidence(f"zone:{z.id}", "radius_m", z.radius_m)]
                if c is not None:
                    evid.append(Evidence(f"consent:{z.id}/{system.id}", "on", earliest))
                self.add(BREACH, "zone_without_consent", f"{rec}@{z.id}", self.reqs(arts), evid, start,
                         f"{', '.join(self.reqs(arts))}: the camera is {dist:.0f} m from the {z.kind.replace('_', ' ')} "
                         f"zone {z.name!r} (radius {z.radius_m:.0f} m) and no prior consent"
                         + (" or opinion" if z.kind == "military" else "")
                         + f" of its unit is on record before {start}"
                         + (f" (the consent on record is dated {earliest})." if earliest else "."),
                         "Without prior consent the camera must go (N28: confiscation and deletion); "
                         "record the consent document if it was given before installation.")
                break

    # --- mandatory places (Q7.1, Q8.2 → Q26) -----------------------------------------------------
    def mandatory_sites(self) -> None:
        running = {x.site for x in self.s.systems
                   if self.active(x) and x.in_use_on is not None and x.in_use_on <= self.on}
        for site in self.s.sites:
            if site.id in running:
                continue
            for c in site.categories:
                cat = self.ev.categories.get(c)
                if cat is None or not cat.must_install or cat.builder == "government":
                    continue
                self.add(BREACH, "mandatory_site_without_system", f"site:{site.id}",
                         self.reqs(cat.articles), [Evidence(f"site:{site.id}", "categories", c)],
                         self.report_day,
                         f"{', '.join(cat.articles)}: a place of category {cat.item} ({cat.title}) must "
                         f"have a system, and no system of this site is in use.",
                         "Put a system into use at the site (in_use_on on or before the evaluation day).")
                break

    # --- cameras ---------------------------------------------------------------------------------
    def cameras(self) -> None:
        ev = self.ev
        for i, cam in enumerate(self.s.cameras):
            system = self.systems[cam.system]
            if not self.active(system):
                continue
            if cam.location_type not in ev.vocabulary:
                raise SnapshotError(f"unknown location type {cam.location_type!r}; the packs define "
                                    f"{', '.join(sorted(ev.vocabulary))}", f"cameras[{i}].location_type")
            site = self.sites[system.site]
            exempt = self.exempt(site)
            since = cam.installed_on or self.report_day
            rec = f"camera:{cam.id}"
            fl = ev.forbidden.get(cam.location_type)
            if fl is not None:
                evid = [Evidence(rec, "location_type", cam.location_type)]
                if cam.audio:
                    evid.append(Evidence(rec, "audio", True))
                self.add(BREACH, "forbidden_location", rec, self.reqs(fl.articles), evid, since,
                         f"{', '.join(fl.articles)}: a camera is forbidden in a {' / '.join(fl.titles)}"
                         f"{' (and it captures audio)' if cam.audio else ''}.",
                         "Remove the camera (and its footage, N27) and record the removal; a removal "
                         "filing follows (Q16.2).")
            public = site.public_place if cam.public_place is None else cam.public_place
            if public and not cam.signage:
                self.add(BREACH, "signage_missing", rec, self.reqs(("Q17.1", "N13.1"), exempt),
                         [Evidence(rec, "signage.present", False)], since,
                         "Q17.1, N13.1: a camera in a public place must carry a visible, conspicuous sign.",
                         "Put up the sign and record it (signage.present, with a photo).")
            if ev.retention_min is not None and cam.retention_days < ev.retention_min:
                self.add(BREACH, "retention_below_minimum", rec,
                         self.reqs(ev.retention_min_articles, exempt),
                         [Evidence(rec, "retention_days", cam.retention_days)], since,
                         f"{', '.join(ev.retention_min_articles)}: footage must be kept at least "
                         f"{ev.retention_min} days; this camera keeps {cam.retention_days}.",
                         f"Set retention_days to {ev.retention_min} or more.")
            if (ev.retention_max is not None and cam.retention_days > ev.retention_max
                    and not cam.retention_basis):
                self.add(BREACH, "retention_past_default", rec,
                         self.reqs(ev.retention_max_articles, exempt),
                         [Evidence(rec, "retention_days", cam.retention_days),
                          Evidence(rec, "retention_basis", "")], since,
                         f"{', '.join(ev.retention_max_articles)}: after {ev.retention_max} days footage "
                         f"whose purpose is served must be deleted; this camera is set to keep "
                         f"{cam.retention_days} days with no legal basis recorded.",
                         f"Set retention_days to {ev.retention_max}, or record the legal basis "
                         f"(retention_basis) that requires keeping it longer.")

    # --- activity ----------------------------------------------------------------------------------
    def activity(self) -> None:
        ev, a = self.ev, self.s.activity
        cams = {c.id: c for c in self.s.cameras}

        def cam_ctx(cid: str) -> tuple[Camera, frozenset[str]] | None:
            cam = cams[cid]
            system = self.systems[cam.system]
            if not self.active(system):
                return None
            return cam, self.exempt(self.sites[system.site])

        for r in a.retention:
            ctx = cam_ctx(r.camera)
            if ctx is None:
                continue
            cam, exempt = ctx
            rec = f"activity.retention:{r.camera}"
            mn = ev.retention_min
            if mn is not None and (r.removed_in_retention > 0
                                   or (r.kept_days < mn and r.recording_days > r.kept_days)):
                evid = [Evidence(rec, "kept_days", r.kept_days),
                        Evidence(rec, "recording_days", r.recording_days)]
                if r.removed_in_retention:
                    evid.append(Evidence(rec, "removed_in_retention", r.removed_in_retention))
                self.add(BREACH, "footage_cut_short", f"camera:{r.camera}",
                         self.reqs(ev.retention_min_articles, exempt), evid, self.report_day,
                         f"{', '.join(ev.retention_min_articles)}: footage must be kept {mn} days; the "
                         f"camera has recorded {r.recording_days} days but its oldest footage is "
                         f"{r.kept_days} days old"
                         + (f" and {r.removed_in_retention} segment(s) were removed within retention."
                            if r.removed_in_retention else "."),
                         f"Keep footage {mn} days from now on (retention_days ≥ {mn}, no early removal); "
                         f"the finding clears when kept_days reaches {mn} with nothing removed early.")
            mx = ev.retention_max
            if mx is not None and r.kept_days > mx and not (r.basis or cam.retention_basis):
                self.add(BREACH, "footage_kept_past_default", f"camera:{r.camera}",
                         self.reqs(ev.retention_max_articles, exempt),
                         [Evidence(rec, "kept_days", r.kept_days), Evidence(rec, "basis", "")],
                         self.report_day,
                         f"{', '.join(ev.retention_max_articles)}: footage older than {mx} days whose "
                         f"purpose is served must be deleted; the oldest kept is {r.kept_days} days old "
                         f"and no hold or legal basis is recorded.",
                         "Let the retention sweeper remove it, or record the hold / legal basis.")

        for r in a.integrity:
            if r.ok or cam_ctx(r.camera) is None:
                continue
            rec = f"activity.integrity:{r.camera}"
            kinds = sorted({p.kind for p in r.problems}) or ["unverified"]
            # N30 punishes only article 23 item (2) (moving/removing cameras), not data
            # deletion or alteration (pack note on N30).
            self.add(BREACH, "integrity_failure", f"camera:{r.camera}", self.reqs(ev.tamper),
                     [Evidence(rec, "ok", False), Evidence(rec, "problems", kinds),
                      Evidence(rec, "verified_at", r.verified_at)], _day(r.verified_at),
                     f"{', '.join(ev.tamper)}: original footage within retention must stay intact; "
                     f"verification at {r.verified_at.isoformat()} found: {', '.join(kinds)}.",
                     "Establish the cause, restore from the write-once copy where possible, and "
                     "re-verify; a clean verification (ok = true) clears it.",
                     exclude=frozenset({"N30"}))

        # Obstruction (Q18.1, Q18.2 → Q28.3; N23.1 item 2 → N30 for cameras of article 7 places):
        # an occlusion fault open on the evaluation day.
        for f in a.faults:
            if f.kind not in OBSTRUCTION_KINDS or f.first_seen >= ev.end_of_day:
                continue
            if f.repaired_at is not None and f.repaired_at < ev.end_of_day:
                continue
            ctx = cam_ctx(f.camera)
            if ctx is None:
                continue
            cam, exempt = ctx
            site = self.sites[self.systems[cam.system].site]
            arts = ["Q18.1"] + (["Q18.2"] if f.cause == "facility" else [])
            if any("N7.1" in ev.categories[c].articles for c in site.categories if c in ev.categories):
                arts.append("N23.1")
            rec = f"activity.faults:{f.id}"
            self.add(BREACH, "camera_obstructed", f"fault:{f.id}", self.reqs(arts, exempt),
                     [Evidence(rec, "kind", f.kind), Evidence(rec, "first_seen", f.first_seen),
                      Evidence(rec, "cause", f.cause)], _day(f.first_seen),
                     f"{', '.join(self.reqs(arts, exempt))}: the view of camera {f.camera} is blocked "
                     f"since {f.first_seen.isoformat()}"
                     + (" by a facility (advert, pipeline, equipment)." if f.cause == "facility" else "."),
                     "Have the obstruction removed and the fault cleared (repaired_at).",
                     exclude=frozenset({"N31"}))

        lim = ev.fault_repair
        if lim is not None:
            hours = timedelta(hours=lim.value)
            note = (f"{lim.name} = {lim.value} {lim.unit}: {lim.note}",) if lim.source == "default" else ()
            for f in a.faults:
                if f.repaired_at is not None and f.repaired_at < ev.end_of_day:
                    continue
                if cam_ctx(f.camera) is None:
                    continue
                deadline = f.first_seen + hours
                rec = f"activity.faults:{f.id}"
                evid = [Evidence(rec, "first_seen", f.first_seen), Evidence(rec, "kind", f.kind),
                        Evidence(rec, "emergency_measure", f.emergency_measure)]
                if deadline < ev.end_of_day and not f.emergency_measure:
                    self.add(BREACH, "fault_unrepaired", f"fault:{f.id}", self.reqs(lim.articles), evid,
                             _day(deadline),
                             f"{', '.join(lim.articles)}: fault {f.kind!r} on camera {f.camera} first seen "
                             f"{f.first_seen.isoformat()} is not repaired after {lim.value} {lim.unit} and "
                             f"no temporary emergency measure is recorded.",
                             "Repair the fault (repaired_at) or record the emergency measure that keeps "
                             "collection going.", due=_day(deadline), defaults=note)
                elif not f.emergency_measure and (_day(deadline) - self.on).days <= ev.settings.remind_days:
                    self.add(REMINDER, "fault_repair_due", f"fault:{f.id}", self.reqs(lim.articles), evid,
                             self.on,
                             f"{', '.join(lim.articles)}: fault {f.kind!r} on camera {f.camera} must be "
                             f"repaired (or an emergency measure recorded) by {deadline.astimezone(SHANGHAI).isoformat()}.",
                             "Repair it or record the emergency measure before then.",
                             due=_day(deadline), defaults=note)

        uex = self.unit_exempt()
        if a.duty_log_kept is False:
            self.add(BREACH, "duty_log_missing", f"organisation:{self.org.id}", self.reqs(("Q19.1",)),
                     [Evidence("activity.duty", "log_kept", False)], self.report_day,
                     "Q19.1: the unit must keep duty monitoring and its log.",
                     "Keep the duty log (log_kept = true in the next report).")
        staff = {x.id: x for x in a.staff}
        untrained: dict[str, list[date]] = {}
        for sh in a.shifts:
            st = staff[sh.staff]
            if sh.on <= self.on and (st.trained_on is None or st.trained_on > sh.on):
                untrained.setdefault(sh.staff, []).append(sh.on)
        for sid, days in untrained.items():
            st = staff[sid]
            days.sort()
            self.add(BREACH, "untrained_on_duty", f"staff:{sid}", self.reqs(("Q19.2", "N16.1"), uex),
                     [Evidence(f"activity.duty.staff:{sid}", "trained_on", st.trained_on),
                      Evidence("activity.duty.shifts", f"staff:{sid}", [d.isoformat() for d in days])],
                     days[0],
                     f"Q19.2, N16.1: monitoring staff must be trained before duty; {st.name!r} was on "
                     f"duty on {len(days)} day(s) from {days[0]} "
                     + (f"before training on {st.trained_on}." if st.trained_on else "with no training on record."),
                     "Train the person and record trained_on; no duty before it.")

        for r in a.retrievals:
            day = _day(r.at)
            if day > self.on:
                continue
            rec = f"activity.retrievals:{r.id}"
            subject = f"retrieval:{r.id}"
            if not r.approved and r.requester_kind in ("police", "department", "individual", "other"):
                if r.requester_kind in ("police", "department"):
                    arts = ("Q23.1" if r.requester_kind == "police" else "Q23.2", "Q20.5", "N20.1")
                    why = ("Q23.1/Q23.2, N20.1: a retrieval by the authorities needs the approval of the "
                           "city or district bureau head; Q20.5: the unit may not provide footage "
                           "outside that procedure.")
                elif r.requester_kind == "individual":
                    arts = ("N21.1", "Q20.5")
                    why = ("N21.1: a person concerned may view related footage only with the operator's "
                           "consent; Q20.5: footage may not be provided beyond the measures.")
                else:
                    arts = ("Q20.5", "N23.1")
                    why = ("Q20.5, N23.1: footage may not be provided to anyone outside the lawful "
                           "procedures.")
                self.add(BREACH, "retrieval_unapproved", subject, self.reqs(arts),
                         [Evidence(rec, "approved", False), Evidence(rec, "requester_kind", r.requester_kind),
                          Evidence(rec, "requester_unit", r.requester_unit)], day, why,
                         "Record the approval (document and approver) if one existed; otherwise "
                         "report the disclosure and stop further provision.",
                         exclude=frozenset({"N30"}))
            if r.requester_kind in ("police", "department", "emergency") and (
                    r.staff_count < 2 or not r.ids_shown or (r.approved and not r.approval_document)):
                evid = [Evidence(rec, "staff_count", r.staff_count), Evidence(rec, "ids_shown", r.ids_shown),
                        Evidence(rec, "approval_document", r.approval_document)]
                self.add(BREACH, "retrieval_procedure", subject, self.reqs(("Q24.1",)), evid, day,
                         "Q24.1: a retrieval needs at least two staff who show their work IDs and the "
                         "approval document, and is registered.",
                         "Record the second officer, the ID check and the approval document.")
            missing = [k for k, v in (("reason", r.reason), ("content", r.content),
                                      ("requester_unit", r.requester_unit),
                                      ("requester_name", r.requester_name)) if not v]
            if missing:
                self.add(BREACH, "retrieval_register_incomplete", subject,
                         self.reqs(("Q19.1", "N16.1"), uex),
                         [Evidence(rec, k, "") for k in missing], day,
                         "Q19.1, N16.1: the retrieval register records the reason, content, unit and "
                         f"name of whoever views or retrieves footage; missing: {', '.join(missing)}.",
                         "Complete the register entry.")


# Fault kinds that mean the camera's view is blocked (viis/health/vqd.py).
OBSTRUCTION_KINDS = frozenset({"video_occluded"})


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine, mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def evaluate(snapshot: Snapshot, book: RuleBook, on: date,
             settings: EngineSettings | None = None) -> list[Finding]:
    """Findings for one snapshot as of ``on`` (an Asia/Shanghai calendar day), sorted."""
    return Evaluator(book, on, settings).evaluate(snapshot)
