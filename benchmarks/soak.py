"""A memory soak: the resident memory (RSS) of a process over many operations, its slope
per 100 operations after a warm-up, against a target of 1 MB per 100 operations.

    python benchmarks/soak.py                          # 1,000 / 1,000 / 1,000 / 200
    python benchmarks/soak.py --scale 0.1 --only follow_up service
    python benchmarks/soak.py --plant-leak-kb 100      # every operation keeps 100 KB
    python benchmarks/soak.py --also-planted follow_up embed

Four workloads, each in a fresh process of its own (so that one workload's memory does
not blur another's), with cwd outside the checkout. The demo model (float32, random
weights), 8 frames per video, 160x120 1 s 10 fps H.264 clips (``write_synthetic_video``),
4 new tokens, greedy, ``--threads`` torch threads (1):

- **encode_answer** (1,000): ``SlowFastLlava.encode(path)`` then
  ``SlowFastLlava.answer(path, question)``, cycling over 4 clips, a new question text
  each time;
- **follow_up** (1,000): one ``VideoSession``, 1,000 ``session.answer`` questions, each
  text new;
- **service** (1,000): ``sfllava serve --demo --cache-gb 0.02`` in its own process on a
  free 127.0.0.1 port, one ``httpx`` client sending chat requests one at a time: every
  4th about a video the server has never seen (a distinct copy of one of 3 clips, an MP4
  ``free`` box of its own appended; sent as a ``data:`` URL or a ``file://`` URL in
  turn), every 20th about a video 12 fresh ones back (evicted by then: decoded and
  encoded again), the rest follow-ups about one of the 3 newest. The session cache
  (about 7 MB a session) holds 2 to 3 sessions: it evicts all run long. The RSS
  measured is the server's (``/proc/<pid>/status``);
- **embed** (200): one ``embed_videos`` call over 200 distinct clips (variants of the
  synthetic clip) into a new folder, with its default decode workers; an operation is a
  video through the model. The sample after ``n`` videos is taken on the model's thread
  before it encodes the next one, once the writer has recorded all ``n`` (no
  activations or session file in flight); the decode workers' RSS is recorded beside it.

RSS is sampled every ``count // --samples`` operations (50 samples a run), and at the
start. Before each sample the measured process runs ``gc.collect()`` and glibc's
``malloc_trim(0)`` (in the server, through a route that the launcher below adds), so
that memory the allocator holds free, which a later allocation reuses, does not read as
growth; the RSS before that (``raw``) is kept too, with its own slope. Memory still
referenced is untouched by either: a leak shows in both. The first ``--warmup`` (20%)
of the operations is the warm-up (caches filling, lazily loaded code, the allocator's
pools): its samples are drawn but not fitted. The slope is the least-squares line of
RSS over operations on the remaining samples, in MB (10^6 bytes) per 100 operations;
a run leaks when it is at least 1 MB per 100 operations.

``--plant-leak-kb KB`` makes every operation of the measured process keep KB kilobytes
more (a bytearray with every byte written, appended to a list); for the service, in the
server, through an ASGI wrapper that this script's launcher (``--serve-wrapper``) puts
around the app before calling ``sfllava``'s own CLI (the package has no such hook). The
same launcher starts the server without a plant. A planted run is expected to be
flagged; the exit status is 1 when a run without a plant leaks or a planted one is not
flagged. ``--also-planted [W ...]`` runs the named workloads (all without a name) again
with 100 KB planted, into the same JSON's ``planted``. Writes
benchmarks/results/soak.json (with a plant and no ``--json``: a file in the temp
folder).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import ctypes.util
import gc
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _common import (
    QUESTIONS,
    RESULTS,
    ROLES,
    ROOT,
    distinct_copy,
    figure,
    free_port,
    healthy,
    image,
    machine_info,
    outside_legend,
    plot_name,
    provenance,
    table,
    write_json,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: the committed result in benchmarks/results/, which report.py renders
RESULT = "soak"
WORKLOADS = ("encode_answer", "follow_up", "service", "embed")
#: operations per workload (the issue's numbers)
COUNTS = {"encode_answer": 1000, "follow_up": 1000, "service": 1000, "embed": 200}
#: the target: RSS grows by less than this many MB per 100 operations after the warm-up
TARGET_MB_PER_100 = 1.0
#: the share of a run's operations that is warm-up, not fitted
WARMUP = 0.2
#: samples per run (one every count // SAMPLES operations)
SAMPLES = 50
#: each workload's colour in the figure (the same with and without a plant)
COLOURS = {
    "encode_answer": "tab:blue",
    "follow_up": "tab:green",
    "service": "tab:purple",
    "embed": "tab:orange",
}
#: the plant of ``--also-planted``, in KB per operation
PLANTED_KB = 100
MB = 1e6
NUM_FRAMES = 8
MAX_TOKENS = 4
CLIP = dict(width=160, height=120, seconds=1.0, fps=10)
CLIP_TEXT = "160x120 1 s 10 fps H.264"
#: the server's session cache: about 7 MB a session (float32 demo, 8 frames) holds 2-3
CACHE_GB = 0.02
#: the route the launcher adds to the server: gc.collect() and malloc_trim(0), then 200
TRIM_PATH = "/_soak/settle"


# ------------------------------------------------------------------------------ the fit


def fit(ops: list[float], values: list[float], warmup_ops: float = 0) -> dict[str, float]:
    """The least-squares line of ``values`` over ``ops`` on the samples at or past
    ``warmup_ops``: ``{"slope", "intercept", "points"}`` (slope in values per op).

    Raises:
        ValueError: fewer than two samples past the warm-up, or all at one op.
    """
    points = [(x, y) for x, y in zip(ops, values, strict=True) if x >= warmup_ops]
    n = len(points)
    if n < 2:
        raise ValueError(f"fit: {n} samples past the warm-up, need at least 2")
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        raise ValueError("fit: every sample is at the same operation")
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return {"slope": slope, "intercept": my - slope * mx, "points": n}


def slope_per_100(ops: list[float], rss_mb: list[float], warmup_ops: float) -> float:
    """RSS growth in MB per 100 operations past the warm-up (least squares)."""
    return 100 * fit(ops, rss_mb, warmup_ops)["slope"]


def leaks(slope_mb_per_100: float) -> bool:
    """Whether a slope misses the target (at least 1 MB per 100 operations)."""
    return slope_mb_per_100 >= TARGET_MB_PER_100


# ---------------------------------------------------------------------------- measuring
# In the measured process: its RSS, settling the allocator before a sample, the plant.


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS, RssAnon, RssFile and RssShmem of ``pid`` in bytes (/proc/<pid>/status)."""
    wanted = ("VmRSS", "RssAnon", "RssFile", "RssShmem")
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            out[key] = int(value.split()[0]) * 1024
    return out


