"""A memory soak: the resident memory (RSS) of a process over many operations, its slope
per 100 operations after a warm-up, against a target of 1 MB per 100 operations.

    python benchmarks/soak.py                          # 1,000 / 1,000 / 1,000 / 200
    python benchmarks/soak.py --scale 0.1 --only follow_up service
    python benchmarks/soak.py --plant-leak-kb 100      # every operation keeps 100 KB
    python benchmarks/soak.py --also-planted follow_up embed

Four workloads, each in a fresh process of its own (so that one workload's memory does
not blur another's), with cwd outside the checkout. The demo model (float32, random
weights), 8 frames per video, 10 fps H.264 clips (``write_synthetic_video``) of three
sizes and lengths (:data:`CLIPS`: 160x120 1 s, 320x240 1.5 s, 256x144 2 s), 4 new
tokens, greedy, ``--threads`` torch threads (1):

- **encode_answer** (1,000): ``SlowFastLlava.encode(path)`` then
  ``SlowFastLlava.answer(path, question)``, a new question text each time; every 3rd
  operation a video never seen (a distinct copy of one of the 3 clips, in turn, an MP4
  ``free`` box of its own appended: ``_common.distinct_copy``), so that growth per video
  or per frame size would show. ``SlowFastLlava.frame_buffers``' idle bytes are
  sampled too: that pool is keyed by size and bounded by design (1 GiB by default);
- **follow_up** (1,000): one ``VideoSession`` (the 160x120 clip), 1,000
  ``session.answer`` questions, each text new;
- **service** (1,000): ``sfllava serve --demo --cache-gb 0.02`` in its own process on a
  free 127.0.0.1 port, one ``httpx`` client sending chat requests one at a time
  (:func:`service_plan`): every 4th about a video the server has never seen (a distinct
  copy of one of the 3 clips, in turn; sent as a ``data:`` URL or a ``file://`` URL in
  turn), every 20th about a video 12 fresh ones back (evicted by then: decoded and
  encoded again), the rest follow-ups about one of the 3 newest. Of those, about 12%
  are streamed (``stream: true``; read to the end, which must be ``data: [DONE]``), 5%
  end in an error (a ``data:`` URL of garbage bytes, 400; a ``file://`` URL of a missing
  file, 404; half of them streamed), and 3% are clients that leave mid-request (a
  socket closed right after the request is sent, or a stream closed after its first
  event). The session cache (about 7.8 MB a session) holds 2 to 3 sessions: it evicts
  all run long. The RSS measured is the server's (``/proc/<pid>/status``); with it, the
  server's open file descriptors (``/proc/<pid>/fd``) and the files in its temp folder
  (its private spool of the videos sent, under a ``TMPDIR`` of this script's), each
  sample taken once ``/health`` says that no job runs or waits;
- **embed** (200): one ``embed_videos`` call over 200 distinct clips (variants of the
  160x120 clip) into a new folder, with its default decode workers; an operation is a
  video through the model. The sample after ``n`` videos is taken on the model's thread
  before it encodes the next one, once the writer has recorded all ``n`` (no
  activations or session file in flight; a wait past 60 s is recorded as a late
  sample), the last one after ``embed_videos`` returns; the decode workers' memory
  (their PSS, ``/proc/<pid>/smaps_rollup``, summed: RSS would count the pages that the
  spawned workers share several times; RSS where there is no smaps_rollup) beside it.

RSS is sampled every ``count // --samples`` operations (50 samples a run), and at the
start (51 in all). Before each sample the measured process runs ``gc.collect()`` and
glibc's ``malloc_trim(0)`` (``sfllava_ext.utils.memory.give_back_memory``; in the server,
through a route that the launcher below adds), so that memory the allocator holds
free, which a later allocation reuses, does not read as growth; the RSS before that
(``raw``) is kept too, with its own slope. Memory still referenced is untouched by
either: a leak shows in both. The first ``--warmup`` (20%) of the operations is the
warm-up (caches filling, lazily loaded code, the allocator's pools): its samples are
drawn but not fitted. The slope is the least-squares line of RSS over operations on the
remaining samples, in MB (10^6 bytes) per 100 operations. A run leaks when that slope
is at least 1 MB per 100 operations, or (embed) the decode workers' is, or (service) the
server ends with more than :data:`FD_MARGIN` file descriptors over its count after the
warm-up, or any sample finds a file in its temp folder.

``--plant-leak-kb KB`` makes every operation of the measured process keep KB kilobytes
more (a bytearray with every byte written, appended to a list); for the service, in the
server, through an ASGI wrapper that this script's launcher (``--serve-wrapper``) puts
around the app before calling ``sfllava``'s own CLI (the package has no such hook). The
same launcher starts the server without a plant. A planted run is expected to be
flagged. Exit status: 0 when every run without a plant is under the target and every
planted one is flagged; 1 when not (a leak, or a plant missed); 2 when a workload's
process failed (an exception, a request answered otherwise than planned: no verdict,
nothing written). ``--also-planted [W ...]`` runs the named workloads (all without a
name) again with 100 KB planted, into the same JSON's ``planted``. Writes
benchmarks/results/soak.json (with a plant and no ``--json``: a file in the temp
folder).
"""

