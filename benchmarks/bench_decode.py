"""Decoding speed and memory: decord's ``get_batch`` against ``sfllava_ext.load_video``.

For H.264 at 360p, 720p and 1080p (10 s at 30 fps = 300 frames), each with libx264's
default long GOP (keyint 250) and with a 1 s GOP (keyint 30), both load the 50 frames
at the published indices (docs/method.md#sampling):

* ``decord``: ``decord.VideoReader(path).get_batch(indices)`` with the reader's
  defaults (its automatic decoder threads), then ``.asnumpy()``;
* ``load_video``: ``sfllava_ext.load_video(path, 50, threads=...)`` (backend ``auto``),
  with ``--threads`` decoder threads;
* ``pooled``: the same into reused memory, ``load_video(..., buffers=pool)`` then
  ``pool.release(clip)``;
* ``planes``: pooled, keeping the frames as decoded YUV 4:2:0 planes,
  ``load_video(..., buffers=pool, yuv420=True)`` (what ``SlowFastLlava`` does for
  paths on the CPU: ``normalize_frames`` converts their rows in cache).

The four run alternately, ``--repeats`` times each; the table gives medians (ms), the
speed-up of the medians and of the best runs, the CPU time per load (user + system, all
threads; unlike wall time it does not depend on what else the machine runs), whether
the frames are bit-identical (asserted; the planes through ``to_rgb()``) and the peak
resident memory one load adds (psutil, sampled every millisecond). ``--memory`` also loads the same
720p file ``--memory-loads`` times in this process and reports resident memory after
each load (it must stay within 50 MB of the first load).

The test videos (``sfllava_ext.video.synthetic.write_synthetic_video``: libx264,
yuv420p, deterministic) are written into ``--cache-dir`` on first use and reused
afterwards; they are never committed.

    python benchmarks/bench_decode.py                 # table + JSON
    python benchmarks/bench_decode.py --memory        # + the 200-load memory run
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from _common import (
    RESULTS,
    draw_series,
    figure,
    image,
    log_axis,
    machine_info,
    ms,
    outside_legend,
    plot_name,
    provenance,
    summary_row,
    table,
    warm_memory,
    write_json,
    x,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: the committed result in benchmarks/results/, which report.py renders
RESULT = "decode_cpu"
RESOLUTIONS = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
GOPS = {"long GOP (keyint 250, x264 default)": None, "1 s GOP (keyint 30)": 30}
NUM_FRAMES = 300
FPS = 30
WANTED = 50


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both sides")
    parser.add_argument("--repeats", type=int, default=7, help="timed loads per case and side")
    parser.add_argument("--resolutions", default="360p,720p,1080p")
    parser.add_argument(
        "--cache-dir",
        default=os.path.join(tempfile.gettempdir(), "sfllava_bench_videos"),
        help="where the generated test videos are kept between runs",
    )
    parser.add_argument("--out", default=str(RESULTS / f"{RESULT}.json"), help="the JSON to write")
    parser.add_argument("--memory", action="store_true", help="also run the repeated-load test")
    parser.add_argument("--memory-loads", type=int, default=200)
    parser.add_argument("--skip-timing", action="store_true", help="only the --memory run")
    return parser.parse_args()


def set_threads(threads: int) -> None:
    """Two-core fairness: torch and OpenMP get ``threads`` (our decoder gets them from
    ``load_video(..., threads=)``)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def machine() -> dict[str, Any]:
    """The shared machine description, plus what decoding depends on."""
    import av

    try:
        import decord

        decord_version = decord.__version__
    except ImportError:
        decord_version = None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        **machine_info(),
        "usable_cpus": usable,
        "av": av.__version__,
        "ffmpeg_libavcodec_pyav": ".".join(map(str, av.library_versions["libavcodec"])),
        "decord": decord_version,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def ensure_video(cache_dir: str, name: str, width: int, height: int, gop: int | None) -> str:
    """The test video's path in ``cache_dir``, written there on first use."""
    from sfllava_ext.video.synthetic import write_synthetic_video

    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, f"{name}_gop{gop or 250}_{NUM_FRAMES}f_synthetic.mp4")
    if not os.path.exists(path):
        print(f"writing {path} ...", flush=True)
        partial = path + ".partial.mp4"
        seconds = NUM_FRAMES / FPS
        write_synthetic_video(
            partial, width=width, height=height, seconds=seconds, fps=FPS, gop=gop
        )
        os.replace(partial, path)
    return path


class PeakRss:
    """Peak resident memory of this process while the block runs (1 ms sampling)."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.peak = 0
        self.before = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRss:
        self.before = self.process.memory_info().rss
        self.peak = self.before
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.001)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def added_mb(self) -> float:
        return (self.peak - self.before) / 2**20


def load_decord(path: str, indices: list[int]) -> np.ndarray:
    import decord

    reader = decord.VideoReader(path)
    frames = reader.get_batch(indices).asnumpy()
    del reader
    return frames


def load_ours(path: str, threads: int) -> tuple[np.ndarray, list[int]]:
    """``load_video`` with ``threads`` decoder threads: the frames and their indices."""
    from sfllava_ext.video import load_video

    clip = load_video(path, WANTED, threads=threads)
    return clip.frames.numpy(), clip.indices


def load_ours_pooled(path: str, pool: Any, threads: int) -> tuple[np.ndarray, list[int]]:
    """Into the pool's memory; the frames are valid until the next pooled load."""
    from sfllava_ext.video import load_video

    clip = load_video(path, WANTED, buffers=pool, threads=threads)
    pool.release(clip)
    return clip.frames.numpy(), clip.indices


def load_ours_planes(path: str, pool: Any, threads: int) -> tuple[Any, list[int]]:
    """YUV 4:2:0 planes into the pool's memory, valid until the next pooled load."""
    from sfllava_ext.video import load_video

    clip = load_video(path, WANTED, buffers=pool, yuv420=True, threads=threads)
    pool.release(clip)
    return clip.frames, clip.indices


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads."""
    t = os.times()
    return t.user + t.system


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall ms, CPU ms, result): CPU time does not depend on what else the machine runs."""
    cpu = cpu_seconds()
    start = time.perf_counter()
    result = fn()
    wall = (time.perf_counter() - start) * 1000.0
    return wall, (cpu_seconds() - cpu) * 1000.0, result


def bench_case(path: str, repeats: int, threads: int) -> dict[str, Any]:
    """One video: checks the four sides give the same frames, then times them in turn."""
    from sfllava_ext.video import FrameBuffers, sample_frame_indices

    indices = sample_frame_indices(NUM_FRAMES, WANTED)
    reference = load_decord(path, indices)  # warm-up and the frames to compare with
    ours, our_indices = load_ours(path, threads)
    identical = our_indices == indices and np.array_equal(ours, reference)
    pool = FrameBuffers()
    pooled, _ = load_ours_pooled(path, pool, threads)
    identical = identical and np.array_equal(pooled, reference)
    plane_pool = FrameBuffers()
    planes, _ = load_ours_planes(path, plane_pool, threads)
    identical = identical and np.array_equal(planes.to_rgb().numpy(), reference)
    del ours, pooled, planes
    decord_ms, ours_ms, pooled_ms, planes_ms, decord_cpu, ours_cpu = [], [], [], [], [], []
    for _ in range(repeats):
        wall, cpu, _ = timed(lambda: load_decord(path, indices))
        decord_ms.append(wall)
        decord_cpu.append(cpu)
        wall, cpu, _ = timed(lambda: load_ours(path, threads))
        ours_ms.append(wall)
        ours_cpu.append(cpu)
        pooled_ms.append(timed(lambda: load_ours_pooled(path, pool, threads))[0])
        planes_ms.append(timed(lambda: load_ours_planes(path, plane_pool, threads))[0])
    with PeakRss() as rss_decord:
        load_decord(path, indices)
    with PeakRss() as rss_ours:
        load_ours(path, threads)
    med = statistics.median
    return {
        "decord_ms": med(decord_ms),
        "load_video_ms": med(ours_ms),
        "speedup": med(decord_ms) / med(ours_ms),
        "decord_min_ms": min(decord_ms),
        "load_video_min_ms": min(ours_ms),
        "speedup_of_minimums": min(decord_ms) / min(ours_ms),
        "load_video_pooled_ms": med(pooled_ms),
        "speedup_pooled": med(decord_ms) / med(pooled_ms),
        "load_video_planes_ms": med(planes_ms),
        "speedup_planes": med(decord_ms) / med(planes_ms),
        "decord_cpu_ms": med(decord_cpu),
        "load_video_cpu_ms": med(ours_cpu),
        "identical": bool(identical),
        "peak_rss_added_mb_decord": round(rss_decord.added_mb, 1),
        "peak_rss_added_mb_load_video": round(rss_ours.added_mb, 1),
        "decord_runs_ms": [round(x, 1) for x in decord_ms],
        "load_video_runs_ms": [round(x, 1) for x in ours_ms],
        "load_video_pooled_runs_ms": [round(x, 1) for x in pooled_ms],
        "load_video_planes_runs_ms": [round(x, 1) for x in planes_ms],
    }


def memory_run(path: str, loads: int, threads: int) -> dict[str, Any]:
    """RSS after each of ``loads`` loads of the same file in this process."""
    import psutil
    from tqdm import tqdm

    from sfllava_ext.video import load_video

    process = psutil.Process()
    rss_mb = []
    for _ in tqdm(range(loads), desc="memory: repeated loads", unit="load"):
        clip = load_video(path, WANTED, threads=threads)
        del clip
        rss_mb.append(process.memory_info().rss / 2**20)
    first = rss_mb[0]
    return {
        "file": os.path.basename(path),
        "loads": loads,
        "rss_first_mb": round(first, 1),
        "rss_last_mb": round(rss_mb[-1], 1),
        "rss_max_mb": round(max(rss_mb), 1),
        "max_growth_over_first_mb": round(max(rss_mb) - first, 1),
        "flat_within_50mb": max(rss_mb) - first <= 50.0,
        "rss_every_20_loads_mb": [round(x, 1) for x in rss_mb[::20]],
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'video':<6} {'GOP':<9} {'decord ms':>9} {'ours ms':>8} {'speed-up':>8} "
        f"{'(of mins)':>9} {'pooled ms':>9} {'speed-up':>8} {'planes ms':>9} {'speed-up':>8} "
        f"{'CPU ms decord/ours':>19} "
        f"{'identical':>9} "
        f"{'peak RSS MB decord/ours':>24}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        cpu = f"{r['decord_cpu_ms']:.0f} / {r['load_video_cpu_ms']:.0f}"
        rss = f"{r['peak_rss_added_mb_decord']:.0f} / {r['peak_rss_added_mb_load_video']:.0f}"
        gop = "long" if r["gop"].startswith("long") else "1 s"
        print(
            f"{r['resolution']:<6} {gop:<9} {r['decord_ms']:>9.0f} {r['load_video_ms']:>8.0f} "
            f"{r['speedup']:>7.2f}x {r['speedup_of_minimums']:>8.2f}x "
            f"{r['load_video_pooled_ms']:>9.0f} {r['speedup_pooled']:>7.2f}x "
            f"{r['load_video_planes_ms']:>9.0f} {r['speedup_planes']:>7.2f}x {cpu:>19} "
            f"{'yes' if r['identical'] else 'NO':>9} {rss:>24}"
        )


# ------------------------------------------------------------------ presentation
# What report.py collects from this module: ``render``, its section of
# docs/benchmarks.md; ``plots``, the figures that section shows (docs/plots/); and
# ``summary``, its row of README.md's table.


def render(result: dict) -> list[str]:
    """The section of docs/benchmarks.md (markdown lines, heading included)."""
    out = ['<a id="decode"></a>', "## Video decoding: `load_video` against decord", ""]
    out += provenance(result)
    out += [
        f"50 frames at the published indices of 10 s, 30 fps H.264 clips; {result['threads']} "
        f"threads for both sides; medians of {result['repeats']} loads, the four sides "
        "alternating load by load, guest memory warmed first. *Pooled*: `load_video` into a "
        "`FrameBuffers` pool; *planes*: pooled with `yuv420=True` (what `SlowFastLlava` "
        "does for paths on the CPU). *Identical*: the four sides give the same frames "
        "(`to_rgb()` for the planes). CPU time is summed over threads; peak RSS is what "
        "one load adds.",
        "",
        *image(plot_name(result, "decode"), "load_video against decord per resolution"),
    ]
    rows = []
    for c in result["cases"]:
        gop = "long" if "250" in c["gop"] else "1 s"
        rows.append(
            [
                c["resolution"],
                gop,
                ms(c["decord_ms"]),
                f"{ms(c['load_video_ms'])} ({x(c['speedup'])})",
                f"{ms(c['load_video_pooled_ms'])} ({x(c['speedup_pooled'])})",
                f"{ms(c['load_video_planes_ms'])} ({x(c['speedup_planes'])})",
                f"{c['decord_cpu_ms']:.0f} / {c['load_video_cpu_ms']:.0f} ms",
                "yes" if c["identical"] else "**no**",
                f"{c['peak_rss_added_mb_decord']:.0f} / {c['peak_rss_added_mb_load_video']:.0f} MB",
            ]
        )
    header = ["video", "GOP", "decord", "load_video", "pooled", "planes", "CPU decord / ours"]
    out += table([*header, "identical", "peak RSS decord / ours"], rows)
    mem = result.get("memory")
    if mem:
        out += [
            f"Memory over repeated loads: {mem['loads']} loads of {mem['file']} in one process "
            f"took the resident memory from {mem['rss_first_mb']:.1f} MB after the first load "
            f"to {mem['rss_last_mb']:.1f} MB after the last ({mem['rss_max_mb']:.1f} MB at "
            f"most, +{mem['max_growth_over_first_mb']:.1f} MB).",
            "",
        ]
    return out


def plots(result: dict) -> dict[str, Figure]:
    """The figure of docs/benchmarks.md: decode time per resolution against decord, one
    panel per GOP length."""
    from matplotlib.ticker import NullLocator

    gops = list(dict.fromkeys(c["gop"] for c in result["cases"]))
    title = f"load_video against decord: 50 frames of 10 s H.264, {result['threads']} threads"
    fig, axes = figure(result, title, ncols=len(gops), sharey=True)
    for ax, gop in zip(axes, gops, strict=True):
        cases = sorted(
            (c for c in result["cases"] if c["gop"] == gop), key=lambda c: c["width"] * c["height"]
        )
        xs = [c["width"] * c["height"] / 1e6 for c in cases]
        series = [
            ("decord get_batch", [c["decord_ms"] for c in cases], "reference"),
            ("load_video", [c["load_video_ms"] for c in cases], "ours"),
            ("load_video, YUV planes, pooled", [c["load_video_planes_ms"] for c in cases], "ours"),
        ]
        draw_series(ax, xs, series)
        ax.set_xscale("log")
        ax.set_xticks(
            xs, [f"{c['resolution']}\n{mp:.2f} MP" for c, mp in zip(cases, xs, strict=True)]
        )
        ax.xaxis.set_minor_locator(NullLocator())
        ax.margins(x=0.1)
        log_axis(ax)
        ax.set_title(gop)
        ax.set_xlabel("frame size (pixels, log scale)")
    axes[0].set_ylabel("time for 50 frames (ms, median, log scale)")
    outside_legend(axes[-1])
    return {plot_name(result, "decode"): fig}


def summary(result: dict) -> list[list[str]]:
    """README.md's summary row: 720p with the long GOP, planes into reused memory."""
    c = next(c for c in result["cases"] if c["resolution"] == "720p" and "250" in c["gop"])
    what = "decode 50 frames of 720p (long GOP) as planes into reused memory"
    return [
        summary_row(
            result,
            what,
            ms(c["load_video_planes_ms"]),
            f"decord {ms(c['decord_ms'])}",
            x(c["speedup_planes"]),
        )
    ]


def main() -> None:
    args = parse_args()
    warm_memory()
    set_threads(args.threads)
    result: dict[str, Any] = {
        "benchmark": "decode 50 frames at the published indices, H.264 300 frames 30 fps",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "threads": args.threads,
        "repeats": args.repeats,
        "cases": [],
    }
    if not args.skip_timing:
        for res in args.resolutions.split(","):
            width, height = RESOLUTIONS[res]
            for gop_name, gop in GOPS.items():
                path = ensure_video(args.cache_dir, res, width, height, gop)
                row = {"resolution": res, "gop": gop_name, "width": width, "height": height}
                row.update(bench_case(path, args.repeats, args.threads))
                result["cases"].append(row)
                print(
                    f"{res} {gop_name}: decord {row['decord_ms']:.0f} ms, "
                    f"load_video {row['load_video_ms']:.0f} ms, identical {row['identical']}",
                    flush=True,
                )
        print()
        print_table(result["cases"])
    if args.memory:
        path = ensure_video(args.cache_dir, "720p", *RESOLUTIONS["720p"], None)
        result["memory"] = memory_run(path, args.memory_loads, args.threads)
        m = result["memory"]
        print(
            f"\nmemory: {m['loads']} loads of {m['file']}: RSS first {m['rss_first_mb']} MB, "
            f"last {m['rss_last_mb']} MB, max {m['rss_max_mb']} MB "
            f"(+{m['max_growth_over_first_mb']} MB; flat: {m['flat_within_50mb']})"
        )
    result["machine"]["load_average_at_end"] = (
        list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    )
    if result["cases"] or args.memory:
        if args.skip_timing and os.path.exists(args.out):
            with open(args.out) as f:
                previous = json.load(f)
            previous["memory"] = result.get("memory")
            result = previous
        print(f"wrote {write_json(args.out, result)}")
    if any(not r["identical"] for r in result.get("cases", [])):
        raise SystemExit("frames differ between decord and load_video")


if __name__ == "__main__":
    main()
