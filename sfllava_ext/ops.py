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

__all__ = ["slowfast_pool", "SLOW_POOLS", "slowfast_geometry"]

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
            raise ValueError(f"{op}: fast_size must be (h, w) with h, w >= 1, got {list(fast_size)}")
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
    if len(pair) != 2 or any(p != v for p, v in zip(pair, value)):
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
        raise ValueError(f"slowfast_pool: out is on {out.device} but features is on {features.device}")
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
