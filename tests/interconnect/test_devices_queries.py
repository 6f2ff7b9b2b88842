"""Queries and media dialogs to a device below us (Q13.2; Q12.1, N12.1), against sipp as
the device: RecordInfo of a channel aggregated over a split answer (times read as Beijing
time, sorted), DeviceStatus, and invite_device / bye as the GB recorder source uses them —
ended by VIIS, and ended by the device."""

from __future__ import annotations

import asyncio

import pytest

from tests.interconnect.gb_helpers import (
    CH1,
    DEV,
    SCEN,
    SERVER,
    SIPP,
    make_app,
    sipp,
    started,
    until,
)
from viis.interconnect.gb28181.service import DeviceError

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp not installed (apt-get install sip-tester)")
BEIJING_0800 = 1_767_225_600_000  # 2026-01-01T08:00:00 Beijing = 00:00Z
OFFER = (f"v=0\r\no={SERVER} 0 0 IN IP4 127.0.0.1\r\ns=Play\r\nc=IN IP4 127.0.0.1\r\n"
         "t=0 0\r\nm=video 30000 RTP/AVP 96\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\n"
         "y=0100000001\r\n")


async def _with_device(tmp_path, db, clock, ooc: str, fn):
    app = make_app(tmp_path, db, clock)
    svc = await started(app, catalog_on_register=False)
    try:
        dev = asyncio.create_task(sipp("gb_device_catalog.xml", svc.port, tmp_path,
                                       "-oocsf", str(SCEN / ooc)))
        assert await until(lambda: DEV in svc.platform.peers and svc.platform.peers[DEV].online,
                           15), svc.diagnose(DEV)
        result = await fn(svc)
        rc, out = await dev
        assert rc == 0, out
        return result
    finally:
        await svc.stop()


def test_record_info_is_aggregated_over_a_split_answer_and_device_status_read(tmp_path, db, clock):
    async def fn(svc):
        r = await svc.record_info(DEV, CH1, BEIJING_0800, BEIJING_0800 + 3 * 3_600_000)
        st = await svc.device_status(DEV)
        return r, st

    r, st = asyncio.run(_with_device(tmp_path, db, clock, "gb_device_records_ooc.xml", fn))
    assert r.complete and r.sum_num == 3 and r.channel_id == CH1
    assert [x["start_ms"] for x in r.items] == [BEIJING_0800 + h * 3_600_000 for h in (0, 1, 2)]
    assert r.items[2]["end_ms"] == BEIJING_0800 + int(2.5 * 3_600_000)  # "T" or space both read
    assert [x["Type"] for x in r.items] == ["time", "time", "alarm"]
    assert st["Online"] == "ONLINE" and st["Result"] == "OK"


def test_invite_device_gets_the_answer_and_bye_ends_it(tmp_path, db, clock):
    async def fn(svc):
        svc.trace_switch(DEV, True)
        ended = []
        d, answer = await svc.calls.invite(DEV, CH1, OFFER, on_end=lambda d, why: ended.append(why))
        assert d.active and d.data["channel_id"] == CH1 and d.remote_target.startswith(f"sip:{CH1}@")
        await svc.bye(d)
        assert not d.active and ended == []  # our own BYE is not reported back to us
        msgs = svc.trace_read(DEV)["messages"]
        invite = [m for m in msgs if m["first_line"].startswith("INVITE")][0]
        return answer, invite["text"], msgs

    answer, invite, msgs = asyncio.run(_with_device(tmp_path, db, clock, "gb_device_invite_ooc.xml", fn))
    assert "s=Play" in answer and "a=sendonly" in answer and "y=0100000001" in answer
    assert f"INVITE sip:{CH1}@127.0.0.1:" in invite
    assert f"Subject: {CH1}:0100000001,{SERVER}:0" in invite
    assert any(m["first_line"].startswith("ACK") for m in msgs)
    bye = [m for m in msgs if m["first_line"].startswith("BYE")]
    assert bye and bye[0]["direction"] == "out"


def test_a_device_that_hangs_up_ends_the_dialog_and_tells_the_caller(tmp_path, db, clock):
    async def fn(svc):
        ended = asyncio.Event()
        why = []

        def on_end(d, reason):
            why.append(reason)
            ended.set()

        d, _ = await svc.invite_device(DEV, CH1, OFFER)
        d.handlers["end"] = on_end
        await asyncio.wait_for(ended.wait(), 15)  # the device hangs up after 2 s
        assert not d.active and d.terminated_by == "remote"
        return why

    assert asyncio.run(_with_device(tmp_path, db, clock, "gb_device_invite_ooc.xml", fn)) == ["remote"]


def test_invite_to_an_unknown_or_unregistered_device_says_why(tmp_path, db, clock):
    async def run():
        svc = await started(make_app(tmp_path, db, clock), catalog_on_register=False)
        try:
            with pytest.raises(DeviceError, match="never registered"):
                await svc.invite_device("34020000001320000077", CH1, OFFER)
        finally:
            await svc.stop()

    asyncio.run(run())


def test_a_record_answer_naming_the_device_instead_of_the_channel_is_still_matched(
        tmp_path, db, clock):
    async def fn(svc):
        return await svc.record_info(DEV, CH1, BEIJING_0800, BEIJING_0800 + 3 * 3_600_000)

    r = asyncio.run(_with_device(tmp_path, db, clock, "gb_device_records_as_device_ooc.xml", fn))
    assert r.complete and len(r.items) == 3


def test_after_invite_device_the_channels_ps_stream_arrives_with_the_agreed_ssrc(
        tmp_path, db, clock):
    """The recipe of the GB recorder source: receiver first, offer its port and an SSRC,
    INVITE, then PS over RTP from the device (sent here with the same library a device's
    stack would be replaced by) is demultiplexed into frames."""
    from viis.interconnect.gb28181.rtpps import PsReceiver, PsSender
    from viis.interconnect.gb28181.sdp import GbSdp, build_sdp, make_ssrc, parse_sdp

    async def fn(svc):
        frames = []
        ssrc = make_ssrc(SERVER[:10], 7)
        rx = await PsReceiver.open("udp", frames.append, expected_ssrc=int(ssrc),
                                   local_host="127.0.0.1")
        offer = build_sdp(GbSdp(session="Play", origin_id=SERVER, ip="127.0.0.1",
                                port=rx.local_port, ssrc=ssrc))
        d, answer = await svc.invite_device(DEV, CH1, offer)
        agreed = parse_sdp(answer)
        assert agreed.ssrc == ssrc and agreed.direction == "sendonly"
        tx = await PsSender.open("udp", ("127.0.0.1", rx.local_port), agreed.ssrc_int,
                                 local_host="127.0.0.1")
        sps, pps = b"\x67\x42\x00\x1e\xab\x40\x50\x1e\xd0", b"\x68\xce\x3c\x80"
        for i in range(6):
            key = i % 3 == 0
            tx.send_frame([(b"\x65" if key else b"\x41") + bytes([i]) * 3000], i * 3600, key,
                          params=[sps, pps] if key else ())
            await asyncio.sleep(0.02)
        assert await until(lambda: len(frames) >= 5, 10), rx.stats
        await svc.bye(d)
        await tx.close()
        await rx.close()
        return frames, rx.stats

    frames, stats = asyncio.run(_with_device(tmp_path, db, clock, "gb_device_invite_ooc.xml", fn))
    assert frames[0].key and frames[0].codec == "h264"
    assert [f.pts90k for f in frames[:5]] == [i * 3600 for i in range(5)]
    assert stats["ssrc_mismatch"] == 0 and stats["lost"] == 0
