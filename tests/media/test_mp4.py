"""Fragmented MP4 writing, parsing, crash recovery, export and MSE, checked
with real x264/x265/AAC streams, ffprobe/ffmpeg and PyAV."""

from __future__ import annotations

import hashlib
import json
import os
import random
import stat
import struct
import subprocess
import time

import av
import pytest

from viis.media import h26x
from viis.media.mp4 import (
    ExportError,
    FragmentWriter,
    Mp4Error,
    Mp4TruncatedError,
    SegmentWriter,
    Track,
    export_range,
    iter_mse,
    mime_type,
    nal_payload,
    parse_segment,
    recover_segment,
    split_adts,
)

T0 = 1_700_000_000_000  # wall clock of the first test segment (ms)
V_TICKS = 3600  # 25 fps at 90 kHz
A_RATE = 48000


def run(*cmd) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True)


def encode_video(path, codec: str, size="320x240", seconds=8, gop=25, bframes=0):
    enc = (["-c:v", "libx264", "-preset", "ultrafast", "-x264-params",
            f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}"] if codec == "h264" else
           ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params",
            f"log-level=error:keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}"])  # fmt: skip
    run("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
        "-t", seconds, *enc, "-f", "h264" if codec == "h264" else "hevc", path)  # fmt: skip
    return h26x.access_units(codec, h26x.split_annexb(path.read_bytes()))


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    run("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={A_RATE}",
        "-t", "8", "-c:a", "aac", "-f", "adts", d / "a.aac")  # fmt: skip
    asc, frames = split_adts((d / "a.aac").read_bytes())
    return {
        "h264": encode_video(d / "v.h264", "h264"),
        "h265": encode_video(d / "v.hevc", "h265"),
        "h264_640": encode_video(d / "w.h264", "h264", "640x480", seconds=2),
        "asc": asc,
        "aac": frames,
    }


def probe(path) -> dict:
    out = run("ffprobe", "-v", "error", "-of", "json", "-show_streams", "-show_format",
              "-count_frames", path).stdout  # fmt: skip
    return json.loads(out)


def stream(info: dict, kind: str) -> dict:
    return next(s for s in info["streams"] if s["codec_type"] == kind)


def decode_errors(path) -> str:
    p = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                       capture_output=True, text=True)  # fmt: skip
    return p.stderr.strip() + ("" if p.returncode == 0 else f" (exit {p.returncode})")


