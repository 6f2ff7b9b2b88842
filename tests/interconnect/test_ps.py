"""PS muxing and demuxing for GB/T 28181 media (Q12.1, N12.1, Q13.1): what PsMuxer makes
decodes in ffprobe; PsDemuxer reads our PS and ffmpeg's, and survives hostile input."""

from __future__ import annotations

import random

import pytest

from viis.interconnect.gb28181.ps import (
    PsDemuxer,
    PsMuxer,
    crc32_mpeg2,
    program_stream_map,
)

from .ps_media import FRAME_90K, clip, ffmpeg_ps, ffprobe_ps, keys, needs_ffmpeg

pytestmark = needs_ffmpeg


def mux_all(codec: str, aus, start: int = 90_000, **kw) -> tuple[bytes, list[int]]:
    m = PsMuxer(codec, **kw)
    ks = keys(codec, aus)
    pts = [start + i * FRAME_90K for i in range(len(aus))]
    return b"".join(m.mux(au, p, k) for au, p, k in zip(aus, pts, ks)), pts


def demux_chunks(data: bytes, chunk: int | None = None, d: PsDemuxer | None = None,
                 rng: random.Random | None = None):
    d = d or PsDemuxer()
    frames = []
    pos = 0
    while pos < len(data):
        n = chunk or (rng.randint(1, 3000) if rng else len(data))
        frames += d.feed(data[pos:pos + n])
        pos += n
    frames += d.flush()
    return frames, d


def test_crc32_mpeg2_check_value_and_psm_layout():
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7  # the CRC-32/MPEG-2 check value
    psm = program_stream_map("h265")
    assert psm[:4] == b"\x00\x00\x01\xbc"
    assert int.from_bytes(psm[4:6], "big") == len(psm) - 6
    assert psm[12:14] == b"\x24\xe0"  # stream_type 0x24 (H.265) on stream 0xE0
    assert crc32_mpeg2(psm[:-4]).to_bytes(4, "big") == psm[-4:]


@pytest.mark.parametrize("codec,name", [("h264", "h264"), ("h265", "hevc")])
def test_ps_from_muxer_decodes_in_ffprobe(codec, name):
    """Q12.1/N12.1: a GB PS stream of a real encoder's output is a valid MPEG-PS."""
    aus, _ = clip(codec)
    data, pts = mux_all(codec, aus)
    assert data[:4] == b"\x00\x00\x01\xba"
    info = ffprobe_ps(data)
    assert (info["codec"], info["width"], info["height"]) == (name, 640, 360)
    assert info["frames"] == len(aus) == 100
    assert info["pts"] == pts  # the PTS we wrote is the PTS ffprobe reads
    assert "error" not in info["stderr"].lower()


def test_keyframes_carry_system_header_and_psm_and_every_frame_a_pack_header():
    aus, _ = clip("h264")
    m = PsMuxer("h264")
    ks = keys("h264", aus)
    for i, (au, k) in enumerate(zip(aus[:30], ks)):
        ps = m.mux(au, i * FRAME_90K, k)
        assert ps.startswith(b"\x00\x00\x01\xba")
        assert (b"\x00\x00\x01\xbb" in ps[:40]) is k
        assert (b"\x00\x00\x01\xbc" in ps[:80]) is k
        assert b"\x00\x00\x01\xe0" in ps


def test_frames_larger_than_a_pes_are_split_and_still_decode():
    aus, _ = clip("h264", size="1280x720", seconds=2.0)
    m = PsMuxer("h264")
    big = [b"\x65\x88" + bytes(random.Random(1).randbytes(300_000))]
    ps = m.mux(big, 0, True)
    pes = [i for i in range(len(ps) - 3) if ps[i:i + 4] == b"\x00\x00\x01\xe0"]
    assert len(pes) == 5  # 300 KB in PES packets of at most 65,000 bytes of payload
    for i in pes:
        assert int.from_bytes(ps[i + 4:i + 6], "big") <= 65_000 + 13
    frames, d = demux_chunks(ps)
    assert [f.nals for f in frames] == [big] and d.errors == 0
    # the same path on a real stream, with small PES packets so every frame is split
    data, _ = mux_all("h264", aus, max_pes_payload=1000)
    info = ffprobe_ps(data)
    assert info["frames"] == len(aus) and (info["width"], info["height"]) == (1280, 720)
    frames, d = demux_chunks(data, chunk=1400)
    assert [f.nals for f in frames] == aus and d.errors == 0


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_round_trip_keeps_nals_pts_and_key_flags(codec):
    aus, _ = clip(codec)
    data, pts = mux_all(codec, aus)
    frames, d = demux_chunks(data, rng=random.Random(7))
    assert [f.nals for f in frames] == aus
    assert [f.pts90k for f in frames] == pts
    assert [f.key for f in frames] == keys(codec, aus)
    assert {f.codec for f in frames} == {codec}
    assert d.errors == 0 and d.stats["frames"] == len(aus)


