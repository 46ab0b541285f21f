"""``normalize_frames``: the published frame preprocessing in one fused op, from
uint8 RGB frames (``torch.ops.sfllava.normalize_frames``) or from decoded YUV 4:2:0
planes (``torch.ops.sfllava.normalize_yuv420_frames``, CPU).

The fake kernels are in :mod:`sfllava_ext.ops._fakes`, the checks they share with
the C++ ops in :mod:`sfllava_ext.ops.checks`. The method, with Pillow's resampler
in exact terms, is described in docs/method.md ("Preprocessing").
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from ..constants import CLIP_MEAN, CLIP_STD, DEFAULT_PASS_ORDER, DEFAULT_RESIZE_MODE
from .checks import check_frames, check_normalize_dtype
from .yuv420_frames import Yuv420Frames

__all__ = ["normalize_frames"]

_OP = "normalize_frames"


def normalize_frames(
    frames: torch.Tensor | np.ndarray | Yuv420Frames,
    size: Sequence[int] = (336, 336),
    *,
    resize_mode: str = DEFAULT_RESIZE_MODE,
    shortest_edge: int | None = None,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    rescale_factor: float = 1 / 255,
    pass_order: str = DEFAULT_PASS_ORDER,
    dtype: torch.dtype = torch.float16,
    out: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The published frame preprocessing in one fused op.

    Resamples exactly as Pillow's ``Image.resize(..., BICUBIC)`` (the same
    8-bit intermediates, bit for bit), then applies the Hugging Face CLIP image
    processor's centre crop, ``float32(x * rescale_factor)``, ``(x - mean) /
    std`` in float32, and casts. No full-size float copy of the frames is made.

    Args:
        frames: uint8 ``(T, H, W, 3)`` RGB frames, a tensor (CPU or CUDA, any
            strides) or a numpy array; or CPU :class:`~sfllava_ext.ops.yuv420_frames.Yuv420Frames`
            (decoded planes), whose rows are converted to RGB in cache just before
            the resize reads them: the bytes of ``normalize_frames(frames.to_rgb())``
            (for another device, ``to_rgb()`` runs first and the RGB frames travel).
        size: ``(height, width)`` of the result.
        resize_mode: ``squash`` stretches every frame to ``size`` (the
            published default, SF-LLaVA's ``resize``; with ``shortest_edge``
            it stretches to that square and centre-crops to ``size``);
            ``crop`` is the CLIP processor alone: shortest edge to
            ``shortest_edge`` (default ``min(size)``) with Hugging Face's size
            rounding, then its centre crop to ``size`` (zero-padded when the
            resized frame is smaller); ``pad`` first pastes the frame centred on
            a square canvas filled with ``int(mean * 255)`` (LLaVA's
            ``expand2square``), then does as ``crop``.
        shortest_edge: see ``resize_mode``.
        mean, std: per-channel normalisation, RGB (std nonzero).
        rescale_factor: the processor's rescale (1/255).
        pass_order: which Pillow to match when both axes change size:
            ``pillow13`` (the default; Pillow >= 13 runs the vertical pass
            first when the height shrinks by more than twice as many pixels
            as the width) or ``pillow12`` (Pillow <= 12, which the published
            SF-LLaVA results used: always horizontal first). The two agree on
            landscape and square frames shrunk to a square.
        dtype: float32, float16 or bfloat16.
        out: optional contiguous ``(T, 3, h, w)`` buffer of ``dtype`` on the
            frames' device (or ``device``) that receives the result.
        device: where to normalise; CPU frames bound for CUDA travel as uint8
            through pinned memory with a non-blocking copy.

    Returns:
        ``(T, 3, h, w)`` contiguous (NCHW) in ``dtype``, on the frames' device
        (or ``device``); ``out`` itself when given. ``T = 0`` gives an empty
        result.

    Raises:
        TypeError: frames not uint8 (or not a tensor / array), an output dtype
            other than float32/float16/bfloat16, out of another dtype.
        ValueError: frames not ``(T, H, W, 3)`` or zero-sized, a bad size or
            shortest_edge, an unknown resize_mode or pass_order, mean/std not of
            3 values or a zero std, out of the wrong shape, device or layout,
            ``Yuv420Frames`` not on the CPU.
    """
    yuv = frames if isinstance(frames, Yuv420Frames) else None
    if yuv is not None:
        if yuv.device.type != "cpu":
            raise ValueError(f"{_OP}: Yuv420Frames must be on the CPU, got {yuv.device}")
        if device is not None and torch.device(device) != yuv.device:
            frames, yuv = yuv.to_rgb(), None
    else:
        frames = _as_tensor(frames)
        check_frames(_OP, frames)
    if not isinstance(resize_mode, str):
        raise TypeError(f"{_OP}: resize_mode must be a str, got {type(resize_mode).__name__}")
    if not isinstance(pass_order, str):
        raise TypeError(f"{_OP}: pass_order must be a str, got {type(pass_order).__name__}")
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"{_OP}: dtype must be a torch.dtype, got {dtype!r}")
    check_normalize_dtype(_OP, dtype)
    try:
        size_ = [int(s) for s in size]
    except (TypeError, ValueError):
        raise TypeError(f"{_OP}: size must be a pair of ints, got {size!r}") from None
    edge = None if shortest_edge is None else int(shortest_edge)
    options = (
        size_,
        resize_mode,
        edge,
        _floats("mean", mean),
        _floats("std", std),
        float(rescale_factor),
        pass_order,
        dtype,
    )
    if out is not None and not isinstance(out, torch.Tensor):
        raise TypeError(f"{_OP}: out must be a torch.Tensor, got {type(out).__name__}")
    if yuv is not None:
        planes = (yuv.y, yuv.u, yuv.v, list(yuv.coeffs))
        if out is None:
            return torch.ops.sfllava.normalize_yuv420_frames(*planes, *options)
        torch.ops.sfllava.normalize_yuv420_frames.out(*planes, *options, out=out)
        return out
    frames = _to_device(frames, device)
    if out is None:
        return torch.ops.sfllava.normalize_frames(frames, *options)
    torch.ops.sfllava.normalize_frames.out(frames, *options, out=out)
    return out


def _as_tensor(frames: object) -> torch.Tensor:
    """A numpy array becomes a tensor sharing its memory (the op never writes
    to its input); negative strides are copied away."""
    if isinstance(frames, torch.Tensor):
        return frames
    if isinstance(frames, np.ndarray):
        if any(s < 0 for s in frames.strides):
            frames = np.ascontiguousarray(frames)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # read-only arrays are fine
            return torch.from_numpy(frames)
    raise TypeError(
        f"{_OP}: frames must be a torch.Tensor or numpy.ndarray, got {type(frames).__name__}"
    )


def _floats(name: str, values: Sequence[float]) -> list[float]:
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise TypeError(f"{_OP}: {name} must be a sequence of 3 floats, got {values!r}") from None


def _to_device(frames: torch.Tensor, device: torch.device | str | None) -> torch.Tensor:
    """The frames on ``device``: CPU frames bound for CUDA go through pinned memory
    with a non-blocking copy (the op then runs on the same stream)."""
    if device is None or torch.device(device) == frames.device:
        return frames
    target = torch.device(device)
    if frames.device.type == "cpu" and target.type == "cuda":
        pinned = frames if frames.is_pinned() else frames.pin_memory()
        return pinned.to(target, non_blocking=True)
    return frames.to(target)
