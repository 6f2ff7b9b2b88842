"""Dialog state and the INVITE server transaction (RFC 3261 §12, §17.2.1; RFC 6026) on a
ManualClock, without sockets (Q12.1, N12.1: GB/T 28181 signalling is RFC 3261 SIP)."""

import pytest

from viis.interconnect.gb28181.clock import ManualClock
from viis.interconnect.gb28181.dialog import Dialog, DialogError
from viis.interconnect.gb28181.sip import SipRequest, make_response, new_branch, parse
from viis.interconnect.gb28181.transaction import ServerInviteTransaction, TransactionLayer

PEER = ("192.168.1.64", 5060)


def _invite(branch: str | None = None, cseq: int = 7) -> SipRequest:
    r = SipRequest("INVITE", "sip:34020000001320000001@192.168.1.10:5060")
    r.headers.add("Via", f"SIP/2.0/UDP 192.168.1.64:5060;branch={branch or new_branch()}")
    r.headers.add("Record-Route", "<sip:p1.example;lr>")
    r.headers.add("Record-Route", "<sip:p2.example;lr>")
    r.headers.add("From", '"upper" <sip:34020000002000000001@3402000000>;tag=up1')
    r.headers.add("To", "<sip:34020000001320000001@3402000000>")
    r.headers.add("Call-ID", "call-1")
    r.headers.add("CSeq", f"{cseq} INVITE")
    r.headers.add("Contact", "<sip:34020000002000000001@192.168.1.64:5060>")
    r.body = b"v=0\r\n"
    return r


def _ack(inv: SipRequest, response) -> SipRequest:
    """The ACK of ``inv`` for ``response`` (its To tag), on the INVITE's own branch."""
    ack = SipRequest("ACK", inv.uri)
    for name in ("Via", "From", "Call-ID"):
        ack.headers.add(name, inv.get(name))
    ack.headers.add("To", response.get("To"))
    ack.headers.add("CSeq", f"{inv.cseq[0]} ACK")
    return ack


def _received(msg, source=PEER):
    m = parse(msg.encode())
    m.source = source
    return m


class Wire:
    def __init__(self, clock):
        self.clock, self.sent = clock, []

    def __call__(self, msg, addr, transport):
        self.sent.append((self.clock.now(), msg))

    def statuses(self):
        return [m.status for _, m in self.sent if hasattr(m, "status")]


def _layer(answer=None):
    clock = ManualClock()
    wire = Wire(clock)
    txns = []

    def on_request(req, txn):
        txns.append(txn)
        if answer is not None:
            txn.respond(make_response(req, answer, to_tag="uas1"))

    layer = TransactionLayer(wire, on_request, clock=clock, on_stray=lambda m: txns.append(("stray", m)))
    return layer, wire, clock, txns


# ---- dialogs ------------------------------------------------------------------------------


def test_uas_dialog_takes_route_set_in_order_and_contact_as_target():
    inv = _received(_invite())
    d = Dialog.from_uas(inv, "uas1", "<sip:me@192.168.1.10:5060>")
    assert d.id == ("call-1", "uas1", "up1")
    assert d.remote_target == "sip:34020000002000000001@192.168.1.64:5060"
    assert d.route_set == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert d.remote_seq == 7 and d.peer == PEER and d.role == "uas"
    bye = d.make_request("BYE")
    assert bye.uri == d.remote_target and bye.headers.getall("Route") == d.route_set
    assert bye.from_.tag == "uas1" and bye.to.tag == "up1" and bye.cseq == (d.local_seq, "BYE")


def test_uac_dialog_reverses_record_route_and_counts_cseq():
    inv = _invite()
    inv.headers.set("From", "<sip:34020000002000000001@3402000000>;tag=me")
    ok = make_response(_received(inv), 200, to_tag="dev")
    ok.headers.add("Contact", "<sip:34020000001320000001@10.0.0.9:5062>")
    for rr in inv.headers.getall("Record-Route"):
        ok.headers.add("Record-Route", rr)  # a UAS copies Record-Route into its 2xx
    d = Dialog.from_uac(inv, _received(ok), PEER, "UDP")
    assert d.id == ("call-1", "me", "dev")
    assert d.route_set == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
    assert d.remote_target == "sip:34020000001320000001@10.0.0.9:5062"
    assert d.make_request("INFO", b"PLAY", "Application/MANSRTSP").cseq == (8, "INFO")
    assert d.make_request("ACK").cseq == (7, "ACK")  # ACK keeps the INVITE's number
    info = d.make_request("INFO")
    assert info.cseq == (9, "INFO") and info.top_via.branch.startswith("z9hG4bK")


def test_terminated_dialog_refuses_new_requests():
    d = Dialog.from_uas(_received(_invite()), "t", "<sip:me@h>")
    d.state = "terminated"
    with pytest.raises(DialogError):
        d.make_request("INFO")


def test_remote_cseq_must_not_go_back():
    d = Dialog.from_uas(_received(_invite(cseq=7)), "uas1", "<sip:me@h>")

    def req(num, method):
        r = _invite(cseq=num)
        r.method = method
        r.headers.set("CSeq", f"{num} {method}")
        return r

    assert d.check_remote_seq(req(8, "INFO")) and d.remote_seq == 8
    assert not d.check_remote_seq(req(5, "BYE"))
    assert d.check_remote_seq(req(7, "ACK"))  # ACK/CANCEL are not checked
    assert d.remote_seq == 8


