"""``load_video``: the argument checks, then one backend. Internal module; import
:func:`load_video` from :mod:`sfllava_ext.video` (or :mod:`sfllava_ext`).

A folder goes to :mod:`.image_folder`; a file to :mod:`.decord_backend` for
``backend="decord"``, else to :mod:`.pyav` (``"pyav"``, and ``"auto"``:
:data:`~sfllava_ext.constants.AUTO_BACKEND`). The backends are called through their
module, so that a monkeypatched backend function is the one that runs.

``limits`` (:class:`~sfllava_ext.video.limits.DecodeLimits`, for files that are not
trusted) go to the ``pyav`` backend, which enforces them while it decodes, or to the
image folder (per image); ``backend="decord"`` cannot enforce them and is refused.
"""

from __future__ import annotations

import errno
import math
import numbers
import os

from ..constants import AUTO_BACKEND, BACKENDS, DEFAULT_BACKEND, DEFAULT_NUM_FRAMES
from . import decord_backend, image_folder, pyav
from .buffers import FrameBuffers
from .frames import VideoClip, VideoDecodeError
from .limits import DecodeLimits


def load_video(
    path: str | os.PathLike,
    num_frames: int = DEFAULT_NUM_FRAMES,
    *,
    backend: str = DEFAULT_BACKEND,
    fps: float | None = None,
    buffers: FrameBuffers | None = None,
    yuv420: bool = False,
    threads: int | None = None,
    limits: DecodeLimits | None = None,
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
        threads: decoder threads (``pyav``); default ``$SFLLAVA_DECODE_THREADS``, else
            the usable CPUs, at most 16 (:func:`~sfllava_ext.video.decode_threads`).
        limits: bounds for a file that is not trusted (:class:`DecodeLimits`: the
            pixels of every frame, the pixels decoded in all, a deadline, the container
            formats allowed), enforced while decoding (``pyav``; a folder of images
            checks each sampled image's size before decoding it, the sum and the
            deadline, and with ``formats`` set reads only PNG, JPEG, BMP, GIF, WebP).
            None (the default): no limits, and not a single check more.

    Returns:
        A :class:`VideoClip`; ``frames`` is a uint8 tensor (T, H, W, 3), RGB, contiguous
        (or :class:`Yuv420Frames`, see ``yuv420``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        VideoDecodeError: the file cannot be read as a video (empty, not a video,
            truncated beyond use, no video stream, unknown codec, ...).
        VideoLimitError: a bound of ``limits`` was passed (a :class:`VideoDecodeError`;
            ``.limit`` names it).
        ValueError: bad arguments; ``limits`` with ``backend="decord"``.
        TypeError: ``limits`` is not a :class:`DecodeLimits`.
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
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ValueError(f"load_video: threads must be an int >= 1 or None, got {threads!r}")
    if buffers is not None and not isinstance(buffers, FrameBuffers):
        raise TypeError(
            f"load_video: buffers must be a FrameBuffers or None, got {type(buffers).__name__}"
        )
    if limits is not None and not isinstance(limits, DecodeLimits):
        raise TypeError(
            f"load_video: limits must be a DecodeLimits or None, got {type(limits).__name__}"
        )
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "video not found", path)
    if os.path.isdir(path):
        return image_folder.load_image_folder(path, num_frames, fps, limits)
    if not os.path.isfile(path):
        raise VideoDecodeError(path, "not a regular file")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "the file is empty (0 bytes)")
    chosen = AUTO_BACKEND if backend == "auto" else backend
    if chosen == "decord":
        if limits is not None:
            raise ValueError(
                "load_video: limits= needs backend='pyav' (or 'auto'): decord cannot "
                "enforce them (it checks no frame size, has no format allowlist, no deadline)"
            )
        return decord_backend.load_with_decord(path, num_frames, fps)
    # pyav.decode, the defining module (pyav.load_with_pyav is its re-export)
    return pyav.decode.load_with_pyav(path, num_frames, fps, buffers, yuv420, threads, limits)
