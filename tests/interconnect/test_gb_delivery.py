"""A copy to an upper platform (GB/T 28181 Download, Q13.1) passes the one door only under
an approved retrieval request (Q23.1: the bureau head's approval; Q24.1: two staff named,
the approval document, a register entry) that covers the camera and the range and names this
upper platform as its delivery target. The upper's views are registered under its own role
and organisation (N16.1: unit and name of whoever retrieves).

The upper is a bare SIP endpoint; the PS it receives is judged by ffprobe."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from tests.interconnect.cascade_helpers import (
    UPPER,
    RecordingUpper,
    add_camera,
    add_upper,
    share,
    wait_for,
)
from tests.interconnect.gbmedia import record_hour, synthetic_minute
from viis.access.identity import IdentityService
from viis.access.policy import Principal
from viis.access.retrieval import Document, RangeIn, RetrievalService
from viis.access.retrieval_models import RegisterEntry, RetrievalRequest
from viis.core.clock import SystemClock
from viis.integrity.models import AuditEntry
from viis.interconnect.gb28181.cascade import Cascade
from viis.interconnect.gb28181.endpoint import InviteError
from viis.interconnect.gb28181.feeds import LiveTap
from viis.interconnect.gb28181.sdp import GbSdp, build_sdp
from viis.interconnect.gb28181.serve import MediaAnswerer

pytestmark = pytest.mark.skipif(not shutil.which("ffprobe"), reason="ffprobe not installed")

CH1, CH2 = "34020000001310000001", "34020000001310000002"
OTHER_UPPER = "34020000002000000002"
T0 = 1_767_225_600_000  # 2026-01-01, a whole minute
S = 1000
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


class RtpPayloads(asyncio.DatagramProtocol):
    """The upper's media port at its rawest: the PS bytes carried by RTP, in order."""

    def __init__(self) -> None:
        self.ps = bytearray()
        self.packets = 0

    def datagram_received(self, data: bytes, addr) -> None:
        if len(data) >= 12 and data[0] >> 6 == 2:
            self.packets += 1
            self.ps += data[12 + 4 * (data[0] & 0x0F):]


