"""Cascade up, answers (Q13.1: what an upper platform sees is its share list, filtered by
security level; Q12.1, N12.1: GB/T 28181 MANSCDP in the upper's charset). The upper is a
bare SIP endpoint on loopback that sends the queries and keeps what it receives."""

import asyncio
from contextlib import asynccontextmanager
from types import SimpleNamespace

import pytest

from tests.interconnect.cascade_helpers import (
    CH,
    LOCAL,
    UPPER,
    RecordingUpper,
    add_camera,
    add_upper,
    app_on,
    share,
    wait_for,
)
from viis.core.errors import ValidationFailed
from viis.interconnect.gb28181 import manscdp
from viis.interconnect.gb28181.cascade import Cascade
from viis.interconnect.gb28181.cascade_answers import gb_time, parse_gb_time, parse_query
from viis.interconnect.gb28181.cascade_store import UpperPlatform

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z = 08:00 in Beijing


def q(cmd, sn=7, device=LOCAL, extra="", enc="GB2312"):
    return (f'<?xml version="1.0" encoding="{enc}"?>\r\n<Query>\r\n<CmdType>{cmd}</CmdType>\r\n'
            f"<SN>{sn}</SN>\r\n<DeviceID>{device}</DeviceID>\r\n{extra}</Query>\r\n").encode()


async def lower_and_upper(app, charset="GB2312", transport="UDP", status=None, level=1):
    up = await RecordingUpper(transport=transport).start()
    u = add_upper(app, up.port, charset=charset, transport=transport, level=level,
                  keepalive_s=5, register_expires=3600)
    c = Cascade(app, host="127.0.0.1", port=0, t1=0.05, status_fn=status, status_poll_s=0)
    await c.start()
    assert await wait_for(lambda: c.clients[u.id].registered)
    return up, u, c


@asynccontextmanager
async def registered(app, **kw):
    """``lower_and_upper`` as a block: (upper, its entry, the cascade), both stopped after."""
    up, u, c = await lower_and_upper(app, **kw)
    try:
        yield up, u, c
    finally:
        await c.stop()
        await up.stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_catalog_is_split_small_per_udp_message_with_sumnum_and_only_shared_cameras(
        sqlite_db, rules):
    app = app_on(sqlite_db)

    async def main():
        cams = [add_camera(app, rules, f"门口摄像机{i}", site=f"东门{i}号") for i in range(7)]
        secret = add_camera(app, rules, "机要室", level=3)
        add_camera(app, rules, "not-shared")
        async with registered(app, level=1) as (up, u, c):
            share(app, u, [{"camera_id": x.id, "channel_id": CH.format(i)}
                           for i, x in enumerate(cams)])
            with pytest.raises(ValidationFailed):  # above the grade: refused (Q13.1)
                share(app, u, [{"camera_id": secret.id, "channel_id": CH.format(99)}])
            r = await up.query(c.local_port, q("Catalog"))
            assert r.status == 200
            assert await wait_for(lambda: sum(x[1].num is not None
                                              for x in up.bodies("Catalog")) >= 2)
            await asyncio.sleep(0.3)
            got = up.bodies("Catalog")
            assert len(got) >= 2  # split
            items = []
            for m, body in got:
                assert body.get("SumNum") == "7" and body.sn == 7 and body.device_id == LOCAL
                assert body.list_tag == "DeviceList" and body.num == len(body.items)
                items += [it["DeviceID"] for it in body.items]
                assert m.body.startswith(b'<?xml version="1.0" encoding="GB2312"?>')
                m.body.decode("gb2312")  # really GB2312
            assert sorted(items) == [CH.format(i) for i in range(7)]
            assert max(up.datagrams) <= 1472, up.datagrams  # one Ethernet frame each
            names = {it["Name"] for _, b in got for it in b.items}
            assert "门口摄像机3" in names and "机要室" not in names

    run(main())


