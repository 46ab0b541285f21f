"""normalize_frames against the published preprocessing (docs/method.md#preprocessing).

The reference is the published per-frame path itself: Pillow's
``Image.resize(..., BICUBIC)`` and the Hugging Face CLIP image processor (the
PIL backend, ``CLIPImageProcessorPil``), with SF-LLaVA's ``resize`` / ``pad``
handling around it. The fused op reproduces Pillow's integer arithmetic, so the
8-bit intermediates are identical and the float32 pixels are equal bit for bit.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import PIL
import pytest
import torch
from PIL import Image

import sfllava_ext
from sfllava_ext.ops import CLIP_MEAN, CLIP_STD, normalize_frames

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
MODES = ("squash", "crop", "pad")
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# The pass order of the installed Pillow (Pillow >= 13 may run the vertical pass first).
PIL_ORDER = "pillow13" if int(PIL.__version__.split(".")[0]) >= 13 else "pillow12"
# Output = the 8-bit levels themselves, as float32: the uint8 resize, compared exactly.
# (resize_mode='pad' takes its fill colour from the mean: see levels() below.)
LEVELS = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), rescale_factor=1.0, dtype=torch.float32)
# The floor: one 8-bit level of the most sensitive channel, in fp32.
ONE_LEVEL = 1 / 255 / min(CLIP_STD)


# ---- the published path ----


def clip_processor(shortest_edge: int, crop: tuple[int, int], **kwargs):
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    return CLIPImageProcessorPil(
        size={"shortest_edge": shortest_edge},
        crop_size={"height": crop[0], "width": crop[1]},
        **kwargs,
    )


def expand2square(img: Image.Image, background: tuple[int, ...]) -> Image.Image:
    """LLaVA's expand2square (mm_utils.py): the image centred on a square."""
    width, height = img.size
    if width == height:
        return img
    side = max(width, height)
    canvas = Image.new(img.mode, (side, side), background)
    canvas.paste(img, ((side - width) // 2, (side - height) // 2))
    return canvas


def published(
    frame: np.ndarray,
    mode: str,
    size: tuple[int, int],
    shortest_edge: int | None = None,
    levels: bool = False,
) -> torch.Tensor:
    """SF-LLaVA's process_images for one (H, W, 3) uint8 frame -> (3, h, w)
    float32 (levels=True: the uint8 pixels before rescale and normalisation)."""
    h, w = size
    img = Image.fromarray(frame)
    if mode == "squash":  # SF-LLaVA's 'resize'
        side = shortest_edge
        if side is None:
            img = img.resize((w, h), Image.BICUBIC)
            side = min(h, w)  # the processor's own resize is then a no-op
        else:
            img = img.resize((side, side), Image.BICUBIC)
    elif mode == "pad":
        img = expand2square(img, tuple(int(x * 255) for x in CLIP_MEAN))
        side = shortest_edge or min(size)
    else:
        side = shortest_edge or min(size)
    kwargs = dict(do_rescale=False, do_normalize=False) if levels else {}
    processor = clip_processor(side, size, **kwargs)
    pixels = processor(img, return_tensors="pt")["pixel_values"][0]
    return pixels.to(torch.float32)


def published_batch(frames: np.ndarray, mode: str, size, shortest_edge=None, levels=False):
    return torch.stack([published(f, mode, size, shortest_edge, levels) for f in frames])


def pil_resize(frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Image.resize((w, h), BICUBIC) of every frame, as float32 (T, 3, h, w)."""
    out = [np.asarray(Image.fromarray(f).resize((size[1], size[0]), Image.BICUBIC)) for f in frames]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float()


def random_frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Noise over a smooth gradient: every tap matters, values reach 0 and 255."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w, 1), yy * 255 // max(h, 1), (xx + yy) % 256], -1)
    noise = rng.integers(-80, 80, (t, h, w, 3))
    return np.clip(base[None] + noise, 0, 255).astype(np.uint8)


# ---- real H.264 frames (PyAV + libx264) ----


def h264_frames(path, width: int, height: int, count: int = 3) -> np.ndarray:
    """Encodes `count` test frames with libx264 (yuv420p), decodes them back to
    RGB: the chroma subsampling and compression of a real video. PyAV is imported
    here, so that this file's CUDA tests also run where PyAV is not installed."""
    av = pytest.importorskip("av", reason="encoding test videos needs PyAV")
    from support.videos import write_test_video

    write_test_video(path, width, height, count, fps=24, preset="ultrafast", crf=20)
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


VIDEOS = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080), "66x50": (66, 50)}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, np.ndarray]:
    root = tmp_path_factory.mktemp("videos")
    return {k: h264_frames(root / f"{k}.mp4", w, h, 2) for k, (w, h) in VIDEOS.items()}


