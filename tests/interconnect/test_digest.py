from viis.interconnect.gb28181.digest import (
    DigestServer,
    build_authorization,
    compute_response,
    parse_auth,
)


def test_rfc2617_example_with_qop():
    # RFC 2617 §3.5 (with the published erratum's response value).
    assert (
        compute_response(
            username="Mufasa", realm="testrealm@host.com", password="Circle Of Life",
            method="GET", uri="/dir/index.html", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop="auth", nc="00000001", cnonce="0a4f113b",
        )
        == "6629fae49393a05397450978507c4ef1"
    )


def test_rfc2069_form_without_qop():
    # HA1 = MD5("Mufasa:testrealm@host.com:Circle Of Life"), HA2 = MD5("GET:/dir/index.html")
    import hashlib

    md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
    ha1 = md5("Mufasa:testrealm@host.com:Circle Of Life")
    ha2 = md5("GET:/dir/index.html")
    want = md5(f"{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:{ha2}")
    assert want == compute_response(
        username="Mufasa", realm="testrealm@host.com", password="Circle Of Life",
        method="GET", uri="/dir/index.html", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
    )


def test_parse_auth_quoted_commas():
    scheme, p = parse_auth('Digest realm="a,b", nonce="n", qop="auth,auth-int", algorithm=MD5')
    assert scheme == "digest" and p["realm"] == "a,b" and p["qop"] == "auth,auth-int"


def _round(server: DigestServer, password: str, now: float = 100.0, **kw):
    ch = server.challenge(now)
    auth = build_authorization(
        ch, username="34020000001320000001", password="secret", method="REGISTER",
        uri="sip:34020000002000000001@3402000000",
    )
    return server.verify(auth, method="REGISTER", password=password, now=now + 1, **kw)


def test_server_client_round_trip_qop_and_no_qop():
    for qop in (True, False):
        s = DigestServer("3402000000", qop=qop)
        assert "qop" in s.challenge(0) if qop else "qop" not in s.challenge(0)
        assert _round(s, "secret").ok
        r = _round(s, "wrong")
        assert not r.ok and r.code == "wrong-password" and not r.should_challenge


def test_stale_foreign_realm_and_username():
    s = DigestServer("3402000000", nonce_ttl=60)
    ch = s.challenge(0)
    auth = build_authorization(ch, username="dev", password="p", method="REGISTER", uri="sip:x")
    assert s.verify(auth, method="REGISTER", password="p", now=30).ok
    r = s.verify(auth, method="REGISTER", password="p", now=120)
    assert r.code == "stale" and r.should_challenge
    assert "stale=true" in s.challenge(120, stale=True)
    other = DigestServer("3402000000")  # another secret: its nonces are foreign to us
    a2 = build_authorization(other.challenge(0), username="dev", password="p",
                             method="REGISTER", uri="sip:x")
    assert s.verify(a2, method="REGISTER", password="p", now=1).code == "foreign-nonce"
    a3 = build_authorization(ch.replace("3402000000", "4401000000"), username="dev",
                             password="p", method="REGISTER", uri="sip:x")
    assert s.verify(a3, method="REGISTER", password="p", now=1).code == "realm-mismatch"
    assert s.verify(auth, method="REGISTER", password="p", now=1,
                    expected_username="other").code == "username-mismatch"
    assert s.verify(None, method="REGISTER", password="p", now=1).code == "missing"
    assert s.verify("Basic abc", method="REGISTER", password="p", now=1).code == "not-digest"


def test_non_ascii_response_or_nonce_is_refused_not_raised():
    """``hmac.compare_digest`` raises for non-ASCII str: a hostile Authorization must be a
    plain refusal (wrong password / foreign nonce), never an exception."""
    import re

    s = DigestServer("3402000000")
    auth = build_authorization(s.challenge(0), username="dev", password="p",
                               method="REGISTER", uri="sip:x")
    bad_response = re.sub(r'response="[0-9a-f]+"', 'response="\u00e9\u9555"', auth)
    assert s.verify(bad_response, method="REGISTER", password="p", now=1).code == "wrong-password"
    bad_nonce = re.sub(r'nonce="([0-9a-f]+)\.[^"]+"', 'nonce="\\1.\u00e9"', auth)
    assert s.verify(bad_nonce, method="REGISTER", password="p", now=1).code == "foreign-nonce"
    assert s.verify(auth, method="REGISTER", password="p", now=1).ok