def test_catalog_in_utf8_and_a_name_gb2312_cannot_encode(sqlite_db, rules):
    app = app_on(sqlite_db)

    async def main():
        cam = add_camera(app, rules, "朱镕基路口")  # 镕 is not in GB2312
        for charset in ("GB2312", "UTF-8"):
            up, u, c = await lower_and_upper(app, charset=charset)
            try:
                share(app, u, [{"camera_id": cam.id, "channel_id": CH.format(1)}])
                await up.query(c.local_port, q("Catalog"))
                assert await wait_for(lambda up=up: up.bodies("Catalog"))
                m, body = up.bodies("Catalog")[0]
                assert body.items[0]["Name"] == "朱镕基路口"
                assert f'encoding="{charset}"'.encode() in m.body
            finally:
                await c.stop()
                await up.stop()
                with sqlite_db.session() as s:
                    from viis.interconnect.gb28181 import cascade_store as store
                    store.delete_upper(s, u.id, actor="t", now_ms=1)

    run(main())


def test_device_info_and_status_of_the_platform_and_of_a_channel(sqlite_db, rules):
    app = app_on(sqlite_db)
    online = {}

    async def main():
        a = add_camera(app, rules, "a")
        b = add_camera(app, rules, "b")
        online.update({a.id: True, b.id: False})
        async with registered(app, status=lambda cid: online.get(cid)) as (up, u, c):
            share(app, u, [{"camera_id": a.id, "channel_id": CH.format(1)},
                           {"camera_id": b.id, "channel_id": CH.format(2)}])
            assert (await up.query(c.local_port, q("DeviceInfo", sn=1))).status == 200
            assert (await up.query(c.local_port, q("DeviceStatus", 2, CH.format(2)))).status == 200
            assert (await up.query(c.local_port, q("DeviceStatus", 3, CH.format(1)))).status == 200
            assert (await up.query(c.local_port, q("DeviceInfo", 4, CH.format(9)))).status == 404
            assert await wait_for(lambda: len(up.bodies("DeviceStatus")) == 2)
            info = up.bodies("DeviceInfo")[0][1]
            assert info.device_id == LOCAL and info.get("Channel") == "2"
            assert info.get("Result") == "OK" and info.get("Manufacturer") == "VIIS"
            st = {b.sn: b for _, b in up.bodies("DeviceStatus")}
            assert st[2].get("Online") == "OFFLINE" and st[3].get("Online") == "ONLINE"

    run(main())


def test_record_info_from_the_index_gaps_excluded_and_level_enforced(footage, db, rules):
    app = SimpleNamespace(db=db, clock=footage.clock)

    async def main():
        cam = footage.camera("gate")
        secret = footage.camera("vault", security_level=2)
        for k in range(3):  # 08:00-08:03 Beijing
            footage.segment(cam, T0 + k * 60_000)
        footage.gap(cam, T0 + 180_000, T0 + 300_000)  # 08:03-08:05: camera unreachable
        footage.segment(cam, T0 + 300_000)  # 08:05-08:06
        footage.segment(secret, T0)
        async with registered(app, level=1) as (up, u, c):
            share(app, u, [{"camera_id": cam.id, "channel_id": CH.format(1)}])
            with db.session() as s:  # shared at level 1 ... then raised: never answered
                from viis.interconnect.gb28181.cascade_models import GbShare
                s.add(GbShare(upper_id=u.id, camera_id=secret.id, channel_id=CH.format(2),
                              ptz_allowed=False, created_ms=1))
            window = ("<StartTime>2026-01-01T08:01:30</StartTime>"
                      "<EndTime>2026-01-01T09:00:00</EndTime><Secrecy>0</Secrecy><Type>all</Type>")
            assert (await up.query(c.local_port,
                                   q("RecordInfo", 5, CH.format(1), window))).status == 200
            assert (await up.query(c.local_port,
                                   q("RecordInfo", 6, CH.format(2), window))).status == 404
            assert c.channel(UPPER, CH.format(2)) is None and c.channel(u.id, CH.format(1)) == cam.id
            assert await wait_for(lambda: up.bodies("RecordInfo"))
            await asyncio.sleep(0.2)
            (_, body), = up.bodies("RecordInfo")
            assert body.device_id == CH.format(1) and body.get("SumNum") == "2"
            assert body.list_tag == "RecordList"
            got = [(it["StartTime"], it["EndTime"]) for it in body.items]
            assert got == [("2026-01-01T08:01:30", "2026-01-01T08:03:00"),
                           ("2026-01-01T08:05:00", "2026-01-01T08:06:00")]
            # the timeline went through the one door: one register entry, under the upper
            from sqlalchemy import select

            from viis.access.retrieval_models import RegisterEntry
            with db.session() as s:
                rows = [(e.user_login, e.action, e.camera_id, e.outcome, e.from_ms)
                        for e in s.scalars(select(RegisterEntry))]
            assert rows == [(f"gb28181:{UPPER}", "timeline", cam.id, "allowed", T0 + 90_000)]

    run(main())


