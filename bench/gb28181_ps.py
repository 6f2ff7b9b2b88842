"""GB/T 28181 media cost: PS packing and RTP per stream, against a plain copy of the frames.

    .venv/bin/python bench/gb28181_ps.py --seconds 3

The stream is what a 1080p camera sends at 2 Mbit/s, 25 fps, a keyframe every 2 s:
ffmpeg's testsrc with sensor-like noise, encoded by libx264 (no B-frames, as GB cameras),
split into access units. Each case runs over those frames for ``seconds`` of CPU time
(``time.process_time``: our process only, the machine is shared) and reports microseconds
per frame, percent of a core per 25 fps stream and streams per core; ``cores_per_stream``
is the headline (the real sender, ``send_udp``):

- ``baseline_copy``: the frame's NAL units joined with start codes (one bytes copy: the
  least any sender must do to hand a frame to a socket);
- ``ps_mux``: PsMuxer.mux (pack header, system header and PSM on keyframes, PES);
- ``ps_rtp_udp`` / ``ps_rtp_tcp``: PS plus RTP packets of at most 1,400 bytes (plus the
  RFC 4571 framing for TCP) - the whole per-frame cost of the sender before the socket;
- ``send_udp``: PsSender.send_frame on a real UDP socket to loopback (syscalls included),
  against ``baseline_send_udp``: the frame's bytes in datagrams of the same size from a
  plain socket (no PS, no RTP, no asyncio);
- ``receive``: PsReceiver's per-packet path (RTP checks, sequence, SSRC, PS demux) for the
  same frames, what a platform pays per stream it takes from a device.

Writes bench/results/gb28181_ps.json. ``measure(seconds=...)`` returns the same dict for
bench/gb28181.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from viis.interconnect.gb28181.ps import PsMuxer  # noqa: E402
from viis.interconnect.gb28181.rtpps import PsReceiver, PsSender, RtpPacketizer  # noqa: E402
from viis.media.h26x import access_units, is_keyframe, split_annexb  # noqa: E402

FPS = 25
WIDTH, HEIGHT = 1920, 1080
BITRATE = 2_000_000
CLIP_SECONDS = 10
SSRC = 110000001
RESULT = ROOT / "bench" / "results" / "gb28181_ps.json"


def stream_frames(cache: Path | None = None) -> list[tuple[list[bytes], int, bool]]:
    """(NAL units, PTS at 90 kHz, keyframe) of the benchmark stream, encoded once."""
    cache = cache or Path(tempfile.gettempdir()) / "viis-bench-gb28181-ps"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"testsrc-{WIDTH}x{HEIGHT}-{BITRATE}-{CLIP_SECONDS}s.h264"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        subprocess.run([
            "ffmpeg", "-v", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc=size={WIDTH}x{HEIGHT}:rate={FPS}", "-t", str(CLIP_SECONDS),
            "-vf", "noise=alls=10:allf=t",  # sensor noise, so the encoder spends its bits
            "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", str(2 * FPS),
            "-b:v", str(BITRATE), "-maxrate", str(BITRATE), "-bufsize", str(2 * BITRATE),
            "-f", "h264", str(tmp)], check=True, timeout=600)
        tmp.rename(path)
    aus = access_units("h264", split_annexb(path.read_bytes()))
    return [(au, i * (90_000 // FPS), is_keyframe("h264", au)) for i, au in enumerate(aus)]


def _run(fn, frames, seconds: float) -> tuple[float, int]:
    """CPU microseconds per frame of ``fn(frame)`` over whole passes of the frames."""
    n = 0
    t0 = time.process_time()
    while True:
        for f in frames:
            fn(f)
        n += len(frames)
        used = time.process_time() - t0
        if used >= seconds:
            return used * 1e6 / n, n


_SC = b"\x00\x00\x00\x01"


def _cases(frames, seconds: float) -> dict[str, float]:
    out: dict[str, float] = {}

    def baseline(f):
        return b"".join([x for n in f[0] for x in (_SC, n)])

    mux = PsMuxer("h264")

    def ps_mux(f):
        return mux.mux(f[0], f[1], f[2])

    pk = RtpPacketizer(SSRC)

    def ps_rtp_udp(f):
        return pk.packets(mux.mux(f[0], f[1], f[2]), f[1])

    def ps_rtp_tcp(f):
        return pk.framed(mux.mux(f[0], f[1], f[2]), f[1])

    for name, fn in (("baseline_copy", baseline), ("ps_mux", ps_mux),
                     ("ps_rtp_udp", ps_rtp_udp), ("ps_rtp_tcp", ps_rtp_tcp)):
        out[name] = _run(fn, frames, seconds)[0]

    async def over_sockets() -> tuple[float, float]:
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))  # never read: the kernel drops what overflows
        sender = await PsSender.open("udp", sink.getsockname(), SSRC, "127.0.0.1")
        plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        plain.connect(sink.getsockname())

        def plain_send(f):  # the frame's bytes in 1,388-byte datagrams, no PS, no RTP
            data = memoryview(b"".join([x for n in f[0] for x in (_SC, n)]))
            for off in range(0, len(data), 1388):
                plain.send(data[off:off + 1388])

        try:
            send = _run(lambda f: sender.send_frame(f[0], f[1], f[2]), frames, seconds)[0]
            out["baseline_send_udp"] = _run(plain_send, frames, seconds)[0]
        finally:
            plain.close()
            await sender.close()
            sink.close()
        # receive path: the receiver's per-packet handler fed the sender's packets
        got = [0]
        rx = PsReceiver("udp", lambda fr: got.__setitem__(0, got[0] + 1), SSRC, clock=None,
                        codec=None, ssrc_check=True, wait_key_after_loss=True,
                        max_frame_bytes=8 << 20, on_close=None)
        rpk = RtpPacketizer(SSRC, seq=0)
        packets = [p for f in frames for p in rpk.packets(mux.mux(f[0], f[1], f[2]), f[1])]
        handle = rx._packet
        n = 0
        t0 = time.process_time()
        while True:
            rx._seq = None  # each pass of the clip is a new stream, not 65,000 late packets
            for p in packets:
                handle(p)
            n += len(frames)
            used = time.process_time() - t0
            if used >= seconds:
                break
        st = rx.stats
        assert got[0] == n and st["frames_dropped"] == st["lost"] == st["late"] == 0, st
        return send, used * 1e6 / n

    out["send_udp"], out["receive"] = asyncio.run(over_sockets())
    return out


def measure(seconds: float = 3.0, quick: bool = False) -> dict:
    """Run every case for ``seconds`` of CPU time each (0.3 s with ``quick``, a smoke run);
    the result dict (see the module docstring)."""
    if quick:
        seconds = min(seconds, 0.3)
    frames = stream_frames()
    sizes = [sum(len(n) + 4 for n in f[0]) for f in frames]
    bitrate = sum(sizes) * 8 * FPS / len(frames)
    ps_bytes = sum(len(PsMuxer("h264").mux(*f)) for f in frames)
    us = _cases(frames, seconds)
    cores = {k: v * FPS / 1e6 for k, v in us.items()}
    return {
        "stream": {"width": WIDTH, "height": HEIGHT, "fps": FPS, "frames": len(frames),
                   "bitrate_bps": round(bitrate), "mean_frame_bytes": round(sum(sizes) / len(sizes)),
                   "max_frame_bytes": max(sizes),
                   "ps_overhead_pct": round(100 * (ps_bytes - sum(sizes)) / sum(sizes), 2)},
        "us_per_frame": {k: round(v, 2) for k, v in us.items()},
        "core_pct_per_stream": {k: round(100 * v, 4) for k, v in cores.items()},
        "streams_per_core": {k: round(1 / v) for k, v in cores.items()},
        "ratios": {
            "ps_mux_vs_copy": round(us["ps_mux"] / us["baseline_copy"], 1),
            "ps_rtp_udp_vs_copy": round(us["ps_rtp_udp"] / us["baseline_copy"], 1),
            "send_udp_vs_plain_send": round(us["send_udp"] / us["baseline_send_udp"], 2),
        },
        # the headline for bench/gb28181.py: the sender's whole cost per 25 fps stream
        "cores_per_stream": round(cores["send_udp"], 6),
        "us_per_frame_send": round(us["send_udp"], 2),
        "seconds_per_case": seconds,
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_1m": round(os.getloadavg()[0], 2)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="CPU seconds per case")
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args()
    result = measure(args.seconds)
    text = json.dumps(result, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
