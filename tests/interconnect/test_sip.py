import time

import pytest

from viis.interconnect.gb28181.sip import (
    MAX_MESSAGE,
    Address,
    SipParseError,
    SipRequest,
    SipResponse,
    Via,
    make_response,
    parse,
)

REGISTER = (
    b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1234\r\n"
    b"From: <sip:34020000001320000001@3402000000>;tag=abc\r\n"
    b"To: <sip:34020000001320000001@3402000000>\r\n"
    b"Call-ID: 42@192.168.1.64\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sip:34020000001320000001@192.168.1.64:5060>\r\n"
    b"Max-Forwards: 70\r\n"
    b"Expires: 3600\r\n"
    b"Content-Length: 0\r\n\r\n"
)

KEEPALIVE_BODY = (
    '<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n'
    "<SN>7</SN>\r\n<DeviceID>34020000001320000001</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n"
)


def message(body: bytes, content_length: str | None = None, ct="Application/MANSCDP+xml") -> bytes:
    head = (
        "MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.168.1.64:5060;branch=z9hG4bK99\r\n"
        "From: <sip:34020000001320000001@3402000000>;tag=t1\r\n"
        "To: <sip:34020000002000000001@3402000000>\r\n"
        "Call-ID: k1\r\nCSeq: 20 MESSAGE\r\n"
        f"Content-Type: {ct}\r\n"
    )
    if content_length is not None:
        head += f"Content-Length: {content_length}\r\n"
    return head.encode() + b"\r\n" + body


def test_register_round_trip():
    m = parse(REGISTER)
    assert isinstance(m, SipRequest) and m.method == "REGISTER"
    assert m.cseq == (1, "REGISTER")
    assert m.top_via.branch == "z9hG4bK1234" and m.top_via.sent_by == ("192.168.1.64", 5060)
    assert m.to.uri.user == "34020000001320000001" and m.from_.tag == "abc"
    again = parse(m.encode())
    assert again.start_line() == m.start_line()
    assert again.headers.items() == m.headers.items()


def test_response_round_trip_and_make_response():
    req = parse(REGISTER)
    resp = make_response(req, 401)
    resp.headers.add("WWW-Authenticate", 'Digest realm="3402000000", nonce="n"')
    r = parse(resp.encode())
    assert isinstance(r, SipResponse) and r.status == 401 and r.reason == "Unauthorized"
    assert r.to.tag and r.call_id == req.call_id and r.cseq == (1, "REGISTER")
    assert r.get("www-authenticate").startswith("Digest")


def test_header_case_compact_forms_and_lf_only():
    raw = (
        b"register sip:3402000000 SIP/2.0\n"
        b"v: SIP/2.0/udp 10.0.0.2:5060;branch=z9hG4bKa\n"
        b"f: <sip:340200000013200000011@3402000000>;tag=1\n"
        b"t: <sip:34020000001320000001@3402000000>\n"
        b"i: abc\nCSEQ: 5 register\nm: <sip:a@10.0.0.2>\nEXPIRES: 60\nl: 0\n\n"
    )
    m = parse(raw)
    assert m.method == "REGISTER" and m.call_id == "abc" and m.cseq == (5, "REGISTER")
    assert m.get("expires") == "60" and m.get("Contact") == "<sip:a@10.0.0.2>"
    assert m.top_via.transport == "UDP"


def test_folded_header_and_multiple_vias_in_one_line():
    raw = REGISTER.replace(
        b"Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1234\r\n",
        b"Via: SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKx,\r\n SIP/2.0/UDP 192.168.1.64;branch=z9hG4bKy\r\n",
    )
    m = parse(raw)
    assert [v.host for v in m.vias] == ["10.1.1.1", "192.168.1.64"]


@pytest.mark.parametrize(
    "declared,enc", [("GB2312", "gb2312"), ("GB2312", "gbk"), ("GB2312", "utf-8"), (None, "gbk")]
)
def test_chinese_bodies_in_any_charset(declared, enc):
    name = "青岛市南区摄像机"
    xml = f'<?xml version="1.0" encoding="{declared or "UTF-8"}"?><Notify><Name>{name}</Name></Notify>'
    if declared is None:
        xml = f"<Notify><Name>{name}</Name></Notify>"
    m = parse(message(xml.encode(enc)))
    assert name in m.body_text()


