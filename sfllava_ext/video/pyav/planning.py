"""The decode plan of the ``pyav`` backend: what one ``load_video`` call will decode.
Internal module.

:func:`plan_decode` opens the file and demuxes it once without decoding
(:func:`index_packets`: pts, dts, keyframe flags and, for H.264, the slices per
picture), picks the wanted frames (:func:`sfllava_ext.video.sampling.pick_indices`)
and, when the container's timestamps give the presentation order
(:func:`timestamps_give_order`), groups them into :class:`Chunk` s, one per keyframe
their decoding must start from (:func:`plan_chunks`), with the :class:`SkipRules`
that keep unwanted pictures out of the decoder. The result is a :class:`DecodePlan`,
which keeps the indexing container open for the first decode worker to take over.

Under :class:`~sfllava_ext.video.limits.DecodeLimits` the file is opened with the
format allowlist (:func:`sfllava_ext.video.limits.open_container`), the header's size is
checked against ``max_pixels`` and the deadline per packet while indexing; the plan
carries the limits and the call's :class:`~sfllava_ext.video.limits.DecodeMeter` to the
workers.

The entry point comes first, then the steps in the order it takes them; each type
sits next to the step that makes it.
"""

from __future__ import annotations

import bisect
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import limits as video_limits
from ..frames import VideoDecodeError
from ..limits import DecodeLimits, DecodeMeter
from ..sampling import pick_indices
from . import h264, sinks

logger = logging.getLogger(__name__)

# Decoders whose AVDISCARD_NONREF drops only pictures no other picture references.
_NONREF_SAFE_CODECS = frozenset({"h264", "hevc", "mpeg4", "mpeg2video", "mpeg1video"})
_SLICE_SAMPLE = 16  # packets whose slices are counted while indexing


def plan_decode(
    path: str, num_frames: int, fps: float | None = None, limits: DecodeLimits | None = None
) -> DecodePlan:
    """Open and index the file (demux only), pick the frames and plan their decoding.

    The plan keeps the container open for a decode worker to take over; the caller
    closes it with :meth:`DecodePlan.close` (a no-op once a worker took it). A
    truncated file is planned over the packets that can be read, with a
    ``RuntimeWarning`` that points at the caller of ``load_video``
    (:func:`index_packets`). Under ``limits`` the plan carries them and a new
    :class:`~sfllava_ext.video.limits.DecodeMeter`, which the workers share.

    Raises:
        VideoDecodeError: the file cannot be opened or holds no usable video stream;
            wanted frames out of range.
        VideoLimitError: a bound of ``limits`` (its format, the header's size, the
            deadline).
    """
    meter = DecodeMeter(limits, path) if limits is not None else None
    container = video_limits.open_container(path, limits)
    try:
        plan = index_and_plan(container, path, num_frames, fps, meter)
    except BaseException:
        container.close()
        raise
    plan.container = container
    return plan


@dataclass
class DecodePlan:
    """What the ``pyav`` backend will decode for one call: the stream, the wanted frame
    indices and, when the container's timestamps give the presentation order, the
    chunks (``order`` maps pts to decode position) and the skip rules; otherwise
    ``chunks`` is empty and the file is decoded in sequence."""

    path: str
    stream_index: int
    width: int
    height: int
    fps: float | None
    indices: list[int]
    index: PacketIndex
    order: dict[int, int] = field(default_factory=dict)
    chunks: list[Chunk] = field(default_factory=list)
    rules: SkipRules = field(default_factory=lambda: SkipRules(nonref=False))
    pix_fmt: str | None = None  # the stream's pixel format, as its codec parameters say
    # the meter the call's decode threads share (None: no limits)
    meter: DecodeMeter | None = None
    # the container the file was indexed with, kept open for one decode worker to take
    # over (one open of the file less); None once taken or closed. Not an __init__
    # field, so that dataclasses.replace() never copies it into a second plan.
    container: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def total_frames(self) -> int:
        """Frames in the video: its packets, as decord counts them."""
        return len(self.index)

    @property
    def limits(self) -> DecodeLimits | None:
        """The call's limits (its meter's); None: none."""
        return self.meter.limits if self.meter is not None else None

    @property
    def may_keep_planes(self) -> bool:
        """Whether :class:`~.sinks.Yuv420Sink` can hold these frames, as far as the
        stream's parameters tell (each decoded frame is checked again)."""
        return self.height % 2 == 0 and self.pix_fmt in (None, *sinks.NATIVE_FORMATS)

    def take_container(self) -> Any:
        """The indexing container, handed over once (None afterwards)."""
        container, self.container = self.container, None
        return container

    def close(self) -> None:
        """Close the indexing container if no worker took it."""
        container = self.take_container()
        if container is not None:
            container.close()


