"""Typed wrappers over torch.ops.sfllava.*, their fake kernels and autograd.

The kernels live in csrc/ (CPU always, CUDA when built); the dispatcher picks
the backend from the input's device. Fake kernels compute shapes only and
repeat the C++ checks, so the ops work under ``torch.compile(fullgraph=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ._extension import _C  # noqa: F401  (loads the kernels, registers the ops)
from .yuv_to_rgb import Yuv420Frames

__all__ = [
    "slowfast_pool",
    "SLOW_POOLS",
    "slowfast_geometry",
    "normalize_frames",
    "normalize_frames_shape",
    "CLIP_MEAN",
    "CLIP_STD",
    "RESIZE_MODES",
    "PASS_ORDERS",
]

SLOW_POOLS = (
    "concat",
    "spatial_1d_max_pool",
    "spatial_1d_avg_pool",
    "spatial_2d_max_pool",
    "spatial_2d_avg_pool",
)
_FLOATING = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


# --------------------------------------------------------------------------
# slowfast_pool
# --------------------------------------------------------------------------


def _slow_tokens_per_frame(slow_pool: str, h: int, w: int) -> int:
    if slow_pool == "concat":
        return h * w
    if slow_pool in ("spatial_1d_max_pool", "spatial_1d_avg_pool"):
        return (h * w) // 2
    return (h // 2) * (w // 2)


def slowfast_geometry(
    shape: Sequence[int],
    slow_frames: int,
    slow_pool: str,
    fast_size: Sequence[int],
    grid: Sequence[int],
) -> tuple[int, int, int, int, int]:
    """Validates slowfast_pool's arguments against a features shape, exactly as
    the C++ op does, and returns ``(T, H, W, D, num_tokens)``.

    ``fast_size`` and ``grid`` are lists here (empty = no fast pathway / infer).
    """
    op = "slowfast_pool"
    if len(shape) not in (3, 4):
        raise ValueError(f"{op}: features must be (T, N, D) or (T, H, W, D), got {list(shape)}")
    t, d = int(shape[0]), int(shape[-1])
    if t == 0:
        raise ValueError(
            f"{op}: features has T = 0 frames (shape {list(shape)}); "
            "at least one frame is needed to form visual tokens"
        )
    grid = [int(g) for g in grid]
    if len(shape) == 4:
        h, w = int(shape[1]), int(shape[2])
        if grid and grid != [h, w]:
            raise ValueError(f"{op}: grid {grid} does not match features of shape {list(shape)}")
    else:
        n = int(shape[1])
        if not grid:
            side = math.isqrt(n)
            if side * side != n:
                raise ValueError(
                    f"{op}: features has N = {n} tokens per frame, which is not a square "
                    "grid; pass grid=(H, W)"
                )
            h = w = side
        else:
            if len(grid) != 2 or grid[0] <= 0 or grid[1] <= 0:
                raise ValueError(f"{op}: grid must be (H, W) with H, W >= 1, got {grid}")
            if grid[0] * grid[1] != n:
                raise ValueError(
                    f"{op}: grid {grid} has {grid[0] * grid[1]} tokens but features has "
                    f"N = {n} (shape {list(shape)})"
                )
            h, w = grid
    if h <= 0 or w <= 0:
        raise ValueError(f"{op}: features has no tokens per frame (shape {list(shape)})")
    if slow_frames < 1:
        raise ValueError(f"{op}: slow_frames must be >= 1, got {slow_frames}")
    if slow_pool not in SLOW_POOLS:
        raise ValueError(
            f"{op}: slow_pool must be one of {', '.join(SLOW_POOLS)}, got '{slow_pool}'"
        )
    if "1d" in slow_pool and h * w < 2:
        raise ValueError(f"{op}: slow_pool {slow_pool} needs at least 2 tokens per frame")
    if "2d" in slow_pool and (h < 2 or w < 2):
        raise ValueError(f"{op}: slow_pool {slow_pool} needs a grid of at least 2x2, got {h}x{w}")
    fh = fw = 0
    if fast_size:
        if len(fast_size) != 2 or fast_size[0] < 1 or fast_size[1] < 1:
            raise ValueError(
                f"{op}: fast_size must be (h, w) with h, w >= 1, got {list(fast_size)}"
            )
        if fast_size[0] > h or fast_size[1] > w:
            raise ValueError(
                f"{op}: fast_size {list(fast_size)} is larger than the token grid ({h}, {w})"
            )
        fh, fw = int(fast_size[0]), int(fast_size[1])
    num_tokens = slow_frames * _slow_tokens_per_frame(slow_pool, h, w) + t * fh * fw
    return t, h, w, d, num_tokens


def _check_dtype(name: str, tensor: torch.Tensor) -> None:
    if tensor.dtype not in _FLOATING:
        raise TypeError(
            f"slowfast_pool: {name} must be float32, float16, bfloat16 or float64, "
            f"got {tensor.dtype}"
        )


def _int_pair(name: str, value: Sequence[int] | None) -> list[int]:
    if value is None:
        return []
    try:
        pair = [int(v) for v in value]
    except (TypeError, ValueError):
        raise TypeError(f"slowfast_pool: {name} must be a pair of ints, got {value!r}") from None
    if len(pair) != 2 or any(p != v for p, v in zip(pair, value, strict=True)):
        raise ValueError(f"slowfast_pool: {name} must be a pair of ints, got {value!r}")
    return pair


def slowfast_pool(
    features: torch.Tensor,
    *,
    slow_frames: int = 10,
    slow_pool: str = "spatial_1d_max_pool",
    fast_size: Sequence[int] | None = (4, 4),
    grid: Sequence[int] | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """SF-LLaVA's slow and fast pathways in one fused pass (SPEC steps 5-7).

    Args:
        features: per-frame projected tokens, ``(T, N, D)`` with N = H*W in
            row-major order, or ``(T, H, W, D)``; float32, float16, bfloat16
            (or float64); CPU or CUDA; any strides.
        slow_frames: Ns, frames of the slow pathway, picked as the published
            ``torch.linspace(0, T, Ns + 1).to(torch.int32)[:-1]``.
        slow_pool: pooling of each slow frame: ``concat``,
            ``spatial_1d_max_pool`` / ``spatial_1d_avg_pool`` (kernel 2,
            stride 2 over the flattened token axis), ``spatial_2d_max_pool`` /
            ``spatial_2d_avg_pool`` (2x2 on the grid).
        fast_size: (h, w) adaptive-average grid of every frame in the fast
            pathway, no larger than the token grid; None for no fast pathway.
        grid: (H, W) of a ``(T, N, D)`` input; None infers a square grid.
        out: optional ``(num_tokens, D)`` buffer with contiguous rows (a slice
            of an LLM's input embeddings, say) that receives the tokens.

    Returns:
        ``(Ns * slow_tokens_per_frame + T * h * w, D)`` in the dtype and on the
        device of ``features``: the slow tokens (frame-major, row-major), then
        the fast tokens (frame-major, row-major). ``out`` itself when given.

    Raises:
        TypeError: features is not a floating tensor; out has another dtype.
        ValueError: bad shapes, T = 0, a non-square N without ``grid``,
            slow_frames < 1, an unknown slow_pool, a fast size larger than the
            grid, an ``out`` of the wrong shape, device or strides.
    """
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"slowfast_pool: features must be a torch.Tensor, got {type(features)}")
    _check_dtype("features", features)
    if not isinstance(slow_pool, str):
        raise TypeError(f"slowfast_pool: slow_pool must be a str, got {type(slow_pool)}")
    fast = _int_pair("fast_size", fast_size)
    grid_ = _int_pair("grid", grid)
    if out is None:
        return torch.ops.sfllava.slowfast_pool(features, int(slow_frames), slow_pool, fast, grid_)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"slowfast_pool: out must be a torch.Tensor, got {type(out)}")
    if torch.is_grad_enabled() and (features.requires_grad or out.requires_grad):
        raise RuntimeError(
            "slowfast_pool: out= does not support autograd; call it without out= "
            "(or under torch.no_grad()) when features requires grad"
        )
    torch.ops.sfllava.slowfast_pool.out(features, int(slow_frames), slow_pool, fast, grid_, out=out)
    return out


@torch.library.register_fake("sfllava::slowfast_pool")
def _slowfast_pool_fake(features, slow_frames, slow_pool, fast_size, grid):
    _check_dtype("features", features)
    _, _, _, d, num_tokens = slowfast_geometry(
        features.shape, slow_frames, slow_pool, fast_size, grid
    )
    return features.new_empty((num_tokens, d))


@torch.library.register_fake("sfllava::slowfast_pool.out")
def _slowfast_pool_out_fake(features, slow_frames, slow_pool, fast_size, grid, *, out):
    _check_dtype("features", features)
    _, _, _, d, num_tokens = slowfast_geometry(
        features.shape, slow_frames, slow_pool, fast_size, grid
    )
    if out.device != features.device:
        raise ValueError(
            f"slowfast_pool: out is on {out.device} but features is on {features.device}"
        )
    if out.dtype != features.dtype:
        raise TypeError(
            f"slowfast_pool: out has dtype {out.dtype} but features has dtype {features.dtype}"
        )
    if tuple(out.shape) != (num_tokens, d):
        raise ValueError(
            f"slowfast_pool: out must have shape ({num_tokens}, {d}), got {list(out.shape)}"
        )
    if out.stride(1) != 1 and d > 1:
        raise ValueError(
            f"slowfast_pool: out must have contiguous rows (stride 1 along D), "
            f"got strides {list(out.stride())}"
        )


@torch.library.register_fake("sfllava::slowfast_pool_backward")
def _slowfast_pool_backward_fake(grad, features, slow_frames, slow_pool, fast_size, grid):
    return torch.empty_like(features, memory_format=torch.contiguous_format)


def _slowfast_setup_context(ctx, inputs, output):
    features, slow_frames, slow_pool, fast_size, grid = inputs
    ctx.save_for_backward(features)
    ctx.args = (slow_frames, slow_pool, fast_size, grid)


def _slowfast_backward(ctx, grad):
    (features,) = ctx.saved_tensors
    grad_features = None
    if ctx.needs_input_grad[0]:
        grad_features = torch.ops.sfllava.slowfast_pool_backward(grad, features, *ctx.args)
    return grad_features, None, None, None, None


torch.library.register_autograd(
    "sfllava::slowfast_pool", _slowfast_backward, setup_context=_slowfast_setup_context
)


# --------------------------------------------------------------------------
# normalize_frames
# --------------------------------------------------------------------------

#: The CLIP image processor's (OpenAI CLIP's) per-channel mean and std, RGB.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
RESIZE_MODES = ("squash", "crop", "pad")
#: Pillow's pass orders: ``pillow13`` (Pillow >= 13 runs the vertical pass first
#: when the height shrinks by more than twice as many pixels as the width) and
#: ``pillow12`` (Pillow <= 12: always horizontal first).
PASS_ORDERS = ("pillow13", "pillow12")
_NF = "normalize_frames"
_NF_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_MAX_SIDE = 1 << 24


def _nf_resized(h: int, w: int, side: int) -> tuple[int, int]:
    """Hugging Face's shortest-edge output size: the shorter side becomes
    ``side``, the longer ``int(side * long / short)``."""
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(side * long / short)
    return (new_long, side) if w <= h else (side, new_long)


def normalize_frames_shape(
    shape: Sequence[int],
    size: Sequence[int],
    resize_mode: str,
    shortest_edge: int | None,
    op: str = _NF,
) -> tuple[int, int, int]:
    """Validates normalize_frames' geometry arguments against a frames shape,
    exactly as the C++ op does, and returns ``(T, h, w)`` of the result."""
    if len(shape) != 4 or int(shape[3]) != 3:
        raise ValueError(f"{op}: frames must be (T, H, W, 3) RGB, got shape {list(shape)}")
    t, h, w = int(shape[0]), int(shape[1]), int(shape[2])
    if h <= 0 or w <= 0:
        raise ValueError(f"{op}: frames has zero-sized frames (shape {list(shape)})")
    if h >= _MAX_SIDE or w >= _MAX_SIDE:
        raise ValueError(f"{op}: frames of {h}x{w} are too large (each side must be < {_MAX_SIDE})")
    size = [int(s) for s in size]
    if len(size) != 2 or size[0] <= 0 or size[1] <= 0:
        raise ValueError(f"{op}: size must be (height, width) with both >= 1, got {size}")
    if size[0] >= _MAX_SIDE or size[1] >= _MAX_SIDE:
        raise ValueError(f"{op}: size {size} is too large (each side must be < {_MAX_SIDE})")
    if resize_mode not in RESIZE_MODES:
        raise ValueError(
            f"{op}: resize_mode must be one of {', '.join(RESIZE_MODES)}, got '{resize_mode}'"
        )
    if shortest_edge is not None and not 0 < shortest_edge < _MAX_SIDE:
        raise ValueError(
            f"{op}: shortest_edge must be None or in [1, {_MAX_SIDE}), got {shortest_edge}"
        )
    if resize_mode != "squash":
        side = max(h, w)
        ch, cw = (side, side) if resize_mode == "pad" else (h, w)
        rh, rw = _nf_resized(ch, cw, shortest_edge or min(size))
        if rh >= _MAX_SIDE or rw >= _MAX_SIDE:
            raise ValueError(
                f"{op}: frames of {h}x{w} resized to shortest edge "
                f"{shortest_edge or min(size)} give {rh}x{rw}, too large "
                f"(each side must be < {_MAX_SIDE})"
            )
    return t, size[0], size[1]


def _nf_check_values(
    mean: Sequence[float],
    std: Sequence[float],
    rescale_factor: float,
    pass_order: str,
    op: str = _NF,
) -> None:
    if len(mean) != 3:
        raise ValueError(f"{op}: mean must have 3 values (R, G, B), got {len(mean)} values")
    if len(std) != 3:
        raise ValueError(f"{op}: std must have 3 values (R, G, B), got {len(std)} values")
    if not all(math.isfinite(m) for m in mean):
        raise ValueError(f"{op}: mean must be finite, got {list(mean)}")
    # The processor divides in float32, where |std| <= 2^-150 rounds to zero.
    if not all(math.isfinite(s) and abs(s) > 2.0**-150 for s in std):
        raise ValueError(f"{op}: std must be finite and nonzero, got {list(std)}")
    if not math.isfinite(rescale_factor):
        raise ValueError(f"{op}: rescale_factor must be finite, got {rescale_factor}")
    if pass_order not in PASS_ORDERS:
        raise ValueError(
            f"{op}: pass_order must be one of {', '.join(PASS_ORDERS)}, got '{pass_order}'"
        )


def _nf_check_frames_dtype(frames: torch.Tensor) -> None:
    if frames.dtype != torch.uint8:
        raise TypeError(f"{_NF}: frames must be uint8 (T, H, W, 3) RGB, got dtype {frames.dtype}")


def _nf_check_dtype(dtype: torch.dtype, op: str = _NF) -> None:
    if dtype not in _NF_DTYPES:
        raise TypeError(f"{op}: dtype must be float32, float16 or bfloat16, got {dtype}")


def _nf_floats(name: str, values: Sequence[float]) -> list[float]:
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise TypeError(f"{_NF}: {name} must be a sequence of 3 floats, got {values!r}") from None


def _nf_as_tensor(frames: object) -> torch.Tensor:
    """A numpy array becomes a tensor sharing its memory (the op never writes
    to its input); negative strides are copied away."""
    import warnings

    if isinstance(frames, torch.Tensor):
        return frames
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency
        np = None
    if np is not None and isinstance(frames, np.ndarray):
        if any(s < 0 for s in frames.strides):
            frames = np.ascontiguousarray(frames)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # read-only arrays are fine
            return torch.from_numpy(frames)
    raise TypeError(
        f"{_NF}: frames must be a torch.Tensor or numpy.ndarray, got {type(frames).__name__}"
    )


def normalize_frames(
    frames: torch.Tensor | Yuv420Frames,
    size: Sequence[int] = (336, 336),
    *,
    resize_mode: str = "squash",
    shortest_edge: int | None = None,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    rescale_factor: float = 1 / 255,
    pass_order: str = "pillow13",
    dtype: torch.dtype = torch.float16,
    out: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The published frame preprocessing (SPEC step 2) in one fused op.

    Resamples exactly as Pillow's ``Image.resize(..., BICUBIC)`` (the same
    8-bit intermediates, bit for bit), then applies the Hugging Face CLIP image
    processor's centre crop, ``float32(x * rescale_factor)``, ``(x - mean) /
    std`` in float32, and casts. No full-size float copy of the frames is made.

    Args:
        frames: uint8 ``(T, H, W, 3)`` RGB frames, a tensor (CPU or CUDA, any
            strides) or a numpy array; or CPU :class:`~sfllava_ext.yuv_to_rgb.Yuv420Frames`
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
            3 values or a zero std, out of the wrong shape, device or layout.
    """
    yuv = frames if isinstance(frames, Yuv420Frames) else None
    if yuv is not None:
        if yuv.device.type != "cpu":
            raise ValueError(f"{_NF}: Yuv420Frames must be on the CPU, got {yuv.device}")
        if device is not None and torch.device(device) != yuv.device:
            frames, yuv = yuv.to_rgb(), None
    else:
        frames = _nf_as_tensor(frames)
        _nf_check_frames_dtype(frames)
    if not isinstance(resize_mode, str):
        raise TypeError(f"{_NF}: resize_mode must be a str, got {type(resize_mode).__name__}")
    if not isinstance(pass_order, str):
        raise TypeError(f"{_NF}: pass_order must be a str, got {type(pass_order).__name__}")
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"{_NF}: dtype must be a torch.dtype, got {dtype!r}")
    _nf_check_dtype(dtype)
    try:
        size_ = [int(s) for s in size]
    except (TypeError, ValueError):
        raise TypeError(f"{_NF}: size must be a pair of ints, got {size!r}") from None
    edge = None if shortest_edge is None else int(shortest_edge)
    mean_ = _nf_floats("mean", mean)
    std_ = _nf_floats("std", std)
    options = (size_, resize_mode, edge, mean_, std_, float(rescale_factor), pass_order, dtype)
    if out is not None and not isinstance(out, torch.Tensor):
        raise TypeError(f"{_NF}: out must be a torch.Tensor, got {type(out).__name__}")
    if yuv is not None:
        planes = (yuv.y, yuv.u, yuv.v, list(yuv.coeffs))
        if out is None:
            return torch.ops.sfllava.normalize_yuv420_frames(*planes, *options)
        torch.ops.sfllava.normalize_yuv420_frames.out(*planes, *options, out=out)
        return out
    if device is not None and torch.device(device) != frames.device:
        target = torch.device(device)
        if frames.device.type == "cpu" and target.type == "cuda":
            pinned = frames if frames.is_pinned() else frames.pin_memory()
            frames = pinned.to(target, non_blocking=True)
        else:
            frames = frames.to(target)
    if out is None:
        return torch.ops.sfllava.normalize_frames(frames, *options)
    torch.ops.sfllava.normalize_frames.out(frames, *options, out=out)
    return out


