from viis.interconnect.gb28181.clock import ManualClock
from viis.interconnect.gb28181.digest import build_authorization
from viis.interconnect.gb28181.platform import Platform, PlatformConfig
from viis.interconnect.gb28181.sip import SipRequest, new_branch, parse

DEV = "34020000001320000001"
SRC = ("192.168.1.64", 5060)


class Device:
    """A scripted device talking to a Platform without sockets."""

    def __init__(self, platform, password="secret", src=SRC, realm=None):
        self.p, self.password, self.src, self.realm = platform, password, src, realm
        self.out = []
        platform.layer.send_fn = lambda msg, addr, t: self.out.append((msg, addr))
        self.cseq = 0

    def _base(self, method, uri, to):
        self.cseq += 1
        r = SipRequest(method, uri)
        r.headers.add("Via", f"SIP/2.0/UDP {self.src[0]}:{self.src[1]};rport;branch={new_branch()}")
        r.headers.add("From", f"<sip:{DEV}@3402000000>;tag=d1")
        r.headers.add("To", to)
        r.headers.add("Call-ID", "reg-1")
        r.headers.add("CSeq", f"{self.cseq} {method}")
        return r

    def send(self, req, src=None):
        m = parse(req.encode())
        m.source = src or self.src
        self.p.layer.receive(m)
        return self.out[-1][0]

    def register(self, expires=3600, auth=None):
        r = self._base("REGISTER", "sip:34020000002000000001@3402000000", f"<sip:{DEV}@3402000000>")
        r.headers.add("Contact", f"<sip:{DEV}@{self.src[0]}:{self.src[1]}>")
        if expires is not None:
            r.headers.add("Expires", str(expires))
        if auth:
            r.headers.add("Authorization", auth)
        return self.send(r)

    def register_with_auth(self, expires=3600):
        ch = self.register(expires)
        assert ch.status == 401
        challenge = ch.get("WWW-Authenticate")
        if self.realm:
            challenge = challenge.replace("3402000000", self.realm)
        auth = build_authorization(challenge, username=DEV, password=self.password,
                                   method="REGISTER", uri="sip:34020000002000000001@3402000000")
        return self.register(expires, auth)

    def keepalive(self, body=None, charset_enc="gb2312"):
        r = self._base("MESSAGE", "sip:34020000002000000001@3402000000",
                       "<sip:34020000002000000001@3402000000>")
        r.headers.add("Content-Type", "Application/MANSCDP+xml")
        r.body = body or (
            '<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>'
            f"\r\n<SN>{self.cseq}</SN>\r\n<DeviceID>{DEV}</DeviceID>\r\n<Status>OK</Status>\r\n"
            "</Notify>\r\n"
        ).encode(charset_enc)
        return self.send(r)


def _platform(**kw):
    clock = ManualClock()
    events = []
    cfg = PlatformConfig(password="secret", keepalive_interval=60, keepalive_misses=3, **kw)
    p = Platform(cfg, clock=clock, on_event=lambda ev, peer: events.append(ev))
    p.schedule_sweep()
    return p, clock, events


def test_register_401_then_200_with_gb_date_and_expires():
    p, clock, events = _platform()
    dev = Device(p)
    ok = dev.register_with_auth()
    assert ok.status == 200 and ok.get("Expires") == "3600"
    assert ok.get("Date") == "2024-05-01T12:00:00.000"  # ManualClock wall = 04:00 UTC
    assert ok.top_via.params["rport"] == "5060"  # RFC 3581: rport filled from the source
    peer = p.peers[DEV]
    assert peer.registered and peer.online and peer.address == SRC and events == ["registered"]


def test_register_without_qop_challenge():
    p, _, _ = _platform(qop=False)
    assert Device(p).register_with_auth().status == 200


def test_per_device_password_overrides_global():
    p, _, _ = _platform(passwords={DEV: "devpass"})
    assert Device(p, password="secret").register_with_auth().status == 403
    assert Device(p, password="devpass").register_with_auth().status == 200


def test_wrong_password_is_403_with_plain_cause():
    p, _, events = _platform()
    assert Device(p, password="nope").register_with_auth().status == 403
    d = p.diagnose(DEV)
    assert not d["registered"] and "wrong password" in d["cause"] and d["auth_failures"] == 1
    assert events == ["auth_failed"]


def test_realm_mismatch_cause():
    p, _, _ = _platform()
    assert Device(p, realm="4401000000").register_with_auth().status == 403
    assert "realm mismatch" in p.diagnose(DEV)["cause"]


def test_unknown_device_without_global_password():
    clock = ManualClock()
    p = Platform(PlatformConfig(password=None, passwords={"x": "y"}), clock=clock)
    assert Device(p).register().status == 403
    assert "no password is configured" in p.diagnose(DEV)["cause"]