def levels(frames, mode: str, size=(336, 336), shortest_edge=None) -> torch.Tensor:
    """The op's 8-bit levels (before rescale and normalisation), any mode: with
    std 1 and rescale 1 the output is float32(level) - float32(mean), and the
    mean keeps pad's fill colour int(mean * 255)."""
    out = normalize_frames(
        frames,
        size,
        resize_mode=mode,
        shortest_edge=shortest_edge,
        mean=CLIP_MEAN,
        std=(1.0, 1.0, 1.0),
        rescale_factor=1.0,
        dtype=torch.float32,
        pass_order=PIL_ORDER,
    )
    return torch.round(out + torch.tensor(CLIP_MEAN, dtype=torch.float32).view(1, 3, 1, 1))


def parity(ours: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """Max abs difference and fraction of values differing by more than 1e-3."""
    diff = (ours.float() - ref.float()).abs()
    return diff.max().item(), (diff > 1e-3).float().mean().item()


# ---- parity ----


@pytest.mark.parametrize("video", list(VIDEOS))
@pytest.mark.parametrize("mode", MODES)
def test_decoded_video_matches_published(videos, video, mode):
    frames = videos[video]
    ref = published_batch(frames, mode, (336, 336))
    ours = normalize_frames(frames, resize_mode=mode, dtype=torch.float32, pass_order=PIL_ORDER)
    max_diff, frac = parity(ours, ref)
    # the requirement ...
    assert max_diff <= ONE_LEVEL and frac <= 0.01
    # ... and what the op actually achieves: identical 8-bit levels, identical floats
    ref_levels = published_batch(frames, mode, (336, 336), levels=True)
    assert torch.equal(levels(frames, mode), ref_levels)
    assert torch.equal(ours, ref)


@pytest.mark.parametrize("hw", [(1, 1), (7, 5), (50, 66), (500, 333), (3000, 4000)])
@pytest.mark.parametrize("mode", MODES)
def test_random_frames_match_published(hw, mode):
    frames = random_frames(1 if hw[0] > 1000 else 2, *hw, seed=hw[0])
    ref = published_batch(frames, mode, (336, 336))
    for dtype in DTYPES:
        ours = normalize_frames(frames, resize_mode=mode, dtype=dtype, pass_order=PIL_ORDER)
        assert ours.dtype == dtype and ours.shape == (len(frames), 3, 336, 336)
        assert ours.is_contiguous()
        # fp16 / bf16 add only their own rounding of the float32 pixels
        assert torch.equal(ours, ref.to(dtype))


@pytest.mark.parametrize(
    "hw, size",
    [
        ((1, 1), (336, 336)),
        ((7, 5), (3, 2)),
        ((50, 66), (336, 336)),
        ((500, 333), (336, 336)),  # width up, height down: Pillow 13 goes vertical first
        ((720, 1280), (336, 336)),
        ((1280, 720), (336, 336)),  # portrait: vertical first in Pillow 13
        ((10, 20), (5, 40)),
        ((31, 17), (31, 40)),  # only the width changes
        ((31, 17), (9, 17)),  # only the height changes
        ((3000, 4000), (336, 336)),  # 12x shrink: 49 taps per output
        ((200, 3), (7, 300)),
    ],
)
def test_uint8_resize_is_pillow_bit_exact(hw, size):
    frames = random_frames(2, *hw, seed=sum(hw))
    ours = normalize_frames(frames, size, pass_order=PIL_ORDER, **LEVELS)
    assert torch.equal(ours, pil_resize(frames, size))


def test_pillow12_order_is_horizontal_first():
    """pass_order='pillow12' reproduces Pillow <= 12 (always horizontal first),
    emulated with two single-axis resizes (each of which every Pillow runs alike)."""
    frames = random_frames(2, 500, 333, seed=3)
    size = (336, 336)
    first = [np.asarray(Image.fromarray(f).resize((size[1], 500), Image.BICUBIC)) for f in frames]
    ref = pil_resize(np.stack(first), size)
    ours = normalize_frames(frames, size, pass_order="pillow12", **LEVELS)
    assert torch.equal(ours, ref)
    # the two orders really differ here (the intermediate rounds differently)
    assert not torch.equal(ours, normalize_frames(frames, size, pass_order="pillow13", **LEVELS))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "hw, size, edge",
    [
        ((120, 90), (64, 48), None),  # non-square crop
        ((120, 90), (64, 64), 40),  # resized smaller than the crop: Hugging Face's zero padding
        ((90, 120), (33, 35), 37),  # odd offsets on both sides
        ((60, 61), (70, 70), 80),
        ((400, 90), (48, 40), None),  # tall: crop resizes vertical-first in Pillow 13
    ],
)
def test_shortest_edge_and_crop_geometry(mode, hw, size, edge):
    frames = random_frames(2, *hw, seed=7)
    ref = published_batch(frames, mode, size, edge)
    ours = normalize_frames(
        frames,
        size,
        resize_mode=mode,
        shortest_edge=edge,
        dtype=torch.float32,
        pass_order=PIL_ORDER,
    )
    assert torch.equal(ours, ref)


