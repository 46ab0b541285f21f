"""Video file -> sampled RGB frames (SPEC step 1). The first stage of the data path.

``load_video(path, num_frames=50)`` opens a video file (or a folder of images), picks
frames with the published SlowFast-LLaVA rule (:func:`sample_frame_indices`) or on a
fixed time grid (``fps=``), and returns them as a :class:`VideoClip` whose ``frames``
are uint8 RGB, shape (T, H, W, 3), contiguous.

Two decoding backends return bit-identical frames for the same file and indices:

* ``decord``: ``decord.VideoReader(path).get_batch(indices)``, what the published code
  runs. Imported lazily, one reader per call (a reader shared between threads aborts
  the process) and released as soon as the frames are copied out (an idle reader keeps
  decoding ahead and holds hundreds of MB).
* ``pyav``: PyAV (FFmpeg) with a decode plan: the packets are indexed once, every group
  of picture (GOP) that holds a wanted frame is decoded from its keyframe up to the last
  wanted frame only, GOPs are decoded in parallel (one container and decoder per worker
  thread), non-reference frames that are not wanted are never decoded
  (H.264 packets that hold only non-reference pictures are not even sent to the
  decoder; other codecs use ``skip_frame="NONREF"`` packet by packet) and only wanted
  frames are converted to RGB (or, with ``yuv420=True``, kept as their YUV 4:2:0 planes:
  :class:`~sfllava_ext.yuv_to_rgb.Yuv420Frames`, which ``normalize_frames`` converts row
  by row in cache).
  The YUV -> RGB conversion is the same swscale call decord makes (same-size, bilinear
  flags, the frame's own colour matrix and range, unscaled fast path), so the pixels
  match decord's bit for bit; the test-suite checks it on many files.

``auto`` picks ``pyav``: it returns the same frames and is faster (see docs/video.md and
benchmarks/bench_decode.py). Repeated loads can decode into reused memory
(:class:`FrameBuffers`, ``load_video(..., buffers=pool)``). A folder of images is read
with Pillow (backend ``"images"``). No torch op runs here; the final array is only
wrapped with ``torch.from_numpy``.
"""

from __future__ import annotations

import bisect
import errno
import logging
import math
import numbers
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from .frames import VideoClip, VideoDecodeError, Yuv420Frames
from .yuv_to_rgb import FULL_RANGE, frame_planes, native_coeffs, yuv420_to_rgb

__all__ = [
    "BACKENDS",
    "FrameBuffers",
    "VideoClip",
    "VideoDecodeError",
    "decode_threads",
    "fps_frame_indices",
    "load_video",
    "sample_frame_indices",
]

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "pyav", "decord")
AUTO_BACKEND = "pyav"  # measured faster with identical frames: docs/video.md
_THREADS_ENV = "SFLLAVA_DECODE_THREADS"
_MAX_AUTO_THREADS = 16
_BALANCE_SLACK = 1.25  # largest-first GOP split within 25% of even: no decoder threads
# Decoders whose AVDISCARD_NONREF drops only pictures no other picture references.
_NONREF_SAFE_CODECS = frozenset({"h264", "hevc", "mpeg4", "mpeg2video", "mpeg1video"})
# Pixel formats the native YUV -> RGB converter takes (yuvj: full range).
_NATIVE_FORMATS = frozenset({"yuv420p", "yuvj420p"})


class FrameBuffers:
    """Reusable memory for the decoded frames of repeated loads.

    A freshly allocated frame buffer (138 MB for 50 frames of 720p) costs the kernel a
    page fault and a zeroed page per 4 KiB as the decoder first writes it; a buffer
    that an earlier load used costs nothing (``python benchmarks/bench_decode.py``
    measures both).

    ``load_video(..., buffers=pool)`` (the ``pyav`` backend) decodes into a buffer taken
    from the pool; ``pool.release(clip)`` gives it back once nothing reads
    ``clip.frames`` any more: the next load overwrites them. A clip that is never
    released keeps its buffer until the clip itself is freed: nothing leaks, the memory
    is just not reused. An idle buffer is reused only for frames that fill at least
    half of it, so a clip never pins much more memory than its frames.
    :class:`SlowFastLlava` keeps one pool per model and releases each clip as soon as
    its frames are normalised. Thread-safe.

    Args:
        max_idle_bytes: most bytes kept while not lent out (default 1 GiB); buffers
            beyond it are freed, oldest first.
    """

    def __init__(self, max_idle_bytes: int = 1 << 30) -> None:
        if isinstance(max_idle_bytes, bool) or not isinstance(max_idle_bytes, int):
            raise TypeError(
                f"FrameBuffers: max_idle_bytes must be an int, got {type(max_idle_bytes).__name__}"
            )
        if max_idle_bytes < 0:
            raise ValueError(f"FrameBuffers: max_idle_bytes must be >= 0, got {max_idle_bytes}")
        self.max_idle_bytes = max_idle_bytes
        self._idle: list[np.ndarray] = []
        self._lock = threading.Lock()

    @property
    def idle_bytes(self) -> int:
        """Bytes held by buffers that are not lent out."""
        with self._lock:
            return sum(b.nbytes for b in self._idle)

    def take(self, nbytes: int) -> np.ndarray:
        """A 1-D uint8 buffer of at least ``nbytes``: the smallest idle one that is
        large enough and at most twice that, else a new one of exactly ``nbytes``."""
        with self._lock:
            fits = [b for b in self._idle if nbytes <= b.nbytes <= 2 * max(nbytes, 1)]
            if fits:
                buffer = min(fits, key=lambda b: b.nbytes)
                self._idle = [b for b in self._idle if b is not buffer]
                return buffer
        return np.empty(nbytes, dtype=np.uint8)

    def give(self, buffer: np.ndarray) -> None:
        """Return a buffer from :meth:`take` (nothing may use it afterwards)."""
        if not isinstance(buffer, np.ndarray) or buffer.dtype != np.uint8 or buffer.ndim != 1:
            raise TypeError(
                "FrameBuffers.give: buffer must be a 1-D uint8 numpy array from take(), got "
                f"{type(buffer).__name__} {getattr(buffer, 'dtype', '')}"
            )
        with self._lock:
            if any(b is buffer for b in self._idle):
                return
            self._idle.append(buffer)
            while self._idle and sum(b.nbytes for b in self._idle) > self.max_idle_bytes:
                self._idle.pop(0)

    def release(self, clip: VideoClip | None) -> None:
        """Give back the buffer of a clip loaded with ``buffers=`` this pool; its
        ``frames`` must not be read afterwards. No-op for any other clip, for
        ``None`` and for a clip already released."""
        with self._lock:
            buffer = getattr(clip, "_buffer", None)
            if buffer is None:
                return
            clip._buffer = None  # type: ignore[union-attr]
        self.give(buffer)

    def clear(self) -> None:
        """Free the idle buffers."""
        with self._lock:
            self._idle = []


