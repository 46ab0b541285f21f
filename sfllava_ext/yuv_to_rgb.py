"""Compatibility module: the names it held moved, and this path keeps them working.

* :class:`Yuv420Frames` -> :mod:`sfllava_ext.frames` (also :mod:`sfllava_ext` and
  :mod:`sfllava_ext.video`);
* :func:`yuv420_to_rgb` (the op) -> :mod:`sfllava_ext.ops.yuv420_to_rgb` (also
  :mod:`sfllava_ext.ops`);
* ``FULL_RANGE``, :func:`frame_planes`, :func:`native_coeffs`, :func:`swscale_coeffs`
  (swscale's colour matrices and the native converter's check against swscale) ->
  :mod:`sfllava_ext.video.pyav.swscale`.

New code should import them from there. Pickles of 0.1.0 name
``sfllava_ext.yuv_to_rgb.Yuv420Frames``: this module keeps them loading.
"""

from __future__ import annotations

from .frames import Yuv420Frames
from .ops.yuv420_to_rgb import yuv420_to_rgb
from .video.pyav.swscale import FULL_RANGE, frame_planes, native_coeffs, swscale_coeffs

__all__ = [
    "FULL_RANGE",
    "Yuv420Frames",
    "frame_planes",
    "native_coeffs",
    "swscale_coeffs",
    "yuv420_to_rgb",
]
