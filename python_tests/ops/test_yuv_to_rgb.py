"""The native YUV 4:2:0 -> RGB24 converter of the video loader.

Two independent references: swscale itself (PyAV's reformat, what decord runs), and
a NumPy emulation of the 16-bit instructions swscale's converter uses, written here
without the extension's code. The H.264 packet test that lets the loader leave
non-reference pictures out is checked on hand-made NAL units and on real encodes.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import av
import numpy as np
import pytest
import torch
from av.video.reformatter import VideoReformatter
from support.videos import write_test_video

from sfllava_ext.ops import yuv420_to_rgb
from sfllava_ext.video.pyav import h264
from sfllava_ext.video.pyav.swscale import frame_planes, native_coeffs, swscale_coeffs

# (AVColorSpace, AVColorRange) pairs: unspecified / BT.709 / BT.601 / SMPTE 240M /
# BT.2020, limited (1), unknown (0, treated as limited) and full (2) range.
MATRICES = [(2, 1), (2, 0), (2, 2), (1, 1), (1, 2), (5, 1), (6, 2), (7, 1), (9, 1), (4, 1)]


def random_frame(width: int, height: int, seed: int, colorspace: int, color_range: int):
    """A PyAV yuv420p frame (with the decoder-style padded line sizes) of random bytes."""
    rng = np.random.default_rng(seed)
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane in frame.planes:
        plane.update(rng.integers(0, 256, plane.buffer_size, dtype=np.uint8).tobytes())
    frame.colorspace = colorspace
    frame.color_range = color_range
    return frame


def swscale_rgb(frame) -> np.ndarray:
    return (
        VideoReformatter()
        .reformat(frame, width=frame.width, height=frame.height, format="rgb24", threads=1)
        .to_ndarray()
    )


def emulate_swscale(y, u, v, coeffs) -> np.ndarray:
    """psllw/psubw, psubsw, pmulhw, paddsw and packuswb on int16 lanes, in NumPy."""
    cy, y_offset, cub, cug, cvg, cvr = (np.int64(c) for c in coeffs)

    def wrap16(x):
        return ((x + 32768) % 65536) - 32768

    def sat16(x):
        return np.clip(x, -32768, 32767)

    def mulhi(a, b):
        return np.floor_divide(a * b, 65536)

    h, w = y.shape
    y = y.astype(np.int64)
    u = np.repeat(np.repeat(u.astype(np.int64), 2, 0), 2, 1)[:h, :w]
    v = np.repeat(np.repeat(v.astype(np.int64), 2, 0), 2, 1)[:h, :w]
    luma = mulhi(wrap16(y * 8 - y_offset), cy)
    uu = sat16(wrap16(u * 8) - 1024)
    vv = sat16(wrap16(v * 8) - 1024)
    red = sat16(luma + mulhi(vv, cvr))
    green = sat16(luma + sat16(mulhi(uu, cug) + mulhi(vv, cvg)))
    blue = sat16(luma + mulhi(uu, cub))
    return np.clip(np.stack([red, green, blue], -1), 0, 255).astype(np.uint8)


def planes(width: int, height: int, seed: int):
    rng = np.random.default_rng(seed)
    y = torch.from_numpy(rng.integers(0, 256, (height, width), dtype=np.uint8))
    c = ((height + 1) // 2, (width + 1) // 2)
    u = torch.from_numpy(rng.integers(0, 256, c, dtype=np.uint8))
    v = torch.from_numpy(rng.integers(0, 256, c, dtype=np.uint8))
    return y, u, v


# --------------------------------------------------------------------------- vs swscale


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 swscale path")
@pytest.mark.parametrize("colorspace,color_range", MATRICES)
def test_native_path_is_enabled_for_common_matrices(colorspace: int, color_range: int) -> None:
    """On x86-64 swscale runs the converter we repeat: the calibration must accept it
    for every matrix swscale has a table for (else the loader silently loses speed)."""
    assert native_coeffs(colorspace, color_range) == swscale_coeffs(colorspace, color_range)


@pytest.mark.parametrize("colorspace,color_range", MATRICES)
@pytest.mark.parametrize("size", [(2, 2), (18, 6), (33, 10), (1, 4), (47, 2), (1280, 720)])
def test_equals_swscale_on_random_frames(
    size, colorspace: int, color_range: int, isa: str | None
) -> None:
    coeffs = native_coeffs(colorspace, color_range)
    if coeffs is None:
        pytest.skip("this swscale runs another converter")
    width, height = size
    frame = random_frame(
        width, height, seed=width * 7 + height, colorspace=colorspace, color_range=color_range
    )
    ours = yuv420_to_rgb(*frame_planes(frame), coeffs)
    assert np.array_equal(ours.numpy(), swscale_rgb(frame))


def test_unknown_matrix_has_no_native_coefficients() -> None:
    assert swscale_coeffs(8, 1) is None  # YCgCo: swscale has no table
    assert native_coeffs(8, 1) is None
    assert native_coeffs(123, 1) is None


# --------------------------------------------------------------------------- vs emulation


@pytest.mark.parametrize(
    "width", list(range(1, 41)) + [47, 48, 49, 63, 64, 65, 79, 80, 81, 95, 96, 97, 1281]
)
def test_equals_instruction_emulation_every_width(width: int, isa: str | None) -> None:
    """Every width 1..40 and more around the 32-pixel steps (the AVX-512 row pairs,
    the 16-pixel AVX2 steps and the scalar tail) with random planes and random
    16-bit coefficients, saturation included; heights 1, 2 and 5 (a row without its
    pair at the bottom)."""
    rng = np.random.default_rng(width)
    for height in (1, 2, 5):
        y, u, v = planes(width, height, seed=width * 10 + height)
        coeffs = [int(c) for c in rng.integers(-32768, 32768, 6)]
        coeffs[1] = int(rng.integers(-4096, 4096))  # y_offset
        ours = yuv420_to_rgb(y, u, v, coeffs)
        assert np.array_equal(
            ours.numpy(), emulate_swscale(y.numpy(), u.numpy(), v.numpy(), coeffs)
        )


def test_unknown_isa_cap_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt SFLLAVA_CPU_ISA fails loudly instead of silently running the best path."""
    y, u, v = planes(8, 2, seed=1)
    monkeypatch.setenv("SFLLAVA_CPU_ISA", "AVX2")
    with pytest.raises(ValueError, match="SFLLAVA_CPU_ISA must be scalar, avx2 or avx512"):
        yuv420_to_rgb(y, u, v, [9535, 2048, 16531, -3203, -6660, 13074])
    monkeypatch.setenv("SFLLAVA_CPU_ISA", "")  # empty: as if unset
    assert yuv420_to_rgb(y, u, v, [9535, 2048, 16531, -3203, -6660, 13074]).shape == (2, 8, 3)


