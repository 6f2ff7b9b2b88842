"""The one typed settings object of VIIS.

Settings come from, in rising priority: defaults here, a TOML file (``viis.toml`` in the
working directory, or the path in ``VIIS_CONFIG``), and environment variables named
``VIIS_<SECTION>__<KEY>`` (for example ``VIIS_HTTP__PORT=9000``; top-level keys are
``VIIS_<KEY>``). This module is the only place that reads the environment.

A bad file or value raises :class:`ConfigError` naming the file, the key and what is wrong,
and nothing is started.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from viis.core.errors import ConfigError

ENV_PREFIX = "VIIS_"
REPO_ROOT = Path(__file__).resolve().parents[2]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # Bearer token of the local administrator; generated into <data_dir>/api-token (mode
    # 0600) at first start when not set. The web console issue replaces it with logins.
    api_token: SecretStr | None = None
    max_body_bytes: int = Field(1_000_000, ge=1024)


class StorageSettings(_Section):
    """Segment store. Sizes in bytes, times in seconds."""

    segment_dir: Path | None = None  # default: <data_dir>/segments
    segment_seconds: float = Field(60.0, ge=2.0, le=3600.0)
    fragment_ms: int = Field(1000, ge=100, le=10000)
    fsync_seconds: float = Field(2.0, ge=0.0, le=60.0)
    # Below this free space the store is "full": recording of the lowest-priority streams
    # stops, a critical fault is raised, nothing in retention is deleted (invariant 1).
    min_free_bytes: int = Field(512 * 1024 * 1024, ge=0)
    # Warn when the forecast says retention can be kept for fewer days than this margin.
    forecast_warn_days: float = Field(7.0, ge=0.0)
    check_seconds: float = Field(5.0, gt=0, le=3600.0)  # free-space check interval


class RecorderSettings(_Section):
    reconnect_min_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    stall_timeout_s: float = Field(10.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)


class RetentionSettings(_Section):
    sweep_interval_s: float = Field(300.0, gt=0)


class AuditSettings(_Section):
    # `viis run` signs an audit checkpoint (committing every camera's chain head) when the
    # newest is older than this; entries after it are the unsigned tail (docs/design/integrity.md)
    checkpoint_interval_s: float = Field(300.0, ge=10.0, le=86_400.0)


class HealthSettings(_Section):
    """Video quality diagnosis (Q19.3): one keyframe per camera per interval, and a fault
    only when N of the last M samples are bad for at least ``persist_s``."""

    enabled: bool = True
    interval_s: float = Field(10.0, ge=1.0, le=3600.0)
    persist_n: int = Field(4, ge=1, le=100)
    persist_m: int = Field(6, ge=1, le=100)
    persist_s: float = Field(30.0, ge=0.0)
    clear_n: int = Field(3, ge=1, le=100)
    # fault tickets (Q19.3): closed only after the fault stayed away this long
    ticket_hold_s: float = Field(600.0, ge=0.0)
    ticket_sweep_s: float = Field(60.0, gt=0)
    # no keyframe from a camera for this long is a signal loss (default: 3 intervals, >= 30 s)
    signal_loss_s: float | None = Field(None, gt=0)
    # storage quality (Q19.6) of what was recorded, checked this often over this window;
    # width/height/fps minimums come from the rule packs, the bit rate minimum (no pack sets
    # one) from here (0 = not checked)
    storage_check_s: float = Field(300.0, gt=0)
    storage_window_s: float = Field(3600.0, gt=0)
    storage_min_bitrate_bps: int = Field(256_000, ge=0)
    # camera clock offsets are stored per camera at most this often (Q19.3, invariant 5)
    clock_record_s: float = Field(60.0, gt=0)


class NotifySettings(_Section):
    """Where fault ticket events go (Q19.3 "notify maintenance"): an MQTT broker
    (``mqtt://host:port``, topic ``<mqtt_topic>/<camera uid or "system">``) and webhooks
    (JSON POST). Delivery runs in worker threads, never in the caller."""

    mqtt_url: str | None = None
    mqtt_topic: str = "viis/faults"
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    webhooks: list[str] = []
    webhook_timeout_s: float = Field(5.0, gt=0, le=120.0)
    webhook_retries: int = Field(5, ge=0, le=50)
    webhook_backoff_s: float = Field(1.0, gt=0, le=600.0)  # doubled after each failure
    smtp_host: str | None = None  # e-mail through this SMTP server (none: no e-mail)
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_from: str | None = None
    smtp_to: list[str] = []
    smtp_starttls: bool = True  # upgrade with STARTTLS (certificate verified) before AUTH
    smtp_username: str | None = None  # AUTH only when set
    smtp_password: SecretStr | None = None  # never logged nor shown
    smtp_timeout_s: float = Field(15.0, gt=0, le=300.0)


class SimcamSettings(_Section):
    """Simulated cameras; started by ``viis run`` when no camera is configured."""

    enabled: bool | None = None  # None = only when the registry has no camera
    count: int = Field(4, ge=1, le=256)
    rtsp_port: int = Field(8554, ge=0, le=65535)
    control_port: int = Field(8555, ge=0, le=65535)
    width: int = Field(1280, ge=64, le=3840)
    height: int = Field(720, ge=64, le=2160)
    fps: int = Field(25, ge=1, le=60)
    bitrate: int = Field(2_000_000, ge=50_000)
    gop_s: float = Field(2.0, gt=0)
    # Also serve /cam<i>/sub (half the width, a quarter of the bitrate) and register it as
    # each camera's sub_url: the stream a live wall of many tiles uses (Q2.1, Q19.1).
    sub_stream: bool = False


class CameraSeed(_Section):
    """A camera declared in the config file; added to the registry at start if absent."""

    name: str
    main_url: str
    sub_url: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    site: str = ""
    location_type: str = "public_area"
    security_level: int = 1
    retention_days: int = 30
    priority: int = 50


class PrivacySettings(_Section):
    """Privacy masks (Q9.2). Lifting masks for an export is a permission that is off unless
    the installation turns it on; even then each lift needs a second user's approval."""

    mask_lifting: bool = False
    max_lift_minutes: int = Field(240, ge=1, le=7 * 24 * 60)


class Gb28181Settings(_Section):
    """GB/T 28181 platform role (accept devices and lower platforms from below; Q13.2,
    Q12.1, N12.1). Off unless turned on; ``viis run`` then listens for SIP on host:port."""

    enabled: bool = False
    host: str = "0.0.0.0"
    port: int = Field(5060, ge=0, le=65535)
    server_id: str = Field("34020000002000000001", pattern=r"^[0-9]{20}$")
    domain: str | None = Field(None, pattern=r"^[0-9A-Za-z.\-]{1,64}$")  # default: server_id[:10]
    password: SecretStr | None = None  # the devices' SIP password; never logged nor shown
    keepalive_s: float = Field(60.0, gt=0, le=3600.0)
    keepalive_misses: int = Field(3, ge=1, le=100)
    min_expires_s: int = Field(60, ge=1, le=86_400)
    transports: list[str] = ["udp", "tcp"]
    catalog_interval_s: float = Field(3600.0, gt=0)  # periodic Catalog query per device
    # Catalog SUBSCRIBE to each device (channel status changes as NOTIFYs), renewed before
    # it runs out; 0 = do not subscribe
    catalog_subscribe_s: int = Field(3600, ge=0, le=86_400)
    query_timeout_s: float = Field(10.0, gt=0, le=300.0)  # split responses: partial after this
    # device alarms (Notify Alarm) as health faults: a repeat within alarm_repeat_s is only
    # counted; a fault an alarm opened clears after alarm_clear_s without a repeat (GB/T
    # 28181-2016 has no "alarm ended"); 0 = never cleared automatically
    alarm_repeat_s: float = Field(60.0, ge=0, le=86_400.0)
    alarm_clear_s: float = Field(600.0, ge=0, le=30 * 86_400.0)
    # a device's own SIP password, where it differs from ``password`` (device id -> secret)
    device_passwords: dict[str, SecretStr] = {}
    # security level of cameras created from a device's catalog (Q13.1); raise it per camera
    channel_security_level: int = Field(1, ge=1, le=5)
    # Lower-platform role (cascade up, Q13.1): the upper platforms and what each sees are
    # kept in the database (/api/gb28181/uppers); this says whether viis run talks to them
    # and from which SIP address (a port of its own, beside the platform role's).
    cascade_enabled: bool = False
    cascade_host: str = "0.0.0.0"
    cascade_port: int = Field(5061, ge=0, le=65535)
    cascade_public_host: str | None = None  # the address upper platforms reach us at (NAT)

    @field_validator("transports")
    @classmethod
    def _transports(cls, v: list[str]) -> list[str]:
        v = [t.lower() for t in v]
        if not v or set(v) - {"udp", "tcp"}:
            raise ValueError("must be a non-empty list of 'udp' and 'tcp'")
        return v


class LogSettings(_Section):
    level: str = "INFO"
    json_format: bool = Field(True, alias="json")

    @field_validator("level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.upper()
        if v not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return v


class Settings(_Section):
    data_dir: Path = Path("data")
    database_url: str | None = None  # default: sqlite:///<data_dir>/viis.db
    rulepack_dir: Path = REPO_ROOT / "rulepacks"
    http: HttpSettings = HttpSettings()
    storage: StorageSettings = StorageSettings()
    recorder: RecorderSettings = RecorderSettings()
    retention: RetentionSettings = RetentionSettings()
    audit: AuditSettings = AuditSettings()
    health: HealthSettings = HealthSettings()
    notify: NotifySettings = NotifySettings()
    simcam: SimcamSettings = SimcamSettings()
    privacy: PrivacySettings = PrivacySettings()
    gb28181: Gb28181Settings = Gb28181Settings()
    log: LogSettings = LogSettings()
    cameras: list[CameraSeed] = []

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'viis.db').resolve()}"

    @property
    def segments_path(self) -> Path:
        return (self.storage.segment_dir or self.data_dir / "segments").resolve()


