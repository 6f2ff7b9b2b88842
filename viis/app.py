"""The application context: settings, database, rule packs, clock and services, built once
per process and handed to the CLI, the web app and the recorder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from viis.compliance.rulepack import RuleBook
from viis.core.clock import Clock, SystemClock
from viis.core.config import Settings
from viis.core.db import Database
from viis.registry.service import CameraInput, CameraService


@dataclass
class App:
    settings: Settings
    db: Database
    rules: RuleBook
    clock: Clock = field(default_factory=SystemClock)
    # The running GB/T 28181 platform service (viis.interconnect.gb28181.service), set by
    # `viis run` when [gb28181] is enabled; the GB recorder source INVITEs devices through it.
    gb28181: Any = None

    @classmethod
    def open(cls, settings: Settings, clock: Clock | None = None, migrate: bool = True) -> App:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.segments_path.mkdir(parents=True, exist_ok=True)
        db = Database(settings.db_url)
        if migrate:
            db.migrate()
        return cls(settings, db, RuleBook.load(settings.rulepack_dir), clock or SystemClock())

    @property
    def cameras(self) -> CameraService:
        return CameraService(self.rules, self.clock)

    def seed_cameras(self) -> int:
        """Add the cameras declared in the config file that the registry lacks."""
        added = 0
        with self.db.session() as s:
            have = {c.name for c in self.cameras.list(s)}
            for seed in self.settings.cameras:
                if seed.name in have:
                    continue
                self.cameras.add(s, CameraInput(
                    name=seed.name, main_url=seed.main_url, sub_url=seed.sub_url,
                    username=seed.username,
                    password=seed.password.get_secret_value() if seed.password else None,
                    site=seed.site, location_type=seed.location_type,
                    security_level=seed.security_level, retention_days=seed.retention_days,
                    priority=seed.priority))
                added += 1
        return added

    def close(self) -> None:
        self.db.dispose()