# ---- layouts, out=, empty input ----


def test_strided_and_numpy_inputs():
    frames = random_frames(3, 61, 47, seed=11)
    expect = normalize_frames(frames, (32, 40), resize_mode="crop")
    tensor = torch.from_numpy(frames)
    planar = tensor.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)  # channel planes
    channels_last = tensor.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    big = torch.zeros(3, 61 * 2, 47 * 3, 3, dtype=torch.uint8)
    big[:, ::2, ::3] = tensor
    readonly = frames.copy()
    readonly.setflags(write=False)
    flipped = np.ascontiguousarray(frames[:, ::-1])[:, ::-1]  # negative strides
    for variant in (
        planar,
        channels_last.permute(0, 2, 3, 1),
        big[:, ::2, ::3],
        tensor.transpose(1, 2).contiguous().transpose(1, 2),
        readonly,
        flipped,
    ):
        assert torch.equal(normalize_frames(variant, (32, 40), resize_mode="crop"), expect)


@pytest.mark.parametrize("mode", MODES)
def test_out_buffer(mode):
    frames = random_frames(4, 90, 120, seed=5)
    expect = normalize_frames(frames, (48, 48), resize_mode=mode, dtype=torch.bfloat16)
    batch = torch.full((10, 3, 48, 48), 7.0, dtype=torch.bfloat16)
    got = normalize_frames(frames, (48, 48), resize_mode=mode, dtype=torch.bfloat16, out=batch[3:7])
    assert got.data_ptr() == batch[3:7].data_ptr()
    assert torch.equal(batch[3:7], expect)
    assert (batch[:3] == 7).all() and (batch[7:] == 7).all()


def test_empty_and_thread_splits():
    empty = normalize_frames(torch.zeros(0, 20, 30, 3, dtype=torch.uint8), (8, 9))
    assert empty.shape == (0, 3, 8, 9) and empty.dtype == torch.float16
    frames = random_frames(3, 75, 131, seed=9)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = normalize_frames(frames, (40, 50), resize_mode="pad")
        torch.set_num_threads(4)  # more threads than frames: rows are split
        four = normalize_frames(frames, (40, 50), resize_mode="pad")
        single = normalize_frames(frames[:1], (40, 50), resize_mode="pad")
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, four) and torch.equal(single, one[:1])


# ---- the CUDA kernels' bodies, and every CPU code path ----


SHAPES = [
    ((5, 7), (3, 4), "squash", None),
    ((90, 64), (336, 336), "squash", None),  # upscale
    ((300, 500), (224, 224), "crop", None),
    ((500, 300), (224, 224), "squash", None),  # vertical first
    ((61, 40), (30, 30), "pad", None),  # tall pad: fill columns beside the frame
    ((40, 61), (30, 32), "pad", 36),  # wide pad: fill rows above and below
    ((120, 90), (64, 64), "crop", 40),  # zero padding of the crop
    ((33, 800), (20, 20), "squash", None),  # 40x horizontal shrink: > 128 bytes of taps
    ((400, 90), (48, 40), "crop", None),  # tall crop: vertical first
]


@pytest.mark.parametrize("order", ["pillow13", "pillow12"])
@pytest.mark.parametrize("hw, size, mode, edge", SHAPES)
def test_simt_body_matches_cpu_kernel(hw, size, mode, edge, order):
    """The CUDA kernels' bodies, run on the CPU over their whole grids, compute
    the same bytes as the CPU kernel."""
    frames = torch.from_numpy(random_frames(2, *hw, seed=hw[1]))
    args = ([*size], mode, edge, list(CLIP_MEAN), list(CLIP_STD), 1 / 255, order)
    for dtype in DTYPES:
        simt = torch.ops.sfllava._normalize_frames_simt(frames, *args, dtype)
        cpu = torch.ops.sfllava.normalize_frames(frames, *args, dtype)
        assert torch.equal(simt, cpu)


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
def test_cpu_isa_versions_agree(monkeypatch, isa):
    """Every row-primitive version (capped with SFLLAVA_CPU_ISA) gives the same bytes,
    in every output dtype (16-bit outputs have their own table lookup)."""
    cases = []
    for hw, size, mode, edge in SHAPES + [((720, 1280), (336, 336), "squash", None)]:
        frames = random_frames(2, *hw, seed=hw[0])
        for dtype in DTYPES:
            kw = dict(size=size, resize_mode=mode, shortest_edge=edge, dtype=dtype)
            cases.append((frames, kw))
    expect = [normalize_frames(f, **kw) for f, kw in cases]
    monkeypatch.setenv("SFLLAVA_CPU_ISA", isa)
    for (frames, kw), e in zip(cases, expect, strict=True):
        assert torch.equal(normalize_frames(frames, **kw), e)