def test_repeated_challenges_are_explained():
    p, _, _ = _platform()
    dev = Device(p)
    stale = (
        f'Digest username="{DEV}", realm="3402000000", nonce="deadbeef.00", uri="sip:x", '
        'response="00"'
    )
    for _ in range(5):
        assert dev.register(auth=stale).status == 401
    assert "keeps sending REGISTER" in p.diagnose(DEV)["cause"]


def test_register_with_a_non_ascii_digest_response_is_refused_and_answered():
    """A hostile Authorization (non-ASCII ``response=``) is a wrong password: answered 403,
    not an exception in the receive path (and the device can still register after)."""
    import re

    p, _, _ = _platform()
    dev = Device(p)
    ch = dev.register()
    auth = build_authorization(ch.get("WWW-Authenticate"), username=DEV, password="secret",
                               method="REGISTER", uri="sip:34020000002000000001@3402000000")
    bad = re.sub(r'response="[0-9a-f]+"', 'response="\u00e9\u00e9"', auth)
    assert dev.register(auth=bad).status == 403
    assert "wrong password" in p.diagnose(DEV)["cause"]
    assert dev.register_with_auth().status == 200


def test_missing_expires_is_400():
    p, _, _ = _platform()
    assert Device(p).register(expires=None).status == 400
    assert "without an Expires" in p.diagnose(DEV)["cause"]


def test_non_ascii_digit_expires_is_400_not_a_traceback():
    """"²".isdigit() is True and int("²") raises: such an Expires is answered, not dropped."""
    p, _, _ = _platform()
    for bad in ("\u00b2", "\u0663\u0660", "-1", "1e3", " "):
        assert Device(p).register(expires=bad).status == 400, bad


def test_expiry_reregister_and_unregister():
    p, clock, events = _platform()
    dev = Device(p)
    dev.register_with_auth(expires=120)
    clock.advance(100)
    dev.keepalive()
    assert dev.register_with_auth(expires=120).status == 200  # refresh before expiry
    clock.advance(100)
    dev.keepalive()
    assert p.peers[DEV].registered
    clock.advance(25)
    assert not p.peers[DEV].registered and "expired" in p.diagnose(DEV)["cause"]
    assert dev.register_with_auth(expires=3600).status == 200
    assert dev.register_with_auth(expires=0).status == 200
    assert not p.peers[DEV].registered
    assert events == ["registered", "refreshed", "expired", "registered", "unregistered"]


def test_keepalive_and_offline_after_three_missed():
    p, clock, events = _platform()
    dev = Device(p)
    dev.register_with_auth()
    for _ in range(5):
        clock.advance(60)
        assert dev.keepalive().status == 200
    peer = p.peers[DEV]
    assert peer.keepalives == 5 and peer.online
    clock.advance(175)  # < 3 intervals since the last keepalive
    assert peer.online
    clock.advance(10)
    assert not peer.online and "no keepalive" in peer.cause and events[-1] == "offline"
    assert dev.keepalive().status == 200 and peer.online and events[-1] == "online"


def test_keepalive_charsets_and_bad_bodies():
    p, clock, _ = _platform()
    dev = Device(p)
    dev.register_with_auth()
    assert dev.keepalive(charset_enc="utf-8").status == 200
    body = '<?xml version="1.0" encoding="GB2312"?><Notify><CmdType>Keepalive</CmdType><Name>镕</Name></Notify>'
    assert dev.keepalive(body=body.encode("gb18030")).status == 200
    assert dev.keepalive(body=body.encode("utf-8")).status == 200
    assert any("declares GB2312 but is UTF-8" in w for w in p.peers[DEV].warnings)
    assert dev.keepalive(body=b"<Notify><CmdType>Keep").status == 400
    assert "malformed" in p.diagnose(DEV)["cause"]


def test_keepalive_from_unregistered_device_is_refused():
    p, _, _ = _platform()
    assert Device(p).keepalive().status == 403


def test_nat_address_mismatch_is_noted_and_source_used():
    p, _, _ = _platform()
    dev = Device(p)
    ch = dev.register()
    auth = build_authorization(ch.get("WWW-Authenticate"), username=DEV, password="secret",
                               method="REGISTER", uri="sip:34020000002000000001@3402000000")
    r = dev._base("REGISTER", "sip:34020000002000000001@3402000000", f"<sip:{DEV}@3402000000>")
    r.headers.add("Contact", f"<sip:{DEV}@192.168.1.64:5060>")
    r.headers.add("Expires", "3600")
    r.headers.add("Authorization", auth)
    resp = dev.send(r, src=("203.0.113.9", 41000))
    assert resp.status == 200 and dev.out[-1][1] == ("203.0.113.9", 41000)
    peer = p.peers[DEV]
    assert peer.address == ("203.0.113.9", 41000)
    assert any("address mismatch" in w for w in peer.warnings)


def test_never_seen_device_diagnosis():
    p, _, _ = _platform()
    assert "never seen" in p.diagnose("34020000001320000099")["cause"]
