"""slowfast_pool against the independent float64 reference (docs/method.md#pathways)."""

from __future__ import annotations

import itertools

import pytest
import torch
from support.reference import slow_frame_picks, slowfast_reference

from sfllava_ext import ops
from sfllava_ext.ops import slowfast_pool

POOLS = ops.SLOW_POOLS
DTYPES = [torch.float32, torch.float16, torch.bfloat16]

# (T, slow_frames, grid (H, W), fast size, features layout)
CASES = [
    (50, 10, (24, 24), (4, 4), "tnd"),  # the published default
    (7, 3, (27, 27), (4, 4), "tnd"),  # SigLIP-sized odd grid: 1-D pairs straddle rows
    (13, 5, (16, 16), (3, 5), "thwd"),  # non-square fast grid, overlapping windows
    (3, 8, (12, 20), (5, 7), "tnd_grid"),  # non-square token grid, Ns > T repeats frames
    (1, 1, (24, 24), (1, 1), "thwd"),
]


def slow_token_count(pool: str, h: int, w: int) -> int:
    return {
        "concat": h * w,
        "spatial_1d_max_pool": h * w // 2,
        "spatial_1d_avg_pool": h * w // 2,
    }.get(pool, (h // 2) * (w // 2))


def make_features(t, grid, d, layout, dtype, device, gen):
    h, w = grid
    x = torch.randn(t, h, w, d, generator=gen, dtype=torch.float64).to(dtype).to(device)
    if layout == "thwd":
        return x, None
    if layout == "tnd":
        return x.reshape(t, h * w, d), None
    return x.reshape(t, h * w, d), grid


def max_abs_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


def assert_matches_reference(ours, x, slow_frames, pool, fast, grid):
    """Max pools and concat exactly; fp32 averages within 1e-6 x max|ref|;
    fp16/bf16 averages within twice PyTorch's own error in that dtype."""
    ref = slowfast_reference(x.double().cpu(), slow_frames, pool, fast, grid)
    own = slowfast_reference(x.cpu(), slow_frames, pool, fast, grid)  # torch in x's dtype
    ours = ours.cpu()
    assert ours.shape == ref.shape and ours.dtype == x.dtype
    h, w = (x.shape[1], x.shape[2]) if x.dim() == 4 else (grid or (int(x.shape[1] ** 0.5),) * 2)
    n_slow = slow_frames * slow_token_count(pool, h, w)
    parts = [(slice(0, n_slow), "avg" in pool), (slice(n_slow, None), True)]
    for rows, averaged in parts:
        if not averaged:
            assert torch.equal(ours[rows].double(), ref[rows]), f"{pool}: slow tokens differ"
            continue
        if x.dtype == torch.float32:
            tol = 1e-6 * ref[rows].abs().max().item()
        else:
            tol = 2 * max_abs_err(own[rows], ref[rows])
        assert max_abs_err(ours[rows], ref[rows]) <= tol, (pool, rows)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"T{c[0]}-Ns{c[1]}-{c[2][0]}x{c[2][1]}-{c[4]}"
)
def test_matches_reference(case, pool, dtype, device, gen):
    t, ns, grid, fast, layout = case
    x, grid_arg = make_features(t, grid, 24, layout, dtype, device, gen)
    ours = slowfast_pool(x, slow_frames=ns, slow_pool=pool, fast_size=fast, grid=grid_arg)
    assert ours.device == x.device
    assert_matches_reference(ours, x, ns, pool, fast, grid_arg)


def test_frame_picks_all_pairs():
    """T 1..200 x Ns 1..64: the slow pathway reads exactly the frames the published
    torch.linspace picks; the fast pathway covers every frame once, in order."""
    naive_disagreements = 0
    for t in range(1, 201):
        frames = torch.arange(t, dtype=torch.float32).view(t, 1, 1).expand(t, 4, 2)
        for ns in range(1, 65):
            out = slowfast_pool(frames, slow_frames=ns, slow_pool="concat", fast_size=(1, 1))
            picks = slow_frame_picks(t, ns)
            assert out[: 4 * ns : 4, 0].tolist() == [float(p) for p in picks], (t, ns)
            assert out[4 * ns :, 1].tolist() == [float(i) for i in range(t)], (t, ns)
            naive_disagreements += picks != [i * t // ns for i in range(ns)]
    # The float32 linspace really differs from exact arithmetic for some pairs, so
    # this test would catch a kernel that computed the picks itself.
    assert naive_disagreements > 0


@pytest.mark.parametrize("pool", POOLS)
def test_non_contiguous_inputs(pool, device, gen):
    t, h, w, d = 9, 6, 8, 16
    base = torch.randn(t, h, w, d, generator=gen).to(device)
    expected = slowfast_pool(base, slow_frames=4, slow_pool=pool, fast_size=(3, 2))
    views = {
        "token-major storage": base.reshape(t, h * w, d)
        .transpose(0, 1)
        .contiguous()
        .transpose(0, 1),
        "3-D, strided tokens": base.reshape(t, h * w, d)[:, :, :]
        .transpose(1, 2)
        .contiguous()
        .transpose(1, 2),
        "channels-first storage": base.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1),
        "channel stride != 1": base.permute(3, 0, 1, 2).contiguous().permute(1, 2, 3, 0),
        "transposed grid": base.transpose(1, 2).contiguous().transpose(1, 2),
    }
    for name, view in views.items():
        assert not view.is_contiguous()
        grid = (h, w) if view.dim() == 3 else None
        got = slowfast_pool(view, slow_frames=4, slow_pool=pool, fast_size=(3, 2), grid=grid)
        assert torch.equal(got, expected), name
    # Strided frames: every other frame of a longer clip.
    long = torch.randn(2 * t, h, w, d, generator=gen).to(device)
    got = slowfast_pool(long[::2], slow_frames=4, slow_pool=pool, fast_size=(3, 2))
    assert torch.equal(
        got, slowfast_pool(long[::2].contiguous(), slow_frames=4, slow_pool=pool, fast_size=(3, 2))
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_out_writes_into_a_slice_only(dtype, device, gen):
    t, d = 12, 40
    x = torch.randn(t, 576, d, generator=gen).to(dtype).to(device)
    n = ops.slowfast_geometry(x.shape, 10, "spatial_1d_max_pool", [4, 4], [])[4]
    # An LLM's input embeddings, wider rows than D (row stride != D).
    embeds = torch.randn(2, n + 30, d + 8, generator=gen).to(dtype).to(device)
    before = embeds.clone()
    view = embeds[1, 11 : 11 + n, :d]
    returned = slowfast_pool(x, out=view)
    assert returned.data_ptr() == view.data_ptr()
    assert torch.equal(view, slowfast_pool(x))
    untouched = torch.ones_like(embeds, dtype=torch.bool)
    untouched[1, 11 : 11 + n, :d] = False
    assert torch.equal(embeds[untouched], before[untouched])


def test_empty_channels_and_nan_inf(gen):
    x = torch.randn(4, 16, 0)
    assert slowfast_pool(x, slow_frames=2).shape == (2 * 8 + 4 * 16, 0)
    y = torch.randn(5, 16, 6, generator=gen)
    y[1, 3, 2] = float("nan")
    y[2, 5, 1] = float("inf")
    y[3, 0, 0] = float("-inf")
    y[4, 9, 4] = float("nan")
    for pool in POOLS:
        ours = slowfast_pool(y, slow_frames=5, slow_pool=pool, fast_size=(2, 2))
        ref = slowfast_reference(y, 5, pool, (2, 2))
        assert torch.equal(ours.isnan(), ref.isnan()), pool
        assert torch.equal(ours.isinf(), ref.isinf()), pool
        torch.testing.assert_close(ours, ref, equal_nan=True, rtol=1e-6, atol=1e-6)


def test_simt_body_matches_cpu_kernel(gen):
    """The CUDA kernel body, run on the CPU over its whole launch grid, gives the
    CPU kernel's bits: same windows, same accumulation order, same bounds."""
    for pool, dtype, (t, ns, grid, fast, layout) in itertools.product(POOLS, DTYPES, CASES):
        for d in (24, 13):
            x, grid_arg = make_features(t, grid, d, layout, dtype, "cpu", gen)
            expected = slowfast_pool(
                x, slow_frames=ns, slow_pool=pool, fast_size=fast, grid=grid_arg
            )
            for vec in (1, 2, 4, 8):
                if d % vec:
                    continue
                got = torch.ops.sfllava._slowfast_pool_simt(
                    x, ns, pool, list(fast), list(grid_arg or []), vec
                )
                assert torch.equal(got, expected), (pool, dtype, t, d, vec)
            permuted = x.transpose(-1, 0).contiguous().transpose(-1, 0)
            got = torch.ops.sfllava._slowfast_pool_simt(
                permuted, ns, pool, list(fast), list(grid_arg or []), 1
            )
            assert torch.equal(got, expected), (pool, dtype, "permuted")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("pool", POOLS)
def test_cuda_equals_cpu(pool, dtype, gen):
    for t, ns, grid, fast, layout in CASES:
        x, grid_arg = make_features(t, grid, 64, layout, dtype, "cpu", gen)
        cpu = slowfast_pool(x, slow_frames=ns, slow_pool=pool, fast_size=fast, grid=grid_arg)
        gpu = slowfast_pool(x.cuda(), slow_frames=ns, slow_pool=pool, fast_size=fast, grid=grid_arg)
        assert torch.equal(gpu.cpu(), cpu)


def _sweep_pairs() -> list[tuple[int, int]]:
    """Every (T, Ns) in 1..200 x 1..64 where float32 linspace and exact arithmetic
    pick different frames, plus a seeded sample of the rest."""
    differ, same = [], []
    for t in range(1, 201):
        for ns in range(1, 65):
            naive = [i * t // ns for i in range(ns)]
            (differ if slow_frame_picks(t, ns) != naive else same).append((t, ns))
    rng = torch.Generator().manual_seed(7)
    sample = [same[i] for i in torch.randperm(len(same), generator=rng)[:150].tolist()]
    return differ + sample


@pytest.mark.parametrize("pool", POOLS)
def test_sweep_frames_and_picks(pool, device):
    """Every pool over the (T, Ns) pairs where the picks are easy to get wrong."""
    gen = torch.Generator().manual_seed(11)
    for t, ns in _sweep_pairs():
        x = torch.randn(t, 4, 6, 3, generator=gen).to(device)
        ours = slowfast_pool(x, slow_frames=ns, slow_pool=pool, fast_size=(3, 4))
        assert_matches_reference(ours, x, ns, pool, (3, 4), None)
