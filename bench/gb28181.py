"""GB/T 28181 platform-role load benchmark (issue 7, Q13.2, Q12.1): real sipp processes act as
devices that REGISTER with digest and then send a Keepalive MESSAGE every interval, against
VIIS's ``Platform`` running in its own process pinned to one core.

    .venv/bin/python bench/gb28181.py            # 5k .. 80k devices at 60 s, then the burst
    .venv/bin/python bench/gb28181.py --quick    # 500 and 1,000 devices at 2 s, short burst
    .venv/bin/python bench/gb28181.py --levels 20000 --interval 60

Per device count N (``hold`` test): N devices register at N/interval per second (one
interval of ramp, so keepalives are spread evenly), then the run holds for
``(misses + 1) × interval``. Reported: msgs/s handled by the platform, its CPU (fraction
of one core), p99 response time (sipp's own per-response times), devices wrongly marked
offline (any offline/expired event while sipp still runs the device: must be 0),
registration failures, sipp's retransmissions and failed calls. The largest N that holds
(all registered, none wrongly offline, no failed call) is ``devices_held``.

``burst`` test: a few hundred devices in a closed loop (sipp ``-d 0``: the next keepalive
as soon as the 200 arrives) saturate the platform; ``msgs_per_s`` is the rate reached and
``msgs_per_cpu_s`` the rate per second of platform CPU (the machine is shared, so CPU-time
normalised figures are the comparable ones). The baseline, measured in the same run with
the same sipp load and pinning, is a trivial asyncio UDP responder that answers every
request from a few header lines (401 to a REGISTER without Authorization, else 200),
without parsing, transactions, digest or state: ``ratio`` = platform / baseline.

sipp runs on the other core (several processes, one UDP socket each); their CPU is reported
so that a saturated sipp (the load generator as the bottleneck) is visible. The PS packing
cost per stream comes from ``bench/gb28181_ps.py`` ``measure()`` when that file exists.

Writes bench/results/gb28181.json (``--quick``: gb28181_quick.json).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform as pyplatform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCENARIO = ROOT / "bench" / "sipp" / "gb_device_load.xml"
SERVER_ID = "34020000002000000001"
DOMAIN = SERVER_ID[:10]
PASSWORD = "bench-secret"
TICK = os.sysconf("SC_CLK_TCK")


# ---- the server process (platform or trivial baseline) -------------------------------------


def serve(args: argparse.Namespace) -> None:
    """Run in the pinned child: print one JSON line when ready, then one per second."""
    asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if args.kind == "platform":
        from viis.interconnect.gb28181.platform import Platform, PlatformConfig

        events: dict[str, int] = {}

        def on_event(ev: str, peer) -> None:
            events[ev] = events.get(ev, 0) + 1

        p = Platform(
            PlatformConfig(server_id=SERVER_ID, host="127.0.0.1", port=0, password=PASSWORD,
                           tcp=False, keepalive_interval=args.interval,
                           keepalive_misses=args.misses),
            on_event=on_event,
        )
        await p.start()
        port = p.addresses["UDP"][1]

        def stats() -> dict:
            online = sum(1 for x in p.peers.values() if x.online)
            return {"received": p.udp.received, "sent": p.layer.sent, "errors": p.udp.errors,
                    "peers": len(p.peers), "online": online, "events": dict(events),
                    "servers": len(p.layer.servers)}
    else:
        proto = _TrivialResponder()
        tr, _ = await loop.create_datagram_endpoint(lambda: proto, local_addr=("127.0.0.1", 0))
        port = tr.get_extra_info("sockname")[1]
        tr.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

        def stats() -> dict:
            return {"received": proto.received, "sent": proto.sent}

    print(json.dumps({"ready": port}), flush=True)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass
        s = stats()
        s["t"] = time.monotonic()
        s["cpu"] = time.process_time()
        print(json.dumps(s), flush=True)


class _TrivialResponder(asyncio.DatagramProtocol):
    """The baseline: answers from the Via/From/To/Call-ID/CSeq lines, nothing else."""

    _COPY = (b"via:", b"from:", b"to:", b"call-id:", b"cseq:")

    def __init__(self) -> None:
        self.received = self.sent = 0
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.received += 1
        head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        lines = [ln for ln in head[1:] if ln[:8].lower().startswith(self._COPY)]
        if head[0].startswith(b"REGISTER") and b"\r\nAuthorization:" not in data:
            status = (b"SIP/2.0 401 Unauthorized", b'WWW-Authenticate: Digest realm="'
                      + DOMAIN.encode() + b'", nonce="0123456789abcdef", algorithm=MD5')
        else:
            status = (b"SIP/2.0 200 OK",)
        out = [status[0]] + [ln + b";tag=1" if ln[:3].lower() == b"to:" else ln for ln in lines]
        out += list(status[1:]) + [b"Content-Length: 0", b"", b""]
        self.transport.sendto(b"\r\n".join(out), addr)
        self.sent += 1


# ---- the driver ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (from /proc), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def run_wait_seconds(pid: int) -> float:
    """Time the process was runnable but waiting for a CPU (/proc/<pid>/schedstat, ns)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class Server:
    """The platform (or the baseline) in its own process, pinned with taskset."""

    def __init__(self, kind: str, core: int, interval: float, misses: int, workdir: Path):
        cmd = ["taskset", "-c", str(core), sys.executable, str(Path(__file__).resolve()),
               "serve", "--kind", kind, "--interval", str(interval), "--misses", str(misses)]
        workdir.mkdir(parents=True, exist_ok=True)
        self.stderr = open(workdir / f"{kind}.stderr", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{kind} server did not start: {(workdir / f'{kind}.stderr').read_text()}")
        self.port = json.loads(line)["ready"]
        self.last: dict = {}
        self.history: list[dict] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                s = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self.last = s
                self.history.append(s)

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self.last)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SippFleet:
    """``procs`` sipp processes on ``core``, each simulating a slice of the devices."""

    def __init__(self, port: int, n: int, first: int, procs: int, rate: float, pause_ms: int,
                 core: int, workdir: Path):
        self.dirs: list[Path] = []
        self.procs: list[subprocess.Popen] = []
        sizes = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
        start = first
        for i, size in enumerate(sizes):
            if size == 0:
                continue
            d = workdir / f"sipp{i}"
            d.mkdir(parents=True, exist_ok=True)
            with open(d / "devices.csv", "w") as f:
                f.write("SEQUENTIAL\n")
                for k in range(start, start + size):
                    f.write(f"3402000000132{k:07d};{PASSWORD}\n")
            start += size
            cmd = ["taskset", "-c", str(core), shutil.which("sipp") or "sipp",
                   f"127.0.0.1:{port}", "-sf", str(SCENARIO), "-inf", "devices.csv",
                   "-m", str(size), "-l", str(size), "-r", f"{max(rate * size / n, 0.01):.3f}",
                   "-i", "127.0.0.1", "-p", str(free_udp_port()), "-t", "u1",
                   "-d", str(pause_ms), "-set", "domain", DOMAIN, "-set", "server", SERVER_ID,
                   "-max_retrans", "6", "-buff_size", "4194304", "-nostdin", "-trace_err", "-trace_stat",
                   "-stf", "stat.csv", "-fd", "1", "-trace_rtt", "-rtt_freq", "100"]
            self.procs.append(subprocess.Popen(cmd, cwd=d, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))
            self.dirs.append(d)
        time.sleep(0.3)
        dead = [p for p in self.procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"sipp exited at start: rc={dead[0].returncode}")

    def cpu(self) -> list[float]:
        return [cpu_seconds(p.pid) for p in self.procs]

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)  # sipp quits at once (its calls never end)
        for p in self.procs:
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stats(self) -> dict:
        """Sum of the last line of every sipp's statistics file."""
        keys = ("FailedCall(C)", "Retransmissions(C)", "FailedMaxUDPRetrans(C)",
                "FailedUnexpectedMessage(C)", "TotalCallCreated", "CurrentCall")
        total = dict.fromkeys(keys, 0)
        for d in self.dirs:
            path = d / "stat.csv"
            if not path.exists():
                continue
            rows = list(csv.reader(path.read_text(errors="replace").splitlines(), delimiter=";"))
            if len(rows) < 2:
                continue
            head, last = rows[0], rows[-1]
            for k in keys:
                if k in head and head.index(k) < len(last):
                    try:
                        total[k] += int(last[head.index(k)])
                    except ValueError:
                        pass
        return total

    def response_times(self, rtd: str, since_ms: float = 0.0) -> list[float]:
        """sipp's per-response times in ms for one timer ('reg' or 'ka')."""
        out: list[float] = []
        for d in self.dirs:
            for path in d.glob("*_rtt.csv"):
                for line in path.read_text(errors="replace").splitlines()[1:]:
                    parts = line.split(";")
                    if len(parts) >= 3 and parts[2] == rtd:
                        try:
                            if float(parts[0]) >= since_ms:
                                out.append(float(parts[1]))
                        except ValueError:
                            pass
        return out


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def hold(n: int, args: argparse.Namespace, workdir: Path) -> dict:
    """N devices at the keepalive interval for (misses + 1) intervals after the ramp."""
    interval = args.interval
    ramp = args.ramp if args.ramp is not None else interval
    rate = n / ramp
    srv = Server("platform", args.server_core, interval, args.misses, workdir / f"hold{n}")
    fleet = None
    try:
        fleet = SippFleet(srv.port, n, 0, args.sipp_procs, rate, int(interval * 1000),
                          args.sipp_core, workdir / f"hold{n}")
        t0 = time.monotonic()
        registered_at = None
        deadline = t0 + ramp + args.settle
        while time.monotonic() < deadline:  # ramp: wait until all registered (bounded)
            time.sleep(1)
            s = srv.snapshot()
            if s.get("events", {}).get("registered", 0) >= n:
                registered_at = time.monotonic() - t0
                break
        # Steady state: one interval after the last registration every device is keeping alive.
        time.sleep(max(0.0, ramp + interval - (time.monotonic() - t0)))
        a, ca, sa = srv.snapshot(), cpu_seconds(srv.proc.pid), fleet.cpu()
        wa = run_wait_seconds(srv.proc.pid)
        ta = time.monotonic()
        measure_from_ms = (ta - t0) * 1000
        end = t0 + ramp + (args.misses + 1) * interval
        while time.monotonic() < end and fleet.alive():
            time.sleep(1)
        b, cb, sb = srv.snapshot(), cpu_seconds(srv.proc.pid), fleet.cpu()
        wb, wall_total = run_wait_seconds(srv.proc.pid), time.monotonic() - t0
        tb = time.monotonic()
        alive = fleet.alive()
    finally:
        if fleet:
            fleet.stop()
        srv.stop()
    dt = max(tb - ta, 1e-9)
    ev = b.get("events", {})
    sipp_stats = fleet.stats()
    ka = fleet.response_times("ka", measure_from_ms)
    reg = fleet.response_times("reg")
    registered = ev.get("registered", 0)
    wrongly_offline = ev.get("offline", 0) + ev.get("expired", 0)
    reg_failures = (n - registered) + ev.get("auth_failed", 0)
    msgs = b["received"] - a["received"]
    cpu = (cb - ca) / dt
    res = {
        "devices": n, "interval_s": interval, "ramp_s": ramp,
        "registered": registered, "registered_after_s": registered_at and round(registered_at, 1),
        "online_at_end": b.get("online"), "wrongly_offline": wrongly_offline,
        "registration_failures": reg_failures,
        "sipp_failed_calls": sipp_stats["FailedCall(C)"],
        "sipp_retransmissions": sipp_stats["Retransmissions(C)"],
        "sipp_alive_to_the_end": alive,
        "measured_s": round(dt, 1), "msgs_per_s": round(msgs / dt, 1),
        "expected_msgs_per_s": round(n / interval, 1),
        "platform_cpu": round(cpu, 3),
        # Runnable but waiting for its core (the machine's other load), as a fraction of the
        # measured window, and over the whole run including the registration ramp.
        "platform_cpu_wait": round((wb - wa) / dt, 3),
        "platform_cpu_wait_whole_run": round(wb / max(wall_total, 1e-9), 3),
        "msgs_per_cpu_s": round(msgs / max(cb - ca, 1e-9), 1),
        "p50_ms": pct(ka, 0.50), "p99_ms": pct(ka, 0.99), "max_ms": max(ka) if ka else None,
        "responses_timed": len(ka),
        "register_p99_ms": pct(reg, 0.99),
        "sipp_cpu": [round((y - x) / dt, 3) for x, y in zip(sa, sb, strict=False)],
        "parse_errors": b.get("errors", 0),
    }
    res["held"] = bool(
        registered == n and b.get("online") == n and wrongly_offline == 0
        and res["sipp_failed_calls"] == 0 and alive
    )
    return res


