"""Per-peer SIP trace switchable at runtime, and plain-language causes (Q13.1, Q13.2)."""

import asyncio
import socket
import time

from viis.interconnect.gb28181 import causes
from viis.interconnect.gb28181.clock import ManualClock
from viis.interconnect.gb28181.manscdp import CatalogAssembler, catalog_responses, parse
from viis.interconnect.gb28181.platform import Platform, PlatformConfig
from viis.interconnect.gb28181.sip import parse as sip_parse
from viis.interconnect.gb28181.trace import SipTrace

DEV = "34020000001320000001"
OTHER = "34020000001320000002"
SERVER = "34020000002000000001"


def register(dev: str, port: int, extra: str = "") -> bytes:
    return (
        f"REGISTER sip:{SERVER}@3402000000 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bK{dev[-4:]}{time.monotonic_ns()}\r\n"
        f"From: <sip:{dev}@3402000000>;tag=t{dev[-4:]}\r\nTo: <sip:{dev}@3402000000>\r\n"
        f"Call-ID: c{dev}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{dev}@127.0.0.1:{port}>\r\n"
        f"{extra}Expires: 3600\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_trace_of_a_real_platform_records_only_the_enabled_peer():
    async def run():
        p = Platform(PlatformConfig(host="127.0.0.1", port=0, password="s", tcp=False))
        trace = p.trace
        assert p.tracer is None  # off by default: the hot path pays nothing
        await p.start()
        port = p.addresses["UDP"][1]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            p.set_trace(DEV)
            p.set_trace("127.0.0.1")
            s.sendto(b"\xff" * 50, ("127.0.0.1", port))  # unparseable: kept under the address
            for dev in (DEV, OTHER):
                s.sendto(register(dev, s.getsockname()[1]), ("127.0.0.1", port))
                assert sip_parse(await asyncio.wait_for(loop.sock_recv(s, 65535), 5)).status == 401
            auth = 'Authorization: Digest username="x", realm="3402000000", nonce="n", ' \
                   f'uri="sip:{SERVER}@3402000000", response="0123456789abcdef0123456789abcdef"\r\n'
            s.sendto(register(DEV, s.getsockname()[1], auth), ("127.0.0.1", port))
            await asyncio.wait_for(loop.sock_recv(s, 65535), 5)
            p.set_trace(DEV, on=False)
            p.set_trace("127.0.0.1", on=False)
            assert p.tracer is None
        finally:
            s.close()
            await p.stop()
        return trace

    trace = asyncio.run(run())
    got = trace.get(DEV)
    assert [e["direction"] for e in got] == ["in", "out", "in", "out"]
    assert got[0]["first_line"].startswith("REGISTER") and got[1]["first_line"].startswith("SIP/2.0 401")
    assert got[0]["addr"].startswith("127.0.0.1:") and got[0]["size"] > 100
    assert "0123456789abcdef" not in got[2]["text"] and 'response="***' in got[2]["text"]
    assert trace.get(OTHER) == [] and trace.get(SERVER) == []
    by_addr = trace.get("127.0.0.1")
    assert by_addr[0]["first_line"].startswith("[unparseable") and len(by_addr) == 7


def test_a_password_cut_by_the_truncation_is_still_masked():
    """A catalog item's <Password> that the max_text cut leaves without its closing tag must
    not show its first characters."""
    t = SipTrace(max_text=100)
    t.enable("p")
    for body in (b"x" * 80 + b"<Password>supersecretvalue123</Password>",
                 b"x" * 20 + b"<password>supersecretvalue123</password>" + b"y" * 100):
        t.record("p", "in", body, ("10.0.0.1", 5060))
    texts = [e["text"] for e in t.get("p")]
    assert all("supersecre" not in x for x in texts), texts
    assert texts[0].endswith("<Password>***") and "<password>***</password>" in texts[1]


def test_nothing_enabled_costs_almost_nothing():
    trace = SipTrace()
    msg = sip_parse(register(DEV, 5060))
    t = time.perf_counter()
    for _ in range(100_000):
        trace("in", msg, ("1.2.3.4", 5060))
    per_call = (time.perf_counter() - t) / 100_000
    assert per_call < 5e-6  # a few hundred ns on an idle core; generous for a loaded one


def test_switch_off_expiry_ring_buffer_and_clear():
    clock = ManualClock()
    trace = SipTrace(clock=clock, per_peer=3)
    msg = sip_parse(register(DEV, 5060))
    trace.enable(DEV, duration_s=60)
    for _ in range(5):
        trace("in", msg, ("10.0.0.9", 5060), "UDP")
    assert len(trace.get(DEV)) == 3  # ring buffer keeps the newest
    clock.advance(61)
    assert not trace.enabled(DEV)
    trace("in", msg, ("10.0.0.9", 5060))
    assert len(trace.get(DEV)) == 3 and trace.peers()[DEV]["enabled"] is False
    trace.enable(DEV)
    assert trace.enabled(DEV)
    trace.disable(DEV)
    assert not trace.enabled(DEV) and len(trace.get(DEV)) == 3
    trace.clear(DEV)
    assert trace.get(DEV) == [] and not trace.active


def test_trace_by_address_catches_unknown_ids_and_unparseable_input():
    trace = SipTrace()
    trace.enable("10.0.0.9")
    trace("in", sip_parse(register("999", 5060)), ("10.0.0.9", 5061), "UDP")
    trace.record_raw(("10.0.0.9", 5061), b"\xff\xfegarbage", "no start line")
    trace.record_raw(("10.0.0.8", 5061), b"other", "no start line")
    got = trace.get("10.0.0.9")
    assert len(got) == 2 and got[1]["first_line"].startswith("[unparseable")


def test_trace_shows_the_wire_content_length_and_masks_catalog_passwords():
    body = b"<Response><CmdType>Catalog</CmdType><Password>hunter2</Password></Response>"
    raw = (f"MESSAGE sip:{SERVER}@3402000000 SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\n"
           f"From: <sip:{DEV}@3402000000>;tag=a\r\nTo: <sip:{SERVER}@3402000000>\r\nCall-ID: x\r\n"
           "CSeq: 2 MESSAGE\r\nContent-Length: 9999\r\n\r\n").encode() + body
    trace = SipTrace()
    trace.enable(DEV)
    trace("in", sip_parse(raw), ("1.2.3.4", 5060))
    text = trace.get(DEV)[0]["text"]
    assert "Content-Length: 9999" in text and "hunter2" not in text


def test_endpoint_style_hook_signature_and_peer_limit():
    trace = SipTrace(max_peers=1)
    trace.enable(DEV)
    trace("out", sip_parse(register(DEV, 5060)), ("1.2.3.4", 5060), "TCP")
    assert trace.get(DEV)[0]["transport"] == "TCP"
    try:
        trace.enable(OTHER)
    except ValueError as e:
        assert "at most 1" in str(e)
    else:
        raise AssertionError("peer limit not enforced")


# ---- causes ----------------------------------------------------------------------------

def test_register_causes_for_the_cascade():
    """The cascade's REGISTER causes live in the one table, as ``cascade-*``."""
    kw = dict(host="10.0.0.1", port=5060, transport="UDP", name="city",
              local_id="34020000002000000009")
    assert "password configured here for city" in causes.explain(
        "cascade-wrong-password", status=403, **kw)
    assert "does not know our platform ID 34020000002000000009" in causes.explain(
        "cascade-unknown-id", status=404, **kw)
    assert "400 Bad" in causes.explain("cascade-bad-request", reason="Bad", **kw)
    assert "firewall" in causes.explain("cascade-unreachable", **kw)
    assert "realm '3402000000'" in causes.explain("cascade-rechallenged", realm="3402000000")


def test_stream_causes():
    assert "never arrived" in causes.stream_cause({"packets": 0}, expected_ssrc=200000001,
                                                  waited=10, sdp_address="192.168.1.10:30000")
    c = causes.stream_cause({"packets": 0, "ssrc_mismatch": 50, "last_ssrc": 7},
                            expected_ssrc=200000001, waited=10)
    assert "SSRC mismatch" in c and "200000001" in c
    assert "nobody connected" in causes.stream_cause({"packets": 0}, expected_ssrc=1, waited=5,
                                                     mode="tcp-passive", connected=False)
    assert causes.stream_cause({"packets": 9, "last_packet_at": 100.0}, expected_ssrc=1,
                               waited=5, now=101.0) is None
    assert "stopped" in causes.stream_cause({"packets": 9, "last_packet_at": 100.0},
                                            expected_ssrc=1, waited=5, now=130.0)


def test_address_and_charset_causes():
    assert causes.address_cause(("192.168.1.64", 5060), ("192.168.1.64", 5060)) is None
    assert "NAT" in causes.address_cause(("192.168.1.64", 5060), ("203.0.113.5", 40000))
    assert causes.charset_cause("GB2312", "gb18030") is None
    assert "declares GB2312 but is UTF-8" in causes.charset_cause("GB2312", "utf-8")


def test_catalog_incomplete_cause_from_a_timed_out_assembly():
    clock = ManualClock()
    out = []
    a = CatalogAssembler(clock, timeout=5, on_result=out.append)
    items = [{"DeviceID": f"3402000000132{i:07d}", "Name": "x"} for i in range(9)]
    a.add(parse(catalog_responses(DEV, 1, items, per_message=4)[0]))
    clock.advance(6)
    c = causes.catalog_cause(out[0])
    assert "4 of 9 channels arrived in 1 messages" in c and "TCP" in c


def test_platform_cause_texts_are_the_shared_ones():
    from viis.interconnect.gb28181 import platform

    for code, text in platform.CAUSES.items():
        assert causes.CAUSES[code] == text
    assert causes.explain("nope") == "nope"


def test_platform_refuses_a_doctype_message_from_a_registered_device():
    """Hostile XML is refused by the platform before any service sees it (N12.1)."""
    from tests.interconnect.test_platform import DEV as PDEV
    from tests.interconnect.test_platform import Device, _platform

    p, clock, events = _platform()
    d = Device(p)
    assert d.register_with_auth().status == 200
    bomb = (b'<?xml version="1.0"?><!DOCTYPE n [<!ENTITY a "aaaaaaaaaa">]><Notify><CmdType>'
            b"Keepalive</CmdType><SN>1</SN><DeviceID>x</DeviceID></Notify>")
    assert d.keepalive(body=bomb).status == 400
    assert "DOCTYPE" in p.peers[PDEV].last_error
