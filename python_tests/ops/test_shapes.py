"""Large and degenerate shapes, for every op (issue 27, point 5).

* zero-size inputs: a per-frame op returns an empty result (T = 0 frames, D = 0
  channels, 0-row or 0-column planes of ``yuv420_to_rgb``); an op whose output
  needs a frame or a pixel raises a typed error naming the argument. Either way the
  fake (meta) kernel agrees, shape for shape and message for message;
* one-pixel frames (1x1 inputs, 1x1 outputs) against the references;
* a non-contiguous ``out=`` (strided windows of a bigger buffer): the contiguous
  result, nothing else of the buffer written; or, where the op documents a layout
  it needs, a typed error before anything is written;
* more than 2^31 elements (``@pytest.mark.slow``, skipped unless SFLLAVA_SLOW=1:
  nothing deselects the ``slow`` marker, so plain CI runs would otherwise take them):
  the results checked against the float64 references on slices (first, middle, last
  frames and the ones across 2^31), since a float64 copy of the whole would not fit.
  Sizes and memory are in each test's docstring.
"""

from __future__ import annotations

import os
import re

import numpy as np
import PIL
import pytest
import torch
from PIL import Image
from support.reference import slow_frame_picks, slowfast_reference
from torch._subclasses.fake_tensor import FakeTensorMode

from sfllava_ext import ops
from sfllava_ext.ops import CLIP_MEAN, CLIP_STD, normalize_frames, slowfast_pool, yuv420_to_rgb
from sfllava_ext.video.frames import Yuv420Frames
from sfllava_ext.video.pyav.swscale import swscale_coeffs

U8 = torch.uint8
# The pass order of the installed Pillow (Pillow >= 13 may run the vertical pass first).
PIL_ORDER = "pillow13" if int(PIL.__version__.split(".")[0]) >= 13 else "pillow12"
BT601 = list(swscale_coeffs(2, 1))
COMMON = (list(CLIP_MEAN), list(CLIP_STD), 1 / 255, "pillow13")
SLOW = pytest.mark.skipif(
    os.environ.get("SFLLAVA_SLOW") != "1",
    reason="> 2^31 elements: minutes and ~10 GiB of memory; set SFLLAVA_SLOW=1 to run",
)
DTYPE_NAMES = {"Half": "torch.float16", "Float": "torch.float32", "BFloat16": "torch.bfloat16"}


def _normalised(message: str) -> str:
    line = str(message).strip().splitlines()[0]
    return re.sub(r"\b(Half|Float|BFloat16)\b", lambda m: DTYPE_NAMES[m.group(1)], line)


def _fake(op, args, kwargs=None):
    """The op under FakeTensorMode: (result or None, exception or None)."""
    kwargs = kwargs or {}
    with FakeTensorMode() as mode:
        conv = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
        kw = {
            k: mode.from_tensor(v) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()
        }
        try:
            return op(*conv, **kw), None
        except Exception as e:  # noqa: BLE001  (compared with the real op's)
            return None, e


def _agree(op, args, kwargs=None, error=None, match=None):
    """The real op and its fake kernel agree: same result shape/dtype, or the same
    typed error (``error`` with ``match``) on both."""
    kwargs = kwargs or {}
    fake, fake_err = _fake(op, args, kwargs)
    if error is not None:
        with pytest.raises(error, match=match) as real:
            op(*args, **kwargs)
        assert type(fake_err) is type(real.value), (fake_err, real.value)
        assert _normalised(fake_err) == _normalised(real.value)
        return None
    assert fake_err is None, fake_err
    got = op(*args, **kwargs)
    if isinstance(got, torch.Tensor):
        assert fake.shape == got.shape and fake.dtype == got.dtype
    return got


def _planes(t, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 256, (t, h, w), dtype=U8, generator=g)
    c = (t, (h + 1) // 2, (w + 1) // 2)
    return (
        y,
        torch.randint(0, 256, c, dtype=U8, generator=g),
        torch.randint(0, 256, c, dtype=U8, generator=g),
    )


def _clip_reference(levels: torch.Tensor) -> torch.Tensor:
    """float64 (x / 255 - mean) / std of uint8-valued levels (..., 3, h, w)."""
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float64).view(3, 1, 1)
    return (levels.double() / 255 - mean) / std


