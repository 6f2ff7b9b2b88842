"""PS over RTP (Q12.1, N12.1, Q13.1): packetizing, the three GB transports between a real
PsSender and PsReceiver on loopback, SSRC checks, loss handling, and ffprobe decoding what
PsSender puts on the wire."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from viis.interconnect.gb28181.causes import stream_cause
from viis.interconnect.gb28181.clock import ManualClock
from viis.interconnect.gb28181.ps import PsFrame, PsMuxer
from viis.interconnect.gb28181.rtpps import PsReceiver, PsSender, RtpPacketizer

from .ps_media import FRAME_90K, clip, ffprobe_ps, keys, needs_ffmpeg

pytestmark = needs_ffmpeg
SSRC = 110000001  # the y= value of a live stream of domain 3402000000, sequence 0001


def frames_of(codec: str = "h264", n: int = 60):
    aus, _ = clip(codec)
    ks = keys(codec, aus)
    return [(au, 90_000 + i * FRAME_90K, k) for i, (au, k) in enumerate(zip(aus[:n], ks))]


async def wait_until(cond, timeout: float = 20.0) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            return False
        await asyncio.sleep(0.01)
    return True


def test_packetizer_respects_mtu_marks_the_last_packet_and_frames_for_tcp():
    ps = bytes(range(256)) * 40  # 10,240 bytes
    p = RtpPacketizer(SSRC, seq=65534)
    pkts = p.packets(ps, 0x1_0000_0005)
    assert len(pkts) == 8 and all(len(x) <= 1400 for x in pkts)
    heads = [struct.unpack("!BBHII", x[:12]) for x in pkts]
    assert [h[2] for h in heads] == [65534, 65535, 0, 1, 2, 3, 4, 5]
    assert {h[3] for h in heads} == {5} and {h[4] for h in heads} == {SSRC}
    assert [h[1] for h in heads] == [96] * 7 + [96 | 0x80]
    assert b"".join(x[12:] for x in pkts) == ps
    framed = p.framed(ps, 7)
    pos, got = 0, []
    while pos < len(framed):
        n = int.from_bytes(framed[pos:pos + 2], "big")
        got.append(framed[pos + 2:pos + 2 + n])
        pos += 2 + n
    assert len(got) == 8 and got[0][2:4] == (6).to_bytes(2, "big")
    assert b"".join(x[12:] for x in got) == ps and got[-1][1] == 0x80 | 96


async def _pair(mode_sender: str, mode_receiver: str, frames, **rkw):
    got: list[PsFrame] = []
    if mode_receiver == "tcp-active":  # the sender listens, the receiver dials in
        s = await PsSender.open(mode_sender, None, SSRC, "127.0.0.1")
        r = await PsReceiver.open(mode_receiver, got.append, SSRC, "127.0.0.1",
                                  ("127.0.0.1", s.local_port), **rkw)
        assert await s.wait_connected(10)
    else:
        r = await PsReceiver.open(mode_receiver, got.append, SSRC, "127.0.0.1", **rkw)
        s = await PsSender.open(mode_sender, ("127.0.0.1", r.local_port), SSRC, "127.0.0.1")
    return s, r, got


@pytest.mark.parametrize("sender_mode,receiver_mode", [
    ("udp", "udp"), ("tcp-passive", "tcp-active"), ("tcp-active", "tcp-passive")])
def test_sender_to_receiver_over_each_gb_transport(sender_mode, receiver_mode):
    frames = frames_of()

    async def run():
        s, r, got = await _pair(sender_mode, receiver_mode, frames)
        try:
            for nals, pts, key in frames:
                assert s.send_frame(nals, pts, key)
                await asyncio.sleep(0.002)  # paced like a camera, loopback buffers stay small
            assert await wait_until(lambda: len(got) == len(frames))
            assert [f.nals for f in got] == [f[0] for f in frames]
            assert [f.pts90k for f in got] == [f[1] for f in frames]
            assert [f.key for f in got] == [f[2] for f in frames]
            st = r.stats
            assert st["lost"] == 0 and st["ssrc_mismatch"] == 0 and st["frames_dropped"] == 0
            assert st["packets"] == s.stats["packets"] and st["first_packet_at"] is not None
            assert st["last_packet_at"] >= st["first_packet_at"]
        finally:
            await s.close()
            await r.close()

    asyncio.run(run())


def test_h265_over_tcp():
    frames = frames_of("h265", 30)

    async def run():
        s, r, got = await _pair("tcp-active", "tcp-passive", frames)
        s.muxer = PsMuxer("h265")
        try:
            for nals, pts, key in frames:
                s.send_frame(nals, pts, key)
            assert await wait_until(lambda: len(got) == len(frames))
            assert [f.nals for f in got] == [f[0] for f in frames]
            assert {f.codec for f in got} == {"h265"}
        finally:
            await s.close()
            await r.close()

    asyncio.run(run())


def test_ssrc_mismatch_is_counted_and_dropped_unless_checking_is_off():
    frames = frames_of(n=10)

    async def run(check: bool):
        got: list[PsFrame] = []
        r = await PsReceiver.open("udp", got.append, f"{SSRC:010d}", "127.0.0.1",
                                  ssrc_check=check)  # as the y= line gives it
        s = await PsSender.open("udp", ("127.0.0.1", r.local_port), 1234, "127.0.0.1")
        try:
            for nals, pts, key in frames:
                s.send_frame(nals, pts, key)
                await asyncio.sleep(0.002)
            assert await wait_until(lambda: r.stats["received"] == s.stats["packets"])
            await asyncio.sleep(0.05)
            return got, r.stats
        finally:
            await s.close()
            await r.close()

    got, st = asyncio.run(run(True))
    assert got == [] and st["ssrc_mismatch"] == st["received"] > 0 and st["packets"] == 0
    assert st["mismatched_ssrc"] == st["last_ssrc"] == 1234  # what the diagnosis reports
    cause = stream_cause(st, expected_ssrc=SSRC, waited=5)
    assert "SSRC 1234" in cause and str(SSRC) in cause  # told apart from "never arrived"
    got, st = asyncio.run(run(False))
    assert len(got) == 10 and st["ssrc_mismatch"] == st["received"] == st["packets"]


def _raw_send(port: int, packets: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for p in packets:
            sock.sendto(p, ("127.0.0.1", port))


@pytest.mark.parametrize("wait_key", [True, False])
def test_a_lost_packet_drops_its_frame_instead_of_corrupting_it(wait_key):
    frames = frames_of(n=50)  # keyframes at 0 and 25
    m = PsMuxer("h264")
    pk = RtpPacketizer(SSRC, mtu=300, seq=65530)  # small packets: P-frames span several
    per_frame = [pk.packets(m.mux(nals, pts, key), pts) for nals, pts, key in frames]
    victim = next(i for i in range(10, 25) if len(per_frame[i]) >= 3)
    del per_frame[victim][1]  # a packet from the middle of a P-frame

    async def run():
        got: list[PsFrame] = []
        r = await PsReceiver.open("udp", got.append, SSRC, "127.0.0.1",
                                  wait_key_after_loss=wait_key)
        try:
            for pkts in per_frame:
                await asyncio.to_thread(_raw_send, r.local_port, pkts)
                await asyncio.sleep(0.002)
            expected = 50 - (1 + (25 - victim - 1) if wait_key else 1)
            assert await wait_until(lambda: len(got) >= expected)
            await asyncio.sleep(0.1)
            return got, r.stats
        finally:
            await r.close()

    got, st = asyncio.run(run())
    assert st["lost"] == 1 and st["frames_dropped"] == 1
    by_pts = {f.pts90k: f for f in got}
    assert frames[victim][1] not in by_pts
    for nals, pts, _ in frames:
        if pts in by_pts:
            assert by_pts[pts].nals == nals  # whatever is delivered is whole
    after = [f for f in got if f.pts90k > frames[victim][1]]
    assert after[0].discont
    if wait_key:
        assert after[0].key and after[0].pts90k == frames[25][1]
        assert st["skipped_before_key"] == 25 - victim - 1
    else:
        assert len(after) == 50 - victim - 1


def test_garbage_and_foreign_datagrams_do_not_disturb_the_stream():
    frames = frames_of(n=30)

    async def run():
        got: list[PsFrame] = []
        clock = ManualClock()
        r = await PsReceiver.open("udp", got.append, SSRC, "127.0.0.1", clock=clock)
        s = await PsSender.open("udp", ("127.0.0.1", r.local_port), SSRC, "127.0.0.1")
        try:
            await asyncio.to_thread(_raw_send, r.local_port,
                                    [b"", b"\x00" * 5, b"\xff" * 1400, b"\x80" + b"\x00" * 5])
            clock.advance(2.0)
            for nals, pts, key in frames:
                s.send_frame(nals, pts, key)
                await asyncio.sleep(0.002)
            assert await wait_until(lambda: len(got) == len(frames))
            return got, r.stats
        finally:
            await s.close()
            await r.close()

    got, st = asyncio.run(run())
    assert [f.nals for f in got] == [f[0] for f in frames]
    assert st["invalid"] == 4 and st["lost"] == 0
    assert st["first_packet_at"] == 1000.0 and st["last_packet_at"] == 1002.0


def test_sender_starts_every_peer_at_a_keyframe_and_drops_without_a_peer():
    frames = frames_of(n=60)

    async def run():
        got: list[PsFrame] = []
        s = await PsSender.open("tcp-passive", None, SSRC, "127.0.0.1")
        try:
            for nals, pts, key in frames[:5]:
                assert not s.send_frame(nals, pts, key)  # nobody connected yet
            assert s.stats["dropped_no_peer"] == 5
            r = await PsReceiver.open("tcp-active", got.append, SSRC, "127.0.0.1",
                                      ("127.0.0.1", s.local_port))
            assert await s.wait_connected(10)
            for nals, pts, key in frames[5:]:
                s.send_frame(nals, pts, key)
            assert await wait_until(lambda: len(got) == 35)
            assert got[0].key and got[0].pts90k == frames[25][1]
            assert s.stats["skipped_before_key"] == 20
            await r.close()
        finally:
            await s.close()

    asyncio.run(run())


def _collect_udp(sock: socket.socket, out: bytearray, count: list[int]) -> None:
    sock.settimeout(2.0)
    try:
        while True:
            p = sock.recv(2048)
            count[0] += 1
            out += p[12:]
    except TimeoutError:
        pass


def test_what_ps_sender_puts_on_the_wire_decodes_in_ffprobe():
    """The payload of PsSender's RTP packets, written to a file, is a PS stream that
    ffprobe decodes frame by frame (UDP; the TCP payload is the same bytes framed)."""
    frames = frames_of(n=100)

    async def run():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind(("127.0.0.1", 0))
        payload, count = bytearray(), [0]
        reader = asyncio.create_task(asyncio.to_thread(_collect_udp, sock, payload, count))
        s = await PsSender.open("udp", sock.getsockname(), SSRC, "127.0.0.1")
        try:
            for nals, pts, key in frames:
                s.send_frame(nals, pts, key)
                await asyncio.sleep(0.002)
            await reader
        finally:
            await s.close()
            sock.close()
        assert count[0] == s.stats["packets"]
        return bytes(payload)

    info = ffprobe_ps(asyncio.run(run()))
    assert (info["codec"], info["width"], info["height"], info["frames"]) == ("h264", 640, 360, 100)
    assert info["pts"] == [f[1] for f in frames]


def test_receiver_tcp_rejects_a_stream_that_is_not_rfc4571():
    async def run():
        closed = asyncio.Event()
        r = await PsReceiver.open("tcp-passive", lambda f: None, SSRC, "127.0.0.1",
                                  on_close=closed.set)
        reader, writer = await asyncio.open_connection("127.0.0.1", r.local_port)
        try:
            writer.write((b"\x00\x10" + b"\xff" * 16) * 200)
            await writer.drain()
            await asyncio.wait_for(closed.wait(), 10)
            assert r.stats["tcp_desync"] == 1 and r.stats["invalid"] > 50
        finally:
            writer.close()
            await r.close()

    asyncio.run(run())


def _rtp(seq: int, ts: int, payload: bytes, marker: bool, *, ssrc: int = SSRC, csrc: int = 0,
         ext: bytes | None = None, pad: int = 0) -> bytes:
    b0 = 0x80 | csrc | (0x10 if ext is not None else 0) | (0x20 if pad else 0)
    head = struct.pack("!BBHII", b0, 96 | (0x80 if marker else 0), seq, ts, ssrc)
    head += b"\x00\x00\x00\x07" * csrc
    if ext is not None:
        head += b"\xbe\xde" + (len(ext) // 4).to_bytes(2, "big") + ext
    return head + payload + (b"\x00" * (pad - 1) + bytes([pad]) if pad else b"")


def _feed(rx: PsReceiver, packets) -> None:
    for p in packets:
        rx._packet(p)


def _receiver(**kw) -> tuple[PsReceiver, list[PsFrame]]:
    got: list[PsFrame] = []
    opts = {"clock": ManualClock(), "codec": None, "ssrc_check": True,
            "wait_key_after_loss": True, "max_frame_bytes": 8 << 20, "on_close": None}
    opts.update(kw)
    return PsReceiver("udp", got.append, SSRC, **opts), got


def test_frames_without_marker_bits_end_when_the_timestamp_changes():
    frames = frames_of(n=10)
    m = PsMuxer("h264")
    rx, got = _receiver()
    pk = RtpPacketizer(SSRC, mtu=500, seq=0)
    pkts = [bytes([p[0], p[1] & 0x7F]) + p[2:]
            for nals, pts, key in frames for p in pk.packets(m.mux(nals, pts, key), pts)]
    _feed(rx, pkts)
    assert [f.nals for f in got] == [f[0] for f in frames[:-1]]  # the last awaits its end
    assert rx.stats["lost"] == 0


def test_csrc_header_extension_and_padding_are_skipped():
    frames = frames_of(n=3)
    m = PsMuxer("h264")
    rx, got = _receiver()
    seq = 0
    for nals, pts, key in frames:
        ps = m.mux(nals, pts, key)
        half = len(ps) // 2
        _feed(rx, [_rtp(seq, pts, ps[:half], False, csrc=2, ext=b"\x10\xff\x00\x00"),
                   _rtp(seq + 1, pts, ps[half:], True, pad=4)])
        seq += 2
    assert [f.nals for f in got] == [f[0] for f in frames]
    assert rx.stats["invalid"] == 0


def test_reordered_and_duplicate_packets_are_counted_and_never_spliced():
    frames = frames_of(n=30)
    m = PsMuxer("h264")
    pk = RtpPacketizer(SSRC, mtu=300, seq=100)
    per_frame = [pk.packets(m.mux(nals, pts, key), pts) for nals, pts, key in frames]
    victim = next(i for i in range(3, 20) if len(per_frame[i]) >= 3)
    pf = per_frame[victim]
    pf[0], pf[1] = pf[1], pf[0]  # swapped on the way
    per_frame[victim + 1] = per_frame[victim + 1] + per_frame[victim + 1][-1:]  # duplicated
    rx, got = _receiver(wait_key_after_loss=False)
    for pkts in per_frame:
        _feed(rx, pkts)
    st = rx.stats
    assert st["late"] == 2 and st["lost"] == 1 and st["frames_dropped"] == 1
    for f in got:
        assert f.nals == frames[(f.pts90k - 90_000) // FRAME_90K][0]
    assert len(got) == 29


def test_a_peer_that_never_reads_makes_tcp_frames_drop_instead_of_buffering():
    frames = frames_of(n=100)

    async def run():
        conns = []

        async def accept(reader, writer):  # accepts and never reads
            conns.append(writer)

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        s = await PsSender.open("tcp-active", ("127.0.0.1", port), SSRC, "127.0.0.1",
                                max_buffer=64 << 10)
        try:
            for _ in range(200):
                for nals, pts, key in frames:
                    s.send_frame(nals, pts, key)
                if s.stats["dropped_backpressure"]:
                    break
                await asyncio.sleep(0)
            assert s.stats["dropped_backpressure"] > 0
            assert s._transport.get_write_buffer_size() < (64 << 10) + 200_000
        finally:
            await s.close()
            for w in conns:
                w.close()
            server.close()

    asyncio.run(run())


def test_tcp_disconnect_is_reported_to_both_sides():
    async def run():
        sender_closed, receiver_closed = asyncio.Event(), asyncio.Event()
        r = await PsReceiver.open("tcp-passive", lambda f: None, SSRC, "127.0.0.1",
                                  on_close=receiver_closed.set)
        s = await PsSender.open("tcp-active", ("127.0.0.1", r.local_port), SSRC, "127.0.0.1",
                                on_close=sender_closed.set)
        assert await wait_until(lambda: r.stats["connections"] == 1)
        await r.close()  # the platform hangs up: the sender hears of it
        await asyncio.wait_for(sender_closed.wait(), 10)
        assert not s.connected and not s.send_frame([b"\x65\x88"], 0, True)
        await s.close()

        r = await PsReceiver.open("tcp-passive", lambda f: None, SSRC, "127.0.0.1",
                                  on_close=receiver_closed.set)
        s = await PsSender.open("tcp-active", ("127.0.0.1", r.local_port), SSRC, "127.0.0.1")
        assert await wait_until(lambda: r.stats["connections"] == 1)
        await s.close()  # the device stops sending: the receiver hears of it
        await asyncio.wait_for(receiver_closed.wait(), 10)
        await r.close()

    asyncio.run(run())


def test_active_tcp_to_a_closed_port_fails_at_open():
    async def run():
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with pytest.raises(OSError):
            await PsSender.open("tcp-active", ("127.0.0.1", port), SSRC, "127.0.0.1")
        with pytest.raises(OSError):
            await PsReceiver.open("tcp-active", lambda f: None, SSRC, "127.0.0.1",
                                  ("127.0.0.1", port))
        with pytest.raises(ValueError):
            await PsSender.open("rtsp", None, SSRC)

    asyncio.run(run())


def test_a_second_tcp_connection_cannot_cut_off_a_sender_that_delivers():
    """TCP-passive: while the agreed sender delivers its SSRC, a second connection (a stray
    or hostile peer on the offered port) is refused; once the sender has been silent past
    the takeover bound, a new connection (the device reconnecting) replaces it."""
    frames = frames_of(n=20)
    clock = ManualClock()

    async def run():
        got: list[PsFrame] = []
        r = await PsReceiver.open("tcp-passive", got.append, SSRC, "127.0.0.1", clock=clock)
        s = await PsSender.open("tcp-active", ("127.0.0.1", r.local_port), SSRC, "127.0.0.1")
        try:
            for nals, pts, key in frames[:10]:
                assert s.send_frame(nals, pts, key)
                await asyncio.sleep(0.002)
            assert await wait_until(lambda: len(got) == 10)
            _, intruder = await asyncio.open_connection("127.0.0.1", r.local_port)
            assert await wait_until(lambda: r.stats.get("refused_connections") == 1)
            for nals, pts, key in frames[10:]:
                assert s.send_frame(nals, pts, key)
                await asyncio.sleep(0.002)
            assert await wait_until(lambda: len(got) == 20)  # the sender was not cut off
            intruder.close()
            clock.advance(PsReceiver.TAKEOVER_SILENCE_S + 1)  # the sender falls silent
            s2 = await PsSender.open("tcp-active", ("127.0.0.1", r.local_port), SSRC,
                                     "127.0.0.1")
            assert await wait_until(lambda: r.stats["connections"] == 2)
            for nals, pts, key in frames[:5]:
                assert s2.send_frame(nals, pts, key)
                await asyncio.sleep(0.002)
            assert await wait_until(lambda: len(got) == 25)
            await s2.close()
        finally:
            await s.close()
            await r.close()

    asyncio.run(run())