def test_catalog_subscribe_then_notify_when_a_shared_camera_goes_offline_and_back(
        sqlite_db, rules):
    app = app_on(sqlite_db)
    online = {}

    async def main():
        a = add_camera(app, rules, "a")
        b = add_camera(app, rules, "b")
        hidden = add_camera(app, rules, "hidden")
        online.update({a.id: True, b.id: True, hidden.id: True})
        async with registered(app, status=lambda cid: online.get(cid)) as (up, u, c):
            share(app, u, [{"camera_id": a.id, "channel_id": CH.format(1)},
                           {"camera_id": b.id, "channel_id": CH.format(2)}])
            await c.poll_status()
            r = await up.query(c.local_port, q("Catalog", 9), method="SUBSCRIBE",
                               headers={"Event": "Catalog;id=1", "Expires": "3600"})
            assert r.status == 200 and r.get("Expires") == "3600" and r.to.tag
            online[a.id] = False
            online[hidden.id] = False  # not shared: no event
            assert await c.poll_status() == 1
            assert await wait_for(lambda: len(up.notifies) == 1)
            n = up.notifies[0]
            assert n.get("Event") == "Catalog;id=1" and n.from_.tag == r.to.tag
            assert n.get("Subscription-State").startswith("active")
            items = list(xml_items(n.body))
            assert items == [(CH.format(1), "OFF")]
            # health: a signal-loss ticket on b turns it OFF too, and its clearing ON again
            ev = {"event": "opened", "at_ms": T0, "ticket": {
                "kind": "video_signal_loss", "camera_id": b.id, "severity": "critical",
                "message": "no keyframe for 30 s"}}
            await c.ticket_event(ev)
            online[a.id] = True
            await c.poll_status()
            await c.ticket_event(ev | {"event": "cleared"})
            assert await wait_for(lambda: len(up.notifies) == 4)
            await asyncio.sleep(0.2)
            events = [x for nn in up.notifies for x in xml_items(nn.body)]
            assert events == [(CH.format(1), "OFF"), (CH.format(2), "OFF"), (CH.format(1), "ON"),
                              (CH.format(2), "ON")]
            seqs = [int(nn.cseq[0]) for nn in up.notifies]
            assert seqs == list(range(seqs[0], seqs[0] + 4))  # one dialog, its CSeq counting
            # refresh inside the subscription's dialog, then end it there (Expires: 0)
            sub = c.clients[u.id].subscriptions[r.call_id]
            for exp, want in (("1800", 1), ("0", 0)):
                rr = await in_dialog_subscribe(up, r, sub, exp, c.local_port)
                assert rr.status == 200 and rr.get("Expires") == exp
                assert len(c.clients[u.id].subscriptions) == want
            online[a.id] = False
            await c.poll_status()
            await asyncio.sleep(0.2)
            assert len(up.notifies) == 4  # unsubscribed: no more NOTIFY

    run(main())


