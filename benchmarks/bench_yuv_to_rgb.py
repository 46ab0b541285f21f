"""Benchmark of the video loader's YUV 4:2:0 -> RGB24 conversion: 50 decoded frames
(360p, 720p, 1080p) into one (50, H, W, 3) uint8 clip buffer, every path in one run,
single-threaded (it runs on the decode workers).

  swscale  what decord does (and the loader for frames the native path refuses): PyAV
           ``VideoReformatter.reformat(frame, format="rgb24")`` into a new frame,
           then a copy into the clip buffer;
  torch    the same fixed-point arithmetic in plain torch ops (int32 tensors);
  ours     ``sfllava::yuv420_to_rgb`` straight into the clip buffer;
  floor    (planes read + RGB written) / copy bandwidth (1 thread, read + write).
Every path is checked to give swscale's bytes first.

    python benchmarks/bench_yuv_to_rgb.py [--out PATH]

Prints a table and writes benchmarks/results/yuv_to_rgb_cpu.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import datetime as dt
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from _common import (
    RESULTS,
    copy_bandwidth,
    image,
    machine_info,
    ms,
    plot_name,
    provenance,
    summary_row,
    table,
    time_median,
    times_figure,
    warm_memory,
    write_json,
    x,
)

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

#: the committed result in benchmarks/results/, which report.py renders
RESULT = "yuv_to_rgb_cpu"
RESOLUTIONS = {"360p": (360, 640), "720p": (720, 1280), "1080p": (1080, 1920)}
FRAMES = 50


def make_frames(h: int, w: int) -> list:
    """Decoder-like yuv420p frames (padded line sizes) of random bytes."""
    import av

    rng = np.random.default_rng(h)
    frames = []
    for _ in range(FRAMES):
        frame = av.VideoFrame(w, h, "yuv420p")
        for plane in frame.planes:
            plane.update(rng.integers(0, 256, plane.buffer_size, dtype=np.uint8).tobytes())
        frames.append(frame)
    return frames


def torch_reference(frame, coeffs, out: torch.Tensor) -> None:
    """The arithmetic of csrc/common/yuv_to_rgb.h in plain torch ops."""
    import torch

    from sfllava_ext.video.pyav.swscale import frame_planes

    cy, y_offset, cub, cug, cvg, cvr = coeffs
    y, u, v = (p.to(torch.int32) for p in frame_planes(frame))
    h, w = y.shape
    u = u.repeat_interleave(2, 0).repeat_interleave(2, 1)[:h, :w]
    v = v.repeat_interleave(2, 0).repeat_interleave(2, 1)[:h, :w]
    luma = torch.div((y * 8 - y_offset) * cy, 65536, rounding_mode="floor")
    uu, vv = u * 8 - 1024, v * 8 - 1024
    red = luma + torch.div(vv * cvr, 65536, rounding_mode="floor")
    green = (
        luma
        + torch.div(uu * cug, 65536, rounding_mode="floor")
        + torch.div(vv * cvg, 65536, rounding_mode="floor")
    )
    blue = luma + torch.div(uu * cub, 65536, rounding_mode="floor")
    out.copy_(torch.stack([red, green, blue], -1).clamp_(0, 255))


def run_swscale(reformatter, frames, clip: np.ndarray) -> None:
    """swscale's conversion of each frame into a new frame, then the copy into ``clip``."""
    for i, f in enumerate(frames):
        clip[i] = reformatter.reformat(
            f, width=f.width, height=f.height, format="rgb24", threads=1
        ).to_ndarray()


def run_torch(coeffs, frames, clip: torch.Tensor) -> None:
    """:func:`torch_reference` of each frame into ``clip``."""
    for i, f in enumerate(frames):
        torch_reference(f, coeffs, clip[i])


def run_ours(coeffs, frames, clip: torch.Tensor) -> None:
    """``yuv420_to_rgb`` of each frame straight into ``clip``."""
    from sfllava_ext.ops import yuv420_to_rgb
    from sfllava_ext.video.pyav.swscale import frame_planes

    for i, f in enumerate(frames):
        yuv420_to_rgb(*frame_planes(f), coeffs, out=clip[i])


# ------------------------------------------------------------------ presentation
# What report.py collects from this module: ``render``, its section of
# docs/benchmarks.md; ``plots``, the figures that section shows (docs/plots/); and
# ``summary``, its row of README.md's table.


def render(result: dict) -> list[str]:
    """The section of docs/benchmarks.md (markdown lines, heading included)."""
    bw = result["copy_bandwidth"]["gb_per_s"]
    out = [
        '<a id="yuv-to-rgb"></a>',
        "## The decoder's colour conversion: `yuv420_to_rgb`",
        "",
        *provenance(result),
        "50 decoded frames into the clip's buffer, one thread, bytes checked against "
        "swscale first. *swscale + copy*: PyAV's reformat into a new frame, then the copy "
        "(what decord does). *Plain torch*: the same fixed-point arithmetic in torch ops. "
        f"*Floor*: planes read and RGB written at {bw:.1f} GB/s (one thread). Medians.",
        "",
        *image(plot_name(result, "yuv_to_rgb"), "yuv420_to_rgb time against the floor"),
    ]
    rows = []
    for name, r in result["results"].items():
        t = r["timings"]
        rows.append(
            [
                name,
                ms(t["swscale"]["median_ms"]),
                ms(t["torch"]["median_ms"]),
                ms(t["ours"]["median_ms"]),
                ms(r["floor_ms"]),
                x(r["speedup_vs_swscale"]),
                x(r["speedup_vs_torch"]),
                x(r["ours_over_floor"]),
                "yes" if r["identical"] else "**no**",
            ]
        )
    header = ["input", "swscale + copy", "plain torch", "ours", "floor", "vs swscale"]
    out += table([*header, "vs torch", "ours / floor", "identical"], rows)
    return out


