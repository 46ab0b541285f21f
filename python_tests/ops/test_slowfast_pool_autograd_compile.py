"""slowfast_pool inside PyTorch: opcheck, torch.compile(fullgraph=True), autograd."""

from __future__ import annotations

import pytest
import torch
from support.reference import slowfast_reference

from sfllava_ext import ops
from sfllava_ext.ops import slowfast_pool

POOLS = ops.SLOW_POOLS


@pytest.mark.parametrize("pool", POOLS)
def test_opcheck(pool, device, gen):
    x = torch.randn(5, 36, 8, generator=gen).to(device).requires_grad_()
    args = (x, 3, pool, [2, 3], [])
    torch.library.opcheck(torch.ops.sfllava.slowfast_pool.default, args)
    n = ops.slowfast_geometry(x.shape, 3, pool, [2, 3], [])[4]
    out = torch.empty(n, 8, device=device)
    torch.library.opcheck(
        torch.ops.sfllava.slowfast_pool.out, (x.detach(), 3, pool, [2, 3], []), {"out": out}
    )
    grad = torch.randn(n, 8, generator=gen).to(device)
    torch.library.opcheck(
        torch.ops.sfllava.slowfast_pool_backward.default, (grad, x.detach(), 3, pool, [2, 3], [])
    )


def test_compile_fullgraph(device, gen):
    x = torch.randn(12, 4, 4, 16, generator=gen).to(device)

    @torch.compile(fullgraph=True)
    def tokens(features):
        return slowfast_pool(features, slow_frames=4, fast_size=(2, 2)) * 2.0

    assert torch.equal(tokens(x), slowfast_pool(x, slow_frames=4, fast_size=(2, 2)) * 2.0)


def test_compile_fullgraph_out_into_embeddings(device, gen):
    """The LLM-input pattern: text embeddings around, visual tokens written in place."""
    x = torch.randn(12, 16, 8, generator=gen).to(device)
    n = ops.slowfast_geometry(x.shape, 4, "spatial_1d_max_pool", [2, 2], [])[4]

    @torch.compile(fullgraph=True)
    def assemble(features, embeds):
        slowfast_pool(features, slow_frames=4, fast_size=(2, 2), out=embeds[3 : 3 + n])
        return embeds

    embeds = torch.randn(n + 7, 8, generator=gen).to(device)
    expected = embeds.clone()
    expected[3 : 3 + n] = slowfast_pool(x, slow_frames=4, fast_size=(2, 2))
    assert torch.equal(assemble(x, embeds), expected)
    assert torch.equal(embeds, expected)


# (shape, slow_frames, fast size): odd grids give overlapping adaptive windows,
# Ns > T repeats frames, a 27-token row makes 1-D pairs straddle rows.
GRAD_CASES = [
    ((3, 16, 3), 2, (2, 2)),
    ((3, 25, 2), 5, (3, 2)),
    ((2, 3, 9, 2), 1, (2, 4)),
    ((4, 9, 2), 2, None),
]


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("case", GRAD_CASES, ids=str)
def test_gradcheck(pool, case, device, gen):
    shape, ns, fast = case
    x = torch.randn(*shape, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    torch.autograd.gradcheck(
        lambda f: slowfast_pool(f, slow_frames=ns, slow_pool=pool, fast_size=fast), (x,)
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("pool", POOLS)
def test_backward_matches_reference_autograd(pool, dtype, device, gen):
    x = torch.randn(7, 5, 6, 4, generator=gen).to(dtype).to(device)
    g = torch.randn(ops.slowfast_geometry(x.shape, 3, pool, [2, 4], [])[4], 4, generator=gen)
    ours_x = x.clone().requires_grad_()
    slowfast_pool(ours_x, slow_frames=3, slow_pool=pool, fast_size=(2, 4)).backward(
        g.to(dtype).to(device)
    )
    ref_x = x.detach().double().cpu().requires_grad_()
    slowfast_reference(ref_x, 3, pool, (2, 4)).backward(g.to(dtype).double())
    tol = 1e-6 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(ours_x.grad.double().cpu(), ref_x.grad, rtol=tol, atol=tol)
