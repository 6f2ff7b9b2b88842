"""Recording benchmark: VIIS against one `ffmpeg -c copy -f segment` per camera (the method
Frigate and Shinobi use), on the same simulated cameras, in the same run.

    .venv/bin/python bench/recording.py --streams 40 --seconds 120

For each side: CPU-seconds per stream-hour (utime+stime of the recorder processes over the
measured window, after a warm-up) and memory per stream (PSS from /proc/<pid>/smaps_rollup,
summed over the processes, divided by the streams). The simulator's own CPU is not counted:
only the recorder processes are measured. VIIS's figure includes hashing (SHA-256 of every
byte), indexing (SQLite rows and hash-chain links) and its idle HTTP API.

`complete` is true when every stream was recorded over the whole window without a gap and
every VIIS segment plays (ffprobe reads every packet) and verifies (`viis verify --deep`).
Writes bench/results/recording.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from viis.simcam.fleet import SimFleet  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")
VIIS = str(Path(sys.executable).with_name("viis"))


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime, stime


def pss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(pids: list[int], warmup: float, seconds: float) -> tuple[float, float]:
    """CPU seconds used by ``pids`` during ``seconds`` after ``warmup``; mean PSS (bytes)."""
    time.sleep(warmup)
    c0 = sum(cpu_seconds(p) for p in pids)
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(min(5.0, max(0.1, end - time.monotonic())))
        samples.append(sum(pss_bytes(p) for p in pids))
    c1 = sum(cpu_seconds(p) for p in pids)
    return c1 - c0, sum(samples) / len(samples)


def run_viis(fleet: SimFleet, k: int, work: Path, warmup: float, seconds: float) -> dict:
    data = work / "viis"
    cfg = work / "viis.toml"
    cams = "".join(f'[[cameras]]\nname = "cam{i}"\nmain_url = "{fleet.url(i)}"\n' for i in range(k))
    cfg.write_text(f'data_dir = "{data}"\n[http]\nport = {free_port()}\n[storage]\n'
                   f'min_free_bytes = 1048576\n[simcam]\nenabled = false\n[log]\nlevel = "WARNING"\n'
                   f'{cams}')
    log = (work / "viis.log").open("wb")
    proc = subprocess.Popen([VIIS, "--config", str(cfg), "run"], stdout=log, stderr=subprocess.STDOUT)
    try:
        t_start = time.time() * 1000
        cpu, pss = measure([proc.pid], warmup, seconds)
        t_end = time.time() * 1000
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return {"cpu_s": cpu, "pss": pss, "cfg": cfg, "window": (t_start + warmup * 1000, t_end)}


def check_viis(cfg: Path, k: int, window: tuple[float, float]) -> dict:
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import select

    from viis.core.config import load_settings
    from viis.core.db import Database
    from viis.media.models import Gap, Segment

    settings = load_settings(cfg, environ={})
    db = Database(settings.db_url)
    with db.session() as s:
        segs = list(s.scalars(select(Segment)))
        gaps = list(s.scalars(select(Gap)))
    db.dispose()
    per_cam: dict[int, list] = {}
    for seg in segs:
        per_cam.setdefault(seg.camera_id, []).append(seg)
    covered = all(
        min(x.start_ms for x in v) <= window[0] and max(x.end_ms for x in v) >= window[1] - 5000
        for v in per_cam.values())
    bad = []
    for seg in segs:
        p = settings.segments_path / seg.path
        r = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-show_entries",
                            "stream=nb_read_packets", "-of", "csv=p=0", str(p)],
                           capture_output=True, text=True)
        if r.returncode != 0 or r.stderr.strip():
            bad.append(seg.path)
    ver = subprocess.run([VIIS, "--config", str(cfg), "--json", "verify", "--deep"],
                         capture_output=True, text=True)
    verified = ver.returncode == 0
    return {"segments": len(segs), "gaps": len(gaps), "cameras_recorded": len(per_cam),
            "unplayable": bad, "covered": covered, "verified": verified,
            "complete": len(per_cam) == k and not gaps and not bad and covered and verified}


def run_ffmpeg(fleet: SimFleet, k: int, work: Path, warmup: float, seconds: float) -> dict:
    procs = []
    for i in range(k):
        out = work / "ffmpeg" / f"cam{i}"
        out.mkdir(parents=True, exist_ok=True)
        procs.append(subprocess.Popen(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp",
             "-i", fleet.url(i), "-c", "copy", "-f", "segment", "-segment_time", "60",
             "-reset_timestamps", "1", str(out / "%05d.mp4")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        cpu, pss = measure([p.pid for p in procs], warmup, seconds)
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
    return {"cpu_s": cpu, "pss": pss}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--warmup", type=float, default=20.0)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--bitrate", type=int, default=4_000_000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "recording.json"))
    ap.add_argument("--gop", type=float, default=1.0, help="seconds between keyframes")
    ap.add_argument("--cache", default=None, help="clip cache (default: the simcam default)")
    a = ap.parse_args()
    k = a.streams
    work = Path(tempfile.mkdtemp(prefix="viis-bench-"))
    fleet = SimFleet(k, width=a.width, height=a.height, bitrate=a.bitrate, gop_s=a.gop,
                     cache_dir=a.cache)
    print(f"preparing {k} simulated {a.width}x{a.height} streams at {a.bitrate / 1e6:g} Mbit/s …",
          flush=True)
    fleet.start()
    try:
        print(f"VIIS: recording {k} streams, warm-up {a.warmup:g} s, measuring {a.seconds:g} s", flush=True)
        v = run_viis(fleet, k, work, a.warmup, a.seconds)
        check = check_viis(v["cfg"], k, v["window"])
        print(f"ffmpeg: {k} processes, warm-up {a.warmup:g} s, measuring {a.seconds:g} s", flush=True)
        f = run_ffmpeg(fleet, k, work, a.warmup, a.seconds)
    finally:
        fleet.stop()
    hours = k * a.seconds / 3600
    res = {
        "streams": k, "seconds": a.seconds, "width": a.width, "height": a.height,
        "bitrate": a.bitrate,
        "viis_cpu_s_per_stream_hour": round(v["cpu_s"] / hours, 2),
        "ffmpeg_cpu_s_per_stream_hour": round(f["cpu_s"] / hours, 2),
        "viis_pss_mb_per_stream": round(v["pss"] / k / 2**20, 2),
        "ffmpeg_pss_mb_per_stream": round(f["pss"] / k / 2**20, 2),
        "cpu_ratio": round(v["cpu_s"] / f["cpu_s"], 3) if f["cpu_s"] else None,
        "mem_ratio": round(v["pss"] / f["pss"], 3) if f["pss"] else None,
        "complete": check["complete"],
        "check": {kk: vv for kk, vv in check.items() if kk != "unplayable"} | {
            "unplayable": check["unplayable"][:10]},
        "targets": {"cpu_ratio": 1.0, "mem_ratio": 0.5},
        "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    print(f"cpu_ratio (VIIS/ffmpeg) = {res['cpu_ratio']}   mem_ratio (VIIS/ffmpeg) = {res['mem_ratio']}"
          f"   complete = {res['complete']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