def test_strided_planes_and_output() -> None:
    """Planes with a line size wider than the picture, and an output that is a
    window of a larger buffer."""
    y, u, v = planes(40, 6, seed=3)
    big_y = torch.zeros(6, 64, dtype=torch.uint8)
    big_y[:, :40] = y
    coeffs = swscale_coeffs(2, 1)
    canvas = torch.full((8, 50, 3), 7, dtype=torch.uint8)
    window = canvas[1:7, 5:45]
    yuv420_to_rgb(big_y[:, :40], u, v, coeffs, out=window)
    assert np.array_equal(window.numpy(), emulate_swscale(y.numpy(), u.numpy(), v.numpy(), coeffs))
    assert (canvas[0] == 7).all() and (canvas[:, :5] == 7).all() and (canvas[:, 45:] == 7).all()


# --------------------------------------------------------------------------- bad input


def test_bad_input_is_named() -> None:
    y, u, v = planes(8, 4, seed=0)
    k = swscale_coeffs(2, 1)
    with pytest.raises(TypeError, match="yuv420_to_rgb: y must be uint8"):
        yuv420_to_rgb(y.float(), u, v, k)
    with pytest.raises(ValueError, match=r"u must be \(2, 4\)"):
        yuv420_to_rgb(y, u[:1], v, k)
    with pytest.raises(ValueError, match="v must have contiguous columns"):
        yuv420_to_rgb(y, u, torch.zeros(4, 2, dtype=torch.uint8).t(), k)
    with pytest.raises(ValueError, match="coeffs must be 6 integers"):
        yuv420_to_rgb(y, u, v, k[:5])
    with pytest.raises(ValueError, match="coeffs must be 16-bit"):
        yuv420_to_rgb(y, u, v, (*k[:5], 40000))
    with pytest.raises(ValueError, match=r"out must be \(4, 8, 3\)"):
        yuv420_to_rgb(y, u, v, k, out=torch.empty(4, 8, 4, dtype=torch.uint8))
    with pytest.raises(TypeError, match="out must be uint8"):
        yuv420_to_rgb(y, u, v, k, out=torch.empty(4, 8, 3))
    with pytest.raises(ValueError, match="out must hold each row's pixels contiguously"):
        yuv420_to_rgb(y, u, v, k, out=torch.empty(4, 3, 8, dtype=torch.uint8).transpose(1, 2))
    shared = torch.zeros(4 * 8 * 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="out must not overlap"):
        yuv420_to_rgb(shared[:32].view(4, 8), u, v, k, out=shared.view(4, 8, 3))