def _nf_fake_checks(
    frames, size, resize_mode, shortest_edge, mean, std, rescale_factor, pass_order, dtype
):
    _nf_check_frames_dtype(frames)
    t, h, w = normalize_frames_shape(frames.shape, size, resize_mode, shortest_edge)
    _nf_check_values(mean, std, rescale_factor, pass_order)
    _nf_check_dtype(dtype)
    return t, h, w


@torch.library.register_fake("sfllava::normalize_frames")
def _normalize_frames_fake(
    frames, size, resize_mode, shortest_edge, mean, std, rescale_factor, pass_order, dtype
):
    t, h, w = _nf_fake_checks(
        frames, size, resize_mode, shortest_edge, mean, std, rescale_factor, pass_order, dtype
    )
    return frames.new_empty((t, 3, h, w), dtype=dtype)


@torch.library.register_fake("sfllava::normalize_frames.out")
def _normalize_frames_out_fake(
    frames, size, resize_mode, shortest_edge, mean, std, rescale_factor, pass_order, dtype, *, out
):
    t, h, w = _nf_fake_checks(
        frames, size, resize_mode, shortest_edge, mean, std, rescale_factor, pass_order, dtype
    )
    _nf_check_out(_NF, out, (t, 3, h, w), dtype, frames, "frames")


