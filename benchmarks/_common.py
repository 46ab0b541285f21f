"""What several benchmarks share, in one place. Import what you need from here; no
benchmark imports another.

- Measuring: timing (wall clock, CUDA events) and the memory-bandwidth floor. The
  floor of a memory-bound op is the time to move its bytes at the machine's copy
  bandwidth: ``(bytes read + bytes written) / copy_bandwidth()``, where the bandwidth
  itself counts the bytes read plus the bytes written by ``dst.copy_(src)`` on large
  preallocated buffers.
- Recording: the machine, and each result's JSON file in benchmarks/results/ (written
  with the command and the date that produced it, read back by report.py).
- Presentation: the markdown helpers of the benchmarks' ``render`` (their section of
  docs/benchmarks.md) and ``summary`` (their rows of README.md's table), and the figures
  of their ``plots`` (docs/plots/*.png): one style, fixed so that a JSON file always
  gives the same PNG bytes.
- The published pipeline's pieces that several benchmarks time ours against, op for
  op: the per-frame PIL resize + CLIP processor and the torch-ops slow/fast pooling.

Nothing here imports torch, matplotlib (or another heavy module) until a function needs
it, so that importing a benchmark, as report.py does to render its result, stays cheap.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import statistics
import struct
import sys
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "FAST",
    "GRID",
    "PLOTS",
    "RESULTS",
    "ROOT",
    "SIZE",
    "SLOW",
    "SUMMARY_COLUMNS",
    "clip_processor",
    "copy_bandwidth",
    "draw_plots",
    "draw_series",
    "figure",
    "image",
    "log_axis",
    "outside_legend",
    "free_port",
    "healthy",
    "latency_summary",
    "load_result",
    "machine_info",
    "machine_line",
    "ms",
    "percentile",
    "plot_name",
    "png_bytes",
    "provenance",
    "published_normalize",
    "published_pooling",
    "short_machine",
    "summary_row",
    "table",
    "time_cuda",
    "times_figure",
    "time_median",
    "warm_memory",
    "write_json",
    "x",
]


# ---------------------------------------------------------------------------- measuring
# Timing, on the CPU and on a GPU, and the copy bandwidth that the floors divide by.


def _is_cuda(device: torch.device | str | None) -> bool:
    """Whether ``device`` names a CUDA device (``None``: the CPU)."""
    if device is None:
        return False
    import torch

    return torch.device(device).type == "cuda"


def time_median(
    fn: Callable[[], Any],
    repeats: int = 5,
    warmup: int = 1,
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """Runs ``fn`` ``warmup`` times, then ``repeats`` timed times. Returns
    milliseconds: ``{"median_ms", "min_ms", "times_ms"}``. On the CPU each call is
    timed with the wall clock; on a GPU with CUDA events (:func:`time_cuda`)."""
    if _is_cuda(device):
        return time_cuda(fn, repeats=repeats, warmup=warmup)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "times_ms": [round(t, 3) for t in times],
    }


def time_cuda(
    fn: Callable[[], Any], repeats: int = 5, warmup: int = 1, min_sample_ms: float = 2.0
) -> dict[str, Any]:
    """GPU time per call of ``fn``: CUDA events on the current stream around
    ``inner`` back-to-back calls, ``inner`` doubled until one sample takes at least
    ``min_sample_ms`` (at most 1024), so that neither launch latency nor the host's
    timer dominates a sub-millisecond kernel. Returns ``{"median_ms", "min_ms",
    "times_ms", "inner"}``, per call."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)

    def sample(inner: int) -> float:
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    inner = 1
    while sample(inner) < min_sample_ms and inner < 1024:
        inner *= 2
    times = [sample(inner) / inner for _ in range(repeats)]
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "times_ms": [round(t, 5) for t in times],
        "inner": inner,
    }


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency_summary(latencies: list[float], wall_s: float, unit: str) -> dict[str, float]:
    """Requests, p50 and p99 latency (``p50_<unit>``, in the latencies' ``unit``), the
    wall time and the throughput (requests/s) of one run of requests."""
    import statistics

    return {
        "requests": len(latencies),
        f"p50_{unit}": statistics.median(latencies),
        f"p99_{unit}": percentile(latencies, 0.99),
        "throughput_rps": len(latencies) / wall_s,
        "wall_s": wall_s,
    }


