"""Command line of the simulated camera fleet (``python -m viis.simcam``)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from viis.simcam.fleet import SimFleet


def _bitrate(text: str) -> int:
    t = text.strip().lower()
    mult = 1
    if t.endswith("m"):
        mult, t = 1_000_000, t[:-1]
    elif t.endswith("k"):
        mult, t = 1_000, t[:-1]
    return int(float(t) * mult)


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="viis simcam",
        description="Run N simulated RTSP cameras (pre-encoded H.264 loops with a burnt-in "
        "time code) until SIGINT/SIGTERM.  Faults are injected over the JSON control port: "
        'curl -d \'{"fault":"black","duration_s":10}\' http://127.0.0.1:<control-port>/cameras/0/fault',
    )
    p.add_argument("--count", "-n", type=int, default=4, help="number of cameras (default 4)")
    p.add_argument("--port", type=int, default=8554, help="RTSP port (default 8554, 0 = any)")
    p.add_argument(
        "--control-port",
        type=int,
        default=None,
        help="HTTP control port (default RTSP port + 1, 0 = any)",
    )
    p.add_argument("--bind", default="127.0.0.1", help="RTSP listen address (default 127.0.0.1)")
    p.add_argument("--host", default=None, help="host name used in printed URLs (default: --bind)")
    p.add_argument("--size", type=_size, default=(640, 360), help="WxH (default 640x360)")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument(
        "--bitrate",
        type=_bitrate,
        default=None,
        help="e.g. 4M, 800k (default 4M scaled to the size)",
    )
    p.add_argument(
        "--gop", type=float, default=1.0, help="keyframe interval in seconds (default 1)"
    )
    p.add_argument("--cycle", type=float, default=60.0, help="loop length in seconds (default 60)")
    p.add_argument(
        "--sub-stream", action="store_true", help="also serve /cam<i>/sub at a lower resolution"
    )
    p.add_argument("--sub-size", type=_size, default=None, help="WxH of the sub stream")
    p.add_argument("--user", default=None, help="RTSP user name for every camera")
    p.add_argument("--password", default=None, help="RTSP password for every camera")
    p.add_argument(
        "--auth", default="basic,digest", help="accepted auth methods (default basic,digest)"
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="clip cache (default $VIIS_SIMCAM_CACHE or ~/.cache/viis/simcam)",
    )
    p.add_argument("--noise", type=int, default=4, help="sensor noise strength 0..100 (default 4)")
    p.add_argument("--preset", default="superfast", help="x264 preset for clip generation")
    p.add_argument("--generate-only", action="store_true", help="build the clip cache and exit")
    p.add_argument(
        "--json", action="store_true", help="print the fleet description as one JSON line"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:  # `viis simcam -- --help` passes the separator on
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    if (args.user is None) != (args.password is None):
        print("--user and --password go together", file=sys.stderr)
        return 2
    control_port = args.control_port
    if control_port is None:
        control_port = args.port + 1 if args.port else 0
    sub_w, sub_h = args.sub_size if args.sub_size else (None, None)
    fleet = SimFleet(
        args.count,
        rtsp_port=args.port,
        control_port=control_port,
        width=args.size[0],
        height=args.size[1],
        fps=args.fps,
        bitrate=args.bitrate,
        gop_s=args.gop,
        cycle_s=args.cycle,
        cache_dir=args.cache_dir,
        credentials=(args.user, args.password) if args.user is not None else None,
        auth_methods=[m.strip() for m in args.auth.split(",") if m.strip()],
        sub_stream=args.sub_stream,
        sub_width=sub_w,
        sub_height=sub_h,
        host=args.host or args.bind,
        bind=args.bind,
        noise=args.noise,
        preset=args.preset,
        verbose=True,
    )
    if args.generate_only:
        fleet.prepare(log=lambda m: print(m, file=sys.stderr))
        print(fleet.clip_dir)
        if fleet.sub_clip_dir:
            print(fleet.sub_clip_dir)
        return 0
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        fleet.start()
        info = {
            "pid": fleet.pid,
            "rtsp_port": fleet.rtsp_port,
            "control_port": fleet.control_port,
            "urls": fleet.urls,
            "sub_urls": [fleet.url(i, sub=True) for i in range(fleet.count)]
            if args.sub_stream
            else [],
            "cycle_ms": fleet.cycle_ms,
            "fps": fleet.fps,
            "gop_frames": fleet.gop_frames,
        }
        if args.json:
            print(json.dumps(info), flush=True)
        else:
            print(f"simcam: {fleet.count} cameras, server pid {fleet.pid}")
            for i, url in enumerate(info["urls"]):
                print(f"  cam{i}: {url}")
            print(f"  control: http://127.0.0.1:{fleet.control_port}/status")
            print("  Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            if not fleet.running:
                print("simcam: server exited", file=sys.stderr)
                return 1
        return 0
    finally:
        fleet.stop()
        for s, h in old.items():
            signal.signal(s, h)
