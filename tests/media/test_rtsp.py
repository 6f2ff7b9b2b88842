"""RTSP client tests against a real GStreamer RTSP server and scripted raw TCP
servers (hostile or quirky cameras).  No mocks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import socket
import struct
import threading
import time
import tracemalloc

import pytest

from viis.media.rtsp import (
    RtspAuthError,
    RtspClient,
    RtspConnectError,
    RtspConnectionLost,
    RtspProtocolError,
    RtspSession,
    RtspStall,
    RtspStatusError,
    RtspTimeout,
    RtspTooLarge,
    mask_url,
)

try:  # tests/media may or may not be a package
    from tests.media import rtsp_server
except ImportError:  # pragma: no cover
    import rtsp_server


def run(coro, timeout=30):
    async def main():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(main())


@pytest.fixture(scope="module")
def gst():
    with rtsp_server.GstRtspServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def gst_auth():
    with rtsp_server.GstRtspServer(auth=True) as srv:
        yield srv


@pytest.fixture
def gst_own():
    """A server of its own, for tests that stop or kill it."""
    with rtsp_server.GstRtspServer() as srv:
        yield srv


async def collect(url, want, max_seconds=10.0, until=None, **kw):
    """Units of stream 0 until ``want`` of them (and ``until(session)``)."""
    units = {}
    async with RtspSession(url, **kw) as s:
        deadline = time.monotonic() + max_seconds
        async for u in s:
            units.setdefault(u.stream, []).append(u)
            if len(units.get(0, ())) >= want and (until is None or until(s, units)):
                break
            if time.monotonic() > deadline:
                break
        return s, units


# ---------------------------------------------------------------------------
# real server: codecs


def test_h264_units_timestamps_keyframes_parameter_sets_and_sr(gst):
    s, units = run(collect(gst.url("/h264"), 60, max_seconds=12,
                           until=lambda s, u: s.streams[0].last_sr is not None))
    v = units[0]
    assert len(v) >= 60
    st = s.streams[0]
    assert st.media.codec == "h264" and st.clock_rate == 90000
    ts = [u.ts for u in v]
    assert all(b > a for a, b in zip(ts, ts[1:]))
    deltas = {b - a for a, b in zip(ts, ts[1:])}
    assert deltas == {3600}  # 25 fps at 90 kHz, no gaps
    keys = [i for i, u in enumerate(v) if u.key]
    assert keys[0] == 0  # waits for a keyframe
    assert {b - a for a, b in zip(keys, keys[1:])} == {25}
    for u in v:
        types = {n[0] & 0x1F for n in u.data}
        assert (5 in types) == u.key and not any(n.startswith(b"\x00\x00\x01") for n in u.data)
    ps = st.parameter_sets
    assert ps["sps"][0] & 0x1F == 7 and ps["pps"][0] & 0x1F == 8
    assert any(n[0] & 0x1F == 7 for n in v[0].data)  # in-band SPS with the IDR
    # receive rate is real time at 25 fps
    span = v[-1].mono - v[0].mono
    assert abs(span - (len(v) - 1) / 25) < 0.5
    stats = s.stats()["streams"][0]
    assert stats["packets"] > 60 and stats["lost"] == 0 and stats["damaged_units"] == 0
    sr = st.last_sr
    assert sr is not None and abs(sr.utc_ms - time.time() * 1000) < 20_000
    # camera time of the last unit according to the SR mapping
    assert abs(st.rtp_to_utc_ms(v[-1].ts) - v[-1].wall_ms) < 5_000
    assert s.state == "closed"


def test_h265_units_and_keyframes(gst):
    s, units = run(collect(gst.url("/h265"), 55))
    v = units[0]
    st = s.streams[0]
    assert st.media.codec == "h265"
    ts = [u.ts for u in v]
    assert {b - a for a, b in zip(ts, ts[1:])} == {3600}
    keys = [i for i, u in enumerate(v) if u.key]
    assert keys[0] == 0 and {b - a for a, b in zip(keys, keys[1:])} == {25}
    for u in v:
        types = {(n[0] >> 1) & 0x3F for n in u.data}
        assert any(16 <= t <= 21 for t in types) == u.key
    assert set(st.parameter_sets) == {"vps", "sps", "pps"}
    assert (st.parameter_sets["sps"][0] >> 1) & 0x3F == 33


def test_h264_with_aac_audio(gst):
    s, units = run(collect(gst.url("/h264aac"), 30, until=lambda s, u: len(u.get(1, ())) > 40))
    assert [st.media.codec for st in s.streams] == ["h264", "aac"]
    audio = s.streams[1]
    assert audio.clock_rate == 48000 and audio.media.aac_config
    a = units[1]
    assert len(a) > 40
    ts = [u.ts for u in a]
    assert {b - a for a, b in zip(ts, ts[1:])} == {1024}
    assert all(u.key and isinstance(u.data, bytes) and 0 < len(u.data) < 2048 for u in a)
    # 48000/1024 = 46.9 frames per second of wall time
    span = a[-1].mono - a[0].mono
    assert 0.6 < (len(a) - 1) / 46.875 / span < 1.6


def test_h264_with_pcma_audio(gst):
    s, units = run(collect(gst.url("/h264pcma"), 30, until=lambda s, u: len(u.get(1, ())) > 20))
    audio = s.streams[1]
    assert audio.media.codec == "pcma" and audio.clock_rate == 8000
    a = units[1]
    assert len(a) > 20
    # one byte per sample at 8 kHz: timestamps advance by the frame length
    for x, y in zip(a, a[1:]):
        assert y.ts - x.ts == len(x.data)
    total = a[-1].ts - a[0].ts
    span = a[-1].mono - a[0].mono
    assert 0.6 < total / 8000 / span < 1.6


def test_select_only_audio_and_callback_delivery(gst):
    got = []

    async def main():
        s = RtspSession(gst.url("/h264pcma"), media=["audio"], on_unit=got.append)
        await s.start()
        assert [st.media.codec for st in s.streams] == ["pcma"]
        with pytest.raises(TypeError):
            s.__aiter__()
        await asyncio.sleep(1.0)
        await s.close()
        await s.wait_closed()  # closed normally: no error
        return s

    s = run(main())
    assert len(got) >= 5 and {u.stream for u in got} == {0}  # 1024-sample frames: ~8/s
    assert s.stats()["streams"][0]["units"] == len(got)


def test_callback_exception_ends_session(gst):
    def boom(unit):
        raise ValueError("writer broke")

    async def main():
        s = RtspSession(gst.url("/h264"), on_unit=boom)
        await s.start()
        with pytest.raises(ValueError, match="writer broke"):
            await asyncio.wait_for(s.wait_closed(), 5)
        assert s.state == "closed"

    run(main())


def test_keepalive_and_receiver_reports(gst):
    async def main():
        async with RtspSession(gst.url("/h264"), keepalive_interval=0.4,
                               rtcp_interval=0.3) as s:
            await asyncio.sleep(1.5)
            assert s.keepalives >= 2 and s.keepalive_failures == 0
            assert s.rr_sent >= 2
            assert s.state == "playing"

    run(main())


def test_not_found_and_refused(gst):
    with pytest.raises(RtspStatusError) as ei:
        run(RtspSession(gst.url("/nope"), timeout=5).start())
    assert ei.value.status == 404 and "404" in str(ei.value) and "DESCRIBE" in str(ei.value)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(RtspConnectError):
        run(RtspSession(f"rtsp://u:pw@127.0.0.1:{port}/x", timeout=2).start())


def test_describe_only(gst):
    sd = run(RtspClient(gst.url("/h264aac")).describe())
    assert [m.codec for m in sd.media] == ["h264", "aac"]
    assert sd.media[0].control.startswith(gst.url("/h264aac"))


# ---------------------------------------------------------------------------
# real server: authentication


def test_digest_auth_success(gst_auth):
    url = gst_auth.url("/h264", rtsp_server.SECURE_USER, rtsp_server.SECURE_PASSWORD)
    s, units = run(collect(url, 5))
    assert len(units[0]) >= 5
    client = RtspClient(gst_auth.url("/h264"), username=rtsp_server.SECURE_USER,
                        password=rtsp_server.SECURE_PASSWORD)
    s2, units2 = run(collect(gst_auth.url("/h264"), 3, username=rtsp_server.SECURE_USER,
                             password=rtsp_server.SECURE_PASSWORD))
    assert len(units2[0]) >= 3
    assert rtsp_server.SECURE_PASSWORD not in repr(client) + repr(s) + str(s.stats())


def test_wrong_password_is_auth_error_without_secrets(gst_auth):
    pw = "Wr0ng-Passw0rd-XYZ"
    url = gst_auth.url("/h264", rtsp_server.SECURE_USER, pw)
    session = RtspSession(url, timeout=5)
    with pytest.raises(RtspAuthError) as ei:
        run(session.start())
    text = str(ei.value) + repr(ei.value) + repr(session) + str(session.stats())
    text += "".join(str(a) for a in ei.value.args)
    assert "credentials rejected" in str(ei.value) and "401" in str(ei.value)
    assert pw not in text and "Wr0ng" not in text
    assert f"{rtsp_server.SECURE_USER}:" not in text and "***@" in str(ei.value)
    with pytest.raises(RtspAuthError, match="no credentials"):
        run(RtspSession(gst_auth.url("/h264"), timeout=5).start())


# ---------------------------------------------------------------------------
# real server: failures


def test_server_killed_mid_stream_is_connection_lost(gst_own):
    async def main():
        s = RtspSession(gst_own.url("/h264"), stall_timeout=30)
        await s.start()
        n = 0
        t0 = None
        with pytest.raises(RtspConnectionLost) as ei:
            async for _u in s:
                n += 1
                if n == 10:
                    gst_own.kill()
                    t0 = time.monotonic()
        assert time.monotonic() - t0 < 3
        assert "lost" in str(ei.value)
        with pytest.raises(RtspConnectionLost):
            await s.wait_closed()

    run(main())


def test_stall_detected_when_server_is_stopped(gst_own):
    async def main():
        s = RtspSession(gst_own.url("/h264"), stall_timeout=1.5)
        await s.start()
        n = 0
        t0 = None
        try:
            with pytest.raises(RtspStall) as ei:
                async for _u in s:
                    n += 1
                    if n == 5:
                        gst_own.pause()
                        t0 = time.monotonic()
        finally:
            gst_own.resume()
        waited = time.monotonic() - t0
        assert 1.0 < waited < 4.0
        assert "no RTP packet" in str(ei.value) and isinstance(ei.value, TimeoutError)

    run(main())


# ---------------------------------------------------------------------------
# scripted raw TCP servers


class FakeCamera:
    """Blocking-socket RTSP 'camera' in a thread; ``script(conn)`` per connection."""

    def __init__(self, script):
        self.script = script
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.errors = []
        self.requests = []
        self.responses = []
        self.received = bytearray()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, path="/live", cred=""):
        return f"rtsp://{cred}127.0.0.1:{self.port}{path}"

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._run, args=(c,), daemon=True).start()

    def _run(self, c):
        conn = _FakeConn(self, c)
        try:
            self.script(conn)
        except (ConnectionError, BrokenPipeError, OSError):
            pass
        except Exception as exc:  # surfaced by the test
            self.errors.append(exc)
        finally:
            c.close()

    def close(self):
        self._stop = True
        self._thread.join(2)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _FakeConn:
    def __init__(self, cam, sock):
        self.cam = cam
        self.sock = sock
        self.buf = b""
        sock.settimeout(10)

    def read_request(self):
        while True:
            # keep interleaved frames the client sends (RTCP receiver reports)
            if self.buf.startswith(b"$") and len(self.buf) >= 4:
                n = 4 + struct.unpack("!H", self.buf[2:4])[0]
                if len(self.buf) >= n:
                    self.cam.received += self.buf[:n]
                    self.buf = self.buf[n:]
                    continue
            elif b"\r\n\r\n" in self.buf:
                break
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        if lines[0].startswith("RTSP/"):  # the client answering our request
            self.cam.responses.append(lines)
            return self.read_request()
        method, url, _ = lines[0].split(" ", 2)
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        req = {"method": method, "url": url, "headers": hdrs}
        self.cam.requests.append(req)
        return req

    def reply(self, req, status="200 OK", headers=None, body=b""):
        out = f"RTSP/1.0 {status}\r\nCSeq: {req['headers'].get('cseq', '0')}\r\n"
        for k, v in (headers or {}).items():
            out += f"{k}: {v}\r\n"
        if body:
            out += f"Content-Length: {len(body)}\r\n"
        self.sock.sendall(out.encode() + b"\r\n" + body)

    def handshake(self, sdp=None, check=None):
        """Answer OPTIONS/DESCRIBE/SETUP until PLAY; ``check(req)`` may answer
        instead (returns True when it did)."""
        sdp = sdp or SDP_H264
        while True:
            req = self.read_request()
            if req is None:
                return None
            if check is not None and check(self, req):
                continue
            m = req["method"]
            if m == "OPTIONS":
                self.reply(req, headers={"Public": "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN"})
            elif m == "DESCRIBE":
                self.reply(req, headers={"Content-Type": "application/sdp",
                                         "Content-Base": req["url"] + "/"}, body=sdp.encode())
            elif m == "SETUP":
                tr = req["headers"]["transport"]
                self.reply(req, headers={"Session": "12345678;timeout=60", "Transport": tr})
            elif m == "PLAY":
                self.reply(req, headers={"Session": "12345678"})
                return req
            else:
                self.reply(req)

    def send(self, data):
        self.sock.sendall(data)

    def drain(self):
        """Read (and answer) until the client disconnects."""
        while True:
            req = self.read_request()
            if req is None:
                return
            self.reply(req)


SDP_H264 = ("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=fake\r\nt=0 0\r\n"
            "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
            "a=fmtp:96 packetization-mode=1\r\na=control:track1\r\n")


def interleaved(ch, payload):
    return struct.pack("!BBH", 0x24, ch, len(payload)) + payload


def rtp_pkt(seq, ts, payload, marker=True, pt=96):
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq, ts, 0xABCD) + payload


IDR = bytes([0x65, 0x88]) + b"\x11" * 50
P = bytes([0x41, 0x9A]) + b"\x22" * 30


def test_garbage_instead_of_rtsp_is_protocol_error():
    def script(c):
        c.read_request()
        c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\xee" * 200)
        c.drain()

    with FakeCamera(script) as cam:
        t0 = time.monotonic()
        with pytest.raises(RtspProtocolError, match="not RTSP"):
            run(RtspSession(cam.url(), timeout=5).start())
        assert time.monotonic() - t0 < 2


def test_huge_header_is_rejected_with_bounded_memory():
    blob = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nX-Junk: " + b"A" * (10 * 1024 * 1024)

    def script(c):
        c.read_request()
        c.send(blob)
        c.drain()

    with FakeCamera(script) as cam:
        tracemalloc.start()
        try:
            with pytest.raises(RtspTooLarge, match="header exceeds"):
                run(RtspSession(cam.url(), timeout=5).start())
            _cur, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 3 * 1024 * 1024


def test_huge_content_length_is_rejected():
    def script(c):
        req = c.read_request()
        c.send(f"RTSP/1.0 200 OK\r\nCSeq: {req['headers']['cseq']}\r\n"
               f"Content-Length: 99999999999\r\n\r\n".encode())
        c.drain()

    with FakeCamera(script) as cam, pytest.raises(RtspTooLarge, match="body"):
        run(RtspSession(cam.url(), timeout=5).start())


def test_no_response_times_out():
    def script(c):
        c.read_request()
        time.sleep(3)

    with FakeCamera(script) as cam:
        t0 = time.monotonic()
        with pytest.raises(RtspTimeout) as ei:
            run(RtspSession(cam.url(cred="user:topsecret@"), timeout=0.5).start())
        assert time.monotonic() - t0 < 2
        assert ei.value.step == "OPTIONS" and "topsecret" not in str(ei.value)


def test_interleaved_garbage_resync_unknown_channel_and_receiver_reports():
    def script(c):
        c.handshake()
        c.send(interleaved(0, rtp_pkt(1, 0, IDR)))
        c.send(b"garbage without a dollar sign" * 10)  # junk between frames
        c.send(interleaved(7, b"\x00" * 100))  # channel nobody set up
        c.send(interleaved(0, rtp_pkt(2, 3600, P)))
        c.send(interleaved(0, b"\x00" * 5))  # not RTP
        # server-initiated request in the middle of the stream
        c.send(b"GET_PARAMETER rtsp://x RTSP/1.0\r\nCSeq: 77\r\n\r\n")
        c.send(interleaved(0, rtp_pkt(3, 7200, P)))
        time.sleep(0.8)
        c.drain()

    async def main():
        s = RtspSession(cam.url(), rtcp_interval=0.2, stall_timeout=5)
        await s.start()
        got = []
        async for u in s:
            got.append(u)
            if len(got) == 2:
                break
        await asyncio.sleep(0.7)
        st = s.stats()
        await s.close()
        return got, st

    with FakeCamera(script) as cam:
        got, st = run(main())
        assert not cam.errors
    assert [u.ts for u in got] == [0, 3600] and got[0].key
    assert st["garbage_bytes"] >= 290 and st["unknown_channel_frames"] == 1
    assert st["streams"][0]["bad"] == 1
    assert ["RTSP/1.0 200 OK", "CSeq: 77"] in [r[:2] for r in cam.responses]
    # receiver reports on the RTCP channel (1)
    rr = bytes(cam.received)
    assert rr[:2] == b"$\x01" and rr[5] == 201
    assert any(r["method"] == "TEARDOWN" for r in cam.requests)


def test_endless_garbage_while_playing_ends_session():
    def script(c):
        c.handshake()
        c.send(interleaved(0, rtp_pkt(1, 0, IDR)))
        for _ in range(40):
            c.send(b"\xff" * 4096)
        c.drain()

    async def main():
        s = RtspSession(cam.url(), stall_timeout=5)
        with pytest.raises(RtspTooLarge, match="lost interleaved framing"):
            # the junk may already arrive with the PLAY response
            await s.start()
            async for _u in s:
                pass

    with FakeCamera(script) as cam:
        run(main())


def _digest_ok(req, user, pw, realm, nonce):
    auth = req["headers"].get("authorization", "")
    if not auth.startswith("Digest "):
        return False
    p = dict(re.findall(r'(\w+)="?([^",]*)"?', auth[7:]))
    ha1 = hashlib.md5(f"{user}:{realm}:{pw}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{req['method']}:{p['uri']}".encode()).hexdigest()
    if p.get("qop") == "auth":
        exp = hashlib.md5(f"{ha1}:{nonce}:{p['nc']}:{p['cnonce']}:auth:{ha2}".encode()).hexdigest()
    else:
        exp = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    return p.get("nonce") == nonce and p.get("response") == exp and p["uri"] == req["url"]


@pytest.mark.parametrize("qop", [True, False])
def test_digest_qop_stale_and_nonce_change(qop):
    state = {"nonce": "n1", "stale_sent": False, "changed": False}
    realm = "IP Camera(C1234)"

    def chal(stale=False):
        q = ', qop="auth"' if qop else ""
        st = ", stale=TRUE" if stale else ""
        return {"WWW-Authenticate": f'Digest realm="{realm}", nonce="{state["nonce"]}"{q}{st}'}

    def check(c, req):
        if _digest_ok(req, "admin", "pa:ss word", realm, state["nonce"]):
            if req["method"] == "SETUP" and not state["stale_sent"]:
                state["stale_sent"] = True  # nonce expired: stale=true
                state["nonce"] = "n2"
                c.reply(req, "401 Unauthorized", chal(stale=True))
                return True
            if req["method"] == "PLAY" and not state["changed"]:
                state["changed"] = True  # new nonce without stale (some cameras)
                state["nonce"] = "n3"
                c.reply(req, "401 Unauthorized", chal())
                return True
            return False
        c.reply(req, "401 Unauthorized", {"WWW-Authenticate": 'Basic realm="x"', **chal()})
        return True

    def script(c):
        if c.handshake(check=check) is not None:
            c.send(interleaved(0, rtp_pkt(1, 0, IDR)))
            c.drain()

    async def main():
        async with RtspSession(cam.url(cred="admin:pa%3Ass%20word@"), timeout=5) as s:
            async for u in s:
                return u

    with FakeCamera(script) as cam:
        u = run(main())
        assert not cam.errors
    assert u.key and state["stale_sent"] and state["changed"]


def test_basic_auth_and_redirect():
    target = {}

    def script_b(c):
        def check(c, req):
            want = "Basic " + base64.b64encode(b"viewer:secret123").decode()
            if req["headers"].get("authorization") != want:
                c.reply(req, "401 Unauthorized", {"WWW-Authenticate": 'Basic realm="cam"'})
                return True
            return False

        if c.handshake(check=check) is not None:
            c.send(interleaved(0, rtp_pkt(1, 0, IDR)))
            c.drain()

    def script_a(c):
        req = c.read_request()
        c.reply(req, "302 Found", {"Location": target["url"]})
        c.drain()

    async def main():
        async with RtspSession(cam_a.url(cred="viewer:secret123@"), timeout=5) as s:
            async for u in s:
                return u, s.url, repr(s)

    with FakeCamera(script_b) as cam_b, FakeCamera(script_a) as cam_a:
        target["url"] = cam_b.url("/moved")
        u, url, rep = run(main())
        assert not cam_a.errors and not cam_b.errors
        assert any(r["url"].endswith("/moved") for r in cam_b.requests)
    assert u.key and "secret123" not in url + rep and url.startswith("rtsp://***@")


def test_mask_url():
    assert mask_url("rtsp://admin:pw@10.0.0.1:554/a?b=1") == "rtsp://***@10.0.0.1:554/a?b=1"
    assert mask_url("rtsp://10.0.0.1/x?user=admin&password=pw") == \
        "rtsp://10.0.0.1/x?user=***&password=***"