#: questions about the synthetic clip (a square moving), for the serving benchmarks
QUESTIONS = [
    "What is moving across the screen?",
    "Which colour does the square have?",
    "Where does the square go at the end?",
    "Does the camera move to the left?",
    "What happens before the square stops?",
]


def distinct_copy(src: str | Path, dst: str | Path, tag: int) -> str:
    """``src`` copied to ``dst`` with an MP4 ``free`` box of its own appended: other bytes
    (another SHA-256, so a server's session cache misses), the same frames."""
    import shutil

    shutil.copyfile(src, dst)
    payload = f"sfllava bench copy {tag}".encode()
    with open(dst, "ab") as f:
        f.write((8 + len(payload)).to_bytes(4, "big") + b"free" + payload)
    return str(dst)


def free_port() -> int:
    """A local port nothing listens on now (for the servers a benchmark starts)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(proc: Any, port: int, timeout_s: float, period_s: float = 0.5) -> bool:
    """Waits until the server ``proc`` started answers ``GET /health`` with 200 on
    ``port``: True; False when it exits first or ``timeout_s`` passes (the caller says
    why and stops it)."""
    import http.client

    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return True
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(period_s)
    return False


def warm_memory(nbytes: int = 4 << 30) -> None:
    """Touches ``nbytes`` once and frees them. On a VM whose guest memory is
    backed lazily (this project's machines) the first touch of a page costs
    about 1.6 ms per MB, ten times a reused page: without this, whichever side
    of a comparison first grows the process pays it, and timings go bimodal."""
    import torch

    buf = torch.ones(nbytes, dtype=torch.uint8)
    del buf


def copy_bandwidth(
    threads: int = 2,
    nbytes: int = 1 << 30,
    repeats: int = 9,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Copy bandwidth of ``dst.copy_(src)`` on two preallocated ``nbytes``
    buffers (pages touched beforehand) with ``threads`` threads, counting the
    bytes read plus the bytes written. Returns ``{"bytes_per_s", "gb_per_s",
    "median_ms", "min_ms", "nbytes", "threads", "device"}``. The bandwidth is that
    of the fastest of ``repeats`` copies: the machine's reachable bandwidth, which a
    neighbour's burst on a shared host does not lower (the median does)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        src = torch.ones(nbytes, dtype=torch.uint8, device=device)
        dst = torch.zeros(nbytes, dtype=torch.uint8, device=device)
        timing = time_median(partial(dst.copy_, src), repeats=repeats, warmup=1, device=device)
    finally:
        torch.set_num_threads(previous)
    bytes_per_s = 2 * nbytes / (timing["min_ms"] / 1e3)
    return {
        "bytes_per_s": bytes_per_s,
        "gb_per_s": bytes_per_s / 1e9,
        "median_ms": timing["median_ms"],
        "min_ms": timing["min_ms"],
        "nbytes": nbytes,
        "threads": threads,
        "device": str(device),
    }


# ---------------------------------------------------------------------------- recording
# The machine a result ran on, and its JSON file (with the command and the date).

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU model, logical cores, the threads torch uses, versions, GPU if any."""
    import torch

    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = torch.cuda.get_device_name()
        info["gpu_capability"] = f"{props.major}.{props.minor}"
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["cuda"] = torch.version.cuda
    return info


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Writes ``data`` (indented, keys in insertion order), with the command that
    produced it and the date, and returns the path."""
    script = os.path.relpath(sys.argv[0], ROOT)
    data = {
        "command": shlex.join(["python", script, *sys.argv[1:]]),
        "date": data.get("date") or time.strftime("%Y-%m-%d"),
        **data,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def load_result(name: str, results: Path = RESULTS) -> dict[str, Any] | None:
    """The committed result ``results/<name>.json``, or None where there is none."""
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


# ------------------------------------------------------------------------- presentation
# What the benchmarks' ``render`` and ``summary`` share (report.py joins their lines).

#: the columns of README.md's summary table, one row per :func:`summary_row`
SUMMARY_COLUMNS = ["what", "machine", "command", "ours", "reference", "ratio"]


def ms(value: float) -> str:
    """``value`` milliseconds as ``"12.3 ms"``."""
    return f"{value:.1f} ms"


def x(value: float) -> str:
    """A ratio as ``"1.23x"``."""
    return f"{value:.2f}x"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table's lines, then an empty line."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def machine_line(result: dict[str, Any]) -> str:
    """The machine of a result in words: GPU (CPU, cores), torch, its threads."""
    m = result["machine"]
    cpu = f"{m['cpu']}, {m['cores']} cores"
    if m.get("gpu"):
        cpu = f"{m['gpu']} ({cpu})"
    threads = f"{m['torch_threads']} torch thread" + "s" * (m["torch_threads"] != 1)
    return f"{cpu}, torch {m['torch']}, {threads}"


def short_machine(result: dict[str, Any]) -> str:
    """The machine in a few words, for the summary table."""
    m = result["machine"]
    where = m.get("gpu") or m["cpu"]
    threads = f"{m['torch_threads']} thread" + "s" * (m["torch_threads"] != 1)
    return f"{where}, {m['cores']} cores, {threads}, torch {m['torch']}"


def provenance(result: dict[str, Any]) -> list[str]:
    """A section's first lines: the machine, the date and the command that produced it."""
    date = str(result.get("date", ""))[:10]
    return [f"Machine: {machine_line(result)}. Date: {date}.", "", f"    {result['command']}", ""]


def summary_row(
    result: dict[str, Any], what: str, ours: str, reference: str, ratio: str
) -> list[str]:
    """One row of the summary table (:data:`SUMMARY_COLUMNS`): the machine and the
    command come from ``result``."""
    return [what, short_machine(result), f"`{result['command']}`", ours, reference, ratio]


# ------------------------------------------------------------------------------ plotting
# The figures of the benchmarks' ``plots(result) -> {name: Figure}``, which report.py
# draws with :func:`draw_plots` into docs/plots/<name>.png and ``render`` shows with
# :func:`image`. Everything that decides a pixel is fixed here, and the PNG is encoded
# here too, so that one JSON file gives the same bytes wherever the pinned matplotlib
# runs (the test extra pins it; python_tests/project/test_benchmark_report.py checks).

#: where the figures go (docs/benchmarks.md and README.md show them)
PLOTS = ROOT / "docs" / "plots"

#: the rcParams, on top of matplotlib's defaults (never a user's matplotlibrc or style):
#: the DejaVu Sans that matplotlib ships (a system copy may be another version), one size
#: and resolution for every figure, antialiasing and hinting spelled out
PLOT_STYLE: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "figure.figsize": (8.0, 4.5),
    "figure.dpi": 120.0,
    "figure.facecolor": "white",
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.alpha": 0.35,
    "grid.linewidth": 0.6,
    "legend.fontsize": 8.0,
    "lines.linewidth": 1.6,
    "lines.markersize": 5.0,
    "lines.antialiased": True,
    "patch.antialiased": True,
    "text.antialiased": True,
    "text.hinting": "force_autohint",
    "text.hinting_factor": 8,
    "axes.formatter.use_locale": False,
}