def _pil_squash(frame: np.ndarray, size) -> torch.Tensor:
    """Pillow's Image.resize((w, h), BICUBIC) of one (H, W, 3) frame -> (3, h, w) levels."""
    img = Image.fromarray(np.ascontiguousarray(frame)).resize((size[1], size[0]), Image.BICUBIC)
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)


# ----------------------------------------------------------------------- zero-size inputs

POOL = torch.ops.sfllava.slowfast_pool


@pytest.mark.parametrize(
    "shape, kwargs, expect",
    [
        # D = 0: every token is empty, but the token count stands: an empty result.
        ((4, 16, 0), dict(slow_frames=2), (2 * 8 + 4 * 16, 0)),
        (
            (3, 2, 2, 0),
            dict(slow_frames=3, slow_pool="spatial_2d_avg_pool", fast=[1, 2]),
            (3 + 6, 0),
        ),
        # T = 0: no frame to pick a slow frame from.
        ((0, 16, 8), {}, (ValueError, r"features has T = 0 frames")),
        ((0, 16, 0), {}, (ValueError, r"features has T = 0 frames")),
        ((0, 4, 4, 8), {}, (ValueError, r"features has T = 0 frames")),
        # no tokens per frame (N = 0, H = 0, W = 0).
        ((3, 0, 8), dict(slow_pool="concat", fast=[]), (ValueError, "no tokens per frame")),
        ((3, 0, 4, 8), dict(slow_pool="concat", fast=[]), (ValueError, "no tokens per frame")),
        ((3, 4, 0, 8), dict(slow_pool="concat", fast=[]), (ValueError, "no tokens per frame")),
        ((3, 0, 8), dict(slow_pool="concat", fast=[], grid=[0, 4]), (ValueError, "grid must be")),
    ],
)
def test_slowfast_pool_zero_size(shape, kwargs, expect):
    args = (
        torch.zeros(shape),
        kwargs.get("slow_frames", 1),
        kwargs.get("slow_pool", "spatial_1d_max_pool"),
        kwargs.get("fast", [4, 4]),
        kwargs.get("grid", []),
    )
    if isinstance(expect[0], type):
        _agree(POOL, args, error=expect[0], match=expect[1])
        return
    got = _agree(POOL, args)
    assert got.shape == expect
    out = torch.empty(expect)
    _agree(POOL.out, args, {"out": out})
    torch.library.opcheck(POOL.default, args)
    torch.library.opcheck(POOL.out, args, {"out": out})


NORMALIZE = torch.ops.sfllava.normalize_frames
NORMALIZE_YUV = torch.ops.sfllava.normalize_yuv420_frames


