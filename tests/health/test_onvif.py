"""ONVIF GetSystemDateAndTime (Q19.3 accurate time): a real answer of the simulated camera,
and every malformed or hostile answer refused with a plain message (never a crash, never an
entity expansion)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from viis.health.onvif import MAX_BYTES, OnvifError, get_system_date_and_time, parse_response

NS = ('xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
      'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema"')


def answer(y="2026", mo="11", d="28", h="8", mi="30", sec="15", kind="NTP", extra="") -> bytes:
    return (f'<?xml version="1.0"?>{extra}<s:Envelope {NS}><s:Body><tds:GetSystemDateAndTimeResponse>'
            f"<tds:SystemDateAndTime><tt:DateTimeType>{kind}</tt:DateTimeType><tt:UTCDateTime>"
            f"<tt:Time><tt:Hour>{h}</tt:Hour><tt:Minute>{mi}</tt:Minute><tt:Second>{sec}</tt:Second>"
            f"</tt:Time><tt:Date><tt:Year>{y}</tt:Year><tt:Month>{mo}</tt:Month><tt:Day>{d}</tt:Day>"
            "</tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
            "</s:Body></s:Envelope>").encode()


def test_a_well_formed_answer_gives_utc_and_the_sync_kind():
    ms, kind = parse_response(answer())
    assert ms == 1795854615000 and kind == "NTP"  # 2026-11-28T08:30:15Z


def test_an_epoch_reset_camera_reads_1970():
    ms, _ = parse_response(answer(y="1970", mo="1", d="1", h="0", mi="0", sec="5"))
    assert ms == 5000


@pytest.mark.parametrize("body,msg", [
    (b"not xml at all", "not XML"),
    (answer()[:-40], "not XML"),
    (answer(extra='<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'), "DTD"),
    (b"<a>" + b"x" * (MAX_BYTES + 10) + b"</a>", "over"),
    (answer(mo="13"), "Month 13 out of range"),
    (answer(d="31", mo="2"), "not a date"),
    (answer(h="-1"), "Hour is not a number"),
    (answer(sec="12345"), "Second is not a number"),
    (answer(y="nine"), "Year is not a number"),
    (answer().replace(b"UTCDateTime", b"LocalDateTime"), "no UTCDateTime"),
    (f'<s:Envelope {NS}><s:Body/></s:Envelope>'.encode(), "no SystemDateAndTime"),
    (f'<s:Envelope {NS}><s:Body><s:Fault><s:Reason><s:Text>not authorised</s:Text></s:Reason>'
     f"</s:Fault></s:Body></s:Envelope>".encode(), "SOAP fault: not authorised"),
    (b"<x/>", "no SOAP Body"),
])
def test_malformed_and_hostile_answers_are_refused(body, msg):
    with pytest.raises(OnvifError, match=msg):
        parse_response(body)


class _Device:
    """A local device service answering with a fixed body and status."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                outer.request = self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/onvif/device_service"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_offset_is_camera_minus_the_middle_of_the_round_trip():
    now = time.gmtime(time.time() + 120)  # a camera two minutes ahead
    dev = _Device(answer(str(now.tm_year), str(now.tm_mon), str(now.tm_mday), str(now.tm_hour),
                         str(now.tm_min), str(now.tm_sec)))
    try:
        t = get_system_date_and_time(dev.url)
        assert b"GetSystemDateAndTime" in dev.request
        assert abs(t.offset_ms - 120_000) <= 1500 and t.rtt_ms >= 0 and t.sync == "NTP"
    finally:
        dev.close()


def test_a_soap_fault_with_http_500_and_an_unreachable_device_are_errors():
    dev = _Device(f'<s:Envelope {NS}><s:Body><s:Fault><s:Reason><s:Text>busy</s:Text></s:Reason>'
                  f"</s:Fault></s:Body></s:Envelope>".encode(), status=500)
    try:
        with pytest.raises(OnvifError, match="SOAP fault: busy"):
            get_system_date_and_time(dev.url)
    finally:
        dev.close()
    with pytest.raises(OnvifError, match="unreachable"):
        get_system_date_and_time("http://127.0.0.1:9/onvif/device_service", timeout=1)
    with pytest.raises(OnvifError, match="only http"):
        get_system_date_and_time("file:///etc/passwd")
