"""Helpers for the console's browser tests: the running console, the untranslated-string
check and reading the simulated cameras' time code from rendered video."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from argon2 import PasswordHasher

from viis.core.config import REPO_ROOT

ADMIN_PASSWORD = "wall-watch-2026!"
CHEAP = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
CATALOGUES = REPO_ROOT / "viis" / "web" / "static" / "i18n"
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"


def wait_until(fn, timeout: float = 30.0, interval: float = 0.2, message: str = ""):
    """Poll ``fn`` until it returns a true value (generous: the machine may be loaded)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(message or f"condition not met within {timeout} s (last: {last!r})")


@dataclass
class Console:
    url: str
    app: Any
    fleet: Any
    ident: Any
    recorder: Any
    api: Any
    loop: asyncio.AbstractEventLoop
    thread: Any
    server: Any
    login: str
    password: str
    token: str = ""
    extra: dict = field(default_factory=dict)

    def http(self, token: str | None = None) -> httpx.Client:
        c = httpx.Client(base_url=self.url, timeout=30)
        if token or self.token:
            c.headers["Authorization"] = f"Bearer {token or self.token}"
        return c

    def sign_in(self, login: str, password: str, new_password: str | None = None) -> str:
        """Sign in through the API; with ``new_password`` do the forced change. -> token."""
        with httpx.Client(base_url=self.url, timeout=30) as c:
            r = c.post("/api/session", json={"login": login, "password": password})
            assert r.status_code == 200, r.text
            token = r.json()["token"]
            if new_password is not None:
                r = c.post("/api/me/password", json={"current": password, "new": new_password},
                           headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 200, r.text
        return token

    def camera_ids(self) -> list[int]:
        with self.app.db.session() as s:
            return [c.id for c in self.app.cameras.list(s)]

    def wait_recording(self, timeout: float = 60.0) -> None:
        def ready():
            st = [self.recorder.status(i) for i in self.camera_ids()]
            return all(x and x["state"] == "recording" for x in st)
        wait_until(ready, timeout, 0.5, "not every simulated camera is recording")

    def call(self, coro, timeout: float = 30.0):
        """Run a coroutine on the console's event loop (the recorder's)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.fleet.stop()
        self.app.close()


# --- translations ----------------------------------------------------------------------
def catalogue(lang: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in sorted((CATALOGUES / lang).glob("*.json")):
        out.update(json.loads(f.read_text(encoding="utf-8")))
    return out


def _template(text: str) -> re.Pattern:
    parts = re.split(r"\{\w+\}", text)
    return re.compile(r"\s*" + r".+?".join(re.escape(" ".join(p.split())) for p in parts) + r"\s*",
                      re.S)


_VISIBLE_TEXT = """() => {
  const out = [];
  const visible = (el) => {
    if (!el || !el.isConnected) return false;
    const st = getComputedStyle(el);
    if (st.visibility === 'hidden' || st.display === 'none') return false;
    return el.getClientRects().length > 0;
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let n;
  while ((n = walker.nextNode())) {
    const el = n.parentElement;
    const text = n.textContent.replace(/\\s+/g, ' ').trim();
    if (!text || !el || el.closest('[data-user-content], script, style')) continue;
    if (el.tagName === 'OPTION' ? !visible(el.closest('select')) : !visible(el)) continue;
    out.push(text);
  }
  for (const el of document.body.querySelectorAll('[placeholder], [title], [aria-label]')) {
    if (el.closest('[data-user-content]') || !visible(el)) continue;
    for (const a of ['placeholder', 'title', 'aria-label']) {
      const v = (el.getAttribute(a) || '').trim();
      if (v) out.push(v);
    }
  }
  return out;
}"""


def untranslated(page, lang: str) -> list[str]:
    """Visible strings of the page (outside ``[data-user-content]``) that are not a text of
    the ``lang`` catalogue (templates with ``{name}`` match any value in its place)."""
    templates = [_template(v) for v in catalogue(lang).values()]
    texts = page.evaluate(_VISIBLE_TEXT)
    return sorted({t for t in texts if not any(p.fullmatch(t) for p in templates)})


def assert_all_translated(page, lang: str) -> None:
    bad = untranslated(page, lang)
    assert not bad, f"strings not in the {lang} catalogue on {page.url}: {bad}"


# --- reading the picture -----------------------------------------------------------------
_GRAB = """(sel) => {
  const out = [];
  for (const v of document.querySelectorAll(sel)) {
    if (!v.videoWidth || v.readyState < 2) { out.push(null); continue; }
    const c = document.createElement('canvas');
    c.width = v.videoWidth; c.height = v.videoHeight;
    const g = c.getContext('2d');
    g.drawImage(v, 0, 0);
    out.push({url: c.toDataURL('image/png'), t: v.currentTime});
  }
  return out;
}"""


def grab_frames(page, selector: str = ".tile video") -> list[np.ndarray | None]:
    """The current picture of each matching <video>, drawn onto a canvas in the page."""
    from PIL import Image

    out: list[np.ndarray | None] = []
    for item in page.evaluate(_GRAB, selector):
        if item is None:
            out.append(None)
            continue
        raw = base64.b64decode(item["url"].split(",", 1)[1])
        out.append(np.asarray(Image.open(io.BytesIO(raw)).convert("L")))
    return out


def read_timecodes(page, selector: str = ".tile video") -> list[int | None]:
    """The simulated cameras' time code (ms within the cycle) of each video's current frame."""
    from viis.simcam.timecode import decode_timecode

    return [None if f is None else decode_timecode(f) for f in grab_frames(page, selector)]


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path))
    return path