@pytest.mark.parametrize("mode", ["squash", "crop", "pad"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_normalize_frames_zero_frames(mode, dtype):
    """T = 0 (a per-frame op): an empty (0, 3, h, w) result, through the wrapper, the
    op, its out= overload and the fake kernels; RGB and YUV 4:2:0 frames alike."""
    args = (torch.zeros(0, 20, 30, 3, dtype=U8), [8, 9], mode, None, *COMMON, dtype)
    got = _agree(NORMALIZE, args)
    assert got.shape == (0, 3, 8, 9) and got.dtype == dtype
    assert normalize_frames(args[0], (8, 9), resize_mode=mode, dtype=dtype).shape == (0, 3, 8, 9)
    out = torch.empty(0, 3, 8, 9, dtype=dtype)
    _agree(NORMALIZE.out, args, {"out": out})
    torch.library.opcheck(NORMALIZE.default, args)
    torch.library.opcheck(NORMALIZE.out, args, {"out": out})
    y, u, v = _planes(0, 20, 30)
    yargs = (y, u, v, BT601, [8, 9], mode, None, *COMMON, dtype)
    assert _agree(NORMALIZE_YUV, yargs).shape == (0, 3, 8, 9)
    _agree(NORMALIZE_YUV.out, yargs, {"out": out})
    frames = Yuv420Frames(y, u, v, BT601)
    assert normalize_frames(frames, (8, 9), resize_mode=mode, dtype=dtype, out=out) is out


@pytest.mark.parametrize("t", [0, 2])
@pytest.mark.parametrize("hw", [(0, 5), (5, 0), (0, 0)])
def test_normalize_frames_zero_sized_frames_raise(t, hw):
    """Zero rows or columns: nothing to resample from, a ValueError naming the frames
    (even with T = 0: the shape is wrong whatever the count)."""
    h, w = hw
    args = (torch.zeros(t, h, w, 3, dtype=U8), [4, 4], "squash", None, *COMMON, torch.float16)
    _agree(
        NORMALIZE, args, error=ValueError, match="normalize_frames: frames has zero-sized frames"
    )
    out = torch.full((t, 3, 4, 4), 7.0, dtype=torch.float16)
    _agree(NORMALIZE.out, args, {"out": out}, ValueError, "frames has zero-sized frames")
    assert (out == 7).all()
    y, u, v = _planes(t, h, w)
    yargs = (y, u, v, BT601, [4, 4], "squash", None, *COMMON, torch.float16)
    _agree(NORMALIZE_YUV, yargs, error=ValueError, match="y has zero-sized frames")


@pytest.mark.parametrize("size", [(0, 4), (4, 0), (0, 0)])
def test_normalize_frames_zero_output_size_raises(size):
    args = (torch.zeros(2, 5, 5, 3, dtype=U8), list(size), "squash", None, *COMMON, torch.float16)
    _agree(
        NORMALIZE, args, error=ValueError, match=r"size must be \(height, width\) with both >= 1"
    )


@pytest.mark.parametrize("hw", [(0, 8), (4, 0), (0, 0), (0, 1)])
def test_yuv420_to_rgb_zero_size(hw):
    """A frame with no rows or no columns: an empty (H, W, 3) result, the fake agrees,
    and an out= of any strides is accepted (nothing is written)."""
    h, w = hw
    y, u, v = (p[0] for p in _planes(1, h, w))
    got = yuv420_to_rgb(y, u, v, BT601)
    assert got.shape == (h, w, 3)
    for out in (torch.empty(h, w, 3, dtype=U8), torch.empty(3, w, h, dtype=U8).permute(2, 1, 0)):
        _agree(torch.ops.sfllava.yuv420_to_rgb, (y, u, v, BT601), {"out": out})
    torch.library.opcheck(torch.ops.sfllava.yuv420_to_rgb, (y, u, v, BT601), {"out": got})


# ------------------------------------------------------------------------- one pixel


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_slowfast_pool_one_token_frames(dtype, gen):
    """1x1 token grids: concat (one slow token per frame) and a 1x1 fast pool."""
    x = torch.randn(5, 1, 7, generator=gen, dtype=torch.float64)
    for shape, grid in (((5, 1, 7), None), ((5, 1, 1, 7), None), ((5, 1, 7), (1, 1))):
        feats = x.reshape(shape).to(dtype)
        got = slowfast_pool(feats, slow_frames=3, slow_pool="concat", fast_size=(1, 1), grid=grid)
        ref = slowfast_reference(feats.double(), 3, "concat", (1, 1))
        assert got.shape == (3 + 5, 7) and got.dtype == dtype
        assert torch.equal(got.double(), ref)  # one token: copies, no arithmetic
    # pools that need more than one token refuse a 1x1 grid (fake kernel alike)
    for pool, match in (
        ("spatial_1d_max_pool", "at least 2 tokens"),
        ("spatial_2d_avg_pool", "2x2"),
    ):
        _agree(POOL, (x.reshape(5, 1, 1, 7), 2, pool, [1, 1], []), error=ValueError, match=match)


@pytest.mark.parametrize("pool", ops.SLOW_POOLS)
def test_slowfast_pool_one_pixel_fast_grid_and_one_frame(pool, gen):
    """A single frame, and a 1x1 fast grid (the mean of the whole frame)."""
    x = torch.randn(1, 4, 6, 5, generator=gen, dtype=torch.float64)
    for fast in ((1, 1), (4, 6), None):
        got = slowfast_pool(x, slow_frames=1, slow_pool=pool, fast_size=fast)
        torch.testing.assert_close(
            got, slowfast_reference(x, 1, pool, fast), rtol=1e-12, atol=1e-12
        )
    # more slow frames than frames: the published picks repeat frame 0
    got = slowfast_pool(x.float(), slow_frames=3, slow_pool=pool, fast_size=(1, 1))
    torch.testing.assert_close(
        got.double(), slowfast_reference(x, 3, pool, (1, 1)), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("mode", ["squash", "crop", "pad"])
@pytest.mark.parametrize("size", [(1, 1), (3, 5), (4, 4)])
def test_normalize_frames_one_pixel_frames(mode, size):
    """1x1 frames: the resize of a constant image is that constant, so every output
    pixel is the float64 reference (p / 255 - mean) / std, but for crop's zero padding
    (a non-square size cropped from the shortest-edge square pads the rest with 0);
    the YUV 4:2:0 path gives the bytes of its RGB conversion."""
    g = torch.Generator().manual_seed(3)
    frames = torch.randint(0, 256, (4, 1, 1, 3), dtype=U8, generator=g)
    got = normalize_frames(frames, size, resize_mode=mode, dtype=torch.float32)
    assert got.shape == (4, 3, *size)
    levels = frames.permute(0, 3, 1, 2).expand(4, 3, *size).clone()
    if mode != "squash" and size[0] != size[1]:
        side = min(size)
        pad = torch.zeros(size, dtype=torch.bool)
        left = (size[1] - side) // 2
        top = (size[0] - side) // 2
        pad[:, :] = True
        pad[top : top + side, left : left + side] = False
        levels[:, :, pad] = 0
    ref = _clip_reference(levels)
    torch.testing.assert_close(got.double(), ref, rtol=0, atol=2e-6)
    y, u, v = _planes(4, 1, 1, seed=4)
    rgb = torch.stack([yuv420_to_rgb(y[t], u[t], v[t], BT601) for t in range(4)])
    via_yuv = normalize_frames(
        Yuv420Frames(y, u, v, BT601), size, resize_mode=mode, dtype=torch.float32
    )
    assert torch.equal(via_yuv, normalize_frames(rgb, size, resize_mode=mode, dtype=torch.float32))


@pytest.mark.parametrize("hw", [(1, 1), (1, 9), (9, 1), (37, 23)])
def test_normalize_frames_to_one_pixel(hw):
    """Sizes that make 1x1 outputs (the whole frame into one pixel), squash, against
    Pillow's resize then the float64 normalisation."""
    g = torch.Generator().manual_seed(7)
    frames = torch.randint(0, 256, (3, *hw, 3), dtype=U8, generator=g)
    got = normalize_frames(frames, (1, 1), dtype=torch.float32, pass_order=PIL_ORDER)
    ref = torch.stack([_clip_reference(_pil_squash(f.numpy(), (1, 1))) for f in frames])
    torch.testing.assert_close(got.double(), ref, rtol=0, atol=2e-6)


def test_yuv420_to_rgb_one_pixel():
    """A 1x1 frame (chroma 1x1) equals the same pixel inside a 2x2 frame of that
    chroma sample, and the batched op on it equals the per-frame conversion."""
    y, u, v = (p[0] for p in _planes(1, 1, 1, seed=5))
    one = yuv420_to_rgb(y, u, v, BT601)
    big = yuv420_to_rgb(y.expand(2, 2).contiguous(), u, v, BT601)
    assert one.shape == (1, 1, 3) and torch.equal(big, one.expand(2, 2, 3))


# ------------------------------------------------------------------ non-contiguous out=


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_slowfast_pool_strided_out(dtype, gen):
    """Rows of ``out`` anywhere (every other row of a wider buffer, at an offset):
    the contiguous result, the rest of the buffer untouched. A transposed out (D not
    contiguous) is refused before anything is written."""
    x = torch.randn(6, 16, 5, generator=gen).to(dtype)
    want = slowfast_pool(x, slow_frames=3, fast_size=(2, 2))  # (3*8 + 6*4, 5)
    n = want.shape[0]
    buf = torch.randn(2 * n + 3, 9, generator=gen).to(dtype)
    before = buf.clone()
    out = buf[3::2, 2:7]
    assert out.stride() == (18, 1)
    assert slowfast_pool(x, slow_frames=3, fast_size=(2, 2), out=out) is out
    assert torch.equal(out, want)
    mask = torch.ones_like(buf, dtype=torch.bool)
    mask[3::2, 2:7] = False
    assert torch.equal(buf[mask], before[mask])
    # D = 1: a column of a matrix (any strides: one element a row)
    x1 = x[..., :1]
    col = buf.as_strided((n, 1), (9, 3), buf.storage_offset() + 4)  # buf[:n, 4:5], stride 3 on D
    before = buf.clone()
    slowfast_pool(x1, slow_frames=3, fast_size=(2, 2), out=col)
    assert torch.equal(col, slowfast_pool(x1, slow_frames=3, fast_size=(2, 2)))
    mask = torch.ones_like(buf, dtype=torch.bool)
    mask[:n, 4] = False
    assert torch.equal(buf[mask], before[mask])
    # D not contiguous: refused, by the op and its fake alike, nothing written
    bad = torch.zeros(5, n, dtype=dtype).t()
    _agree(
        POOL.out,
        (x, 3, "spatial_1d_max_pool", [2, 2], []),
        {"out": bad},
        ValueError,
        "contiguous rows",
    )
    assert (bad == 0).all()


@pytest.mark.parametrize("source", ["rgb", "yuv420"])
def test_normalize_frames_strided_out_is_refused(source):
    """normalize_frames documents a contiguous (NCHW) out: a window of a bigger
    buffer that is contiguous is written (the rest untouched); a strided or
    transposed one is refused with a ValueError, by the op and its fake kernel,
    before anything is written."""
    g = torch.Generator().manual_seed(1)
    if source == "rgb":
        frames = torch.randint(0, 256, (3, 13, 17, 3), dtype=U8, generator=g)
        op, args = NORMALIZE, (frames, [6, 8], "squash", None, *COMMON, torch.bfloat16)
        name = "normalize_frames"
    else:
        y, u, v = _planes(3, 13, 17, seed=2)
        frames = Yuv420Frames(y, u, v, BT601)
        op, args = NORMALIZE_YUV, (y, u, v, BT601, [6, 8], "squash", None, *COMMON, torch.bfloat16)
        name = "normalize_yuv420_frames"
    want = normalize_frames(frames, (6, 8), dtype=torch.bfloat16)
    buf = torch.full((5, 3, 6, 8), 7.0, dtype=torch.bfloat16)
    assert normalize_frames(frames, (6, 8), dtype=torch.bfloat16, out=buf[1:4]) is not None
    assert torch.equal(buf[1:4], want) and (buf[0] == 7).all() and (buf[4] == 7).all()
    big = torch.full((3, 3, 12, 16), 7.0, dtype=torch.bfloat16)
    for out in (
        big[:, :, ::2, ::2],  # every other pixel
        big[:, :, :6, :8],  # a window with wider rows
        torch.full((3, 6, 8, 3), 7.0, dtype=torch.bfloat16).permute(0, 3, 1, 2),  # NHWC
        torch.full((3, 3, 8, 6), 7.0, dtype=torch.bfloat16).transpose(2, 3),
    ):
        before = out.clone()
        _agree(op.out, args, {"out": out}, ValueError, rf"{name}: out must be contiguous")
        with pytest.raises(ValueError, match="out must be contiguous"):
            normalize_frames(frames, (6, 8), dtype=torch.bfloat16, out=out)
        assert torch.equal(out, before) and (big == 7).all()


def test_yuv420_to_rgb_strided_out():
    """Rows of ``out`` anywhere (every other row of a wider canvas): the contiguous
    result, the rest untouched. Pixels must be packed (strides (*, 3, 1)); for a
    one-pixel-wide frame the pixel stride is free but the channels must still be
    contiguous (the kernel writes 3 * W bytes a row)."""
    y, u, v = (p[0] for p in _planes(1, 7, 10, seed=6))
    want = yuv420_to_rgb(y, u, v, BT601)
    canvas = torch.full((15, 14, 3), 7, dtype=U8)
    out = canvas[1::2, 2:12]
    yuv420_to_rgb(y, u, v, BT601, out=out)
    assert torch.equal(out, want)
    mask = torch.ones(15, 14, dtype=torch.bool)
    mask[1::2, 2:12] = False
    assert (canvas[mask] == 7).all()
    # one pixel wide: a column of a canvas (pixel stride 3 * 14), the rest untouched
    y1, u1, v1 = (p[0] for p in _planes(1, 7, 1, seed=8))
    canvas = torch.full((7, 14, 3), 7, dtype=U8)
    col = canvas[:, 5:6]
    yuv420_to_rgb(y1, u1, v1, BT601, out=col)
    assert torch.equal(col, yuv420_to_rgb(y1, u1, v1, BT601))
    mask = torch.ones(7, 14, dtype=torch.bool)
    mask[:, 5] = False
    assert (canvas[mask] == 7).all()
    # strided channels are refused, one pixel wide too, before anything is written
    for h, w, planes in ((7, 10, (y, u, v)), (7, 1, (y1, u1, v1))):
        buf = torch.full((h, w, 6), 7, dtype=U8)
        _agree(
            torch.ops.sfllava.yuv420_to_rgb,
            (*planes, BT601),
            {"out": buf[:, :, ::2]},
            ValueError,
            r"out must hold each row's pixels contiguously",
        )
        assert (buf == 7).all()


# ------------------------------------------------------------------ past 2^31 elements

INT32_LIMIT = 2**31


def _periodic_fill(flat: torch.Tensor, period: int, seed: int) -> None:
    """Fills a 1-D tensor with a random block of ``period`` (prime) values repeated:
    memcpy speed, and a read at a wrong offset (a multiple of 2^32 off, or another
    frame) finds other values, since the prime divides neither."""
    g = torch.Generator().manual_seed(seed)
    block = torch.randn(period, generator=g).to(flat.dtype)
    whole = flat.numel() // period
    flat[: whole * period].view(whole, period).copy_(block)
    flat[whole * period :].copy_(block[: flat.numel() - whole * period])


def _close_bf16(got: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    """bf16 result vs float64 reference: within one bf16 rounding (2^-8 relative)."""
    torch.testing.assert_close(got.double(), ref, rtol=2**-8, atol=1e-5, msg=what)


@SLOW
@pytest.mark.slow
@pytest.mark.parametrize(
    "pool, slow_frames, out_buffer",
    [
        ("spatial_1d_max_pool", 912, False),  # every frame slow: picks past 2^31 too
        ("concat", 912, True),  # the output passes 2^31 elements as well
    ],
)
def test_slowfast_pool_past_2_31_elements(pool, slow_frames, out_buffer):
    """bf16 features (912, 576, 4096): 2,151,677,952 elements (> 2^31 = 2,147,483,648),
    4.0 GiB; the last frame starts at element 2,149,318,656. Output: 1d max pool,
    (912 * 288 + 912 * 16, 4096) = 1.1e9 elements, 2.1 GiB; concat into an out=
    buffer, (534,528 + 14,592, 4096) = 2,249,195,520 elements, 4.2 GiB (peak
    ~8.2 GiB). Slow and fast tokens checked against the float64 reference of the
    first, a middle, the last and the frames either side of element 2^31."""
    t, n, d = 912, 576, 4096
    assert t * n * d > INT32_LIMIT
    features = torch.empty(t, n, d, dtype=torch.bfloat16)
    _periodic_fill(features.view(-1), 1_000_003, seed=0)
    geometry = ops.slowfast_geometry(features.shape, slow_frames, pool, [4, 4], [])
    num_tokens = geometry[4]
    if out_buffer:
        assert num_tokens * d > INT32_LIMIT
        out = torch.empty(num_tokens, d, dtype=torch.bfloat16)
        got = slowfast_pool(
            features, slow_frames=slow_frames, slow_pool=pool, fast_size=(4, 4), out=out
        )
        assert got is out
    else:
        got = slowfast_pool(features, slow_frames=slow_frames, slow_pool=pool, fast_size=(4, 4))
    assert got.shape == (num_tokens, d)
    per_slow = ops.checks.slow_tokens_per_frame(pool, 24, 24)
    picks = slow_frame_picks(t, slow_frames)
    fast0 = slow_frames * per_slow
    across = INT32_LIMIT // (n * d)  # the frame holding element 2^31
    frames = sorted({0, t // 2, across - 1, across, across + 1, t - 1})
    for frame in frames:
        ref = slowfast_reference(features[frame : frame + 1].double(), 1, pool, (4, 4))
        fast = got[fast0 + frame * 16 : fast0 + (frame + 1) * 16]
        _close_bf16(fast, ref[per_slow:], f"fast tokens of frame {frame}")
        for i in [i for i, p in enumerate(picks) if p == frame][:1]:
            slow = got[i * per_slow : (i + 1) * per_slow]
            _close_bf16(slow, ref[:per_slow], f"slow tokens of pick {i} (frame {frame})")


@SLOW
@pytest.mark.slow
def test_normalize_frames_past_2_31_output_elements_many_frames():
    """uint8 frames (6400, 48, 64, 3) (59 MiB) squashed to 336 x 336 in bf16: output
    (6400, 3, 336, 336) = 2,167,603,200 elements (> 2^31), 4.0 GiB. Frames 0, 3200,
    6340 (the one holding element 2^31), 6341 and 6399 checked against Pillow's resize and
    the float64 normalisation."""
    t, size = 6400, (336, 336)
    assert t * 3 * size[0] * size[1] > INT32_LIMIT
    g = torch.Generator().manual_seed(11)
    small = torch.randint(0, 256, (97, 48, 64, 3), dtype=U8, generator=g)
    frames = small.repeat(66, 1, 1, 1)[:t]  # frame i = small[i % 97]
    got = normalize_frames(frames, size, dtype=torch.bfloat16, pass_order=PIL_ORDER)
    assert got.shape == (t, 3, *size)
    across = INT32_LIMIT // (3 * size[0] * size[1])
    for frame in (0, t // 2, across, across + 1, t - 1):
        ref = _clip_reference(_pil_squash(frames[frame].numpy(), size))
        _close_bf16(got[frame], ref, f"frame {frame}")


@SLOW
@pytest.mark.slow
def test_normalize_frames_past_2_31_output_elements_one_frame():
    """One uint8 frame (1, 50, 70, 3) squashed to 26800 x 26800 in bf16: output
    (1, 3, 26800, 26800) = 2,154,720,000 elements in a single frame (> 2^31: element
    2^31 is in row 26,529 of the blue plane), 4.0 GiB, plus Pillow's 2.0 GiB reference
    image and its numpy copy (peak ~8.5 GiB). Rows 0, 13400, 26528-26530 and 26799 of
    every channel checked
    against Pillow's resize and the float64 normalisation."""
    size = (26800, 26800)
    assert 3 * size[0] * size[1] > INT32_LIMIT
    g = torch.Generator().manual_seed(12)
    frames = torch.randint(0, 256, (1, 50, 70, 3), dtype=U8, generator=g)
    got = normalize_frames(frames, size, dtype=torch.bfloat16, pass_order=PIL_ORDER)
    assert got.shape == (1, 3, *size)
    img = Image.fromarray(frames[0].numpy()).resize((size[1], size[0]), Image.BICUBIC)
    pil = np.asarray(img)
    across = (INT32_LIMIT - 2 * size[0] * size[1]) // size[1]
    assert across == 26529
    for row in (0, 13400, across - 1, across, across + 1, 26799):
        levels = torch.from_numpy(pil[row].copy()).t().unsqueeze(1)  # (3, 1, W)
        _close_bf16(got[0, :, row : row + 1], _clip_reference(levels), f"row {row}")
