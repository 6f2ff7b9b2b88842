"""The console's sign-in (issue 3 item 1): the first-start administrator, the forced password
change, the session check on every page, and the translation catalogues (item 7)."""

from __future__ import annotations

import json
import logging
import stat

import httpx
import pytest

from tests.web.console.helpers import (
    CATALOGUES,
    CHEAP,
    assert_all_translated,
    catalogue,
    wait_until,
)
from viis.access.identity import INITIAL_PASSWORD_FILE, IdentityService
from viis.access.models import User
from viis.core.clock import ManualClock

NEW_PASSWORD = "night-shift-2026#"


# --- first start (no browser) ------------------------------------------------------------
def test_first_start_creates_one_admin_with_a_private_password_file_that_is_never_logged(
        tmp_path, db, caplog, capfd):
    ident = IdentityService(ManualClock(), CHEAP)
    caplog.set_level(logging.DEBUG)
    with db.session() as s:
        admin = ident.ensure_initial_admin(s, tmp_path)
        assert admin is not None and admin.must_change_password
        assert {"platform_admin", "operator_on_duty"} <= set(admin.roles.split())
    path = tmp_path / INITIAL_PASSWORD_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password = path.read_text().strip()
    assert len(password) >= 20
    out, err = capfd.readouterr()  # structlog writes to the process's streams
    assert "initial_admin_created" in out + err + caplog.text  # the log line exists...
    assert password not in out + err + caplog.text  # ...without the password
    with db.session() as s:  # it signs in with that password, and must change it first
        got = ident.sign_in(s, "admin", password)
        assert got.user.must_change_password
    with db.session() as s:  # a second start makes nothing new and leaves the file alone
        assert ident.ensure_initial_admin(s, tmp_path) is None
        assert len(list(s.query(User))) == 1
    assert path.read_text().strip() == password


def test_catalogues_are_complete_in_both_languages_and_well_formed():
    """Item 7: every key exists in en and zh-CN, with the same {placeholders}."""
    import re

    for page_file in sorted((CATALOGUES / "en").glob("*.json")):
        en = json.loads(page_file.read_text(encoding="utf-8"))
        zh_file = CATALOGUES / "zh-CN" / page_file.name
        assert zh_file.exists(), f"zh-CN/{page_file.name} is missing"
        zh = json.loads(zh_file.read_text(encoding="utf-8"))
        assert set(en) == set(zh), f"{page_file.name}: keys differ: {set(en) ^ set(zh)}"
        prefix = page_file.stem + "."
        assert all(k.startswith(prefix) for k in en), f"{page_file.name}: keys must start {prefix}"
        for k in en:
            assert set(re.findall(r"\{\w+\}", en[k])) == set(re.findall(r"\{\w+\}", zh[k])), k
            assert zh[k].strip(), k


# --- the console's files ---------------------------------------------------------------------
def test_console_files_have_types_revalidation_and_no_way_out_of_the_folder(console):
    with httpx.Client(base_url=console.url, timeout=30) as c:
        r = c.get("/")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert r.headers["cache-control"] == "no-cache"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        js = c.get("/static/app.js")
        assert js.headers["content-type"].startswith("text/javascript")
        again = c.get("/static/app.js", headers={"If-None-Match": js.headers["etag"]})
        assert again.status_code == 304 and not again.content
        assert c.get("/static/i18n/zh-CN/common.json").json()["common.sign_out"] == "退出登录"
        for bad in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py",
                    "/static/.hidden.js", "/static//etc/passwd", "/static/" + "a/" * 150 + "x.js",
                    "/static/routes_console.py", "/static/app.js%00.png", "/static/nope.js"):
            r = c.get(bad)
            assert r.status_code == 404, bad
            assert "/work" not in r.text and "viis/web" not in r.text


def test_api_refuses_the_console_without_a_session(console):
    with httpx.Client(base_url=console.url, timeout=30) as c:
        assert c.get("/api/me").status_code == 401
        assert c.get("/api/cameras").status_code == 401


# --- in the browser --------------------------------------------------------------------------
def _add_user(console, login: str, password: str) -> None:
    from viis.access.models import Organisation

    with console.app.db.session() as s:
        org = s.query(Organisation).first()
        console.ident.add_user(s, login=login, display_name=login.title(), organisation_id=org.id,
                               work_id=f"W-{login}", password=password,
                               roles={"operator_on_duty"}, clearance=3,
                               must_change_password=True)


def test_unauthenticated_pages_go_to_sign_in(anon_page, console):
    anon_page.goto(console.url + "/#/wall")
    anon_page.wait_for_url("**/#/login")
    anon_page.wait_for_selector("#login-form")
    assert anon_page.is_hidden("#topbar")


def test_sign_in_with_a_one_time_password_forces_a_change_then_opens_the_wall(anon_page, console):
    page = anon_page
    _add_user(console, "duty1", "first-time-pass-1")
    page.goto(console.url + "/")
    page.wait_for_selector("#login-form")
    page.fill("#login", "duty1")
    page.fill("#password", "wrong password 123")
    page.click("#login-submit")
    wait_until(lambda: page.text_content("#login-error").strip(), 30)
    assert "wrong" in page.text_content("#login-error")

    page.fill("#password", "first-time-pass-1")
    page.click("#login-submit")
    page.wait_for_selector("#change-form")
    page.goto(console.url + "/#/wall")  # no way round the change
    page.wait_for_selector("#change-form")
    page.fill("#current", "first-time-pass-1")
    page.fill("#new", "short")
    page.fill("#repeat", "short")
    page.click("#change-submit")  # the browser's minlength stops it, or the server does
    assert page.is_visible("#change-form")
    page.fill("#new", NEW_PASSWORD)
    page.fill("#repeat", NEW_PASSWORD + "x")
    page.click("#change-submit")
    wait_until(lambda: "differ" in page.text_content("#login-error"), 30)
    page.fill("#repeat", NEW_PASSWORD)
    page.click("#change-submit")
    page.wait_for_url("**/#/wall")
    page.wait_for_selector("#topbar:not([hidden])")
    assert page.text_content("#user-name") == "Duty1"
    with console.app.db.session() as s:
        assert not s.query(User).filter_by(login="duty1").one().must_change_password

    page.click("#sign-out")
    page.wait_for_selector("#login-form")
    page.goto(console.url + "/#/wall")
    page.wait_for_selector("#login-form")  # the session is gone on the server too


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_sign_in_page_is_in_the_browser_language_and_fully_translated(new_page, console, lang):
    page = new_page(lang=lang, signed_in=False)
    page.goto(console.url + "/#/login")
    page.wait_for_selector("#login-form")
    assert page.text_content("#login-submit") == catalogue(lang)["login.submit"]
    assert_all_translated(page, lang)