from __future__ import annotations

import argparse
import base64
import gc
import importlib.util
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
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
#: the server's open file descriptors may end at most this many over the count after
#: the warm-up (a connection the client just closed, the server may not have yet)
FD_MARGIN = 3
#: the share of a run's operations that is warm-up, not fitted
WARMUP = 0.2
#: samples per run (one every count // SAMPLES operations, and one at the start)
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
#: the clips' sizes and lengths (10 fps H.264): encode_answer and the service cycle
#: through all three, follow_up and embed use the first
CLIPS = (
    dict(width=160, height=120, seconds=1.0, fps=10),
    dict(width=320, height=240, seconds=1.5, fps=10),
    dict(width=256, height=144, seconds=2.0, fps=10),
)
CLIP_TEXT = "10 fps H.264 clips of 160x120 1 s, 320x240 1.5 s and 256x144 2 s"
#: the server's session cache: about 7.8 MB a session (float32 demo, 8 frames) holds 2-3
CACHE_GB = 0.02
#: the route the launcher adds to the server: gc.collect() and malloc_trim(0), then 200
TRIM_PATH = "/_soak/settle"
#: how long a sample waits for the measured process to be idle before it is taken
#: anyway (and recorded as late)
IDLE_WAIT_S = 60


# ------------------------------------------------------------------------------ the fit


