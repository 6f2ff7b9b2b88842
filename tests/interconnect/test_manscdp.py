"""MANSCDP bodies as real devices send them, and as attackers send them (Q12.1, N12.1, Q13.2)."""

import random
import time

import pytest

from viis.interconnect.gb28181 import manscdp
from viis.interconnect.gb28181.clock import ManualClock
from viis.interconnect.gb28181.manscdp import (
    CatalogAssembler,
    ManscdpError,
    build,
    catalog_responses,
    gb_time,
    parse,
    parse_gb_time,
)

DEV = "34020000001320000001"
KEEPALIVE = (
    '<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n'
    f"<SN>43</SN>\r\n<DeviceID>{DEV}</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n"
)


def catalog(name: str, status: str = "ON", info_tag: str = "Info") -> str:
    return (
        '<?xml version="1.0" encoding="GB2312"?>\n<Response>\n<CmdType>Catalog</CmdType>\n'
        f"<SN>7</SN>\n<DeviceID>{DEV}</DeviceID>\n<SumNum>1</SumNum>\n"
        '<DeviceList Num="1">\n<Item>\n<DeviceID>34020000001320000011</DeviceID>\n'
        f"<Name> {name} </Name>\n<Manufacturer>Hikvision</Manufacturer>\n"
        f"<Status>{status}</Status>\n<{info_tag}>\n<PTZType>1</PTZType>\n</{info_tag}>\n"
        "</Item>\n</DeviceList>\n</Response>\n"
    )


def test_keepalive_fields():
    m = parse(KEEPALIVE.encode())
    assert (m.root, m.cmd, m.sn, m.device_id) == ("Notify", "Keepalive", 43, DEV)
    assert m.fields["Status"] == "OK" and m.get("status") == "OK"
    assert m.items == [] and m.sum_num is None


@pytest.mark.parametrize("codec", ["gb2312", "gbk", "gb18030", "utf-8"])
def test_chinese_name_in_every_charset_declared_gb2312(codec):
    name = "东门路口" if codec == "gb2312" else "镕基路东门"  # 镕 is not in GB2312
    m = parse(catalog(name).encode(codec))
    assert m.items[0]["Name"] == name
    if codec == "utf-8":
        assert m.charset == "utf-8" and any("UTF-8" in w for w in m.warnings)
    else:
        assert m.charset == "gb18030"


def test_name_gb2312_cannot_encode_round_trips_through_build():
    with pytest.raises(UnicodeEncodeError):
        "镕".encode("gb2312")
    body = build("Response", "Catalog", 1, DEV, {"SumNum": 1}, [{"DeviceID": "1", "Name": "朱镕路"}])
    text = body.decode("gb2312")  # strict: the bytes match the declaration
    assert "朱&#38229;路" in text  # a character reference every XML parser reads back
    assert parse(body).items[0]["Name"] == "朱镕路"
    utf8 = build("Response", "Catalog", 1, DEV, None, [{"Name": "朱镕路"}], charset="UTF-8")
    assert "朱镕路".encode() in utf8 and b'encoding="UTF-8"' in utf8
    gbk = build("Response", "Catalog", 1, DEV, None, [{"Name": "朱镕路"}], charset="GBK")
    assert "朱镕路".encode("gbk") in gbk


def test_sip_charset_parameter_wins_over_nothing():
    body = catalog("东门").replace(' encoding="GB2312"', "").encode("gbk")
    assert parse(body, charset="GBK").items[0]["Name"] == "东门"


def test_leading_whitespace_bom_and_lower_case_tags():
    text = "\r\n \ufeff" + catalog("东门", status="ONLINE", info_tag="info").replace(
        "<CmdType>Catalog</CmdType>", "<cmdtype>catalog</cmdtype>")
    m = parse(text.encode("utf-8"))
    assert m.cmd == "Catalog"
    assert m.items[0]["Info"] == {"PTZType": "1"}
    assert m.items[0]["Status"] == "ON"  # ONLINE normalised


def test_status_offline_normalised_and_unknown_kept():
    assert parse(catalog("a", status="OFFLINE").encode()).items[0]["Status"] == "OFF"
    assert parse(catalog("a", status="offline").encode()).items[0]["Status"] == "OFF"
    assert parse(catalog("a", status="VLOST").encode()).items[0]["Status"] == "VLOST"


