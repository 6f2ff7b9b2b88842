"""Two SipEndpoints on loopback over real UDP and TCP sockets: out-of-dialog requests, digest
retry, INVITE dialogs (ACK, INFO, BYE, CANCEL, re-INVITE), the 2xx retransmission, Timers
G/H/I, and the checks that keep an established dialog safe from other traffic on the same
socket (Q12.1, N12.1: GB/T 28181 signalling; Q13.1, Q13.2: the cascade and the platform role
build on this endpoint)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from pathlib import Path

import pytest

from viis.interconnect.gb28181.clock import ManualClock
from viis.interconnect.gb28181.digest import DigestServer
from viis.interconnect.gb28181.endpoint import InviteAnswer, InviteError, SipEndpoint
from viis.interconnect.gb28181.sip import SipRequest, SipResponse
from viis.interconnect.gb28181.transaction import TransportError

UPPER, DEV, DOMAIN = "34020000002000000001", "34020000001320000001", "3402000000"
SDP_A = "v=0\r\no=up 0 0 IN IP4 127.0.0.1\r\ns=Play\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" \
        "m=video 30000 RTP/AVP 96\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\ny=0100000001\r\n"
SDP_B = SDP_A.replace("recvonly", "sendonly").replace("30000", "40000")
TRANSPORTS = ["UDP", "TCP"]


@contextlib.asynccontextmanager
async def pair(clock_b=None, t1=0.5):
    a = SipEndpoint(UPPER, DOMAIN, "127.0.0.1", 0, t1=t1)
    b = SipEndpoint(DEV, DOMAIN, "127.0.0.1", 0, clock=clock_b, t1=t1)
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.stop()
        await b.stop()


async def until(cond, timeout=10.0, what="condition"):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def addr(ep: SipEndpoint) -> tuple[str, int]:
    return ("127.0.0.1", ep.local_port)


def uri(ep: SipEndpoint) -> str:
    return f"sip:{ep.local_id}@127.0.0.1:{ep.local_port}"


class Session:
    """What the UAS side saw of one INVITE session."""

    def __init__(self) -> None:
        self.acks, self.byes, self.infos = [], [], []
        self.acked = asyncio.Event()
        self.ended = asyncio.Event()

    def answer(self, status=200, sdp=SDP_B) -> InviteAnswer:
        async def on_ack(d, ack):
            self.acks.append(ack)
            self.acked.set()

        def on_bye(d, req):
            self.byes.append((d.terminated_by, req))
            self.ended.set()

        async def on_request(d, req, txn):
            self.infos.append(req.body)
            txn.reply(200)

        return InviteAnswer(status, sdp, on_ack=on_ack, on_bye=on_bye, on_request=on_request)


async def established(a: SipEndpoint, b: SipEndpoint, transport: str = "UDP"):
    """``a`` calls ``b``, which answers 200 with ``SDP_B``; returns (b's Session, a's Dialog)
    once b has the ACK."""
    s = Session()
    b.on_invite(lambda req, txn: s.answer())
    d, _ = await a.invite(uri(b), addr(b), transport, SDP_A, {})
    await asyncio.wait_for(s.acked.wait(), 10)
    return s, d


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


# ---- out of dialog ----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_message_both_ways(transport):
    async def main():
        async with pair() as (a, b):
            got = {"a": [], "b": []}
            for name, ep in (("a", a), ("b", b)):
                async def h(req, txn, name=name):
                    got[name].append((req.body, req.transport))
                    txn.reply(200)
                ep.on_request("MESSAGE", h)
            body = b'<?xml version="1.0" encoding="GB2312"?><Notify><CmdType>Keepalive</CmdType>' \
                   b"</Notify>"
            for src, dst in ((a, b), (b, a)):
                req = src.build_request("MESSAGE", uri(dst), f"sip:{dst.local_id}@{DOMAIN}",
                                        transport=transport, addr=addr(dst), body=body,
                                        content_type="Application/MANSCDP+xml")
                resp = await src.request(req, addr(dst), transport)
                assert resp.status == 200
            assert got == {"a": [(body, transport)], "b": [(body, transport)]}

    run(main())


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("qop", [True, False])
def test_register_with_digest_retry(transport, qop):
    async def main():
        async with pair() as (a, b):
            server = DigestServer(DOMAIN, qop=qop)
            seen = []

            async def register(req, txn):
                seen.append(req)
                res = server.verify(req.get("Authorization"), method="REGISTER",
                                    password="s3cret", now=b.clock.now(), expected_username=DEV)
                if res.ok:
                    txn.reply(200, Expires=req.get("Expires") or "0")
                elif res.should_challenge:
                    txn.reply(401, WWW_Authenticate=server.challenge(b.clock.now()))
                else:
                    txn.reply(403)

            b.on_request("REGISTER", register)
            req = a.build_request("REGISTER", f"sip:{DEV}@{DOMAIN}", f"sip:{UPPER}@{DOMAIN}",
                                  from_=f"sip:{UPPER}@{DOMAIN}", transport=transport,
                                  addr=addr(b), expires=3600)
            resp = await a.request(req, addr(b), transport, credentials=(DEV, "s3cret"))
            assert resp.status == 200 and resp.get("Expires") == "3600"
            assert [r.cseq[0] for r in seen] == [1, 2]
            assert len({r.call_id for r in seen}) == 1 and len({r.from_.tag for r in seen}) == 1
            assert len({r.top_via.branch for r in seen}) == 2
            assert ("qop=auth" in seen[1].get("Authorization")) == qop
            # A wrong password: one retry, then the 403 comes back (no loop).
            req = a.build_request("REGISTER", f"sip:{DEV}@{DOMAIN}", f"sip:{UPPER}@{DOMAIN}",
                                  transport=transport, addr=addr(b), expires=3600)
            resp = await a.request(req, addr(b), transport, credentials=(DEV, "wrong"))
            assert resp.status == 403 and len(seen) == 4

    run(main())


def test_unknown_methods_and_dialog_only_methods_out_of_dialog():
    async def main():
        async with pair() as (a, b):
            async def send(method, to_tag=None):
                to = f"sip:{DEV}@{DOMAIN}" + ("" if to_tag is None else f">;tag={to_tag}")
                to = to if to_tag is None else "<" + to
                req = a.build_request(method, uri(b), to, addr=addr(b))
                return await a.request(req, addr(b))

            assert (await send("SUBSCRIBE")).status == 405
            assert "INVITE" in (await send("OPTIONS")).get("Allow")
            assert (await send("BYE")).status == 481  # BYE for a dialog nobody knows
            assert (await send("INFO")).status == 481
            assert (await send("BYE", to_tag="nosuch")).status == 481
            assert (await send("INVITE")).status == 405  # b has no INVITE handler

    run(main())


# ---- INVITE sessions --------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("bye_from", ["uac", "uas"])
def test_invite_ack_info_bye(transport, bye_from):
    async def main():
        async with pair() as (a, b):
            s = Session()
            invites = []

            async def on_invite(req, txn):
                invites.append(req)
                return s.answer()

            b.on_invite(on_invite)
            d, resp = await a.invite(uri(b), addr(b), transport, SDP_A,
                                     {"Subject": f"{DEV}:0100000001,{UPPER}:0"})
            assert resp.status == 200 and d.remote_sdp == SDP_B and d.local_sdp == SDP_A
            assert invites[0].get("Subject") == f"{DEV}:0100000001,{UPPER}:0"
            assert invites[0].body.decode() == SDP_A
            await asyncio.wait_for(s.acked.wait(), 10)
            (ud,) = b.dialogs.values()
            assert ud.remote_sdp == SDP_A and ud.call_id == d.call_id and ud.transport == transport
            assert (ud.local_tag, ud.remote_tag) == (d.remote_tag, d.local_tag)
            r = await a.in_dialog(d, "INFO", b"PAUSE MANSRTSP/1.0\r\nCSeq: 1\r\n\r\n",
                                  "Application/MANSRTSP")
            assert r.status == 200 and s.infos == [b"PAUSE MANSRTSP/1.0\r\nCSeq: 1\r\n\r\n"]
            if bye_from == "uac":
                assert (await a.bye(d)).status == 200
                await asyncio.wait_for(s.ended.wait(), 10)
                assert s.byes[0][0] == "remote" and s.byes[0][1].method == "BYE"
            else:
                assert (await b.bye(ud)).status == 200
                assert s.byes == []  # our own bye() does not call on_bye
                await until(lambda: not a.dialogs, what="the UAC dialog to end")
                assert d.state == "terminated" and d.terminated_by == "remote"
            assert not a.dialogs and not b.dialogs and len(s.acks) == 1

    run(main())


def test_2xx_retransmitted_until_ack_when_the_first_ack_is_lost():
    async def main():
        async with pair(t1=0.1) as (a, b):
            s = Session()
            b.on_invite(lambda req, txn: s.answer())
            dropped = []

            def lossy(msg, to, transport):
                if isinstance(msg, SipRequest) and msg.method == "ACK" and not dropped:
                    dropped.append(msg)
                    return False
                return True

            a.send_hook = lossy
            d, _ = await a.invite(uri(b), addr(b), "UDP", SDP_A, {})
            await asyncio.wait_for(s.acked.wait(), 10)
            assert dropped and b.stats["2xx_retransmits"] >= 1 and a.stats["ack_resent"] >= 1
            assert len(s.acks) == 1 and b.stats["ack_timeouts"] == 0
            sent = b.stats["2xx_retransmits"]
            await asyncio.sleep(1.0)  # acknowledged: no more retransmissions
            assert b.stats["2xx_retransmits"] == sent
            assert (await a.in_dialog(d, "INFO", b"x", "text/plain")).status == 200

    run(main())


def test_no_ack_within_64_t1_ends_the_session_with_bye():
    async def main():
        clock = ManualClock()
        async with pair(clock_b=clock) as (a, b):
            s = Session()
            b.on_invite(lambda req, txn: s.answer())
            a.send_hook = lambda msg, to, tr: not (isinstance(msg, SipRequest) and msg.method == "ACK")
            d, _ = await a.invite(uri(b), addr(b), "UDP", SDP_A, {})
            assert len(b.dialogs) == 1
            for _ in range(70):  # 35 s of the UAS's clock, letting the sockets work between
                clock.advance(0.5)
                await asyncio.sleep(0.005)
            await asyncio.wait_for(s.ended.wait(), 10)
            assert s.byes == [("ack-timeout", None)] and s.acks == []
            assert b.stats["2xx_retransmits"] >= 5 and b.stats["ack_timeouts"] == 1
            await until(lambda: not a.dialogs, what="the UAC to take the BYE")
            assert d.terminated_by == "remote" and not b.dialogs

    run(main())


def test_non_2xx_timers_g_h_i_on_a_manual_clock():
    async def main():
        clock = ManualClock()
        async with pair(clock_b=clock) as (a, b):
            b.on_invite(lambda req, txn: InviteAnswer(486))
            a.layer.t1 = 5.0  # the caller does not retransmit its INVITE on a slow machine
            out = []
            b.add_trace(lambda d, m, to, tr: out.append(m) if d == "out" else None)

            # 1. The ACK arrives: Timer G stops, Timer I (T4) ends the transaction.
            with pytest.raises(InviteError) as e:
                await a.invite(uri(b), addr(b), "UDP", SDP_A, {})
            assert e.value.status == 486 and e.value.response.to.tag
            await until(lambda: any(t.state == "confirmed" for t in b.layer.servers.values()),
                        what="the ACK for 486")
            clock.advance(4.9)
            assert b.layer.servers
            clock.advance(0.2)
            assert not b.layer.servers
            assert [m.status for m in out if isinstance(m, SipResponse)] == [100, 486]

            # 2. Every ACK lost: Timer G retransmits at T1, 2T1, ... ≤ T2, Timer H at 64·T1.
            out.clear()
            a.send_hook = lambda m, to, tr: not (isinstance(m, SipRequest) and m.method == "ACK")
            with pytest.raises(InviteError):
                await a.invite(uri(b), addr(b), "UDP", SDP_A, {})
            (txn,) = b.layer.servers.values()
            timed_out = []
            txn.on_ack_timeout = lambda: timed_out.append(clock.now())
            for _ in range(66):
                clock.advance(0.5)
                await asyncio.sleep(0.002)
            finals = [m for m in out if isinstance(m, SipResponse) and m.status == 486]
            assert 8 <= len(finals) <= 12  # 0, .5, 1.5, 3.5, 7.5, then every 4 s until 32
            assert timed_out and not b.layer.servers and not b.dialogs

    run(main())


@pytest.mark.parametrize("how", ["cancel", "task"])
def test_cancel_of_a_pending_invite_gets_487(how):
    async def main():
        async with pair() as (a, b):
            started, cancelled, released = asyncio.Event(), [], []
            go = asyncio.Event()

            async def slow(req, txn):
                txn.on_cancel.append(lambda: cancelled.append(req.call_id))
                txn.on_cancel.append(go.set)
                started.set()
                await go.wait()
                # Too late: the answer is dropped, and on_bye releases what it holds.
                return InviteAnswer(200, SDP_B, on_bye=lambda d, r: released.append(
                    (d.terminated_by, d.call_id, r)))

            b.on_invite(slow)
            t = asyncio.create_task(a.invite(uri(b), addr(b), "UDP", SDP_A, {}, call_id="c-1"))
            await asyncio.wait_for(started.wait(), 10)
            await until(lambda: a._pending["c-1"].provisional, what="100 Trying")
            if how == "cancel":
                assert a.cancel("c-1")
                with pytest.raises(InviteError) as e:
                    await t
                assert e.value.status == 487
            else:
                t.cancel()  # the caller gives up: the endpoint sends CANCEL by itself
                with pytest.raises(asyncio.CancelledError):
                    await t
            await until(lambda: cancelled == ["c-1"], what="the CANCEL to reach the handler")
            await until(lambda: released, what="on_bye of the dropped answer")
            assert released == [("cancelled", "c-1", None)]
            assert b.stats["cancelled"] == 1 and not b.dialogs and not a.dialogs
            assert not a.cancel("c-1") or how == "task"

    run(main())


def test_reinvite_refresh_is_answered_and_a_media_change_refused():
    async def main():
        async with pair() as (a, b):
            s, d = await established(a, b)
            # Same offer (a session refresh): 200 with the same answer, ACKed, still one dialog.
            r = await a.in_dialog(d, "INVITE", SDP_A, "application/sdp")
            assert r.status == 200 and r.body.decode() == SDP_B
            (ud,) = b.dialogs.values()
            await until(lambda: not ud.awaiting_ack, what="the re-INVITE's ACK")
            assert b.stats["reinvite_refreshed"] == 1 and len(s.acks) == 1
            # Other media: 488, and the session goes on as it was.
            r = await a.in_dialog(d, "INVITE", SDP_A.replace("30000", "30002"), "application/sdp")
            assert r.status == 488 and "not supported" in r.get("Warning")
            assert (await a.in_dialog(d, "INFO", b"x", "text/plain")).status == 200
            assert d.active and len(b.dialogs) == 1

    run(main())


def test_in_dialog_request_with_wrong_tags_gets_481_and_lower_cseq_500():
    async def main():
        async with pair() as (a, b):
            s, d = await established(a, b)
            for field in ("local_tag", "remote_tag", "call_id"):
                bad = d.make_request("INFO", b"x", "text/plain")
                orig = getattr(d, field)
                if field == "local_tag":
                    bad.headers.set("From", f"{d.local_uri};tag=forged")
                elif field == "remote_tag":
                    bad.headers.set("To", f"{d.remote_uri};tag=forged")
                else:
                    bad.headers.set("Call-ID", "forged-" + orig)
                assert (await a.layer.request(bad, d.peer, "UDP")).status == 481
            assert s.infos == [] and b.stats["unknown_dialog"] == 3
            assert (await a.in_dialog(d, "INFO", b"1", "text/plain")).status == 200
            old = d.make_request("INFO", b"old", "text/plain", cseq=d.local_seq - 2)
            assert (await a.layer.request(old, d.peer, "UDP")).status == 500
            assert (await a.in_dialog(d, "INFO", b"2", "text/plain")).status == 200
            assert s.infos == [b"1", b"2"] and b.stats["cseq_out_of_order"] == 1
            # A BYE with the right Call-ID but a forged tag does not end the dialog.
            bye = d.make_request("BYE")
            bye.headers.set("From", f"{d.local_uri};tag=forged")
            assert (await a.layer.request(bye, d.peer, "UDP")).status == 481
            assert len(b.dialogs) == 1

    run(main())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_hostile_traffic_on_the_same_socket_leaves_the_dialog_alone(transport):
    async def main():
        async with pair() as (a, b):
            s, d = await established(a, b, transport)
            (ud,) = b.dialogs.values()
            junk = [
                b"\x00\xff" * 300,
                b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP",  # truncated
                b"A" * 65_000,
                b"BYE sip:x SIP/2.0\r\nVia: garbage\r\nFrom: <sip:a@b>;tag=" + ud.remote_tag.encode()
                + b"\r\nTo: <sip:c@d>;tag=" + ud.local_tag.encode() + b"\r\nCall-ID: " + d.call_id.encode()
                + b"\r\nCSeq: 99 BYE\r\nContent-Length: 0\r\n\r\n",  # the right ids, a broken Via
                b"ACK sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1"
                b"\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: " + d.call_id.encode() + b"\r\nCSeq: 1 ACK\r\n\r\n",
                b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKnone\r\nFrom: <sip:a@b>;tag=1"
                b"\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
                b"CANCEL sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKnothing\r\n"
                b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: y\r\nCSeq: 1 CANCEL\r\n\r\n",
            ]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                for j in junk:
                    sock.sendto(j, addr(b))
            if transport == "TCP":
                for j in junk:
                    _, w = await asyncio.open_connection(*addr(b))
                    w.write(j + b"\r\n\r\n")
                    await w.drain()
                    w.close()
            await until(lambda: b.stats["parse_errors"] + b.stats["rejected"] >= 2,
                        what="the junk to be read")
            await asyncio.sleep(0.2)
            assert b.dialogs.get(ud.id) is ud and ud.active and s.byes == []
            r = await a.in_dialog(d, "INFO", b"still here", "text/plain")
            assert r.status == 200 and s.infos == [b"still here"]
            assert (await a.bye(d)).status == 200

    run(main())


def test_trace_hook_sees_both_directions():
    async def main():
        async with pair() as (a, b):
            seen = []
            b.add_trace(lambda direction, msg, to, tr: seen.append((direction, repr(msg))))
            b.on_request("MESSAGE", lambda req, txn: txn.reply(200))
            req = a.build_request("MESSAGE", uri(b), f"sip:{DEV}@{DOMAIN}", addr=addr(b),
                                  body=b"<a/>", content_type="Application/MANSCDP+xml")
            assert (await a.request(req, addr(b))).status == 200
            assert ("in", f"<SipRequest MESSAGE {uri(b)}>") in seen
            assert ("out", "<SipResponse 200 OK>") in seen

    run(main())


def test_tcp_connection_refused_fails_the_request_at_once():
    async def main():
        async with pair() as (a, b):
            port = _free_port(socket.SOCK_STREAM)  # nobody listens there
            t0 = asyncio.get_running_loop().time()
            req = a.build_request("MESSAGE", f"sip:{DEV}@127.0.0.1:{port}", f"sip:{DEV}@{DOMAIN}",
                                  transport="TCP", body=b"<a/>", content_type="text/plain")
            with pytest.raises(TransportError):
                await a.request(req, ("127.0.0.1", port), "TCP")
            with pytest.raises(TransportError):
                await a.invite(f"sip:{DEV}@127.0.0.1:{port}", ("127.0.0.1", port), "TCP", SDP_A)
            assert asyncio.get_running_loop().time() - t0 < 5  # not Timer B/F's 32 s
            assert not a.layer.clients

    run(main())


def test_stale_nonce_gets_one_more_retry():
    async def main():
        async with pair() as (a, b):
            server = DigestServer(DOMAIN)
            seen = []

            async def register(req, txn):
                seen.append(req)
                now = b.clock.now()
                if len(seen) == 2:  # as if the nonce had expired in between
                    txn.reply(401, WWW_Authenticate=server.challenge(now, stale=True))
                    return
                res = server.verify(req.get("Authorization"), method="REGISTER",
                                    password="pw", now=now)
                if res.ok:
                    txn.reply(200)
                else:
                    txn.reply(401, WWW_Authenticate=server.challenge(now))

            b.on_request("REGISTER", register)
            req = a.build_request("REGISTER", f"sip:{DEV}@{DOMAIN}", f"sip:{UPPER}@{DOMAIN}",
                                  addr=addr(b), expires=60)
            resp = await a.request(req, addr(b), credentials=(UPPER, "pw"))
            assert resp.status == 200 and [r.cseq[0] for r in seen] == [1, 2, 3]

    run(main())


def test_a_2xx_that_crosses_our_cancel_is_acked_and_ended():
    async def main():
        async with pair() as (a, b):
            s = Session()
            go = asyncio.Event()

            async def slow(req, txn):
                await go.wait()
                return s.answer()

            b.on_invite(slow)
            # The CANCEL is lost, so the callee answers 200 after the caller gave up.
            a.send_hook = lambda m, to, tr: not (isinstance(m, SipRequest) and m.method == "CANCEL")
            t = asyncio.create_task(a.invite(uri(b), addr(b), "UDP", SDP_A, {}, call_id="c-2"))
            await until(lambda: "c-2" in a._pending and a._pending["c-2"].provisional,
                        what="100 Trying")
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            go.set()
            await asyncio.wait_for(s.ended.wait(), 10)
            assert len(s.acks) == 1 and s.byes[0][0] == "remote"
            assert not a.dialogs and not b.dialogs and not a._pending

    run(main())


def test_uas_bye_over_tcp_dials_the_contact_when_the_callers_connection_is_gone():
    async def main():
        async with pair() as (a, b):
            s, d = await established(a, b, "TCP")
            (ud,) = b.dialogs.values()
            for w in list(a.tcp.conns.values()):
                w.close()
            await until(lambda: ud.peer not in b.tcp.conns, what="the connection to close")
            # The caller reconnects (INFO on a new connection): the callee follows it.
            assert (await a.in_dialog(d, "INFO", b"x", "text/plain")).status == 200
            assert ud.peer in b.tcp.conns
            for w in list(a.tcp.conns.values()):
                w.close()
            await until(lambda: ud.peer not in b.tcp.conns, what="the connection to close")
            assert (await b.bye(ud)).status == 200
            await until(lambda: not a.dialogs, what="the caller to take the BYE")
            assert d.terminated_by == "remote"

    run(main())


def test_invite_that_breaks_on_use_or_a_stuck_handler_gets_500_not_silence():
    async def main():
        async with pair() as (a, b):
            s = Session()

            async def on_invite(req, txn):
                if req.get("Subject") == "stuck":
                    await asyncio.sleep(30)
                return s.answer()

            b.on_invite(on_invite)
            # A Contact that only fails when the dialog is made from it.
            with pytest.raises(InviteError) as e:
                await a.invite(uri(b), addr(b), "UDP", SDP_A, {"Contact": "<nonsense>"})
            assert e.value.status == 500 and not b.dialogs
            b.answer_timeout = 0.3
            with pytest.raises(InviteError) as e:
                await a.invite(uri(b), addr(b), "UDP", SDP_A, {"Subject": "stuck"})
            assert e.value.status == 500 and e.value.response.reason == "No Answer In Time"
            # The endpoint still works.
            d, _ = await a.invite(uri(b), addr(b), "UDP", SDP_A, {})
            assert (await a.bye(d)).status == 200

    run(main())


def test_subscription_dialog_adopted_by_the_endpoint_and_answer_contact():
    async def main():
        async with pair() as (a, b):
            from viis.interconnect.gb28181.dialog import Dialog
            from viis.interconnect.gb28181.sip import make_response, new_tag

            refreshes, notifies = [], []

            async def in_sub(d, req, txn):
                refreshes.append(req.get("Expires"))
                return 200

            async def subscribe(req, txn):  # what the cascade does with a Catalog SUBSCRIBE
                tag = new_tag()
                d = Dialog.from_uas(req, tag, b.contact())
                d.handlers = {"request": in_sub}
                b.add_dialog(d)
                txn.respond(make_response(req, 200, to_tag=tag))

            b.on_request("SUBSCRIBE", subscribe)
            req = a.build_request("SUBSCRIBE", uri(b), f"sip:{DEV}@{DOMAIN}", addr=addr(b),
                                  headers={"Event": "Catalog;id=1"}, expires=3600)
            resp = await a.request(req, addr(b))
            ud = Dialog.from_uac(req, resp, addr(b), "UDP")
            ud.handlers = {"request": lambda d, r, t: notifies.append(r.body) or 200}
            a.add_dialog(ud)
            r = await a.in_dialog(ud, "SUBSCRIBE", headers={"Event": "Catalog;id=1", "Expires": "600"})
            assert r.status == 200 and refreshes == ["600"]
            (sd,) = b.dialogs.values()
            r = await b.in_dialog(sd, "NOTIFY", b"<Notify/>", "Application/MANSCDP+xml")
            assert r.status == 200 and notifies == [b"<Notify/>"]
            b.end_dialog(sd)
            r = await a.in_dialog(ud, "SUBSCRIBE", headers={"Expires": "0"})
            assert r.status == 481 and not ud.active  # the subscription is gone on both sides

            b.on_invite(lambda req, txn: InviteAnswer(200, SDP_B, contact="<sip:other@127.0.0.1:1>"))
            d, resp = await a.invite(uri(b), addr(b), "UDP", SDP_A, {})
            assert resp.get("Contact") == "<sip:other@127.0.0.1:1>"
            assert d.remote_target == "sip:other@127.0.0.1:1"
            assert (await a.bye(d)).status == 200  # still reaches b: sent to the dialog's peer

    run(main())


def test_forked_and_late_2xx_are_acked_and_a_second_branch_ended():
    async def main():
        async with pair() as (a, b):
            s = Session()
            b.on_invite(lambda req, txn: s.answer())
            invites = []
            b.add_trace(lambda d, m, to, tr: invites.append(m) if d == "in" and
                        isinstance(m, SipRequest) and m.method == "INVITE" else None)
            ok = []
            b.add_trace(lambda d, m, to, tr: ok.append(m) if d == "out" and
                        isinstance(m, SipResponse) and m.status == 200 and m.cseq[1] == "INVITE" else None)
            d, _ = await a.invite(uri(b), addr(b), "UDP", SDP_A, {})
            await asyncio.wait_for(s.acked.wait(), 10)
            assert (await a.bye(d)).status == 200
            # The first 200 again, after the dialog ended: only ACKed again.
            acks = a.stats["ack_resent"]
            b.udp.send(ok[0], addr(a))
            await until(lambda: a.stats["ack_resent"] == acks + 1, what="the ACK re-sent")
            # A 200 from a second branch (another To tag): ACKed, then BYE.
            forked = ok[0].encode().replace(f"tag={d.remote_tag}".encode(), b"tag=branch2")
            in_bye = b.stats["in_BYE"]
            b.udp.send(forked, addr(a))
            await until(lambda: b.stats["in_BYE"] == in_bye + 1, what="the forked branch's BYE")
            assert a.stats["forked_2xx"] == 1 and not a.dialogs

    run(main())


def test_dialog_table_is_bounded_and_stop_says_bye():
    async def main():
        a = SipEndpoint(UPPER, DOMAIN, "127.0.0.1", 0)
        b = SipEndpoint(DEV, DOMAIN, "127.0.0.1", 0, max_dialogs=2)
        await a.start()
        await b.start()
        try:
            s = Session()
            b.on_invite(lambda req, txn: s.answer())
            d1, _ = await a.invite(uri(b), addr(b), "UDP", SDP_A, {})
            d2, _ = await a.invite(uri(b), addr(b), "UDP", SDP_A, {})
            with pytest.raises(InviteError) as e:
                await a.invite(uri(b), addr(b), "UDP", SDP_A, {})
            assert e.value.status == 503 and len(b.dialogs) == 2
            await b.stop()  # says BYE on both dialogs, and tells their owners
            await until(lambda: not a.dialogs, what="the BYEs from the stopping endpoint")
            assert d1.terminated_by == d2.terminated_by == "remote"
            await until(lambda: len(s.byes) == 2, what="on_bye for both")
            assert [w for w, _ in s.byes] == ["stop", "stop"]
        finally:
            await a.stop()
            await b.stop()

    run(main())


def test_mutated_copies_of_in_dialog_messages_do_not_end_the_dialog():
    """400 seeded mutations (byte flips, cuts, insertions after the start line) of a real
    INFO, ACK and MESSAGE of the dialog, fired at the callee's socket: each is answered or
    dropped, and the dialog goes on."""
    import random

    async def main():
        async with pair() as (a, b):
            s = Session()
            b.on_invite(lambda req, txn: s.answer())
            b.on_request("MESSAGE", lambda req, txn: txn.reply(200))
            d, _ = await a.invite(uri(b), addr(b), "UDP", SDP_A, {})
            await asyncio.wait_for(s.acked.wait(), 10)
            bases = [d.make_request("INFO", b"PLAY MANSRTSP/1.0\r\nCSeq: 3\r\n", "Application/MANSRTSP"),
                     d.make_request("ACK"),
                     a.build_request("MESSAGE", uri(b), f"sip:{DEV}@{DOMAIN}", addr=addr(b),
                                     body=b"<Notify/>", content_type="Application/MANSCDP+xml")]
            raws = [m.encode() for m in bases]
            rng = random.Random(28181)
            before = b.stats["received"] + b.stats["parse_errors"]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                for i in range(400):
                    raw = bytearray(rng.choice(raws))
                    start = raw.index(b"\r\n") + 2  # keep the method: no mutant becomes a BYE
                    for _ in range(rng.randint(1, 8)):
                        op, at = rng.random(), rng.randrange(start, len(raw))
                        if op < 0.6:
                            raw[at] = rng.randrange(256)
                        elif op < 0.8:
                            del raw[at:at + rng.randint(1, 40)]
                        else:
                            raw[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
                    sock.sendto(bytes(raw), addr(b))
                    if i % 50 == 49:
                        await asyncio.sleep(0.02)  # let the endpoint read: no socket overflow
            await until(lambda: b.stats["received"] + b.stats["parse_errors"] - before >= 350,
                        what="the mutants to be read")
            await asyncio.sleep(0.3)
            assert b.dialogs.get((d.call_id, d.remote_tag, d.local_tag)) is not None
            assert s.byes == [] and d.active
            r = await a.in_dialog(d, "INFO", b"still here", "text/plain")
            assert r.status == 200 and s.infos[-1] == b"still here"

    run(main())


# ---- a real peer: sipp ------------------------------------------------------------------------

SIPP = shutil.which("sipp")
SCEN = Path(__file__).parent / "scenarios"
needs_sipp = pytest.mark.skipif(SIPP is None, reason="sipp not installed (apt-get install sip-tester)")


def _free_port(kind=socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _sipp(scenario: str, cwd: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        SIPP, *args, "-sf", str(SCEN / scenario), "-m", "1", "-l", "1", "-i", "127.0.0.1",
        "-timeout", "20", "-timeout_error", "-nostdin", "-trace_err", "-trace_msg",
        cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )


async def _sipp_result(proc: asyncio.subprocess.Process, cwd: Path) -> tuple[int, str]:
    out, _ = await asyncio.wait_for(proc.communicate(), 40)
    logs = "".join(p.read_text(errors="replace")[-3000:] for p in cwd.glob("*.log"))
    return proc.returncode, out.decode(errors="replace")[-1500:] + logs


@needs_sipp
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sipp_upper_platform_invites_us(transport, tmp_path):
    """sipp as an upper platform: INVITE (GB SDP, Subject) -> our on_invite -> ACK, INFO, BYE."""

    async def main():
        b = SipEndpoint(DEV, DOMAIN, "127.0.0.1", 0)
        await b.start()
        try:
            s = Session()
            subjects = []

            async def on_invite(req, txn):
                subjects.append(req.get("Subject"))
                return s.answer()

            b.on_invite(on_invite)
            proc = await _sipp("gb_upper_invite_uac.xml", tmp_path, f"127.0.0.1:{b.local_port}",
                               "-t", "u1" if transport == "UDP" else "t1",
                               "-p", str(_free_port()), "-s", DEV,
                               "-set", "upper", UPPER, "-set", "domain", DOMAIN)
            rc, out = await _sipp_result(proc, tmp_path)
            assert rc == 0, out
            assert subjects == [f"{DEV}:0100000001,{UPPER}:0"]
            assert len(s.acks) == 1 and s.infos and s.infos[0].startswith(b"PAUSE MANSRTSP/1.0")
            await asyncio.wait_for(s.ended.wait(), 10)
            assert s.byes[0][0] == "remote" and not b.dialogs
        finally:
            await b.stop()

    run(main())


@needs_sipp
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_we_invite_a_sipp_device(transport, tmp_path):
    """Our invite() against sipp as a device: 100, 200 with y=, our ACK, INFO, our BYE."""

    async def main():
        a = SipEndpoint(UPPER, DOMAIN, "127.0.0.1", 0)
        await a.start()
        try:
            port = _free_port(socket.SOCK_DGRAM if transport == "UDP" else socket.SOCK_STREAM)
            proc = await _sipp("gb_device_invite_uas.xml", tmp_path,
                               "-t", "u1" if transport == "UDP" else "t1", "-p", str(port),
                               "-s", DEV)
            dev = ("127.0.0.1", port)
            d = None
            for _ in range(50):  # sipp needs a moment to bind
                try:
                    d, resp = await a.invite(f"sip:{DEV}@127.0.0.1:{port}", dev, transport,
                                             SDP_A, {"Subject": f"{DEV}:0100000001,{UPPER}:0"})
                    break
                except TransportError:  # refused: sipp is not listening yet
                    await asyncio.sleep(0.1)
            assert d is not None and resp.status == 200
            assert "y=0100000001" in d.remote_sdp and d.remote_tag
            r = await a.in_dialog(d, "INFO", b"PLAY MANSRTSP/1.0\r\nCSeq: 2\r\nScale: 2.0\r\n",
                                  "Application/MANSRTSP")
            assert r.status == 200
            assert (await a.bye(d)).status == 200
            rc, out = await _sipp_result(proc, tmp_path)
            assert rc == 0, out
            assert not a.dialogs
        finally:
            await a.stop()

    run(main())


@needs_sipp
def test_sipp_upper_platform_cancels_its_invite(tmp_path):
    """sipp INVITEs, gets 100, CANCELs: 200 for the CANCEL, 487 for the INVITE, its ACK
    confirms our transaction; the slow handler is told and no dialog is left."""

    async def main():
        b = SipEndpoint(DEV, DOMAIN, "127.0.0.1", 0)
        await b.start()
        try:
            called, cancelled, released = [], [], []

            async def slow(req, txn):
                called.append(req.get("Subject"))
                txn.add_cancel_callback(lambda: cancelled.append(req.get("Subject")))
                while not txn.cancelled:
                    await asyncio.sleep(0.02)
                return InviteAnswer(200, SDP_B, on_bye=lambda d, r: released.append(d.terminated_by))

            b.on_invite(slow)
            proc = await _sipp("gb_upper_invite_cancel.xml", tmp_path, f"127.0.0.1:{b.local_port}",
                               "-t", "u1", "-p", str(_free_port()), "-s", DEV,
                               "-set", "upper", UPPER, "-set", "domain", DOMAIN)
            rc, out = await _sipp_result(proc, tmp_path)
            assert rc == 0, out
            assert b.stats["cancelled"] == 1
            # The CANCEL may be read before the handler's task starts: then it never runs.
            assert called in ([], [f"{DEV}:0100000002,{UPPER}:0"]) and cancelled == called
            await until(lambda: released == (["cancelled"] if called else []),
                        what="the late answer released")
            assert not b.dialogs
            invites = [t for t in b.layer.servers.values()
                       if t.request is not None and t.request.method == "INVITE"]
            assert [t.state for t in invites] == ["confirmed"]  # sipp's ACK for the 487
        finally:
            await b.stop()

    run(main())
