"""A site with police bureaus (district under city), a department, a using unit, their staff
and two cameras, for retrieval tests."""

from __future__ import annotations

import base64

from tests.access.helpers import Site

HOUR_MS = 3_600_000
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def doc(data: bytes = PDF, name: str = "approval.pdf") -> dict:
    return {"name": name, "content_base64": base64.b64encode(data).decode()}


class World:
    def __init__(self, tmp_path, db, clock):
        self.site = site = Site(tmp_path, db, clock)
        self.clock = clock
        self.cams = []
        for name in ("gate", "lobby"):
            r = site.admin.post("/api/cameras", json={"name": name, "main_url": f"rtsp://h/{name}"})
            assert r.status_code == 201, r.text
            self.cams.append(r.json()["id"])
        with site.app.db.session() as s:
            city = site.ident.add_organisation(s, "city bureau", "city_bureau").id
            district = site.ident.add_organisation(s, "district bureau", "district_bureau", city).id
            other_district = site.ident.add_organisation(s, "other district", "district_bureau", city).id
        self.city, self.district, self.other_district = city, district, other_district
        site._orgs.update(city_bureau=city, district_bureau=district)
        self.unit = site.org("using_unit")
        self.dept = site.org("other_department")
        u = site.user
        u("inv1", ("police_investigator",), kind="district_bureau")
        u("inv2", ("police_investigator",), kind="district_bureau")
        u("inv3", ("police_investigator",), kind="district_bureau", trained=False)
        u("inv4", ("police_investigator",), kind="district_bureau")  # not named in requests
        u("appr", ("bureau_approver",), kind="district_bureau")
        u("cityappr", ("bureau_approver",), kind="city_bureau")
        u("dep1", ("department_requester",))
        u("dep2", ("department_requester",))
        u("op1", ("operator_on_duty",))
        u("op2", ("operator_on_duty",))
        u("uadmin", ("unit_admin",))
        u("aud", ("auditor",))
        site._orgs["district_bureau"] = other_district
        u("otherappr", ("bureau_approver",), kind="district_bureau")
        site._orgs["district_bureau"] = district
        self._clients: dict[str, object] = {}

    def c(self, login: str):
        if login not in self._clients:
            self._clients[login] = self.site.sign_in(login)
        return self._clients[login]

    def now(self) -> int:
        return self.clock.wall_ms()

    def body(self, kind: str = "police", *, ranges=None, staff=("W-inv1", "W-inv2"),
             valid_h: float = 8, document=None, **kw) -> dict:
        t1 = self.now() - HOUR_MS
        ranges = ranges if ranges is not None else [(self.cams[0], t1 - HOUR_MS, t1)]
        out = {"kind": kind, "legal_basis": "Criminal Procedure Law art. 54",
               "purpose": "investigate a theft at the gate", "case_number": "QD-2026-0042",
               "ranges": [{"camera_id": c, "start": str(a), "end": str(b)} for c, a, b in ranges],
               "staff_work_ids": list(staff), "valid_until": str(self.now() + int(valid_h * HOUR_MS))}
        if document is not False:
            out["document"] = document or doc()
        out.update(kw)
        return out

    def file(self, login: str = "inv1", kind: str = "police", **kw) -> dict:
        r = self.c(login).post("/api/retrievals", json=self.body(kind, **kw))
        assert r.status_code == 201, r.text
        return r.json()

    def approve(self, rid: int, login: str = "appr", **body) -> dict:
        r = self.c(login).post(f"/api/retrievals/{rid}/approve", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    def open(self, rid: int, first: str = "inv1", second: str = "inv2", password: str | None = None):
        from tests.access.helpers import PASSWORD
        return self.c(first).post(f"/api/retrievals/{rid}/sessions",
                                  json={"second_login": second, "second_password": password or PASSWORD})

    def range_q(self, rid_body: dict, i: int = 0) -> str:
        r = rid_body["ranges"][i]
        return f"start={r['from_ms']}&end={r['to_ms']}"

    def register(self) -> list[dict]:
        r = self.site.admin.get("/api/register?limit=1000")
        assert r.status_code == 200, r.text
        return r.json()
