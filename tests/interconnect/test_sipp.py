"""The real peer: sipp (Debian sip-tester) acting as a GB/T 28181 device against Platform."""

import asyncio
import shutil
import socket
from pathlib import Path

import pytest

from viis.interconnect.gb28181.platform import Platform, PlatformConfig

SIPP = shutil.which("sipp")
SCEN = Path(__file__).parent / "scenarios"
DEV = "34020000001320000001"
SERVER = "34020000002000000001"

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp not installed (apt-get install sip-tester)")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _sipp(scenario: str, port: int, password: str, cwd: Path, transport="u1") -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        SIPP, f"127.0.0.1:{port}", "-sf", str(SCEN / scenario), "-m", "1", "-l", "1",
        "-t", transport, "-i", "127.0.0.1", "-p", str(_free_udp_port()),
        "-s", DEV, "-au", DEV, "-ap", password,
        "-set", "domain", SERVER[:10], "-set", "server", SERVER,
        "-timeout", "15", "-timeout_error", "-nostdin", "-trace_err",
        cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    errs = "".join(p.read_text(errors="replace") for p in cwd.glob("*_errors.log"))
    return proc.returncode, out.decode(errors="replace")[-2000:] + errs[-2000:]


async def _with_platform(fn, **cfg):
    config = PlatformConfig(host="127.0.0.1", port=0, password="secret",
                            keepalive_interval=0.3, keepalive_misses=3, **cfg)
    events = []
    p = Platform(config, on_event=lambda ev, peer: events.append(ev))
    await p.start()
    try:
        return await fn(p, p.addresses["UDP"][1], events)
    finally:
        await p.stop()


def test_sipp_device_registers_with_digest_keeps_alive_then_goes_offline(tmp_path):
    async def run(p, port, events):
        rc, out = await _sipp("gb_device_register.xml", port, "secret", tmp_path)
        assert rc == 0, out
        peer = p.peers[DEV]
        assert peer.registered and peer.online and peer.keepalives == 3
        assert peer.address[0] == "127.0.0.1" and not peer.warnings, peer.warnings
        await asyncio.sleep(1.5)  # > 3 missed keepalives at 0.3 s
        assert not peer.online and "no keepalive" in peer.cause
        return events

    events = asyncio.run(_with_platform(run))
    assert events == ["registered", "offline"]


def test_sipp_device_over_tcp(tmp_path):
    async def run(p, port, events):
        rc, out = await _sipp("gb_device_register.xml", port, "secret", tmp_path, "t1")
        assert rc == 0, out
        assert p.peers[DEV].transport == "TCP" and p.peers[DEV].keepalives == 3

    asyncio.run(_with_platform(run))


def test_sipp_wrong_password_fails_cleanly(tmp_path):
    async def run(p, port, events):
        rc, out = await _sipp("gb_device_wrong_password.xml", port, "not-the-password", tmp_path)
        assert rc == 0, out  # the scenario expects 401 then 403
        d = p.diagnose(DEV)
        assert not d["registered"] and "wrong password" in d["cause"]
        assert d["last_error"].startswith("403")

    asyncio.run(_with_platform(run))