def burst(kind: str, args: argparse.Namespace, workdir: Path) -> dict:
    """Closed-loop keepalives from ``args.burst_devices`` devices: the maximum rate."""
    srv = Server(kind, args.server_core, 3600.0, 3, workdir / f"burst-{kind}")
    fleet = None
    n = args.burst_devices
    try:
        fleet = SippFleet(srv.port, n, 5_000_000, args.sipp_procs, n, 0, args.sipp_core,
                          workdir / f"burst-{kind}")
        t0 = time.monotonic()
        time.sleep(args.burst_warmup)
        a, ca, sa = srv.snapshot(), cpu_seconds(srv.proc.pid), fleet.cpu()
        wa = run_wait_seconds(srv.proc.pid)
        ta = time.monotonic()
        time.sleep(args.burst_seconds)
        b, cb, sb = srv.snapshot(), cpu_seconds(srv.proc.pid), fleet.cpu()
        wb = run_wait_seconds(srv.proc.pid)
        tb = time.monotonic()
    finally:
        if fleet:
            fleet.stop()
        srv.stop()
    # Server snapshots are once a second: use their own timestamps for the rate.
    dts = max(b.get("t", tb) - a.get("t", ta), 1e-9)
    msgs = b["received"] - a["received"]
    dt = tb - ta
    ka = fleet.response_times("ka", (ta - t0) * 1000)
    st = fleet.stats()
    sipp_cpu = [round((y - x) / dt, 3) for x, y in zip(sa, sb, strict=False)]
    return {
        "server": kind, "devices": n, "measured_s": round(dts, 1),
        "msgs_per_s": round(msgs / dts, 1), "server_cpu": round((cb - ca) / dt, 3),
        "server_cpu_wait": round((wb - wa) / dt, 3),
        "msgs_per_cpu_s": round(msgs / max(cb - ca, 1e-9), 1),
        "p50_ms": pct(ka, 0.5), "p99_ms": pct(ka, 0.99),
        "sipp_cpu": sipp_cpu, "sipp_saturated": any(c > 0.9 for c in sipp_cpu),
        "sipp_failed_calls": st["FailedCall(C)"], "sipp_retransmissions": st["Retransmissions(C)"],
    }


