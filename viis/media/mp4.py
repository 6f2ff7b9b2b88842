"""MP4 (ISO BMFF) layer of VIIS: fragmented segment writing, parsing, crash
recovery, export to progressive MP4 and MSE streaming.

The implementation lives in ``mp4_format`` (boxes, tracks, fragments),
``mp4_writer`` (FragmentWriter, SegmentWriter), ``mp4_reader`` (parse,
recovery) and ``mp4_export`` (export_range, iter_mse); import from here.
"""

from .mp4_export import ExportInfo, export_range, iter_mse
from .mp4_format import (
    NON_SYNC_FLAGS,
    SYNC_FLAGS,
    ExportError,
    Mp4Error,
    Mp4TruncatedError,
    Track,
    TrackRun,
    build_fragment,
    init_segment,
    iso_time,
    make_asc,
    mime_type,
    nal_payload,
    parse_asc,
    split_adts,
)
from .mp4_reader import (
    Fragment,
    ParsedSegment,
    TrackFragment,
    complete_length,
    parse_segment,
    recover_segment,
)
from .mp4_writer import FragmentWriter, SegmentInfo, SegmentWriter, TrackStats, finalize_file

__all__ = [
    "NON_SYNC_FLAGS", "SYNC_FLAGS", "ExportError", "ExportInfo", "Fragment", "FragmentWriter",
    "Mp4Error", "Mp4TruncatedError", "ParsedSegment", "SegmentInfo", "SegmentWriter", "Track",
    "TrackFragment", "TrackRun", "TrackStats", "build_fragment", "complete_length",
    "export_range", "finalize_file", "init_segment", "iso_time", "iter_mse", "make_asc", "mime_type",
    "nal_payload", "parse_asc", "parse_segment", "recover_segment", "split_adts",
]  # fmt: skip
