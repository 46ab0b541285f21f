"""Bad input to slowfast_pool: typed errors that name the argument and what arrived."""

from __future__ import annotations

import pytest
import torch

from sfllava_ext.ops import slowfast_pool

X = torch.zeros(6, 576, 8)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(features=torch.zeros(0, 576, 8)), ValueError, r"T = 0 frames"),
        (dict(features=torch.zeros(6, 577, 8)), ValueError, r"N = 577 .* not a square"),
        (
            dict(features=torch.zeros(6, 577, 8), grid=(24, 24)),
            ValueError,
            r"grid \[24, 24\] has 576 tokens but features has N = 577",
        ),
        (
            dict(features=torch.zeros(6, 24, 24, 8), grid=(12, 48)),
            ValueError,
            r"grid \[12, 48\] does not match",
        ),
        (
            dict(features=torch.zeros(6, 8)),
            ValueError,
            r"features must be \(T, N, D\) or \(T, H, W, D\), got \[6, 8\]",
        ),
        (dict(features=X, slow_frames=0), ValueError, r"slow_frames must be >= 1, got 0"),
        (
            dict(features=X, slow_pool="spatial_3d_max_pool"),
            ValueError,
            r"slow_pool must be one of .* got 'spatial_3d_max_pool'",
        ),
        (
            dict(features=X, fast_size=(25, 4)),
            ValueError,
            r"fast_size \[25, 4\] is larger than the token grid \(24, 24\)",
        ),
        (
            dict(features=X, fast_size=(0, 4)),
            ValueError,
            r"fast_size must be \(h, w\) with h, w >= 1",
        ),
        (dict(features=X, fast_size=(4,)), ValueError, r"fast_size must be a pair of ints"),
        (dict(features=X, fast_size="4x4"), TypeError, r"fast_size must be a pair of ints"),
        (
            dict(features=X.to(torch.int32)),
            TypeError,
            r"features must be float32, float16, bfloat16 or float64, got torch.int32",
        ),
        (dict(features=X.to(torch.uint8)), TypeError, r"got torch.uint8"),
        (dict(features=X.to(torch.complex64)), TypeError, r"got torch.complex64"),
        (dict(features=X.numpy()), TypeError, r"features must be a torch.Tensor"),
        (
            dict(
                features=torch.zeros(6, 1, 1, 8), slow_pool="spatial_2d_max_pool", fast_size=(1, 1)
            ),
            ValueError,
            r"at least 2x2",
        ),
        (
            dict(features=X, out=torch.zeros(3679, 8)),
            ValueError,
            r"out must have shape \(2976, 8\), got \[3679, 8\]",
        ),
        (
            dict(features=X, out=torch.zeros(2976, 8, dtype=torch.float16)),
            TypeError,
            r"out has dtype Half but features has dtype Float",
        ),
        (
            dict(features=X, out=torch.zeros(8, 2976).t()),
            ValueError,
            r"out must have contiguous rows",
        ),
        (
            dict(features=X, out=torch.zeros(2976, 8, device="meta")),
            ValueError,
            r"out is on meta but features is on cpu",
        ),
    ],
)
def test_bad_input(kwargs, exc, match):
    features = kwargs.pop("features")
    with pytest.raises(exc, match=match):
        slowfast_pool(features, **kwargs)


def test_direct_op_calls_are_checked_in_cpp():
    """The C++ op checks on its own (torch.ops.sfllava called without the wrapper)."""
    with pytest.raises(ValueError, match="T = 0 frames"):
        torch.ops.sfllava.slowfast_pool(torch.zeros(0, 4, 2), 1, "concat", [1, 1], [])
    with pytest.raises(TypeError, match="got Int"):
        torch.ops.sfllava.slowfast_pool(
            torch.zeros(2, 4, 2, dtype=torch.int32), 1, "concat", [], []
        )
    with pytest.raises(ValueError, match="out must have shape"):
        torch.ops.sfllava.slowfast_pool.out(
            torch.zeros(2, 4, 2), 1, "concat", [], [], out=torch.zeros(3, 2)
        )
    with pytest.raises(ValueError, match="out shares memory with features"):
        buf = torch.zeros(8, 2)
        torch.ops.sfllava.slowfast_pool.out(buf.view(2, 4, 2), 2, "concat", [], [], out=buf)


def test_out_with_autograd_is_refused():
    x = torch.zeros(2, 4, 2, requires_grad=True)
    with pytest.raises(RuntimeError, match="out= does not support autograd"):
        slowfast_pool(x, slow_frames=1, fast_size=(1, 1), out=torch.zeros(6, 2))