_LIBC: Any = None


def settle() -> None:
    """Collects the garbage cycles and gives glibc's free heap pages back to the
    system (``malloc_trim(0)``; nothing where the C library is not glibc)."""
    global _LIBC
    gc.collect()
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


#: what the planted leak keeps, for the life of the process
_KEPT: list[bytearray] = []


def plant(kb: int) -> None:
    """Keeps ``kb`` kilobytes more, every byte written (so that every page is resident)."""
    if kb:
        _KEPT.append(bytearray(b"\xa5") * (kb * 1024))


class Recorder:
    """The samples of one run: after each ``every``-th operation (and at 0), the RSS
    before and after :func:`settle`, of this process or of ``pid``; ``settle_fn``
    settles the measured process (this one by default)."""

    def __init__(self, name: str, count: int, every: int, pid: int | None = None, settle_fn=None):
        self.name, self.count, self.every = name, count, every
        self.pid = pid or os.getpid()
        self.settle = settle_fn or settle
        self.samples: dict[str, list[float]] = {
            k: [] for k in ("ops", "t_s", "rss_mb", "raw_mb", "anon_mb", "workers_mb")
        }
        self.start = time.perf_counter()
        self.lock = threading.Lock()

    def maybe(self, done: int) -> None:
        """A sample after operation number ``done`` when it is a sampling point."""
        if done == 0 or done % self.every == 0 or done == self.count:
            self.sample(done)

    def sample(self, done: int) -> None:
        with self.lock:
            raw = proc_status(self.pid)["VmRSS"]
            self.settle()
            status = proc_status(self.pid)
            s = self.samples
            s["ops"].append(done)
            s["t_s"].append(round(time.perf_counter() - self.start, 3))
            s["rss_mb"].append(round(status["VmRSS"] / MB, 3))
            s["raw_mb"].append(round(raw / MB, 3))
            s["anon_mb"].append(round(status["RssAnon"] / MB, 3))
            s["workers_mb"].append(round(_children_rss(self.pid) / MB, 3))
        if done % (self.every * 5) == 0 or done == self.count:
            print(
                f"soak {self.name}: {done}/{self.count}, RSS {status['VmRSS'] / MB:.1f} MB "
                f"({raw / MB:.1f} before settling), {time.perf_counter() - self.start:.0f} s",
                file=sys.stderr,
                flush=True,
            )


