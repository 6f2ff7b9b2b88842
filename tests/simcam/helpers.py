"""Helpers for the simulated camera tests: a background RTSP reader and
picture measures computed from decoded pixels."""

from __future__ import annotations

import threading
import time

import av
import numpy as np

from viis.simcam.timecode import decode_timecode, resolve_capture_ms


class Receiver:
    """Reads an RTSP stream with PyAV (TCP) in a thread, keeping every
    decoded frame as (receipt wall time ms, pts, luma array)."""

    def __init__(self, url: str, *, keep_pixels: bool = True, read_timeout: float = 10.0) -> None:
        self.url = url
        self.keep_pixels = keep_pixels
        self.frames: list[tuple[float, int, np.ndarray | None]] = []
        self.packets: list[float] = []  # receipt times (ms) of video packets
        self.error: BaseException | None = None
        self.ended_at: float | None = None
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._lock = threading.Lock()
        self._read_timeout = read_timeout
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._opened.wait(15):
            raise TimeoutError(f"could not open {url}")
        if self.error is not None and not self.frames:
            raise self.error

    def _run(self) -> None:
        container = None
        try:
            container = av.open(
                self.url,
                options={"rtsp_transport": "tcp", "analyzeduration": "0", "probesize": "32768"},
                timeout=(10.0, self._read_timeout),
            )
            self._opened.set()
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                now = time.time() * 1000.0
                if packet.size == 0 and packet.pts is None:
                    continue
                with self._lock:
                    self.packets.append(now)
                for frame in packet.decode():
                    gray = frame.to_ndarray(format="gray") if self.keep_pixels else None
                    with self._lock:
                        self.frames.append((time.time() * 1000.0, frame.pts, gray))
                if self._stop.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc
        finally:
            self.ended_at = time.time() * 1000.0
            self._opened.set()
            if container is not None:
                try:
                    container.close()
                except Exception:  # noqa: BLE001
                    pass

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def wait_frames(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.frames) >= count:
                    return
            if not self.alive:
                break
            time.sleep(0.02)
        raise AssertionError(f"only {len(self.frames)} frames from {self.url} ({self.error!r})")

    def frames_since(self, t_ms: float) -> list[tuple[float, int, np.ndarray | None]]:
        with self._lock:
            return [f for f in self.frames if f[0] >= t_ms]

    def collect(
        self, seconds: float, count_min: int = 1
    ) -> list[tuple[float, int, np.ndarray | None]]:
        """Frames received during the next ``seconds``."""
        t0 = time.time() * 1000.0
        time.sleep(seconds)
        frames = self.frames_since(t0)
        assert len(frames) >= count_min, f"{len(frames)} frames in {seconds} s ({self.error!r})"
        return frames

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._read_timeout + 2)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def capture_error_ms(frames, cycle_ms: int) -> list[float]:
    """Per frame: capture time decoded from the pixels minus receipt time."""
    out = []
    for t, _, gray in frames:
        code = decode_timecode(gray)
        if code is not None:
            out.append(resolve_capture_ms(code, t, cycle_ms) - t)
    return out


def scene(gray: np.ndarray, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return gray[y0:y1, x0:x1].astype(np.float64)


def laplacian_variance(img: np.ndarray) -> float:
    lap = -4 * img[1:-1, 1:-1] + img[:-2, 1:-1] + img[2:, 1:-1] + img[1:-1, :-2] + img[1:-1, 2:]
    return float(lap.var())


def phase_shift(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """Translation (dy, dx) that moves picture ``a`` onto ``b`` (phase correlation)."""
    win = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    fa = np.fft.fft2((a - a.mean()) * win)
    fb = np.fft.fft2((b - b.mean()) * win)
    cross = fb * np.conj(fa)
    cross /= np.abs(cross) + 1e-9
    corr = np.abs(np.fft.ifft2(cross))
    dy, dx = np.unravel_index(int(np.argmax(corr)), corr.shape)
    if dy > a.shape[0] // 2:
        dy -= a.shape[0]
    if dx > a.shape[1] // 2:
        dx -= a.shape[1]
    return int(dy), int(dx)