#: how each role of a series looks: references warm with squares, ours cool with
#: circles, floors and bounds black and dashed; colours in the order of the series
ROLES: dict[str, tuple[list[str], dict[str, Any]]] = {
    "reference": (["tab:orange", "tab:red", "tab:brown"], {"marker": "s"}),
    "ours": (["tab:blue", "tab:green", "tab:purple", "tab:cyan"], {"marker": "o"}),
    "bound": (["black", "dimgray"], {"linestyle": "--", "marker": None}),
}


def plot_name(result: dict[str, Any], stem: str) -> str:
    """The file name (no suffix) of a figure of ``result``: ``<stem>_cpu``, or
    ``<stem>_<gpu>`` for a GPU run, so that each card's run has its own."""
    gpu = result["machine"].get("gpu")
    return f"{stem}_{re.sub(r'[^a-z0-9]+', '_', gpu.lower()).strip('_') if gpu else 'cpu'}"


def image(name: str, alt: str) -> list[str]:
    """The markdown lines of docs/benchmarks.md that show the figure ``name``."""
    return [f"![{alt}](plots/{name}.png)", ""]


def figure(
    result: dict[str, Any], title: str, ncols: int = 1, sharey: bool = False
) -> tuple[Figure, list[Axes]]:
    """A figure of the fixed size with ``ncols`` axes side by side: ``title`` on top, and
    under the axes a caption naming the machine, the date and the command of ``result``.
    Draw inside :func:`draw_plots` (the style applies while the figure is built)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    fig = Figure(layout=ConstrainedLayoutEngine(rect=(0, 0.045, 1, 0.955)))
    FigureCanvasAgg(fig)  # no pyplot: no global figure list, no backend to choose
    axes = list(fig.subplots(1, ncols, sharey=sharey, squeeze=False)[0])
    fig.suptitle(title, fontsize=11, fontweight="bold")
    date = str(result.get("date", ""))[:10]
    caption = f"{machine_line(result)}; {date}; {result['command']}"
    fig.text(0.5, 0.008, caption, ha="center", va="bottom", fontsize=7.5, color="dimgray")
    return fig, axes


def draw_series(ax: Axes, xs: list[float], series: list[tuple[str, list[float], str]]) -> None:
    """One line per ``(label, values, role)`` over ``xs``, styled by its role
    (:data:`ROLES`: reference, ours or bound), each labelled for the legend."""
    used = dict.fromkeys(ROLES, 0)
    for label, values, role in series:
        colours, style = ROLES[role]
        colour = colours[used[role] % len(colours)]
        used[role] += 1
        ax.plot(xs, values, label=label, color=colour, **style)


def log_axis(ax: Axes, which: str = "y") -> None:
    """A log scale on ``ax``'s ``which`` axis ("x" or "y") with ticks at 1, 2 and 5 times
    the powers of ten, written as plain numbers (``20``, not ``2 x 10^1``)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    getattr(ax, f"set_{which}scale")("log")
    axis = getattr(ax, f"{which}axis")
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_locator(NullLocator())