def _children_rss(pid: int) -> int:
    """The RSS of ``pid``'s child processes, all together (embed's decode workers)."""
    import psutil

    total = 0
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
    return total


# ---------------------------------------------------------------------------- workloads
# Each runs in a child process (``--child NAME``), in a temp folder that is its cwd.


def _demo(threads: int):
    import torch

    from sfllava_ext import SlowFastLlava
    from sfllava_ext.models.demo import demo_model, demo_tokenizer

    torch.set_num_threads(threads)
    tokenizer = demo_tokenizer()
    return SlowFastLlava(demo_model(tokenizer), tokenizer, num_frames=NUM_FRAMES)


def _clip(path: Path, variant: int = 0) -> str:
    from sfllava_ext.video.synthetic import write_synthetic_video

    return write_synthetic_video(path, variant=variant, **CLIP)


def question(i: int) -> str:
    """Question number ``i``: one of five, with its number, so that every text is new."""
    return f"{QUESTIONS[i % len(QUESTIONS)]} (question {i})"


def run_encode_answer(rec: Recorder, plant_kb: int, threads: int, work: Path) -> dict:
    sf = _demo(threads)
    clips = [_clip(work / f"clip{v}.mp4", v) for v in range(4)]
    rec.start = time.perf_counter()
    rec.maybe(0)
    for i in range(rec.count):
        path = clips[i % len(clips)]
        sf.encode(path)
        sf.answer(path, question(i), max_new_tokens=MAX_TOKENS)
        plant(plant_kb)
        rec.maybe(i + 1)
    return {"clips": len(clips)}


def run_follow_up(rec: Recorder, plant_kb: int, threads: int, work: Path) -> dict:
    sf = _demo(threads)
    session = sf.session(_clip(work / "clip.mp4"))
    rec.start = time.perf_counter()
    rec.maybe(0)
    for i in range(rec.count):
        session.answer(question(i), max_new_tokens=MAX_TOKENS)
        plant(plant_kb)
        rec.maybe(i + 1)
    return {"held_bytes": session.held_bytes}


def run_embed(rec: Recorder, plant_kb: int, threads: int, work: Path) -> dict:
    """An operation is a video through the model. A sample after ``n`` of them is taken
    on the model's thread as it is about to encode the next one, once the writer has
    recorded all ``n``: not while the model's activations or a session file being
    written are in memory, which would read as noise of tens of MB."""
    from sfllava_ext.embed import embed_videos

    sf = _demo(threads)
    videos = work / "videos"
    videos.mkdir()
    for i in range(rec.count):
        _clip(videos / f"v{i:04d}.mp4", variant=i)
    encoded, recorded = [0], [0]
    failed: list[dict] = []
    written = threading.Condition()
    encode = sf.encode

    def counted(clip: Any) -> Any:  # on the pipeline's model thread
        n = encoded[0]
        if n and (n % rec.every == 0):
            with written:
                written.wait_for(lambda: recorded[0] >= n, timeout=60)
            rec.maybe(n)
        encoded[0] += 1
        tokens = encode(clip)
        plant(plant_kb)
        return tokens

    def on_video(kind: str, record: dict) -> None:  # on the pipeline's writer thread
        if kind == "failed":
            failed.append(record)
        with written:
            recorded[0] += 1
            written.notify_all()

    sf.encode = counted
    rec.start = time.perf_counter()
    rec.maybe(0)
    summary = embed_videos(str(videos), work / "out", sf, progress=False, on_video=on_video)
    if failed or summary.done != rec.count:
        raise RuntimeError(f"embed: {summary.line()}; failures {failed[:3]}")
    return {"done": summary.done}


def service_plan(count: int) -> list[tuple[str, int]]:
    """Request ``i``'s kind and the number of the fresh video it is about: ``fresh``
    every 4th, ``evicted`` (12 fresh videos back) every 20th, else ``follow_up`` about
    one of the 3 newest."""
    plan, fresh = [], -1
    for i in range(count):
        if i % 4 == 0:
            fresh += 1
            plan.append(("fresh", fresh))
        elif i % 20 == 10 and fresh >= 12:
            plan.append(("evicted", fresh - 12))
        else:
            plan.append(("follow_up", max(0, fresh - i % 3)))
    return plan


