"""Building blocks for platform-role tests: an App on the test database with the
[gb28181] settings of a test (loopback, port 0, short keepalive), sipp as a device."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

# shared with the cascade tests; re-exported for the platform-role tests
from tests.interconnect.cascade_helpers import free_udp_port  # noqa: F401
from tests.interconnect.cascade_helpers import wait_for as until  # noqa: F401
from viis.app import App
from viis.compliance.rulepack import RuleBook
from viis.core.config import load_settings
from viis.interconnect.gb28181.service import GbPlatformService

SIPP = shutil.which("sipp")
SCEN = Path(__file__).parent / "scenarios"
DEV = "34020000001180000001"
SERVER = "34020000002000000001"
CH1, CH2, GROUP = "34020000001310000001", "34020000001310000002", "34020000002150000001"


def make_app(tmp_path: Path, db, clock, **gb) -> App:
    env = {"VIIS_DATA_DIR": str(tmp_path / "d"), "VIIS_GB28181__ENABLED": "true",
           "VIIS_GB28181__HOST": "127.0.0.1", "VIIS_GB28181__PORT": "0",
           "VIIS_GB28181__PASSWORD": "secret", "VIIS_GB28181__KEEPALIVE_S": "0.3",
           "VIIS_GB28181__QUERY_TIMEOUT_S": "5"}
    env.update({f"VIIS_GB28181__{k.upper()}": str(v) for k, v in gb.items()})
    settings = load_settings(environ=env)
    settings.segments_path.mkdir(parents=True, exist_ok=True)
    return App(settings, db, RuleBook.load(settings.rulepack_dir), clock)


async def sipp(scenario: str, port: int, cwd: Path, *extra: str, password: str = "secret",
               device: str = DEV, transport: str = "u1", timeout: float = 30) -> tuple[int, str]:
    """Run a sipp scenario as a device against 127.0.0.1:port; (exit code, its output)."""
    proc = await asyncio.create_subprocess_exec(
        SIPP, f"127.0.0.1:{port}", "-sf", str(SCEN / scenario), "-m", "1", "-l", "1",
        "-t", transport, "-i", "127.0.0.1", "-p", str(free_udp_port()),
        "-s", device, "-au", device, "-ap", password,
        "-set", "domain", SERVER[:10], "-set", "server", SERVER,
        "-timeout", str(int(timeout) - 5), "-timeout_error", "-nostdin", "-trace_err", *extra,
        cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    errs = "".join(p.read_text(errors="replace") for p in cwd.glob("*_errors.log"))
    return proc.returncode, out.decode(errors="replace")[-2000:] + errs[-3000:]


async def started(app: App, **kw) -> GbPlatformService:
    svc = GbPlatformService(app, flush_interval=0.1, **kw)
    await svc.start()
    return svc
