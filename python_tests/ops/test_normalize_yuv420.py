"""normalize_frames on decoded YUV 4:2:0 planes (``Yuv420Frames``): the fused CPU op
``normalize_yuv420_frames`` gives the bytes of ``normalize_frames(yuv420_to_rgb(...))``,
the two published steps run one after the other, whatever the geometry, dtype, pass
order, strides or CPU version."""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from sfllava_ext import normalize_frames
from sfllava_ext.ops import CLIP_MEAN, CLIP_STD, yuv420_to_rgb
from sfllava_ext.video.frames import Yuv420Frames
from sfllava_ext.video.pyav.swscale import swscale_coeffs

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
BT601 = swscale_coeffs(2, 1)  # limited range
BT709_FULL = swscale_coeffs(1, 2)


def random_planes(t: int, h: int, w: int, seed: int, coeffs=BT601) -> Yuv420Frames:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 256, (t, h, w), dtype=torch.uint8, generator=g)
    c = (t, (h + 1) // 2, (w + 1) // 2)
    u = torch.randint(0, 256, c, dtype=torch.uint8, generator=g)
    v = torch.randint(0, 256, c, dtype=torch.uint8, generator=g)
    return Yuv420Frames(y, u, v, coeffs)


def two_steps(frames: Yuv420Frames) -> torch.Tensor:
    """The reference: each frame to RGB with the yuv420_to_rgb op, then normalize_frames."""
    rgb = torch.empty((len(frames), *frames.y.shape[1:], 3), dtype=torch.uint8)
    for t in range(len(frames)):
        yuv420_to_rgb(frames.y[t], frames.u[t], frames.v[t], frames.coeffs, out=rgb[t])
    return rgb


# (H, W), size, mode, shortest_edge: the published 720p squash (rows converted
# straight into the horizontal pass's planes), crops that start at odd and even
# columns, pads, tall shrinks (vertical first), odd sizes, kept axes.
SHAPES = [
    ((720, 1280), (336, 336), "squash", None),
    ((50, 64), (24, 24), "crop", None),
    ((49, 65), (20, 20), "crop", 21),
    ((36, 100), (20, 20), "crop", None),
    ((40, 97), (20, 20), "crop", None),
    ((44, 130), (16, 16), "crop", 18),
    ((60, 100), (30, 30), "pad", None),
    ((100, 30), (20, 20), "squash", None),
    ((300, 40), (16, 32), "squash", None),
    ((7, 3), (5, 9), "squash", None),
    ((2, 2), (1, 1), "squash", None),
    ((36, 64), (36, 20), "squash", None),
    ((36, 64), (18, 64), "squash", None),
]


@pytest.mark.parametrize("hw,size,mode,edge", SHAPES)
def test_equals_conversion_then_normalisation(hw, size, mode, edge, isa):
    frames = random_planes(2, *hw, seed=hw[0] * 1000 + hw[1])
    rgb = two_steps(frames)
    for dtype in DTYPES:
        for order in ("pillow13", "pillow12"):
            kw = dict(size=size, resize_mode=mode, shortest_edge=edge, dtype=dtype)
            want = normalize_frames(rgb, pass_order=order, **kw)
            got = normalize_frames(frames, pass_order=order, **kw)
            assert torch.equal(got, want), (dtype, order)


def test_full_range_and_saturating_coefficients():
    """Full-range BT.709 and random int16 coefficients (saturation in every term)."""
    g = torch.Generator().manual_seed(5)
    for coeffs in (
        BT709_FULL,
        tuple(int(c) for c in torch.randint(-32768, 32768, (6,), generator=g)),
    ):
        frames = random_planes(3, 40, 70, seed=7, coeffs=coeffs)
        assert torch.equal(
            normalize_frames(frames, (24, 24)), normalize_frames(two_steps(frames), (24, 24))
        )


def test_strided_planes_as_a_decoder_gives_them():
    """Rows padded to a line size, as in a decoder's frames; a slice of the frames."""
    t, h, w = 4, 36, 50
    big = random_planes(t, h, 64, seed=3)
    frames = Yuv420Frames(
        big.y[..., :w], big.u[..., : (w + 1) // 2], big.v[..., : (w + 1) // 2], BT601
    )
    dense = Yuv420Frames(*(p.contiguous() for p in (frames.y, frames.u, frames.v)), BT601)
    want = normalize_frames(dense, (20, 30))
    assert torch.equal(normalize_frames(frames, (20, 30)), want)
    assert torch.equal(normalize_frames(frames[1:3], (20, 30)), want[1:3])
    assert torch.equal(frames.to_rgb(), two_steps(dense))


def test_out_and_empty():
    frames = random_planes(3, 30, 40, seed=9)
    out = torch.empty(3, 3, 16, 16, dtype=torch.bfloat16)
    assert normalize_frames(frames, (16, 16), dtype=torch.bfloat16, out=out) is out
    assert torch.equal(out, normalize_frames(two_steps(frames), (16, 16), dtype=torch.bfloat16))
    assert normalize_frames(frames[0:0], (16, 16)).shape == (0, 3, 16, 16)


def test_frames_object():
    frames = random_planes(5, 10, 12, seed=1)
    assert len(frames) == 5 and frames.shape == (5, 10, 12, 3) and frames.device.type == "cpu"
    assert len(frames[1:4]) == 3
    with pytest.raises(TypeError, match="index must be a slice"):
        frames[0]


# ---- bad input: typed errors that name the argument ----


def _op(y, u, v, coeffs=BT601, size=(8, 8), dtype=torch.float32, **kw):
    args = (y, u, v, list(coeffs), list(size), "squash", None, list(CLIP_MEAN), list(CLIP_STD))
    if "out" in kw:
        torch.ops.sfllava.normalize_yuv420_frames.out(
            *args, 1 / 255, "pillow13", dtype, out=kw["out"]
        )
        return None
    return torch.ops.sfllava.normalize_yuv420_frames(*args, 1 / 255, "pillow13", dtype)


def test_bad_planes():
    f = random_planes(2, 10, 12, seed=2)
    with pytest.raises(TypeError, match="normalize_yuv420_frames: y must be uint8"):
        _op(f.y.float(), f.u, f.v)
    with pytest.raises(TypeError, match="u must be uint8"):
        _op(f.y, f.u.to(torch.int16), f.v)
    with pytest.raises(ValueError, match=r"y must be 3-D \(T, H, W\)"):
        _op(f.y[0], f.u, f.v)
    with pytest.raises(ValueError, match=r"v must be \(2, 5, 6\)"):
        _op(f.y, f.u, f.v[:, :4])
    with pytest.raises(ValueError, match=r"u must be \(2, 5, 6\)"):
        _op(f.y, f.u[:1], f.v)
    with pytest.raises(ValueError, match="u must have contiguous columns"):
        _op(f.y, f.u.transpose(1, 2).contiguous().transpose(1, 2)[:, :5, :6], f.v)
    with pytest.raises(ValueError, match="coeffs must be 6 integers"):
        _op(f.y, f.u, f.v, coeffs=BT601[:5])
    with pytest.raises(ValueError, match="coeffs must be 16-bit"):
        _op(f.y, f.u, f.v, coeffs=(1 << 16, 0, 0, 0, 0, 0))
    with pytest.raises(ValueError, match="size must be"):
        _op(f.y, f.u, f.v, size=(0, 8))
    with pytest.raises(TypeError, match="dtype must be"):
        _op(f.y, f.u, f.v, dtype=torch.int32)


def test_bad_out():
    f = random_planes(2, 10, 12, seed=2)
    with pytest.raises(TypeError, match="out has dtype"):
        _op(f.y, f.u, f.v, out=torch.empty(2, 3, 8, 8, dtype=torch.float16))
    with pytest.raises(ValueError, match=r"out must have shape \(2, 3, 8, 8\)"):
        _op(f.y, f.u, f.v, out=torch.empty(1, 3, 8, 8))
    with pytest.raises(ValueError, match="out must be contiguous"):
        _op(f.y, f.u, f.v, out=torch.empty(2, 8, 8, 3).permute(0, 3, 1, 2))


def test_planes_off_the_cpu_are_refused():
    f = random_planes(1, 4, 4, seed=0)
    meta = Yuv420Frames(f.y.to("meta"), f.u.to("meta"), f.v.to("meta"), BT601)
    with pytest.raises(ValueError, match="Yuv420Frames must be on the CPU"):
        normalize_frames(meta, (2, 2))


@CUDA
@pytest.mark.cuda
def test_planes_on_a_gpu_get_a_typed_error():
    f = random_planes(1, 4, 4, seed=0)
    with pytest.raises(ValueError, match="normalize_yuv420_frames: y must be on the CPU"):
        _op(f.y.cuda(), f.u.cuda(), f.v.cuda())
    gpu = Yuv420Frames(f.y.cuda(), f.u.cuda(), f.v.cuda(), BT601)
    with pytest.raises(ValueError, match="Yuv420Frames must be on the CPU"):
        normalize_frames(gpu, (2, 2))


def test_frames_object_checks_its_fields():
    f = random_planes(1, 4, 4, seed=0)
    with pytest.raises(TypeError, match="Yuv420Frames: u must be a torch.Tensor"):
        Yuv420Frames(f.y, f.u.numpy(), f.v, BT601)
    with pytest.raises(ValueError, match="Yuv420Frames: y must be 3-D"):
        Yuv420Frames(f.y[0], f.u, f.v, BT601)
    with pytest.raises(TypeError, match="coeffs must be 6 integers"):
        Yuv420Frames(f.y, f.u, f.v, None)
    assert Yuv420Frames(f.y, f.u, f.v, [1, 2, 3, 4, 5, 6]).coeffs == (1, 2, 3, 4, 5, 6)


# ---- torch.library ----


def test_opcheck_and_fake():
    f = random_planes(2, 23, 31, seed=1)
    common = (list(CLIP_MEAN), list(CLIP_STD), 1 / 255, "pillow13", torch.float16)
    for mode, edge in (("squash", None), ("crop", 12), ("pad", None)):
        args = (f.y, f.u, f.v, list(BT601), [10, 12], mode, edge, *common)
        torch.library.opcheck(torch.ops.sfllava.normalize_yuv420_frames.default, args)
        out = torch.empty(2, 3, 10, 12, dtype=torch.float16)
        torch.library.opcheck(torch.ops.sfllava.normalize_yuv420_frames.out, args, {"out": out})
    with FakeTensorMode() as mode:
        y, u, v = (mode.from_tensor(p) for p in (f.y, f.u, f.v))
        result = torch.ops.sfllava.normalize_yuv420_frames(
            y, u, v, list(BT601), [10, 12], "squash", None, *common
        )
        assert result.shape == (2, 3, 10, 12) and result.dtype == torch.float16
        # the fake kernel's errors are the C++ op's
        with pytest.raises(ValueError, match=r"normalize_yuv420_frames: u must be \(2, 12, 16\)"):
            torch.ops.sfllava.normalize_yuv420_frames(
                y, v[:, :3], v, list(BT601), [10, 12], "squash", None, *common
            )
        with pytest.raises(ValueError, match="normalize_yuv420_frames: size must be"):
            torch.ops.sfllava.normalize_yuv420_frames(
                y, u, v, list(BT601), [0, 12], "squash", None, *common
            )
        with pytest.raises(ValueError, match="normalize_yuv420_frames: coeffs must be 16-bit"):
            torch.ops.sfllava.normalize_yuv420_frames(
                y, u, v, [1 << 20] * 6, [10, 12], "squash", None, *common
            )
        out = torch.empty(2, 3, 10, 12, dtype=torch.float32)
        with pytest.raises(TypeError, match="normalize_yuv420_frames: out has dtype"):
            torch.ops.sfllava.normalize_yuv420_frames.out(
                y, u, v, list(BT601), [10, 12], "squash", None, *common, out=mode.from_tensor(out)
            )
    # and so are the real op's
    with pytest.raises(ValueError, match=r"normalize_yuv420_frames: u must be \(2, 12, 16\)"):
        _op(f.y, f.v[:, :3], f.v, size=(10, 12))
