"""The fake kernels (sfllava_ext/ops/_fakes.py) raise what the C++ ops raise.

Each bad call goes to the C++ op directly (torch.ops, no Python wrapper) and to the
same op under FakeTensorMode, which runs the fake kernel with the Python copies of
the C++ checks (sfllava_ext/ops/checks.py): same exception type, same message, but
for how each side prints a dtype ("Half" in C++, "torch.float16" in Python).
"""

from __future__ import annotations

import re

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

X = torch.zeros(6, 576, 8)
DTYPE_NAMES = {"Half": "torch.float16", "Float": "torch.float32", "Int": "torch.int32"}


def _normalised(message: str) -> str:
    """The first line, with C++ ScalarType names spelled as Python prints dtypes."""
    line = message.strip().splitlines()[0]
    return re.sub(r"\b(Half|Float|Int)\b", lambda m: DTYPE_NAMES[m.group(1)], line)


def _raise_alike(op, args, kwargs) -> None:
    with pytest.raises(Exception) as real:
        op(*args, **kwargs)
    with FakeTensorMode(allow_non_fake_inputs=False) as mode:
        fake_args = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
        fake_kwargs = {
            k: mode.from_tensor(v) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()
        }
        with pytest.raises(Exception) as fake:
            op(*fake_args, **fake_kwargs)
    assert type(fake.value) is type(real.value), (fake.value, real.value)
    assert _normalised(str(fake.value)) == _normalised(str(real.value))


POOL = torch.ops.sfllava.slowfast_pool


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((torch.zeros(0, 576, 8), 10, "spatial_1d_max_pool", [4, 4], []), {}),
        ((torch.zeros(6, 577, 8), 10, "spatial_1d_max_pool", [4, 4], []), {}),
        ((torch.zeros(6, 577, 8), 10, "spatial_1d_max_pool", [4, 4], [24, 24]), {}),
        ((torch.zeros(6, 24, 24, 8), 10, "concat", [4, 4], [12, 48]), {}),
        ((torch.zeros(6, 8), 10, "concat", [4, 4], []), {}),
        ((X, 0, "spatial_1d_max_pool", [4, 4], []), {}),
        ((X, 10, "spatial_3d_max_pool", [4, 4], []), {}),
        ((X, 10, "spatial_1d_max_pool", [25, 4], []), {}),
        ((X, 10, "spatial_1d_max_pool", [0, 4], []), {}),
        ((X, 10, "spatial_1d_max_pool", [4], []), {}),
        ((X.to(torch.int32), 10, "spatial_1d_max_pool", [4, 4], []), {}),
        ((torch.zeros(6, 1, 1, 8), 2, "spatial_2d_max_pool", [1, 1], []), {}),
        ((torch.zeros(6, 1, 1, 8), 2, "spatial_1d_avg_pool", [1, 1], []), {}),
    ],
)
def test_slowfast_pool_fake_raises_like_the_op(args, kwargs):
    _raise_alike(POOL, args, kwargs)


@pytest.mark.parametrize(
    "out",
    [
        torch.zeros(3679, 8),
        torch.zeros(2976, 8, dtype=torch.float16),
        torch.zeros(8, 2976).t(),
        torch.zeros(2976, 16)[:, :8].as_strided((2976, 8), (4, 1)),
    ],
)
def test_slowfast_pool_out_fake_raises_like_the_op(out):
    _raise_alike(POOL.out, (X, 10, "spatial_1d_max_pool", [4, 4], []), {"out": out})


Y, UV = torch.zeros(6, 8, dtype=torch.uint8), torch.zeros(3, 4, dtype=torch.uint8)
COEFFS = [9539, -1188, 16525, -3209, -6660, 13074]


@pytest.mark.parametrize(
    "args, out",
    [
        ((Y, UV, UV, COEFFS), torch.zeros(6, 8, 3, dtype=torch.uint8)[:, :, :2]),
        ((Y, UV, UV, COEFFS), torch.zeros(6, 8, 3)),
        ((Y, UV, UV, COEFFS), torch.zeros(6, 9, 3, dtype=torch.uint8)),
        ((Y, UV, UV, COEFFS), torch.zeros(3, 8, 6, dtype=torch.uint8).permute(2, 1, 0)),
        ((Y.float(), UV, UV, COEFFS), torch.zeros(6, 8, 3, dtype=torch.uint8)),
        ((Y[None], UV, UV, COEFFS), torch.zeros(6, 8, 3, dtype=torch.uint8)),
        ((Y, UV[:2], UV, COEFFS), torch.zeros(6, 8, 3, dtype=torch.uint8)),
        ((Y, UV, UV[None], COEFFS), torch.zeros(6, 8, 3, dtype=torch.uint8)),
        ((Y, UV, torch.zeros(3, 8, dtype=torch.uint8)[:, ::2], COEFFS), None),
        ((Y, UV, UV, COEFFS[:5]), torch.zeros(6, 8, 3, dtype=torch.uint8)),
        ((Y, UV, UV, [*COEFFS[:5], 40000]), torch.zeros(6, 8, 3, dtype=torch.uint8)),
    ],
)
def test_yuv420_to_rgb_fake_raises_like_the_op(args, out):
    out = torch.zeros(6, 8, 3, dtype=torch.uint8) if out is None else out
    _raise_alike(torch.ops.sfllava.yuv420_to_rgb, args, {"out": out})


def test_yuv420_to_rgb_opcheck():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 256, (6, 8), dtype=torch.uint8, generator=g)
    u, v = (torch.randint(0, 256, (3, 4), dtype=torch.uint8, generator=g) for _ in range(2))
    out = torch.empty(6, 8, 3, dtype=torch.uint8)
    torch.library.opcheck(torch.ops.sfllava.yuv420_to_rgb.default, (y, u, v, COEFFS), {"out": out})