def sha256_of(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def write_segment(path, media, codec="h264", v=range(0, 200), a=None, *, frag=1.0, ts0=0,
                  aus=None, creation_time=0):  # fmt: skip
    """Write video AUs ``v`` (and AAC frames ``a``) of the test streams, with
    90 kHz timestamps ``ts0 + i*3600``; audio decode times aligned to the video."""
    aus = aus if aus is not None else media[codec]
    tracks = [Track.video(codec, aus[v[0]])]
    start = {}
    if a is not None:
        tracks.append(Track.aac(media["asc"]))
        start = {2: a[0] * 1024 - round(v[0] * V_TICKS * A_RATE / 90000)}
    w = SegmentWriter(path, tracks, fragment_duration=frag, start_decode_times=start,
                      creation_time=creation_time)  # fmt: skip
    events = [(i * V_TICKS / 90000, 1, i) for i in v] + [(i * 1024 / A_RATE, 2, i) for i in a or ()]
    for _, tid, i in sorted(events):
        if tid == 1:
            w.write_sample(1, ts0 + i * V_TICKS, aus[i], h26x.is_keyframe(codec, aus[i]))
        else:
            w.write_sample(2, i * 1024, media["aac"][i])
    end = {1: ts0 + (v[-1] + 1) * V_TICKS}
    if a is not None:
        end[2] = (a[-1] + 1) * 1024
    return w.close(end)


def audio_range(v: range) -> range:
    """AAC frames whose start lies in the wall-time span of video frames ``v``."""

    def ceil_frame(video_index: int) -> int:
        return -(-video_index * V_TICKS * A_RATE // (90000 * 1024))

    return range(ceil_frame(v.start), ceil_frame(v.stop))


# --------------------------------------------------------------------------- segments


def test_h264_aac_segment_plays_and_is_sealed(tmp_path, media):
    path = tmp_path / "seg.mp4"
    info = write_segment(path, media, "h264", range(0, 150), audio_range(range(0, 150)),
                         creation_time=T0 // 1000)  # fmt: skip
    assert not (tmp_path / "seg.mp4.tmp").exists()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o444
    assert info.sha256 == sha256_of(path) and info.size == path.stat().st_size
    assert (info.frames, info.keyframes, info.duration_ms, info.fragments) == (150, 6, 6000, 6)
    assert info.tracks[2].samples == len(audio_range(range(0, 150)))
    p = probe(path)
    v, a = stream(p, "video"), stream(p, "audio")
    assert (v["codec_name"], v["width"], v["height"], v["codec_tag_string"]) == (
        "h264",
        320,
        240,
        "avc1",
    )
    assert int(v["nb_read_frames"]) == 150 and float(v["duration"]) == pytest.approx(6.0, abs=0.001)
    assert (a["codec_name"], int(a["sample_rate"]), a["channels"]) == ("aac", A_RATE, 1)
    assert int(a["nb_read_frames"]) == info.tracks[2].samples
    assert float(p["format"]["duration"]) == pytest.approx(6.0, abs=0.05)
    assert p["format"]["tags"]["creation_time"].startswith("2023-11-14T22:13:20")
    assert decode_errors(path) == ""
    if os.geteuid() != 0:  # root ignores permission bits
        with pytest.raises(PermissionError):
            open(path, "ab")


def test_h265_segment_and_reader(tmp_path, media):
    path = tmp_path / "seg.mp4"
    info = write_segment(path, media, "h265", range(0, 100), frag=0.7)
    p = probe(path)
    v = stream(p, "video")
    assert (v["codec_name"], v["codec_tag_string"], v["width"], v["height"]) == (
        "hevc",
        "hvc1",
        320,
        240,
    )
    assert int(v["nb_read_frames"]) == 100 and float(v["duration"]) == pytest.approx(4.0, abs=0.001)
    assert decode_errors(path) == ""
    seg = parse_segment(path)
    t = seg.tracks[1]
    assert (t.codec, t.width, t.height, t.timescale) == ("h265", 320, 240, 90000)
    assert t.codec_string == Track.video("h265", media["h265"][0]).codec_string
    assert t.codec_string.startswith("hvc1.1.6.L")
    assert mime_type([t]).startswith('video/mp4; codecs="hvc1.1.6.')
    assert not seg.truncated and seg.complete_length == seg.size == info.size
    # fragments cut every 0.7 s, i.e. not on keyframes; sync flags follow the keyframes
    sync = [s for f in seg.fragments for s in f.trafs[1].sync]
    assert sync == [i % 25 == 0 for i in range(100)]
    assert any(not f.trafs[1].sync[0] for f in seg.fragments)
    dts = [d for f in seg.fragments for d in f.trafs[1].decode_times]
    assert dts == [i * V_TICKS for i in range(100)]
    assert [f.sequence for f in seg.fragments] == list(range(1, len(seg.fragments) + 1))
    # H.265 export and MSE (fragments are 0.7 s, so MSE must rebuild the first one)
    exp = tmp_path / "exp.mp4"
    ei = export_range([(path, T0)], T0 + 1500, T0 + 3000, exp)
    assert ei.start_ms == T0 + 1000 and ei.frames == 50 and decode_errors(exp) == ""
    assert stream(probe(exp), "video")["codec_tag_string"] == "hvc1"
    mse = tmp_path / "mse.mp4"
    mse_file(mse, iter_mse([(path, T0)], T0 + 1500, T0 + 3000))
    assert int(stream(probe(mse), "video")["nb_read_frames"]) == 50 and decode_errors(mse) == ""


@pytest.mark.parametrize("law,codec", [("alaw", "pcm_alaw"), ("mulaw", "pcm_mulaw")])
def test_g711_segment(tmp_path, law, codec):
    raw = tmp_path / "a.raw"
    run("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000",
        "-t", "3", "-c:a", codec, "-f", law, raw)  # fmt: skip
    data = raw.read_bytes()
    path = tmp_path / "g.mp4"
    with SegmentWriter(path, [Track.g711(law, track_id=1)]) as w:
        for i in range(0, len(data), 160):  # 20 ms RTP packets
            w.write_sample(1, 1_000_000 + i, data[i : i + 160])
    a = stream(probe(path), "audio")
    assert (a["codec_name"], int(a["sample_rate"]), a["channels"]) == (codec, 8000, 1)
    assert float(a["duration"]) == pytest.approx(3.0, abs=0.001)
    assert decode_errors(path) == ""
    assert parse_segment(path).tracks[1].codec == codec


def test_timestamps_wrap_jitter_and_last_duration(tmp_path, media):
    rng = random.Random(1)
    aus = media["h264"][:60]
    base = (1 << 32) - 20 * V_TICKS  # RTP timestamp wraps after 20 frames
    stamps = [(base + i * V_TICKS + (rng.randrange(-300, 300) if i % 7 else 0)) % (1 << 32)
              for i in range(60)]  # fmt: skip
    path = tmp_path / "seg.mp4"
    w = SegmentWriter(path, [Track.video("h264", aus[0])])
    for ts, au in zip(stamps, aus, strict=True):
        w.write_sample(1, ts, au, h26x.is_keyframe("h264", au))
    end = (stamps[-1] + 5000) % (1 << 32)
    info = w.close({1: end})
    durs = [d for f in parse_segment(path).fragments for d in f.trafs[1].durations]
    raw = stamps + [end]
    assert durs == [((raw[i + 1] - raw[i]) % (1 << 32)) for i in range(60)]
    assert (
        info.tracks[1].end_decode_time == sum(durs) and info.tracks[1].first_timestamp == stamps[0]
    )
    # no end timestamp: the last sample lasts as long as the one before; clock jumps are ignored
    path2 = tmp_path / "seg2.mp4"
    fw = SegmentWriter(path2, [Track.video("h264", aus[0])])
    for i, au in enumerate(aus[:30]):
        fw.write_sample(
            1, i * V_TICKS + (900_000 if i >= 20 else 0), au, h26x.is_keyframe("h264", au)
        )
    fw.close()
    durs = [d for f in parse_segment(path2).fragments for d in f.trafs[1].durations]
    assert durs == [V_TICKS] * 30


def test_fragment_writer_in_memory_and_b_frames(tmp_path):
    src = tmp_path / "b.mp4"
    run("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "2",
        "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "25",
        "-video_track_timescale", "90000", src)  # fmt: skip
    with av.open(str(src)) as c:
        st = c.streams.video[0]
        sets = h26x.parse_avcc(bytes(st.codec_context.extradata))
        pkts = [(p.dts, p.pts, bytes(p), p.is_keyframe) for p in c.demux(st) if p.size]
    assert any(p[1] != p[0] for p in pkts)  # really reordered
    track = Track.h264(sets["sps"], sets["pps"])
    fw = FragmentWriter([track])
    out = [fw.init_segment()]
    dts0 = pkts[0][0]
    for dts, pts, data, key in pkts:
        nals, pos = [], 0
        while pos < len(data):
            (n,) = struct.unpack_from(">I", data, pos)
            nals.append(data[pos + 4 : pos + 4 + n])
            pos += 4 + n
        fw.add(1, dts - dts0, nals, key, pts - dts)
        if fw.ready_duration() >= 45000:
            out += fw.fragment()
    out += fw.finish()
    path = tmp_path / "frag.mp4"
    path.write_bytes(b"".join(out))
    assert decode_errors(path) == ""
    v = stream(probe(path), "video")
    assert int(v["nb_read_frames"]) == len(pkts) == 50
    frames = json.loads(run("ffprobe", "-v", "error", "-of", "json", "-show_frames", "-show_entries",
                            "frame=pts", path).stdout)["frames"]  # fmt: skip
    pts = [f["pts"] for f in frames]
    assert [b - a for a, b in zip(pts, pts[1:], strict=False)] == [V_TICKS] * 49
    seg = parse_segment(path)
    assert any(c for f in seg.fragments for c in f.trafs[1].cts)
    # export keeps the composition offsets (ctts) and starts presentation at 0
    exp = tmp_path / "exp.mp4"
    export_range([(path, T0)], T0, T0 + 10_000, exp)
    assert decode_errors(exp) == ""
    v = stream(probe(exp), "video")
    assert int(v["nb_read_frames"]) == 50 and float(v["start_time"]) == 0


def test_writer_refuses_to_overwrite_and_abort(tmp_path, media):
    path = tmp_path / "seg.mp4"
    write_segment(path, media, "h264", range(0, 25))
    with pytest.raises(FileExistsError):
        write_segment(path, media, "h264", range(0, 25))
    assert path.read_bytes()[:8] and (tmp_path / "seg.mp4.tmp").exists()
    with pytest.raises(FileExistsError):  # a crash leftover is never clobbered
        SegmentWriter(path, [Track.video("h264", media["h264"][0])])
    os.chmod(tmp_path / "seg.mp4.tmp", 0o644)
    os.unlink(tmp_path / "seg.mp4.tmp")
    w = SegmentWriter(tmp_path / "x.mp4", [Track.video("h264", media["h264"][0])])
    w.abort()
    assert not (tmp_path / "x.mp4.tmp").exists() and not (tmp_path / "x.mp4").exists()
    # detach (after a write error): the .tmp stays for recovery
    w = SegmentWriter(tmp_path / "y.mp4", [Track.video("h264", media["h264"][0])])
    for i, au in enumerate(media["h264"][:40]):
        w.write_sample(1, i * V_TICKS, au, h26x.is_keyframe("h264", au))
    w.detach()
    with pytest.raises(ValueError):
        w.write_sample(1, 0, media["h264"][0])
    info = recover_segment(tmp_path / "y.mp4.tmp", tmp_path / "y.mp4")
    assert info.frames == 25 and info.recovered  # the first 1 s fragment was written


# --------------------------------------------------------------------------- recovery


def test_truncated_files_recover_to_last_complete_fragment(tmp_path, media):
    full = tmp_path / "full.mp4"
    write_segment(full, media, "h264", range(0, 100), audio_range(range(0, 100)), frag=0.5)
    seg = parse_segment(full)
    data = full.read_bytes()
    rng = random.Random(3)
    ends = [f.end for f in seg.fragments]
    cuts = sorted({seg.init_end - 1, seg.init_end, *ends, *(e - 1 for e in ends), *(e + 9 for e in ends[:-1]),
                   *rng.sample(range(1, len(data)), 30)})  # fmt: skip
    checked = 0
    for n, cut in enumerate(cuts):
        tmp, final = tmp_path / f"c{n}.mp4.tmp", tmp_path / f"c{n}.mp4"
        tmp.write_bytes(data[:cut])
        if cut < seg.init_end:
            with pytest.raises(Mp4TruncatedError):
                recover_segment(tmp)
            continue
        kept = [f for f in seg.fragments if f.end <= cut]
        expect = kept[-1].end if kept else seg.init_end
        info = recover_segment(tmp, final)
        assert info.size == expect == final.stat().st_size and info.bytes_dropped == cut - expect
        assert info.recovered and info.sha256 == sha256_of(final)
        assert stat.S_IMODE(os.stat(final).st_mode) == 0o444 and not tmp.exists()
        frames = sum(len(f.trafs[1].sizes) for f in kept)
        assert info.frames == frames and info.fragments == len(kept)
        assert info.duration_ms == frames * 40
        if frames and n % 4 == 0:  # playability of a sample of them (ffmpeg is the slow part)
            assert decode_errors(final) == ""
            assert int(stream(probe(final), "video")["nb_read_frames"]) == frames
            checked += 1
    assert checked >= 5
    # at most the fragment being written (+ the held-back sample) is lost
    assert max(ends[i + 1] - ends[i] for i in range(len(ends) - 1)) < len(data) / 5


# --------------------------------------------------------------------------- export


@pytest.fixture(scope="module")
def two_segments(tmp_path_factory, media):
    d = tmp_path_factory.mktemp("segs")
    v1, v2 = range(0, 100), range(100, 200)
    write_segment(d / "s1.mp4", media, "h264", v1, audio_range(v1))
    write_segment(d / "s2.mp4", media, "h264", v2, audio_range(v2), ts0=123456)
    return d / "s1.mp4", d / "s2.mp4"


def packets(path, kind="video"):
    with av.open(str(path)) as c:
        s = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        return [(float(p.pts * p.time_base), p.is_keyframe, bytes(p)) for p in c.demux(s) if p.size]


def top_level_boxes(path) -> list[bytes]:
    data, pos, out = open(path, "rb").read(), 0, []
    while pos < len(data):
        size, typ = struct.unpack_from(">I4s", data, pos)
        out.append(typ)
        pos += size
    return out


def test_export_across_segment_boundary(tmp_path, media, two_segments):
    s1, s2 = two_segments
    out = tmp_path / "exp.mp4"
    info = export_range([(s2, T0 + 4000), (s1, T0)], T0 + 2500, T0 + 6300, out)
    # starts at the keyframe at 2.0 s (GOP 1 s), ends with the last frame before 6.3 s
    assert info.start_ms == T0 + 2000 and info.end_ms == T0 + 6320 and info.frames == 108
    assert T0 + 2500 - 1000 <= info.start_ms <= T0 + 2500
    assert top_level_boxes(out) == [b"ftyp", b"moov", b"mdat"]  # faststart
    assert decode_errors(out) == ""
    p = probe(out)
    v, a = stream(p, "video"), stream(p, "audio")
    assert int(v["nb_read_frames"]) == 108 and float(v["duration"]) == pytest.approx(
        4.32, abs=0.001
    )
    assert float(p["format"]["duration"]) == pytest.approx(4.32, abs=0.03)
    aud = range(audio_range(range(50, 51))[0], -(-6300 * A_RATE // 1024_000))  # starts < 6.3 s
    assert int(a["nb_read_frames"]) == len(aud) == info.samples["audio"]
    assert float(a["start_time"]) == pytest.approx(aud[0] * 1024 / A_RATE - 2.0, abs=0.002)
    # stream copy: the very same access units, in order, starting with a keyframe
    pk = packets(out)
    assert pk[0][1] and [x[2] for x in pk] == [b"".join(nal_payload(media["h264"][i])[0])
                                                for i in range(50, 158)]  # fmt: skip
    assert [round(x[0] * 1000) for x in pk] == [i * 40 for i in range(108)]
    apk = packets(out, "audio")
    assert [x[2] for x in apk] == [media["aac"][i] for i in aud]


def test_export_keeps_wall_time_across_a_gap(tmp_path, two_segments):
    s1, s2 = two_segments
    out = tmp_path / "gap.mp4"
    info = export_range([(s1, T0), (s2, T0 + 6000)], T0 + 2500, T0 + 8300, out)
    assert info.start_ms == T0 + 2000 and info.frames == 108 and info.duration_ms == 6320
    assert decode_errors(out) == ""
    v = stream(probe(out), "video")
    assert float(v["duration"]) == pytest.approx(6.32, abs=0.001)
    times = [round(x[0] * 1000) for x in packets(out)]
    assert times[49] == 1960 and times[50] == 4000  # last frame before the gap is held 2 s
    a = packets(out, "audio")
    gap = max(range(len(a) - 1), key=lambda i: a[i + 1][0] - a[i][0])
    assert a[gap + 1][0] == pytest.approx(4.0, abs=0.03)


def test_export_edge_cases(tmp_path, media, two_segments):
    s1, s2 = two_segments
    segs = [(s1, T0), (s2, T0 + 4000)]
    # from before the footage: starts at the first frame; to after: up to the last one
    info = export_range(segs, T0 - 60_000, T0 + 60_000, tmp_path / "all.mp4")
    assert info.frames == 200 and info.start_ms == T0 and info.end_ms == T0 + 8000
    with pytest.raises(ExportError):
        export_range(segs, T0 + 9000, T0 + 10_000, tmp_path / "none.mp4")
    with pytest.raises(ExportError):
        export_range(segs, T0 + 5000, T0 + 5000, tmp_path / "empty.mp4")
    # writing to an open file object works too
    with open(tmp_path / "fo.mp4", "wb") as f:
        info = export_range(segs, T0 + 4000, T0 + 5000, f)
    assert info.frames == 25 and decode_errors(tmp_path / "fo.mp4") == ""
    # recovery refuses to "repair" a progressive file (it would cut off its mdat)
    size = (tmp_path / "fo.mp4").stat().st_size
    assert not parse_segment(tmp_path / "fo.mp4").fragmented
    with pytest.raises(Mp4Error, match="not a fragmented"):
        recover_segment(tmp_path / "fo.mp4")
    assert (tmp_path / "fo.mp4").stat().st_size == size
    # a codec change inside one export is refused clearly
    hevc = tmp_path / "h.mp4"
    write_segment(hevc, media, "h265", range(0, 50))
    with pytest.raises(ExportError, match="h265"):
        export_range([(s1, T0), (hevc, T0 + 4000)], T0, T0 + 6000, tmp_path / "mix.mp4")


def test_export_with_resolution_change_uses_two_sample_descriptions(tmp_path, media):
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    write_segment(a, media, "h264", range(0, 50))
    write_segment(b, media, "h264", range(0, 50), aus=media["h264_640"])
    out = tmp_path / "exp.mp4"
    info = export_range([(a, T0), (b, T0 + 2000)], T0, T0 + 4000, out)
    assert info.sample_descriptions == {"video": 2} and info.frames == 100
    assert decode_errors(out) == ""
    frames = json.loads(run("ffprobe", "-v", "error", "-of", "json", "-show_frames", "-show_entries",
                            "frame=width,height", out).stdout)["frames"]  # fmt: skip
    assert [(f["width"], f["height"]) for f in frames] == [(320, 240)] * 50 + [(640, 480)] * 50
    # a range inside the second segment only needs (and gets) its own description
    info = export_range([(a, T0), (b, T0 + 2000)], T0 + 2500, T0 + 3500, tmp_path / "only2.mp4")
    assert info.sample_descriptions == {"video": 1}
    assert stream(probe(tmp_path / "only2.mp4"), "video")["width"] == 640
    with pytest.raises(ExportError, match="source"):  # never truncate a source segment
        export_range([(a, T0), (b, T0 + 2000)], T0, T0 + 3500, b)
    assert parse_segment(b).complete_length == b.stat().st_size > 0


# --------------------------------------------------------------------------- MSE


def mse_file(path, chunks) -> list[str]:
    kinds = []
    with open(path, "wb") as f:
        for kind, data in chunks:
            kinds.append(kind)
            f.write(data)
    return kinds


def test_mse_fragments_are_continuous_across_segments(tmp_path, media):
    v1, v2 = range(0, 100), range(100, 200)
    s1, s2 = tmp_path / "s1.mp4", tmp_path / "s2.mp4"
    write_segment(s1, media, "h264", v1, audio_range(v1), frag=0.7)
    write_segment(s2, media, "h264", v2, audio_range(v2), frag=0.7, ts0=99)
    out = tmp_path / "mse.mp4"
    # the wall clock of segment 2 is 1 ms off (ms rounding in the database): glued
    kinds = mse_file(out, iter_mse([(s1, T0), (s2, T0 + 4001)], T0 + 2500))
    assert kinds[0] == "init" and set(kinds[1:]) == {"media"}
    seg = parse_segment(out)
    assert [f.sequence for f in seg.fragments] == list(range(1, len(seg.fragments) + 1))
    for tid in (1, 2):
        tfs = [f.trafs[tid] for f in seg.fragments if tid in f.trafs]
        assert all(
            b.base_decode_time == a.end_decode_time for a, b in zip(tfs, tfs[1:], strict=False)
        )
    first = seg.fragments[0].trafs[1]
    assert first.base_decode_time == 0 and first.sync[0]  # rebuilt to start at the keyframe (2.0 s)
    assert seg.fragments[0].trafs[2].base_decode_time == round(
        audio_range(range(50, 51))[0] * 1024 - 2.0 * A_RATE)  # fmt: skip
    assert decode_errors(out) == ""
    assert int(stream(probe(out), "video")["nb_read_frames"]) == 150
    # with an end, and across a real gap (kept: 2 s)
    out2 = tmp_path / "mse2.mp4"
    mse_file(out2, iter_mse([(s1, T0), (s2, T0 + 6000)], T0 + 2500, T0 + 8300))
    seg = parse_segment(out2)
    vt = [f.trafs[1] for f in seg.fragments if 1 in f.trafs]
    assert sum(len(t.sizes) for t in vt) == 108
    starts = [t.base_decode_time for t in vt]
    assert 4 * 90000 in starts  # first fragment of segment 2 at wall time 6.0 - 2.0 s
    assert decode_errors(out2) == ""


def test_mse_new_init_when_parameters_change(tmp_path, media):
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    write_segment(a, media, "h264", range(0, 50))
    write_segment(b, media, "h264", range(0, 50), aus=media["h264_640"])
    kinds = [k for k, _ in iter_mse([(a, T0), (b, T0 + 2000)], T0)]
    assert kinds.count("init") == 2 and kinds[0] == "init"
    with pytest.raises(ExportError):  # nothing recorded after from_ms
        next(iter_mse([(a, T0), (b, T0 + 2000)], T0 + 5000))


# --------------------------------------------------------------------------- hostile input


def test_hostile_input_gives_mp4_errors(tmp_path, media):
    def parse(data: bytes, **kw):
        p = tmp_path / "h.mp4"
        p.write_bytes(data)
        t = time.monotonic()
        try:
            return parse_segment(p, **kw)
        finally:
            assert time.monotonic() - t < 2

    good = tmp_path / "good.mp4"
    write_segment(good, media, "h264", range(0, 50), frag=0.5)
    data = good.read_bytes()
    seg = parse_segment(good)
    ftyp_len = struct.unpack(">I", data[:4])[0]
    moov = data[ftyp_len : seg.init_end]

    with pytest.raises(Mp4TruncatedError):
        parse(b"")
    with pytest.raises(Mp4Error):
        parse(os.urandom(5000))
    with pytest.raises(Mp4Error):
        parse(b"<html><body>not a video</body></html>")
    with pytest.raises(Mp4TruncatedError):  # moov claims 4 GiB
        parse(data[:ftyp_len] + struct.pack(">I4s", 0xFFFFFFF0, b"moov") + moov[8:])
    with pytest.raises(Mp4Error):  # 64-bit size of 2**62
        parse(data[:ftyp_len] + struct.pack(">I4sQ", 1, b"moov", 1 << 62) + moov[8:])
    with pytest.raises(Mp4Error):  # size smaller than the header
        parse(data[:ftyp_len] + struct.pack(">I4s", 4, b"moov") + moov[8:])
    big = tmp_path / "big.mp4"  # sparse 200 MB file whose moov claims all of it: not read
    with open(big, "wb") as f:
        f.write(data[:ftyp_len] + struct.pack(">I4s", 200 << 20, b"moov"))
        f.truncate(ftyp_len + (200 << 20))
    with pytest.raises(Mp4Error, match="too large"):
        parse_segment(big)
    # a trun claiming 2**31 samples: the tail is cut off (tolerant) or an error (strict)
    f1 = seg.fragments[1]
    trun = data.index(b"trun", f1.moof_offset)
    bad = bytearray(data)
    bad[trun + 8 : trun + 12] = struct.pack(">I", 1 << 31)
    s = parse(bytes(bad))
    assert s.truncated and "samples" in s.tail_error and s.complete_length == seg.fragments[0].end
    with pytest.raises(Mp4Error):
        parse(bytes(bad), strict=True)
    # random corruption of metadata never escapes as anything but Mp4Error
    rng = random.Random(5)
    meta = list(range(ftyp_len, seg.init_end)) + list(
        range(f1.moof_offset, f1.moof_offset + f1.moof_size)
    )
    for _ in range(300):
        bad = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            bad[rng.choice(meta)] = rng.randrange(256)
        try:
            parse(bytes(bad))
        except Mp4Error:
            pass
    # garbage appended after the last fragment is cut by recovery
    tmp = tmp_path / "tail.mp4.tmp"
    tmp.write_bytes(data + b"\x00" * 100)
    assert recover_segment(tmp).size == len(data)


def test_audio_specific_config(media):
    from viis.media.mp4 import make_asc, parse_asc

    assert parse_asc(media["asc"]) == (2, A_RATE, 1)  # from the ADTS headers of ffmpeg's AAC
    assert parse_asc(make_asc(44100, 2)) == (2, 44100, 2)
    assert parse_asc(bytes.fromhex("2b920800")) == (5, 44100, 2)  # HE-AAC: SBR output rate
    assert Track.aac(bytes.fromhex("2b920800")).codec_string == "mp4a.40.5"
    assert Track.aac(media["asc"], timescale=90000).default_duration() == 1920
    with pytest.raises(Mp4Error):
        parse_asc(b"\x17")
