"""Where the ``pyav`` backend's decoded frames go. Internal module.

A sink holds one slot per distinct wanted frame; the decode workers (:mod:`.workers`)
hand it each wanted frame as it comes out of the decoder, and :mod:`.decode` gathers
the slots into the clip:

* :class:`FrameSink`: RGB24, converted by the worker's :class:`Converter` (natively
  where :mod:`.swscale` allows, else with swscale) straight into the slot;
* :class:`Yuv420Sink` (``load_video(..., yuv420=True)``): the decoded Y, U and V
  planes, copied; a frame they cannot hold raises :class:`NotPlanar`, and the clip is
  decoded again to RGB;
* :class:`DiscardingSink`: keeps nothing, for measuring the decode alone
  (benchmarks/bench_pipeline.py).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ...ops.yuv420_to_rgb import yuv420_to_rgb
from ..frames import Yuv420Frames
from . import swscale

# Pixel formats the native YUV -> RGB converter takes (yuvj: full range).
NATIVE_FORMATS = frozenset({"yuv420p", "yuvj420p"})


class FrameSink:
    """The output: one (H, W, 3) uint8 slot per distinct wanted frame, filled by the
    workers. Each worker converts with its own :class:`Converter`; decoded frames are
    dropped as soon as their pixels are in the slot."""

    def __init__(
        self, width: int, height: int, wanted: Sequence[int], buffer: np.ndarray | None = None
    ) -> None:
        self.width = width
        self.height = height
        self.slots = {frame: slot for slot, frame in enumerate(sorted(set(wanted)))}
        self._allocate(buffer)
        self.filled: set[int] = set()
        self.rotation: int | None = None
        # set when decoded frames come out of order of their timestamps: the container's
        # timestamps do not give the presentation order (e.g. H.264 in AVI)
        self.timestamps_unreliable = False
        self.lock = threading.Lock()

    @staticmethod
    def nbytes(width: int, height: int, count: int) -> int:
        """Bytes of the slots of ``count`` frames."""
        return count * height * width * 3

    def _allocate(self, buffer: np.ndarray | None) -> None:
        shape = (len(self.slots), self.height, self.width, 3)
        if buffer is None:
            self.array = np.empty(shape, dtype=np.uint8)
        else:  # a pooled buffer of at least nbytes(shape)
            self.array = buffer[: math.prod(shape)].reshape(shape)

    def add(self, frame_index: int, frame: Any, converter: Converter) -> None:
        """Keep decoded ``frame`` as wanted frame ``frame_index`` (thread-safe)."""
        slot = self.slots[frame_index]
        converter.convert_into(frame, self.array[slot])
        self._filled(frame_index, int(getattr(frame, "rotation", 0) or 0))

    def _filled(self, frame_index: int, rotation: int) -> None:
        with self.lock:
            if self.rotation is None:
                self.rotation = rotation
            self.filled.add(frame_index)

    def gather(self, indices: Sequence[int]) -> np.ndarray:
        """(len(indices), H, W, 3) in ``indices`` order; no copy when nothing repeats."""
        slots = [self.slots[i] for i in indices]
        if slots == list(range(len(self.slots))):
            return self.array
        return self.array[slots]


class Converter:
    """YUV -> RGB24 exactly as decord gets it: swscale, same size, bilinear flags (the
    default of FFmpeg's scale filter), colour matrix and range from the frame. One per
    worker thread: the swscale context is built once and reused, and runs on the
    worker's thread (the workers already use the cores).

    A YUV 4:2:0 frame of the stream's size and an even height (where swscale runs its
    unscaled fixed-point converter) is converted natively instead, straight into the
    output slot (:mod:`.swscale`: same bytes, no intermediate frame and no copy), when
    the native coefficients were checked against this swscale."""

    def __init__(self) -> None:
        from av.video.reformatter import VideoReformatter

        self.reformatter = VideoReformatter()

    def convert_into(self, frame: Any, out: np.ndarray) -> None:
        """Write the frame's RGB24 pixels into ``out`` (H, W, 3)."""
        height, width = out.shape[0], out.shape[1]
        coeffs = _native_coeffs_of(frame, width, height)
        if coeffs is not None:
            yuv420_to_rgb(*swscale.frame_planes(frame), coeffs, out=torch.from_numpy(out))
        else:
            out[...] = self.rgb(frame, width, height)

    def rgb(self, frame: Any, width: int, height: int) -> np.ndarray:
        """(height, width, 3) uint8 view of a converted frame (valid until the next call)."""
        # A frame of another size (a stream that changes resolution) is scaled to the
        # stream's size, as decord's filter graph does.
        converted = self.reformatter.reformat(
            frame, width=width, height=height, format="rgb24", threads=1
        )
        return converted.to_ndarray()


