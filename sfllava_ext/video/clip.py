"""The decoders' last step, shared by every backend: their frames and indices ->
a :class:`~sfllava_ext.frames.VideoClip`. Internal module.

(Its own module because the three backends, :mod:`.image_folder`,
:mod:`.decord_backend` and :mod:`.pyav`, all end here, and none should import
another.)
"""

from __future__ import annotations

import numpy as np
import torch

from ..frames import VideoClip, Yuv420Frames


def make_clip(
    array: np.ndarray | Yuv420Frames,
    indices: list[int],
    total_frames: int,
    video_fps: float | None,
    backend: str,
    path: str,
) -> VideoClip:
    """The clip of decoded frames: uint8 (T, H, W, 3) RGB ``array`` wrapped as a
    contiguous tensor (copied only when it is not contiguous uint8), or planes kept
    as they are; ``duration`` from ``total_frames`` and ``video_fps``."""
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