def test_missing_optional_fields_and_sn():
    m = parse(b"<Notify><CmdType>Keepalive</CmdType><DeviceID>1</DeviceID></Notify>")
    assert m.sn == 0 and any("SN" in w for w in m.warnings)
    m = parse(catalog("a").replace("<SumNum>1</SumNum>\n", "").replace(' Num="1"', "").encode())
    assert m.sum_num is None and m.num == 1 and len(m.items) == 1


def test_no_xml_declaration_and_namespace():
    m = parse(f'<Query xmlns="urn:x"><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>{DEV}'
              "</DeviceID></Query>".encode())
    assert (m.root, m.cmd) == ("Query", "Catalog")


def test_alarm_notify_top_level_info_section():
    body = manscdp.alarm_notify(DEV, 9, priority=1, method=6, time_ms=1_714_536_000_000,
                                description="录像故障", alarm_type=3)
    m = parse(body)
    assert m.cmd == "Alarm" and m.fields["AlarmMethod"] == "6"
    assert m.fields["AlarmTime"] == "2024-05-01T12:00:00"
    assert m.sections["Info"] == {"AlarmType": "3"}
    assert m.fields["AlarmDescription"] == "录像故障"


def test_record_info_response_items_and_name():
    items = [{"DeviceID": DEV, "Name": "cam", "StartTime": gb_time(i * 3_600_000),
              "EndTime": gb_time((i + 1) * 3_600_000), "Secrecy": 0, "Type": "time"}
             for i in range(7)]
    parts = manscdp.record_info_responses(DEV, 3, items, name="cam")
    got = [parse(p) for p in parts]
    assert all(g.list_tag == "RecordList" and g.sum_num == 7 for g in got)
    assert sum(g.num for g in got) == 7
    assert got[0].fields["Name"] == "cam"


def test_media_status_and_keepalive_builders():
    assert parse(manscdp.media_status(DEV, 2)).fields["NotifyType"] == "121"
    k = parse(manscdp.keepalive(DEV, 5))
    assert (k.cmd, k.sn, k.fields["Status"]) == ("Keepalive", 5, "OK")


def test_build_escapes_text():
    body = build("Response", "DeviceInfo", 1, DEV, {"DeviceName": "A<&>\"B"})
    assert parse(body).fields["DeviceName"] == 'A<&>"B'


@pytest.mark.parametrize("text,ms", [
    ("2024-05-01T12:00:00", 1_714_536_000_000),
    ("2024-05-01 12:00:00", 1_714_536_000_000),
    ("2024-05-01T12:00:00.250", 1_714_536_000_250),
    ("2024-05-01T04:00:00Z", 1_714_536_000_000),
    ("2024-05-01T04:00:00.5z", 1_714_536_000_500),
    ("2024-05-01T12:00:00+08:00", 1_714_536_000_000),
    (" 20240501T120000 ", 1_714_536_000_000),
])
def test_lenient_times(text, ms):
    assert parse_gb_time(text) == ms


def test_gb_time_is_beijing_without_zone():
    assert gb_time(1_714_536_000_000) == "2024-05-01T12:00:00"
    with pytest.raises(ValueError):
        parse_gb_time("yesterday")


def test_unicode_digits_in_numbers_are_not_numbers():
    """str.isdigit() is true for "²" and "₀", which int() refuses: SN and Num such as these
    are warnings, never a ValueError out of parse."""
    body = manscdp.catalog_responses(DEV, 5, [{"DeviceID": "1"}])[0]
    body = body.replace(b"<SN>5</SN>", "<SN>²</SN>".encode()).replace(b'Num="1"', 'Num="₀"'.encode())
    m = parse(body)
    assert m.sn == 0 and m.num == 1 and any("SN" in w for w in m.warnings)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00", "9999-12-31T23:59:59-14:00",
                                  "2024-13-01T00:00:00", "2024-02-30T00:00:00"])
def test_a_time_outside_the_calendar_is_a_value_error(text):
    """Callers catch ValueError (a device's RecordInfo item, an upper's query window, a
    REGISTER Date); datetime's OverflowError at the edges of its range must not escape."""
    with pytest.raises(ValueError):
        parse_gb_time(text)


