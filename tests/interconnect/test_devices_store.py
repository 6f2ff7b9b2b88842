"""Catalog sync of devices below us into the camera registry (Q13.2, Q12.1/N12.1), on SQLite
and PostgreSQL: channels become cameras named as the catalog names them, groups do not,
removed channels are disabled and never deleted (invariant 1)."""

from __future__ import annotations

from viis.interconnect.gb28181.devices import (
    DeviceSnapshot,
    DeviceStore,
    channel_kind,
    gb_url,
    parse_gb_url,
)
from viis.registry.models import Camera
from viis.registry.service import CameraInput, CameraService

DEV = "34020000001180000001"  # an NVR
CH1, CH2, CH3 = "34020000001310000001", "34020000001310000002", "34020000001320000003"
GROUP = "34020000002150000001"


def _store(rules, clock) -> DeviceStore:
    return DeviceStore(CameraService(rules, clock))


def _items():
    return [
        {"DeviceID": GROUP, "Name": "一楼", "Parental": "1"},
        {"DeviceID": CH1, "Name": "大门 镕", "Status": "ON", "Parental": "0",
         "Info": {"PTZType": "1"}, "Password": "device-secret"},
        {"DeviceID": CH2, "Name": "停车场", "Status": "OFF", "Parental": "0"},
        {"DeviceID": CH3, "Name": "", "Status": "ONLINE", "Parental": "0"},
    ]


def test_catalog_channels_become_cameras_with_gb_urls_and_chinese_names(db, rules, clock):
    store = _store(rules, clock)
    with db.session() as s:
        res = store.sync_catalog(s, DEV, _items(), True, clock.wall_ms())
        assert len(res.added) == 3 and res.channels == 4
    with db.session() as s:
        cams = {c.main_url: c for c in s.query(Camera)}
        assert cams[gb_url(DEV, CH1)].name == "大门 镕"  # GB2312 cannot encode 镕: kept
        assert cams[gb_url(DEV, CH2)].name == "停车场"
        assert cams[gb_url(DEV, CH3)].name == CH3  # no name: the channel id
        assert gb_url(DEV, GROUP) not in cams
        chans = {c.channel_id: c for c in store.channels(s, DEV)}
        assert chans[GROUP].kind == "group" and chans[GROUP].camera_id is None
        assert chans[CH1].status == "ON" and chans[CH1].ptz_type == 1
        assert chans[CH3].status == "ON"  # ONLINE normalised
        assert "device-secret" not in chans[CH1].info  # a catalog password is never kept
        assert store.get(s, DEV).channel_count == 3


def test_a_channel_gone_from_a_complete_catalog_is_disabled_not_deleted(db, rules, clock):
    store = _store(rules, clock)
    with db.session() as s:
        store.sync_catalog(s, DEV, _items(), True, clock.wall_ms())
    with db.session() as s:  # a partial catalog (split response incomplete) removes nothing
        res = store.sync_catalog(s, DEV, _items()[:2], False, clock.wall_ms())
        assert res.disabled == []
    with db.session() as s:
        res = store.sync_catalog(s, DEV, _items()[:2], True, clock.wall_ms())
        assert len(res.disabled) == 2
    with db.session() as s:
        cams = {c.main_url: c for c in s.query(Camera)}
        assert len(cams) == 3  # nothing deleted: footage rules (invariant 1)
        assert not cams[gb_url(DEV, CH2)].enabled and cams[gb_url(DEV, CH1)].enabled
        assert store.channel(s, DEV, CH2).removed
    with db.session() as s:  # back in the catalog: recorded again
        res = store.sync_catalog(s, DEV, _items(), True, clock.wall_ms())
        assert len(res.updated) == 2
        assert s.query(Camera).filter(Camera.enabled.is_(True)).count() == 3


def test_names_follow_the_catalog_unless_an_operator_renamed_the_camera(db, rules, clock):
    store = _store(rules, clock)
    cams = CameraService(rules, clock)
    with db.session() as s:
        cams.add(s, CameraInput(name="停车场", main_url="rtsp://10.0.0.9/x"))  # name taken
        store.sync_catalog(s, DEV, _items(), True, clock.wall_ms())
    with db.session() as s:
        by_url = {c.main_url: c for c in s.query(Camera)}
        assert by_url[gb_url(DEV, CH2)].name == f"停车场 ({CH2})"
        cams.update(s, by_url[gb_url(DEV, CH1)].id, {"name": "Gate (renamed)"})
    items = _items()
    items[1]["Name"], items[2]["Name"] = "正门", "地下停车场"
    with db.session() as s:
        store.sync_catalog(s, DEV, items, True, clock.wall_ms())
        by_url = {c.main_url: c for c in s.query(Camera)}
        assert by_url[gb_url(DEV, CH1)].name == "Gate (renamed)"
        assert by_url[gb_url(DEV, CH2)].name == "地下停车场"


def test_registration_state_persists(db, rules, clock):
    store = _store(rules, clock)
    snap = DeviceSnapshot(DEV, registered=True, online=True, transport="TCP", host="10.1.1.5",
                          port=5060, registered_ms=clock.wall_ms(),
                          expires_ms=clock.wall_ms() + 3_600_000, status_changed=True)
    with db.session() as s:
        store.save(s, [snap], clock.wall_ms())
        store.save(s, [snap], clock.wall_ms())  # idempotent
    with db.session() as s:
        (d,) = store.list(s)
        assert (d.device_id, d.transport, d.host, d.online) == (DEV, "TCP", "10.1.1.5", True)


def test_channel_kinds_and_urls():
    assert channel_kind({"DeviceID": CH1}) == "video"
    assert channel_kind({"DeviceID": DEV, "Parental": "0"}) == "video"  # NVR as its own channel
    assert channel_kind({"DeviceID": GROUP}) == "group"
    assert channel_kind({"DeviceID": "370200"}) == "group"  # a civil code
    assert channel_kind({"DeviceID": "34020000001340000001"}) == "other"  # alarm input
    assert parse_gb_url(gb_url(DEV, CH1)) == (DEV, CH1)
    assert parse_gb_url("gb28181://a/b/../c") is None


def test_cameras_from_catalogs_get_the_configured_security_level(db, rules, clock):
    store = DeviceStore(CameraService(rules, clock), security_level=3)  # Q13.1
    with db.session() as s:
        store.sync_catalog(s, DEV, _items(), True, clock.wall_ms())
        assert {c.security_level for c in s.query(Camera)} == {3}


def test_catalog_events_set_status_add_and_disable_never_delete(db, rules, clock):
    store = _store(rules, clock)
    with db.session() as s:
        store.sync_catalog(s, DEV, _items(), True, clock.wall_ms())
    new = "34020000001310000009"
    events = [{"DeviceID": CH1, "Event": "VLOST"}, {"DeviceID": CH2, "Event": "DEL"},
              {"DeviceID": new, "Event": "ADD", "Name": "后门", "Parental": "0"},
              {"DeviceID": "34020000001319999999", "Event": "OFF"}]  # unknown: ignored
    with db.session() as s:
        res = store.apply_events(s, DEV, events, clock.wall_ms())
        assert len(res.added) == 1 and len(res.disabled) == 1
    with db.session() as s:
        chans = {c.channel_id: c for c in store.channels(s, DEV)}
        assert chans[CH1].status == "VLOST" and chans[CH2].removed
        assert not chans[CH3].removed  # an event list is not a whole catalog
        cams = {c.main_url: c for c in s.query(Camera)}
        assert len(cams) == 4 and not cams[gb_url(DEV, CH2)].enabled
        assert cams[gb_url(DEV, new)].name == "后门"
