"""Building blocks for access tests: an API with a driven clock and cheap argon2, and users
of every role in organisations of the right kind."""

from __future__ import annotations

from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from viis.access.identity import IdentityService
from viis.access.policy import ROLE_ORG_KINDS
from viis.app import App
from viis.compliance.rulepack import RuleBook
from viis.core.config import load_settings
from viis.web.app import create_app

PASSWORD = "correct-horse-42"
DAY_MS = 86_400_000
CHEAP = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


class Site:
    def __init__(self, tmp_path, db, clock, *, hasher=CHEAP, **ident_kw):
        settings = load_settings(environ={"VIIS_DATA_DIR": str(tmp_path / "d")})
        settings.segments_path.mkdir(parents=True, exist_ok=True)
        self.app = App(settings, db, RuleBook.load(settings.rulepack_dir), clock)
        self.clock = clock
        self.ident = IdentityService(clock, hasher, **ident_kw)
        self.api = create_app(self.app, identity=self.ident)
        self.admin = TestClient(self.api)
        self.admin.headers["Authorization"] = f"Bearer {self.api.state.api_token}"
        self._orgs: dict[str, int] = {}

    def org(self, kind: str) -> int:
        if kind not in self._orgs:
            with self.app.db.session() as s:
                self._orgs[kind] = self.ident.add_organisation(s, f"org-{kind}", kind).id
        return self._orgs[kind]

    def user(self, login: str, roles=(), *, kind: str | None = None, clearance: int = 5,
             trained: bool = True, password: str = PASSWORD) -> int:
        if kind is None:
            fits = set.intersection(*(set(ROLE_ORG_KINDS[r]) for r in roles)) if roles else set()
            kind = "using_unit" if not roles or "using_unit" in fits else sorted(fits)[0]
        org = self.org(kind)
        with self.app.db.session() as s:
            u = self.ident.add_user(s, login=login, display_name=login.title(), organisation_id=org,
                                    work_id=f"W-{login}", password=password, roles=set(roles),
                                    clearance=clearance)
            if trained:
                now = self.clock.wall_ms()
                for topic in ("skills", "confidentiality"):
                    self.ident.add_training(s, u.id, topic=topic, course=f"{topic} 101",
                                            completed_ms=now - DAY_MS,
                                            valid_until_ms=now + 365 * DAY_MS, recorded_by="test")
            return u.id

    def client(self) -> TestClient:
        return TestClient(self.api)

    def sign_in(self, login: str, password: str = PASSWORD, code: str | None = None) -> TestClient:
        c = self.client()
        body = {"login": login, "password": password} | ({"code": code} if code else {})
        r = c.post("/api/session", json=body)
        assert r.status_code == 200, r.text
        c.headers["Authorization"] = f"Bearer {r.json()['token']}"
        c.cookies.clear()
        return c


def all_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every route of the app. FastAPI 0.16x keeps included routers as
    nested objects in ``app.routes``; walk into them (``original_router``)."""
    out: set[tuple[str, str]] = set()

    def walk(routes) -> None:
        for r in routes:
            inner = getattr(r, "original_router", None)
            if inner is not None:
                walk(inner.routes)
                continue
            for m in getattr(r, "methods", None) or ():
                if m != "HEAD":
                    out.add((m, r.path))

    walk(app.routes)
    # cross-check with the OpenAPI document so a future FastAPI cannot hide routes from us
    for path, ops in app.openapi()["paths"].items():
        for m in ops:
            assert (m.upper(), path) in out, (m, path)
    return out