async def in_dialog_subscribe(up, first_response, sub, expires, lower_port):
    """A SUBSCRIBE inside the subscription's dialog (the tags of the first exchange)."""
    frm = first_response.get("From")
    req = up.ep.build_request(
        "SUBSCRIBE", sub.dialog.local_contact.strip("<>"), first_response.get("To"),
        from_=frm.split(";tag=")[0], from_tag=first_response.from_.tag,
        call_id=first_response.call_id, cseq=100 + int(expires == "0"),
        addr=("127.0.0.1", lower_port),
        headers={"Event": "Catalog;id=1", "Expires": expires})
    req.headers.set("To", first_response.get("To"))
    return await up.ep.request(req, ("127.0.0.1", lower_port))


def xml_items(body):
    qq = parse_query(body)
    assert qq.root == "Notify" and qq.cmd == "Catalog"
    for it in qq.items:
        yield it["DeviceID"], it["Event"]


def test_health_faults_become_alarm_notifications_for_uppers_that_see_the_camera(
        sqlite_db, rules):
    app = app_on(sqlite_db)

    async def main():
        a = add_camera(app, rules, "a")
        other = add_camera(app, rules, "other")
        async with registered(app) as (up, u, c):
            share(app, u, [{"camera_id": a.id, "channel_id": CH.format(1)}])
            t = {"kind": "video_black", "severity": "critical", "message": "黑屏 black picture"}
            assert await c.ticket_event({"event": "opened", "at_ms": T0,
                                         "ticket": t | {"camera_id": a.id}}) == 1
            assert await c.ticket_event({"event": "opened", "at_ms": T0,
                                         "ticket": t | {"camera_id": other.id}}) == 0
            assert await c.ticket_event({"event": "acknowledged", "at_ms": T0,
                                         "ticket": t | {"camera_id": a.id}}) == 0
            assert await c.ticket_event({"event": "opened", "at_ms": T0, "ticket": {
                "kind": "disk_full", "severity": "critical", "message": "disk full",
                "camera_id": None}}) == 1
            alarms = up.bodies("Alarm")
            assert [b.device_id for _, b in alarms] == [CH.format(1), LOCAL]
            first = alarms[0][1]
            assert first.get("AlarmPriority") == "1" and first.get("AlarmMethod") == "5"
            assert first.get("AlarmTime") == "2026-01-01T08:00:00"
            assert first.get("AlarmDescription") == "黑屏 black picture"
            # our storage fault goes up as "device alarm / storage disk full" (2/3)
            assert (alarms[1][1].get("AlarmMethod"), alarms[1][1].sections["Info"]["AlarmType"]) \
                == ("2", "3")

    run(main())


def test_requests_from_a_stranger_or_a_spoofed_address_are_refused(sqlite_db, rules):
    app = app_on(sqlite_db)

    async def main():
        up, u, c = await lower_and_upper(app)
        stranger = await RecordingUpper(server_id="44010000002000000009").start()
        try:
            r = await stranger.query(c.local_port, q("Catalog"))
            assert r.status == 403
            c.clients[u.id]._ips = {"10.9.9.9"}  # the configured upper lives elsewhere
            assert (await up.query(c.local_port, q("Catalog"))).status == 403
            assert "refused" in c.diagnose()[0]["warnings"][-1]
        finally:
            await c.stop()
            await up.stop()
            await stranger.stop()

    run(main())


def test_gb_time_round_trip_and_charref_fallback():
    assert gb_time(T0) == "2026-01-01T08:00:00"
    for text in ("2026-01-01T08:00:00", "2026-01-01 08:00:00", "2026-01-01T08:00:00.000",
                 "2026-01-01T00:00:00Z"):
        assert parse_gb_time(text) == T0
    u = UpperPlatform(1, "x", UPPER, UPPER[:10], "h", 1, charset="GB2312", local_id=LOCAL)
    body = manscdp.response("Catalog", 1, LOCAL, {"Name": "镕"}, charset=u.charset)
    assert b"&#38229;" in body and parse_query(body).get("Name") == "镕"


