"""The ``pyav`` backend's entry point, :func:`load_with_pyav`: plan, decode, clip.
Internal module (``load_video(..., backend="pyav")`` calls it).

The plan (:mod:`.planning`) says what to decode; a sink (:mod:`.sinks`: RGB, or the
decoded planes for ``yuv420=True``) takes the wanted frames, in a buffer of the
caller's :class:`~sfllava_ext.video.FrameBuffers` pool when given; the workers
(:mod:`.workers`) decode the plan's chunks into it, or the whole file in sequence
when its timestamps do not give the order; :func:`decode_into` then checks what was
delivered and makes the clip.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from ..buffers import FrameBuffers
from ..frames import VideoClip, VideoDecodeError, Yuv420Frames, make_clip
from ..limits import DecodeLimits
from . import planning, sinks, workers

logger = logging.getLogger(__name__)


def load_with_pyav(
    path: str,
    num_frames: int,
    fps: float | None,
    buffers: FrameBuffers | None = None,
    yuv420: bool = False,
    threads: int | None = None,
    limits: DecodeLimits | None = None,
) -> VideoClip:
    """``load_video`` for ``backend="pyav"`` on a checked, existing, non-empty file:
    the sampled frames as RGB, or (``yuv420``, where every frame allows it) as
    :class:`~sfllava_ext.video.frames.Yuv420Frames`, decoded on ``threads`` threads
    (:func:`.workers.decode_threads`), under ``limits`` when given (one meter for the
    whole call, the retry in RGB included)."""
    plan = planning.plan_decode(path, num_frames, fps, limits)
    try:
        threads = workers.decode_threads(threads)
        if yuv420 and plan.may_keep_planes:
            try:
                return _decode_pooled(plan, buffers, sinks.Yuv420Sink, threads)
            except sinks.NotPlanar:  # rare: decode again, to RGB
                logger.debug("%s: frames not kept as YUV 4:2:0 planes; decoding to RGB", path)
        return _decode_pooled(plan, buffers, sinks.FrameSink, threads)
    finally:
        plan.close()


def _decode_pooled(
    plan: planning.DecodePlan,
    buffers: FrameBuffers | None,
    sink_type: type[sinks.FrameSink],
    threads: int,
) -> VideoClip:
    """:func:`decode_into` a buffer from ``buffers`` (when given) that the clip keeps
    until ``buffers.release(clip)``, or gives back at once if its frames were copied out."""
    if buffers is None:
        return decode_into(plan, threads, None, sink_type)
    count = len(set(plan.indices))
    buffer = buffers.take(sink_type.nbytes(plan.width, plan.height, count))
    try:
        clip = decode_into(plan, threads, buffer, sink_type)
    except BaseException:
        buffers.give(buffer)
        raise
    frames = clip.frames.y if isinstance(clip.frames, Yuv420Frames) else clip.frames
    if np.may_share_memory(frames.numpy(), buffer):
        clip.hold_buffer(buffer)
    else:  # the frames were copied out (repeated or rotated frames)
        buffers.give(buffer)
    return clip


def decode_into(
    plan: planning.DecodePlan,
    threads: int,
    buffer: np.ndarray | None,
    sink_type: type[sinks.FrameSink],
) -> VideoClip:
    """Run the plan on ``threads`` threads into a ``sink_type`` sink (in ``buffer``
    when given) and make the clip of the frames delivered: a ``RuntimeWarning`` when
    some are missing, VideoDecodeError when none came."""
    path, indices = plan.path, plan.indices
    sink = sink_type(plan.width, plan.height, indices, buffer)
    if plan.chunks:
        workers.run_chunks(plan, sink, threads)
        if sink.timestamps_unreliable:
            logger.info("%s: timestamps out of presentation order; decoding in sequence", path)
            sink = sink_type(plan.width, plan.height, indices, buffer)
            workers.decode_sequential(plan, sink, threads)
    else:
        plan.close()
        workers.decode_sequential(plan, sink, threads)

    delivered = [i for i in indices if i in sink.filled]
    if not delivered:
        raise VideoDecodeError(
            path, f"none of the {len(set(indices))} wanted frames could be decoded"
        )
    if len(delivered) < len(indices):
        missing = sorted(set(indices) - sink.filled)
        warnings.warn(
            f"{path}: {len(missing)} of the wanted frames could not be decoded "
            f"(first: {missing[:5]}); the clip holds {len(delivered)} frames",
            RuntimeWarning,
            # 1 here, 2 _decode_pooled, 3 load_with_pyav, 4 load.load_video,
            # 5 load_video's caller: the line the user wrote
            stacklevel=5,
        )
    frames = sink.gather(delivered)
    rotation = sink.rotation or 0
    turns = (rotation // 90) % 4 if rotation % 90 == 0 else 0
    if turns:
        # decord applies the display matrix with FFmpeg's transpose filter; a lossless
        # quarter turn of the RGB frames gives the same pixels.
        frames = np.rot90(frames, turns, axes=(1, 2))
    return make_clip(frames, delivered, plan.total_frames, plan.fps, "pyav", path)