def summarize(out: dict) -> None:
    """The headline fields. ``wrongly_offline`` is the count at ``devices_held`` (must be 0);
    a level that did not hold is summarised in ``first_miss``: its offline events include
    devices whose sipp call had already failed, so they are reported, not called wrong."""
    held = [r for r in out["hold"] if r["held"]]
    best = max(held, key=lambda r: r["devices"]) if held else None
    out["devices_held"] = best["devices"] if best else 0
    out["wrongly_offline"] = best["wrongly_offline"] if best else None
    missed = [r for r in out["hold"] if not r["held"]]
    out["first_miss"] = {k: missed[0][k] for k in (
        "devices", "registered", "online_at_end", "wrongly_offline", "sipp_failed_calls",
        "sipp_retransmissions", "platform_cpu", "p99_ms", "register_p99_ms")} if missed else None
    out["msgs_per_s"] = out["burst"]["msgs_per_s"] if "burst" in out else (
        best["msgs_per_s"] if best else 0)
    out["msgs_per_s_at_devices_held"] = best["msgs_per_s"] if best else 0
    out["platform_cpu_at_devices_held"] = best["platform_cpu"] if best else None
    out["p99_ms_at_devices_held"] = best["p99_ms"] if best else None
    if "burst" in out:
        out["msgs_per_cpu_s"] = out["burst"]["msgs_per_cpu_s"]
        out["baseline_msgs_per_cpu_s"] = out["baseline"]["msgs_per_cpu_s"]
        out["ratio"] = round(out["burst"]["msgs_per_cpu_s"]
                             / max(out["baseline"]["msgs_per_cpu_s"], 1e-9), 3)
        out["ratio_rate"] = round(out["burst"]["msgs_per_s"]
                                  / max(out["baseline"]["msgs_per_s"], 1e-9), 3)


