"""The containers of decoded video: :class:`VideoClip`, :class:`Yuv420Frames` and
:class:`VideoDecodeError`.

They are what the decoders return and what the ops and the model take, so this
module imports no decoder (no PyAV, no decord) and nothing of the pipeline: it can
be imported, and its objects unpickled, anywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["VideoClip", "VideoDecodeError", "Yuv420Frames"]


class VideoDecodeError(ValueError):
    """A file that exists but cannot be read as a video (empty, not a video, truncated,
    no video stream, no decoder for its codec, ...). ``path`` and ``reason`` say which
    and why."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot read video '{self.path}': {reason}")


@dataclass
class VideoClip:
    """Sampled frames of one video.

    Attributes:
        frames: uint8 tensor (T, H, W, 3), RGB, contiguous, on the CPU; or, from
            ``load_video(..., yuv420=True)``, the decoded planes (:class:`Yuv420Frames`).
        indices: the T frame indices (0-based, presentation order) that ``frames`` hold;
            may repeat for videos shorter than the requested count.
        total_frames: frames in the video (decord's count: the video packets).
        fps: the stream's average frame rate; ``None`` for a folder of images.
        duration: ``total_frames / fps`` in seconds; ``None`` for a folder of images.
        backend: what decoded it: ``"pyav"``, ``"decord"`` or ``"images"``.
        path: the file or folder.

    Copies and pickles hold their own frames, never a pooled buffer
    (:class:`~sfllava_ext.video.FrameBuffers`). Pickles made before this class moved
    here (as ``sfllava_ext.video.VideoClip``) still load: that name is re-exported.
    """

    frames: torch.Tensor | Yuv420Frames
    indices: list[int]
    total_frames: int
    fps: float | None
    duration: float | None
    backend: str
    path: str = field(default="")
    # the pooled buffer that ``frames`` lives in (load_video(..., buffers=...)), until
    # FrameBuffers.release gives it back
    _buffer: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.indices)

    def __getstate__(self) -> dict[str, Any]:
        # pickles and copies hold their own frames, never the pool's buffer
        return {**self.__dict__, "_buffer": None}


@dataclass(frozen=True, eq=False)
class Yuv420Frames:
    """Frames as the decoder gives them: YUV 4:2:0 planes, half the bytes of RGB.

    ``load_video(..., yuv420=True)`` returns these where it can (no RGB conversion
    in the decode), and :func:`sfllava_ext.normalize_frames` takes them like RGB
    frames: it converts each row in cache just before the resize reads it, with the
    same bytes as ``normalize_frames(frames.to_rgb())``.

    Attributes:
        y: uint8 (T, H, W) luma planes.
        u, v: uint8 (T, (H + 1) // 2, (W + 1) // 2) chroma planes.
        coeffs: the six integers of the conversion
            (:func:`sfllava_ext.video.pyav.swscale.native_coeffs` of the frames' colour
            matrix and range): RGB is swscale's, bit for bit.

    Raises:
        TypeError: a plane that is not a tensor, coeffs that are not integers.
        ValueError: a plane that is not 3-D.
    """

    y: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    coeffs: tuple[int, ...]

    def __post_init__(self) -> None:
        for name in ("y", "u", "v"):
            plane = getattr(self, name)
            if not isinstance(plane, torch.Tensor):
                raise TypeError(
                    f"Yuv420Frames: {name} must be a torch.Tensor, got {type(plane).__name__}"
                )
            if plane.dim() != 3:
                raise ValueError(
                    f"Yuv420Frames: {name} must be 3-D (frames, rows, columns), "
                    f"got shape {list(plane.shape)}"
                )
        try:
            coeffs = tuple(int(c) for c in self.coeffs)
        except (TypeError, ValueError):
            raise TypeError(
                f"Yuv420Frames: coeffs must be 6 integers, got {self.coeffs!r}"
            ) from None
        object.__setattr__(self, "coeffs", coeffs)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def shape(self) -> torch.Size:
        """The shape of the RGB frames these planes make: (T, H, W, 3)."""
        return torch.Size((*self.y.shape, 3))

    @property
    def device(self) -> torch.device:
        return self.y.device

    def __getitem__(self, index: slice) -> Yuv420Frames:
        """Frames ``index`` (a slice), as views of the same planes."""
        if not isinstance(index, slice):
            raise TypeError(f"Yuv420Frames: index must be a slice, got {type(index).__name__}")
        return Yuv420Frames(self.y[index], self.u[index], self.v[index], self.coeffs)

    def to_rgb(self) -> torch.Tensor:
        """uint8 (T, H, W, 3) RGB frames, as :func:`sfllava_ext.ops.yuv420_to_rgb`
        makes them."""
        from .ops.yuv420_to_rgb import yuv420_to_rgb  # the op needs the extension

        out = torch.empty(self.shape, dtype=torch.uint8)
        for t in range(len(self)):
            yuv420_to_rgb(self.y[t], self.u[t], self.v[t], self.coeffs, out=out[t])
        return out