# --------------------------------------------------------------------------- sampling


def sample_frame_indices(total_frames: int, num_frames: int) -> list[int]:
    """The published frame sampling (SPEC step 1).

    ``n = min(total_frames, num_frames)``, ``step = (total_frames - 1) / n``, and frame
    ``i`` is ``(round(step * i) + round(step * (i + 1))) // 2`` with round-half-to-even.
    A video shorter than ``num_frames`` gives ``total_frames`` indices (possibly
    repeated); an empty video gives none.
    """
    if isinstance(total_frames, bool) or int(total_frames) != total_frames or total_frames < 0:
        raise ValueError(
            f"sample_frame_indices: total_frames must be an int >= 0, got {total_frames!r}"
        )
    if isinstance(num_frames, bool) or int(num_frames) != num_frames or num_frames < 1:
        raise ValueError(
            f"sample_frame_indices: num_frames must be an int >= 1, got {num_frames!r}"
        )
    n = min(int(total_frames), int(num_frames))
    if n == 0:
        return []
    step = (int(total_frames) - 1) / n
    # np.rint rounds half to even, like np.round in the published code.
    bounds = np.rint(step * np.arange(n + 1, dtype=np.float64)).astype(np.int64)
    return ((bounds[:-1] + bounds[1:]) // 2).tolist()


def fps_frame_indices(
    total_frames: int, video_fps: float, fps: float, max_frames: int
) -> list[int]:
    """Frames on a fixed time grid: one every ``1 / fps`` seconds, starting at t = 0.

    Sample ``k`` is at ``t = k / fps``; its frame is ``floor(t * video_fps)`` (the frame
    shown at that time), computed exactly with fractions. When the grid holds more than
    ``max_frames`` samples, ``max_frames`` of them are kept, spread over the whole video
    with :func:`sample_frame_indices` over the grid (so the end of a long video is not
    cut off).
    """
    if not fps > 0:
        raise ValueError(f"fps_frame_indices: fps must be > 0, got {fps!r}")
    if not video_fps > 0:
        raise ValueError(f"fps_frame_indices: the video has no frame rate (got {video_fps!r})")
    if max_frames < 1:
        raise ValueError(f"fps_frame_indices: max_frames must be >= 1, got {max_frames!r}")
    frames_per_sample = Fraction(video_fps).limit_denominator(1_000_000) / Fraction(
        fps
    ).limit_denominator(1_000_000)
    grid = []
    k = 0
    while True:
        index = int(k * frames_per_sample)  # floor: both are positive
        if index >= total_frames:
            break
        grid.append(index)
        k += 1
    if len(grid) > max_frames:
        grid = [grid[i] for i in sample_frame_indices(len(grid), max_frames)]
    return grid


def _check_indices(path: str, indices: Sequence[int], total_frames: int) -> None:
    bad = [i for i in indices if not 0 <= i < total_frames]
    if bad:
        raise VideoDecodeError(
            path, f"frame indices {bad[:5]} out of range for {total_frames} frames"
        )


def _pick_indices(
    path: str, total_frames: int, video_fps: float | None, num_frames: int, fps: float | None
) -> list[int]:
    if fps is None:
        indices = sample_frame_indices(total_frames, num_frames)
    else:
        if not video_fps or video_fps <= 0:
            raise VideoDecodeError(path, "fps= needs the video's frame rate, which is unknown")
        indices = fps_frame_indices(total_frames, video_fps, fps, num_frames)
    _check_indices(path, indices, total_frames)
    return indices


# --------------------------------------------------------------------------- public API


def decode_threads() -> int:
    """Threads the ``pyav`` backend decodes with: ``$SFLLAVA_DECODE_THREADS`` if set,
    else the CPUs this process may run on (at most 16)."""
    env = os.environ.get(_THREADS_ENV, "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            raise ValueError(f"{_THREADS_ENV} must be an integer >= 1, got {env!r}") from None
        if value < 1:
            raise ValueError(f"{_THREADS_ENV} must be an integer >= 1, got {env!r}")
        return value
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _MAX_AUTO_THREADS))


