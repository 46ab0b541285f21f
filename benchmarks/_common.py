"""Shared helpers of the benchmarks: timing, the memory-bandwidth floor, the machine.

The floor of a memory-bound op is the time to move its bytes at the machine's
copy bandwidth: ``(bytes read + bytes written) / copy_bandwidth()``, where the
bandwidth itself counts the bytes read plus the bytes written by
``dst.copy_(src)`` on large preallocated buffers.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "copy_bandwidth",
    "machine_info",
    "time_cuda",
    "time_median",
    "warm_memory",
    "write_json",
]


def _sync(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_median(
    fn: Callable[[], Any],
    repeats: int = 5,
    warmup: int = 1,
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """Runs ``fn`` ``warmup`` times, then ``repeats`` timed times. Returns
    milliseconds: ``{"median_ms", "min_ms", "times_ms"}``. On the CPU each call is
    timed with the wall clock; on a GPU with CUDA events (:func:`time_cuda`)."""
    if device is not None and torch.device(device).type == "cuda":
        return time_cuda(fn, repeats=repeats, warmup=warmup)
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
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


def warm_memory(nbytes: int = 4 << 30) -> None:
    """Touches ``nbytes`` once and frees them. On a VM whose guest memory is
    backed lazily (this project's machines) the first touch of a page costs
    about 1.6 ms per MB, ten times a reused page: without this, whichever side
    of a comparison first grows the process pays it, and timings go bimodal."""
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
    "median_ms", "min_ms", "nbytes", "threads"}``. The bandwidth is that of the
    fastest of ``repeats`` copies: the machine's reachable bandwidth, which a
    neighbour's burst on a shared host does not lower (the median does)."""
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


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU model, logical cores, the threads torch uses, versions, GPU if any."""
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
    script = os.path.relpath(sys.argv[0], Path(__file__).resolve().parents[1])
    data = {
        "command": shlex.join(["python", script, *sys.argv[1:]]),
        "date": data.get("date") or time.strftime("%Y-%m-%d"),
        **data,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