def outside_legend(ax: Axes) -> None:
    """``ax``'s legend to the right of it, where it hides no point."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def times_figure(
    result: dict[str, Any],
    title: str,
    xlabel: str,
    sizes: list[tuple[float, str]],
    series: list[tuple[str, list[float], str]],
) -> Figure:
    """An op's median time against its references and its floor over input sizes: one
    log-log axis, a tick per ``(size, label)`` of ``sizes``, :func:`draw_series` over them."""
    from matplotlib.ticker import NullLocator

    fig, (ax,) = figure(result, title)
    xs = [size for size, _ in sizes]
    draw_series(ax, xs, series)
    ax.set_xscale("log")
    ax.set_xticks(xs, [label for _, label in sizes])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.margins(x=0.08)
    log_axis(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("time (ms, median, log scale)")
    outside_legend(ax)
    return fig


@contextmanager
def _plot_style() -> Iterator[None]:
    """matplotlib's defaults plus :data:`PLOT_STYLE`, for the ``with`` block only;
    refuses a DejaVu Sans that is not matplotlib's own copy."""
    try:
        import matplotlib as mpl
        from matplotlib import font_manager
    except ImportError as exc:  # the test extra pins it: the bytes depend on the version
        raise SystemExit(f"plots need matplotlib, pinned in the test extra ({exc})") from exc

    with mpl.rc_context():
        mpl.rcdefaults()
        mpl.rcParams.update(PLOT_STYLE)
        family = PLOT_STYLE["font.family"]
        font = Path(font_manager.findfont(family, fallback_to_default=False))
        if Path(mpl.get_data_path()) not in font.parents:
            raise RuntimeError(f"plots: {family} is {font}, not matplotlib's own copy")
        yield


