"""H.264 / H.265 bitstream helpers: NAL unit classification, RBSP unescaping,
exp-Golomb reading, SPS parsing, avcC/hvcC builders and MSE codec strings.

NAL units are handled *without* start codes (as they come out of RTP
depacketisation); :func:`split_annexb` turns an Annex-B byte stream into such
units.  Only the syntax needed for container work is parsed; the references are
ITU-T H.264 (7.3.2.1, E.1), ITU-T H.265 (7.3.2.2, 7.3.3, 7.3.7, E.2) and
ISO/IEC 14496-15 (5.3.3 avcC, 8.3.3 hvcC, E.3 codec strings).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

H264 = "h264"
H265 = "h265"
CODECS = (H264, H265)

# H.264 nal_unit_type values
H264_IDR = 5
H264_SEI = 6
H264_SPS = 7
H264_PPS = 8
H264_AUD = 9
# H.265 nal_unit_type values
H265_BLA_W_LP = 16
H265_RSV_IRAP_23 = 23
H265_VPS = 32
H265_SPS = 33
H265_PPS = 34
H265_AUD = 35
H265_PREFIX_SEI = 39


class BitstreamError(ValueError):
    """A NAL unit / parameter set is truncated or violates the syntax."""


# --------------------------------------------------------------------------- NAL units


def _check_codec(codec: str) -> None:
    if codec not in CODECS:
        raise ValueError(f"unknown video codec {codec!r}; expected 'h264' or 'h265'")


def h264_nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F


def h265_nal_type(nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F


def nal_type(codec: str, nal: bytes) -> int:
    """nal_unit_type of ``nal`` (no start code)."""
    if not nal:
        raise BitstreamError("empty NAL unit")
    return h264_nal_type(nal) if codec == H264 else h265_nal_type(nal)


def is_keyframe_nal(codec: str, nal: bytes) -> bool:
    """True for an H.264 IDR slice or an H.265 IRAP picture (BLA/IDR/CRA)."""
    if not nal:
        return False
    if codec == H264:
        return nal[0] & 0x1F == H264_IDR
    return H265_BLA_W_LP <= (nal[0] >> 1) & 0x3F <= H265_RSV_IRAP_23


def is_keyframe(codec: str, nals: Iterable[bytes]) -> bool:
    """True if the access unit (list of NAL units) is a random access point."""
    return any(is_keyframe_nal(codec, n) for n in nals)


def is_parameter_set(codec: str, nal: bytes) -> bool:
    """True for SPS/PPS (H.264) or VPS/SPS/PPS (H.265)."""
    if not nal:
        return False
    if codec == H264:
        return nal[0] & 0x1F in (H264_SPS, H264_PPS)
    return H265_VPS <= (nal[0] >> 1) & 0x3F <= H265_PPS


def parameter_sets(codec: str, nals: Iterable[bytes]) -> dict[str, list[bytes]]:
    """Collect parameter sets from NAL units: ``{'vps': [...], 'sps': [...], 'pps': [...]}``.

    Duplicates are dropped, order of first appearance kept."""
    _check_codec(codec)
    out: dict[str, list[bytes]] = {"vps": [], "sps": [], "pps": []}
    names = (
        {H264_SPS: "sps", H264_PPS: "pps"}
        if codec == H264
        else {H265_VPS: "vps", H265_SPS: "sps", H265_PPS: "pps"}
    )
    for n in nals:
        if not n:
            continue
        key = names.get(nal_type(codec, n))
        if key and bytes(n) not in out[key]:
            out[key].append(bytes(n))
    return out


def split_annexb(data: bytes) -> list[bytes]:
    """Split an Annex-B byte stream into NAL units (start codes and trailing
    zero bytes removed).  Bytes before the first start code are ignored."""
    data = bytes(data)
    out: list[bytes] = []
    find = data.find
    pos = find(b"\x00\x00\x01")
    while pos >= 0:
        start = pos + 3
        nxt = find(b"\x00\x00\x01", start)
        end = len(data) if nxt < 0 else nxt
        nal = data[start:end].rstrip(b"\x00")
        if nal:
            out.append(nal)
        pos = nxt
    return out


def access_units(codec: str, nals: Iterable[bytes]) -> list[list[bytes]]:
    """Group NAL units (decoding order) into access units (7.4.1.2.3 / 7.4.2.4.4):
    a new AU starts at an AUD/parameter set/prefix SEI that follows a picture's
    slices, or at a slice that is the first of its picture."""
    _check_codec(codec)
    out: list[list[bytes]] = []
    cur: list[bytes] = []
    seen_vcl = False
    for n in nals:
        if len(n) < (2 if codec == H264 else 3):
            continue
        if codec == H264:
            t = n[0] & 0x1F
            vcl, first = 1 <= t <= 5, bool(n[1] & 0x80)  # first_mb_in_slice == 0
            opens = t in (6, 7, 8, 9) or 14 <= t <= 18
        else:
            t = (n[0] >> 1) & 0x3F
            vcl, first = t < 32, bool(n[2] & 0x80)  # first_slice_segment_in_pic_flag
            opens = 32 <= t <= 35 or t == 39 or 41 <= t <= 44 or 48 <= t <= 55
        if seen_vcl and (opens or (vcl and first)):
            out.append(cur)
            cur, seen_vcl = [], False
        cur.append(bytes(n))
        seen_vcl = seen_vcl or vcl
    if cur and seen_vcl:
        out.append(cur)
    return out


def unescape_rbsp(nal: bytes) -> bytes:
    """Remove emulation prevention bytes (0x000003 -> 0x0000).

    ``bytes.replace`` scans left to right without overlap, which is exactly the
    decoding rule of H.264 7.4.1 / H.265 7.4.2: after a removed 0x03 the zero
    count restarts."""
    return bytes(nal).replace(b"\x00\x00\x03", b"\x00\x00")


# --------------------------------------------------------------------------- bit reader


class BitReader:
    """MSB-first bit reader with exp-Golomb support; raises BitstreamError on overrun."""

    __slots__ = ("_val", "_nbits", "pos")

    def __init__(self, data: bytes):
        self._val = int.from_bytes(data, "big")
        self._nbits = len(data) * 8
        self.pos = 0

    @property
    def bits_left(self) -> int:
        return self._nbits - self.pos

    def u(self, n: int) -> int:
        if n == 0:
            return 0
        end = self.pos + n
        if end > self._nbits:
            raise BitstreamError("bitstream truncated")
        self.pos = end
        return (self._val >> (self._nbits - end)) & ((1 << n) - 1)

    def flag(self) -> bool:
        return bool(self.u(1))

    def skip(self, n: int) -> None:
        if self.pos + n > self._nbits:
            raise BitstreamError("bitstream truncated")
        self.pos += n

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise BitstreamError("exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


# --------------------------------------------------------------------------- SPS


@dataclass(frozen=True)
class SpsInfo:
    """What the container layer needs from a sequence parameter set."""

    codec: str
    width: int  # displayed (cropped) size
    height: int
    coded_width: int
    coded_height: int
    profile_idc: int
    level_idc: int
    chroma_format_idc: int
    bit_depth_luma: int
    bit_depth_chroma: int
    fps: float | None = None  # from VUI timing info, None when absent
    sar: tuple[int, int] | None = None  # sample aspect ratio from VUI
    # H.264: constraint_set flags byte.  H.265: see the general_* fields below.
    constraint_flags: int = 0
    # H.265 only (profile_tier_level)
    profile_space: int = 0
    tier_flag: int = 0
    profile_compat_flags: int = 0  # 32 bits, flag[0] is the MSB
    constraint_indicator_flags: int = 0  # 48 bits
    max_sub_layers: int = 1
    temporal_id_nesting: bool = True


_SAR_TABLE = [
    None, (1, 1), (12, 11), (10, 11), (16, 11), (40, 33), (24, 11), (20, 11), (32, 11),
    (80, 33), (18, 11), (15, 11), (64, 33), (160, 99), (4, 3), (3, 2), (2, 1),
]  # fmt: skip


def _read_sar(r: BitReader) -> tuple[int, int] | None:
    idc = r.u(8)
    if idc == 255:
        w, h = r.u(16), r.u(16)
        return (w, h) if w and h else None
    return _SAR_TABLE[idc] if idc < len(_SAR_TABLE) else None


def _h264_scaling_list(r: BitReader, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + r.se() + 256) % 256
        last = nxt or last


def parse_h264_sps(nal: bytes) -> SpsInfo:
    """Parse an H.264 SPS NAL unit (with its 1-byte header)."""
    if len(nal) < 4 or nal[0] & 0x1F != H264_SPS:
        raise BitstreamError("not an H.264 SPS NAL unit")
    r = BitReader(unescape_rbsp(nal[1:]))
    profile, constraints, level = r.u(8), r.u(8), r.u(8)
    r.ue()  # seq_parameter_set_id
    chroma, separate_planes, depth_l, depth_c = 1, False, 8, 8
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma = r.ue()
        if chroma > 3:
            raise BitstreamError("bad chroma_format_idc")
        if chroma == 3:
            separate_planes = r.flag()
        depth_l, depth_c = 8 + r.ue(), 8 + r.ue()
        r.skip(1)  # qpprime_y_zero_transform_bypass_flag
        if r.flag():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if r.flag():
                    _h264_scaling_list(r, 16 if i < 6 else 64)
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()
    elif poc_type == 1:
        r.skip(1)
        r.se()
        r.se()
        n = r.ue()
        if n > 255:
            raise BitstreamError("num_ref_frames_in_pic_order_cnt_cycle too large")
        for _ in range(n):
            r.se()
    r.ue()  # max_num_ref_frames
    r.skip(1)  # gaps_in_frame_num_value_allowed_flag
    w_mbs, h_units = r.ue() + 1, r.ue() + 1
    frame_mbs_only = r.u(1)
    if not frame_mbs_only:
        r.skip(1)  # mb_adaptive_frame_field_flag
    r.skip(1)  # direct_8x8_inference_flag
    crop = (r.ue(), r.ue(), r.ue(), r.ue()) if r.flag() else (0, 0, 0, 0)
    sar = fps = None
    if r.flag():  # vui_parameters_present_flag
        try:  # some cameras emit a truncated VUI; the picture size is still good
            sar, fps = _h264_vui(r)
        except BitstreamError:
            sar = fps = None
    coded_w, coded_h = w_mbs * 16, (2 - frame_mbs_only) * h_units * 16
    cat = 0 if separate_planes else chroma
    cux = 1 if cat in (0, 3) else 2
    cuy = (2 - frame_mbs_only) * (2 if cat == 1 else 1)
    width = coded_w - cux * (crop[0] + crop[1])
    height = coded_h - cuy * (crop[2] + crop[3])
    if width <= 0 or height <= 0:
        raise BitstreamError("cropping window larger than the picture")
    return SpsInfo(H264, width, height, coded_w, coded_h, profile, level, chroma,
                   depth_l, depth_c, fps, sar, constraint_flags=constraints)  # fmt: skip


def _vui_common_head(r: BitReader) -> tuple[int, int] | None:
    """The VUI fields H.264 and H.265 share up to chroma location; returns the SAR."""
    sar = _read_sar(r) if r.flag() else None
    if r.flag():  # overscan_info_present_flag
        r.skip(1)
    if r.flag():  # video_signal_type_present_flag
        r.skip(4)
        if r.flag():
            r.skip(24)
    if r.flag():  # chroma_loc_info_present_flag
        r.ue()
        r.ue()
    return sar


def _h264_vui(r: BitReader) -> tuple[tuple[int, int] | None, float | None]:
    sar = _vui_common_head(r)
    fps = None
    if r.flag():  # timing_info_present_flag
        units, scale = r.u(32), r.u(32)
        if units and scale:
            fps = scale / (2 * units)
    return sar, fps


def _h265_profile_tier_level(r: BitReader, max_sub_layers_minus1: int) -> tuple:
    space, tier, profile = r.u(2), r.u(1), r.u(5)
    compat = r.u(32)
    constraint = r.u(48)
    level = r.u(8)
    sub_profile, sub_level = [], []
    for _ in range(max_sub_layers_minus1):
        sub_profile.append(r.u(1))
        sub_level.append(r.u(1))
    if max_sub_layers_minus1 > 0:
        r.skip(2 * (8 - max_sub_layers_minus1))
    for i in range(max_sub_layers_minus1):
        if sub_profile[i]:
            r.skip(88)
        if sub_level[i]:
            r.skip(8)
    return space, tier, profile, compat, constraint, level


def _h265_scaling_list_data(r: BitReader) -> None:
    for size_id in range(4):
        for _ in range(0, 6, 3 if size_id == 3 else 1):
            if not r.flag():  # scaling_list_pred_mode_flag
                r.ue()
            else:
                coefs = min(64, 1 << (4 + (size_id << 1)))
                if size_id > 1:
                    r.se()
                for _ in range(coefs):
                    r.se()


def _h265_st_ref_pic_sets(r: BitReader, count: int) -> None:
    """Parse st_ref_pic_set(0..count-1) of an SPS, tracking delta POCs (7.4.8)."""
    sets: list[tuple[list[int], list[int]]] = []  # (DeltaPocS0, DeltaPocS1)
    for idx in range(count):
        if idx and r.flag():  # inter_ref_pic_set_prediction_flag
            sign, abs_minus1 = r.u(1), r.ue()
            delta_rps = (1 - 2 * sign) * (abs_minus1 + 1)
            ref_s0, ref_s1 = sets[idx - 1]
            n_ref = len(ref_s0) + len(ref_s1)
            use = []
            for _ in range(n_ref + 1):
                used = r.u(1)
                use.append(True if used else bool(r.u(1)))
            s0, s1 = [], []
            for j in range(len(ref_s1) - 1, -1, -1):
                d = ref_s1[j] + delta_rps
                if d < 0 and use[len(ref_s0) + j]:
                    s0.append(d)
            if delta_rps < 0 and use[n_ref]:
                s0.append(delta_rps)
            for j in range(len(ref_s0)):
                d = ref_s0[j] + delta_rps
                if d < 0 and use[j]:
                    s0.append(d)
            for j in range(len(ref_s0) - 1, -1, -1):
                d = ref_s0[j] + delta_rps
                if d > 0 and use[j]:
                    s1.append(d)
            if delta_rps > 0 and use[n_ref]:
                s1.append(delta_rps)
            for j in range(len(ref_s1)):
                d = ref_s1[j] + delta_rps
                if d > 0 and use[len(ref_s0) + j]:
                    s1.append(d)
        else:
            n_neg, n_pos = r.ue(), r.ue()
            if n_neg > 16 or n_pos > 16:
                raise BitstreamError("too many pictures in st_ref_pic_set")
            s0, s1, poc = [], [], 0
            for _ in range(n_neg):
                poc -= r.ue() + 1
                s0.append(poc)
                r.skip(1)
            poc = 0
            for _ in range(n_pos):
                poc += r.ue() + 1
                s1.append(poc)
                r.skip(1)
        sets.append((s0, s1))


def parse_h265_sps(nal: bytes) -> SpsInfo:
    """Parse an H.265 SPS NAL unit (with its 2-byte header)."""
    if len(nal) < 16 or (nal[0] >> 1) & 0x3F != H265_SPS:
        raise BitstreamError("not an H.265 SPS NAL unit")
    r = BitReader(unescape_rbsp(nal[2:]))
    r.skip(4)  # sps_video_parameter_set_id
    max_sub_minus1 = r.u(3)
    nesting = r.flag()
    space, tier, profile, compat, constraint, level = _h265_profile_tier_level(r, max_sub_minus1)
    r.ue()  # sps_seq_parameter_set_id
    chroma = r.ue()
    if chroma > 3:
        raise BitstreamError("bad chroma_format_idc")
    separate_planes = r.flag() if chroma == 3 else False
    coded_w, coded_h = r.ue(), r.ue()
    win = (r.ue(), r.ue(), r.ue(), r.ue()) if r.flag() else (0, 0, 0, 0)
    depth_l, depth_c = 8 + r.ue(), 8 + r.ue()
    log2_poc_lsb = r.ue() + 4
    first = 0 if r.flag() else max_sub_minus1  # sps_sub_layer_ordering_info_present_flag
    for _ in range(first, max_sub_minus1 + 1):
        r.ue()
        r.ue()
        r.ue()
    for _ in range(6):  # coding/transform block sizes, hierarchy depths
        r.ue()
    if r.flag() and r.flag():  # scaling_list_enabled_flag, sps_scaling_list_data_present_flag
        _h265_scaling_list_data(r)
    r.skip(2)  # amp_enabled_flag, sample_adaptive_offset_enabled_flag
    if r.flag():  # pcm_enabled_flag
        r.skip(8)
        r.ue()
        r.ue()
        r.skip(1)
    n_sets = r.ue()
    if n_sets > 64:
        raise BitstreamError("num_short_term_ref_pic_sets > 64")
    _h265_st_ref_pic_sets(r, n_sets)
    if r.flag():  # long_term_ref_pics_present_flag
        n_lt = r.ue()
        if n_lt > 32:
            raise BitstreamError("num_long_term_ref_pics_sps > 32")
        for _ in range(n_lt):
            r.skip(log2_poc_lsb + 1)
    r.skip(2)  # sps_temporal_mvp_enabled_flag, strong_intra_smoothing_enabled_flag
    sar = fps = None
    if r.flag():  # vui_parameters_present_flag
        try:  # some cameras emit a truncated VUI; the picture size is still good
            sar, fps = _h265_vui(r)
        except BitstreamError:
            sar = fps = None
    cat = 0 if separate_planes else chroma
    sub_w = 2 if cat in (1, 2) else 1
    sub_h = 2 if cat == 1 else 1
    width = coded_w - sub_w * (win[0] + win[1])
    height = coded_h - sub_h * (win[2] + win[3])
    if width <= 0 or height <= 0:
        raise BitstreamError("conformance window larger than the picture")
    return SpsInfo(H265, width, height, coded_w, coded_h, profile, level, chroma, depth_l,
                   depth_c, fps, sar, profile_space=space, tier_flag=tier,
                   profile_compat_flags=compat, constraint_indicator_flags=constraint,
                   max_sub_layers=max_sub_minus1 + 1, temporal_id_nesting=nesting)  # fmt: skip


def _h265_vui(r: BitReader) -> tuple[tuple[int, int] | None, float | None]:
    sar = _vui_common_head(r)
    r.skip(3)  # neutral_chroma_indication, field_seq, frame_field_info_present
    if r.flag():  # default_display_window_flag
        for _ in range(4):
            r.ue()
    fps = None
    if r.flag():  # vui_timing_info_present_flag
        units, scale = r.u(32), r.u(32)
        if units and scale:
            fps = scale / units
    return sar, fps


def parse_sps(codec: str, nal: bytes) -> SpsInfo:
    _check_codec(codec)
    return parse_h264_sps(nal) if codec == H264 else parse_h265_sps(nal)


# --------------------------------------------------------------------------- configs


def _u16_list(items: Sequence[bytes]) -> bytes:
    return b"".join(struct.pack(">H", len(x)) + bytes(x) for x in items)


def avcc(sps: Sequence[bytes], pps: Sequence[bytes]) -> bytes:
    """AVCDecoderConfigurationRecord (payload of the 'avcC' box), 4-byte NAL lengths."""
    if not sps or not pps:
        raise ValueError("avcC needs at least one SPS and one PPS")
    if len(sps) > 31 or len(pps) > 255:
        raise ValueError("too many parameter sets for avcC")
    info = parse_h264_sps(sps[0])
    s0 = sps[0]
    out = bytearray((1, s0[1], s0[2], s0[3], 0xFF, 0xE0 | len(sps)))
    out += _u16_list(sps)
    out.append(len(pps))
    out += _u16_list(pps)
    if info.profile_idc in (100, 110, 122, 144):
        out += bytes((0xFC | info.chroma_format_idc, 0xF8 | (info.bit_depth_luma - 8),
                      0xF8 | (info.bit_depth_chroma - 8), 0))  # fmt: skip
    return bytes(out)


def hvcc(vps: Sequence[bytes], sps: Sequence[bytes], pps: Sequence[bytes]) -> bytes:
    """HEVCDecoderConfigurationRecord (payload of the 'hvcC' box), 4-byte NAL
    lengths, array_completeness=1 (suitable for an 'hvc1' sample entry)."""
    if not vps or not sps or not pps:
        raise ValueError("hvcC needs at least one VPS, SPS and PPS")
    i = parse_h265_sps(sps[0])
    out = bytearray()
    out.append(1)
    out.append((i.profile_space << 6) | (i.tier_flag << 5) | i.profile_idc)
    out += struct.pack(">I", i.profile_compat_flags)
    out += i.constraint_indicator_flags.to_bytes(6, "big")
    out.append(i.level_idc)
    out += struct.pack(">HBBBBH", 0xF000, 0xFC, 0xFC | i.chroma_format_idc,
                       0xF8 | (i.bit_depth_luma - 8), 0xF8 | (i.bit_depth_chroma - 8), 0)  # fmt: skip
    out.append(((i.max_sub_layers & 7) << 3) | (int(i.temporal_id_nesting) << 2) | 3)
    out.append(3)
    for typ, items in ((H265_VPS, vps), (H265_SPS, sps), (H265_PPS, pps)):
        out.append(0x80 | typ)
        out += struct.pack(">H", len(items))
        out += _u16_list(items)
    return bytes(out)


def _take_u16_list(data: bytes, pos: int, count: int) -> tuple[list[bytes], int]:
    items = []
    for _ in range(count):
        if pos + 2 > len(data):
            raise BitstreamError("decoder configuration record truncated")
        (n,) = struct.unpack_from(">H", data, pos)
        if pos + 2 + n > len(data):
            raise BitstreamError("decoder configuration record truncated")
        items.append(bytes(data[pos + 2 : pos + 2 + n]))
        pos += 2 + n
    return items, pos


def parse_avcc(data: bytes) -> dict[str, list[bytes]]:
    """Parameter sets of an avcC payload: ``{'vps': [], 'sps': [...], 'pps': [...]}``."""
    if len(data) < 7 or data[0] != 1:
        raise BitstreamError("bad avcC record")
    sps, pos = _take_u16_list(data, 6, data[5] & 0x1F)
    if pos >= len(data):
        raise BitstreamError("avcC record truncated")
    pps, _ = _take_u16_list(data, pos + 1, data[pos])
    return {"vps": [], "sps": sps, "pps": pps}


def parse_hvcc(data: bytes) -> dict[str, list[bytes]]:
    """Parameter sets of an hvcC payload: ``{'vps': [...], 'sps': [...], 'pps': [...]}``."""
    if len(data) < 23 or data[0] != 1:
        raise BitstreamError("bad hvcC record")
    out: dict[str, list[bytes]] = {"vps": [], "sps": [], "pps": []}
    names = {H265_VPS: "vps", H265_SPS: "sps", H265_PPS: "pps"}
    pos = 23
    for _ in range(data[22]):
        if pos + 3 > len(data):
            raise BitstreamError("hvcC record truncated")
        typ = data[pos] & 0x3F
        (n,) = struct.unpack_from(">H", data, pos + 1)
        items, pos = _take_u16_list(data, pos + 3, n)
        if typ in names:
            out[names[typ]].extend(items)
    return out


def codec_string(codec: str, sps: bytes | SpsInfo, fourcc: str | None = None) -> str:
    """RFC 6381 codec string for MSE, e.g. ``avc1.64001f`` or ``hvc1.1.6.L93.B0``."""
    _check_codec(codec)
    info = sps if isinstance(sps, SpsInfo) else parse_sps(codec, sps)
    if codec == H264:
        return f"{fourcc or 'avc1'}.{info.profile_idc:02x}{info.constraint_flags:02x}{info.level_idc:02x}"
    compat = int(f"{info.profile_compat_flags:032b}"[::-1], 2)  # bit-reversed, E.3
    space = "" if info.profile_space == 0 else "ABC"[info.profile_space - 1]
    parts = [fourcc or "hvc1", f"{space}{info.profile_idc}", f"{compat:X}",
             f"{'LH'[info.tier_flag]}{info.level_idc}"]  # fmt: skip
    cons = info.constraint_indicator_flags.to_bytes(6, "big").rstrip(b"\x00")
    parts += [f"{b:X}" for b in cons]
    return ".".join(parts)