def start_server(media: Path, plant_kb: int, threads: int) -> tuple[subprocess.Popen, int]:
    """``sfllava serve --demo`` through this script's launcher, once it answers."""
    port = free_port()
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve-wrapper", str(plant_kb)]
    argv += ["serve", "--demo", "--port", str(port), "--media-dir", str(media)]
    argv += ["--dtype", "float32", "--num-frames", str(NUM_FRAMES)]
    argv += ["--cache-gb", str(CACHE_GB), "--log-level", "warning"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen(argv, env=env, cwd=media)
    if not healthy(proc, port, 300):
        proc.kill()
        raise RuntimeError("soak: the server did not start")
    return proc, port


def run_service(rec: Recorder, plant_kb: int, threads: int, work: Path) -> dict:
    import httpx

    media = work / "media"
    media.mkdir()
    bases = [Path(_clip(media / f"base{v}.mp4", v)) for v in range(3)]
    plan = service_plan(rec.count)
    urls: list[str] = []
    kinds = dict.fromkeys(("fresh", "evicted", "follow_up"), 0)
    proc, port = start_server(media, plant_kb, threads)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300)

    def settle_server() -> None:
        http.post(TRIM_PATH).raise_for_status()

    rec.pid, rec.settle = proc.pid, settle_server
    try:
        rec.start = time.perf_counter()
        rec.maybe(0)
        for i, (kind, number) in enumerate(plan):
            if kind == "fresh":
                path = Path(distinct_copy(bases[number % 3], media / f"v{number}.mp4", number))
                if number % 2:
                    data = base64.b64encode(path.read_bytes()).decode()
                    urls.append(f"data:video/mp4;base64,{data}")
                    path.unlink()
                else:
                    urls.append(f"file://{path}")
            kinds[kind] += 1
            parts = [
                {"type": "video_url", "video_url": {"url": urls[number]}},
                {"type": "text", "text": question(i)},
            ]
            body = {"messages": [{"role": "user", "content": parts}], "max_tokens": MAX_TOKENS}
            reply = http.post("/v1/chat/completions", json=body)
            if reply.status_code != 200:
                raise RuntimeError(f"soak service: request {i} ({kind}): {reply.text[:500]}")
            rec.maybe(i + 1)
        health = http.get("/health").json()
    finally:
        http.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {"requests": kinds, "cache_gb": CACHE_GB, "health": health}


RUNNERS = {
    "encode_answer": run_encode_answer,
    "follow_up": run_follow_up,
    "service": run_service,
    "embed": run_embed,
}


def child_main(args: argparse.Namespace) -> None:
    """One workload in this process; its samples and details go to ``--child-out``."""
    rec = Recorder(args.child, args.count, args.every)
    started = time.perf_counter()
    details = RUNNERS[args.child](rec, args.plant_leak_kb, args.threads, Path.cwd())
    loop_s = time.perf_counter() - rec.start
    out = {
        "loop_s": round(loop_s, 2),
        "total_s": round(time.perf_counter() - started, 2),
        "samples": rec.samples,
        "details": details,
    }
    Path(args.child_out).write_text(json.dumps(out))


# ------------------------------------------------------------------ the server launcher
# ``soak.py --serve-wrapper KB <sfllava arguments>``: sfllava's CLI, with its ASGI app
# wrapped in :func:`wrap_app` (the settling route, and the plant when KB > 0).


