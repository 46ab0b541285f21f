"""Every fake (meta) kernel of ``torch.ops.sfllava``, in one module.

A fake kernel computes the result's shape and runs the C++ op's argument checks
(:mod:`sfllava_ext.ops.checks`), never reading data, so that the ops work under
``torch.compile(fullgraph=True)`` and ``torch.library.opcheck``. Imported by
``sfllava_ext.ops`` itself: the fakes are registered before any op can be called
through this package.
"""

from __future__ import annotations

import torch

from .checks import (
    check_floating,
    check_frames,
    check_normalize_out,
    check_normalize_values,
    check_slowfast_out,
    check_yuv420_planes,
    check_yuv420_to_rgb_out,
    normalize_frames_shape,
    slowfast_geometry,
)

# --------------------------------------------------------------------------- slowfast_pool


@torch.library.register_fake("sfllava::slowfast_pool")
def slowfast_pool_fake(features, slow_frames, slow_pool, fast_size, grid):
    check_floating("slowfast_pool", "features", features)
    _, _, _, d, num_tokens = slowfast_geometry(
        features.shape, slow_frames, slow_pool, fast_size, grid
    )
    return features.new_empty((num_tokens, d))


@torch.library.register_fake("sfllava::slowfast_pool.out")
def slowfast_pool_out_fake(features, slow_frames, slow_pool, fast_size, grid, *, out):
    check_floating("slowfast_pool", "features", features)
    _, _, _, d, num_tokens = slowfast_geometry(
        features.shape, slow_frames, slow_pool, fast_size, grid
    )
    check_slowfast_out(out, features, num_tokens, d)


@torch.library.register_fake("sfllava::slowfast_pool_backward")
def slowfast_pool_backward_fake(grad, features, slow_frames, slow_pool, fast_size, grid):
    return torch.empty_like(features, memory_format=torch.contiguous_format)


# the test-only SIMT op: the CUDA kernel's body run on the CPU, same result
@torch.library.register_fake("sfllava::_slowfast_pool_simt")
def slowfast_pool_simt_fake(features, slow_frames, slow_pool, fast_size, grid, vec):
    return slowfast_pool_fake(features, slow_frames, slow_pool, fast_size, grid)


# ------------------------------------------------------------------------ normalize_frames


def _normalize_checks(
    op,
    frames_shape,
    size,
    resize_mode,
    shortest_edge,
    mean,
    std,
    rescale_factor,
    pass_order,
    dtype,
):
    shape = normalize_frames_shape(frames_shape, size, resize_mode, shortest_edge, op)
    check_normalize_values(op, mean, std, rescale_factor, pass_order, dtype)
    return shape


@torch.library.register_fake("sfllava::normalize_frames")
def normalize_frames_fake(frames, size, *options):
    check_frames("normalize_frames", frames)
    t, h, w = _normalize_checks("normalize_frames", frames.shape, size, *options)
    return frames.new_empty((t, 3, h, w), dtype=options[-1])


@torch.library.register_fake("sfllava::normalize_frames.out")
def normalize_frames_out_fake(frames, size, *options, out):
    check_frames("normalize_frames", frames)
    t, h, w = _normalize_checks("normalize_frames", frames.shape, size, *options)
    check_normalize_out("normalize_frames", out, (t, 3, h, w), options[-1], frames, "frames")


# the test-only SIMT op has the same schema and result as normalize_frames
torch.library.register_fake("sfllava::_normalize_frames_simt", normalize_frames_fake)


def _yuv420_checks(y, u, v, coeffs, size, *options):
    """Mirrors prepare_normalize_yuv420_frames (csrc/ops/normalize_yuv420_frames.cpp)."""
    op = "normalize_yuv420_frames"
    t, h, w = check_yuv420_planes(op, y, u, v, coeffs, batched=True)
    if h <= 0 or w <= 0:
        raise ValueError(f"{op}: y has zero-sized frames (shape {list(y.shape)})")
    return _normalize_checks(op, (t, h, w, 3), size, *options)


@torch.library.register_fake("sfllava::normalize_yuv420_frames")
def normalize_yuv420_frames_fake(y, u, v, coeffs, *options):
    t, h, w = _yuv420_checks(y, u, v, coeffs, *options)
    return y.new_empty((t, 3, h, w), dtype=options[-1])


@torch.library.register_fake("sfllava::normalize_yuv420_frames.out")
def normalize_yuv420_frames_out_fake(y, u, v, coeffs, *options, out):
    t, h, w = _yuv420_checks(y, u, v, coeffs, *options)
    check_normalize_out("normalize_yuv420_frames", out, (t, 3, h, w), options[-1], y, "y")


# --------------------------------------------------------------------------- yuv420_to_rgb


@torch.library.register_fake("sfllava::yuv420_to_rgb")
def yuv420_to_rgb_fake(y, u, v, coeffs, *, out):
    h, w = check_yuv420_planes("yuv420_to_rgb", y, u, v, coeffs, batched=False)
    check_yuv420_to_rgb_out("yuv420_to_rgb", out, h, w)
