"""The ``pyav`` backend's threads: how many (:func:`decode_threads`), how the plan's
chunks are split over worker threads (:func:`run_chunks`, :func:`assign_workers`),
and what one worker does: its own container and decoder (:class:`Reader`), a seek
to each chunk's keyframe and the decode of the chunk into the sink. Files whose
timestamps do not give the presentation order are decoded in one sequence instead
(:func:`decode_sequential`). Internal module.

Under limits (the plan's ``limits`` and ``meter``) every container is opened through
:func:`sfllava_ext.video.limits.open_container`, every decoder gets FFmpeg's
``max_pixels`` (:func:`sfllava_ext.video.limits.limit_decoder`), and the workers check
the shared meter per packet and per frame, so that a breach in one stops all of them;
without limits none of this runs.

Entry points first, in the order :mod:`.decode` calls them; the benchmark's
:func:`decode_chunk_alone` last.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ...utils.cpus import usable_cpus
from .. import limits as video_limits
from ..limits import DecodeLimits, DecodeMeter
from . import planning, sinks

logger = logging.getLogger(__name__)

_THREADS_ENV = "SFLLAVA_DECODE_THREADS"
_MAX_AUTO_THREADS = 16
_BALANCE_SLACK = 1.25  # largest-first GOP split within 25% of even: no decoder threads


def decode_threads(requested: int | None = None) -> int:
    """Threads the ``pyav`` backend decodes with: ``requested`` (``load_video(...,
    threads=)``) when given, else ``$SFLLAVA_DECODE_THREADS`` if set, else the CPUs this
    process may run on (at most 16).

    Raises:
        ValueError: ``requested`` or ``$SFLLAVA_DECODE_THREADS`` is not an integer >= 1.
    """
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"threads must be an int >= 1 or None, got {requested!r}")
        return requested
    env = os.environ.get(_THREADS_ENV, "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            raise ValueError(f"{_THREADS_ENV} must be an integer >= 1, got {env!r}") from None
        if value < 1:
            raise ValueError(f"{_THREADS_ENV} must be an integer >= 1, got {env!r}")
        return value
    return max(1, min(usable_cpus(), _MAX_AUTO_THREADS))


def run_chunks(plan: planning.DecodePlan, sink: sinks.FrameSink, threads: int) -> None:
    """Decode the plan's chunks into ``sink`` on worker threads (:func:`assign_workers`).
    The first worker (the one given the largest chunk) takes over the plan's indexing
    container; if it never starts, the caller's :meth:`~.planning.DecodePlan.close`
    closes the container."""
    workers = assign_workers(threads, plan.chunks)

    def run(mine: list[planning.Chunk], decoder_threads: int, first: bool) -> None:
        container = plan.take_container() if first else None
        _decode_worker(plan, mine, sink, decoder_threads, container)

    if len(workers) == 1:
        run(*workers[0], True)
        return
    with ThreadPoolExecutor(max_workers=len(workers), thread_name_prefix="sfllava-decode") as pool:
        futures = [
            pool.submit(run, mine, decoder_threads, w == 0)
            for w, (mine, decoder_threads) in enumerate(workers)
        ]
        for future in futures:
            future.result()


def assign_workers(
    threads: int, chunks: list[planning.Chunk]
) -> list[tuple[list[planning.Chunk], int]]:
    """Split the chunks over ``min(threads, len(chunks))`` workers: (chunks, FFmpeg
    decoder threads) per worker.

    Largest first, each to the least-loaded worker (cost: packets to decode). Independent
    GOPs in parallel are the cheapest parallelism (no frame-thread hand-offs), so a
    worker decodes single-threaded unless its share is well above an even split: that is
    the long-GOP case (libx264's default 250-frame GOP puts most of a 10 s clip in one
    chunk), where the heavy worker's decoder gets ``threads`` threads (slice or frame
    threads: :func:`decoder_thread_type`) and uses all CPUs once the light workers are
    done.
    """
    workers = max(1, min(threads, len(chunks)))
    if workers == 1:
        return [(list(chunks), threads)]
    plan: list[list[planning.Chunk]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for chunk in sorted(chunks, key=lambda c: c.cost, reverse=True):
        w = loads.index(min(loads))
        plan[w].append(chunk)
        loads[w] += chunk.cost
    even = sum(loads) / workers
    return [
        (mine, threads if load > _BALANCE_SLACK * even else 1)
        for mine, load in zip(plan, loads, strict=True)
    ]


def _decode_worker(
    plan: planning.DecodePlan,
    chunks: Sequence[planning.Chunk],
    sink: sinks.FrameSink,
    decoder_threads: int,
    container: Any = None,
) -> None:
    """One worker: its own container (``container``, taken over, or the file opened
    again) and decoder for its chunks, in file order; the container is closed at the
    end."""
    try:
        reader = Reader(
            plan.path,
            plan.stream_index,
            decoder_threads,
            plan.index.slices,
            container,
            plan.limits,
        )
    except BaseException:
        if container is not None:
            container.close()
        raise
    try:
        for chunk in sorted(chunks, key=lambda c: c.start):
            reader.go_to(plan.index, chunk.start)
            if not _decode_chunk(reader, plan.order, chunk, sink, plan.rules, plan.meter):
                logger.debug(
                    "%s: seek passed packet %d; demuxing from the start", plan.path, chunk.start
                )
                reader.reopen()
                _decode_chunk(reader, plan.order, chunk, sink, plan.rules, plan.meter)
    finally:
        reader.close()


class Reader:
    """One worker's container and decoder; ``fresh`` while nothing has been demuxed.

    Given ``container`` (the one the plan indexed, demuxed but never decoded from), the
    reader takes it over instead of opening the file again: every chunk, the first
    included, is then reached by a seek. Under ``limits`` the file is opened through
    :func:`sfllava_ext.video.limits.open_container` and the decoder gets FFmpeg's
    ``max_pixels``."""

    def __init__(
        self,
        path: str,
        stream_index: int,
        decoder_threads: int,
        slices: int = 0,
        container: Any = None,
        limits: DecodeLimits | None = None,
    ) -> None:
        import av

        self.av = av
        self.path = path
        self.limits = limits
        self.stream_index = stream_index
        self.decoder_threads = decoder_threads
        self.thread_type = decoder_thread_type(decoder_threads, slices)
        self.container: Any = None
        self.stream: Any = None
        self.fresh = False
        self.converter = sinks.Converter()
        if container is None:
            self.reopen()
        else:
            self.use(container, fresh=False)

    def reopen(self) -> None:
        """Close the container and open the file again (``fresh``); VideoDecodeError
        when it cannot be opened (e.g. the file changed since it was indexed)."""
        self.close()
        self.use(video_limits.open_container(self.path, self.limits), fresh=True)

    def use(self, container: Any, fresh: bool) -> None:
        """Decode from ``container`` from now on, with this reader's decoder threads.
        Every container of a reader, opened or taken over, passes here."""
        self.container = container
        self.stream = container.streams.video[self.stream_index]
        self.stream.thread_type = self.thread_type
        self.stream.thread_count = self.decoder_threads
        video_limits.limit_decoder(self.stream, self.limits)
        self.fresh = fresh

    def close(self) -> None:
        """Close the container (if any)."""
        if self.container is not None:
            self.container.close()
            self.container = None
            self.stream = None

    def go_to(self, index: planning.PacketIndex, start: int) -> None:
        """Position the demuxer at or before packet ``start`` (a keyframe). A seek
        that lands past it is caught by :func:`_decode_chunk`, which then decodes
        nothing, and the worker demuxes from a reopened file instead."""
        if self.fresh and start == 0:
            return
        stamps = [t for t in (index.dts[start], index.pts[start]) if t is not None]
        try:
            self.container.seek(min(stamps), stream=self.stream, backward=True)
        except self.av.FFmpegError:
            self.reopen()  # demux from the start instead
            return
        self.fresh = False


def decoder_thread_type(threads: int, slices: int) -> str:
    """FFmpeg threading for one decoder: ``"SLICE"`` when every picture has at least
    one slice per thread (the threads split each picture: no frame-thread hand-offs,
    less CPU; bench_pipeline.py's ``longest_gop`` measures both, docs/benchmarks.md),
    else ``"FRAME"`` (threads take successive pictures). One thread needs no
    threading (``"SLICE"`` with 1 thread)."""
    return "SLICE" if threads <= 1 or slices >= threads else "FRAME"


def _decode_chunk(
    reader: Reader,
    order: dict[int, int],
    chunk: planning.Chunk,
    sink: sinks.FrameSink,
    rules: planning.SkipRules,
    meter: DecodeMeter | None = None,
) -> bool:
    """Decode packets ``chunk.start`` .. ``chunk.end`` and keep the wanted frames.

    Wanted packets are decoded normally; unwanted disposable ones (``rules``) are left
    out, the others decoded with ``skip_frame="NONREF"``, which drops a picture only
    when no other picture references it. The decoder is drained
    at the end instead of reading further packets. Returns False when the demuxer never
    gave packet ``chunk.start`` (a seek that overshot, or one that landed where no
    packet matches the index); nothing was decoded then. A ``meter`` checks every
    packet and every frame the decoder outputs, and tells a decoder error that is
    FFmpeg refusing an oversize frame (VideoLimitError) from a damaged file (a
    warning, and the clip ends early, as without limits).
    """
    av = reader.av
    codec = reader.stream.codec_context
    remaining = dict(chunk.wanted)
    last_pts: list[int] = []

    def collect(frames: list[Any]) -> None:
        for frame in frames:
            if meter is not None:
                meter.frame(frame.width, frame.height)
            if frame.pts is None:
                continue
            if last_pts and frame.pts <= last_pts[0]:
                sink.timestamps_unreliable = True
            last_pts[:] = [frame.pts]
            frame_index = remaining.pop(frame.pts, None)
            if frame_index is not None:
                sink.add(frame_index, frame, reader.converter)

    reader.fresh = False
    mode = None
    try:
        for packet in planning.demux(reader.container, reader.stream):
            if meter is not None:
                meter.packet()
            if packet.size == 0:
                break
            position = order.get(packet.pts, -1) if packet.pts is not None else -1
            if position < chunk.start:
                continue  # before our keyframe (or unknown): not needed
            if mode is None and position > chunk.start:
                return False
            unwanted = packet.pts not in remaining
            if unwanted and rules.disposable is not None and rules.disposable(packet):
                continue
            want = "NONREF" if rules.nonref and unwanted else "DEFAULT"
            if want != mode:
                codec.skip_frame = want
                mode = want
            collect(codec.decode(packet))
            if position >= chunk.end or not remaining:
                break
        if mode is None:  # the demuxer never came to packet chunk.start: nothing decoded
            return False
        if remaining:
            codec.skip_frame = "DEFAULT"
            collect(codec.decode(None))  # drain the frames the decoder still holds
    except av.FFmpegError as exc:
        if meter is not None:
            meter.decoder_failed(codec)  # FFmpeg's max_pixels refusal: VideoLimitError
        logger.warning(
            "%s: decoding stopped inside packets %d..%d: %s",
            reader.path,
            chunk.start,
            chunk.end,
            exc,
        )
    finally:
        codec.skip_frame = "DEFAULT"
        codec.flush_buffers()
    return True


def decode_sequential(plan: planning.DecodePlan, sink: sinks.FrameSink, threads: int) -> None:
    """Fallback when timestamps do not give the order: decode from the start and count
    the frames the decoder outputs (they come out in presentation order). Under the
    plan's limits, as :func:`_decode_chunk` (its meter checks every frame).

    Raises:
        VideoDecodeError: the file cannot be opened again.
        VideoLimitError: a bound of the plan's limits.
    """
    import av

    remaining = set(plan.indices)
    last = max(remaining)
    converter = sinks.Converter()
    meter = plan.meter
    with video_limits.open_container(plan.path, plan.limits) as container:
        stream = container.streams.video[plan.stream_index]
        stream.thread_type = decoder_thread_type(threads, plan.index.slices)
        stream.thread_count = threads
        video_limits.limit_decoder(stream, plan.limits)
        try:
            frames = (f for p in planning.demux(container, stream) for f in stream.decode(p))
            for position, frame in enumerate(frames):
                if meter is not None:
                    meter.frame(frame.width, frame.height)
                if position in remaining:
                    sink.add(position, frame, converter)
                    remaining.discard(position)
                if position >= last:
                    break
        except av.FFmpegError as exc:
            if meter is not None:
                meter.decoder_failed(stream.codec_context)
            logger.warning("%s: decoding stopped: %s", plan.path, exc)


def decode_chunk_alone(
    plan: planning.DecodePlan,
    chunk: planning.Chunk,
    sink: sinks.FrameSink,
    decoder_threads: int,
    slices: int,
    container: Any = None,
) -> None:
    """Decode one chunk of ``plan`` by itself, as a worker decodes it, for measuring
    it (benchmarks/bench_pipeline.py): with ``decoder_threads`` FFmpeg threads whose
    type :func:`decoder_thread_type` picks as for pictures of ``slices`` slices
    (0: frame threads, ``decoder_threads``: slice threads), from ``container`` (an open
    container of the file, taken over and closed; None: the file is opened)."""
    variant = dataclasses.replace(plan, index=dataclasses.replace(plan.index, slices=slices))
    _decode_worker(variant, [chunk], sink, decoder_threads, container)
