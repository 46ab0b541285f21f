"""YUV 4:2:0 planes as the frame ops take them: :class:`Yuv420Frames`.

The decoders return it (:func:`sfllava_ext.load_video` with ``yuv420=True``), and
:func:`~sfllava_ext.ops.normalize_frames` and :func:`~sfllava_ext.ops.yuv420_to_rgb`
take it; it lives with the ops, the lowest layer, so that they import nothing of the
video package (which re-exports it, :mod:`sfllava_ext.video.frames`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .yuv420_to_rgb import yuv420_to_rgb

__all__ = ["Yuv420Frames"]


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
        out = torch.empty(self.shape, dtype=torch.uint8)
        for t in range(len(self)):
            yuv420_to_rgb(self.y[t], self.u[t], self.v[t], self.coeffs, out=out[t])
        return out
