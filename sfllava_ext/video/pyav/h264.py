"""H.264 packets without a decoder: the header bytes of their NAL units, the slices
per picture, and which packets hold only a picture no other picture references.
Internal module of the ``pyav`` backend.

:mod:`.planning` uses all three while it indexes the file: :func:`header_reader`
gives the packet -> NAL headers function, :func:`slice_count` the slices of one
packet (the decoder's slice or frame threads depend on it, :mod:`.workers`), and
:func:`disposable_packet_test` the test that lets an unwanted non-reference picture
stay out of the decoder altogether. Every function returns None (or 0) for other
codecs and for packets it cannot parse, which keeps them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# NAL unit types a droppable packet may hold besides its non-reference slices:
# access unit delimiter and filler data. Anything else (SEI, parameter sets, ...)
# keeps the packet, since it could matter to later pictures.
_H264_SLICE = 1
_H264_HARMLESS = frozenset({9, 12})
_H264_SLICES = frozenset({1, 5})  # coded slice of a non-IDR / an IDR picture


def header_reader(
    codec_name: str, extradata: bytes | None
) -> Callable[[Any], list[int] | None] | None:
    """For H.264: packet -> the header bytes of its NAL units (avcC or Annex B
    framing, from the extradata); None for other codecs."""
    if codec_name != "h264":
        return None
    if extradata and extradata[0] == 1 and len(extradata) >= 7:  # avcC
        length_size = (extradata[4] & 3) + 1
        return lambda packet: _nal_headers_avcc(memoryview(packet), length_size)
    return lambda packet: _nal_headers_annexb(memoryview(packet))


def _nal_headers_avcc(data: memoryview, length_size: int) -> list[int] | None:
    """The NAL header bytes of a length-prefixed (MP4/MKV "avcC") packet; None when
    the lengths do not add up."""
    headers = []
    pos, end = 0, len(data)
    while pos < end:
        if pos + length_size >= end:
            return None
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if size == 0 or pos + size > end:
            return None
        headers.append(data[pos])
        pos += size
    return headers


def _nal_headers_annexb(data: memoryview) -> list[int] | None:
    """The NAL header bytes of a start-code (Annex B: .h264, MPEG-TS) packet."""
    raw = bytes(data)
    headers = []
    pos = raw.find(b"\x00\x00\x01")
    while pos != -1 and pos + 3 < len(raw):
        headers.append(raw[pos + 3])
        pos = raw.find(b"\x00\x00\x01", pos + 3)
    return headers or None


def slice_count(headers: list[int] | None) -> int:
    """Slices (NAL units of coded slice types 1 and 5) in one packet; 0 if unknown."""
    return sum(1 for header in headers or () if (header & 0x1F) in _H264_SLICES)


def disposable_packet_test(
    codec_name: str, extradata: bytes | None
) -> Callable[[Any], bool] | None:
    """For H.264: a test for packets whose picture no other picture references, so
    that an unwanted one need not reach the decoder at all.

    ``skip_frame="NONREF"`` drops the same pictures inside the decoder, but with
    frame threads each dropped packet still takes a thread's turn, which halves the
    threads' overlap on the long chain of reference pictures; leaving the packet out
    keeps every turn for real work. The decoded pixels are the same either way: an
    H.264 decoder never reads a non-reference picture (its frame_num and POC state
    come from reference pictures only). None for other codecs.
    """
    headers = header_reader(codec_name, extradata)
    if headers is None:
        return None
    return lambda packet: _disposable(headers(packet))


def _disposable(headers: list[int] | None) -> bool:
    """Whether the NAL units are one non-reference picture (nal_ref_idc 0 on its
    slices) and nothing that later pictures could need."""
    if not headers:
        return False
    slices = 0
    for header in headers:
        kind = header & 0x1F
        if kind == _H264_SLICE:
            if header & 0x60:  # nal_ref_idc != 0: a reference picture
                return False
            slices += 1
        elif kind not in _H264_HARMLESS:
            return False
    return slices > 0
