from viis.interconnect.gb28181.clock import ManualClock
from viis.interconnect.gb28181.sip import SipRequest, make_response, new_branch, parse
from viis.interconnect.gb28181.transaction import TransactionLayer, TransactionTimeout


def _req(method="MESSAGE") -> SipRequest:
    r = SipRequest(method, "sip:34020000001320000001@192.168.1.64:5060")
    r.headers.add("Via", f"SIP/2.0/UDP 10.0.0.1:5060;branch={new_branch()}")
    r.headers.add("From", "<sip:34020000002000000001@3402000000>;tag=p1")
    r.headers.add("To", "<sip:34020000001320000001@3402000000>")
    r.headers.add("Call-ID", "c1")
    r.headers.add("CSeq", f"1 {method}")
    return r


class Wire:
    def __init__(self):
        self.sent = []

    def __call__(self, msg, addr, transport):
        self.sent.append((clock.now(), msg, addr, transport))


clock = ManualClock()


def _layer():
    wire = Wire()
    layer = TransactionLayer(wire, lambda req, txn: txn.reply(200), clock=clock)
    return layer, wire


def test_timer_e_doubles_to_t2_and_timer_f_times_out():
    layer, wire = _layer()
    results = []
    t0 = clock.now()
    layer.start_client(_req(), ("192.168.1.64", 5060), "UDP", results.append)
    clock.advance(40)
    times = [round(t - t0, 3) for t, *_ in wire.sent]
    # Sent at 0, then E at 0.5, 1.5, 3.5, 7.5 (capped at T2=4 from here), 11.5, ... until F=32.
    assert times[:6] == [0, 0.5, 1.5, 3.5, 7.5, 11.5]
    assert all(b - a <= 4.0 + 1e-9 for a, b in zip(times, times[1:]))
    assert times[-1] <= 32
    assert len(results) == 1 and isinstance(results[0], TransactionTimeout)
    assert not layer.clients and clock.pending() == 0


def test_final_response_stops_retransmits_and_timer_k_absorbs():
    layer, wire = _layer()
    results = []
    req = _req()
    layer.start_client(req, ("192.168.1.64", 5060), "UDP", results.append)
    clock.advance(0.6)  # one retransmission
    resp = make_response(req, 200)
    resp.source = ("192.168.1.64", 5060)
    layer.receive(parse(resp.encode()))
    n = len(wire.sent)
    assert n == 2 and results[0].status == 200
    layer.receive(parse(resp.encode()))  # retransmitted 200: absorbed
    assert len(results) == 1
    clock.advance(5.1)  # Timer K = T4
    assert not layer.clients and len(wire.sent) == n


def test_tcp_has_no_retransmissions():
    layer, wire = _layer()
    results = []
    layer.start_client(_req(), ("192.168.1.64", 5060), "TCP", results.append)
    clock.advance(33)
    assert len(wire.sent) == 1 and isinstance(results[0], TransactionTimeout)


def test_invite_timer_a_doubles_and_timer_b():
    layer, wire = _layer()
    results = []
    t0 = clock.now()
    layer.start_client(_req("INVITE"), ("192.168.1.64", 5060), "UDP", results.append)
    clock.advance(40)
    times = [round(t - t0, 3) for t, *_ in wire.sent]
    assert times == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert isinstance(results[0], TransactionTimeout)


def test_invite_non_2xx_is_acked():
    layer, wire = _layer()
    req = _req("INVITE")
    layer.start_client(req, ("192.168.1.64", 5060), "UDP", lambda r: None)
    resp = make_response(req, 486)
    layer.receive(parse(resp.encode()))
    assert wire.sent[-1][1].method == "ACK" and wire.sent[-1][1].cseq == (1, "ACK")
    clock.advance(33)
    assert not layer.clients


def test_server_retransmits_last_response_until_timer_j():
    layer, wire = _layer()
    raw = _req().encode()
    first = parse(raw)
    first.source = ("192.168.1.64", 5060)
    layer.receive(first)
    assert len(wire.sent) == 1 and wire.sent[0][1].status == 200
    again = parse(raw)
    again.source = ("192.168.1.64", 5060)
    layer.receive(again)  # request retransmission → same response again, TU not called
    assert len(wire.sent) == 2 and wire.sent[1][1] is wire.sent[0][1]
    clock.advance(32.1)  # Timer J = 64*T1
    assert not layer.servers
    layer.receive(again)  # now it is a new transaction
    assert len(wire.sent) == 3


def test_received_and_rport_are_filled():
    layer, wire = _layer()
    r = _req()
    r.headers.set("Via", "SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bKabc")
    m = parse(r.encode())
    m.source = ("203.0.113.5", 40000)
    layer.receive(m)
    via = wire.sent[0][1].top_via
    assert via.params["received"] == "203.0.113.5" and via.params["rport"] == "40000"
    assert wire.sent[0][2] == ("203.0.113.5", 40000)