def fit(ops: list[float], values: list[float], warmup_ops: float = 0) -> dict[str, float]:
    """The least-squares line of ``values`` over ``ops`` on the samples at or past
    ``warmup_ops``: ``{"slope", "intercept"}`` (slope in values per op).

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
    return {"slope": slope, "intercept": my - slope * mx}


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


def settle() -> None:
    """Collects the garbage cycles, then gives the allocator's free pages back to the
    system (the package's ``give_back_memory``: glibc's ``malloc_trim(0)``, which does
    not collect garbage itself)."""
    from sfllava_ext.utils.memory import give_back_memory

    gc.collect()
    give_back_memory()


#: what the planted leak keeps, for the life of the process
_KEPT: list[bytearray] = []


def plant(kb: int) -> None:
    """Keeps ``kb`` kilobytes more, every byte written (so that every page is resident)."""
    if kb:
        _KEPT.append(bytearray(b"\xa5") * (kb * 1024))


class Recorder:
    """The samples of one run: after each ``every``-th operation (and at 0), the RSS
    before and after ``settle`` (:func:`settle` of this process by default) of this
    process or of ``pid``. ``ready`` (optional) waits until the measured process is idle
    and says whether it is (a sample taken anyway is recorded in ``late``); ``probe``
    (optional) gives the workload's own measures, a dict of numbers with the same keys
    each time, sampled after the RSS."""

    def __init__(self, name: str, count: int, every: int) -> None:
        self.name, self.count, self.every = name, count, every
        self.pid = os.getpid()
        self.settle: Callable[[], None] = settle
        self.ready: Callable[[], bool] | None = None
        self.probe: Callable[[], dict[str, float]] | None = None
        self.samples: dict[str, list[float]] = {
            k: [] for k in ("ops", "t_s", "rss_mb", "raw_mb", "anon_mb")
        }
        self.late: list[int] = []
        self.start = time.perf_counter()

    def maybe(self, done: int) -> None:
        """A sample after operation number ``done`` when it is a sampling point."""
        if done == 0 or done % self.every == 0 or done == self.count:
            self.sample(done)

    def sample(self, done: int) -> None:
        if self.ready is not None and not self.ready():
            self.mark_late(done)
        raw = proc_status(self.pid)["VmRSS"]
        self.settle()
        status = proc_status(self.pid)
        s = self.samples
        s["ops"].append(done)
        s["t_s"].append(round(time.perf_counter() - self.start, 3))
        s["rss_mb"].append(round(status["VmRSS"] / MB, 3))
        s["raw_mb"].append(round(raw / MB, 3))
        s["anon_mb"].append(round(status["RssAnon"] / MB, 3))
        extra = self.probe() if self.probe is not None else {}
        for key, value in extra.items():
            s.setdefault(key, []).append(value)
        if done % (self.every * 5) == 0 or done == self.count:
            more = "".join(f", {k} {v:g}" for k, v in extra.items())
            print(
                f"soak {self.name}: {done}/{self.count}, RSS {status['VmRSS'] / MB:.1f} MB "
                f"({raw / MB:.1f} before settling){more}, "
                f"{time.perf_counter() - self.start:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    def mark_late(self, done: int) -> None:
        """Records that the sample after ``done`` operations did not find the measured
        process idle within :data:`IDLE_WAIT_S` (it is taken anyway)."""
        self.late.append(done)
        print(
            f"soak {self.name}: the sample after {done} operations waited {IDLE_WAIT_S} s "
            "for the process to be idle; taken anyway, recorded as late",
            file=sys.stderr,
            flush=True,
        )


def memory_of(pid: int) -> int:
    """``pid``'s proportional set size (PSS: each shared page divided among the processes
    that map it) in bytes, from /proc/<pid>/smaps_rollup; its RSS where that file cannot
    be read."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return proc_status(pid)["VmRSS"]


def children_memory(pid: int) -> tuple[int, int]:
    """``pid``'s child processes (recursively: embed's decode workers), but for
    ``multiprocessing``'s resource tracker, which outlives them: how many, and their
    memory (:func:`memory_of`) together, in bytes."""
    import psutil

    count = total = 0
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return 0, 0
    for child in children:
        try:
            if any("resource_tracker" in part for part in child.cmdline()):
                continue
            total += memory_of(child.pid)
            count += 1
        except (psutil.Error, OSError, KeyError):  # it ended meanwhile
            continue
    return count, total


