"""What :class:`~sfllava_ext.SlowFastLlava` accepts as a video, and how it becomes
uint8 frames on the model's device.

A video is a path (decoded here with the published sampling), a
:class:`~sfllava_ext.video.frames.VideoClip`, or uint8 frames ``(T, H, W, 3)`` (a tensor or a
numpy array) used as given. Two rules live here, and only here:

* **planes on the CPU**: a path decoded for a model on the CPU keeps its YUV 4:2:0
  planes (:class:`~sfllava_ext.ops.yuv420_frames.Yuv420Frames`; the normalisation converts rows in
  cache), while for a GPU it is decoded to RGB, which crosses as uint8;
* **uint8 across**: frames go to the GPU as uint8 through pinned memory, never as
  floats.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ..constants import DEFAULT_BACKEND
from ..utils.timing import StageTimer
from . import FrameBuffers, load_video
from .frames import VideoClip, Yuv420Frames

__all__ = ["VideoInput", "keeps_planes", "load_for_device", "frames_of", "frames_to_device"]

VideoInput = str | os.PathLike | VideoClip | torch.Tensor | np.ndarray
Frames = torch.Tensor | Yuv420Frames


def keeps_planes(device: torch.device) -> bool:
    """Whether videos decoded for a model on ``device`` keep their YUV 4:2:0 planes
    (on the CPU) rather than being converted to RGB in the decode."""
    return torch.device(device).type == "cpu"


def load_for_device(
    path: str | os.PathLike,
    device: torch.device,
    num_frames: int,
    *,
    backend: str = DEFAULT_BACKEND,
    buffers: FrameBuffers | None = None,
) -> VideoClip:
    """``load_video`` as the model on ``device`` needs it: the planes rule
    (:func:`keeps_planes`), decoded into ``buffers`` when given (give the memory back
    with ``buffers.release(clip)``)."""
    return load_video(
        path, num_frames, backend=backend, buffers=buffers, yuv420=keeps_planes(device)
    )


def frames_of(
    video: VideoInput,
    device: torch.device,
    num_frames: int,
    *,
    backend: str = DEFAULT_BACKEND,
    buffers: FrameBuffers | None = None,
    timer: StageTimer | None = None,
) -> tuple[Frames, VideoClip | None]:
    """The frames of any video input and, for a path, the clip loaded here (whose
    buffer the caller gives back to ``buffers`` once the frames are normalised).

    Raises:
        TypeError: not a path, clip or uint8 frames.
        ValueError: frames not ``(T, H, W, 3)`` with T >= 1.
        FileNotFoundError, VideoDecodeError: from :func:`~sfllava_ext.load_video`.
    """
    if isinstance(video, (str, os.PathLike)):
        if timer is None:
            clip = load_for_device(video, device, num_frames, backend=backend, buffers=buffers)
        else:
            with timer("decode"):
                clip = load_for_device(video, device, num_frames, backend=backend, buffers=buffers)
        return clip.frames, clip
    if isinstance(video, VideoClip):
        return video.frames, None
    if isinstance(video, np.ndarray):
        video = torch.from_numpy(video)
    if not isinstance(video, torch.Tensor):
        raise TypeError(
            "video must be a path, a VideoClip or uint8 frames (T, H, W, 3), "
            f"got {type(video).__name__}"
        )
    if video.dtype != torch.uint8:
        raise TypeError(f"video frames must be uint8 (T, H, W, 3), got dtype {video.dtype}")
    if video.dim() != 4 or video.shape[-1] != 3 or video.shape[0] == 0:
        raise ValueError(f"video frames must be (T, H, W, 3) with T >= 1, got {list(video.shape)}")
    return video, None


def frames_to_device(frames: Frames, device: torch.device) -> Frames:
    """uint8 frames on ``device``: CPU frames bound for CUDA through pinned memory
    with a non-blocking copy; YUV planes stay on the CPU (converted to RGB first for
    any other device)."""
    if isinstance(frames, Yuv420Frames):
        return frames if device.type == "cpu" else frames_to_device(frames.to_rgb(), device)
    if frames.device == device:
        return frames
    if device.type == "cuda" and frames.device.type == "cpu":
        return frames.pin_memory().to(device, non_blocking=True)
    return frames.to(device)