def load_video(
    path: str | os.PathLike,
    num_frames: int = 50,
    *,
    backend: str = "auto",
    fps: float | None = None,
    buffers: FrameBuffers | None = None,
    yuv420: bool = False,
) -> VideoClip:
    """Decode the sampled frames of a video file or a folder of images.

    Args:
        path: a video file, or a folder whose image files (sorted by name) are the frames.
        num_frames: frames wanted (the published default is 50). With ``fps=None`` the
            published midpoint sampling picks them; with ``fps`` it is the cap.
        backend: ``"auto"`` (``"pyav"``), ``"pyav"`` or ``"decord"``; both return
            identical frames. Ignored for a folder of images.
        fps: if given, one frame every ``1 / fps`` seconds instead (:func:`fps_frame_indices`).
        buffers: a :class:`FrameBuffers` pool to decode into (``pyav``); give the memory
            back with ``buffers.release(clip)`` when done with the frames.
        yuv420: keep the frames as decoded, YUV 4:2:0 planes (:class:`Yuv420Frames`:
            no RGB conversion, half the memory) where every sampled frame allows it
            (``pyav``; 4:2:0 of the stream's size with an even height, no rotation, a
            colour matrix converted natively); RGB otherwise. ``normalize_frames``
            takes either, with the same result.

    Returns:
        A :class:`VideoClip`; ``frames`` is a uint8 tensor (T, H, W, 3), RGB, contiguous
        (or :class:`Yuv420Frames`, see ``yuv420``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        VideoDecodeError: the file cannot be read as a video (empty, not a video,
            truncated beyond use, no video stream, unknown codec, ...).
        ValueError: bad arguments.
        ImportError: ``backend="decord"`` without decord installed.

    Frames that the container announces but that cannot be read (a truncated file)
    end the clip early with a ``RuntimeWarning`` (pyav); decord raises VideoDecodeError.
    """
    path = os.fspath(path)
    if isinstance(num_frames, bool) or int(num_frames) != num_frames or num_frames < 1:
        raise ValueError(f"load_video: num_frames must be an int >= 1, got {num_frames!r}")
    num_frames = int(num_frames)
    if backend not in BACKENDS:
        raise ValueError(f"load_video: backend must be one of {BACKENDS}, got {backend!r}")
    if fps is not None and (
        isinstance(fps, bool)
        or not isinstance(fps, numbers.Real)
        or not math.isfinite(fps)
        or fps <= 0
    ):
        raise ValueError(f"load_video: fps must be a finite number > 0 or None, got {fps!r}")
    if not isinstance(yuv420, bool):
        raise TypeError(f"load_video: yuv420 must be a bool, got {type(yuv420).__name__}")
    if buffers is not None and not isinstance(buffers, FrameBuffers):
        raise TypeError(
            f"load_video: buffers must be a FrameBuffers or None, got {type(buffers).__name__}"
        )
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "video not found", path)
    if os.path.isdir(path):
        return _load_image_folder(path, num_frames, fps)
    if not os.path.isfile(path):
        raise VideoDecodeError(path, "not a regular file")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "the file is empty (0 bytes)")
    chosen = AUTO_BACKEND if backend == "auto" else backend
    if chosen == "decord":
        return _load_with_decord(path, num_frames, fps)
    return _load_with_pyav(path, num_frames, fps, buffers, yuv420)


def _make_clip(
    array: np.ndarray | Yuv420Frames,
    indices: list[int],
    total_frames: int,
    video_fps: float | None,
    backend: str,
    path: str,
) -> VideoClip:
    if isinstance(array, Yuv420Frames):
        frames: torch.Tensor | Yuv420Frames = array
    else:
        frames = torch.from_numpy(np.ascontiguousarray(array, dtype=np.uint8))
    duration = total_frames / video_fps if video_fps else None
    return VideoClip(
        frames=frames,
        indices=list(indices),
        total_frames=total_frames,
        fps=video_fps,
        duration=duration,
        backend=backend,
        path=path,
    )


# --------------------------------------------------------------------------- images


def _image_extensions() -> set[str]:
    from PIL import Image

    return {ext.lower() for ext in Image.registered_extensions()}