# ---- bad input ----

U8 = torch.zeros(2, 10, 12, 3, dtype=torch.uint8)


@pytest.mark.parametrize(
    "frames, kwargs, error, match",
    [
        (U8.float(), {}, TypeError, "frames must be uint8"),
        ([[1, 2, 3]], {}, TypeError, "frames must be a torch.Tensor"),
        (U8[0], {}, ValueError, r"frames must be \(T, H, W, 3\)"),
        (torch.zeros(2, 10, 12, 4, dtype=torch.uint8), {}, ValueError, "got shape"),
        (torch.zeros(2, 0, 12, 3, dtype=torch.uint8), {}, ValueError, "zero-sized"),
        (U8, {"size": (0, 336)}, ValueError, "size must be"),
        (U8, {"size": (336,)}, ValueError, "size must be"),
        (U8, {"resize_mode": "zoom"}, ValueError, "resize_mode must be one of"),
        (U8, {"resize_mode": "crop", "shortest_edge": 0}, ValueError, "shortest_edge"),
        (U8, {"mean": (0.5, 0.5)}, ValueError, "mean must have 3 values"),
        (U8, {"std": (0.5, 0.0, 0.5)}, ValueError, "std must be finite and nonzero"),
        (U8, {"std": (1.0, 1.0, 1.0, 1.0)}, ValueError, "std must have 3 values"),
        (U8, {"mean": (math.nan, 0.0, 0.0)}, ValueError, "mean must be finite"),
        (U8, {"pass_order": "pillow9"}, ValueError, "pass_order must be one of"),
        (U8, {"dtype": torch.float64}, TypeError, "dtype must be float32"),
        (U8, {"out": torch.empty(2, 3, 336, 335, dtype=torch.float16)}, ValueError, "out must"),
        (U8, {"out": torch.empty(2, 3, 336, 336)}, TypeError, "out has dtype"),
        (
            U8,
            {"out": torch.empty(2, 336, 336, 3, dtype=torch.float16).permute(0, 3, 1, 2)},
            ValueError,
            "contiguous",
        ),
        (
            U8,
            {"out": torch.empty(2, 3, 336, 336, dtype=torch.float16, device="meta")},
            ValueError,
            "out is on",
        ),
    ],
)
def test_bad_input_raises_typed_errors(frames, kwargs, error, match):
    with pytest.raises(error, match=match):
        normalize_frames(frames, **kwargs)


