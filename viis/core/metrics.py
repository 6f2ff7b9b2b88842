"""Prometheus metrics of the process, served at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

segments_written = Counter(
    "viis_segments_written", "Segments closed and indexed", ["camera"], registry=REGISTRY)
bytes_written = Counter(
    "viis_bytes_written", "Bytes of footage written", ["camera"], registry=REGISTRY)
gaps_recorded = Counter(
    "viis_gaps_recorded", "Gaps recorded, by cause", ["camera", "cause"], registry=REGISTRY)
camera_recording = Gauge(
    "viis_camera_recording", "1 while the camera's stream is being recorded", ["camera"], registry=REGISTRY)
segments_removed = Counter(
    "viis_segments_removed", "Segments removed by the retention sweeper after expiry", registry=REGISTRY)
store_free_bytes = Gauge("viis_store_free_bytes", "Free bytes on the segment store", registry=REGISTRY)
store_forecast_days = Gauge(
    "viis_store_forecast_days", "Days until the store is full at the measured write rate", registry=REGISTRY)
faults_open = Gauge("viis_faults_open", "Open faults, by severity", ["severity"], registry=REGISTRY)