def _ffprobe(path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-f", "mpeg", "-count_frames",
                          "-show_entries", "stream=codec_name,width,height,nb_read_frames",
                          "-of", "json", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["streams"][0]


class Bureau:
    """A district bureau under a city bureau, two investigators, the bureau head."""

    def __init__(self, app, tmp_path):
        self.ident = IdentityService(app.clock)
        self.svc = RetrievalService(app.clock, self.ident, tmp_path / "docs")
        with app.db.session() as s:
            city = self.ident.add_organisation(s, "city bureau", "city_bureau").id
            self.district = self.ident.add_organisation(s, "district bureau", "district_bureau",
                                                        city).id
            self.inv, self.head = (
                self.ident.principal(s, self.ident.add_user(
                    s, login=login, display_name=login, organisation_id=self.district,
                    work_id=f"W-{login}", password="Correct-Horse-7-battery", roles={role}))
                for login, role in (("inv1", "police_investigator"),
                                    ("head", "bureau_approver")))
        self.app = app

    def approved(self, camera_id: int, frm: int, to: int, deliver_to: str) -> int:
        """A police request for a copy, filed, approved by the bureau head (Q23.1, Q24.1)."""
        with self.app.db.session() as s:
            req = self.svc.create(
                s, self.inv, kind="police", legal_basis="Criminal Procedure Law art. 54",
                purpose="theft at the gate", case_number="QD-2026-0042",
                ranges=[RangeIn(camera_id, frm, to)], staff_work_ids=["W-inv1", "W-inv2"],
                valid_until_ms=self.app.clock.wall_ms() + 3_600_000,
                document=Document("approval.pdf", PDF), deliver_to=deliver_to)
            self.svc.approve(s, self.head, req.id)
            return req.id


def test_a_download_plays_only_under_an_approved_request_naming_this_upper(sqlite_db, rules,
                                                                          tmp_path):
    app = SimpleNamespace(db=sqlite_db, clock=SystemClock(),
                          settings=SimpleNamespace(segments_path=tmp_path / "store"))
    minute = synthetic_minute()
    bureau = Bureau(app, tmp_path)
    ps_file = tmp_path / "download.ps"

    async def main():
        a = add_camera(app, rules, "gate", level=1)
        b = add_camera(app, rules, "lobby", level=1)
        record_hour(sqlite_db, app.settings.segments_path, a.id, T0, minutes=2, frames=minute)
        record_hour(sqlite_db, app.settings.segments_path, b.id, T0, minutes=1, frames=minute)
        up = await RecordingUpper().start()
        u = add_upper(app, up.port, keepalive_s=5, register_expires=3600, level=1)
        add_upper(app, 9, server_id=OTHER_UPPER, local_id="34020000002000000098",
                  enabled=False)
        share(app, u, [{"camera_id": a.id, "channel_id": CH1},
                       {"camera_id": b.id, "channel_id": CH2}])
        c = Cascade(app, host="127.0.0.1", port=0, t1=0.05)
        m = MediaAnswerer(app, c, LiveTap(), bind_host="127.0.0.1")
        c.set_invite_handler(m.on_invite)
        await c.start()
        loop = asyncio.get_running_loop()
        rtp_t, rtp = await loop.create_datagram_endpoint(RtpPayloads, local_addr=("127.0.0.1", 0))
        port = rtp_t.get_extra_info("sockname")[1]
        out: dict = {"ids": (a.id, b.id)}

        async def invite(ch, frm, to, session="Download"):
            sdp = build_sdp(GbSdp(session=session, origin_id=UPPER, ip="127.0.0.1", port=port,
                                  transport="UDP", payloads={96: "PS"}, ssrc="1340200021",
                                  start=frm // S, end=to // S,
                                  download_speed=4 if session == "Download" else None))
            try:
                d, resp = await up.ep.invite(f"sip:{ch}@127.0.0.1:{c.local_port}",
                                             ("127.0.0.1", c.local_port), sdp=sdp,
                                             to=f"sip:{ch}@3402000000")
                return d, resp.status
            except InviteError as e:
                return None, e.response.status
        try:
            assert await wait_for(lambda: all(x.registered for x in c.clients.values()))
            out["principal"] = c.principal(UPPER)
            # playback is the upper's within its grade: registered under its own role
            d, out["playback"] = await invite(CH1, T0, T0 + 10 * S, "Playback")
            await up.ep.bye(d)
            # no request at all: refused as before
            _, out["none"] = await invite(CH1, T0, T0 + 20 * S)
            # the lawful path: approved, covering, naming this upper
            r1 = bureau.approved(a.id, T0, T0 + 60 * S, UPPER)
            bureau.approved(a.id, T0 + 60 * S, T0 + 120 * S, OTHER_UPPER)
            d, out["lawful"] = await invite(CH1, T0, T0 + 20 * S)
            assert await wait_for(lambda: up.bodies("MediaStatus"), 60), rtp.packets
            await up.ep.bye(d)
            ps_file.write_bytes(bytes(rtp.ps))
            out["probe"] = await loop.run_in_executor(None, _ffprobe, ps_file)
            # outside the range, another camera, a range approved for another upper
            _, out["outside"] = await invite(CH1, T0 + 30 * S, T0 + 90 * S)
            _, out["other_camera"] = await invite(CH2, T0, T0 + 20 * S)
            _, out["other_upper"] = await invite(CH1, T0 + 70 * S, T0 + 90 * S)
            # an expired approval
            r3 = bureau.approved(b.id, T0, T0 + 60 * S, UPPER)
            with sqlite_db.session() as s:
                s.get(RetrievalRequest, r3).expires_ms = app.clock.wall_ms() - 1
            _, out["expired"] = await invite(CH2, T0, T0 + 20 * S)
            # the case is closed: the request no longer delivers anything
            with sqlite_db.session() as s:
                s.get(RetrievalRequest, r1).status = "closed"
            _, out["closed"] = await invite(CH1, T0, T0 + 20 * S)
            out["r1"] = r1
        finally:
            rtp_t.close()
            await m.close()
            await c.stop()
            await up.stop()
        return out

    out = asyncio.run(asyncio.wait_for(main(), 150))
    p: Principal = out["principal"]
    assert p.roles == frozenset({"upper_platform"}) and p.org_kind == "upper_platform"
    assert p.organisation_name == f"upper {UPPER[-4:]} ({UPPER})" and p.user_id is None
    assert out["playback"] == 200 and out["none"] == 403 and out["lawful"] == 200
    probe = out["probe"]
    assert probe["codec_name"] == "h264" and (probe["width"], probe["height"]) == (320, 180)
    assert int(probe["nb_read_frames"]) >= 90, probe  # 20 s at 5 fps
    assert (out["outside"], out["other_camera"], out["other_upper"], out["expired"],
            out["closed"]) == (403, 403, 403, 403, 403)

    with sqlite_db.session() as s:
        es = list(s.scalars(select(RegisterEntry).order_by(RegisterEntry.id)))
        audit = {x.details and json.loads(x.details).get("register_id"): x.organisation
                 for x in s.scalars(select(AuditEntry)) if x.kind.startswith("footage.")}
        rows = [(e.action, e.outcome, e.request_id, e.unit_name, e.reason, e.articles,
                 e.purpose, e.case_number, e.request_kind, audit.get(e.id)) for e in es]
    unit = f"upper {UPPER[-4:]} ({UPPER})"
    assert all(r[3] == unit and r[9] == unit for r in rows), rows  # register and audit
    assert [(r[0], r[1]) for r in rows] == [("playback", "allowed")] + [("export", "refused")] \
        + [("export", "allowed")] + [("export", "refused")] * 5, rows
    assert rows[0][4] == "upper_platform within clearance" and rows[0][8] == "gb28181"
    assert "naming it as the delivery target" in rows[1][4] and "Q24.1" in rows[1][5]
    lawful = rows[2]
    r1 = out["r1"]
    assert lawful[2] == r1 and lawful[4] == f"upper_platform within R-{r1}"
    assert lawful[7] == "QD-2026-0042" and lawful[8] == "police"
    assert "theft at the gate" in lawful[6] and "copy delivered" in lawful[6]
    assert "W-inv1 W-inv2" in lawful[6] and "Q24.1" in lawful[5]
    outside, other_cam, other_up, expired, closed = rows[3:]
    assert f"outside R-{r1}" in outside[4] and f"camera {out['ids'][0]}" in outside[4]
    assert f"camera {out['ids'][1]}" in other_cam[4] and "outside" in other_cam[4]
    assert f"outside R-{r1}" in other_up[4]  # R-2 names the other upper: not this one's
    assert "expired" in expired[4]
    assert f"R-{r1}" not in closed[4]  # a closed case delivers nothing
    assert all("Q24.1" in r[5] for r in rows[3:])


def test_a_request_names_only_a_configured_upper_and_only_for_a_copy(sqlite_db, rules, tmp_path):
    from viis.core.errors import ValidationFailed

    app = SimpleNamespace(db=sqlite_db, clock=SystemClock())
    bureau = Bureau(app, tmp_path)
    cam = add_camera(app, rules, "gate", level=1)
    add_upper(app, 5060, enabled=False)
    now = app.clock.wall_ms()

    def file(**kw):
        with sqlite_db.session() as s:
            args = dict(kind="police", legal_basis="law", purpose="theft", case_number="C-1",
                        ranges=[RangeIn(cam.id, T0, T0 + 60 * S)],
                        staff_work_ids=["W-a", "W-b"], valid_until_ms=now + 3_600_000,
                        document=Document("approval.pdf", PDF)) | kw
            return bureau.svc.view(s, bureau.svc.create(s, bureau.inv, **args))

    assert file(deliver_to=UPPER)["deliver_to"] == UPPER
    assert file()["deliver_to"] is None
    for kw, needle in ((dict(deliver_to=OTHER_UPPER), "no upper platform"),
                       (dict(deliver_to="12345"), "20-digit"),
                       (dict(deliver_to=UPPER, actions=["playback"]), "must allow export")):
        with pytest.raises(ValidationFailed, match=needle):
            file(**kw)
    # N21.1: an individual's request (filed by the using unit) is view-only, delivers no copy
    op = Principal("op", frozenset({"operator_on_duty"}), user_id=bureau.inv.user_id,
                   organisation_id=bureau.district, org_kind="using_unit")
    with sqlite_db.session() as s, pytest.raises(ValidationFailed, match="view-only") as e:
        bureau.svc.create(s, op, kind="individual", legal_basis="N21.1", purpose="own car",
                          ranges=[RangeIn(cam.id, T0, T0 + 60 * S)], staff_work_ids=["a", "b"],
                          valid_until_ms=now + 3_600_000, person_name="Li",
                          person_relation="self", actions=["playback"], deliver_to=UPPER)
    assert "N21.1" in e.value.articles
