"""The fused kernels, as typed Python functions over ``torch.ops.sfllava``.

One module per op (its wrapper, then its autograd), every fake kernel in
:mod:`._fakes`, and the Python copy of each C++ argument check in :mod:`.checks`:

* :func:`slowfast_pool` (``slowfast_pool.py``): the slow and fast pathways;
* :func:`normalize_frames` (``normalize_frames.py``): the frame preprocessing,
  from RGB frames or YUV 4:2:0 planes;
* :func:`yuv420_to_rgb` (``yuv420_to_rgb.py``): the decoder's colour conversion.

The kernels live in csrc/ (CPU always, CUDA when built); the dispatcher picks the
backend from the inputs' device. Importing this package loads them and registers
the fakes and the autograd formulas.
"""

from __future__ import annotations

from .. import _extension  # noqa: F401  (loads the kernels, registers the ops)
from ..constants import CLIP_MEAN, CLIP_STD, PASS_ORDERS, RESIZE_MODES, SLOW_POOLS
from . import _fakes  # noqa: F401  (registers the fake kernels before any call)
from .checks import normalize_frames_shape, slowfast_geometry
from .normalize_frames import normalize_frames
from .slowfast_pool import slowfast_pool
from .yuv420_to_rgb import yuv420_to_rgb

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "PASS_ORDERS",
    "RESIZE_MODES",
    "SLOW_POOLS",
    "normalize_frames",
    "normalize_frames_shape",
    "slowfast_geometry",
    "slowfast_pool",
    "yuv420_to_rgb",
]