def _native_coeffs_of(frame: Any, width: int, height: int) -> tuple[int, ...] | None:
    """The native converter's coefficients for a decoded frame, or None when it must go
    through swscale: not YUV 4:2:0 (or full-range yuvj420p), another size than the
    stream's (swscale scales it), an odd height (swscale's unscaled path differs), or a
    colour matrix whose native coefficients do not match this swscale."""
    fmt = frame.format.name
    if fmt not in NATIVE_FORMATS or frame.width != width or frame.height != height:
        return None
    if height % 2:
        return None
    full = fmt == "yuvj420p" or int(frame.color_range) == swscale.FULL_RANGE
    return swscale.native_coeffs(int(frame.colorspace), swscale.FULL_RANGE if full else 1)


class Yuv420Sink(FrameSink):
    """The output as decoded: the wanted frames' Y, U and V planes copied into one
    buffer, no RGB conversion (the conversion happens in cache inside
    ``normalize_frames``). A frame that the planes cannot hold raises
    :class:`NotPlanar`, and so does every frame after it."""

    @staticmethod
    def nbytes(width: int, height: int, count: int) -> int:
        return count * (height * width + 2 * ((height + 1) // 2) * ((width + 1) // 2))

    def _allocate(self, buffer: np.ndarray | None) -> None:
        n, h, w = len(self.slots), self.height, self.width
        ch, cw = (h + 1) // 2, (w + 1) // 2
        flat = np.empty(self.nbytes(w, h, n), np.uint8) if buffer is None else buffer
        luma, chroma = n * h * w, n * ch * cw
        self.y = flat[:luma].reshape(n, h, w)
        self.u = flat[luma : luma + chroma].reshape(n, ch, cw)
        self.v = flat[luma + chroma : luma + 2 * chroma].reshape(n, ch, cw)
        self.coeffs: tuple[int, ...] | None = None
        self.refused = False

    def add(self, frame_index: int, frame: Any, converter: Converter) -> None:
        coeffs = _native_coeffs_of(frame, self.width, self.height)
        with self.lock:
            fits = coeffs is not None and self.coeffs in (None, coeffs)
            if self.refused or not fits or int(getattr(frame, "rotation", 0) or 0):
                self.refused = True
                raise NotPlanar
            self.coeffs = coeffs
        slot = self.slots[frame_index]
        outs = (self.y[slot], self.u[slot], self.v[slot])
        for plane, out in zip(frame.planes, outs, strict=True):
            rows, cols = out.shape
            data = np.frombuffer(plane, np.uint8)
            np.copyto(out, data[: rows * plane.line_size].reshape(rows, -1)[:, :cols])
        self._filled(frame_index, 0)

    def gather(self, indices: Sequence[int]) -> Yuv420Frames:  # type: ignore[override]
        """The planes of ``indices`` in order; no copy when nothing repeats."""
        slots = [self.slots[i] for i in indices]
        planes = (self.y, self.u, self.v)
        if slots != list(range(len(self.slots))):
            planes = tuple(p[slots] for p in planes)
        y, u, v = (torch.from_numpy(p) for p in planes)
        return Yuv420Frames(y, u, v, self.coeffs or ())


class NotPlanar(Exception):
    """A wanted frame that :class:`Yuv420Frames` cannot hold as decoded (another pixel
    format or size, an odd height, a rotation, a colour matrix not converted natively,
    or one that differs from the other frames'): the clip is decoded to RGB instead."""


class DiscardingSink(FrameSink):
    """Counts the wanted frames as delivered without keeping them (no RGB conversion,
    no copy of their planes), for measuring the decode alone
    (benchmarks/bench_pipeline.py). Its slots are allocated but never written."""

    def add(self, frame_index: int, frame: Any, converter: Any) -> None:
        with self.lock:
            self.filled.add(frame_index)
