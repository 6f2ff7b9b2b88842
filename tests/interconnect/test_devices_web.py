"""REST API of the platform role (Q13.2): peers with a plain-language diagnosis, channels,
the per-peer SIP trace switch, PTZ; who may do what (viis.access.policy gb.*, Q13.1 levels),
and hostile input refused with a clear 4xx before anything reaches a device. A real sipp
device registers, answers the catalog query and receives the PTZ command."""

from __future__ import annotations

import asyncio
import subprocess
import threading

import pytest
from sqlalchemy import select

from tests.access.helpers import Site
from tests.interconnect.gb_helpers import CH1, CH2, DEV, SCEN, SERVER, SIPP, free_udp_port
from viis.core.config import Gb28181Settings
from viis.integrity.models import AuditEntry
from viis.interconnect.gb28181.service import GbPlatformService
from viis.registry.models import Camera

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp not installed (apt-get install sip-tester)")


class Running:
    """The service on its own loop in a thread, as under `viis run` beside the HTTP API."""

    def __init__(self, app) -> None:
        st = Gb28181Settings(enabled=True, host="127.0.0.1", port=0, password="secret",
                             keepalive_s=0.3, query_timeout_s=5)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.svc = GbPlatformService(app, st, flush_interval=0.1)
        asyncio.run_coroutine_threadsafe(self.svc.start(), self.loop).result(30)

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.run(self.svc.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _device(port: int, cwd, ooc: str = "gb_device_catalog_ooc.xml") -> subprocess.Popen:
    return subprocess.Popen(
        [SIPP, f"127.0.0.1:{port}", "-sf", str(SCEN / "gb_device_catalog.xml"),
         "-oocsf", str(SCEN / ooc), "-m", "1", "-l", "1", "-t", "u1",
         "-i", "127.0.0.1", "-p", str(free_udp_port()), "-s", DEV, "-au", DEV, "-ap", "secret",
         "-set", "domain", SERVER[:10], "-set", "server", SERVER, "-timeout", "30",
         "-nostdin"], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def site(tmp_path, db, clock):
    site = Site(tmp_path, db, clock)
    run = Running(site.app)
    site.api.state.gb28181 = run.svc
    dev = _device(run.svc.port, tmp_path)
    try:
        ok = _wait(lambda: _cameras(site) == 2)
        assert ok, run.svc.diagnose(DEV)
        site.run = run
        yield site
    finally:
        dev.terminate()
        dev.wait(10)
        run.stop()


def _wait(cond, timeout=20.0) -> bool:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


def _cameras(site) -> int:
    with site.app.db.session() as s:
        return len(list(s.scalars(select(Camera))))


def _as(site, login, roles, clearance=5):
    site.user(login, roles, clearance=clearance)
    return site.sign_in(login)


def test_peers_are_listed_with_state_diagnosis_and_channels(site):
    maint = _as(site, "maint1", ("maintainer",))
    r = maint.get("/api/gb28181/devices")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["enabled"] is True
    (d,) = body["devices"]
    assert d["device_id"] == DEV and d["registered"] and d["address"].startswith("127.0.0.1:")
    assert d["cause"] and "password" not in str(d).lower()
    r = maint.get(f"/api/gb28181/devices/{DEV}")
    chans = {c["channel_id"]: c for c in r.json()["channels"]}
    assert chans[CH1]["name"] == "大门" and chans[CH2]["name"] == "停车场 镕"
    assert chans[CH1]["camera_id"] and chans[CH1]["ptz_type"] == 1
    assert maint.get(f"/api/gb28181/devices/{DEV}/channels").json() == r.json()["channels"]
    r = maint.get("/api/gb28181/devices/34020000001320009999")
    assert r.status_code == 404 and "never registered" in r.json()["error"]


def test_hostile_ids_and_bodies_are_refused_with_a_clear_4xx(site):
    op = _as(site, "oper1", ("operator_on_duty",))
    for bad in ("abc!", "x" * 33, "%00"):
        r = op.get(f"/api/gb28181/devices/{bad}")
        assert r.status_code == 422 and "device_id" in r.json()["error"], (bad, r.text)
    ptz = f"/api/gb28181/devices/{DEV}/channels/{CH1}/ptz"
    assert op.post(f"/api/gb28181/devices/{DEV}/channels/a;b/ptz",
                   json={"action": "left"}).status_code == 422
    r = op.post(ptz, json={"action": "self_destruct"})
    assert r.status_code == 422 and "action" in r.json()["error"]
    assert op.post(ptz, json={"action": "left", "speed": 999}).status_code == 422
    assert op.post(ptz, json={"action": "left", "extra": 1}).status_code == 422
    r = op.post(ptz, json={"action": "preset_call"})
    assert r.status_code == 422 and "preset" in r.json()["error"]
    r = op.post(ptz, content=b"{" + b" " * 2_000_000 + b"}",
                headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    with site.app.db.session() as s:  # nothing was sent, so nothing was audited
        assert not list(s.scalars(select(AuditEntry).where(AuditEntry.kind == "gb28181.ptz")))


def test_trace_switch_and_ptz_reach_the_device_and_are_audited(site):
    maint = _as(site, "maint1", ("maintainer",))
    op = _as(site, "oper1", ("operator_on_duty",))
    assert op.put(f"/api/gb28181/devices/{DEV}/trace", json={"enabled": True}).status_code == 403
    r = maint.put(f"/api/gb28181/devices/{DEV}/trace", json={"enabled": True})
    assert r.status_code == 200 and r.json()["enabled"]
    r = op.post(f"/api/gb28181/devices/{DEV}/channels/{CH1}/ptz",
                json={"action": "right", "speed": 128})
    assert r.status_code == 200, r.text
    assert r.json()["sent"] == "A50F0101808000B6"  # the notes' example: pan right at 0x80
    r = maint.get(f"/api/gb28181/devices/{DEV}/trace")
    assert r.status_code == 200 and r.json()["enabled"]
    msgs = r.json()["messages"]
    out = [m for m in msgs if m["direction"] == "out" and "DeviceControl" in m["text"]]
    assert out and "A50F0101808000B6" in out[0]["text"], msgs
    assert any(m["direction"] == "in" and m["first_line"].startswith("SIP/2.0 200")
               for m in msgs)
    assert maint.put(f"/api/gb28181/devices/{DEV}/trace", json={"enabled": False}).json() == \
        {"device_id": DEV, "enabled": False}
    assert not maint.get(f"/api/gb28181/devices/{DEV}").json()["trace"]
    with site.app.db.session() as s:
        kinds = [e.kind for e in s.scalars(select(AuditEntry).where(
            AuditEntry.kind.in_(("gb28181.ptz", "gb28181.trace"))))]
    assert kinds.count("gb28181.trace") == 2 and kinds.count("gb28181.ptz") == 1


def test_ptz_is_for_those_who_watch_live_and_within_their_clearance(site):
    with site.app.db.session() as s:
        cam = s.scalar(select(Camera).where(Camera.main_url.endswith(CH1)))
        cam.security_level = 3
    url = f"/api/gb28181/devices/{DEV}/channels/{CH1}/ptz"
    for role in ("unit_admin", "auditor", "platform_admin", "police_investigator"):
        r = _as(site, role, (role,)).post(url, json={"action": "stop"})
        assert r.status_code == 403, (role, r.text)
    assert site.admin.post(url, json={"action": "stop"}).status_code == 403  # bootstrap token
    low = _as(site, "lowlevel", ("operator_on_duty",), clearance=2)
    r = low.post(url, json={"action": "stop"})
    assert r.status_code == 404  # a camera above the clearance is not even named (Q13.1)
    assert _as(site, "maint3", ("maintainer",), clearance=3).post(
        url, json={"action": "zoom_in"}).status_code == 200


def test_without_the_service_the_routes_say_it_is_off(tmp_path, db, clock):
    site = Site(tmp_path, db, clock)
    maint = _as(site, "maint1", ("maintainer",))
    r = maint.get("/api/gb28181/devices")
    assert r.status_code == 200 and r.json() == {"enabled": False, "devices": []}
    r = maint.post(f"/api/gb28181/devices/{DEV}/catalog")
    assert r.status_code == 503 and "enabled = true" in r.json()["error"]


@pytest.fixture
def recorder_site(tmp_path, db, clock):
    """A device that answers RecordInfo from its own storage; its channel is known."""
    from viis.interconnect.gb28181.devices import DeviceStore
    from viis.registry.service import CameraService

    site = Site(tmp_path, db, clock)
    with site.app.db.session() as s:
        DeviceStore(CameraService(site.app.rules, clock)).sync_catalog(
            s, DEV, [{"DeviceID": CH1, "Name": "大门", "Parental": "0"}], True, clock.wall_ms())
    run = Running(site.app)
    site.api.state.gb28181 = run.svc
    dev = _device(run.svc.port, tmp_path, "gb_device_records_ooc.xml")
    try:
        assert _wait(lambda: DEV in run.svc.platform.peers
                     and run.svc.platform.peers[DEV].registered)
        yield site
    finally:
        dev.terminate()
        dev.wait(10)
        run.stop()


def test_a_devices_own_recordings_are_listed_through_the_door(recorder_site):
    from viis.access.retrieval_models import RegisterEntry

    site = recorder_site
    url = (f"/api/gb28181/devices/{DEV}/channels/{CH1}/records"
           "?start=2026-01-01T08:00:00&end=2026-01-01T11:00:00")
    op = _as(site, "oper1", ("operator_on_duty",))
    r = op.get(url)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["complete"] and len(body["records"]) == 3
    assert body["records"][0]["start_ms"] == 1_767_225_600_000  # 08:00 Beijing
    with site.app.db.session() as s:  # the door wrote the use into the register (N16.1)
        assert s.query(RegisterEntry).count() >= 1
    assert _as(site, "cop", ("police_investigator",)).get(url).status_code == 403
    with site.app.db.session() as s:
        s.scalar(select(Camera)).security_level = 4
    assert _as(site, "lowop", ("operator_on_duty",), clearance=3).get(url).status_code == 404
    bad = op.get(f"/api/gb28181/devices/{DEV}/channels/{CH1}/records?start=x&end=y")
    assert bad.status_code in (400, 422)
    long = op.get(f"/api/gb28181/devices/{DEV}/channels/{CH1}/records"
                  "?start=2026-01-01T00:00:00&end=2026-03-01T00:00:00")
    assert long.status_code == 422 and "31 days" in long.json()["error"]


def test_a_device_refused_for_a_wrong_password_is_listed_with_that_cause(site, tmp_path):
    other = "34020000001320000055"
    done = subprocess.run(
        [SIPP, f"127.0.0.1:{site.run.svc.port}", "-sf", str(SCEN / "gb_device_wrong_password.xml"),
         "-m", "1", "-l", "1", "-t", "u1", "-i", "127.0.0.1", "-p", str(free_udp_port()),
         "-s", other, "-au", other, "-ap", "not-the-password", "-set", "domain", SERVER[:10],
         "-set", "server", SERVER, "-timeout", "20", "-timeout_error", "-nostdin"],
        cwd=tmp_path, capture_output=True, timeout=40)
    assert done.returncode == 0, done.stdout[-2000:]
    r = _as(site, "maint1", ("maintainer",)).get("/api/gb28181/devices")
    views = {d["device_id"]: d for d in r.json()["devices"]}
    assert views[DEV]["registered"]
    assert not views[other]["registered"] and "wrong password" in views[other]["cause"]
    site.run.run(site.run.svc.flush())
    with site.app.db.session() as s:  # never registered: not written (a scan fills nothing)
        assert site.run.svc.store.get(s, other) is None
        assert site.run.svc.store.get(s, DEV) is not None
