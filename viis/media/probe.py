"""The "test connection" of a camera being added or edited: what its stream is, before it is saved.

The probe uses the project's own RTSP client (:mod:`viis.media.rtsp`): DESCRIBE, SETUP, PLAY,
then the first keyframe, whose sequence parameter set gives the codec and picture size; the
frame rate comes from the SPS timing (VUI) or, when the camera leaves it out, from the RTP
timestamps of the frames that follow. The whole probe is bounded in time and the session is
torn down at once: a probe is not a second recorder (invariant 6 keeps the recorder the only
long-lived client of a camera).

The URL is hostile input (an operator types it, the server connects to it): only ``rtsp://``
and ``rtsps://`` with a host are accepted, no credentials inside the URL (they go in their
own fields so they never reach a log), no link-local, multicast or unspecified addresses
(cloud metadata services live at 169.254.169.254), no control characters, bounded length.
The password is never echoed, logged or put in an error message (the RTSP client masks it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from viis.core.errors import ValidationFailed
from viis.core.logging import get_logger
from viis.media.h26x import BitstreamError, nal_type, parse_sps
from viis.media.rtsp import (
    RtspAuthError,
    RtspConnectError,
    RtspError,
    RtspSession,
    RtspTimeout,
    mask_url,
)

log = get_logger(__name__)

MAX_URL = 2000
MAX_SECRET = 200
DEFAULT_TIMEOUT_S = 8.0
FPS_FRAMES = 12  # frames after the keyframe used to measure the rate when the SPS has none
_PROBES = threading.BoundedSemaphore(4)  # concurrent probes per process; more are refused


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    codec: str | None = None  # "h264", "h265", ...
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    audio: str | None = None
    browser_playable: bool | None = None
    error: str | None = None  # what went wrong, in words the operator can act on
    step: str | None = None  # connect, auth, describe, keyframe

    def as_dict(self) -> dict:
        return asdict(self)


def check_url(url: object) -> str:
    """The URL if a probe may connect to it, else :class:`ValidationFailed` saying why."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationFailed("url is empty: give the camera's rtsp:// URL", field="url")
    url = url.strip()
    if len(url) > MAX_URL:
        raise ValidationFailed(f"url is {len(url)} characters; the limit is {MAX_URL}", field="url")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValidationFailed("url contains control characters", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ValidationFailed(f"url is not a valid URL ({e})", field="url") from None
    if parts.scheme.lower() not in ("rtsp", "rtsps"):
        raise ValidationFailed(f"url must start with rtsp:// (got {parts.scheme or 'no scheme'}://)",
                               field="url")
    if parts.scheme.lower() == "rtsps":
        raise ValidationFailed("rtsps:// cannot be probed yet; probe the rtsp:// URL", field="url")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValidationFailed("put the user name and password in their own fields, not in the URL",
                               field="url")
    host = parts.hostname
    if not host:
        raise ValidationFailed("url has no host", field="url")
    if port == 0:
        raise ValidationFailed("url port 0 is not a port", field="url")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and (ip.is_link_local or ip.is_multicast or ip.is_unspecified
                           or ip.is_reserved):
        raise ValidationFailed(f"url host {host} is a link-local, multicast or reserved address; "
                               "a camera is not there", field="url")
    return url


def _secret(value: object, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_SECRET or any(ord(c) < 0x20 for c in value):
        raise ValidationFailed(f"{name} must be text of at most {MAX_SECRET} printable characters",
                               field=name)
    return value


def _video_info(codec: str, nals: list[bytes]):
    sps_type = {"h264": 7, "h265": 33}.get(codec)
    for n in nals:
        if sps_type is not None and n and nal_type(codec, n) == sps_type:
            return parse_sps(codec, n)
    return None


async def _probe(url: str, username: str | None, password: str | None, timeout: float) -> ProbeResult:
    step = "connect"
    session = RtspSession(url, username=username, password=password, timeout=timeout,
                          stall_timeout=timeout, media=("video", "audio"), queue_size=64)
    try:
        step = "describe"
        await session.start()
        video = next((st for st in session.streams if st.media.kind == "video"), None)
        audio = next((st.media.codec for st in session.streams if st.media.kind == "audio"), None)
        if video is None:
            return ProbeResult(False, audio=audio, step=step,
                               error="the camera offers no video stream VIIS can record")
        codec = video.media.codec
        step = "keyframe"
        info, first_ts, stamps = None, None, []
        async for unit in session:
            if unit.stream != video.index:
                continue
            if first_ts is None:
                if not unit.key:
                    continue
                nals = list(unit.data) + list(video.media.parameter_sets)
                info = _video_info(codec, nals)
                first_ts = unit.ts
                if info is not None and info.fps:
                    break
            stamps.append(unit.ts)
            if len(stamps) > FPS_FRAMES:
                break
        fps = info.fps if info is not None and info.fps else None
        if fps is None and len(stamps) >= 3:
            span = (stamps[-1] - stamps[0]) / video.clock_rate
            fps = (len(stamps) - 1) / span if span > 0 else None
        return ProbeResult(True, codec=codec,
                           width=info.width if info else None, height=info.height if info else None,
                           fps=round(fps, 2) if fps else None, audio=audio,
                           browser_playable=codec == "h264")
    except RtspAuthError:
        return ProbeResult(False, step="auth",
                           error="the camera refused the user name or password")
    except (RtspTimeout, TimeoutError):
        return ProbeResult(False, step=step,
                           error=f"no answer from the camera within {timeout:g} s ({step})")
    except (RtspConnectError, ConnectionRefusedError) as e:
        return ProbeResult(False, step="connect", error=f"cannot connect: {str(e)[:200]}")
    except (RtspError, OSError) as e:
        # RtspError messages mask credentials; OSError names only the address
        return ProbeResult(False, step=step, error=f"{type(e).__name__}: {str(e)[:200]}")
    except BitstreamError as e:
        return ProbeResult(False, step=step, error=f"unreadable parameter set: {str(e)[:200]}")
    finally:
        await session.close()


def probe(url: object, username: object = None, password: object = None, *,
          timeout: float = DEFAULT_TIMEOUT_S) -> ProbeResult:
    """Probe a camera stream (blocking, at most about ``timeout`` seconds overall)."""
    url = check_url(url)
    user = _secret(username, "username")
    pw = _secret(password, "password")
    if not _PROBES.acquire(blocking=False):
        raise ValidationFailed("too many connection tests at once; try again in a few seconds",
                               field="url")
    try:
        log.info("camera_probe", url=mask_url(url), with_credentials=bool(user or pw))
        try:
            return asyncio.run(asyncio.wait_for(_probe(url, user, pw, timeout), timeout * 2))
        except TimeoutError:
            return ProbeResult(False, step="keyframe",
                               error=f"no keyframe from the camera within {timeout * 2:g} s")
    finally:
        _PROBES.release()