def _nf_check_out(op, out, shape, dtype, source, source_name) -> None:
    """The C++ check_normalize_out on fake tensors: out's device (``source``'s),
    dtype, shape and layout."""
    if out.device != source.device:
        raise ValueError(f"{op}: out is on {out.device} but {source_name} is on {source.device}")
    if out.dtype != dtype:
        raise TypeError(f"{op}: out has dtype {out.dtype} but dtype is {dtype}")
    if tuple(out.shape) != shape:
        raise ValueError(
            f"{op}: out must have shape ({', '.join(map(str, shape))}), got {list(out.shape)}"
        )
    if not out.is_contiguous():
        raise ValueError(f"{op}: out must be contiguous (NCHW), got strides {list(out.stride())}")


_NYF = "normalize_yuv420_frames"


def _yuv_fake_checks(
    y, u, v, coeffs, size, resize_mode, shortest_edge, mean, std, rescale_factor, pass_order, dtype
):
    """normalize_yuv420_frames' checks on fake tensors, with the C++ op's messages."""
    if y.dim() != 3:
        raise ValueError(f"{_NYF}: y must be 3-D (T, H, W), got shape {list(y.shape)}")
    t, h, w = (int(d) for d in y.shape)
    chroma = [t, (h + 1) // 2, (w + 1) // 2]
    for plane, label, shape in ((y, "y", [t, h, w]), (u, "u", chroma), (v, "v", chroma)):
        if plane.dtype != torch.uint8:
            raise TypeError(f"{_NYF}: {label} must be uint8, got {plane.dtype}")
        if plane.device.type not in ("cpu", "meta"):
            raise ValueError(f"{_NYF}: {label} must be on the CPU, got {plane.device}")
        if list(plane.shape) != shape:
            raise ValueError(
                f"{_NYF}: {label} must be ({', '.join(map(str, shape))}) for the luma plane's "
                f"size, got {list(plane.shape)}"
            )
        if plane.stride(2) != 1 and shape[2] > 1:
            raise ValueError(
                f"{_NYF}: {label} must have contiguous columns, got strides {list(plane.stride())}"
            )
    if len(coeffs) != 6:
        raise ValueError(
            f"{_NYF}: coeffs must be 6 integers (cy, y_offset, cub, cug, cvg, cvr), "
            f"got {len(coeffs)}"
        )
    if any(not -32768 <= c <= 32767 for c in coeffs):
        raise ValueError(f"{_NYF}: coeffs must be 16-bit signed integers, got {list(coeffs)}")
    if h <= 0 or w <= 0:
        raise ValueError(f"{_NYF}: y has zero-sized frames (shape {list(y.shape)})")
    shape = normalize_frames_shape((t, h, w, 3), size, resize_mode, shortest_edge, _NYF)
    _nf_check_values(mean, std, rescale_factor, pass_order, _NYF)
    _nf_check_dtype(dtype, _NYF)
    return shape


@torch.library.register_fake("sfllava::normalize_yuv420_frames")
def _normalize_yuv420_frames_fake(y, u, v, coeffs, *options):
    t, h, w = _yuv_fake_checks(y, u, v, coeffs, *options)
    return y.new_empty((t, 3, h, w), dtype=options[-1])


@torch.library.register_fake("sfllava::normalize_yuv420_frames.out")
def _normalize_yuv420_frames_out_fake(y, u, v, coeffs, *options, out):
    t, h, w = _yuv_fake_checks(y, u, v, coeffs, *options)
    _nf_check_out(_NYF, out, (t, 3, h, w), options[-1], y, "y")


# the test-only SIMT op has the same schema and result as normalize_frames
torch.library.register_fake("sfllava::_normalize_frames_simt", _normalize_frames_fake)