def index_and_plan(
    container: Any,
    path: str,
    num_frames: int,
    fps: float | None,
    meter: DecodeMeter | None = None,
) -> DecodePlan:
    """:func:`plan_decode` on an open container (which it leaves open); under a
    ``meter``, the header's size and the deadline are checked, and the plan carries the
    meter and its limits."""
    stream = video_stream(container, path)
    stream_index = list(container.streams.video).index(stream)
    width = stream.codec_context.width
    height = stream.codec_context.height
    codec_name = stream.codec_context.name
    extradata = stream.codec_context.extradata
    reorders = bool(stream.codec_context.has_b_frames)
    rate = stream.average_rate
    video_fps = float(rate) if rate else None
    if meter is not None:
        meter.header(width, height)  # cheap early refusal; every frame is checked again
    nal_headers = h264.header_reader(codec_name, extradata)
    index = index_packets(container, stream, path, nal_headers, meter)
    if len(index) == 0:
        raise VideoDecodeError(path, "the video stream holds no frames")
    if width <= 0 or height <= 0:
        raise VideoDecodeError(path, f"the video stream has no frame size ({width}x{height})")
    total_frames = len(index)
    indices = pick_indices(path, total_frames, video_fps, num_frames, fps)
    plan = DecodePlan(path, stream_index, width, height, video_fps, indices, index)
    if meter is not None:
        plan.meter = meter
    pix_fmt = stream.codec_context.format
    plan.pix_fmt = pix_fmt.name if pix_fmt is not None else None
    if timestamps_give_order(index, reorders):
        frame_pts = sorted(index.pts)  # presentation order, as decord sorts them
        plan.order = {p: i for i, p in enumerate(index.pts)}
        plan.chunks = plan_chunks(index, frame_pts, indices)
        plan.rules = SkipRules(
            nonref=codec_name in _NONREF_SAFE_CODECS,
            disposable=h264.disposable_packet_test(codec_name, extradata),
        )
    return plan


def video_stream(container: Any, path: str) -> Any:
    """The container's best video stream; VideoDecodeError when it has none, or none
    FFmpeg can decode."""
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise VideoDecodeError(path, f"no video stream (streams: {', '.join(kinds)})")
    stream = container.streams.best("video") or container.streams.video[0]
    if stream.codec_context is None:
        raise VideoDecodeError(path, "no decoder for the video stream's codec")
    return stream


def index_packets(
    container: Any,
    stream: Any,
    path: str,
    nal_headers: Callable[[Any], list[int] | None] | None = None,
    meter: DecodeMeter | None = None,
) -> PacketIndex:
    """Demux (no decoding) every packet of ``stream``: pts, dts, keyframe flag; and,
    given ``nal_headers`` (H.264), the fewest slices per picture in the first
    ``_SLICE_SAMPLE`` packets. Packets the container announces but that cannot be
    read (a truncated file) warn, and the index ends early. Given a ``meter``, its
    deadline is checked per packet (a file may hold millions).

    Raises:
        VideoLimitError: the meter's deadline passed.
    """
    import av

    pts: list[int | None] = []
    dts: list[int | None] = []
    keyframe: list[bool] = []
    slice_counts: list[int] = []
    truncated = False
    try:
        for packet in demux(container, stream):
            if meter is not None:
                meter.packet("while indexing the packets")
            if packet.size == 0:  # the demuxer's final flush packet
                continue
            pts.append(packet.pts)
            dts.append(packet.dts)
            keyframe.append(bool(packet.is_keyframe))
            if nal_headers is not None and len(slice_counts) < _SLICE_SAMPLE:
                slice_counts.append(h264.slice_count(nal_headers(packet)))
    except av.FFmpegError as exc:
        truncated = True
        logger.debug("%s: demuxing stopped after %d packets: %s", path, len(pts), exc)
    claimed = stream.frames or 0
    if claimed > len(pts):
        truncated = True
    if truncated and pts:
        warnings.warn(
            f"{path}: the container announces {max(claimed, len(pts))} frames but only "
            f"{len(pts)} can be read (truncated or damaged file); the clip ends early",
            RuntimeWarning,
            # 1 here, 2 index_and_plan, 3 plan_decode, 4 decode.load_with_pyav,
            # 5 load.load_video, 6 load_video's caller: the line the user wrote
            stacklevel=6,
        )
    return PacketIndex(pts, dts, keyframe, truncated, min(slice_counts, default=0))