def _set_path(tree: dict[str, Any], keys: list[str], value: str) -> None:
    node = tree
    for k in keys[:-1]:
        child = node.setdefault(k, {})
        if not isinstance(child, dict):
            raise ConfigError(f"environment override {'.'.join(keys)}: {k} is not a section")
        node = child
    node[keys[-1]] = value


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "VIIS_CONFIG":
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX):].split("__") if k]
        if keys:
            _set_path(tree, keys, value)
    return tree


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def load_settings(path: Path | str | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Load settings from ``path`` (or VIIS_CONFIG, or ./viis.toml if present) and the env."""
    env = dict(os.environ if environ is None else environ)
    source = "defaults"
    data: dict[str, Any] = {}
    if path is None:
        path = env.get("VIIS_CONFIG") or ("viis.toml" if Path("viis.toml").exists() else None)
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            raw = p.read_bytes()
        except OSError as e:
            raise ConfigError(f"config file {p}: cannot read it ({e.strerror})") from e
        if len(raw) > 1_000_000:
            raise ConfigError(f"config file {p}: {len(raw)} bytes is too large (limit 1 MB)")
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"config file {p}: not valid UTF-8 TOML: {e}") from e
    data = _merge(data, _env_overrides(env))
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"settings from {source} (and VIIS_* variables) are invalid: {problems}") from e