def plots(result: dict) -> dict[str, Figure]:
    """The figure of docs/benchmarks.md: each path's time against the floor over the
    frame size (bytes of the YUV 4:2:0 planes)."""
    cases = list(result["results"].items())
    sizes = []
    for name, r in cases:
        mb = r["frames"] * r["height"] * r["width"] * 1.5 / 1e6
        sizes.append((mb, f"{name}\n{mb:.0f} MB"))

    def medians(side: str) -> list[float]:
        return [r["timings"][side]["median_ms"] for _, r in cases]

    series = [
        ("swscale + copy (what decord does)", medians("swscale"), "reference"),
        ("plain torch", medians("torch"), "reference"),
        ("ours", medians("ours"), "ours"),
        ("floor (bytes at copy bandwidth)", [r["floor_ms"] for _, r in cases], "bound"),
    ]
    frames = cases[0][1]["frames"]
    title = f"yuv420_to_rgb: {frames} decoded frames into the clip's buffer"
    fig = times_figure(result, title, "YUV 4:2:0 planes in", sizes, series)
    return {plot_name(result, "yuv_to_rgb"): fig}


def summary(result: dict) -> list[list[str]]:
    """README.md's summary row: 720p, ours against swscale + copy."""
    r = result["results"]["720p"]
    t = r["timings"]
    what = "YUV 4:2:0 to RGB, 50 frames of 720p"
    reference = f"swscale + copy {ms(t['swscale']['median_ms'])}"
    return [
        summary_row(result, what, ms(t["ours"]["median_ms"]), reference, x(r["speedup_vs_swscale"]))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=RESULTS / f"{RESULT}.json", help="the JSON to write")
    args = parser.parse_args()
    import torch
    from av.video.reformatter import VideoReformatter

    import sfllava_ext
    from sfllava_ext.video.pyav.swscale import native_coeffs

    torch.set_num_threads(1)
    warm_memory()
    bandwidth = copy_bandwidth(threads=1, nbytes=256 << 20)
    coeffs = native_coeffs(2, 1)
    if coeffs is None:
        raise SystemExit("the native converter does not match this swscale: nothing to measure")
    reformatter = VideoReformatter()
    results = {}
    print(f"copy bandwidth (1 thread, read + write): {bandwidth['gb_per_s']:.1f} GB/s")
    header = f"{'input':>6} {'swscale':>9} {'torch':>9} {'ours':>8} {'floor':>8} "
    print(header + f"{'vs swscale':>11} {'vs torch':>9} {'ours/floor':>11}")
    for name, (h, w) in RESOLUTIONS.items():
        frames = make_frames(h, w)
        clip = torch.empty((FRAMES, h, w, 3), dtype=torch.uint8)
        clip_np = clip.numpy()

        swscale = partial(run_swscale, reformatter, frames, clip_np)
        torch_path = partial(run_torch, coeffs, frames, clip)
        ours = partial(run_ours, coeffs, frames, clip)
        swscale()
        expected = clip_np.copy()
        for path in (torch_path, ours):
            clip.zero_()
            path()
            assert np.array_equal(clip_np, expected), f"{path.func.__name__} differs from swscale"
        timings = {
            "swscale": time_median(swscale, repeats=7),
            "torch": time_median(torch_path, repeats=3),
            "ours": time_median(ours, repeats=7),
        }
        moved = FRAMES * (h * w * 3 // 2 + h * w * 3)
        floor_ms = moved / bandwidth["bytes_per_s"] * 1e3
        med = {k: t["median_ms"] for k, t in timings.items()}
        results[name] = {
            "frames": FRAMES,
            "height": h,
            "width": w,
            "timings": timings,
            "floor_ms": floor_ms,
            "speedup_vs_swscale": med["swscale"] / med["ours"],
            "speedup_vs_torch": med["torch"] / med["ours"],
            "ours_over_floor": med["ours"] / floor_ms,
            "identical": True,
        }
        r = results[name]
        print(
            f"{name:>6} {med['swscale']:>7.1f}ms {med['torch']:>7.1f}ms {med['ours']:>6.1f}ms "
            f"{floor_ms:>6.1f}ms {r['speedup_vs_swscale']:>10.2f}x {r['speedup_vs_torch']:>8.1f}x "
            f"{r['ours_over_floor']:>10.2f}x"
        )
    out = write_json(
        args.out,
        {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "extension": sfllava_ext.build_info(),
            "copy_bandwidth": bandwidth,
            "results": results,
        },
    )
    print("wrote", out)


if __name__ == "__main__":
    main()