def ps_cost(quick: bool) -> dict | None:
    path = ROOT / "bench" / "gb28181_ps.py"
    if not path.exists():
        return None
    import importlib.util

    spec = importlib.util.spec_from_file_location("gb28181_ps", path)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
        try:
            return mod.measure(quick=quick)
        except TypeError:
            return mod.measure()
    except Exception as e:  # noqa: BLE001  another helper's module: report, do not fail
        return {"error": f"{type(e).__name__}: {e}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    sv = sub.add_parser("serve")
    sv.add_argument("--kind", choices=("platform", "trivial"), default="platform")
    sv.add_argument("--interval", type=float, default=60.0)
    sv.add_argument("--misses", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small and short: a smoke run")
    ap.add_argument("--levels", default=None, help="device counts, e.g. 5000,10000,20000")
    ap.add_argument("--interval", type=float, default=None, help="keepalive interval, s")
    ap.add_argument("--misses", type=int, default=3)
    ap.add_argument("--ramp", type=float, default=None, help="registration ramp, s (= interval)")
    ap.add_argument("--settle", type=float, default=30.0)
    ap.add_argument("--sipp-procs", type=int, default=4)
    ap.add_argument("--server-core", type=int, default=0)
    ap.add_argument("--sipp-core", type=int, default=1)
    ap.add_argument("--burst-devices", type=int, default=100)
    ap.add_argument("--burst-seconds", type=float, default=None)
    ap.add_argument("--burst-warmup", type=float, default=None)
    ap.add_argument("--no-burst", action="store_true")
    ap.add_argument("--keep-going", action="store_true", help="run all levels even after a miss")
    ap.add_argument("--out", default=None, help="default bench/results/gb28181.json "
                    "(gb28181_quick.json with --quick, so a smoke run keeps the real results)")
    args = ap.parse_args()
    if args.cmd == "serve":
        serve(args)
        return
    # Stop cleanly (sipp and the server are children) on SIGTERM, and on SIGINT even when
    # started in the background, where the shell ignores SIGINT for us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if shutil.which("sipp") is None:
        sys.exit("sipp is needed (Debian: apt-get install sip-tester)")
    if args.out is None:
        name = "gb28181_quick.json" if args.quick else "gb28181.json"
        args.out = str(ROOT / "bench" / "results" / name)
    if args.interval is None:
        args.interval = 2.0 if args.quick else 60.0
    if args.levels is None:
        args.levels = "500,1000" if args.quick else "5000,10000,20000,40000,80000"
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    args.burst_seconds = args.burst_seconds or (4.0 if args.quick else 20.0)
    args.burst_warmup = args.burst_warmup or (2.0 if args.quick else 5.0)
    if args.quick:
        args.settle = min(args.settle, 10.0)
    out: dict = {"command": " ".join(["bench/gb28181.py"] + sys.argv[1:]),
                 "quick": args.quick, "keepalive_interval_s": args.interval,
                 "keepalive_misses": args.misses, "sipp_processes": args.sipp_procs,
                 "cores": os.cpu_count(), "python": pyplatform.python_version(),
                 "sipp": _sipp_version(), "hold": []}
    with tempfile.TemporaryDirectory(prefix="gb28181-bench-") as tmp:
        work = Path(tmp)
        for n in levels:
            r = hold(n, args, work)
            out["hold"].append(r)
            print(json.dumps(r), flush=True)
            if not r["held"] and not args.keep_going:
                break
        if not args.no_burst:
            out["burst"] = burst("platform", args, work)
            print(json.dumps(out["burst"]), flush=True)
            out["baseline"] = burst("trivial", args, work)
            print(json.dumps(out["baseline"]), flush=True)
    summarize(out)
    out["ps_packing"] = ps_cost(args.quick)
    print(json.dumps({k: v for k, v in out.items() if k not in ("hold", "burst", "baseline")},
                     indent=2))
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")


def _sipp_version() -> str:
    try:
        r = subprocess.run(["sipp", "-v"], capture_output=True, text=True, timeout=5)
        return next((ln.strip() for ln in (r.stdout + r.stderr).splitlines() if "SIPp" in ln), "")
    except (OSError, subprocess.TimeoutExpired):
        return ""


if __name__ == "__main__":
    main()
