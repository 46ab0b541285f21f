"""The Python copies of the C++ ops' argument checks, all in one place.

The fake kernels (:mod:`sfllava_ext.ops._fakes`) run these on fake tensors, so that
``torch.compile`` and ``torch.library.opcheck`` see the very errors the C++ op
raises; the wrappers and the settings classes (``SlowFastConfig``,
``FrameNormalizer``, ``SlowFastLlava``) use them to refuse bad settings early with
the same messages. Each function names the C++ function it mirrors; a change to
one side must be made to the other (python_tests check the messages agree).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..constants import PASS_ORDERS, RESIZE_MODES, SLOW_POOLS

FLOATING = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
NORMALIZE_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Pillow resamples with a float box: sizes must stay exact in float32.
MAX_SIDE = 1 << 24


def check_choice(op: str, name: str, value: str, choices: Sequence[str]) -> None:
    """``value`` is one of ``choices``. Mirrors parse_slow_pool
    (csrc/ops/slowfast_pool.cpp), parse_resize_mode and parse_pass_order
    (csrc/ops/normalize_frames.cpp)."""
    if value not in choices:
        raise ValueError(f"{op}: {name} must be one of {', '.join(choices)}, got '{value}'")


def check_resize_mode(op: str, resize_mode: str) -> None:
    check_choice(op, "resize_mode", resize_mode, RESIZE_MODES)


def check_pass_order(op: str, pass_order: str) -> None:
    check_choice(op, "pass_order", pass_order, PASS_ORDERS)


# --------------------------------------------------------------------------- slowfast_pool


def check_floating(op: str, name: str, tensor: torch.Tensor) -> None:
    """Mirrors SFLLAVA_CHECK_FLOATING (csrc/common/checks.h)."""
    if tensor.dtype not in FLOATING:
        raise TypeError(
            f"{op}: {name} must be float32, float16, bfloat16 or float64, got {tensor.dtype}"
        )


def check_pooling(
    op: str, slow_frames: int, slow_pool: str, fast_size: Sequence[int] | None
) -> None:
    """The pooling settings on their own, before any features are seen: slow_frames,
    slow_pool and fast_size (None or empty: no fast pathway). The part of
    prepare_slowfast (csrc/ops/slowfast_pool.cpp) that needs no shape."""
    if slow_frames < 1:
        raise ValueError(f"{op}: slow_frames must be >= 1, got {slow_frames}")
    check_choice(op, "slow_pool", slow_pool, SLOW_POOLS)
    if fast_size is not None and len(fast_size) != 0:
        if len(fast_size) != 2 or fast_size[0] < 1 or fast_size[1] < 1:
            raise ValueError(
                f"{op}: fast_size must be (h, w) with h, w >= 1, got {list(fast_size)}"
            )


def slow_tokens_per_frame(slow_pool: str, h: int, w: int) -> int:
    """Mirrors slow_tokens_per_frame (csrc/common/slowfast_geometry.h)."""
    if slow_pool == "concat":
        return h * w
    if slow_pool in ("spatial_1d_max_pool", "spatial_1d_avg_pool"):
        return (h * w) // 2  # MaxPool1d(2, 2) drops an odd last token
    return (h // 2) * (w // 2)


def slowfast_geometry(
    shape: Sequence[int],
    slow_frames: int,
    slow_pool: str,
    fast_size: Sequence[int],
    grid: Sequence[int],
    op: str = "slowfast_pool",
) -> tuple[int, int, int, int, int]:
    """Validates slowfast_pool's arguments against a features shape and returns
    ``(T, H, W, D, num_tokens)``. Mirrors prepare_slowfast
    (csrc/ops/slowfast_pool.cpp), check for check, message for message.

    ``fast_size`` and ``grid`` are lists here (empty = no fast pathway / infer).
    """
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
    check_pooling(op, slow_frames, slow_pool, fast_size)
    if "1d" in slow_pool and h * w < 2:
        raise ValueError(
            f"{op}: slow_pool {slow_pool} needs at least 2 tokens per frame, grid is {h}x{w}"
        )
    if "2d" in slow_pool and (h < 2 or w < 2):
        raise ValueError(f"{op}: slow_pool {slow_pool} needs a grid of at least 2x2, got {h}x{w}")
    fh = fw = 0
    if fast_size:
        if fast_size[0] > h or fast_size[1] > w:
            raise ValueError(
                f"{op}: fast_size {list(fast_size)} is larger than the token grid ({h}, {w})"
            )
        fh, fw = int(fast_size[0]), int(fast_size[1])
    num_tokens = slow_frames * slow_tokens_per_frame(slow_pool, h, w) + t * fh * fw
    return t, h, w, d, num_tokens


def check_slowfast_out(out: torch.Tensor, features: torch.Tensor, num_tokens: int, d: int) -> None:
    """Mirrors check_slowfast_out (csrc/ops/slowfast_pool.cpp), but for the memory
    overlap, which fake tensors do not have."""
    op = "slowfast_pool"
    if out.device != features.device:
        raise ValueError(f"{op}: out is on {out.device} but features is on {features.device}")
    if out.dtype != features.dtype:
        raise TypeError(f"{op}: out has dtype {out.dtype} but features has dtype {features.dtype}")
    if tuple(out.shape) != (num_tokens, d):
        raise ValueError(f"{op}: out must have shape ({num_tokens}, {d}), got {list(out.shape)}")
    if out.stride(1) != 1 and d > 1:
        raise ValueError(
            f"{op}: out must have contiguous rows (stride 1 along D), "
            f"got strides {list(out.stride())}"
        )
    if out.stride(0) < d and num_tokens > 1:
        raise ValueError(f"{op}: out rows overlap (row stride {out.stride(0)} < D = {d})")


# ------------------------------------------------------------------------ normalize_frames


def _shortest_edge_size(h: int, w: int, side: int) -> tuple[int, int]:
    """Mirrors shortest_edge_size (csrc/ops/normalize_frames.cpp): Hugging Face's
    shortest-edge output size, the shorter side becomes ``side``, the longer
    ``int(side * long / short)``."""
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(side * long / short)
    return (new_long, side) if w <= h else (side, new_long)


def check_frames(op: str, frames: torch.Tensor) -> None:
    """The uint8 RGB frames check of prepare_normalize_frames
    (csrc/ops/normalize_frames.cpp)."""
    if frames.dtype != torch.uint8:
        raise TypeError(f"{op}: frames must be uint8 (T, H, W, 3) RGB, got dtype {frames.dtype}")


def normalize_frames_shape(
    shape: Sequence[int],
    size: Sequence[int],
    resize_mode: str,
    shortest_edge: int | None,
    op: str = "normalize_frames",
) -> tuple[int, int, int]:
    """Validates normalize_frames' geometry arguments against a frames shape and
    returns ``(T, h, w)`` of the result. Mirrors the shape checks of
    prepare_normalize_frames and prepare_normalize_problem
    (csrc/ops/normalize_frames.cpp)."""
    if len(shape) != 4 or int(shape[3]) != 3:
        raise ValueError(f"{op}: frames must be (T, H, W, 3) RGB, got shape {list(shape)}")
    t, h, w = int(shape[0]), int(shape[1]), int(shape[2])
    if h <= 0 or w <= 0:
        raise ValueError(f"{op}: frames has zero-sized frames (shape {list(shape)})")
    if h >= MAX_SIDE or w >= MAX_SIDE:
        raise ValueError(f"{op}: frames of {h}x{w} are too large (each side must be < {MAX_SIDE})")
    size = [int(s) for s in size]
    if len(size) != 2 or size[0] <= 0 or size[1] <= 0:
        raise ValueError(f"{op}: size must be (height, width) with both >= 1, got {size}")
    if size[0] >= MAX_SIDE or size[1] >= MAX_SIDE:
        raise ValueError(f"{op}: size {size} is too large (each side must be < {MAX_SIDE})")
    check_resize_mode(op, resize_mode)
    if shortest_edge is not None and not 0 < shortest_edge < MAX_SIDE:
        raise ValueError(
            f"{op}: shortest_edge must be None or in [1, {MAX_SIDE}), got {shortest_edge}"
        )
    if resize_mode != "squash":
        side = max(h, w)
        ch, cw = (side, side) if resize_mode == "pad" else (h, w)
        rh, rw = _shortest_edge_size(ch, cw, shortest_edge or min(size))
        if rh >= MAX_SIDE or rw >= MAX_SIDE:
            raise ValueError(
                f"{op}: frames of {h}x{w} resized to shortest edge "
                f"{shortest_edge or min(size)} give {rh}x{rw}, too large "
                f"(each side must be < {MAX_SIDE})"
            )
    return t, size[0], size[1]


def check_normalize_values(
    op: str,
    mean: Sequence[float],
    std: Sequence[float],
    rescale_factor: float,
    pass_order: str,
    dtype: torch.dtype,
) -> None:
    """Mirrors the value checks of prepare_normalize_problem
    (csrc/ops/normalize_frames.cpp): mean, std, rescale_factor, pass_order, dtype."""
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
    check_pass_order(op, pass_order)
    check_normalize_dtype(op, dtype)


def check_normalize_dtype(op: str, dtype: torch.dtype) -> None:
    """The output dtype check of prepare_normalize_problem."""
    if dtype not in NORMALIZE_DTYPES:
        raise TypeError(f"{op}: dtype must be float32, float16 or bfloat16, got {dtype}")


def check_normalize_out(
    op: str,
    out: torch.Tensor,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    source: torch.Tensor,
    source_name: str,
) -> None:
    """Mirrors check_normalize_out (csrc/ops/normalize_frames.cpp): out's device
    (``source``'s), dtype, shape and layout."""
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


# ------------------------------------------------------------------ YUV 4:2:0 planes


def check_yuv420_planes(
    op: str,
    y: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    coeffs: Sequence[int],
    batched: bool,
) -> tuple[int, ...]:
    """Mirrors check_yuv420_planes and check_plane (csrc/ops/yuv_to_rgb.cpp): the
    planes' rank, dtype, device, sizes and column strides, and the six 16-bit
    coefficients. Returns y's shape."""
    if y.dim() != (3 if batched else 2):
        expected = "3-D (T, H, W)" if batched else "2-D (H, W)"
        raise ValueError(f"{op}: y must be {expected}, got shape {list(y.shape)}")
    dims = [int(d) for d in y.shape]
    h, w = dims[-2], dims[-1]
    lead = dims[:1] if batched else []
    chroma = [*lead, (h + 1) // 2, (w + 1) // 2]
    for plane, label, expected in ((y, "y", dims), (u, "u", chroma), (v, "v", chroma)):
        if plane.dtype != torch.uint8:
            raise TypeError(f"{op}: {label} must be uint8, got {plane.dtype}")
        if plane.device.type not in ("cpu", "meta"):
            raise ValueError(f"{op}: {label} must be on the CPU, got {plane.device}")
        if plane.dim() != len(expected):
            rank = "3-D (frames, rows, columns)" if batched else "2-D (rows, columns)"
            raise ValueError(f"{op}: {label} must be {rank}, got shape {list(plane.shape)}")
        if list(plane.shape) != expected:
            raise ValueError(
                f"{op}: {label} must be ({', '.join(map(str, expected))}) for the luma "
                f"plane's size, got {list(plane.shape)}"
            )
        if plane.stride(-1) != 1 and expected[-1] > 1:
            raise ValueError(
                f"{op}: {label} must have contiguous columns, got strides {list(plane.stride())}"
            )
    if len(coeffs) != 6:
        raise ValueError(
            f"{op}: coeffs must be 6 integers (cy, y_offset, cub, cug, cvg, cvr), got {len(coeffs)}"
        )
    if any(not -32768 <= c <= 32767 for c in coeffs):
        raise ValueError(f"{op}: coeffs must be 16-bit signed integers, got {list(coeffs)}")
    return tuple(dims)


def check_yuv420_to_rgb_out(op: str, out: torch.Tensor, h: int, w: int) -> None:
    """Mirrors the out checks of check_yuv420_to_rgb (csrc/ops/yuv_to_rgb.cpp), but
    for the memory overlap."""
    if out.dtype != torch.uint8:
        raise TypeError(f"{op}: out must be uint8, got {out.dtype}")
    if out.device.type not in ("cpu", "meta"):
        raise ValueError(f"{op}: out must be on the CPU, got {out.device}")
    if list(out.shape) != [h, w, 3]:
        raise ValueError(f"{op}: out must be ({h}, {w}, 3), got {list(out.shape)}")
    # The kernel writes each row's 3 * w bytes at once: the channels must be contiguous
    # even in a one-pixel-wide frame (only the pixel stride is free when w == 1).
    if not (out.stride(2) == 1 and (out.stride(1) == 3 or w == 1)) and h * w != 0:
        raise ValueError(
            f"{op}: out must hold each row's pixels contiguously (strides (*, 3, 1)), "
            f"got {list(out.stride())}"
        )
