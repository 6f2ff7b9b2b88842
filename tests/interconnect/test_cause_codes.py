"""Stable cause codes (issue 7 item 4; Q13.1, Q13.2): every plain-language cause the GB/T 28181
code writes is recognised, with its values, so the console translates it by code."""

from __future__ import annotations

import pytest

from viis.interconnect.gb28181 import cause_codes as cc
from viis.interconnect.gb28181.causes import CAUSES, explain, stream_cause

VALUES = dict(got="3402000000", want="34020000001180000001", n=4, claimed="10.0.0.2:5060",
              source="127.0.0.1:40000", upper="city", status=403, our_id="34020000002000000099",
              address="10.1.1.1:5060", transport="UDP", tries=7, min=3600, reason="Busy",
              local="0.0.0.0:30000", waited=8.0, sdp_address="127.0.0.1", mode="udp",
              detail="nobody connected", packets=12, idle=11.0, declared="GB2312",
              actual="UTF-8", sum_num=10, messages=2, host="up.example", port=5060,
              name="city", local_id="34020000002000000099", realm="3402000000")


@pytest.mark.parametrize("code", sorted(CAUSES))
def test_every_shared_cause_comes_back_as_its_code(code):
    got = cc.classify(explain(code, **VALUES))
    assert got["code"] == code


def test_the_cascade_causes_are_in_the_one_table():
    """The cascade's registration causes are causes.py entries (codes ``cascade-*``, which the
    console's catalogues name), not a table of their own."""
    from viis.interconnect.gb28181 import cascade_client

    assert not hasattr(cascade_client, "CAUSES")
    assert {c for c in CAUSES if c.startswith("cascade-")} >= {
        "cascade-unreachable", "cascade-wrong-password", "cascade-rechallenged",
        "cascade-no-challenge", "cascade-unknown-id", "cascade-bad-request",
        "cascade-server-error", "cascade-forgot-us", "cascade-keepalive-lost"}


def test_values_come_back_as_arguments_without_quotes():
    got = cc.classify(explain("realm-mismatch", got="3402000000", want="4401000000"))
    assert got == {"code": "realm-mismatch", "args": {"got": "3402000000", "want": "4401000000"}}
    got = cc.classify(explain("cascade-unreachable", host="10.1.1.1", port=5060, transport="TCP"))
    assert got == {"code": "cascade-unreachable",
                   "args": {"host": "10.1.1.1", "port": "5060", "transport": "TCP"}}
    got = cc.classify(stream_cause({"packets": 0, "ssrc_mismatch": 5, "last_ssrc": 77},
                                   expected_ssrc=1234, waited=5))
    assert got == {"code": "ssrc-mismatch", "args": {"packets": "5", "got": "77", "want": "1234"}}


def test_the_sentences_written_outside_the_tables_have_codes():
    cases = {
        "never seen: no REGISTER arrived from this ID (check the server address/port/ID "
        "configured on the device, and firewalls)": "never-seen",
        "registration expired without a re-REGISTER": "registration-expired",
        "offline: no keepalive for 181 s (3 intervals of 60 s)": "keepalive-missed",
        "offline: VIIS restarted; waiting for the device's keepalive or REGISTER":
            "restarted-waiting",
        "offline: no keepalive or REGISTER for 200 s since VIIS restarted": "restarted-offline",
        "registered, waiting for a keepalive": "registered-waiting",
        "online": "online", "offline": "offline",
        "the MANSCDP XML body is malformed": "xml-malformed",
        "charset problem: the MANSCDP body is neither GB2312/GBK/GB18030 nor UTF-8":
            "charset-undecodable",
        "address mismatch: Via says 10.0.0.2:5060 but packets come from 127.0.0.1:5 (NAT or "
        "wrong local IP on the device); replying to the source": "nat-via",
        "internal error while registering; retrying with backoff": "cascade-internal-error",
        "MANSCDP: too deep": "manscdp-note",
        "the device refused the Catalog SUBSCRIBE (489 Bad Event): channel status changes are "
        "seen at the next catalog query": "subscribe-refused",
        "more than 8 catalog subscriptions at once; the oldest was ended": "subscriptions-capped",
        "the upper's Date 'Tue, 1 May' is not GB time (2024-05-01T12:00:00.000)":
            "upper-date-unreadable",
        "the upper platform's clock differs from ours by -3.5 s (its Date when we registered): "
        "check NTP on both sides, footage times are compared across platforms":
            "upper-clock-offset",
        "query 'Alarm' is not answered by this lower platform": "query-unsupported",
        "a request claiming to be from 34020000002000000001 came from 10.0.0.9, not from "
        "10.0.0.1; refused": "spoofed-source",
        "": "none",
    }
    for text, code in cases.items():
        assert cc.classify(text)["code"] == code, text
    got = cc.classify("offline: no keepalive for 181 s (3 intervals of 60 s)")
    assert got["args"] == {"seconds": "181", "missed": "3", "interval": "60"}
    got = cc.classify("query 'Alarm' is not answered by this lower platform")
    assert got["args"] == {"cmd": "Alarm"}
    got = cc.classify("the upper platform's clock differs from ours by +12.0 s (its Date when "
                      "we registered): check NTP on both sides, footage times are compared "
                      "across platforms")
    assert got["args"] == {"offset": "+12.0"}


def test_an_unknown_text_is_other_and_keeps_the_text():
    assert cc.classify("the moon is in the way") == {"code": "other",
                                                     "args": {"text": "the moon is in the way"}}


def test_device_view_codes_include_the_note_of_an_online_peer():
    note = ("charset: body declares GB2312 but is UTF-8; decoded as UTF-8")
    got = cc.device_codes({"cause": f"online; note: {note}", "warnings": [note]})
    assert got["cause_code"] == "online-note"
    assert got["cause_args"]["note_code"]["code"] == "charset-gb2312-utf8"
    assert got["warning_codes"] == [{"code": "charset-gb2312-utf8", "args": {}}]


def test_the_console_translates_every_code_in_both_languages():
    """The console page (static/pages/gb28181.js) shows ``gb28181.cause.<code>``; every code
    has a text in both catalogues that uses only the values the code carries."""
    import json
    import re

    from viis.core.config import REPO_ROOT

    cats = {lang: json.loads((REPO_ROOT / "viis/web/static/i18n" / lang / "gb28181.json")
                             .read_text(encoding="utf-8")) for lang in ("en", "zh-CN")}
    assert set(cats["en"]) == set(cats["zh-CN"])
    for code, rx in cc.patterns():
        for lang, cat in cats.items():
            text = cat.get(f"gb28181.cause.{code}")
            assert text, (lang, code)
            assert set(re.findall(r"\{(\w+)\}", text)) <= set(rx.groupindex), (lang, code, text)
