"""Which frames a load decodes: the published SlowFast-LLaVA sampling
(:func:`sample_frame_indices`) or a fixed time grid (:func:`fps_frame_indices`).

:func:`pick_indices` is what the video backends call: either rule, then a check that
every index is in the video. Internal module apart from the two public functions,
which :mod:`sfllava_ext.video` exports.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from .frames import VideoDecodeError


def pick_indices(
    path: str, total_frames: int, video_fps: float | None, num_frames: int, fps: float | None
) -> list[int]:
    """The frames to decode from a video of ``total_frames`` at ``video_fps``:
    :func:`sample_frame_indices` when ``fps`` is None, else :func:`fps_frame_indices`
    capped at ``num_frames``. VideoDecodeError when ``fps`` is given and the video has
    no frame rate, or when an index falls outside the video."""
    if fps is None:
        indices = sample_frame_indices(total_frames, num_frames)
    else:
        if not video_fps or video_fps <= 0:
            raise VideoDecodeError(path, "fps= needs the video's frame rate, which is unknown")
        indices = fps_frame_indices(total_frames, video_fps, fps, num_frames)
    _check_indices(path, indices, total_frames)
    return indices


def sample_frame_indices(total_frames: int, num_frames: int) -> list[int]:
    """The published frame sampling (docs/method.md#sampling).

    ``n = min(total_frames, num_frames)``, ``step = (total_frames - 1) / n``, and frame
    ``i`` is ``(round(step * i) + round(step * (i + 1))) // 2`` with round-half-to-even.
    A video shorter than ``num_frames`` gives ``total_frames`` indices (possibly
    repeated); an empty video gives none.

    Returns:
        The frame indices (0-based, presentation order), non-decreasing.

    Raises:
        ValueError: ``total_frames`` not an int >= 0, ``num_frames`` not an int >= 1.
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
    cut off). Not part of the published method (docs/method.md#sampling).

    Returns:
        At most ``max_frames`` frame indices, increasing.

    Raises:
        ValueError: ``fps``, ``video_fps`` not > 0, ``max_frames`` < 1.
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
