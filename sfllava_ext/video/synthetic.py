"""Synthetic test videos: deterministic H.264 clips written with PyAV (libx264), what
the demo answers about when it is given no video, and what the tests and benchmarks
measure on."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

__all__ = ["write_synthetic_video"]


def write_synthetic_video(
    path: str | os.PathLike,
    *,
    width: int = 640,
    height: int = 360,
    seconds: float = 3.0,
    fps: int = 30,
    gop: int | None = None,
    variant: int = 0,
) -> str:
    """A deterministic H.264 (libx264, yuv420p) clip of a square moving over a
    colour gradient that shifts with time; every frame differs. Another ``variant``
    gives other colours and another path of the square."""
    import av

    num = int(round(seconds * fps))
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if gop is not None:
            stream.codec_context.gop_size = gop
        side = max(4, min(width, height) // 4)
        for i in range(num):
            frame = np.empty((height, width, 3), dtype=np.uint8)
            frame[..., 0] = (xx * 255 // max(1, width - 1) + 3 * i + 37 * variant) % 256
            frame[..., 1] = (yy * 255 // max(1, height - 1) + 5 * i + 71 * variant) % 256
            frame[..., 2] = (128 + 2 * i + 53 * variant) % 256
            x0 = int((width - side) * i / max(1, num - 1))
            y0 = int((height - side) * (0.5 + 0.4 * np.sin(i / 7 + variant)))
            y0 = min(max(y0, 0), height - side)
            frame[y0 : y0 + side, x0 : x0 + side] = (250, 240, 20)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)
