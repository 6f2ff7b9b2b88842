"""REST for the upper platforms (Q13.1): administrators configure them and their share lists,
auditors read, nobody else; the password is never returned nor logged; a camera above the
platform's grade cannot be shared; changes reach the running cascade. SQLite and PostgreSQL."""

import logging

from tests.access.helpers import Site
from tests.interconnect.cascade_helpers import CH, LOCAL, UPPER

BODY = {"name": "市视频共享平台", "server_id": UPPER, "host": "10.1.2.3", "port": 5060,
        "password": "p4ss-w0rd-UPPER", "local_id": LOCAL, "max_security_level": 2}
ROLES = ("operator_on_duty", "unit_admin", "maintainer", "auditor", "police_investigator",
         "bureau_approver", "department_requester", "platform_admin")
READ = {"unit_admin", "auditor", "platform_admin"}
WRITE = {"unit_admin", "platform_admin"}


class FakeCascade:
    def __init__(self):
        self.reloads = 0

    def request_reload(self):
        self.reloads += 1

    def client(self, upper_id):
        return None


def test_admin_configures_an_upper_and_its_shares_and_the_password_never_leaks(
        tmp_path, db, clock, caplog):
    caplog.set_level(logging.DEBUG)
    site = Site(tmp_path, db, clock)
    site.api.state.cascade = fake = FakeCascade()
    a = site.admin
    cams = [a.post("/api/cameras", json={"name": n, "main_url": f"rtsp://h/{n}",
                                         "security_level": lvl}).json()
            for n, lvl in (("gate", 1), ("hall", 2), ("vault", 3))]
    r = a.post("/api/gb28181/uppers", json=BODY)
    assert r.status_code == 201, r.text
    up = r.json()
    assert up["domain"] == UPPER[:10] and up["has_password"] and "password" not in up
    assert up["status"]["state"] == "not running" and fake.reloads == 1
    uid = up["id"]
    assert a.post("/api/gb28181/uppers", json=BODY).status_code == 422  # same server ID
    bad = a.post("/api/gb28181/uppers", json=BODY | {"server_id": "44010000002000000001",
                                                     "local_id": "123"})
    assert bad.status_code == 422
    r = a.put(f"/api/gb28181/uppers/{uid}/shares", json={"shares": [
        {"camera_id": cams[2]["id"], "channel_id": CH.format(3)}]})
    assert r.status_code == 422 and "Q13.1" in r.json()["articles"]
    r = a.put(f"/api/gb28181/uppers/{uid}/shares", json={"shares": [
        {"camera_id": cams[0]["id"], "channel_id": CH.format(1), "ptz_allowed": True},
        {"camera_id": cams[1]["id"], "channel_id": CH.format(2)}]})
    assert r.status_code == 200, r.text
    assert [x["channel_id"] for x in r.json()] == [CH.format(1), CH.format(2)]
    r = a.patch(f"/api/gb28181/uppers/{uid}", json={"password": "n3w-secret-pw", "port": 5061})
    assert r.status_code == 200 and r.json()["port"] == 5061 and fake.reloads == 3  # +shares
    a.patch(f"/api/cameras/{cams[1]['id']}", json={"security_level": 4})
    shares = a.get(f"/api/gb28181/uppers/{uid}/shares").json()
    assert [(x["channel_id"], x["visible"]) for x in shares] == \
        [(CH.format(1), True), (CH.format(2), False)]
    everything = a.get("/api/gb28181/uppers").text + a.get(f"/api/gb28181/uppers/{uid}").text
    everything += a.get("/api/audit?limit=100").text + caplog.text
    for pw in ("p4ss-w0rd-UPPER", "n3w-secret-pw"):
        assert pw not in everything
    assert "gb.upper.update" in a.get("/api/audit?limit=100").text
    assert a.delete(f"/api/gb28181/uppers/{uid}").status_code == 204
    assert a.get(f"/api/gb28181/uppers/{uid}").status_code == 404


def test_each_role_reads_or_writes_the_uppers_as_the_policy_says(tmp_path, db, clock):
    site = Site(tmp_path, db, clock)
    uid = site.admin.post("/api/gb28181/uppers", json=BODY).json()["id"]
    for i, role in enumerate(ROLES):
        site.user(f"u{i}", (role,))
        c = site.sign_in(f"u{i}")
        got = c.get("/api/gb28181/uppers").status_code
        assert (got == 200) == (role in READ) and (got == 403) == (role not in READ), role
        got = c.get(f"/api/gb28181/uppers/{uid}/shares").status_code
        assert (got == 200) == (role in READ), role
        got = c.patch(f"/api/gb28181/uppers/{uid}", json={"name": f"by {role}"}).status_code
        assert (got == 200) == (role in WRITE) and (got == 403) == (role not in WRITE), role
        got = c.put(f"/api/gb28181/uppers/{uid}/shares", json={"shares": []}).status_code
        assert (got == 200) == (role in WRITE), role
    assert site.client().get("/api/gb28181/uppers").status_code == 401