def test_round_trip_with_dts_and_across_the_33_bit_wrap():
    aus, _ = clip("h264")
    m = PsMuxer("h264")
    ks = keys("h264", aus)
    start = (1 << 33) - 10 * FRAME_90K
    out = b""
    want = []
    for i, (au, k) in enumerate(zip(aus, ks)):
        dts = start + i * FRAME_90K
        pts = dts + (2 * FRAME_90K if i % 3 else FRAME_90K)  # B-frame-like reordering delay
        out += m.mux(au, pts, k, dts90k=dts)
        want.append((pts, dts))
    frames, d = demux_chunks(out, chunk=997)
    got = [(f.pts90k, f.dts90k) for f in frames]
    assert got == want  # unwrapped: monotonic past 2**33
    assert d.errors == 0


def test_parameter_sets_are_put_before_a_keyframe_that_lacks_them():
    aus, _ = clip("h264")
    key = aus[0]
    params = [n for n in key if n[0] & 0x1F in (7, 8)]
    slices = [n for n in key if n[0] & 0x1F not in (7, 8)]
    m = PsMuxer("h264")
    frames, _ = demux_chunks(m.mux(slices, 0, True, params))
    assert frames[0].nals[:2] == params and frames[0].key
    frames, _ = demux_chunks(m.mux(key, 0, True, params))  # already there: not doubled
    assert frames[0].nals == key
    # not a keyframe: untouched (no PSM either, so the demuxer is told the codec)
    frames, _ = demux_chunks(m.mux(aus[1], 3600, False, params), d=PsDemuxer("h264"))
    assert frames[0].nals == aus[1]


@pytest.mark.parametrize("codec,fmt", [("h264", "vob"), ("h264", "mpeg"), ("h265", "vob")])
def test_demuxes_ps_written_by_ffmpeg(codec, fmt):
    """A real peer's PS: no PSM, 2 KB packs, several frames per PES, stream id not 0xE0
    (ffmpeg), MPEG-1 system headers with -f mpeg."""
    aus, mp4 = clip(codec)
    frames, d = demux_chunks(ffmpeg_ps(mp4, codec, fmt), chunk=1316)
    assert d.errors == 0 and d.codec == codec
    assert [f.nals for f in frames] == aus
    assert [f.key for f in frames] == keys(codec, aus)
    steps = {b.pts90k - a.pts90k for a, b in zip(frames, frames[1:])}
    assert steps == {FRAME_90K}


def test_demuxes_ffmpeg_ps_with_b_frames():
    aus, mp4 = clip("h264", bframes=2)
    frames, d = demux_chunks(ffmpeg_ps(mp4, "h264", "vob"), chunk=1400)
    assert d.errors == 0
    assert [f.nals for f in frames] == aus
    assert [f.key for f in frames] == keys("h264", aus)
    stamped = [f for f in frames if f.dts90k is not None]
    assert stamped and all(f.pts90k >= f.dts90k for f in stamped)
    assert len({f.pts90k for f in stamped}) == len(stamped)


# --------------------------------------------------------------------------- hostile input


def small_stream():
    aus, _ = clip("h264")
    return aus[:50], mux_all("h264", aus[:50])


def test_garbage_before_and_between_frames_is_counted_and_skipped():
    aus, (data, _) = small_stream()
    m = PsMuxer("h264")
    junk = bytes(random.Random(3).randbytes(5000)).replace(b"\x00\x00\x01", b"\x00\x02\x01")
    ps = [m.mux(au, i * FRAME_90K, k) for i, (au, k) in enumerate(zip(aus, keys("h264", aus)))]
    stream = junk + b"".join(ps[:20]) + junk + b"".join(ps[20:])
    frames, d = demux_chunks(stream, chunk=1000)
    assert d.error_counts.get("garbage") == 2
    assert [f.nals for f in frames] == aus  # junk sits between frames: nothing lost
    assert frames[20].discont and not frames[21].discont


def test_a_pes_length_that_lies_costs_one_frame():
    aus, _ = small_stream()
    m = PsMuxer("h264")
    ks = keys("h264", aus)
    ps = [bytearray(m.mux(au, i * FRAME_90K, k)) for i, (au, k) in enumerate(zip(aus, ks))]
    i = ps[10].find(b"\x00\x00\x01\xe0")
    ps[10][i + 4:i + 6] = b"\xff\xff"  # claims 64 KB: runs over the next frames' packs
    frames, d = demux_chunks(b"".join(ps), chunk=1400)
    assert d.error_counts.get("PES length runs past the next pack") == 1
    got = [f.pts90k for f in frames]
    assert 10 * FRAME_90K not in got and len(got) == len(aus) - 1
    assert [f.nals for f in frames if f.pts90k != 10 * FRAME_90K] == aus[:10] + aus[11:]


