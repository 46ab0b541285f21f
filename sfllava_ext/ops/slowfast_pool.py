"""``slowfast_pool``: SF-LLaVA's slow and fast pathways in one fused op.

Per extension-cpp's layout: the wrapper, then the autograd registration. The fake
kernel is in :mod:`sfllava_ext.ops._fakes`; the checks it shares with the C++ op in
:mod:`sfllava_ext.ops.checks`. The method is described in docs/method.md
("Slow and fast pathways").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .checks import check_floating

__all__ = ["slowfast_pool"]

_OP = "slowfast_pool"


def slowfast_pool(
    features: torch.Tensor,
    *,
    slow_frames: int = 10,
    slow_pool: str = "spatial_1d_max_pool",
    fast_size: Sequence[int] | None = (4, 4),
    grid: Sequence[int] | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """SF-LLaVA's slow and fast pathways in one fused pass.

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
        RuntimeError: ``out=`` while autograd records (features requires grad).
    """
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"{_OP}: features must be a torch.Tensor, got {type(features)}")
    check_floating(_OP, "features", features)
    if not isinstance(slow_pool, str):
        raise TypeError(f"{_OP}: slow_pool must be a str, got {type(slow_pool)}")
    fast = _int_pair("fast_size", fast_size)
    grid_ = _int_pair("grid", grid)
    if out is None:
        return torch.ops.sfllava.slowfast_pool(features, int(slow_frames), slow_pool, fast, grid_)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{_OP}: out must be a torch.Tensor, got {type(out)}")
    if torch.is_grad_enabled() and (features.requires_grad or out.requires_grad):
        raise RuntimeError(
            f"{_OP}: out= does not support autograd; call it without out= "
            "(or under torch.no_grad()) when features requires grad"
        )
    torch.ops.sfllava.slowfast_pool.out(features, int(slow_frames), slow_pool, fast, grid_, out=out)
    return out


def _int_pair(name: str, value: Sequence[int] | None) -> list[int]:
    """A pair of ints as the schema's ``int[]`` (empty for None)."""
    if value is None:
        return []
    try:
        pair = [int(v) for v in value]
    except (TypeError, ValueError):
        raise TypeError(f"{_OP}: {name} must be a pair of ints, got {value!r}") from None
    if len(pair) != 2 or any(p != v for p, v in zip(pair, value, strict=True)):
        raise ValueError(f"{_OP}: {name} must be a pair of ints, got {value!r}")
    return pair


# autograd: the backward is its own op (CPU and CUDA kernels), which gives each
# input token the gradient of the output tokens it fed.


def _setup_context(ctx, inputs, output):
    features, slow_frames, slow_pool, fast_size, grid = inputs
    ctx.save_for_backward(features)
    ctx.args = (slow_frames, slow_pool, fast_size, grid)


def _backward(ctx, grad):
    (features,) = ctx.saved_tensors
    grad_features = None
    if ctx.needs_input_grad[0]:
        grad_features = torch.ops.sfllava.slowfast_pool_backward(grad, features, *ctx.args)
    return grad_features, None, None, None, None


torch.library.register_autograd("sfllava::slowfast_pool", _backward, setup_context=_setup_context)