# ---- hostile input -------------------------------------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10))
    + "]><Notify><CmdType>&lol9;</CmdType><SN>1</SN></Notify>"
)


@pytest.mark.parametrize("body", [
    BILLION_LAUGHS,
    '<!DOCTYPE x SYSTEM "file:///etc/passwd"><Notify><CmdType>Keepalive</CmdType></Notify>',
    '<Notify><CmdType>Keepalive</CmdType></Notify><!doctype x>',
    '<!ENTITY x "y"><Notify><CmdType>Keepalive</CmdType></Notify>',
])
def test_doctype_and_entities_refused_outright(body):
    t = time.perf_counter()
    with pytest.raises(ManscdpError, match="DOCTYPE"):
        parse(body.encode())
    assert time.perf_counter() - t < 0.1


def test_depth_limit():
    body = "<Notify><CmdType>x</CmdType>" + "<a>" * 50 + "</a>" * 50 + "</Notify>"
    with pytest.raises(ManscdpError, match="nested deeper"):
        parse(body.encode())


def test_deep_nesting_of_a_megabyte_stops_early():
    body = ("<Notify>" + "<a>" * 200_000).encode()
    t = time.perf_counter()
    with pytest.raises(ManscdpError):
        parse(body)
    assert time.perf_counter() - t < 0.5


def test_size_limit_and_one_megabyte_body():
    items = [{"DeviceID": f"{34020000001320000000 + i}", "Name": "东门路口摄像机" * 4,
              "Status": "ON", "Address": "x" * 200} for i in range(2600)]
    big = build("Response", "Catalog", 1, DEV, {"SumNum": 2600}, items, charset="UTF-8")
    assert 900_000 < len(big) <= manscdp.MAX_BODY
    t = time.perf_counter()
    m = parse(big)
    assert len(m.items) == 2600 and time.perf_counter() - t < 3.0
    with pytest.raises(ManscdpError, match="limit"):
        parse(big + b" " * (manscdp.MAX_BODY - len(big) + 1))


def test_element_count_limit():
    body = "<Notify><CmdType>x</CmdType>" + "<b/>" * 60_000 + "</Notify>"
    with pytest.raises(ManscdpError, match="elements"):
        parse(body.encode())


@pytest.mark.parametrize("body", [
    b"", b"   ", b"garbage", b"<Notify>", b"<Notify><CmdType>Keep", b"<Foo><CmdType>x</CmdType></Foo>",
    b"<Notify><SN>1</SN></Notify>", b"\xff\xfe\x00<", b"<Notify>\x00</Notify>", b"<?xml?>",
    b"<!-- only a comment -->",
])
def test_malformed_is_manscdp_error(body):
    with pytest.raises(ManscdpError):
        parse(body)


# ---- splitting and assembling ---------------------------------------------------------

def _items(n):
    return [{"DeviceID": f"3402000000132{i:07d}", "Name": f"镕基路{i}号 摄像机", "Manufacturer": "VIIS",
             "Model": "IPC", "Owner": "Owner", "CivilCode": "340200", "Address": "东门",
             "Parental": 0, "ParentID": "34020000002000000001", "SafetyWay": 0, "RegisterWay": 1,
             "Secrecy": 0, "Status": "ON", "Info": {"PTZType": 1, "DownloadSpeed": "1/2/4"}}
            for i in range(n)]


@pytest.mark.parametrize("n", [0, 1, 2, 19, 20, 21, 157])
@pytest.mark.parametrize("limit", [1024, 1400, 4000])
def test_catalog_split_sizes_and_counts(n, limit):
    items = _items(n)
    parts = catalog_responses(DEV, 11, items, max_bytes=limit)
    one = len(catalog_responses(DEV, 11, items[:1], max_bytes=limit)[0]) if n else 0
    got = [parse(p) for p in parts]
    assert sum(g.num for g in got) == n
    assert all(g.sum_num == n and g.sn == 11 and g.num == len(g.items) for g in got)
    assert [i["DeviceID"] for g in got for i in g.items] == [i["DeviceID"] for i in items]
    for p in parts:
        assert len(p) <= max(limit, one)
    if n > 1 and limit >= 2 * one:
        assert any(g.num > 1 for g in got)  # not one item per message when more fit