def test_unbounded_video_pes_ends_at_the_next_pack():
    aus, _ = small_stream()
    m = PsMuxer("h264")
    ps = bytearray(b"".join(m.mux(au, i * FRAME_90K, k)
                            for i, (au, k) in enumerate(zip(aus[:5], keys("h264", aus)))))
    pos = 0
    while (pos := ps.find(b"\x00\x00\x01\xe0", pos)) >= 0:
        ps[pos + 4:pos + 6] = b"\x00\x00"  # transport-stream style PES_packet_length 0
        pos += 4
    frames, d = demux_chunks(bytes(ps), chunk=500)
    assert [f.nals for f in frames] == aus[:5] and d.errors == 0


def test_truncated_packs_are_counted_and_the_rest_decodes():
    aus, _ = small_stream()
    m = PsMuxer("h264")
    ks = keys("h264", aus)
    ps = [m.mux(au, i * FRAME_90K, k) for i, (au, k) in enumerate(zip(aus, ks))]
    cut = [p[: len(p) // 2] if i in (5, 30) else p for i, p in enumerate(ps)]
    frames, d = demux_chunks(b"".join(cut), chunk=700)
    assert d.errors >= 2
    good = {i * FRAME_90K for i in range(len(aus)) if i not in (5, 30)}
    for f in frames:
        assert f.pts90k in good
        assert f.nals == aus[f.pts90k // FRAME_90K]  # never a spliced frame
    assert len(frames) >= len(aus) - 4


def test_a_megabyte_of_zeros_is_an_error_and_keeps_memory_small():
    d = PsDemuxer()
    for _ in range(16):
        assert d.feed(bytes(65536)) == []
        assert len(d._buf) <= 3
    assert d.errors == 1 and d.stats["skipped_bytes"] >= (1 << 20) - 3
    aus, (data, _) = small_stream()
    frames = d.feed(data) + d.flush()
    assert [f.nals for f in frames] == aus  # and it recovers on the next pack


def test_frame_larger_than_the_limit_is_dropped_not_buffered():
    m = PsMuxer("h264")
    d = PsDemuxer(max_frame_bytes=100_000)
    big = m.mux([b"\x65\x88" + bytes(range(256)) * 1000], 0, True)
    small = m.mux([b"\x65\x88\x84\x00\x21"], 3600, True)
    frames = d.feed(big) + d.feed(small) + d.flush()
    assert d.error_counts.get("frame too large") == 1
    assert [f.pts90k for f in frames] == [3600]
    assert len(d._es) == 0


def test_random_mutation_fuzz_never_raises_and_stays_bounded():
    aus, (data, _) = small_stream()
    rng = random.Random(2026)
    base = data[:60_000]
    for _ in range(600):
        b = bytearray(base)
        for _ in range(rng.randint(1, 20)):
            op = rng.random()
            i = rng.randrange(len(b))
            if op < 0.5:
                b[i] = rng.randrange(256)
            elif op < 0.7:
                del b[i:i + rng.randint(1, 200)]
            elif op < 0.85:
                b[i:i] = rng.randbytes(rng.randint(1, 200))
            else:
                b[i:i + 2] = rng.choice([b"\x00\x00", b"\xff\xff", b"\x00\x01", b"\x80\x00"])
        d = PsDemuxer(max_frame_bytes=1 << 20)
        pos = 0
        while pos < len(b):
            n = rng.randint(1, 4000)
            for f in d.feed(bytes(b[pos:pos + n])):
                assert f.codec == "h264" and all(f.nals)
            pos += n
            assert len(d._buf) <= 65_536 + 4000 + 16
            assert len(d._es) <= 1 << 20
        d.flush()
        assert "internal" not in d.error_counts


def test_pure_garbage_fuzz_never_raises():
    rng = random.Random(5)
    d = PsDemuxer()
    for _ in range(300):
        chunk = rng.randbytes(rng.randint(0, 3000))
        if rng.random() < 0.3:  # sprinkle plausible start codes with random ids and lengths
            chunk = b"\x00\x00\x01" + bytes([rng.choice([0xBA, 0xBB, 0xBC, 0xE0, 0xC0, 0xBD,
                                                        0xB9])]) + chunk
        d.feed(chunk)
        assert len(d._buf) <= 65_536 + 3100
    d.flush()
    assert d.errors > 0 and "internal" not in d.error_counts
