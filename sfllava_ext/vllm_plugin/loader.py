"""The plugin's video loader backend, ``sfllava``: a video's bytes to the frames at the
published indices, decoded by :func:`sfllava_ext.video.load_video` (bit-identical to
it) within the same limits as ``sfllava serve`` (docs/security.md).

vLLM calls ``load_bytes(data, num_frames=..., **media_io_kwargs)``; the keys this
backend reads from ``--media-io-kwargs '{"video": {...}}'`` are ``num_frames``,
``max_pixels``, ``max_decode_mpx`` and ``timeout_s`` (their defaults are ``sfllava
serve``'s); any other key is refused, so that a typo cannot silently lift a limit.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import numpy as np

from ..serve.config import ServeConfig
from ..video import load_video

__all__ = ["BACKEND", "LIMIT_KEYS", "decode_video_bytes", "register_loader"]

#: the name vLLM knows this backend by (``video_backend`` / VLLM_VIDEO_LOADER_BACKEND)
BACKEND = "sfllava"
#: the ``--media-io-kwargs`` video keys read besides ``num_frames``
LIMIT_KEYS = ("max_pixels", "max_decode_mpx", "timeout_s")
# what vLLM's VideoMediaIO may pass along that is not ours to read
_VLLM_KEYS = frozenset({"fps", "video_backend", "backend"})


def decode_video_bytes(data: bytes, num_frames: int, **limits: Any) -> tuple[np.ndarray, dict]:
    """``(frames, metadata)`` of a video's bytes: uint8 ``(T, H, W, 3)`` RGB frames
    at the published indices, and vLLM's video metadata (``frames_indices``,
    ``total_num_frames``, ``fps``, ``duration``, ``video_backend``) with
    ``requested_num_frames`` (a truncated file may give fewer frames).

    Args:
        data: the file's bytes (written to a private temporary file, then removed).
        num_frames: frames to sample (the published 50).
        limits: ``max_pixels`` (of every decoded frame), ``max_decode_mpx``
            (megapixels decoded in all), ``timeout_s`` (the decode's deadline); the
            container formats allowed are :data:`~sfllava_ext.video.limits.SAFE_FORMATS`.

    Raises:
        ValueError: an unknown key, a ``num_frames`` below 1, no bytes.
        VideoDecodeError: (a ValueError) a video that cannot be decoded, or one over
            a limit (:class:`~sfllava_ext.video.limits.VideoLimitError` names it).
    """
    unknown = set(limits) - set(LIMIT_KEYS) - _VLLM_KEYS
    if unknown:
        raise ValueError(
            f"media_io_kwargs['video'] has keys the {BACKEND} loader does not know: "
            f"{sorted(unknown)}; it reads num_frames, {', '.join(LIMIT_KEYS)}"
        )
    if not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"num_frames must be an int >= 1, got {num_frames!r}")
    if not data:
        raise ValueError("video: the video holds no bytes")
    # sfllava serve's limits, its defaults and its checks of their values
    config = ServeConfig(**{k: limits[k] for k in ("max_pixels", "max_decode_mpx") if k in limits})
    timeout = limits.get("timeout_s", config.job_timeout_s)
    decode_limits = config.decode_limits(
        None if timeout is None else time.monotonic() + float(timeout)
    )
    fd, path = tempfile.mkstemp(suffix=".video")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        clip = load_video(path, num_frames, backend="pyav", limits=decode_limits)
    finally:
        os.remove(path)
    metadata = {
        "total_num_frames": clip.total_frames,
        "fps": clip.fps,
        "duration": clip.duration,
        "video_backend": BACKEND,
        "requested_num_frames": num_frames,
        "frames_indices": list(clip.indices),
        "do_sample_frames": False,
    }
    return clip.frames.numpy(), metadata


def register_loader() -> None:
    """Registers the ``sfllava`` video loader backend with vLLM (once)."""
    from vllm.multimodal.video import VIDEO_LOADER_REGISTRY, VideoLoader

    if BACKEND in VIDEO_LOADER_REGISTRY.name2class:
        return

    class SlowFastVideoLoader(VideoLoader):
        """Frames at the published indices, decoded within limits by sfllava_ext."""

        @classmethod
        def load_bytes(cls, data: bytes, num_frames: int = -1, **kwargs: Any):
            return decode_video_bytes(data, num_frames, **kwargs)

    VIDEO_LOADER_REGISTRY.register(BACKEND)(SlowFastVideoLoader)
