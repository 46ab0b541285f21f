"""swscale's colour matrices, and the check that lets the loader convert YUV 4:2:0 ->
RGB24 natively with swscale's very bytes. Internal module of the ``pyav`` backend;
:mod:`sfllava_ext.yuv_to_rgb` re-exports its public names under their old path.

The ``pyav`` backend must return exactly the pixels decord returns, and decord
converts with swscale. For the common case (a same-size YUV420P -> RGB24 conversion
of a frame with an even height) swscale runs its unscaled fixed-point converter,
whose arithmetic ``sfllava::yuv420_to_rgb`` repeats (csrc/common/yuv_to_rgb.h; the op
is :func:`sfllava_ext.ops.yuv420_to_rgb`). Doing it natively writes the RGB bytes
straight into the clip's buffer, with no frame allocated by PyAV and no copy after
it, and runs several times faster.

The coefficients follow swscale's ``ff_yuv2rgb_c_init_tables`` for the frame's colour
matrix and range (:func:`swscale_coeffs`). Because they are tied to swscale's tables,
:func:`native_coeffs` checks them once per (matrix, range) and process against the
installed swscale on a frame that holds every luma value with every chroma value;
when the two disagree (another FFmpeg, another CPU path) it returns None and the
loader keeps swscale.

Entry point first (:func:`native_coeffs`, which :mod:`.sinks` asks per frame), then
what it calls; :func:`frame_planes` last.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import torch

from ...ops.yuv420_to_rgb import yuv420_to_rgb

__all__ = ["FULL_RANGE", "frame_planes", "native_coeffs", "swscale_coeffs"]

logger = logging.getLogger(__name__)

# swscale's colour matrices {crv, cbu, cgu, cgv}, indexed by AVColorSpace
# (libswscale/yuv2rgb.c, ff_yuv2rgb_coeffs); 8 (YCgCo) has none.
_MATRICES = {
    0: (104597, 132201, 25675, 53279),  # RGB / unknown: swscale's default (BT.601)
    1: (117489, 138438, 13975, 34925),  # BT.709
    2: (104597, 132201, 25675, 53279),  # unspecified
    4: (104448, 132798, 24759, 53109),  # FCC
    5: (104597, 132201, 25675, 53279),  # BT.470 BG
    6: (104597, 132201, 25675, 53279),  # SMPTE 170M
    7: (117579, 136230, 16907, 35559),  # SMPTE 240M
    9: (110013, 140363, 12277, 42626),  # BT.2020 non-constant luminance
    10: (110013, 140363, 12277, 42626),  # BT.2020 constant luminance
}
FULL_RANGE = 2  # AVCOL_RANGE_JPEG


@functools.cache
def native_coeffs(colorspace: int, color_range: int) -> tuple[int, ...] | None:
    """The coefficients to convert frames of this matrix and range natively, or None
    when the native converter would not match the installed swscale (checked once
    per process on :func:`_coverage_planes`)."""
    coeffs = swscale_coeffs(colorspace, color_range)
    if coeffs is None:
        return None
    try:
        import av
        from av.video.reformatter import VideoReformatter

        y, u, v = _coverage_planes()
        frame = av.VideoFrame.from_ndarray(
            np.concatenate([y, u.reshape(-1, y.shape[1]), v.reshape(-1, y.shape[1])]),
            format="yuv420p",
        )
        frame.colorspace = int(colorspace)
        frame.color_range = int(color_range)
        expected = (
            VideoReformatter()
            .reformat(frame, width=frame.width, height=frame.height, format="rgb24", threads=1)
            .to_ndarray()
        )
        ours = yuv420_to_rgb(*frame_planes(frame), coeffs).numpy()
    except Exception as exc:  # no PyAV, an old PyAV without colour setters, ...
        logger.debug("native YUV -> RGB unavailable: %s", exc)
        return None
    if not np.array_equal(ours, expected):
        logger.info(
            "native YUV -> RGB differs from this swscale for colorspace %s range %s; using swscale",
            colorspace,
            color_range,
        )
        return None
    return coeffs


def swscale_coeffs(colorspace: int, color_range: int) -> tuple[int, ...] | None:
    """(cy, y_offset, cub, cug, cvg, cvr) as swscale derives them for a frame's colour
    matrix (AVColorSpace) and range (AVColorRange) at default brightness, contrast and
    saturation; None for a matrix swscale has no table for."""
    matrix = _MATRICES.get(int(colorspace))
    if matrix is None:
        return None
    crv, cbu, cgu, cgv = matrix[0], matrix[1], -matrix[2], -matrix[3]
    cy, oy = 1 << 16, 0
    if int(color_range) == FULL_RANGE:
        crv, cbu, cgu, cgv = (int(c * 224 / 255) for c in (crv, cbu, cgu, cgv))
    else:
        cy, oy = (cy * 255) // 219, 16 << 16
    return (
        _round_to_int16(cy << 13),
        _round_to_int16(oy << 3),
        _round_to_int16(cbu << 13),
        _round_to_int16(cgu << 13),
        _round_to_int16(cgv << 13),
        _round_to_int16(crv << 13),
    )


def _round_to_int16(value: int) -> int:
    return max(-32768, min(32767, (value + (1 << 15)) >> 16))


def _coverage_planes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 1024 x 512 YUV 4:2:0 frame: the left half pairs every U with every Y (V at
    128), the right half every V with every Y (U at 128), and the chroma of the
    bottom rows runs over every (U, V) pair, so that each coefficient and each
    saturation shows."""
    h, w = 512, 1024
    y = np.empty((h, w), np.uint8)
    u = np.full((h // 2, w // 2), 128, np.uint8)
    v = np.full((h // 2, w // 2), 128, np.uint8)
    ramp = np.arange(256, dtype=np.uint8)
    y[:, :] = np.tile(np.repeat(ramp, 2), 2)[None, :]  # luma runs 0..255 along each half
    y[1::2, :] = np.tile(np.repeat(ramp, 2), 2)[None, ::-1]
    u[:, :256] = ramp[:, None]  # every U on each column pair of the left half
    v[:, 256:] = ramp[:, None]
    grid = np.arange(65536, dtype=np.int64)
    u[192:, :] = (grid[: 64 * 512] // 256 % 256).reshape(64, 512).astype(np.uint8)
    v[192:, :] = (grid[: 64 * 512] % 256).reshape(64, 512).astype(np.uint8)
    return y, u, v


def frame_planes(frame) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Y, U and V planes of a PyAV yuv420p frame as uint8 tensors, no copy."""
    planes = []
    for plane, rows, cols in (
        (frame.planes[0], frame.height, frame.width),
        (frame.planes[1], (frame.height + 1) // 2, (frame.width + 1) // 2),
        (frame.planes[2], (frame.height + 1) // 2, (frame.width + 1) // 2),
    ):
        flat = torch.frombuffer(plane, dtype=torch.uint8)
        planes.append(flat.as_strided((rows, cols), (plane.line_size, 1)))
    return planes[0], planes[1], planes[2]
