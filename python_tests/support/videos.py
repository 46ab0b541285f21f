"""Deterministic test videos, written with PyAV (libx264 by default).

Other test files and the benchmarks reuse this module::

    from support.videos import write_test_video, make_frame
    write_test_video(tmp_path / "clip.mp4", 64, 48, num_frames=30, gop=10)

Every frame of a video differs from every other one (a frame counter is drawn
into each frame as a binary bar code), so a test that picks the wrong frame index
sees it. The content is smooth enough to compress like real footage (a panning
gradient, moving boxes) instead of noise, which would make decoding unrealistically
slow and the files huge.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction

import av
import numpy as np

__all__ = [
    "PATTERNS",
    "make_frame",
    "read_frame_counter",
    "write_test_video",
    "write_test_images",
    "iter_test_frames",
]

PATTERNS = ("moving", "noise", "flat")
_CODE_BITS = 12  # frame counter bits drawn into each frame (4096 distinct frames)


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:height, 0:width]
    return yy.astype(np.float32), xx.astype(np.float32)


def _draw_counter(img: np.ndarray, t: int) -> None:
    """Draw ``t`` as a row of black/white cells along the bottom edge (in place)."""
    height, width, _ = img.shape
    cell_w = max(1, width // _CODE_BITS)
    cell_h = max(2, height // 8)
    for bit in range(_CODE_BITS):
        x0 = bit * cell_w
        if x0 >= width:
            break
        img[height - cell_h :, x0 : x0 + cell_w] = 255 if (t >> bit) & 1 else 0


def read_frame_counter(frame: np.ndarray) -> int:
    """Read back the counter :func:`make_frame` drew: the frame's index in its video.

    ``frame``: uint8 RGB (H, W, 3), possibly after lossy coding; each cell's centre is
    averaged and compared with mid-grey, which survives normal compression.
    """
    height, width, _ = frame.shape
    cell_w = max(1, width // _CODE_BITS)
    cell_h = max(2, height // 8)
    value = 0
    for bit in range(_CODE_BITS):
        x0 = bit * cell_w
        if x0 >= width:
            break
        x_in = slice(x0 + cell_w // 4, x0 + max(cell_w // 4 + 1, (3 * cell_w) // 4))
        y_in = slice(height - cell_h + cell_h // 4, height - cell_h // 4)
        if frame[y_in, x_in].astype(np.float64).mean() > 127.5:
            value |= 1 << bit
    return value


def make_frame(width: int, height: int, t: int, pattern: str = "moving") -> np.ndarray:
    """Frame ``t`` of a test video as uint8 RGB, shape (height, width, 3), contiguous.

    ``moving``: a diagonal colour gradient that pans 3 px per frame, two boxes that
    move along different paths, and the frame counter. ``noise``: seeded uniform
    noise (worst case for the codec) plus the counter. ``flat``: one grey level that
    changes with ``t`` (every frame still differs).
    """
    if pattern not in PATTERNS:
        raise ValueError(f"make_frame: pattern must be one of {PATTERNS}, got {pattern!r}")
    if pattern == "noise":
        img = np.random.default_rng(t).integers(0, 256, (height, width, 3), dtype=np.uint8)
    elif pattern == "flat":
        img = np.full((height, width, 3), (37 * t + 16) % 256, dtype=np.uint8)
    else:
        yy, xx = _grid(height, width)
        phase = 3.0 * t
        r = 128 + 100 * np.sin((xx + phase) / 23.0)
        g = 128 + 100 * np.cos((yy - 0.5 * phase) / 17.0)
        b = 128 + 100 * np.sin((xx + yy + phase) / 31.0)
        img = np.stack([r, g, b], axis=-1).astype(np.uint8)
        box = max(2, min(width, height) // 5)
        for k, colour in enumerate(((250, 30, 30), (30, 30, 250))):
            x0 = int((7 + 5 * k) * t + k * width // 3) % max(1, width - box)
            y0 = int((3 + 2 * k) * t + k * height // 4) % max(1, height - box)
            img[y0 : y0 + box, x0 : x0 + box] = colour
    _draw_counter(img, t)
    return np.ascontiguousarray(img)


def silent_audio_frame(samples: int, rate: int, pts: int) -> av.AudioFrame:
    """A mono float-planar audio frame of ``samples`` zeros at ``rate`` Hz, stamped ``pts``."""
    frame = av.AudioFrame.from_ndarray(
        np.zeros((1, samples), np.float32), format="fltp", layout="mono"
    )
    frame.sample_rate = rate
    frame.pts = pts
    return frame


def iter_test_frames(
    width: int, height: int, num_frames: int, pattern: str = "moving"
) -> Iterator[np.ndarray]:
    """Yield :func:`make_frame` for t = 0 .. num_frames-1."""
    for t in range(num_frames):
        yield make_frame(width, height, t, pattern)


def write_test_video(
    path: str | os.PathLike,
    width: int,
    height: int,
    num_frames: int,
    fps: int = 30,
    gop: int | None = None,
    pattern: str = "moving",
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    preset: str | None = None,
    crf: int | None = None,
    bframes: int | None = None,
    rotation: int | None = None,
    x264_params: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> str:
    """Encode ``num_frames`` frames of :func:`make_frame` into ``path``; return the path.

    ``gop``: keyframe interval (libx264 ``keyint``); ``None`` keeps the encoder
    default (250 for libx264). ``preset`` / ``crf`` / ``bframes``: libx264 options,
    ``None`` keeps the encoder defaults (medium, 23, 3 B-frames). ``rotation``: a
    display-matrix rotation in degrees (counter-clockwise), as phone videos carry.
    ``x264_params``: more libx264 settings (e.g. ``{"open-gop": "1"}``).
    ``container_options``: muxer options (e.g. ``{"movflags": "faststart"}``).
    The container follows the file extension (.mp4, .mkv, .avi, ...).
    """
    path = os.fspath(path)
    with av.open(path, mode="w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width = width
        stream.height = height
        stream.pix_fmt = pix_fmt
        options: dict[str, str] = {}
        if codec == "libx264":
            if preset is not None:
                options["preset"] = preset
            if crf is not None:
                options["crf"] = str(crf)
            params = [] if gop is None else [f"keyint={gop}"]  # min-keyint: x264's default
            if bframes is not None:
                params.append(f"bframes={bframes}")
            params += [f"{key}={value}" for key, value in (x264_params or {}).items()]
            if params:
                options["x264-params"] = ":".join(params)
        elif gop is not None:
            stream.codec_context.gop_size = gop
        stream.options = options
        if rotation:
            stream.set_display_rotation(rotation)
        for img in iter_test_frames(width, height, num_frames, pattern):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_test_images(
    folder: str | os.PathLike,
    width: int,
    height: int,
    num_frames: int,
    ext: str = "png",
    pattern: str = "moving",
) -> list[str]:
    """Write frames as ``frame_00000.<ext>`` ... into ``folder``; return the paths."""
    from PIL import Image

    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for t, img in enumerate(iter_test_frames(width, height, num_frames, pattern)):
        path = os.path.join(folder, f"frame_{t:05d}.{ext}")
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths
