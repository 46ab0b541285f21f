"""Benchmark of normalize_frames: 50 uint8 frames at 360p, 720p and 1080p to
normalised (50, 3, 336, 336) float16 pixels (docs/method.md#preprocessing, the published
``resize`` mode), every path in one run.

CPU paths (``torch.set_num_threads(2)`` by default):
  published  per frame: PIL ``Image.resize((336, 336), BICUBIC)`` + the CLIP
             image processor, then ``torch.stack(...).half()``;
  torch      ``y = F.interpolate(frames.permute(0, 3, 1, 2), size=(336, 336),
             mode="bicubic", antialias=True)`` then
             ``((y.float() / 255 - mean) / std).half()``;
  ours       ``sfllava_ext.normalize_frames(frames)``, and with ``out=``;
  floor      (input bytes + output bytes) / copy bandwidth, the bandwidth of
             ``dst.copy_(src)`` on 1 GiB buffers counting bytes read + written.
From decoded YUV 4:2:0 planes (the frames are those planes' RGB), CPU only:
  two steps  ``yuv420_to_rgb`` per frame into an RGB buffer, then ``normalize_frames``
             with ``out=`` (the same work as two separate ops);
  fused      ``normalize_frames(Yuv420Frames(...), out=)``: rows converted in cache;
  floor      (plane bytes + output bytes) / copy bandwidth.
With ``--device cuda`` the frames live on the GPU (the published path is CPU
only and is skipped); "ours_from_host" uploads CPU frames as uint8 through
pinned memory inside the call.

    python benchmarks/bench_normalize_frames.py [--device cpu|cuda] [--threads 2]

Prints a table and writes benchmarks/results/normalize_frames_<device>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from _common import (
    RESULTS,
    SIZE,
    clip_processor,
    copy_bandwidth,
    image,
    machine_info,
    ms,
    plot_name,
    provenance,
    published_normalize,
    summary_row,
    table,
    time_median,
    times_figure,
    write_json,
    x,
)

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

    from sfllava_ext.video.frames import Yuv420Frames

#: the committed result in benchmarks/results/, which report.py renders
RESULT = "normalize_frames_cpu"
RESOLUTIONS = {"360p": (360, 640), "720p": (720, 1280), "1080p": (1080, 1920)}


def make_frames(t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Gradients plus noise, uint8 (T, H, W, 3): the resamplers' cost does not
    depend on content, but the parity check below should see every level."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    yy = torch.arange(h).view(1, h, 1, 1).expand(1, h, w, 1)
    xx = torch.arange(w).view(1, 1, w, 1).expand(1, h, w, 1)
    base = torch.cat([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], dim=3)
    noise = torch.randint(-60, 60, (t, h, w, 3), generator=gen)
    return (base + noise).clamp(0, 255).to(torch.uint8)


def make_planes(t: int, h: int, w: int, seed: int = 0) -> Yuv420Frames:
    """YUV 4:2:0 planes of gradients plus noise, BT.709 limited range (a decoder's
    usual output for HD video)."""
    import torch

    from sfllava_ext.video.frames import Yuv420Frames
    from sfllava_ext.video.pyav.swscale import swscale_coeffs

    gen = torch.Generator().manual_seed(seed)

    def plane(rows: int, cols: int, lo: int, hi: int) -> torch.Tensor:
        ramp = torch.arange(cols).view(1, 1, cols) * (hi - lo) // cols + lo
        rows_ramp = torch.arange(rows).view(1, rows, 1) * 30 // rows
        noise = torch.randint(-40, 40, (t, rows, cols), generator=gen)
        return (ramp + rows_ramp + noise).clamp(0, 255).to(torch.uint8)

    ch, cw = (h + 1) // 2, (w + 1) // 2
    return Yuv420Frames(
        plane(h, w, 16, 235), plane(ch, cw, 40, 220), plane(ch, cw, 60, 200), swscale_coeffs(1, 1)
    )


def yuv_two_steps(planes: Yuv420Frames, rgb: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``yuv420_to_rgb`` per frame into ``rgb``, then ``normalize_frames`` into ``out``."""
    import sfllava_ext
    from sfllava_ext.ops import yuv420_to_rgb

    for t in range(len(planes)):
        yuv420_to_rgb(planes.y[t], planes.u[t], planes.v[t], planes.coeffs, out=rgb[t])
    return sfllava_ext.normalize_frames(rgb, out=out)


def torch_path(frames: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Plain torch: bicubic antialiased ``interpolate``, then the normalisation."""
    import torch.nn.functional as F

    y = F.interpolate(frames.permute(0, 3, 1, 2), size=SIZE, mode="bicubic", antialias=True)
    return ((y.float() / 255 - mean) / std).half()


# ------------------------------------------------------------------ presentation
# What report.py collects from this module: ``render``, its section of
# docs/benchmarks.md; ``plots``, the figures that section shows (docs/plots/); and
# ``summary``, its row of README.md's table.


def render(result: dict) -> list[str]:
    """The section of docs/benchmarks.md (markdown lines, heading included)."""
    bw = result["copy_bandwidth"]["gb_per_s"]
    out = [
        '<a id="normalize-frames"></a>',
        "## Frame normalisation: `normalize_frames`",
        "",
        *provenance(result),
        f"{result['frames']} uint8 frames to ({result['frames']}, 3, 336, 336) "
        f"{result['dtype']}; medians. "
        "*Published*: PIL `Image.resize` + the CLIP processor per frame. *Plain torch*: "
        "`F.interpolate(bicubic, antialias=True)` then the normalisation (not Pillow's "
        "arithmetic). *Floor*: bytes read and written at the copy bandwidth measured in the "
        f"same run ({bw:.1f} GB/s, read + write). Ratios use the `out=` call.",
        "",
        *image(plot_name(result, "normalize_frames"), "normalize_frames time against the floor"),
    ]
    rows = []
    for name, r in result["results"].items():
        best = min(r["ours"]["median_ms"], r["ours_out"]["median_ms"])
        published = r.get("published", {}).get("median_ms")  # CPU only
        rows.append(
            [
                name,
                ms(published) if published else "-",
                ms(r["torch"]["median_ms"]),
                ms(r["ours"]["median_ms"]),
                ms(r["ours_out"]["median_ms"]),
                ms(r["floor_ms"]),
                x(published / best) if published else "-",
                x(r["torch"]["median_ms"] / best),
                x(best / r["floor_ms"]),
                f"{r['max_abs_diff_vs_published_fp16']:g}" if published else "-",
            ]
        )
    out += table(
        [
            "input",
            "published",
            "plain torch",
            "ours",
            "ours `out=`",
            "floor",
            "vs published",
            "vs torch",
            "ours / floor",
            "max diff vs published",
        ],
        rows,
    )
    out += [
        "From YUV 4:2:0 planes of the same frames: *two steps* is `yuv420_to_rgb` per frame "
        "then `normalize_frames(out=)`; *fused* is `normalize_frames(Yuv420Frames, out=)`, "
        "whose bytes the run checks against the two steps'.",
        "",
    ]
    rows = []
    for name, r in result["results"].items():
        if "yuv_fused" not in r:
            continue
        rows.append(
            [
                name,
                ms(r["yuv_two_steps"]["median_ms"]),
                ms(r["yuv_fused"]["median_ms"]),
                ms(r["floor_yuv_ms"]),
                x(r["yuv_two_steps"]["median_ms"] / r["yuv_fused"]["median_ms"]),
                x(r["yuv_fused"]["median_ms"] / r["floor_yuv_ms"]),
                "yes" if r["yuv_fused_equals_two_steps"] else "**no**",
            ]
        )
    header = ["input", "two steps", "fused", "floor", "two steps / fused", "fused / floor"]
    out += table([*header, "identical"], rows)
    return out


def plots(result: dict) -> dict[str, Figure]:
    """The figure of docs/benchmarks.md: each path's time against the floor over the
    input's size (RGB frames; the published path where the run has it, on the CPU)."""
    cases = result["results"]
    sizes = []
    for name, r in cases.items():
        mb = math.prod(r["input"]) / 1e6
        sizes.append((mb, f"{name}\n{mb:.0f} MB"))
    series = []
    if all("published" in r for r in cases.values()):
        published = _medians(cases, "published")
        series.append(("published: PIL + CLIP processor", published, "reference"))
    series += [
        ("plain torch", _medians(cases, "torch"), "reference"),
        ("ours", _medians(cases, "ours"), "ours"),
        ("ours, out=", _medians(cases, "ours_out"), "ours"),
        ("floor (bytes at copy bandwidth)", [r["floor_ms"] for r in cases.values()], "bound"),
    ]
    frames, dtype = result["frames"], result["dtype"].replace("float", "fp")
    title = f"normalize_frames: {frames} uint8 frames to 336 x 336 {dtype}"
    fig = times_figure(result, title, "input frames (uint8 bytes)", sizes, series)
    return {plot_name(result, "normalize_frames"): fig}


def _medians(cases: dict, side: str) -> list[float]:
    """The median milliseconds of ``side`` in every case, in order."""
    return [r[side]["median_ms"] for r in cases.values()]


def summary(result: dict) -> list[list[str]]:
    """README.md's summary row: 720p, ours (the faster call) against the published."""
    r = result["results"]["720p"]
    best = min(r["ours"]["median_ms"], r["ours_out"]["median_ms"])
    what = "normalise 50 frames, 720p to 336 x 336 fp16"
    return [
        summary_row(
            result,
            what,
            ms(best),
            f"PIL + CLIP processor {ms(r['published']['median_ms'])}",
            x(r["published"]["median_ms"] / best),
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--published-repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    import torch

    import sfllava_ext
    from sfllava_ext.ops import CLIP_MEAN, CLIP_STD

    device = torch.device(args.device)
    torch.set_num_threads(args.threads)

    bandwidth = copy_bandwidth(threads=args.threads, device=device)
    processor = clip_processor() if device.type == "cpu" else None
    mean = torch.tensor(CLIP_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=device).view(1, 3, 1, 1)
    results = {}
    for name, (h, w) in RESOLUTIONS.items():
        planes = make_planes(args.frames, h, w)
        host = planes.to_rgb()
        frames = host.to(device)
        out = torch.empty(args.frames, 3, *SIZE, dtype=torch.float16, device=device)
        row: dict = {"input": [args.frames, h, w, 3]}
        timed = {
            "torch": partial(torch_path, frames, mean, std),
            "ours": partial(sfllava_ext.normalize_frames, frames),
            "ours_out": partial(sfllava_ext.normalize_frames, frames, out=out),
        }
        if device.type == "cuda":
            timed["ours_from_host"] = partial(sfllava_ext.normalize_frames, host, device=device)
        else:
            rgb = torch.empty_like(host)
            timed["yuv_two_steps"] = partial(yuv_two_steps, planes, rgb, out)
            timed["yuv_fused"] = partial(sfllava_ext.normalize_frames, planes, out=out)
        for key, fn in timed.items():
            row[key] = time_median(fn, repeats=args.repeats, warmup=2, device=device)
        if processor is not None:
            row["published"] = time_median(
                partial(published_normalize, host.numpy(), processor),
                repeats=args.published_repeats,
                warmup=1,
            )
        nbytes = host.numel() + out.numel() * out.element_size()
        row["floor_ms"] = nbytes / bandwidth["bytes_per_s"] * 1e3
        row["bytes_moved"] = nbytes
        # parity of what was timed: ours vs the published path and vs plain torch
        ours = sfllava_ext.normalize_frames(frames).float().cpu()
        if processor is not None:
            ref = published_normalize(host[:5].numpy(), processor).float()
            row["max_abs_diff_vs_published_fp16"] = (ours[:5] - ref).abs().max().item()
        row["max_abs_diff_vs_torch_fp16"] = (
            (ours - torch_path(frames, mean, std).float().cpu()).abs().max().item()
        )
        best = min(row["ours"]["median_ms"], row["ours_out"]["median_ms"])
        ratios = {
            "torch_over_ours": row["torch"]["median_ms"] / best,
            "ours_over_floor": best / row["floor_ms"],
            "floor_fraction_of_copy_bandwidth": row["floor_ms"] / best,
        }
        if "published" in row:
            ratios["published_over_ours"] = row["published"]["median_ms"] / best
        if "yuv_fused" in row:
            plane_bytes = sum(p.numel() for p in (planes.y, planes.u, planes.v))
            row["floor_yuv_ms"] = (plane_bytes + out.numel() * out.element_size()) / (
                bandwidth["bytes_per_s"] / 1e3
            )
            fused = sfllava_ext.normalize_frames(planes)
            row["yuv_fused_equals_two_steps"] = bool(torch.equal(fused, ours.half()))
            fused_ms = row["yuv_fused"]["median_ms"]
            ratios["yuv_two_steps_over_fused"] = row["yuv_two_steps"]["median_ms"] / fused_ms
            ratios["yuv_fused_over_rgb_ours"] = fused_ms / row["ours_out"]["median_ms"]
            ratios["yuv_fused_over_floor"] = fused_ms / row["floor_yuv_ms"]
        row["ratios"] = ratios
        results[name] = row

    header = (
        f"{'':7} {'published':>10} {'torch':>9} {'ours':>9} {'ours out=':>10} {'floor':>8}"
        f" {'pub/ours':>9} {'torch/ours':>11} {'ours/floor':>11}"
    )
    print(
        f"normalize_frames, {args.frames} frames -> {tuple(out.shape)} fp16, "
        f"{args.threads} threads, {device}; medians in ms"
    )
    print(f"copy bandwidth {bandwidth['gb_per_s']:.1f} GB/s (read + written)")
    print(header)
    for name, row in results.items():
        pub = row.get("published", {}).get("median_ms", float("nan"))
        r = row["ratios"]
        print(
            f"{name:7} {pub:10.1f} {row['torch']['median_ms']:9.1f} {row['ours']['median_ms']:9.1f}"
            f" {row['ours_out']['median_ms']:10.1f} {row['floor_ms']:8.2f}"
            f" {r.get('published_over_ours', float('nan')):8.1f}x {r['torch_over_ours']:10.1f}x"
            f" {r['ours_over_floor']:10.1f}x"
        )
    if device.type == "cpu":
        print("\nfrom YUV 4:2:0 planes (the same frames): medians in ms")
        print(
            f"{'':7} {'two steps':>10} {'fused':>9} {'floor':>8} {'2 steps/fused':>14} "
            f"{'fused/floor':>12} {'equal':>6}"
        )
        for name, row in results.items():
            r = row["ratios"]
            print(
                f"{name:7} {row['yuv_two_steps']['median_ms']:10.1f}"
                f" {row['yuv_fused']['median_ms']:9.1f} {row['floor_yuv_ms']:8.2f}"
                f" {r['yuv_two_steps_over_fused']:13.2f}x {r['yuv_fused_over_floor']:11.1f}x"
                f" {str(row['yuv_fused_equals_two_steps']):>6}"
            )
    targets = {}
    if device.type == "cuda":
        targets["at_least_50pct_of_copy_bandwidth"] = all(
            row["ratios"]["floor_fraction_of_copy_bandwidth"] >= 0.5 for row in results.values()
        )
        print("targets:", targets)
    output = args.output or RESULTS / f"normalize_frames_{device.type}.json"
    path = write_json(
        output,
        {
            "benchmark": "normalize_frames",
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "threads": args.threads,
            "frames": args.frames,
            "output": [args.frames, 3, *SIZE],
            "dtype": "float16",
            "copy_bandwidth": bandwidth,
            "results": results,
            "targets": targets,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
