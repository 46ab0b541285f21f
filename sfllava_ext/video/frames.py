"""The containers of decoded video: :class:`VideoClip`, :class:`VideoDecodeError` and
(re-exported from :mod:`sfllava_ext.ops.yuv420_frames`, the frame ops' input type)
:class:`Yuv420Frames`; and :func:`make_clip`, every backend's last step.

They are what the decoders return and what the ops and the model take, so this
module imports no decoder (no PyAV, no decord) and nothing of the pipeline: it can
be imported, and its objects unpickled, anywhere. A clip also knows how to travel
without a pickle of its frames: :meth:`VideoClip.to_parts` gives its arrays, their
layout in one flat buffer and its other fields, :meth:`VideoClip.from_parts` rebuilds
it as views of such a buffer (shared memory, say).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..ops.yuv420_frames import Yuv420Frames

__all__ = ["ClipParts", "VideoClip", "VideoDecodeError", "Yuv420Frames", "make_clip"]


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
    here still load: 0.1.0's name ``sfllava_ext.video.VideoClip`` is re-exported, and
    the old module paths ``sfllava_ext.frames`` and ``sfllava_ext.yuv_to_rgb`` still
    find their names (``sfllava_ext/_moved.py``).
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

    # -- the pooled buffer (FrameBuffers): lent to the clip, given back once

    @property
    def buffer(self) -> np.ndarray | None:
        """The pooled buffer ``frames`` lives in, until it is given back."""
        return self._buffer

    def hold_buffer(self, buffer: np.ndarray) -> None:
        """Marks ``frames`` as living in ``buffer``, lent by a frame-buffer pool."""
        self._buffer = buffer

    def drop_buffer(self) -> np.ndarray | None:
        """Forgets the pooled buffer (the caller gives it back) and returns it; None
        when the clip holds none (or no longer)."""
        buffer, self._buffer = self._buffer, None
        return buffer

    # -- travel without pickling the frames

    def arrays(self) -> list[np.ndarray]:
        """The frames as uint8 arrays: the Y, U and V planes, or the one RGB array."""
        if isinstance(self.frames, Yuv420Frames):
            return [self.frames.y.numpy(), self.frames.u.numpy(), self.frames.v.numpy()]
        return [self.frames.numpy()]

    def to_parts(self) -> ClipParts:
        """The clip as flat parts (:class:`ClipParts`); :meth:`from_parts` puts it
        back together."""
        arrays = self.arrays()
        layout, offset = [], 0
        for array in arrays:
            layout.append((list(array.shape), offset))
            offset += array.nbytes
        return ClipParts(arrays, layout, self.meta())

    def meta(self) -> dict[str, Any]:
        """What :meth:`from_parts` needs besides the arrays: indices, counts, colour
        coefficients (None for RGB frames), backend and path; JSON-serialisable."""
        coeffs = list(self.frames.coeffs) if isinstance(self.frames, Yuv420Frames) else None
        return {"coeffs": coeffs, "indices": list(self.indices), "path": self.path,
                "total_frames": self.total_frames, "fps": self.fps,
                "duration": self.duration, "backend": self.backend}  # fmt: skip

    @classmethod
    def from_parts(cls, buffer: Any, layout: list, meta: dict[str, Any]) -> VideoClip:
        """The clip of :meth:`to_parts`, its frames views of ``buffer`` (shared memory,
        or bytes: read-only views, which the model only reads). The views hold
        ``buffer`` (``np.frombuffer`` keeps it exported while an array lives), so that
        it cannot be closed or unmapped under them."""
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            arrays = [
                torch.from_numpy(
                    np.frombuffer(buffer, np.uint8, int(np.prod(shape)), offset).reshape(shape)
                )
                for shape, offset in layout
            ]
        coeffs = meta["coeffs"]
        frames = Yuv420Frames(*arrays, coeffs) if coeffs is not None else arrays[0]
        return cls(frames, meta["indices"], meta["total_frames"], meta["fps"],
                   meta["duration"], meta["backend"], meta["path"])  # fmt: skip


@dataclass(frozen=True)
class ClipParts:
    """A :class:`VideoClip` as flat parts: ``arrays`` (uint8, the planes or the RGB
    frames), their ``layout`` one after another in a flat buffer (``[(shape, offset),
    ...]``) and ``meta`` (:meth:`VideoClip.meta`)."""

    arrays: list[np.ndarray]
    layout: list
    meta: dict[str, Any]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays)


def make_clip(
    array: np.ndarray | Yuv420Frames,
    indices: list[int],
    total_frames: int,
    video_fps: float | None,
    backend: str,
    path: str,
) -> VideoClip:
    """Every backend's last step: the clip of decoded frames, uint8 (T, H, W, 3) RGB
    ``array`` wrapped as a contiguous tensor (copied only when it is not contiguous
    uint8), or planes kept as they are; ``duration`` from ``total_frames`` and
    ``video_fps``."""
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
