"""The platform role against a real peer (Q13.2; Q12.1, N12.1): sipp acts as a GB/T 28181
NVR that registers with digest, keeps alive, answers VIIS's Catalog query with a catalog
split over two MESSAGEs in GB2312 (one name GB2312 cannot encode) and its DeviceInfo; VIIS
stores the channels as cameras, marks the device offline after 3 missed keepalives with a
health fault, and clears the fault when the device is back. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from tests.interconnect.gb_helpers import (
    CH1,
    CH2,
    DEV,
    GROUP,
    SCEN,
    SIPP,
    make_app,
    sipp,
    started,
    until,
)
from viis.health.models import Fault
from viis.interconnect.gb28181.devices import gb_url
from viis.interconnect.gb28181.service import fault_kind
from viis.registry.models import Camera

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp not installed (apt-get install sip-tester)")


def _faults(app):
    with app.db.session() as s:
        return {(f.kind, f.cleared_ms is None) for f in s.scalars(select(Fault))}


def test_device_registers_answers_a_split_catalog_and_goes_offline_after_3_missed_keepalives(
        tmp_path, db, clock):
    app = make_app(tmp_path, db, clock)

    async def run():
        svc = await started(app)
        events = []
        svc.listeners.append(lambda ev, p: events.append(ev))
        try:
            rc, out = await sipp("gb_device_catalog.xml", svc.port, tmp_path,
                                 "-oocsf", str(SCEN / "gb_device_catalog_ooc.xml"))
            assert rc == 0, out
            assert await until(lambda: not svc.platform.peers[DEV].online, 10), \
                svc.diagnose(DEV)
            assert "no keepalive" in svc.platform.peers[DEV].cause
            assert DEV in svc._subscriptions  # Catalog SUBSCRIBE accepted after the queries
            assert "SUBSCRIBE" not in svc.platform.peers[DEV].last_error
            assert await until(lambda: (fault_kind(DEV), True) in _faults(app), 10)
            with app.db.session() as s:
                chans = {c.channel_id: c for c in svc.store.channels(s, DEV)}
                dev = svc.store.get(s, DEV)
                cams = {c.main_url: c.name for c in s.scalars(select(Camera))}
                assert set(chans) == {CH1, CH2, GROUP}
                assert chans[CH1].status == "ON" and chans[CH2].status == "OFF"
                assert chans[CH1].ptz_type == 1
                assert cams == {gb_url(DEV, CH1): "大门", gb_url(DEV, CH2): "停车场 镕"}
                assert dev.catalog_ms is not None and dev.channel_count == 2
                assert (dev.name, dev.model) == ("NVR-一号楼", "GB-NVR-1")  # DeviceInfo
                assert not dev.online and dev.host == "127.0.0.1"
            # back: registering again brings it online and clears the fault
            rc, out = await sipp("gb_device_register.xml", svc.port, tmp_path)
            assert rc == 0, out
            assert await until(lambda: (fault_kind(DEV), True) not in _faults(app), 10)
            assert (fault_kind(DEV), False) in _faults(app)
        finally:
            await svc.stop()
        return events

    events = asyncio.run(run())
    assert events[:2] == ["registered", "offline"], events
    assert "online" in events[2:] or "refreshed" in events[2:], events


def test_a_device_known_before_a_restart_is_offline_until_it_keeps_alive(tmp_path, db, clock):
    app = make_app(tmp_path, db, clock)

    async def first():
        svc = await started(app, catalog_on_register=False)
        try:
            rc, out = await sipp("gb_device_register.xml", svc.port, tmp_path)
            assert rc == 0, out
            await svc.flush()
        finally:
            await svc.stop()

    async def second():
        svc = await started(app, catalog_on_register=False)
        try:
            p = svc.platform.peers[DEV]
            assert p.registered and not p.online and "restarted" in p.cause
            d = svc.diagnose(DEV)
            assert d["known"] and not d["online"] and "restarted" in d["cause"]
            with app.db.session() as s:
                assert not svc.store.get(s, DEV).online
            # a keepalive alone (its registration has not run out) brings it back
            rc, out = await sipp("gb_device_keepalive.xml", svc.port, tmp_path)
            assert rc == 0, out
            assert p.online
            await svc.flush()
            with app.db.session() as s:
                assert svc.store.get(s, DEV).online
        finally:
            await svc.stop()

    asyncio.run(first())
    asyncio.run(second())


def test_the_catalog_is_queried_again_periodically(tmp_path, db, clock):
    app = make_app(tmp_path, db, clock, catalog_interval_s=1)

    async def run():
        svc = await started(app)
        try:
            rc, out = await sipp("gb_device_catalog.xml", svc.port, tmp_path,
                                 "-oocsf", str(SCEN / "gb_device_catalog_ooc.xml"))
            assert rc == 0, out
            return svc.catalog_syncs
        finally:
            await svc.stop()

    assert asyncio.run(run()) >= 2  # the device stays 4 s: on register, then after 1 s


def test_a_device_with_its_own_password_registers_with_it_and_not_the_platform_one(
        tmp_path, db, clock):
    app = make_app(tmp_path, db, clock, **{f"device_passwords__{DEV}": "own-pass-7"})

    async def run():
        svc = await started(app, catalog_on_register=False)
        try:
            rc, out = await sipp("gb_device_wrong_password.xml", svc.port, tmp_path)
            assert rc == 0, out  # the platform password is wrong for this device: 403
            rc, out = await sipp("gb_device_register.xml", svc.port, tmp_path,
                                 password="own-pass-7")
            assert rc == 0, out
            assert svc.platform.peers[DEV].registered
        finally:
            await svc.stop()

    asyncio.run(run())


def test_a_taken_sip_port_stops_viis_run_with_a_clear_message(tmp_path, db, clock):
    import socket

    from viis.core.errors import ConfigError
    from viis.interconnect.gb28181.service import start_with

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        app = make_app(tmp_path, db, clock, port=taken.getsockname()[1])
        with pytest.raises(ConfigError, match="cannot listen for SIP"):
            asyncio.run(start_with(app))


def test_catalog_events_sent_by_the_device_update_status_and_disable_removed_channels(
        tmp_path, db, clock):
    app = make_app(tmp_path, db, clock)

    async def run():
        svc = await started(app)
        try:
            rc, out = await sipp("gb_device_catalog_events.xml", svc.port, tmp_path,
                                 "-oocsf", str(SCEN / "gb_device_catalog_ooc.xml"))
            assert rc == 0, out

            def state():
                with app.db.session() as s:
                    chans = {c.channel_id: c for c in svc.store.channels(s, DEV)}
                    cams = {c.main_url: c.enabled for c in s.scalars(select(Camera))}
                return chans, cams

            assert await until(lambda: CH2 in state()[0] and state()[0][CH2].removed, 10)
            chans, cams = state()
            assert chans[CH1].status == "OFF" and not chans[CH1].removed
            assert cams == {gb_url(DEV, CH1): True, gb_url(DEV, CH2): False}  # kept, disabled
        finally:
            await svc.stop()

    asyncio.run(run())


def test_a_catalog_subscription_brings_channel_changes_as_notifies(tmp_path, db, clock):
    app = make_app(tmp_path, db, clock)
    with app.db.session() as s:  # the channels are known from an earlier catalog
        from viis.interconnect.gb28181.devices import DeviceStore

        DeviceStore(app.cameras).sync_catalog(s, DEV, [
            {"DeviceID": CH1, "Name": "大门", "Parental": "0", "Status": "ON"},
            {"DeviceID": CH2, "Name": "停车场", "Parental": "0", "Status": "ON"}],
            True, clock.wall_ms())

    async def run():
        svc = await started(app, catalog_on_register=False)
        try:
            dev = asyncio.create_task(sipp("gb_device_catalog.xml", svc.port, tmp_path,
                                           "-oocsf", str(SCEN / "gb_device_subscribe_ooc.xml")))
            assert await until(lambda: DEV in svc.platform.peers
                               and svc.platform.peers[DEV].registered, 15)
            assert await svc.subscribe_catalog(DEV) == 3600
            assert DEV in svc._subscriptions  # renewed before it runs out

            def state():
                with app.db.session() as s:
                    return {c.channel_id: (c.status, c.removed) for c in svc.store.channels(s, DEV)}

            assert await until(lambda: state()[CH2][1], 10), state()
            assert state()[CH1] == ("OFF", False)
            rc, out = await dev
            assert rc == 0, out
        finally:
            await svc.stop()

    asyncio.run(run())
