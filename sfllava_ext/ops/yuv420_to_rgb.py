"""``yuv420_to_rgb``: decoded YUV 4:2:0 planes -> RGB24 bytes, bit-identical to
swscale's unscaled converter (csrc/common/yuv_to_rgb.h).

The coefficients come from :func:`sfllava_ext.video.pyav.swscale.native_coeffs`,
which also checks them against the installed swscale. The fake kernel is in
:mod:`sfllava_ext.ops._fakes`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["yuv420_to_rgb"]


def yuv420_to_rgb(
    y: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    coeffs: Sequence[int],
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """uint8 planes ``y`` (H, W), ``u`` and ``v`` ((H+1)//2, (W+1)//2), CPU, columns
    contiguous -> RGB24 (H, W, 3) uint8 written into ``out`` (allocated when None).
    ``coeffs``: the six 16-bit integers (cy, y_offset, cub, cug, cvg, cvr). Runs on
    the calling thread.

    Raises:
        TypeError: planes or ``out`` not uint8.
        ValueError: planes of mismatched sizes, not on the CPU, with strided
            columns; coeffs not six 16-bit integers; ``out`` of the wrong shape
            or layout, or overlapping a plane.
    """
    if out is None:
        out = torch.empty((*y.shape, 3), dtype=torch.uint8)
    torch.ops.sfllava.yuv420_to_rgb(y, u, v, list(coeffs), out=out)
    return out