def test_split_keeps_every_body_under_the_limit_and_loses_no_item():
    import random

    rnd = random.Random(7)
    items = [{"DeviceID": f"{i:020d}", "Name": "名" * rnd.randint(1, 120)} for i in range(300)]
    for limit, most in ((1000, 64), (3000, 5), (60_000, 64)):
        bodies = manscdp.catalog_responses(LOCAL, 1, items, per_message=most, max_bytes=limit)
        seen = []
        for b in bodies:
            qq = parse_query(b)
            n = qq.num
            assert n == len(qq.items) and 1 <= n <= most and qq.sum_num == 300
            assert len(b) <= limit or n == 1
            seen += [it["DeviceID"] for it in qq.items]
        assert seen == [f"{i:020d}" for i in range(300)]


def test_sip_trace_of_one_upper_platform_switched_on_at_runtime(sqlite_db, rules):
    app = app_on(sqlite_db)

    async def main():
        async with registered(app) as (up, u, c):
            await up.query(c.local_port, q("DeviceInfo", 1))
            assert c.trace_read(UPPER) == {"enabled": False, "messages": []}
            c.trace_switch(UPPER, True)
            await up.query(c.local_port, q("DeviceInfo", 2))
            assert await wait_for(lambda: len(up.bodies("DeviceInfo")) == 2)
            await asyncio.sleep(0.1)
            got = c.trace_read(UPPER)
            assert got["enabled"]
            dirs = [(m["direction"], m["text"].split(" ", 1)[0]) for m in got["messages"]]
            assert ("in", "MESSAGE") in dirs and ("out", "SIP/2.0") in dirs and ("out", "MESSAGE") in dirs
            assert all("<SN>1</SN>" not in m["text"] for m in got["messages"])  # before the switch
            c.trace_switch(UPPER, False)
            assert not c.trace_read(UPPER)["enabled"]

    run(main())


def test_subscribers_hear_add_and_del_when_what_they_may_see_changes(sqlite_db, rules):
    """Editing the share list, or raising a camera above the grade, is a catalog event for
    the subscribed upper (Q13.1: it must not keep a channel it may no longer see)."""
    app = app_on(sqlite_db)

    async def main():
        a = add_camera(app, rules, "a")
        b = add_camera(app, rules, "b")
        async with registered(app) as (up, u, c):
            share(app, u, [{"camera_id": a.id, "channel_id": CH.format(1)}])
            await c.reload()
            r = await up.query(c.local_port, q("Catalog", 9), method="SUBSCRIBE",
                               headers={"Event": "Catalog;id=2", "Expires": "600"})
            assert r.status == 200
            share(app, u, [{"camera_id": a.id, "channel_id": CH.format(1)},
                           {"camera_id": b.id, "channel_id": CH.format(2)}])
            await c.reload()
            assert await wait_for(lambda: len(up.notifies) == 1)
            with sqlite_db.session() as s:
                from viis.registry.models import Camera
                s.get(Camera, a.id).security_level = 3
            await c.poll_status()
            assert await wait_for(lambda: len(up.notifies) == 2)
            events = [x for n in up.notifies for x in xml_items(n.body)]
            assert events == [(CH.format(2), "ADD"), (CH.format(1), "DEL")]

    run(main())


