"""Writing fragmented MP4 segments: :class:`FragmentWriter` (timestamps ->
in-memory fragments, usable for live MSE too) and :class:`SegmentWriter`
(one segment file: ``<final>.tmp``, incremental SHA-256, atomic finalisation).
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .mp4_format import Track, TrackRun, build_fragment, init_segment

_WRAP = 1 << 32
_HALF = 1 << 31


@dataclass(frozen=True)
class TrackStats:
    """Per-track totals of a segment.  Decode times are in the track timescale,
    relative to the segment start (the first sample has decode time 0)."""

    track_id: int
    timescale: int
    samples: int = 0
    keyframes: int = 0
    bytes: int = 0
    first_decode_time: int = 0
    last_decode_time: int = 0  # decode time of the last sample
    end_decode_time: int = 0  # last sample's decode time + duration
    first_timestamp: int | None = None  # input timestamp of the first sample (writer only)

    @property
    def duration_ms(self) -> int:
        return round((self.end_decode_time - self.first_decode_time) * 1000 / self.timescale)


@dataclass(frozen=True)
class SegmentInfo:
    """Result of :meth:`SegmentWriter.close` and :func:`recover_segment`."""

    path: str
    size: int
    sha256: str
    duration_ms: int  # of the clock track (first video track, else first track)
    frames: int  # samples of the clock track
    keyframes: int
    fragments: int
    tracks: dict[int, TrackStats] = field(default_factory=dict)
    recovered: bool = False
    bytes_dropped: int = 0  # recovery: bytes cut from the tail


@dataclass(slots=True)
class _TrackState:
    track: Track
    run: TrackRun
    held: tuple | None = None  # (timestamp, data, sync, cts)
    last_duration: int = 0
    next_dts: int = 0  # decode time of the held sample
    first_ts: int | None = None
    samples: int = 0
    keyframes: int = 0
    bytes: int = 0


class FragmentWriter:
    """Turns timestamped samples into moof+mdat fragments.

    :meth:`add` takes the *decode* timestamp of a sample in the track timescale
    (RTP timestamps may wrap at 2**32; differences are taken modulo 2**32).  The
    sample is held back until the next sample of the same track arrives, whose
    timestamp gives its duration.  A difference that is <= 0 or > ``max_gap``
    seconds (clock jump) is replaced by the previous duration.  Decode times
    start at 0 for every track unless ``start_decode_times`` gives another value
    (e.g. to keep audio that starts 80 ms after the video aligned with it).
    """

    def __init__(
        self,
        tracks: Sequence[Track],
        *,
        max_gap: float = 10.0,
        creation_time: int = 0,
        start_decode_times: Mapping[int, int] | None = None,
    ):
        self.tracks = list(tracks)
        starts = start_decode_times or {}
        self._state = {
            t.track_id: _TrackState(t, TrackRun(t.track_id, 0), next_dts=starts.get(t.track_id, 0))
            for t in self.tracks
        }
        if len(self._state) != len(self.tracks):
            raise ValueError("duplicate track id")
        self._start = {t.track_id: starts.get(t.track_id, 0) for t in self.tracks}
        self._max_gap = {t.track_id: int(max_gap * t.timescale) for t in self.tracks}
        clock = next((t for t in self.tracks if t.is_video), self.tracks[0])
        self.clock_track_id = clock.track_id
        self.sequence = 0
        self.creation_time = creation_time

    def init_segment(self) -> bytes:
        return init_segment(self.tracks, creation_time=self.creation_time)

    def add(self, track_id: int, timestamp: int, data: bytes | Sequence[bytes],
            keyframe: bool = True, cts_offset: int = 0) -> None:  # fmt: skip
        """Queue a sample: ``data`` is raw audio bytes or a list of NAL units."""
        st = self._state[track_id]
        if st.held is not None:
            self._release(st, self._duration(st, timestamp))
        else:
            st.first_ts = timestamp
        st.held = (timestamp, data, keyframe, cts_offset)

    def _duration(self, st: _TrackState, timestamp: int) -> int:
        delta = ((timestamp - st.held[0] + _HALF) % _WRAP) - _HALF
        if 0 < delta <= self._max_gap[st.track.track_id]:
            return delta
        if st.last_duration:
            return st.last_duration
        data = st.held[1]
        size = len(data) if isinstance(data, (bytes, bytearray, memoryview)) else 0
        return st.track.default_duration(size)

    def _release(self, st: _TrackState, duration: int) -> None:
        _, data, sync, cts = st.held
        run = st.run
        if not run.sizes:
            run.base_decode_time = st.next_dts
        run.add(data, duration, sync, cts)
        st.held = None
        st.last_duration = duration
        st.next_dts += duration
        st.samples += 1
        st.keyframes += sync
        st.bytes += run.sizes[-1]

    def ready_duration(self, track_id: int | None = None) -> int:
        """Duration (track ticks) of the samples ready for the next fragment."""
        return self._state[self.clock_track_id if track_id is None else track_id].run.duration

    def fragment(self) -> list[bytes] | None:
        """Cut a fragment from every sample whose duration is known (None if none)."""
        runs = [st.run for st in self._state.values() if st.run.sizes]
        if not runs:
            return None
        self.sequence += 1
        out = build_fragment(self.sequence, runs)
        for st in self._state.values():
            if st.run.sizes:
                st.run = TrackRun(st.track.track_id, st.next_dts)
        return out

    def finish(self, end_timestamps: Mapping[int, int] | None = None) -> list[bytes] | None:
        """Release the held-back samples and cut the last fragment.  The last
        sample of a track lasts until ``end_timestamps[track_id]`` when given
        (e.g. the timestamp of the keyframe that starts the next segment),
        otherwise as long as the sample before it."""
        for tid, st in self._state.items():
            if st.held is not None:
                end = (end_timestamps or {}).get(tid)
                # a zero difference falls back to the previous duration
                self._release(st, self._duration(st, st.held[0] if end is None else end))
        return self.fragment()

    def stats(self) -> dict[int, TrackStats]:
        out = {}
        for tid, st in self._state.items():
            first = self._start[tid]
            last = st.next_dts - st.last_duration if st.samples else first
            out[tid] = TrackStats(tid, st.track.timescale, st.samples, st.keyframes, st.bytes,
                                  first, last, st.next_dts, st.first_ts)  # fmt: skip
        return out


class SegmentWriter:
    """Writes one self-contained fragmented MP4 segment.

    Data goes to ``<path>.tmp``; :meth:`close` fsyncs it, makes it read-only
    (0o444), renames it to ``path`` (refusing to overwrite) and fsyncs the
    directory.  A fragment is written whenever the clock track (first video
    track) has ``fragment_duration`` seconds ready, or on :meth:`flush_fragment`.
    Every byte written is hashed, so :class:`SegmentInfo` carries the file's
    SHA-256 without re-reading it.  ``fsync_fragments=True`` makes each fragment
    durable (fdatasync) before returning, for power-cut safety at the cost of
    one sync per fragment.

    The ``.tmp`` file is created with O_EXCL: a leftover from a crash is never
    overwritten (run :func:`recover_segment` on it first).  ``creation_time``
    is in unix seconds (0 = unknown).  Sample data
    (bytes or NAL unit lists) is kept by reference until its fragment is
    written, so it must not be mutated after :meth:`write_sample`.
    """

    def __init__(self, path: str | os.PathLike, tracks: Sequence[Track], *,
                 fragment_duration: float = 1.0, creation_time: int = 0,
                 max_gap: float = 10.0, fsync_fragments: bool = False,
                 start_decode_times: Mapping[int, int] | None = None):  # fmt: skip
        self.path = os.fspath(path)
        self.tmp_path = self.path + ".tmp"
        self._fw = FragmentWriter(tracks, max_gap=max_gap, creation_time=creation_time,
                                  start_decode_times=start_decode_times)  # fmt: skip
        clock = next(t for t in self._fw.tracks if t.track_id == self._fw.clock_track_id)
        self._fragment_ticks = max(1, int(fragment_duration * clock.timescale))
        self._fsync_fragments = fsync_fragments
        self._sha = hashlib.sha256()
        self._size = 0
        self._fd: int | None = os.open(
            self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644
        )
        try:
            self._write(self._fw.init_segment())
        except BaseException:
            self.abort()
            raise

    @property
    def tracks(self) -> list[Track]:
        return self._fw.tracks

    @property
    def size(self) -> int:
        return self._size

    def _write(self, data: bytes) -> None:
        self._sha.update(data)
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += len(data)

    def write_sample(self, track_id: int, timestamp: int, data: bytes | Sequence[bytes],
                     keyframe: bool = True, cts_offset: int = 0) -> None:  # fmt: skip
        """Add a sample (see :meth:`FragmentWriter.add`); may write a fragment."""
        if self._fd is None:
            raise ValueError("segment writer is closed")
        self._fw.add(track_id, timestamp, data, keyframe, cts_offset)
        if (
            track_id == self._fw.clock_track_id
            and self._fw.ready_duration() >= self._fragment_ticks
        ):
            self.flush_fragment()

    def flush_fragment(self) -> int:
        """Write the samples whose duration is known as a fragment; returns bytes written."""
        if self._fd is None:
            raise ValueError("segment writer is closed")
        chunks = self._fw.fragment()
        return self._write_chunks(chunks)

    def _write_chunks(self, chunks: list[bytes] | None) -> int:
        if not chunks:
            return 0
        data = b"".join(chunks)
        self._write(data)
        if self._fsync_fragments:
            os.fdatasync(self._fd)
        return len(data)

    def close(self, end_timestamps: Mapping[int, int] | None = None) -> SegmentInfo:
        """Write the last fragment and finalise the file (see class doc)."""
        if self._fd is None:
            raise ValueError("segment writer is closed")
        fd = self._fd
        try:
            self._write_chunks(self._fw.finish(end_timestamps))
            os.fchmod(fd, 0o444)
            os.fsync(fd)
        except BaseException:
            self.detach()  # never delete footage: the caller recovers the .tmp file
            raise
        os.close(fd)
        self._fd = None
        finalize_file(self.tmp_path, self.path)
        return self.info()

    def info(self) -> SegmentInfo:
        stats = self._fw.stats()
        clock = stats[self._fw.clock_track_id]
        return SegmentInfo(self.path, self._size, self._sha.hexdigest(), clock.duration_ms,
                           clock.samples, clock.keyframes, self._fw.sequence, stats)  # fmt: skip

    def fileno(self) -> int | None:
        """The open file descriptor (for a periodic fdatasync), or None once closed."""
        return self._fd

    def detach(self) -> None:
        """Close the file after a failure WITHOUT deleting it: the recorder never throws
        footage away; the ``.tmp`` file is then recovered (:func:`recover_segment`)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def abort(self) -> None:
        """Close and delete the temporary file (nothing is renamed)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._fd is not None:
            if exc_type is None:
                self.close()
            else:
                self.detach()  # keep the footage written so far for recover_segment


def finalize_file(tmp_path: str, final_path: str) -> None:
    """Rename ``tmp_path`` to ``final_path`` without overwriting, then fsync the directory."""
    try:
        os.link(tmp_path, final_path)  # fails with EEXIST instead of replacing
        os.unlink(tmp_path)
    except OSError as e:
        if e.errno == errno.EEXIST:
            raise FileExistsError(errno.EEXIST, "segment already exists", final_path) from e
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if os.path.exists(final_path):  # file system without hard links
            raise FileExistsError(errno.EEXIST, "segment already exists", final_path) from e
        os.rename(tmp_path, final_path)
    dfd = os.open(os.path.dirname(os.path.abspath(final_path)) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