def open_fds(pid: int) -> int:
    """How many file descriptors ``pid`` has open (/proc/<pid>/fd)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def files_under(folder: Path) -> int:
    """How many files (not folders) are under ``folder``, at any depth."""
    return sum(len(files) for _, _, files in os.walk(folder))


# ---------------------------------------------------------------------------- workloads
# Each runs in a child process (``--child NAME``), in a temp folder that is its cwd.


def _demo(threads: int):
    import torch

    from sfllava_ext import SlowFastLlava
    from sfllava_ext.models.demo import demo_model, demo_tokenizer

    torch.set_num_threads(threads)
    tokenizer = demo_tokenizer()
    return SlowFastLlava(demo_model(tokenizer), tokenizer, num_frames=NUM_FRAMES)


def _clip(path: Path, variant: int = 0, size: int = 0) -> str:
    from sfllava_ext.video.synthetic import write_synthetic_video

    return write_synthetic_video(path, variant=variant, **CLIPS[size])


def question(i: int) -> str:
    """Question number ``i``: one of five, with its number, so that every text is new."""
    return f"{QUESTIONS[i % len(QUESTIONS)]} (question {i})"


def buffers_probe(sf: Any) -> Callable[[], dict[str, float]]:
    """The idle bytes of ``sf``'s frame-buffer pool, in MB, as a sample's probe."""
    return lambda: {"buffers_idle_mb": round(sf.frame_buffers.idle_bytes / MB, 3)}


def run_encode_answer(rec: Recorder, plant_kb: int, threads: int, work: Path) -> dict:
    """Every 3rd operation a new distinct copy of the next of the 3 clips (the copy
    before it deleted), so that the operations see ``count / 3`` videos of 3 sizes."""
    sf = _demo(threads)
    bases = [_clip(work / f"base{k}.mp4", k, size=k) for k in range(len(CLIPS))]
    rec.probe = buffers_probe(sf)
    path = None
    rec.start = time.perf_counter()
    rec.maybe(0)
    for i in range(rec.count):
        if i % 3 == 0:
            if path is not None:
                os.remove(path)
            number = i // 3
            path = distinct_copy(bases[number % 3], work / f"v{number}.mp4", number)
        sf.encode(path)
        sf.answer(path, question(i), max_new_tokens=MAX_TOKENS)
        plant(plant_kb)
        rec.maybe(i + 1)
    return {
        "distinct_videos": (rec.count + 2) // 3,
        "sizes": [f"{c['width']}x{c['height']} {c['seconds']:g} s" for c in CLIPS],
        "frame_buffers_max_idle_bytes": sf.frame_buffers.max_idle_bytes,
    }


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
    written are in memory, which would read as noise of tens of MB. The last one, after
    all ``count``, once ``embed_videos`` has returned (its workers have ended then)."""
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
    idle = buffers_probe(sf)

    def probe() -> dict[str, float]:
        workers, pss = children_memory(os.getpid())
        return {"workers": workers, "workers_mb": round(pss / MB, 3), **idle()}

    def counted(clip: Any) -> Any:  # on the pipeline's model thread
        n = encoded[0]
        if n and (n % rec.every == 0):
            with written:
                if not written.wait_for(lambda: recorded[0] >= n, timeout=IDLE_WAIT_S):
                    rec.mark_late(n)
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
    rec.probe = probe
    rec.start = time.perf_counter()
    rec.maybe(0)
    summary = embed_videos(str(videos), work / "out", sf, progress=False, on_video=on_video)
    if failed or summary.done != rec.count:
        raise RuntimeError(f"embed: {summary.line()}; failures {failed[:3]}")
    rec.sample(rec.count)
    return {"done": summary.done}