def test_catalog_split_respects_per_message():
    parts = catalog_responses(DEV, 1, _items(10), per_message=3, max_bytes=100_000)
    assert [parse(p).num for p in parts] == [3, 3, 3, 1]


def test_assembler_reordered_and_duplicated_parts_complete():
    clock = ManualClock()
    done = []
    a = CatalogAssembler(clock, timeout=5, on_result=done.append)
    parts = catalog_responses(DEV, 4, _items(30), per_message=4, max_bytes=100_000)
    msgs = [parse(p) for p in parts]
    order = msgs[::-1] + [msgs[2], msgs[0]]
    random.Random(1).shuffle(order)
    results = [a.add(m) for m in order]
    final = [r for r in results if r is not None]
    assert len(final) == 1 and final[0].complete
    assert len(final[0].items) == 30 and final[0].sum_num == 30
    assert done == final and not a.pending


def test_assembler_partial_after_timeout():
    clock = ManualClock()
    done = []
    a = CatalogAssembler(clock, timeout=5, on_result=done.append)
    msgs = [parse(p) for p in catalog_responses(DEV, 4, _items(10), per_message=3, max_bytes=99999)]
    assert a.add(msgs[0]) is None
    clock.advance(4)
    assert a.add(msgs[2]) is None  # progress restarts the timeout
    clock.advance(4.9)
    assert not done
    clock.advance(0.2)
    assert len(done) == 1 and not done[0].complete and len(done[0].items) == 6
    assert done[0].sum_num == 10 and done[0].messages == 2


def test_assembler_expect_gives_empty_result_when_device_never_answers():
    clock = ManualClock()
    got = []
    a = CatalogAssembler(clock, timeout=3)
    a.expect(DEV, 99, callback=got.append)
    clock.advance(3.1)
    assert len(got) == 1 and got[0].items == [] and not got[0].complete


def test_assembler_keys_by_device_and_sn():
    clock = ManualClock()
    a = CatalogAssembler(clock)
    p1 = parse(catalog_responses(DEV, 1, _items(2), per_message=1)[0])
    p2 = parse(catalog_responses(DEV, 2, _items(2), per_message=1)[1])
    assert a.add(p1) is None and a.add(p2) is None
    assert len(a.pending) == 2


def test_assembler_wait_future():
    import asyncio

    from viis.interconnect.gb28181.clock import LoopClock

    async def run():
        a = CatalogAssembler(LoopClock(), timeout=5)
        fut = a.wait(DEV, 8)
        for p in catalog_responses(DEV, 8, _items(3), per_message=2):
            a.add(parse(p))
        return await asyncio.wait_for(fut, 10)

    r = asyncio.run(run())
    assert r.complete and len(r.items) == 3


# ---- fuzz ------------------------------------------------------------------------------

def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(5)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(pos, len(b) - 1)] = rng.randrange(256)
        elif op == 1:
            del b[pos : pos + rng.randint(1, 20)]
        elif op == 2:
            b[pos:pos] = rng.choice([b"<", b">", b"</", b"&", b"&amp;", b"<!DOCTYPE", b"<Item>",
                                     b"\x00", b"\xff", b"\xa1", b'"', b"<![CDATA[", b"]]>"])
        elif op == 3 and b:
            s = rng.randrange(len(b))
            b[pos:pos] = b[s : s + rng.randint(1, 60)]
        else:
            b = b[: rng.randrange(len(b) + 1)]
    return bytes(b)


def test_fuzz_parse_raises_only_manscdp_error():
    rng = random.Random(28181)
    seeds = [KEEPALIVE.encode(), catalog("镕基路").encode("gb18030"), catalog("东门").encode("utf-8"),
             manscdp.alarm_notify(DEV, 1, time_ms=0, alarm_type=2)]
    t0 = time.perf_counter()
    n = ok = 0
    while time.perf_counter() - t0 < 2.0:
        body = _mutate(rng, rng.choice(seeds))
        n += 1
        try:
            m = parse(body)
        except ManscdpError:
            continue
        ok += 1
        assert m.root in manscdp.ROOTS and isinstance(m.sn, int)
    assert n > 500 and ok > 0