def png_bytes(fig: Figure) -> bytes:
    """``fig`` drawn by Agg as an 8-bit RGB PNG holding the pixels and nothing else (no
    software, date or resolution chunk). Encoded here, not by ``savefig``: savefig hands
    the pixels to Pillow, whose bundled zlib (zlib-ng in recent wheels) and chunks change
    with its releases, and Pillow is not pinned. Here the bytes depend on the pixels and
    Python's own zlib at level 9; every row uses PNG filter 1 (each byte less the same
    channel of the pixel before it), which suits flat-coloured charts."""
    import numpy as np

    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]  # the figure is opaque
    height, width, _ = rgb.shape
    rows = np.ascontiguousarray(rgb).reshape(height, width * 3)
    filtered = rows.copy()
    filtered[:, 3:] -= rows[:, :-3]  # uint8: modulo 256, as the filter wants
    raw = np.hstack([np.ones((height, 1), np.uint8), filtered]).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(raw, 9)),
            chunk(b"IEND", b""),
        ]
    )


def draw_plots(
    plots: Callable[[dict[str, Any]], dict[str, Figure]], result: dict[str, Any]
) -> dict[str, bytes]:
    """A benchmark's ``plots(result)`` drawn in the fixed style: ``{"<name>.png": PNG
    bytes}`` (what report.py writes to, and checks against, :data:`PLOTS`)."""
    with _plot_style():
        return {f"{name}.png": png_bytes(fig) for name, fig in plots(result).items()}


# --------------------------------------------------------------- the published pipeline
# Its pieces that several benchmarks time ours against, op for op: the per-frame PIL
# resize + CLIP processor (bench_normalize_frames, bench_pipeline) and the torch-ops
# slow/fast pooling (bench_slowfast_pool, bench_pipeline).

#: the published frame size (height, width)
SIZE = (336, 336)
#: the published aggregation slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4 on a
#: 24 x 24 patch grid
SLOW, GRID, FAST = 10, 24, (4, 4)


def clip_processor() -> Any:
    """The CLIP image processor (PIL) at the published size."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    return CLIPImageProcessorPil(
        size={"shortest_edge": SIZE[0]}, crop_size={"height": SIZE[0], "width": SIZE[1]}
    )


def published_normalize(frames: np.ndarray, processor: Any) -> torch.Tensor:
    """The published normalisation: per frame PIL ``Image.resize(SIZE, BICUBIC)`` and the
    CLIP ``processor``, then ``torch.stack(...).half()``; returns (T, 3, 336, 336)."""
    import torch
    from PIL import Image

    pixels = []
    for frame in frames:
        img = Image.fromarray(frame).resize(SIZE[::-1], Image.BICUBIC)
        pixels.append(processor.preprocess(img, return_tensors="pt")["pixel_values"][0])
    return torch.stack(pixels).half()


def published_pooling(features: torch.Tensor) -> torch.Tensor:
    """The published prepare_slowfast, op for op (rearrange, MaxPool1d,
    AdaptiveAvgPool2d, cat); returns the slow tokens, then the fast ones."""
    import torch
    import torch.nn as nn
    from einops import rearrange

    t, n, d = features.shape
    idx = torch.linspace(0, t, SLOW + 1).to(torch.int32).tolist()
    idx.pop()
    slow = rearrange(features[idx], "t n d -> t d n")
    slow = nn.MaxPool1d(kernel_size=2, stride=2)(slow)
    slow = rearrange(slow, "t d n -> t n d", t=SLOW).reshape(-1, d)
    fast = rearrange(features, "t (n0 n1) d -> d t n0 n1", n0=GRID, n1=GRID)
    fast = nn.AdaptiveAvgPool2d(FAST)(fast)
    fast = rearrange(fast, "d t n0 n1 -> (t n0 n1) d")
    return torch.cat((slow, fast), dim=0)