def wrap_app(app: Any, plant_kb: int) -> Any:
    """``app`` with :data:`TRIM_PATH` answered here (after :func:`settle`), and with
    ``plant_kb`` KB kept per chat request when ``plant_kb`` > 0."""

    async def wrapped(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == TRIM_PATH:
            settle()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["type"] == "http" and scope["path"] == "/v1/chat/completions":
            plant(plant_kb)
        await app(scope, receive, send)

    return wrapped


def serve_wrapper(argv: list[str]) -> int:
    import uvicorn

    plant_kb, cli_args = int(argv[0]), argv[1:]
    original = uvicorn.Config.__init__

    def init(self: Any, app: Any, *args: Any, **kwargs: Any) -> None:
        original(self, wrap_app(app, plant_kb), *args, **kwargs)

    uvicorn.Config.__init__ = init
    from sfllava_ext.cli import main as sfllava

    return sfllava(cli_args)


# ------------------------------------------------------------------------- the parent


def package_root(given: str | None) -> str:
    """The folder whose ``sfllava_ext`` the children import (PYTHONPATH): ``given``,
    else the one this interpreter would import, else the checkout."""
    if given:
        return os.path.abspath(given)
    spec = importlib.util.find_spec("sfllava_ext")
    if spec is not None and spec.origin:
        return os.path.dirname(os.path.dirname(spec.origin))
    return str(ROOT)


def run_workload(name: str, count: int, plant_kb: int, args: argparse.Namespace) -> dict:
    """One workload in a fresh process, in a temp folder of its own: its summary."""
    every = max(1, count // args.samples)
    warmup_ops = round(count * args.warmup)
    env = {**os.environ, "PYTHONPATH": package_root(args.package_root)}
    env["OMP_NUM_THREADS"] = str(args.threads)
    if name == "embed":
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as sfllava embed sets it
    plant_text = f", {plant_kb} KB planted per operation" if plant_kb else ""
    print(f"soak {name}: {count} operations{plant_text}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix=f"sfllava_soak_{name}_") as work:
        out = Path(work) / "result.json"
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", name]
        argv += ["--count", str(count), "--every", str(every), "--threads", str(args.threads)]
        argv += ["--plant-leak-kb", str(plant_kb), "--child-out", str(out)]
        started = time.perf_counter()
        subprocess.run(argv, cwd=work, env=env, check=True)
        wall_s = time.perf_counter() - started
        child = json.loads(out.read_text())
    return summarize(name, count, every, warmup_ops, plant_kb, wall_s, child)


def summarize(
    name: str, count: int, every: int, warmup_ops: int, plant_kb: int, wall_s: float, child: dict
) -> dict:
    s = child["samples"]
    slope = slope_per_100(s["ops"], s["rss_mb"], warmup_ops)
    after = [r for o, r in zip(s["ops"], s["rss_mb"], strict=True) if o >= warmup_ops]
    run = {
        "operations": count,
        "sample_every": every,
        "warmup_operations": warmup_ops,
        "plant_leak_kb": plant_kb,
        "wall_s": round(wall_s, 1),
        "loop_s": child["loop_s"],
        "ops_per_s": round(count / child["loop_s"], 2),
        "slope_mb_per_100_ops": round(slope, 4),
        "raw_slope_mb_per_100_ops": round(slope_per_100(s["ops"], s["raw_mb"], warmup_ops), 4),
        "anon_slope_mb_per_100_ops": round(slope_per_100(s["ops"], s["anon_mb"], warmup_ops), 4),
        "rss_after_warmup_mb": after[0],
        "rss_end_mb": after[-1],
        "rss_max_after_warmup_mb": max(after),
        "rss_min_after_warmup_mb": min(after),
        "leak": leaks(slope),
        "details": child["details"],
        "samples": s,
    }
    if name == "embed":
        run["workers_slope_mb_per_100_ops"] = round(
            slope_per_100(s["ops"], s["workers_mb"], warmup_ops), 4
        )
    return run


def print_table(runs: dict[str, dict], title: str) -> None:
    print(title)
    print(
        f"{'workload':<14} {'ops':>5} {'loop s':>7} {'RSS MB':>15} "
        f"{'slope':>8} {'raw':>8} {'verdict':>8}   (slopes: MB per 100 operations)"
    )
    for name, r in runs.items():
        rss = f"{r['rss_after_warmup_mb']:.1f}->{r['rss_end_mb']:.1f}"
        print(
            f"{name:<14} {r['operations']:>5} {r['loop_s']:>7.0f} {rss:>15} "
            f"{r['slope_mb_per_100_ops']:>8.3f} {r['raw_slope_mb_per_100_ops']:>8.3f} "
            f"{'LEAK' if r['leak'] else 'ok':>8}"
        )


def expected(runs: dict[str, dict]) -> bool:
    """Every run without a plant under the target, every planted one flagged."""
    return all(r["leak"] == bool(r["plant_leak_kb"]) for r in runs.values())


# ------------------------------------------------------------------ presentation
# What report.py collects from this module: ``render``, its section of
# docs/benchmarks.md, and ``plots``, the figure that section shows.


def _rows(runs: dict[str, dict]) -> list[list[str]]:
    rows = []
    for name, r in runs.items():
        extra = ""
        if "workers_slope_mb_per_100_ops" in r:
            extra = f" (decode workers {r['workers_slope_mb_per_100_ops']:+.2f})"
        rows.append(
            [
                name.replace("_", "-"),
                f"{r['operations']:,}",
                f"{r['loop_s'] / 60:.1f} min",
                f"{r['rss_after_warmup_mb']:.1f} -> {r['rss_end_mb']:.1f}",
                f"**{r['slope_mb_per_100_ops']:+.3f}**{extra}",
                f"{r['raw_slope_mb_per_100_ops']:+.3f}",
                "leak" if r["leak"] else "under target",
            ]
        )
    return rows


HEADER = [
    "workload",
    "operations",
    "time",
    "RSS (MB), after warm-up -> end",
    "slope (MB / 100 ops)",
    "before settling",
    "verdict",
]


def render(result: dict) -> list[str]:
    """The section of docs/benchmarks.md (markdown lines, heading included)."""
    runs = result["runs"]
    out = [
        '<a id="soak"></a>',
        "## Memory soak: RSS over many operations",
        "",
        *provenance(result),
        f"Each workload in a fresh process, with {result['threads']} torch "
        f"thread{'s' * (result['threads'] != 1)}: the demo model (float32), {NUM_FRAMES} "
        f"frames of {CLIP_TEXT} clips, {MAX_TOKENS} new tokens. *encode-answer*: "
        "`SlowFastLlava.encode` then `.answer` on 4 clips in turn; *follow-up*: one "
        "`VideoSession`, a new question each time; *service*: `sfllava serve --demo "
        f"--cache-gb {CACHE_GB}` and one client, every 4th request a video never seen "
        "(`data:` and `file://` URLs in turn), every 20th one evicted long ago, the rest "
        "follow-ups (the RSS is the server's); *embed*: one `embed_videos` call over "
        "distinct clips, the decode workers' RSS beside it. RSS is sampled "
        f"{result['samples_per_run']} times a run after `gc.collect()` and "
        "`malloc_trim(0)` in the measured process (*before settling*: the RSS just "
        f"before those); the first {result['warmup_fraction']:.0%} of the operations is "
        "warm-up. The slope is the least-squares line over the rest. Target: under "
        f"{TARGET_MB_PER_100:g} MB per 100 operations "
        f"({'met by every workload' if result['all_under_target'] else 'NOT met'}).",
        "",
        *image(plot_name(result, "soak"), "RSS over operations per workload, with a planted leak"),
    ]
    out += table(HEADER, _rows(runs))
    planted = result.get("planted")
    if planted:
        caught = "flagged in every run" if planted["all_caught"] else "NOT flagged in every run"
        out += [
            f"The same script with `--plant-leak-kb {planted['plant_leak_kb']}` (every "
            f"operation of the measured process keeps {planted['plant_leak_kb']} KB, "
            f"{planted['plant_leak_kb'] * 1024 * 100 / MB:.2f} MB per 100 operations; the "
            "service's in the "
            f"server, through the script's launcher): {caught}.",
            "",
        ]
        out += table(HEADER, _rows(planted["runs"]))
    return out


def plots(result: dict) -> dict[str, Figure]:
    """RSS over operations, relative to the first sample after the warm-up, per
    workload, with the fitted line: without a plant, and with one."""
    sets = [("without a plant", result["runs"], "ours")]
    if result.get("planted"):
        kb = result["planted"]["plant_leak_kb"]
        sets.append((f"{kb} KB planted per operation", result["planted"]["runs"], "reference"))
    title = "Memory soak: RSS growth over operations, after the warm-up (dotted: the fit)"
    fig, axes = figure(result, title, ncols=len(sets))
    for ax, (label, runs, role) in zip(axes, sets, strict=True):
        style = ROLES[role][1]  # the marker: circles without a plant, squares with one
        for name, r in runs.items():
            s, w = r["samples"], r["warmup_operations"]
            pts = [(o, v) for o, v in zip(s["ops"], s["rss_mb"], strict=True) if o >= w]
            base = pts[0][1]
            colour = COLOURS[name]
            slope = r["slope_mb_per_100_ops"]
            ax.plot(
                [o for o, _ in pts],
                [v - base for _, v in pts],
                color=colour,
                label=f"{name.replace('_', '-')}: {slope:+.2f} MB/100",
                markersize=2.5,
                **style,
            )
            line = fit(s["ops"], s["rss_mb"], w)
            xs = [pts[0][0], pts[-1][0]]
            ax.plot(
                xs,
                [line["intercept"] + line["slope"] * x - base for x in xs],
                color=colour,
                linestyle=":",
                linewidth=1.2,
            )
        end = max(r["operations"] for r in runs.values())
        start = min(r["warmup_operations"] for r in runs.values())
        target = TARGET_MB_PER_100 / 100
        ax.plot(
            [start, end],
            [0, target * (end - start)],
            color="black",
            linestyle="--",
            label=f"target: {TARGET_MB_PER_100:g} MB/100 ops",
        )
        ax.set_title(label)
        ax.set_xlabel("operations")
        ax.legend(loc="upper left", fontsize=7)
    axes[0].set_ylabel("RSS above the first sample after warm-up (MB)")
    if len(axes) == 1:
        outside_legend(axes[0])
    return {plot_name(result, "soak"): fig}


# ------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", choices=WORKLOADS, help="these workloads only")
    parser.add_argument("--scale", type=float, default=1.0, help="every count times this")
    for name in WORKLOADS:
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=int, default=None, help=f"default {COUNTS[name]}")
    parser.add_argument("--samples", type=int, default=SAMPLES, help="RSS samples per run")
    parser.add_argument("--warmup", type=float, default=WARMUP, help="share not fitted")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (and OMP)")
    parser.add_argument("--plant-leak-kb", type=int, default=0, help="kept per operation")
    parser.add_argument(
        "--also-planted",
        nargs="*",
        choices=WORKLOADS,
        default=None,
        help=f"then these workloads (none named: all) again with {PLANTED_KB} KB planted",
    )
    parser.add_argument("--package-root", default=None, help="the sfllava_ext to import")
    parser.add_argument("--json", default=None)
    # a child process's own flags
    parser.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--every", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.samples < 2 or not 0 <= args.warmup < 1 or args.plant_leak_kb < 0:
        parser.error("--samples must be >= 2, --warmup in [0, 1), --plant-leak-kb >= 0")
    return args


def count_of(args: argparse.Namespace, name: str) -> int:
    """Operations of workload ``name``: as given, else its default times ``--scale``."""
    given = getattr(args, name)
    return given if given is not None else max(10, round(COUNTS[name] * args.scale))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-wrapper"]:
        return serve_wrapper(argv[1:])
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return 0
    import torch

    torch.set_num_threads(args.threads)  # as in the workloads' processes (machine_info)
    plan = {name: count_of(args, name) for name in args.only or WORKLOADS}
    runs = {name: run_workload(name, n, args.plant_leak_kb, args) for name, n in plan.items()}
    print_table(runs, f"soak, {args.plant_leak_kb} KB planted per operation")
    result: dict[str, Any] = {
        "machine": machine_info(),
        "threads": args.threads,
        "model": "demo LLaVA-NeXT (CLIP 64/256/4 layers, Llama 128/256/2 layers), float32",
        "clip": CLIP_TEXT,
        "num_frames": NUM_FRAMES,
        "max_tokens": MAX_TOKENS,
        "target_mb_per_100_ops": TARGET_MB_PER_100,
        "warmup_fraction": args.warmup,
        "samples_per_run": args.samples,
        "settling": "gc.collect() and malloc_trim(0) in the measured process before each sample",
        "plant_leak_kb": args.plant_leak_kb,
        "runs": runs,
        "all_under_target": not any(r["leak"] for r in runs.values()),
    }
    ok = expected(runs)
    if args.also_planted is not None:
        names = args.also_planted or list(plan)
        planted = {
            name: run_workload(name, count_of(args, name), PLANTED_KB, args) for name in names
        }
        print_table(planted, f"soak, {PLANTED_KB} KB planted per operation")
        result["planted"] = {
            "plant_leak_kb": PLANTED_KB,
            "runs": planted,
            "all_caught": all(r["leak"] for r in planted.values()),
        }
        ok = ok and expected(planted)
    if args.json:
        path = args.json
    elif args.plant_leak_kb:
        path = os.path.join(tempfile.gettempdir(), f"{RESULT}_planted.json")
    else:
        path = str(RESULTS / f"{RESULT}.json")
    write_json(path, result)
    print("wrote", path)
    if not ok:
        print("soak: a run without a plant leaks, or a planted leak was not flagged")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