def test_name_gb2312_cannot_encode_decodes_via_gb18030():
    name = "镕"  # not in GB2312, in GBK/GB18030
    with pytest.raises(UnicodeEncodeError):
        name.encode("gb2312")
    m = parse(message(f'<?xml version="1.0" encoding="GB2312"?><N>{name}</N>'.encode("gb18030")))
    assert name in m.body_text()


def test_wrong_and_missing_content_length_trust_the_datagram():
    body = KEEPALIVE_BODY.encode()
    for cl in (None, "0", "10", str(len(body) + 50), "abc"):
        m = parse(message(body, cl))
        assert m.body == body, cl
    assert parse(message(body, "0")).warnings
    # Trailing CRLF padding beyond a correct Content-Length is dropped.
    assert parse(message(body + b"\r\n\r\n", str(len(body)))).body == body


def test_tcp_mode_is_strict_about_content_length():
    body = KEEPALIVE_BODY.encode()
    with pytest.raises(SipParseError):
        parse(message(body, str(len(body) + 5)), datagram=False)
    assert parse(message(body, str(len(body))), datagram=False).body == body


def test_address_and_via_parsing():
    a = Address.parse('"前端 1" <sip:34020000001320000001@192.168.1.64:5060>;tag=9;expires=60')
    assert a.display == "前端 1" and a.uri.port == 5060 and a.params["expires"] == "60"
    v = Via.parse("SIP/2.0/TCP [::1]:5061;branch=z9hG4bKq;rport")
    assert v.host == "::1" and v.port == 5061 and "rport" in v.params


@pytest.mark.parametrize(
    "raw,reason",
    [
        (b"", "empty"),
        (b"\x00\xff\xfe garbage \x01\x02" * 50, None),
        (b"HELLO WORLD\r\n\r\n", None),
        (REGISTER.replace(b"CSeq: 1 REGISTER", b"CSeq: x"), "bad CSeq"),
        # "²" is a digit to str.isdigit but not to int(): a parse error, not a ValueError
        (REGISTER.replace(b"CSeq: 1 REGISTER", "CSeq: ² REGISTER".encode()), "bad CSeq"),
        (REGISTER.replace(b"Call-ID: 42@192.168.1.64\r\n", b""), "missing Call-ID"),
        (REGISTER[:40], None),  # truncated
        (REGISTER.replace(b"Expires: 3600", b"Bad Header Name: x"), None),
        (b"SIP/2.0 999 Nope\r\nVia: SIP/2.0/UDP a\r\nFrom: <sip:a@b>\r\nTo: <sip:a@b>\r\nCall-ID: 1\r\nCSeq: 1 X\r\n\r\n", None),
    ],
)
def test_malformed_is_a_parse_error(raw, reason):
    with pytest.raises(SipParseError) as e:
        parse(raw)
    if reason:
        assert e.value.reason == reason


def test_hostile_input_fails_fast():
    cases = [
        b"A" * (MAX_MESSAGE + 1),
        REGISTER.replace(b"Max-Forwards: 70\r\n", b"X-A: b\r\n" * 10_000)[:MAX_MESSAGE],
        REGISTER.replace(b"Max-Forwards: 70\r\n", b"X-Long: " + b"a" * 60_000 + b"\r\n"),
        b"REGISTER sip:a SIP/2.0\r\n" + b"X: y\r\n" * 10_000 + b"\r\n",
        bytes(range(256)) * 200,
    ]
    t0 = time.perf_counter()
    for raw in cases:
        with pytest.raises(SipParseError):
            parse(raw)
    assert time.perf_counter() - t0 < 0.5


def test_random_garbage_never_raises_anything_but_parse_error():
    import random

    rng = random.Random(28181)
    good = REGISTER + b""
    for _ in range(3000):
        b = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            op = rng.random()
            i = rng.randrange(len(b))
            if op < 0.4:
                b[i] = rng.randrange(256)
            elif op < 0.7:
                del b[i : i + rng.randint(1, 20)]
            else:
                b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 10)))
        try:
            m = parse(bytes(b))
            m.encode()
        except SipParseError:
            pass