# --------------------------------------------------------------------------- H.264 packets


def avcc(*nals: bytes) -> bytes:
    return b"".join(len(n).to_bytes(4, "big") + n for n in nals)


def annexb(*nals: bytes) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + n for n in nals)


NONREF_SLICE = bytes([0x01, 0x9A, 0x22])  # nal_ref_idc 0, type 1
REF_SLICE = bytes([0x41, 0x9A, 0x22])  # nal_ref_idc 2, type 1
IDR_SLICE = bytes([0x65, 0x88, 0x84])  # nal_ref_idc 3, type 5
AUD = bytes([0x09, 0xF0])
SEI = bytes([0x06, 0x05, 0x01, 0x00, 0x80])
PPS = bytes([0x68, 0xEE, 0x3C, 0x80])


@pytest.mark.parametrize(
    "nals,disposable",
    [
        ((NONREF_SLICE,), True),
        ((AUD, NONREF_SLICE, NONREF_SLICE), True),  # an access unit delimiter, two slices
        ((REF_SLICE,), False),
        ((IDR_SLICE,), False),
        ((NONREF_SLICE, REF_SLICE), False),
        ((SEI, NONREF_SLICE), False),  # SEI may matter to later pictures: keep it
        ((PPS, NONREF_SLICE), False),  # a parameter set later pictures use
        ((AUD,), False),  # no picture at all
    ],
)
def test_disposable_h264_packets(nals: tuple[bytes, ...], disposable: bool) -> None:
    extradata = bytes([1, 0x64, 0, 0x1F, 0xFF, 0xE1]) + b"\x00"  # avcC, 4-byte lengths
    assert h264.disposable_packet_test("h264", extradata)(avcc(*nals)) is disposable
    assert h264.disposable_packet_test("h264", None)(annexb(*nals)) is disposable


def test_malformed_h264_packets_are_kept() -> None:
    test = h264.disposable_packet_test("h264", bytes([1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0]))
    good = avcc(NONREF_SLICE)
    assert not test(good[:-1])  # a length past the end
    assert not test(b"")
    assert not test(b"\x00\x00\x00\x00" + NONREF_SLICE)  # a zero length
    assert h264.disposable_packet_test("hevc", None) is None
    assert h264.disposable_packet_test("mpeg4", None) is None


@pytest.mark.parametrize("ext", [".mp4", ".ts"])
def test_real_b_frames_are_disposable_exactly_when_unreferenced(tmp_path, ext: str) -> None:
    """On libx264 output (3 B-frames, B-pyramid) the test marks as many packets as the
    decoder itself drops as non-reference, and fewer than half of them (the B-frames
    in the middle of each group are references). That the loader's frames stay the
    reference decode's is checked on many files in python_tests/test_video.py."""
    path = write_test_video(tmp_path / f"clip{ext}", 96, 64, num_frames=60)
    with av.open(path) as container:
        stream = container.streams.video[0]
        test = h264.disposable_packet_test("h264", stream.codec_context.extradata)
        marks = [test(p) for p in container.demux(stream) if p.size]
    # x264's default pattern I/P, B-ref, B, B: about half of the B-frames are references
    assert 0 < sum(marks) < len(marks) / 2
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONREF"
        kept = sum(1 for p in container.demux(stream) if p.size for _ in stream.decode(p))
        kept += sum(1 for _ in stream.decode(None))
    assert kept == len(marks) - sum(marks)


def test_the_old_module_path_still_gives_the_moved_names() -> None:
    """sfllava_ext.yuv_to_rgb is a compatibility module now: its names are the very
    objects of their new homes, and it imports first in a fresh interpreter."""
    import sfllava_ext.yuv_to_rgb as old

    import sfllava_ext
    from sfllava_ext.video.frames import Yuv420Frames
    from sfllava_ext.video.pyav import swscale

    assert old.Yuv420Frames is Yuv420Frames
    assert old.yuv420_to_rgb is yuv420_to_rgb
    for name in ("FULL_RANGE", "frame_planes", "native_coeffs", "swscale_coeffs"):
        assert getattr(old, name) is getattr(swscale, name), name
    # the imported package's root, so that the child imports the very package under test
    root = os.path.dirname(os.path.dirname(os.path.abspath(sfllava_ext.__file__)))
    for module in ("sfllava_ext.yuv_to_rgb", "sfllava_ext.video.pyav.swscale"):
        code = (
            f"import sys; sys.path.insert(0, {root!r}); import {module}; print({module}.__name__)"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        )
        assert proc.returncode == 0 and proc.stdout.strip() == module, proc.stderr
