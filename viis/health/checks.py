"""The periodic health checks of ``viis run`` that no keyframe triggers: signal loss (a camera
sent nothing for ``health.signal_loss_s``, Q19.3) every diagnosis interval, and storage quality
(Q19.6) every ``health.storage_check_s``. One daemon thread; each check takes the time from
the application clock, so tests call :meth:`PeriodicChecks.run_once` with a driven clock."""

from __future__ import annotations

import threading

from viis.core.logging import get_logger
from viis.health.quality import check_storage_quality

log = get_logger(__name__)


class PeriodicChecks:
    def __init__(self, app, monitor) -> None:
        self.app = app
        self.monitor = monitor
        h = app.settings.health
        self.signal_every_ms = int(h.interval_s * 1000)
        self.storage_every_ms = int(h.storage_check_s * 1000)
        self._next_storage_ms: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, now_ms: int | None = None) -> None:
        now_ms = self.app.clock.wall_ms() if now_ms is None else now_ms
        h = self.app.settings.health
        try:
            self.monitor.check_signal(now_ms)
        except Exception:
            log.exception("signal_check_failed")
        if self._next_storage_ms is None:  # let the first segments close before judging
            self._next_storage_ms = now_ms + self.storage_every_ms
        if now_ms >= self._next_storage_ms:
            self._next_storage_ms = now_ms + self.storage_every_ms
            try:
                check_storage_quality(self.app, now_ms, window_s=h.storage_window_s,
                                      min_bitrate_bps=h.storage_min_bitrate_bps)
            except Exception:
                log.exception("storage_quality_check_failed")

    def start(self) -> PeriodicChecks:
        def loop():
            while not self._stop.wait(self.signal_every_ms / 1000):
                self.run_once()
        self._thread = threading.Thread(target=loop, name="viis-health-checks", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