def _load_image_folder(path: str, num_frames: int, fps: float | None) -> VideoClip:
    """A folder of images as a video: image files sorted by name, hidden files skipped."""
    from PIL import Image, UnidentifiedImageError

    if fps is not None:
        raise ValueError(f"load_video: fps= needs a frame rate; the folder '{path}' has none")
    extensions = _image_extensions()
    names = sorted(
        name
        for name in os.listdir(path)
        if not name.startswith(".")
        and os.path.splitext(name)[1].lower() in extensions
        and os.path.isfile(os.path.join(path, name))
    )
    if not names:
        raise VideoDecodeError(path, "the folder holds no image files")
    indices = sample_frame_indices(len(names), num_frames)
    unique = sorted(set(indices))
    decoded: dict[int, np.ndarray] = {}
    for i in unique:
        file = os.path.join(path, names[i])
        try:
            with Image.open(file) as image:
                decoded[i] = np.asarray(image.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise VideoDecodeError(path, f"cannot read image '{names[i]}': {exc}") from exc
    shapes = {a.shape for a in decoded.values()}
    if len(shapes) > 1:
        raise VideoDecodeError(path, f"the images differ in size: {sorted(shapes)}")
    array = np.stack([decoded[i] for i in indices])
    return _make_clip(array, indices, len(names), None, "images", path)


# --------------------------------------------------------------------------- decord


def _decord_reason(exc: BaseException) -> str:
    """decord's messages start with '[time] /path/file.cc:line: '; keep the rest."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    marker = text.find(".cc:")
    if text.startswith("[") and marker != -1:
        rest = text[marker + 4 :]
        text = rest.split(": ", 1)[1] if ": " in rest else rest
    return f"decord: {text}"


def _load_with_decord(path: str, num_frames: int, fps: float | None) -> VideoClip:
    """``decord.VideoReader(path).get_batch(indices)``, one reader per call, freed at once."""
    try:
        import decord
    except ImportError as exc:
        raise ImportError(
            "load_video(backend='decord') needs decord (pip install decord); "
            "backend='pyav' returns the same frames"
        ) from exc
    decord_errors = (decord.DECORDError, RuntimeError, AssertionError, IndexError)
    reader = None
    try:
        try:
            reader = decord.VideoReader(path, ctx=decord.cpu(0))
            total_frames = len(reader)
            video_fps = float(reader.get_avg_fps())
        except decord_errors as exc:
            raise VideoDecodeError(path, _decord_reason(exc)) from exc
        if total_frames < 1:
            raise VideoDecodeError(path, "decord: the video has no frames")
        if not np.isfinite(video_fps) or video_fps <= 0:
            video_fps = None
        indices = _pick_indices(path, total_frames, video_fps, num_frames, fps)
        try:
            batch = reader.get_batch(indices)
        except decord_errors as exc:
            raise VideoDecodeError(path, _decord_reason(exc)) from exc
        # decord's output bridge is global state (another library may switch it to torch).
        array = batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)
        del batch
    finally:
        # Release the reader now: its decoder thread keeps decoding ahead while it lives.
        del reader
    return _make_clip(array, indices, total_frames, video_fps, "decord", path)


# --------------------------------------------------------------------------- pyav


@dataclass(frozen=True)
class _PacketIndex:
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


@dataclass
class _Chunk:
    """Packets ``start`` .. ``end`` (decode order) decoded in one go from the keyframe at
    ``start``; ``wanted`` maps the pts of wanted frames to their frame index."""

    start: int
    end: int
    wanted: dict[int, int]

    @property
    def cost(self) -> int:
        return self.end - self.start + 1


def _import_av() -> Any:
    import av

    return av


def _open_container(av: Any, path: str) -> Any:
    try:
        return av.open(path, mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise VideoDecodeError(path, f"cannot open the container ({_av_reason(exc)})") from exc


def _av_reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(": '", 1)[0]


def _video_stream(av: Any, container: Any, path: str) -> Any:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise VideoDecodeError(path, f"no video stream (streams: {', '.join(kinds)})")
    stream = container.streams.best("video") or container.streams.video[0]
    if stream.codec_context is None:
        raise VideoDecodeError(path, "no decoder for the video stream's codec")
    return stream


def _index_packets(
    av: Any,
    container: Any,
    stream: Any,
    path: str,
    nal_headers: Callable[[Any], list[int] | None] | None = None,
) -> _PacketIndex:
    """Demux (no decoding) every packet of ``stream``: pts, dts, keyframe flag; and,
    given ``nal_headers`` (H.264), the fewest slices per picture in the first
    ``_SLICE_SAMPLE`` packets."""
    pts: list[int | None] = []
    dts: list[int | None] = []
    keyframe: list[bool] = []
    slice_counts: list[int] = []
    truncated = False
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the demuxer's final flush packet
                continue
            pts.append(packet.pts)
            dts.append(packet.dts)
            keyframe.append(bool(packet.is_keyframe))
            if nal_headers is not None and len(slice_counts) < _SLICE_SAMPLE:
                slice_counts.append(_h264_slice_count(nal_headers(packet)))
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
            stacklevel=6,
        )
    return _PacketIndex(pts, dts, keyframe, truncated, min(slice_counts, default=0))


def _timestamps_give_order(index: _PacketIndex, reorders: bool) -> bool:
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


def _plan_chunks(index: _PacketIndex, frame_pts: list[int], wanted: Sequence[int]) -> list[_Chunk]:
    """Group the wanted frames by the keyframe their decoding must start from.

    A frame whose packet sits in GOP g (decode order) starts at g's keyframe, except a
    leading picture shown before that keyframe (open GOP), which starts one GOP earlier.
    """
    order = {p: i for i, p in enumerate(index.pts)}
    keys = [i for i, k in enumerate(index.keyframe) if k] or [0]
    if keys[0] != 0:
        keys.insert(0, 0)  # packets before the first flagged keyframe: decode from the start
    chunks: dict[int, _Chunk] = {}
    for frame in sorted(set(wanted)):
        pts = frame_pts[frame]
        position = order[pts]
        g = bisect.bisect_right(keys, position) - 1
        key_pts = index.pts[keys[g]]
        if g > 0 and key_pts is not None and pts < key_pts:
            g -= 1
        start = keys[g]
        chunk = chunks.setdefault(start, _Chunk(start, position, {}))
        chunk.end = max(chunk.end, position)
        chunk.wanted[pts] = frame
    return sorted(chunks.values(), key=lambda c: c.start)


# ------------------------------------------------------- non-reference H.264 packets

# NAL unit types a droppable packet may hold besides its non-reference slices:
# access unit delimiter and filler data. Anything else (SEI, parameter sets, ...)
# keeps the packet, since it could matter to later pictures.
_H264_SLICE = 1
_H264_HARMLESS = frozenset({9, 12})
_H264_SLICES = frozenset({1, 5})  # coded slice of a non-IDR / an IDR picture
_SLICE_SAMPLE = 16  # packets whose slices are counted while indexing


def _h264_nal_headers_avcc(data: memoryview, length_size: int) -> list[int] | None:
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


def _h264_nal_headers_annexb(data: memoryview) -> list[int] | None:
    """The NAL header bytes of a start-code (Annex B: .h264, MPEG-TS) packet."""
    raw = bytes(data)
    headers = []
    pos = raw.find(b"\x00\x00\x01")
    while pos != -1 and pos + 3 < len(raw):
        headers.append(raw[pos + 3])
        pos = raw.find(b"\x00\x00\x01", pos + 3)
    return headers or None


def _h264_disposable(headers: list[int] | None) -> bool:
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


def _h264_slice_count(headers: list[int] | None) -> int:
    """Slices (NAL units of coded slice types 1 and 5) in one packet; 0 if unknown."""
    return sum(1 for header in headers or () if (header & 0x1F) in _H264_SLICES)


def _h264_header_reader(
    codec_name: str, extradata: bytes | None
) -> Callable[[Any], list[int] | None] | None:
    """For H.264: packet -> the header bytes of its NAL units (avcC or Annex B
    framing, from the extradata); None for other codecs."""
    if codec_name != "h264":
        return None
    if extradata and extradata[0] == 1 and len(extradata) >= 7:  # avcC
        length_size = (extradata[4] & 3) + 1
        return lambda packet: _h264_nal_headers_avcc(memoryview(packet), length_size)
    return lambda packet: _h264_nal_headers_annexb(memoryview(packet))


def _disposable_packet_test(
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
    headers = _h264_header_reader(codec_name, extradata)
    if headers is None:
        return None
    return lambda packet: _h264_disposable(headers(packet))


@dataclass(frozen=True)
class _SkipRules:
    """How unwanted pictures are avoided: ``nonref`` sets ``skip_frame="NONREF"``
    on unwanted packets; ``disposable`` (H.264) tells which packets to leave out."""

    nonref: bool
    disposable: Callable[[Any], bool] | None = None


class _FrameSink:
    """The output: one (H, W, 3) uint8 slot per distinct wanted frame, filled by the
    workers. Each worker converts with its own :class:`_Converter`; decoded frames are
    dropped as soon as their pixels are in the slot."""

    def __init__(
        self, width: int, height: int, wanted: Sequence[int], buffer: np.ndarray | None = None
    ) -> None:
        self.width = width
        self.height = height
        self.slots = {frame: slot for slot, frame in enumerate(sorted(set(wanted)))}
        self._allocate(buffer)
        self.filled: set[int] = set()
        self.rotation: int | None = None
        # set when decoded frames come out of order of their timestamps: the container's
        # timestamps do not give the presentation order (e.g. H.264 in AVI)
        self.timestamps_unreliable = False
        self.lock = threading.Lock()

    @staticmethod
    def nbytes(width: int, height: int, count: int) -> int:
        """Bytes of the slots of ``count`` frames."""
        return count * height * width * 3

    def _allocate(self, buffer: np.ndarray | None) -> None:
        shape = (len(self.slots), self.height, self.width, 3)
        if buffer is None:
            self.array = np.empty(shape, dtype=np.uint8)
        else:  # a pooled buffer of at least nbytes(shape)
            self.array = buffer[: math.prod(shape)].reshape(shape)

    def add(self, frame_index: int, frame: Any, converter: _Converter) -> None:
        slot = self.slots[frame_index]
        converter.convert_into(frame, self.array[slot])
        self._filled(frame_index, int(getattr(frame, "rotation", 0) or 0))

    def _filled(self, frame_index: int, rotation: int) -> None:
        with self.lock:
            if self.rotation is None:
                self.rotation = rotation
            self.filled.add(frame_index)

    def gather(self, indices: Sequence[int]) -> np.ndarray:
        """(len(indices), H, W, 3) in ``indices`` order; no copy when nothing repeats."""
        slots = [self.slots[i] for i in indices]
        if slots == list(range(len(self.slots))):
            return self.array
        return self.array[slots]


class _NotPlanar(Exception):
    """A wanted frame that :class:`Yuv420Frames` cannot hold as decoded (another pixel
    format or size, an odd height, a rotation, a colour matrix not converted natively,
    or one that differs from the other frames'): the clip is decoded to RGB instead."""


class _Yuv420Sink(_FrameSink):
    """The output as decoded: the wanted frames' Y, U and V planes copied into one
    buffer, no RGB conversion (the conversion happens in cache inside
    ``normalize_frames``). A frame that the planes cannot hold raises
    :class:`_NotPlanar`, and so does every frame after it."""

    @staticmethod
    def nbytes(width: int, height: int, count: int) -> int:
        return count * (height * width + 2 * ((height + 1) // 2) * ((width + 1) // 2))

    def _allocate(self, buffer: np.ndarray | None) -> None:
        n, h, w = len(self.slots), self.height, self.width
        ch, cw = (h + 1) // 2, (w + 1) // 2
        flat = np.empty(self.nbytes(w, h, n), np.uint8) if buffer is None else buffer
        luma, chroma = n * h * w, n * ch * cw
        self.y = flat[:luma].reshape(n, h, w)
        self.u = flat[luma : luma + chroma].reshape(n, ch, cw)
        self.v = flat[luma + chroma : luma + 2 * chroma].reshape(n, ch, cw)
        self.coeffs: tuple[int, ...] | None = None
        self.refused = False

    def add(self, frame_index: int, frame: Any, converter: _Converter) -> None:
        coeffs = _native_coeffs_of(frame, self.width, self.height)
        with self.lock:
            fits = coeffs is not None and self.coeffs in (None, coeffs)
            if self.refused or not fits or int(getattr(frame, "rotation", 0) or 0):
                self.refused = True
                raise _NotPlanar
            self.coeffs = coeffs
        slot = self.slots[frame_index]
        outs = (self.y[slot], self.u[slot], self.v[slot])
        for plane, out in zip(frame.planes, outs, strict=True):
            rows, cols = out.shape
            data = np.frombuffer(plane, np.uint8)
            np.copyto(out, data[: rows * plane.line_size].reshape(rows, -1)[:, :cols])
        self._filled(frame_index, 0)

    def gather(self, indices: Sequence[int]) -> Yuv420Frames:  # type: ignore[override]
        """The planes of ``indices`` in order; no copy when nothing repeats."""
        slots = [self.slots[i] for i in indices]
        planes = (self.y, self.u, self.v)
        if slots != list(range(len(self.slots))):
            planes = tuple(p[slots] for p in planes)
        y, u, v = (torch.from_numpy(p) for p in planes)
        return Yuv420Frames(y, u, v, self.coeffs or ())


def _native_coeffs_of(frame: Any, width: int, height: int) -> tuple[int, ...] | None:
    """The native converter's coefficients for a decoded frame, or None when it must go
    through swscale: not YUV 4:2:0 (or full-range yuvj420p), another size than the
    stream's (swscale scales it), an odd height (swscale's unscaled path differs), or a
    colour matrix whose native coefficients do not match this swscale."""
    fmt = frame.format.name
    if fmt not in _NATIVE_FORMATS or frame.width != width or frame.height != height:
        return None
    if height % 2:
        return None
    full = fmt == "yuvj420p" or int(frame.color_range) == FULL_RANGE
    return native_coeffs(int(frame.colorspace), FULL_RANGE if full else 1)


class _Converter:
    """YUV -> RGB24 exactly as decord gets it: swscale, same size, bilinear flags (the
    default of FFmpeg's scale filter), colour matrix and range from the frame. One per
    worker thread: the swscale context is built once and reused, and runs on the
    worker's thread (the workers already use the cores).

    A YUV 4:2:0 frame of the stream's size and an even height (where swscale runs its
    unscaled fixed-point converter) is converted natively instead, straight into the
    output slot (:mod:`sfllava_ext.yuv_to_rgb`: same bytes, no intermediate frame and
    no copy), when the native coefficients were checked against this swscale."""

    def __init__(self) -> None:
        from av.video.reformatter import VideoReformatter

        self.reformatter = VideoReformatter()

    def convert_into(self, frame: Any, out: np.ndarray) -> None:
        """Write the frame's RGB24 pixels into ``out`` (H, W, 3)."""
        height, width = out.shape[0], out.shape[1]
        coeffs = _native_coeffs_of(frame, width, height)
        if coeffs is not None:
            yuv420_to_rgb(*frame_planes(frame), coeffs, out=torch.from_numpy(out))
        else:
            out[...] = self.rgb(frame, width, height)

    def rgb(self, frame: Any, width: int, height: int) -> np.ndarray:
        """(height, width, 3) uint8 view of a converted frame (valid until the next call)."""
        # A frame of another size (a stream that changes resolution) is scaled to the
        # stream's size, as decord's filter graph does.
        converted = self.reformatter.reformat(
            frame, width=width, height=height, format="rgb24", threads=1
        )
        return converted.to_ndarray()


def _decoder_thread_type(threads: int, slices: int) -> str:
    """FFmpeg threading for one decoder: ``"SLICE"`` when every picture has at least
    one slice per thread (the threads split each picture: no frame-thread hand-offs,
    less CPU; measured on 2-slice 720p H.264 with 2 threads: 143 ms against 153 ms
    for frame threads on a 246-picture GOP), else ``"FRAME"`` (threads take
    successive pictures). One thread needs no threading (``"SLICE"`` with 1 thread)."""
    return "SLICE" if threads <= 1 or slices >= threads else "FRAME"


class _Reader:
    """One worker's container and decoder; ``fresh`` while nothing has been demuxed.

    Given ``container`` (the one the plan indexed, demuxed but never decoded from), the
    reader takes it over instead of opening the file again: every chunk, the first
    included, is then reached by a seek."""

    def __init__(
        self,
        av: Any,
        path: str,
        stream_index: int,
        decoder_threads: int,
        slices: int = 0,
        container: Any = None,
    ) -> None:
        self.av = av
        self.path = path
        self.stream_index = stream_index
        self.decoder_threads = decoder_threads
        self.thread_type = _decoder_thread_type(decoder_threads, slices)
        self.container: Any = None
        self.stream: Any = None
        self.fresh = False
        self.converter = _Converter()
        if container is None:
            self.reopen()
        else:
            self._use(container, fresh=False)

    def reopen(self) -> None:
        self.close()
        try:
            container = self.av.open(self.path, mode="r", metadata_errors="ignore")
        except self.av.FFmpegError as exc:  # e.g. the file changed since it was indexed
            raise VideoDecodeError(self.path, f"cannot reopen: {_av_reason(exc)}") from exc
        self._use(container, fresh=True)

    def _use(self, container: Any, fresh: bool) -> None:
        self.container = container
        self.stream = container.streams.video[self.stream_index]
        self.stream.thread_type = self.thread_type
        self.stream.thread_count = self.decoder_threads
        self.fresh = fresh

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None
            self.stream = None

    def go_to(self, index: _PacketIndex, start: int) -> None:
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


def _decode_chunk(
    reader: _Reader,
    order: dict[int, int],
    chunk: _Chunk,
    sink: _FrameSink,
    rules: _SkipRules,
) -> bool:
    """Decode packets ``chunk.start`` .. ``chunk.end`` and keep the wanted frames.

    Wanted packets are decoded normally; unwanted disposable ones (``rules``) are left
    out, the others decoded with ``skip_frame="NONREF"``, which drops a picture only
    when no other picture references it. The decoder is drained
    at the end instead of reading further packets. Returns False when the demuxer never
    gave packet ``chunk.start`` (a seek that overshot, or one that landed where no
    packet matches the index); nothing was decoded then.
    """
    av = reader.av
    codec = reader.stream.codec_context
    remaining = dict(chunk.wanted)
    last_pts: list[int] = []

    def collect(frames: list[Any]) -> None:
        for frame in frames:
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
        for packet in reader.container.demux(reader.stream):
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


def _decode_worker(
    plan: _DecodePlan,
    chunks: Sequence[_Chunk],
    sink: _FrameSink,
    decoder_threads: int,
    container: Any = None,
) -> None:
    """One worker: its own container (``container``, taken over, or the file opened
    again) and decoder for its chunks, in file order; the container is closed at the
    end."""
    try:
        reader = _Reader(
            _import_av(),
            plan.path,
            plan.stream_index,
            decoder_threads,
            plan.index.slices,
            container,
        )
    except BaseException:
        if container is not None:
            container.close()
        raise
    try:
        for chunk in sorted(chunks, key=lambda c: c.start):
            reader.go_to(plan.index, chunk.start)
            if not _decode_chunk(reader, plan.order, chunk, sink, plan.rules):
                logger.debug(
                    "%s: seek passed packet %d; demuxing from the start", plan.path, chunk.start
                )
                reader.reopen()
                _decode_chunk(reader, plan.order, chunk, sink, plan.rules)
    finally:
        reader.close()


def _decode_sequential(av: Any, plan: _DecodePlan, sink: _FrameSink, threads: int) -> None:
    """Fallback when timestamps do not give the order: decode from the start and count
    the frames the decoder outputs (they come out in presentation order)."""
    remaining = set(plan.indices)
    last = max(remaining)
    converter = _Converter()
    with av.open(plan.path, mode="r", metadata_errors="ignore") as container:
        stream = container.streams.video[plan.stream_index]
        stream.thread_type = _decoder_thread_type(threads, plan.index.slices)
        stream.thread_count = threads
        try:
            for position, frame in enumerate(container.decode(stream)):
                if position in remaining:
                    sink.add(position, frame, converter)
                    remaining.discard(position)
                if position >= last:
                    break
        except av.FFmpegError as exc:
            logger.warning("%s: decoding stopped: %s", plan.path, exc)


@dataclass
class _DecodePlan:
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
    index: _PacketIndex
    order: dict[int, int] = field(default_factory=dict)
    chunks: list[_Chunk] = field(default_factory=list)
    rules: _SkipRules = field(default_factory=lambda: _SkipRules(nonref=False))
    pix_fmt: str | None = None  # the stream's pixel format, as its codec parameters say
    # the container the file was indexed with, kept open for one decode worker to take
    # over (one open of the file less); None once taken or closed. Not an __init__
    # field, so that dataclasses.replace() never copies it into a second plan.
    container: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def total_frames(self) -> int:
        """Frames in the video: its packets, as decord counts them."""
        return len(self.index)

    @property
    def may_keep_planes(self) -> bool:
        """Whether :class:`_Yuv420Sink` can hold these frames, as far as the stream's
        parameters tell (each decoded frame is checked again)."""
        return self.height % 2 == 0 and self.pix_fmt in (None, *_NATIVE_FORMATS)

    def take_container(self) -> Any:
        """The indexing container, handed over once (None afterwards)."""
        container, self.container = self.container, None
        return container

    def close(self) -> None:
        """Close the indexing container if no worker took it."""
        container = self.take_container()
        if container is not None:
            container.close()


def _plan_decode(av: Any, path: str, num_frames: int, fps: float | None) -> _DecodePlan:
    """Open and index the file (demux only), pick the frames and plan their decoding.

    The plan keeps the container open for a decode worker to take over; the caller
    closes it with :meth:`_DecodePlan.close` (a no-op once a worker took it)."""
    container = _open_container(av, path)
    try:
        plan = _index_and_plan(av, container, path, num_frames, fps)
    except BaseException:
        container.close()
        raise
    plan.container = container
    return plan


def _index_and_plan(
    av: Any, container: Any, path: str, num_frames: int, fps: float | None
) -> _DecodePlan:
    """:func:`_plan_decode` on an open container."""
    stream = _video_stream(av, container, path)
    stream_index = list(container.streams.video).index(stream)
    width = stream.codec_context.width
    height = stream.codec_context.height
    codec_name = stream.codec_context.name
    extradata = stream.codec_context.extradata
    reorders = bool(stream.codec_context.has_b_frames)
    rate = stream.average_rate
    video_fps = float(rate) if rate else None
    index = _index_packets(av, container, stream, path, _h264_header_reader(codec_name, extradata))
    if len(index) == 0:
        raise VideoDecodeError(path, "the video stream holds no frames")
    if width <= 0 or height <= 0:
        raise VideoDecodeError(path, f"the video stream has no frame size ({width}x{height})")
    total_frames = len(index)
    indices = _pick_indices(path, total_frames, video_fps, num_frames, fps)
    plan = _DecodePlan(path, stream_index, width, height, video_fps, indices, index)
    pix_fmt = stream.codec_context.format
    plan.pix_fmt = pix_fmt.name if pix_fmt is not None else None
    if _timestamps_give_order(index, reorders):
        frame_pts = sorted(index.pts)  # presentation order, as decord sorts them
        plan.order = {p: i for i, p in enumerate(index.pts)}
        plan.chunks = _plan_chunks(index, frame_pts, indices)
        plan.rules = _SkipRules(
            nonref=codec_name in _NONREF_SAFE_CODECS,
            disposable=_disposable_packet_test(codec_name, extradata),
        )
    return plan


def _load_with_pyav(
    path: str,
    num_frames: int,
    fps: float | None,
    buffers: FrameBuffers | None = None,
    yuv420: bool = False,
) -> VideoClip:
    av = _import_av()
    plan = _plan_decode(av, path, num_frames, fps)
    try:
        if yuv420 and plan.may_keep_planes:
            try:
                return _decode_pooled(av, plan, buffers, _Yuv420Sink)
            except _NotPlanar:  # rare: decode again, to RGB
                logger.debug("%s: frames not kept as YUV 4:2:0 planes; decoding to RGB", path)
        return _decode_pooled(av, plan, buffers, _FrameSink)
    finally:
        plan.close()


def _decode_pooled(
    av: Any, plan: _DecodePlan, buffers: FrameBuffers | None, sink_type: type[_FrameSink]
) -> VideoClip:
    """:func:`_decode_into` a buffer from ``buffers`` (when given) that the clip keeps
    until ``buffers.release(clip)``, or gives back at once if its frames were copied out."""
    if buffers is None:
        return _decode_into(av, plan, decode_threads(), None, sink_type)
    count = len(set(plan.indices))
    buffer = buffers.take(sink_type.nbytes(plan.width, plan.height, count))
    try:
        clip = _decode_into(av, plan, decode_threads(), buffer, sink_type)
    except BaseException:
        buffers.give(buffer)
        raise
    frames = clip.frames.y if isinstance(clip.frames, Yuv420Frames) else clip.frames
    if np.may_share_memory(frames.numpy(), buffer):
        clip._buffer = buffer
    else:  # the frames were copied out (repeated or rotated frames)
        buffers.give(buffer)
    return clip


def _decode_into(
    av: Any,
    plan: _DecodePlan,
    threads: int,
    buffer: np.ndarray | None,
    sink_type: type[_FrameSink] = _FrameSink,
) -> VideoClip:
    """Run the plan (into ``buffer`` when given) and make the clip."""
    path, indices = plan.path, plan.indices
    sink = sink_type(plan.width, plan.height, indices, buffer)
    if plan.chunks:
        _run_chunks(plan, sink, threads)
        if sink.timestamps_unreliable:
            logger.info("%s: timestamps out of presentation order; decoding in sequence", path)
            sink = sink_type(plan.width, plan.height, indices, buffer)
            _decode_sequential(av, plan, sink, threads)
    else:
        plan.close()
        _decode_sequential(av, plan, sink, threads)

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
            stacklevel=5,
        )
    frames = sink.gather(delivered)
    rotation = sink.rotation or 0
    turns = (rotation // 90) % 4 if rotation % 90 == 0 else 0
    if turns:
        # decord applies the display matrix with FFmpeg's transpose filter; a lossless
        # quarter turn of the RGB frames gives the same pixels.
        frames = np.rot90(frames, turns, axes=(1, 2))
    return _make_clip(frames, delivered, plan.total_frames, plan.fps, "pyav", path)


def _assign_workers(threads: int, chunks: list[_Chunk]) -> list[tuple[list[_Chunk], int]]:
    """Split the chunks over ``min(threads, len(chunks))`` workers: (chunks, FFmpeg
    decoder threads) per worker.

    Largest first, each to the least-loaded worker (cost: packets to decode). Independent
    GOPs in parallel are the cheapest parallelism (no frame-thread hand-offs), so a
    worker decodes single-threaded unless its share is well above an even split: that is
    the long-GOP case (libx264's default 250-frame GOP puts most of a 10 s clip in one
    chunk), where the heavy worker's decoder gets ``threads`` threads (slice or frame
    threads: :func:`_decoder_thread_type`) and uses all CPUs once the light workers are
    done.
    """
    workers = max(1, min(threads, len(chunks)))
    if workers == 1:
        return [(list(chunks), threads)]
    plan: list[list[_Chunk]] = [[] for _ in range(workers)]
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


def _run_chunks(plan: _DecodePlan, sink: _FrameSink, threads: int) -> None:
    """Decode the plan's chunks on worker threads (:func:`_assign_workers`). The first
    worker (the one given the largest chunk) takes over the plan's indexing container;
    if it never starts, the caller's :meth:`_DecodePlan.close` closes the container."""
    workers = _assign_workers(threads, plan.chunks)

    def run(mine: list[_Chunk], decoder_threads: int, first: bool) -> None:
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
