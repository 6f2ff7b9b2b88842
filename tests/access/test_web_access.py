"""Sign-in, sessions, user administration and the door through the HTTP API; secrets never
appear in answers or logs."""

from __future__ import annotations

import pyotp

from tests.access.helpers import PASSWORD, Site


def test_sign_in_me_and_sign_out_with_cookie_or_bearer(tmp_path, db, clock):
    site = Site(tmp_path, db, clock)
    site.user("olga", ("operator_on_duty",))
    c = site.client()
    r = c.post("/api/session", json={"login": "olga", "password": PASSWORD})
    assert r.status_code == 200 and r.json()["user"]["login"] == "olga"
    assert "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
    me = c.get("/api/me").json()  # by cookie
    assert me["roles"] == ["operator_on_duty"] and me["trained"] is True
    assert me["organisation"]["kind"] == "using_unit"
    assert c.delete("/api/session").status_code == 200
    bearer = {"Authorization": f"Bearer {r.json()['token']}"}
    assert site.client().get("/api/me", headers=bearer).status_code == 401  # revoked
    assert site.client().post("/api/session", json={"login": "olga", "password": "nope-nope-1"}).status_code == 401


def test_hostile_logins_fail_like_wrong_passwords(tmp_path, db, clock):
    """A NUL (which PostgreSQL refuses in text), control characters or a huge login are a
    failed sign-in (401), never a server error; the real account is untouched."""
    site = Site(tmp_path, db, clock)
    site.user("olga", ("operator_on_duty",))
    c = site.client()
    for login in ("ol\x00ga", "olga\x00", "\x00", "ol\x1bga", "o" * 5000, "olga\x7f"):
        r = c.post("/api/session", json={"login": login, "password": PASSWORD})
        assert r.status_code in (401, 422), (login[:20], r.status_code, r.text)
        assert "error" in r.json()
    assert c.post("/api/session", json={"login": "olga", "password": PASSWORD}).status_code == 200


def test_lockout_answers_429_with_retry_after_and_lifts_with_time(tmp_path, db, clock):
    site = Site(tmp_path, db, clock, max_failures=2, lockout_ms=60_000)
    site.user("olga", ("operator_on_duty",))
    c = site.client()
    for _ in range(2):
        assert c.post("/api/session", json={"login": "olga", "password": "bad-password-1"}).status_code == 401
    r = c.post("/api/session", json={"login": "olga", "password": PASSWORD})
    assert r.status_code == 429 and r.headers["retry-after"] == "60"
    clock.advance(60)
    assert c.post("/api/session", json={"login": "olga", "password": PASSWORD}).status_code == 200


def test_totp_enrolment_then_required_at_sign_in(tmp_path, db, clock):
    site = Site(tmp_path, db, clock)
    site.user("olga", ("operator_on_duty",))
    c = site.sign_in("olga")
    secret = pyotp.parse_uri(c.post("/api/me/totp").json()["provisioning_uri"]).secret
    now = lambda: pyotp.TOTP(secret).at(clock.wall_ms() // 1000)  # noqa: E731
    assert c.post("/api/me/totp/confirm", json={"code": now()}).status_code == 200
    assert "secret" not in c.get("/api/me").text.lower()
    clock.advance(30)
    anon = site.client()
    assert anon.post("/api/session", json={"login": "olga", "password": PASSWORD}).status_code == 401
    assert site.sign_in("olga", code=now())


def test_untrained_user_is_refused_footage_through_the_api(tmp_path, db, clock):
    site = Site(tmp_path, db, clock)
    site.admin.post("/api/cameras", json={"name": "gate", "main_url": "rtsp://h/x"})
    site.user("newbie", ("operator_on_duty",), trained=False)
    r = site.sign_in("newbie").get("/api/cameras/1/snapshot.jpg?at=0")
    assert r.status_code == 403 and set(r.json()["articles"]) == {"Q19.2", "N16.1"}


def test_cameras_above_clearance_are_hidden(tmp_path, db, clock):
    site = Site(tmp_path, db, clock)
    site.admin.post("/api/cameras", json={"name": "low", "main_url": "rtsp://h/a", "security_level": 1})
    site.admin.post("/api/cameras", json={"name": "high", "main_url": "rtsp://h/b", "security_level": 4})
    site.user("olga", ("operator_on_duty",), clearance=2)
    c = site.sign_in("olga")
    assert [x["name"] for x in c.get("/api/cameras").json()] == ["low"]
    assert c.get("/api/cameras/2").status_code == 404
    assert c.get("/api/cameras/2/fmp4?start=0&end=1000").status_code == 403


def test_unit_admin_manages_its_own_unit_and_new_users_must_change_password(tmp_path, db, clock):
    site = Site(tmp_path, db, clock)
    site.user("ua", ("unit_admin",))
    other = site.org("maintenance_contractor")
    c = site.sign_in("ua")
    org = c.get("/api/me").json()["organisation_id"]
    body = {"login": "nina", "organisation_id": org, "work_id": "W9", "password": "First-pass-123",
            "roles": ["operator_on_duty"], "clearance": 2}
    r = c.post("/api/users", json=body)
    assert r.status_code == 201 and r.json()["must_change_password"] is True
    assert c.post("/api/users", json=body | {"login": "x", "organisation_id": other}).status_code == 403
    assert c.post("/api/users", json=body | {"login": "y", "roles": ["platform_admin"]}).status_code == 403
    assert c.post("/api/users", json=body | {"login": "z", "password": "short"}).status_code == 422
    nina = site.sign_in("nina", "First-pass-123")
    assert nina.get("/api/faults").status_code == 403  # change the password first
    assert nina.post("/api/me/password", json={"current": "First-pass-123",
                                               "new": "Second-pass-456"}).status_code == 200
    assert nina.get("/api/faults").status_code == 200


def test_secrets_never_appear_in_answers_or_logs(tmp_path, db, clock, capsys):
    site = Site(tmp_path, db, clock)
    site.user("ua", ("unit_admin",))
    c = site.sign_in("ua")
    org = c.get("/api/me").json()["organisation_id"]
    secret_pw = "Very-secret-pw-987"
    answers = [c.post("/api/users", json={"login": "nina", "organisation_id": org, "work_id": "W9",
                                          "password": secret_pw, "roles": []})]
    uid = answers[0].json()["id"]
    answers.append(site.client().post("/api/session", json={"login": "nina", "password": "Wrong-" + secret_pw}))
    login = site.client().post("/api/session", json={"login": "nina", "password": secret_pw})
    session_token = login.json()["token"]
    nina = site.client()
    nina.headers["Authorization"] = f"Bearer {session_token}"
    made = nina.post("/api/me/tokens", json={"name": "script"})
    api_token = made.json()["token"]
    answers += [c.get("/api/users"), c.get(f"/api/users/{uid}"), nina.get("/api/me"),
                nina.get("/api/me/tokens"), c.patch(f"/api/users/{uid}", json={"display_name": "N"}),
                c.post(f"/api/users/{uid}/password", json={"new": "Reset-pass-12345"}),
                site.client().get(f"/api/me?token={api_token}")]
    out = capsys.readouterr()
    logs = out.out + out.err
    assert "sign_in" in logs  # logs were captured
    for text in [a.text for a in answers] + [logs]:
        for s in (secret_pw, "Reset-pass-12345", session_token, api_token, "$argon2"):
            assert s not in text
    assert "password_hash" not in answers[2].text and "totp_secret" not in answers[4].text