def test_two_uppers_each_see_their_own_channels_and_invites_reach_the_hook(sqlite_db, rules):
    from viis.interconnect.gb28181.endpoint import InviteAnswer

    app = app_on(sqlite_db)
    other = "44010000002000000001"

    async def main():
        a = add_camera(app, rules, "a")
        b = add_camera(app, rules, "b")
        up1 = await RecordingUpper().start()
        up2 = await RecordingUpper(server_id=other).start()
        u1 = add_upper(app, up1.port, keepalive_s=5, register_expires=3600)
        u2 = add_upper(app, up2.port, server_id=other, keepalive_s=5, register_expires=3600)
        share(app, u1, [{"camera_id": a.id, "channel_id": CH.format(1)}])
        share(app, u2, [{"camera_id": a.id, "channel_id": "44010000001310000001"},
                        {"camera_id": b.id, "channel_id": "44010000001310000002"}])
        c = Cascade(app, host="127.0.0.1", port=0, t1=0.05)
        seen = []

        def hook(upper, req, txn):
            cam = c.channel(upper, req.to.uri.user)
            seen.append((upper.server_id, req.to.uri.user, cam))
            return InviteAnswer(404 if cam is None else 488)

        c.set_invite_handler(hook)
        await c.start()
        try:
            assert await wait_for(lambda: all(x.registered for x in c.clients.values()))
            await up1.query(c.local_port, q("Catalog", 1))
            await up2.query(c.local_port, q("Catalog", 2))
            assert await wait_for(lambda: up1.bodies("Catalog") and up2.bodies("Catalog"))
            await asyncio.sleep(0.3)
            ids1 = [i["DeviceID"] for _, b in up1.bodies("Catalog") for i in b.items]
            ids2 = sorted(i["DeviceID"] for _, b in up2.bodies("Catalog") for i in b.items)
            assert ids1 == [CH.format(1)]
            assert ids2 == ["44010000001310000001", "44010000001310000002"]
            for upx, ch in ((up1, "44010000001310000002"), (up2, "44010000001310000002")):
                with pytest.raises(Exception) as e:
                    await upx.ep.invite(f"sip:{ch}@127.0.0.1:{c.local_port}",
                                        ("127.0.0.1", c.local_port), sdp="v=0\r\n",
                                        to=f"sip:{ch}@{upx.server_id[:10]}")
                assert getattr(e.value, "status", None) in (404, 488)
            assert seen == [(UPPER, "44010000001310000002", None),
                            (other, "44010000001310000002", b.id)]
        finally:
            await c.stop()
            await up1.stop()
            await up2.stop()

    run(main())


def test_hostile_or_odd_queries_from_a_configured_upper_are_answered_not_crashed(
        footage, db, rules):
    app = SimpleNamespace(db=db, clock=footage.clock)

    async def main():
        cam = footage.camera("gate")
        footage.segment(cam, T0)
        async with registered(app) as (up, u, c):
            share(app, u, [{"camera_id": cam.id, "channel_id": CH.format(1)}])
            bad = [b"<Query><CmdType>Catalog", b"\xff\xfe\x00garbage",
                   b'<?xml version="1.0"?><!DOCTYPE q [<!ENTITY x "y">]><Query>&x;</Query>',
                   b"<Query>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</Query>"]
            for body in bad:
                assert (await up.query(c.local_port, body)).status == 400
            odd = q("Catalog", sn=123456789012345)  # absurd SN: answered with SN 0
            assert (await up.query(c.local_port, odd)).status == 200
            assert (await up.query(c.local_port, q("Subscribe", 3))).status == 200  # unknown
            r = await up.query(c.local_port, q("Catalog", 8), method="SUBSCRIBE",
                               headers={"Event": "Catalog;id=8", "Expires": "²"})
            assert r.status == 200 and r.get("Expires") == "3600"  # "²".isdigit() is True
            window = "<StartTime>yesterday</StartTime><EndTime>2026-01-01T09:00:00</EndTime>"
            assert (await up.query(c.local_port, q("RecordInfo", 4, CH.format(1), window))
                    ).status == 200
            alarm = ("<StartTime>2026-01-01T07:00:00</StartTime>"
                     "<EndTime>2026-01-01T09:00:00</EndTime><Type>alarm</Type>")
            assert (await up.query(c.local_port, q("RecordInfo", 5, CH.format(1), alarm))
                    ).status == 200
            edge = "<StartTime>0001-01-01T00:00:00</StartTime><EndTime>2026-01-01T09:00:00</EndTime>"
            assert (await up.query(c.local_port, q("RecordInfo", 6, CH.format(1), edge))
                    ).status == 200  # out of datetime's range: an empty answer, not a crash
            assert await wait_for(lambda: len(up.bodies("RecordInfo")) == 3)
            await asyncio.sleep(0.2)
            for _, b in up.bodies("RecordInfo"):
                assert b.get("SumNum") == "0"
            assert any(b.sn == 0 for _, b in up.bodies("Catalog"))
            assert c.clients[u.id].registered  # nothing of that disturbed the registration

    run(main())