def test_dialog_matches_only_its_tags():
    d = Dialog.from_uas(_received(_invite()), "uas1", "<sip:me@h>")
    r = _invite()
    r.headers.set("To", "<sip:x@y>;tag=uas1")
    assert d.matches(r)
    r.headers.set("From", "<sip:x@y>;tag=other")
    assert not d.matches(r)


# ---- INVITE server transaction --------------------------------------------------------------


def test_invite_gets_100_trying_at_once():
    layer, wire, clock, txns = _layer()
    layer.receive(_received(_invite()))
    assert wire.statuses() == [100]
    assert isinstance(txns[0], ServerInviteTransaction) and txns[0].state == "proceeding"
    layer.receive(_received(_invite(branch=txns[0].request.top_via.branch)))  # retransmission
    assert wire.statuses() == [100, 100] and len(txns) == 1


def test_non_2xx_retransmitted_on_timer_g_until_timer_h():
    layer, wire, clock, txns = _layer(answer=486)
    t0 = clock.now()
    layer.receive(_received(_invite()))
    timeouts = []
    txns[0].on_ack_timeout = lambda: timeouts.append(clock.now() - t0)
    clock.advance(40)
    times = [round(t - t0, 3) for t, m in wire.sent if m.status == 486]
    # G: T1, doubling, capped at T2 = 4 s; H = 64·T1 = 32 s.
    assert times[:6] == [0, 0.5, 1.5, 3.5, 7.5, 11.5]
    assert all(b - a <= 4.0 + 1e-9 for a, b in zip(times, times[1:])) and times[-1] <= 32
    assert timeouts == [32.0] and not layer.servers and clock.pending() == 0


def test_ack_stops_timer_g_and_timer_i_absorbs_then_ends():
    layer, wire, clock, txns = _layer(answer=486)
    inv = _invite()
    layer.receive(_received(inv))
    clock.advance(0.6)  # one retransmission
    ack = _ack(inv, wire.sent[-1][1])
    layer.receive(_received(ack))
    assert txns[0].state == "confirmed"
    n = len(wire.sent)
    layer.receive(_received(ack))  # a retransmitted ACK is absorbed by Timer I
    clock.advance(4.9)
    assert len(wire.sent) == n and layer.servers
    clock.advance(0.2)  # Timer I = T4 = 5 s
    assert not layer.servers and not [t for t in txns if isinstance(t, tuple)]


def test_tcp_non_2xx_not_retransmitted_and_timer_i_zero():
    layer, wire, clock, txns = _layer(answer=603)
    inv = _invite()
    inv.headers.set("Via", f"SIP/2.0/TCP 192.168.1.64:5060;branch={new_branch()}")
    m = _received(inv)
    m.transport = "TCP"
    layer.receive(m)
    clock.advance(40)
    assert wire.statuses() == [100, 603]  # no Timer G on a reliable transport


def test_retransmitted_invite_in_completed_gets_final_again():
    layer, wire, clock, txns = _layer(answer=486)
    inv = _invite()
    layer.receive(_received(inv))
    layer.receive(_received(inv))
    assert wire.statuses() == [100, 486, 486]


def test_2xx_moves_to_accepted_which_absorbs_retransmissions_until_timer_l():
    layer, wire, clock, txns = _layer(answer=200)
    inv = _invite()
    layer.receive(_received(inv))
    assert txns[0].state == "accepted"
    layer.receive(_received(inv))  # absorbed: the UA core retransmits the 2xx itself
    assert wire.statuses() == [100, 200]
    clock.advance(31.9)
    assert layer.servers
    clock.advance(0.2)
    assert not layer.servers


def test_2xx_ack_reusing_the_invite_branch_goes_to_the_dialog_layer():
    layer, wire, clock, txns = _layer(answer=200)
    inv = _invite()
    layer.receive(_received(inv))
    layer.receive(_received(_ack(inv, wire.sent[-1][1])))
    assert txns[-1][0] == "stray" and txns[-1][1].method == "ACK"


def test_cancel_finds_the_invite_and_answers_487_once():
    layer, wire, clock, txns = _layer()
    inv = _invite()
    layer.receive(_received(inv))
    itxn = txns[0]
    itxn.to_tag = "uas1"
    cancelled = []
    itxn.on_cancel.append(lambda: cancelled.append(True))
    cancel = SipRequest("CANCEL", inv.uri)
    for name in ("Via", "From", "To", "Call-ID"):
        cancel.headers.add(name, inv.get(name))
    cancel.headers.add("CSeq", "7 CANCEL")
    assert layer.invite_for_cancel(_received(cancel)) is itxn
    assert itxn.cancel() and itxn.cancelled and cancelled == [True]
    last = wire.sent[-1][1]
    assert last.status == 487 and last.to.tag == "uas1"
    assert not itxn.cancel()  # a final response was sent: nothing more to cancel
    other = _received(cancel)
    other.headers.set("Via", f"SIP/2.0/UDP 192.168.1.64:5060;branch={new_branch()}")
    assert layer.invite_for_cancel(other) is None