@pytest.mark.parametrize(
    "args, error",
    [
        ((U8.float(), [8, 8], "squash", None, [0.0] * 3, [1.0] * 3, 1.0, "pillow13"), TypeError),
        ((U8, [8, 8], "zoom", None, [0.0] * 3, [1.0] * 3, 1.0, "pillow13"), ValueError),
        ((U8, [8, 8], "squash", None, [0.0] * 3, [0.0] * 3, 1.0, "pillow13"), ValueError),
        ((U8, [8], "squash", None, [0.0] * 3, [1.0] * 3, 1.0, "pillow13"), ValueError),
    ],
)
def test_kernels_and_fake_kernels_raise_alike(args, error):
    """The C++ checks (torch.ops, no Python wrapper) and the fake kernel agree."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with pytest.raises(error, match="normalize_frames: "):
        torch.ops.sfllava.normalize_frames(*args, torch.float16)
    with FakeTensorMode() as mode:
        fake = mode.from_tensor(args[0])
        with pytest.raises(error, match="normalize_frames: "):
            torch.ops.sfllava.normalize_frames(fake, *args[1:], torch.float16)


# ---- torch.library / torch.compile ----


def test_opcheck():
    frames = torch.from_numpy(random_frames(2, 23, 31, seed=1))
    common = (list(CLIP_MEAN), list(CLIP_STD), 1 / 255, "pillow13", torch.float16)
    for mode, edge in (("squash", None), ("crop", 12), ("pad", None)):
        args = (frames, [10, 12], mode, edge, *common)
        torch.library.opcheck(torch.ops.sfllava.normalize_frames.default, args)
        out = torch.empty(2, 3, 10, 12, dtype=torch.float16)
        torch.library.opcheck(torch.ops.sfllava.normalize_frames.out, args, {"out": out})


def test_compile_fullgraph():
    frames = torch.from_numpy(random_frames(2, 40, 52, seed=2))

    def preprocess(x: torch.Tensor) -> torch.Tensor:
        return normalize_frames(x, (24, 24), resize_mode="pad", dtype=torch.float32) * 2

    compiled = torch.compile(preprocess, fullgraph=True, backend="inductor")
    assert torch.equal(compiled(frames), preprocess(frames))


# ---- Hugging Face glue ----


@pytest.mark.parametrize("mode", MODES)
def test_frame_normalizer_clip(mode):
    processor = clip_processor(336, (336, 336))
    norm = sfllava_ext.frame_normalizer(
        processor, resize_mode=mode, dtype=torch.float32, pass_order=PIL_ORDER
    )
    assert norm.size == (336, 336) and norm.mean == CLIP_MEAN and norm.std == CLIP_STD
    frames = random_frames(2, 90, 160, seed=4)
    assert torch.equal(norm(frames), published_batch(frames, mode, (336, 336)))
    # a config dict works the same
    assert (
        sfllava_ext.frame_normalizer(
            processor.to_dict(), resize_mode=mode, dtype=torch.float32, pass_order=PIL_ORDER
        )
        == norm
    )


def test_frame_normalizer_siglip_and_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from transformers.models.siglip.image_processing_pil_siglip import (
            SiglipImageProcessorPil,
        )
    processor = SiglipImageProcessorPil(size={"height": 64, "width": 64})
    norm = sfllava_ext.frame_normalizer(processor, dtype=torch.float32, pass_order=PIL_ORDER)
    assert norm.size == (64, 64) and norm.mean == (0.5, 0.5, 0.5)
    frames = random_frames(2, 48, 80, seed=6)
    ref = torch.stack(
        [processor(Image.fromarray(f), return_tensors="pt")["pixel_values"][0] for f in frames]
    )
    assert torch.equal(norm(frames), ref)
    with pytest.raises(ValueError, match="bicubic"):
        sfllava_ext.frame_normalizer({**processor.to_dict(), "resample": 2})
    with pytest.raises(ValueError, match="resize_mode"):
        sfllava_ext.frame_normalizer(processor, resize_mode="zoom")
    with pytest.raises(ValueError, match="varying size"):
        sfllava_ext.frame_normalizer({"size": {"shortest_edge": 32}}, resize_mode="crop")


# ---- CUDA (skipped cleanly without a GPU; runs unchanged on one) ----


@CUDA
@pytest.mark.cuda
@pytest.mark.parametrize("order", ["pillow13", "pillow12"])
@pytest.mark.parametrize("hw, size, mode, edge", SHAPES)
def test_cuda_matches_cpu(hw, size, mode, edge, order):
    frames = torch.from_numpy(random_frames(3, *hw, seed=hw[0]))
    for dtype in DTYPES:
        kw = dict(resize_mode=mode, shortest_edge=edge, pass_order=order, dtype=dtype)
        cpu = normalize_frames(frames, size, **kw)
        gpu = normalize_frames(frames.cuda(), size, **kw)
        assert gpu.device.type == "cuda" and torch.equal(gpu.cpu(), cpu)


@CUDA
@pytest.mark.cuda
def test_cuda_from_host_frames_and_out(videos):
    frames = videos["720p"]
    cpu = normalize_frames(frames, resize_mode="crop")
    gpu = normalize_frames(frames, resize_mode="crop", device="cuda")  # pinned uint8 upload
    assert gpu.device.type == "cuda" and torch.equal(gpu.cpu(), cpu)
    out = torch.empty(len(frames), 3, 336, 336, dtype=torch.float16, device="cuda")
    got = normalize_frames(
        torch.from_numpy(frames).cuda().permute(0, 2, 1, 3).transpose(1, 2),
        resize_mode="crop",
        out=out,
    )
    assert got.data_ptr() == out.data_ptr() and torch.equal(out.cpu(), cpu)
    empty = normalize_frames(torch.zeros(0, 8, 8, 3, dtype=torch.uint8, device="cuda"), (4, 4))
    assert empty.shape == (0, 3, 4, 4) and empty.is_cuda