def demux(container: Any, stream: Any) -> Any:
    """``container.demux(stream)``: the stream's packets, then its flush packet (size
    0), ending where PyAV's generator raises IndexError after the last packet.

    PyAV 18.1's ``demux`` flushes every stream up to the container's stream count at
    the end, reading its list of wanted streams (sized at the start) for streams that
    appeared while demuxing, which an MPEG-TS file can announce mid-file (an MP4
    appended to a TS file, found by benchmarks/fuzz_videos.py): a stream it has no
    Python object for is an IndexError. Every packet has been given by then, and this
    stream's flush packet too (a stream found later has a higher index), so the
    demuxing simply ends there.
    """
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except IndexError:
            logger.debug("%s: PyAV's demux ended on a stream found mid-file", container.name)
            return
        yield packet


@dataclass(frozen=True)
class PacketIndex:
    """The video packets of a file in decode order (what decord counts as frames)."""

    pts: list[int | None]
    dts: list[int | None]
    keyframe: list[bool]
    truncated: bool
    # the fewest slices in one picture among the first packets (H.264); 0: unknown
    slices: int = 0

    def __len__(self) -> int:
        return len(self.pts)

    @property
    def has_pts(self) -> bool:
        return all(p is not None for p in self.pts)


def timestamps_give_order(index: PacketIndex, reorders: bool) -> bool:
    """Whether sorting the packets' pts gives the presentation order.

    Not when a packet has no pts, nor when the codec reorders frames (B-frames) yet the
    pts rise in decode order: then the container made them up from the decode order
    (H.264 in AVI does this).
    """
    if not index.has_pts:
        return False
    if reorders and len(index.pts) > 2:
        pts = index.pts
        if all(b > a for a, b in zip(pts, pts[1:], strict=False)):  # type: ignore[operator]
            return False
    return True


def plan_chunks(index: PacketIndex, frame_pts: list[int], wanted: Sequence[int]) -> list[Chunk]:
    """Group the wanted frames by the keyframe their decoding must start from.

    A frame whose packet sits in GOP g (decode order) starts at g's keyframe, except a
    leading picture shown before that keyframe (open GOP), which starts one GOP earlier.
    """
    order = {p: i for i, p in enumerate(index.pts)}
    keys = [i for i, k in enumerate(index.keyframe) if k] or [0]
    if keys[0] != 0:
        keys.insert(0, 0)  # packets before the first flagged keyframe: decode from the start
    chunks: dict[int, Chunk] = {}
    for frame in sorted(set(wanted)):
        pts = frame_pts[frame]
        position = order[pts]
        g = bisect.bisect_right(keys, position) - 1
        key_pts = index.pts[keys[g]]
        if g > 0 and key_pts is not None and pts < key_pts:
            g -= 1
        start = keys[g]
        chunk = chunks.setdefault(start, Chunk(start, position, {}))
        chunk.end = max(chunk.end, position)
        chunk.wanted[pts] = frame
    return sorted(chunks.values(), key=lambda c: c.start)


@dataclass
class Chunk:
    """Packets ``start`` .. ``end`` (decode order) decoded in one go from the keyframe at
    ``start``; ``wanted`` maps the pts of wanted frames to their frame index."""

    start: int
    end: int
    wanted: dict[int, int]

    @property
    def cost(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True)
class SkipRules:
    """How unwanted pictures are avoided: ``nonref`` sets ``skip_frame="NONREF"``
    on unwanted packets; ``disposable`` (H.264, :func:`.h264.disposable_packet_test`)
    tells which packets to leave out."""

    nonref: bool
    disposable: Callable[[Any], bool] | None = None