def service_plan(count: int) -> list[tuple[str, int, str]]:
    """Request ``i``'s ``(kind, number, mode)``. ``kind``: ``fresh`` every 4th (about
    fresh video ``number``, never sent before); ``bad_data`` and ``missing_file`` in
    turn every 20th (a ``data:`` URL of garbage, 400; a ``file://`` URL of a file that
    does not exist, 404); ``evicted`` every 20th (12 fresh videos back); else
    ``follow_up`` about one of the 3 newest. ``mode``: ``whole``, or ``stream`` (read
    to its ``[DONE]``; 2 in 20 requests and every other error), or a client that
    leaves: ``drop_stream`` (a stream closed after its first event; 1 in 100) and
    ``drop_sent`` (its socket closed once the request is sent; 1 in 100, and 1 in 100
    fresh ones). A drop is never the last operation before a sample at a multiple of
    10 operations (a sample waits for the server to be idle in any case)."""
    plan, fresh = [], -1
    for i in range(count):
        mode = "whole"
        if i % 4 == 0:
            fresh += 1
            kind, number = "fresh", fresh
        elif i % 20 == 15:
            turn = (i // 20) % 4
            kind, number = ("bad_data", "missing_file")[turn % 2], i
            mode = "stream" if turn >= 2 else "whole"
        elif i % 20 == 10 and fresh >= 12:
            kind, number = "evicted", fresh - 12
        else:
            kind, number = "follow_up", max(0, fresh - i % 3)
        if i % 20 in (3, 4):
            mode = "stream"
        if i % 50 == 27:
            mode = ("drop_stream", "drop_sent")[(i // 50) % 2]
        elif i % 100 == 36:
            mode = "drop_sent"
        plan.append((kind, number, mode))
    return plan


def start_server(
    media: Path, tmp: Path, plant_kb: int, threads: int
) -> tuple[subprocess.Popen, int, Path]:
    """``sfllava serve --demo`` through this script's launcher, once it answers, with
    ``tmp`` as its temp folder: the process, its port and its private spool folder."""
    port = free_port()
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve-wrapper", str(plant_kb)]
    argv += ["serve", "--demo", "--port", str(port), "--media-dir", str(media)]
    argv += ["--dtype", "float32", "--num-frames", str(NUM_FRAMES)]
    argv += ["--cache-gb", str(CACHE_GB), "--log-level", "warning"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TMPDIR": str(tmp)}
    proc = subprocess.Popen(argv, env=env, cwd=media)
    if not healthy(proc, port, 300):
        proc.kill()
        raise RuntimeError("soak: the server did not start")
    spools = sorted(tmp.glob("sfllava-serve-*"))
    if len(spools) != 1:
        proc.kill()
        raise RuntimeError(f"soak: the server's temp folder {tmp} holds {spools}")
    return proc, port, spools[0]


#: the status each kind of request must be answered with
EXPECTED_STATUS = {"fresh": 200, "evicted": 200, "follow_up": 200, "bad_data": 400}
EXPECTED_STATUS["missing_file"] = 404


def garbage_url(i: int) -> str:
    """A ``data:`` URL of 4 KB of garbage (no video container), other bytes each ``i``."""
    data = random.Random(i).randbytes(4096)
    return "data:video/mp4;base64," + base64.b64encode(data).decode()


def read_stream(reply: Any, i: int) -> None:
    """Reads a streamed answer to its end, which must be ``data: [DONE]`` after at least
    one chunk and no error event.

    Raises:
        RuntimeError: it does not.
    """
    events = [line for line in reply.iter_lines() if line.startswith("data: ")]
    if len(events) < 2 or events[-1] != "data: [DONE]" or any('"error"' in e for e in events):
        raise RuntimeError(f"soak service: request {i}'s stream ended so: {events[-3:]}")


def drop_after_sending(port: int, body: dict) -> None:
    """A client that sends a whole request, then closes its socket without reading."""
    data = json.dumps(body).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + data)


def run_service(rec: Recorder, plant_kb: int, threads: int, work: Path) -> dict:
    import httpx

    media, tmp = work / "media", work / "server_tmp"
    media.mkdir()
    tmp.mkdir()
    bases = [Path(_clip(media / f"base{k}.mp4", k, size=k)) for k in range(len(CLIPS))]
    plan = service_plan(rec.count)
    urls: list[str] = []
    kinds = Counter(kind for kind, _, _ in plan)
    modes = Counter(mode for _, _, mode in plan)
    statuses: Counter[int] = Counter()
    proc, port, spool = start_server(media, tmp, plant_kb, threads)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300)

    def idle() -> bool:  # no job running or waiting in the server
        deadline = time.monotonic() + IDLE_WAIT_S
        while time.monotonic() < deadline:
            health = http.get("/health").json()
            if health["waiting"] == 0 and health["running"] == 0:
                return True
            time.sleep(0.05)
        return False

    def settle_server() -> None:
        http.post(TRIM_PATH).raise_for_status()

    def probe() -> dict[str, float]:
        return {"fds": open_fds(proc.pid), "temp_files": files_under(spool)}

    rec.pid, rec.settle, rec.ready, rec.probe = proc.pid, settle_server, idle, probe
    try:
        rec.start = time.perf_counter()
        rec.maybe(0)
        for i, (kind, number, mode) in enumerate(plan):
            if kind == "fresh":
                source = bases[number % 3]
                path = Path(distinct_copy(source, media / f"v{number}.mp4", number))
                if number % 2:
                    data = base64.b64encode(path.read_bytes()).decode()
                    urls.append(f"data:video/mp4;base64,{data}")
                    path.unlink()
                else:
                    urls.append(f"file://{path}")
            if kind == "bad_data":
                url = garbage_url(i)
            elif kind == "missing_file":
                url = f"file://{media / f'missing{i}.mp4'}"
            else:
                url = urls[number]
            parts = [
                {"type": "video_url", "video_url": {"url": url}},
                {"type": "text", "text": question(i)},
            ]
            body: dict[str, Any] = {
                "messages": [{"role": "user", "content": parts}],
                "max_tokens": MAX_TOKENS,
            }
            if mode in ("stream", "drop_stream"):
                body["stream"] = True
            if mode == "drop_sent":
                drop_after_sending(port, body)
                statuses["dropped"] += 1
            elif mode in ("stream", "drop_stream"):
                with http.stream("POST", "/v1/chat/completions", json=body) as reply:
                    status = reply.status_code
                    if status == 200 and mode == "stream":
                        read_stream(reply, i)
                    elif status == 200:  # the first event, then leave
                        next(line for line in reply.iter_lines() if line)
                    else:
                        reply.read()
                statuses[status] += 1
            else:
                reply = http.post("/v1/chat/completions", json=body)
                status = reply.status_code
                statuses[status] += 1
            if mode != "drop_sent" and status != EXPECTED_STATUS[kind]:
                raise RuntimeError(
                    f"soak service: request {i} ({kind}, {mode}) answered {status}, "
                    f"not {EXPECTED_STATUS[kind]}: {reply.text[:500] if mode == 'whole' else ''}"
                )
            rec.maybe(i + 1)
        idle()
        health = http.get("/health").json()
    finally:
        http.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {
        "requests": dict(kinds),
        "modes": dict(modes),
        "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
        "cache_gb": CACHE_GB,
        "health": health,
        "temp_files_after_stop": files_under(tmp),
    }


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
        "late_samples": rec.late,
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


class ChildFailed(RuntimeError):
    """A workload's process exited with an error: no verdict (exit status 2)."""


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
    """One workload in a fresh process, in a temp folder of its own: its summary.

    Raises:
        ChildFailed: the process exited with an error (its traceback is on stderr).
    """
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
        done = subprocess.run(argv, cwd=work, env=env)
        wall_s = time.perf_counter() - started
        if done.returncode != 0 or not out.exists():
            raise ChildFailed(
                f"soak: the {name} workload's process failed (exit {done.returncode}, "
                f"after {wall_s:.0f} s; its error is above): no verdict"
            )
        child = json.loads(out.read_text())
    return summarize(name, count, every, warmup_ops, plant_kb, wall_s, child)


def _at_warmup_and_end(ops: list[float], values: list[float], warmup_ops: int) -> tuple:
    after = [v for o, v in zip(ops, values, strict=True) if o >= warmup_ops]
    return after[0], after[-1]


def summarize(
    name: str, count: int, every: int, warmup_ops: int, plant_kb: int, wall_s: float, child: dict
) -> dict:
    """One run's record: its slopes, the verdict of each measure (``leaks``) and
    overall (``leak``), and its samples."""
    s = child["samples"]
    ops = s["ops"]
    slope = slope_per_100(ops, s["rss_mb"], warmup_ops)
    rss_after, rss_end = _at_warmup_and_end(ops, s["rss_mb"], warmup_ops)
    verdicts = {"rss": leaks(slope)}
    run: dict[str, Any] = {
        "operations": count,
        "sample_every": every,
        "samples_taken": len(ops),
        "warmup_operations": warmup_ops,
        "plant_leak_kb": plant_kb,
        "wall_s": round(wall_s, 1),
        "loop_s": child["loop_s"],
        "ops_per_s": round(count / child["loop_s"], 2),
        "slope_mb_per_100_ops": round(slope, 4),
        "raw_slope_mb_per_100_ops": round(slope_per_100(ops, s["raw_mb"], warmup_ops), 4),
        "anon_slope_mb_per_100_ops": round(slope_per_100(ops, s["anon_mb"], warmup_ops), 4),
        "rss_after_warmup_mb": rss_after,
        "rss_end_mb": rss_end,
        "late_samples": child["late_samples"],
        "sample_wait_timed_out": bool(child["late_samples"]),
    }
    if "buffers_idle_mb" in s:
        run["buffers_idle_mb_max"] = max(s["buffers_idle_mb"])
        run["buffers_idle_mb_end"] = s["buffers_idle_mb"][-1]
    if "workers_mb" in s:  # embed: only the samples taken while the workers ran
        alive = [(o, m) for o, m, n in zip(ops, s["workers_mb"], s["workers"], strict=True) if n]
        w_slope = slope_per_100([o for o, _ in alive], [m for _, m in alive], warmup_ops)
        run["workers_slope_mb_per_100_ops"] = round(w_slope, 4)
        run["workers_samples_fitted"] = sum(1 for o, _ in alive if o >= warmup_ops)
        verdicts["workers"] = leaks(w_slope)
    if "fds" in s:  # the service
        fds_after, fds_end = _at_warmup_and_end(ops, s["fds"], warmup_ops)
        run["fds_after_warmup"], run["fds_end"] = fds_after, fds_end
        run["fds_slope_per_100_ops"] = round(slope_per_100(ops, s["fds"], warmup_ops), 3)
        run["temp_files_max"] = max(s["temp_files"])
        run["temp_files_end"] = s["temp_files"][-1]
        run["temp_files_slope_per_100_ops"] = round(
            slope_per_100(ops, s["temp_files"], warmup_ops), 3
        )
        verdicts["fds"] = fds_end - fds_after > FD_MARGIN
        verdicts["temp_files"] = run["temp_files_max"] > 0
    run["leaks"] = verdicts
    run["leak"] = any(verdicts.values())
    run["details"] = child["details"]
    run["samples"] = s
    return run


def _others(r: dict) -> str:
    """A run's measures beside its RSS, in a few words (the table's last column)."""
    words = []
    if "workers_slope_mb_per_100_ops" in r:
        words.append(f"workers {r['workers_slope_mb_per_100_ops']:+.2f} MB/100")
    if "fds_end" in r:
        words.append(f"fds {r['fds_after_warmup']:g}->{r['fds_end']:g}")
        words.append(f"temp files max {r['temp_files_max']:g}")
    if "buffers_idle_mb_max" in r:
        words.append(f"buffer pool idle max {r['buffers_idle_mb_max']:.1f} MB")
    if r["late_samples"]:
        words.append(f"late samples {r['late_samples']}")
    return ", ".join(words)


def print_table(runs: dict[str, dict], title: str) -> None:
    print(title)
    print(
        f"{'workload':<14} {'ops':>5} {'loop s':>7} {'RSS MB':>15} "
        f"{'slope':>8} {'raw':>8} {'verdict':>8}   (slopes: MB per 100 operations)"
    )
    for name, r in runs.items():
        rss = f"{r['rss_after_warmup_mb']:.1f}->{r['rss_end_mb']:.1f}"
        flagged = ",".join(k for k, v in r["leaks"].items() if v)
        print(
            f"{name:<14} {r['operations']:>5} {r['loop_s']:>7.0f} {rss:>15} "
            f"{r['slope_mb_per_100_ops']:>8.3f} {r['raw_slope_mb_per_100_ops']:>8.3f} "
            f"{'LEAK' if r['leak'] else 'ok':>8}{' (' + flagged + ')' if flagged else ''}"
            f"   {_others(r)}"
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
        flagged = [k.replace("_", " ") for k, v in r["leaks"].items() if v]
        rows.append(
            [
                name.replace("_", "-"),
                f"{r['operations']:,}",
                f"{r['loop_s'] / 60:.1f} min",
                f"{r['rss_after_warmup_mb']:.1f} -> {r['rss_end_mb']:.1f}",
                f"**{r['slope_mb_per_100_ops']:+.3f}**",
                f"{r['raw_slope_mb_per_100_ops']:+.3f}",
                _others(r) or "-",
                f"leak ({', '.join(flagged)})" if flagged else "under target",
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
    "also measured",
    "verdict",
]


def render(result: dict) -> list[str]:
    """The section of docs/benchmarks.md (markdown lines, heading included)."""
    runs = result["runs"]
    taken = sorted({r["samples_taken"] for r in runs.values()})
    taken_text = " or ".join(str(n) for n in taken)
    late = [name for name, r in runs.items() if r["late_samples"]]
    out = [
        '<a id="soak"></a>',
        "## Memory soak: RSS over many operations",
        "",
        *provenance(result),
        f"Each workload in a fresh process, with {result['threads']} torch "
        f"thread{'s' * (result['threads'] != 1)}: the demo model (float32), {NUM_FRAMES} "
        f"frames of {result.get('clip', CLIP_TEXT)}, {MAX_TOKENS} new tokens. "
        "*encode-answer*: `SlowFastLlava.encode` then `.answer`, every 3rd operation on a "
        "video never seen (a distinct copy of the next of the 3 clips); *follow-up*: one "
        "`VideoSession`, a new question each time; *service*: `sfllava serve --demo "
        f"--cache-gb {CACHE_GB}` and one client, every 4th request a video never seen "
        "(the 3 sizes in turn; `data:` and `file://` URLs in turn), every 20th one "
        "evicted long ago, the rest follow-ups; about 12% streamed (read to `[DONE]`), "
        "5% errors (garbage `data:` URLs, 400; missing files, 404), 3% clients that "
        "leave mid-request (a socket closed once the request is sent, a stream closed "
        "after its first event). The service's RSS is the server's, and beside it the "
        "server's open file descriptors and the files in its temp folder (its spool "
        "of the videos sent), each sample taken with no job running or waiting; "
        "*embed*: one `embed_videos` call over distinct clips, the decode workers' "
        "memory beside it (their PSS summed, fitted over the samples taken while they "
        "ran).",
        "",
        f"RSS is sampled {taken_text} times a run (after every "
        f"1/{result['samples_per_run']} of the operations, and at the start), after "
        "`gc.collect()` and `malloc_trim(0)` in the measured process; the first "
        f"{result['warmup_fraction']:.0%} of the operations is warm-up, the slope is the "
        "least-squares line over the rest. The verdict uses that settled RSS: memory "
        "the allocator holds free (which a later allocation reuses) comes and goes with "
        "the size of the last requests and makes the RSS *before settling* (`raw`) "
        "noisier, while memory still referenced stays in both. Fragmentation that a "
        "server which never trims would carry shows only in the `raw` column. A run "
        f"leaks when its slope is {TARGET_MB_PER_100:g} MB per 100 operations or more, "
        "or the decode workers' is, or the server ends with more than "
        f"{FD_MARGIN} file descriptors over its count after the warm-up, or any sample "
        "finds a file in its temp folder. Target: "
        f"{'met by every workload' if result['all_under_target'] else 'NOT met'}"
        f"{f' (late samples in {late})' if late else ''}. `SlowFastLlava.frame_buffers`, "
        "the decoded frames' pool, keeps buffers by size and is bounded by design "
        "(1 GiB idle by default); its idle bytes are recorded with the samples.",
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
    try:
        return measure(args)
    except ChildFailed as exc:
        print(exc, file=sys.stderr)
        print(exc)
        return 2


def measure(args: argparse.Namespace) -> int:
    """Runs the workloads, writes the JSON: 0 when every verdict is as expected, 1 when
    not.

    Raises:
        ChildFailed: a workload's process failed (nothing is written).
    """
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
        "fd_margin": FD_MARGIN,
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
    late = [name for name, r in runs.items() if r["late_samples"]]
    if late:
        print(f"soak: samples taken late (a wait for idle timed out) in {late}")
    if not ok:
        print("soak: a run without a plant leaks, or a planted leak was not flagged")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