def test_a_fault_raised_in_the_health_layer_reaches_the_upper_as_an_alarm(
        sqlite_db, rules, tmp_path):
    """The wiring viis run uses: a fault raised through viis.health.faults opens a ticket,
    whose event (after commit) reaches the cascade beside the desk's own notifier and goes
    up as an Alarm MESSAGE for the shared channel; a signal loss also turns it OFF."""
    from viis.health.faults import clear_fault, raise_fault
    from viis.health.tickets import TicketDesk

    app = SimpleNamespace(db=sqlite_db, clock=app_on(sqlite_db).clock, rules=rules)
    sent = []

    class Notifier:
        def send(self, ev):
            sent.append(ev.event)

    async def main():
        cam = add_camera(app, rules, "gate")
        up, u, c = await lower_and_upper(app)
        desk = TicketDesk(app, Notifier(), evidence_dir=tmp_path / "evidence")
        try:
            c.attach_health(desk)
            share(app, u, [{"camera_id": cam.id, "channel_id": CH.format(1)}])
            now = app.clock.wall_ms()

            def work(fn, *a, **kw):
                with sqlite_db.session() as s:
                    fn(s, *a, **kw)

            loop = asyncio.get_running_loop()  # faults are raised in worker threads
            await loop.run_in_executor(None, lambda: work(
                raise_fault, "video_signal_loss", "critical", "no keyframe for 30 s", now,
                camera_id=cam.id))
            assert await wait_for(lambda: up.bodies("Alarm"))
            (_, alarm), = up.bodies("Alarm")
            # video loss goes up as a device alarm of type 1, as devices send it to us
            assert alarm.device_id == CH.format(1) and alarm.get("AlarmMethod") == "2"
            assert alarm.sections["Info"]["AlarmType"] == "1"
            assert not c.online(cam.id) and sent == ["opened"]
            await loop.run_in_executor(None, lambda: work(
                clear_fault, "video_signal_loss", now + 1000, camera_id=cam.id))
            assert await wait_for(lambda: c.online(cam.id))
        finally:
            desk.detach()
            await c.stop()
            await up.stop()

    run(main())


def test_catalog_subscriptions_per_upper_are_bounded(sqlite_db, rules):
    """SUBSCRIBE is not authenticated beyond the upper's From and source address (spoofable
    over UDP): the subscriptions one upper holds, and so our dialogs and NOTIFY fan-out, stay
    bounded; the newest subscriptions are the ones kept."""
    from viis.interconnect.gb28181.cascade_client import MAX_SUBSCRIPTIONS

    app = app_on(sqlite_db)

    async def main():
        async with registered(app) as (up, u, c):
            ids = []
            for k in range(MAX_SUBSCRIPTIONS + 3):
                r = await up.query(c.local_port, q("Catalog", 20 + k), method="SUBSCRIBE",
                                   headers={"Event": f"Catalog;id={k}", "Expires": "3600"})
                assert r.status == 200
                ids.append(r.call_id)
            cl = c.clients[u.id]
            assert list(cl.subscriptions) == ids[-MAX_SUBSCRIPTIONS:]
            subscription_dialogs = [d for d in c.endpoint.dialogs.values()
                                    if d.call_id in ids]
            assert len(subscription_dialogs) == MAX_SUBSCRIPTIONS
            assert any("catalog subscriptions at once" in w for w in cl.warnings)

    run(main())
