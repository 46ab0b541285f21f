"""What one upload costs ``sfllava serve`` in memory, against its limit, and whether
the memory comes back after a burst of uploads.

    python benchmarks/bench_serve_memory.py [--max-video-mb 64] [--uploads 4]
        [--half-sent 4] [--hold-s 3] [--quick] [--server-arg=--max-uploads=2 ...]

A real server, ``sfllava serve --demo`` (float32 on the CPU, 8 frames), in its own
process. Its resident memory (RSS) is sampled every 20 ms by a thread, and each step's
peak is also read from the kernel's high-water mark (``VmHWM`` of /proc/<pid>/status,
reset before the step through /proc/<pid>/clear_refs), so that no spike between two
samples is missed. The baseline is the RSS after a warm-up: a small synthetic clip sent
as a ``data:`` URL, answered 200.

(a) One upload at a time, each a chat request whose video is a
``data:video/mp4;base64,`` URL of random bytes: a video just under ``--max-video-mb``
(L) (the server reads it all, then answers 400: it is no video); one just over L (413);
a body just over the body limit (4/3 L + 1 MiB), declared by its Content-Length, then
the same sent chunked, without one (413). For each: its peak RSS above the RSS before
it, as a multiple of L and of the body limit. The physical bound: a server that holds
the body once needs 1x the body limit; one that streams it to disk, its read buffers.

(b) A burst: ``--uploads`` (N) concurrent uploads just under L; then ``--half-sent``
(M) uploads that send their headers (Content-Length: the whole body) and half the
body, hold the connection ``--hold-s`` seconds and close it, while one small good
request is sent. Statuses, peak RSS above the baseline, and the RSS 2 s after all of it
ended, above the baseline (target: within 100 MB).

(c) ``/health`` latency, polled every 50 ms throughout: p50 and max per step.

Extra server flags pass through with ``--server-arg=--flag=value`` (repeatable); a
flag the server does not know ends the run with a message naming it.
``--package-root``: the folder whose ``sfllava_ext`` the server imports (PYTHONPATH;
default this checkout), e.g. a clean clone of another commit; its commit is recorded.
``--quick``: L = 8 MB unless given, for a smoke test; writes to the temp folder unless
``--json``. Writes benchmarks/results/serve_memory_cpu.json.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import (
    RESULTS,
    ROOT,
    free_port,
    healthy,
    machine_info,
    ms,
    provenance,
    summary_row,
    table,
    write_json,
)

#: the committed result in benchmarks/results/, which report.py renders
RESULT = "serve_memory_cpu"
MB = 1 << 20
CHUNK = 1 << 20  # bytes per send
SETTLE_S = 2.0  # the wait after each step before its RSS is read
TARGET_MB = 100  # RSS after the burst, above the baseline
TRACEBACK = "Traceback (most recent call last):"
PREFIX = (
    b'{"messages":[{"role":"user","content":[{"type":"video_url",'
    b'"video_url":{"url":"data:video/mp4;base64,'
)
SUFFIX = b'"}},{"type":"text","text":"What happens in the video?"}]}],"max_tokens":4}'


# ---------------------------------------------------------------------------- measuring
# The server's RSS (a sampling thread and the kernel's high-water mark) and /health.


class RssSampler(threading.Thread):
    """The RSS of process ``pid`` every ``period`` seconds: ``samples`` (time, bytes)."""

    def __init__(self, pid: int, period: float = 0.02) -> None:
        import psutil

        super().__init__(daemon=True)
        self.pid, self.period, self.samples = pid, period, []
        self.process = psutil.Process(pid)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.samples.append((time.monotonic(), self.process.memory_info().rss))
            except Exception:  # the server is gone
                return
            self.done.wait(self.period)

    def rss(self) -> int:
        return self.process.memory_info().rss

    def peak(self, t0: float, t1: float) -> int:
        return max((r for t, r in self.samples if t0 <= t <= t1), default=self.rss())

    def hwm(self) -> int | None:
        """VmHWM: the peak RSS since the last :meth:`reset_hwm` (or the start)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return None

    def reset_hwm(self) -> bool:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False


class HealthPoller(threading.Thread):
    """GET /health every ``period`` seconds on one kept-alive connection: ``records``
    (start, end, status; None where it failed)."""

    def __init__(self, port: int, period: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.port, self.period, self.records = port, period, []
        self.done = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while not self.done.is_set():
            start = time.monotonic()
            try:
                conn.request("GET", "/health")
                reply = conn.getresponse()
                reply.read()
                status = reply.status
            except (OSError, http.client.HTTPException):
                status = None
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.records.append((start, time.monotonic(), status))
            self.done.wait(max(0.0, start + self.period - time.monotonic()))
        conn.close()

    def stats(self, t0: float, t1: float) -> dict:
        """Polls that overlapped [t0, t1]: how many, p50 and max latency (ms), failures."""
        hits = [(e - s, st) for s, e, st in self.records if s < t1 and e > t0]
        lat = [d * 1e3 for d, _ in hits] or [0.0]
        return {
            "polls": len(hits),
            "p50_ms": round(statistics.median(lat), 1),
            "max_ms": round(max(lat), 1),
            "failed": sum(st != 200 for _, st in hits),
        }


# ----------------------------------------------------------------------------- uploads
# Chat requests over raw sockets: a body sent whole, cut short, or chunked, and the
# reply read whenever the server gives it (it may answer before the body ends).


def chat_body(payload: bytes, pad: int = 0) -> bytes:
    """A chat request whose video is the base64 ``payload``, then ``pad`` spaces."""
    return PREFIX + payload + SUFFIX + b" " * pad


def distinct(body: bytes, tag: int) -> bytes:
    """``body`` with its first 8 base64 characters made from ``tag``: other bytes."""
    mark = base64.b64encode(tag.to_bytes(6, "big"))
    return body[: len(PREFIX)] + mark + body[len(PREFIX) + len(mark) :]


def read_reply(sock: socket.socket) -> dict:
    """The HTTP reply on ``sock``: status, Retry-After, the error's code and message."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return {"status": None, "outcome": "closed without a reply"}
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, v in (x.split(":", 1) for x in lines[1:]))
    length = int(headers.get("content-length", -1))
    while length < 0 or len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    reply = {"status": int(lines[0].split()[1]), "outcome": "reply"}
    if "retry-after" in headers:
        reply["retry_after"] = headers["retry-after"]
    try:
        error = json.loads(rest)["error"]
        reply["code"], reply["message"] = error.get("code"), str(error.get("message"))[:160]
    except (ValueError, KeyError, TypeError):
        pass
    return reply


def upload(
    port: int,
    body: bytes,
    *,
    send: int | None = None,
    hold_s: float = 0.0,
    chunked: bool = False,
    sent: threading.Event | None = None,
) -> dict:
    """POSTs ``body`` to /v1/chat/completions: the first ``send`` bytes of it (all by
    default), declared by Content-Length or sent chunked. A body cut short is held open
    ``hold_s`` seconds, then closed, its reply read only if one came meanwhile. Sending
    stops as soon as the server answers. Returns the reply (:func:`read_reply`), the
    bytes sent and the seconds to the reply."""
    send = len(body) if send is None else send
    head = [
        "POST /v1/chat/completions HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        "Connection: close",
        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}",
    ]
    start, done, view = time.monotonic(), 0, memoryview(body)
    sock = socket.create_connection(("127.0.0.1", port), timeout=300)
    error = None
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        while done < send and not select.select([sock], [], [], 0)[0]:
            piece = view[done : min(send, done + CHUNK)]
            sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n" if chunked else piece)
            done += len(piece)
        if chunked and done == len(body):
            sock.sendall(b"0\r\n\r\n")
    except OSError as exc:  # the server closed while the body was on its way
        error = f"send: {type(exc).__name__}"
    if sent is not None:
        sent.set()
    try:
        if send < len(body) and not select.select([sock], [], [], hold_s)[0]:
            reply = {"status": None, "outcome": f"no reply in {hold_s:g} s held"}
        else:
            reply = read_reply(sock)
    except OSError as exc:
        reply = {"status": None, "outcome": f"{type(exc).__name__} reading the reply"}
    finally:
        sock.close()
    if error:
        reply["send_error"] = error
    return {**reply, "sent_bytes": done, "seconds": round(time.monotonic() - start, 3)}


# ------------------------------------------------------------------------------ server


def start_server(port: int, video_mb: float, extra: list[str], workdir: str, package: str):
    """``sfllava serve --demo`` on ``port``, importing the ``sfllava_ext`` of the folder
    ``package``, once it answers /health; its argv."""
    argv = [sys.executable, "-m", "sfllava_ext.cli", "serve", "--demo", "--port", str(port)]
    argv += ["--max-video-mb", f"{video_mb:g}", "--num-frames", "8", "--dtype", "float32"]
    argv += ["--device", "cpu", "--log-level", "warning", *extra]
    env = {**os.environ, "PYTHONPATH": package, "TMPDIR": workdir}
    log = open(os.path.join(workdir, "server.log"), "wb")  # noqa: SIM115 (the server's)
    # cwd: not the checkout, whose unbuilt sfllava_ext `-m` would import first
    proc = subprocess.Popen(argv, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    if healthy(proc, port, 300):
        return proc, argv
    proc.kill()
    tail = server_log(workdir)
    refused = [x for x in tail if "unrecognized arguments" in x or "error:" in x]
    if extra and refused:
        sys.exit(f"bench_serve_memory: the server refused the flags {extra}: {refused[-1]}")
    sys.exit("bench_serve_memory: the server did not start:\n" + "\n".join(tail))


def server_log(workdir: str, lines: int = 12) -> list[str]:
    text = Path(workdir, "server.log").read_text(errors="replace")
    return text.splitlines()[-lines:]


def log_summary(workdir: str) -> dict:
    """What the server logged: how many lines, and its unindented lines (messages, the
    exceptions ending tracebacks), counted, the most frequent first."""
    lines = Path(workdir, "server.log").read_text(errors="replace").splitlines()
    top = Counter(x[:160] for x in lines if x and not x[0].isspace() and x != TRACEBACK)
    return {"lines": len(lines), "messages": dict(top.most_common(8))}


def commit(package: str) -> dict:
    """The commit (short) of the checkout ``package`` and whether its package has
    uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", package, *args], capture_output=True, text=True
        ).stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "package_modified": bool(git("status", "--porcelain", "--", "sfllava_ext")),
    }


# ------------------------------------------------------------------------------- steps

#: the single uploads of (a): key, what it is in words
SINGLE = {
    "under_limit": "video just under L",
    "video_over_limit": "video just over L",
    "body_over_declared": "body over the limit (Content-Length)",
    "body_over_chunked": "body over the limit (chunked)",
}


class Steps:
    """The steps of one run on one server: each one's RSS and /health figures."""

    def __init__(self, rss: RssSampler, health: HealthPoller, video_bytes: int, body_limit: int):
        self.rss, self.health = rss, health
        self.video_bytes, self.body_limit = video_bytes, body_limit
        self.zero, self.markers, self.baseline = time.monotonic(), [], 0
        self.hwm_reset = False

    def mark(self, label: str) -> float:
        now = time.monotonic()
        self.markers.append([round(now - self.zero, 2), label])
        return now

    def mb(self, nbytes: float) -> float:
        return round(nbytes / MB, 1)

    def peak(self, t0: float, t1: float) -> int:
        """The peak RSS in [t0, t1], the high-water mark too where it was reset at t0."""
        peak = self.rss.peak(t0, t1)
        return max(peak, self.rss.hwm() or 0) if self.hwm_reset else peak

    def settle_baseline(self, seconds: float = 1.0) -> dict:
        """The baseline: the median RSS over ``seconds`` of idleness."""
        t0 = self.mark("baseline")
        time.sleep(seconds)
        samples = [r for t, r in self.rss.samples if t >= t0]
        self.baseline = int(statistics.median(samples)) if samples else self.rss.rss()
        return {"rss_mb": self.mb(self.baseline), "health": self.health.stats(t0, time.monotonic())}

    def single(self, name: str, run) -> dict:
        """``run()`` (one upload's reply), then SETTLE_S: its memory above the RSS before."""
        self.hwm_reset = self.rss.reset_hwm()
        before = self.rss.rss()
        t0 = self.mark(name)
        reply = run()
        t1 = time.monotonic()
        time.sleep(SETTLE_S)
        added = self.peak(t0, t1 + SETTLE_S) - before
        return {
            "reply": reply,
            "rss_before_mb": self.mb(before),
            "added_mb": self.mb(added),
            "above_baseline_mb": self.mb(before + added - self.baseline),
            "x_video_limit": round(added / self.video_bytes, 2),
            "x_body_limit": round(added / self.body_limit, 2),
            "settled_above_baseline_mb": self.mb(self.rss.rss() - self.baseline),
            "health": self.health.stats(t0, t1 + SETTLE_S),
        }

    def burst(self, port: int, full: list[bytes], halves: list[bytes], small: bytes, hold_s: float):
        """``full`` uploads at once; then ``halves`` half-sent and held ``hold_s`` while
        ``small`` is sent; then SETTLE_S. Statuses, peaks, the RSS after."""
        self.hwm_reset = self.rss.reset_hwm()
        before = self.rss.rss()
        t0 = self.mark(f"burst: {len(full)} uploads")
        with ThreadPoolExecutor(len(full)) as pool:
            replies = list(pool.map(lambda b: upload(port, b), full))
        t1 = time.monotonic()
        peak_full = self.peak(t0, t1)
        time.sleep(SETTLE_S)
        self.hwm_reset = self.rss.reset_hwm()
        before_half = self.rss.rss()
        t_half = self.mark(f"burst: {len(halves)} half-sent")
        sent = [threading.Event() for _ in halves]
        with ThreadPoolExecutor(len(halves)) as pool:
            futures = [
                pool.submit(upload, port, b, send=len(b) // 2, hold_s=hold_s, sent=e)
                for b, e in zip(halves, sent, strict=True)
            ]
            for event in sent:
                event.wait(300)
            t_held = self.mark("burst: small request")
            small_reply = upload(port, small)
            held = [f.result() for f in futures]
        t2 = self.mark("burst: ended")
        time.sleep(SETTLE_S)
        after = self.rss.rss()
        peak_held = self.rss.peak(t_held, t2)  # while every half-sent body is held
        peak = max(peak_full, self.peak(t_half, t2 + SETTLE_S))
        self.mark("settled")
        return {
            "uploads": {
                "replies": replies,
                "statuses": statuses(replies),
                "added_mb": self.mb(peak_full - before),
                "above_baseline_mb": self.mb(peak_full - self.baseline),
                "x_body_limit_each": round((peak_full - before) / len(full) / self.body_limit, 2),
                "after_above_baseline_mb": self.mb(before_half - self.baseline),
                "health": self.health.stats(t0, t1 + SETTLE_S),
            },
            "half_sent": {
                "replies": held,
                "statuses": statuses(held),
                "held_added_mb": self.mb(peak_held - before_half),
                "held_above_baseline_mb": self.mb(peak_held - self.baseline),
                "x_body_limit_each": round(
                    (peak_held - before_half) / len(halves) / self.body_limit, 2
                ),
                "small_request": small_reply,
                "health": self.health.stats(t_half, t2 + SETTLE_S),
            },
            "peak_above_baseline_mb": self.mb(peak - self.baseline),
            "after_above_baseline_mb": self.mb(after - self.baseline),
            "settle_s": SETTLE_S,
        }

    def timeline(self, resolution: float = 0.1) -> dict:
        """The RSS (MB, the max of each ``resolution`` s) from the first step on."""
        buckets: dict[int, int] = {}
        for t, r in self.rss.samples:
            if t >= self.zero:
                key = int((t - self.zero) / resolution)
                buckets[key] = max(buckets.get(key, 0), r)
        rows = [[round(k * resolution, 2), self.mb(r)] for k, r in sorted(buckets.items())]
        return {"resolution_s": resolution, "rss_mb": rows, "markers": self.markers}


def statuses(replies: list[dict]) -> dict[str, int]:
    """How many replies of each status (or outcome, where none came)."""
    return dict(Counter(str(r["status"] or r["outcome"]) for r in replies))


# ------------------------------------------------------------------------ presentation
# What report.py collects from this module: ``render``, its section of
# docs/benchmarks.md, and ``summary``, its row of README.md's table.


def _reply(reply: dict) -> str:
    if reply["status"] is None:
        return reply["outcome"]
    return f"{reply['status']}" + (f" `{reply['code']}`" if reply.get("code") else "")


def _added(mb: float) -> str:
    return f"{mb:.0f} MB" if mb >= 0 else f"none (RSS fell {-mb:.0f} MB)"


def _times(multiple: float) -> str:
    return f"{multiple:.2f}x" if multiple >= 0 else "-"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} ×{n}" for k, n in counts.items())


def _health(h: dict) -> str:
    if not h["polls"]:
        return "no poll"
    return f"{ms(h['p50_ms'])} / {ms(h['max_ms'])}" + (
        f", {h['failed']} failed" if h["failed"] else ""
    )


def render(result: dict) -> list[str]:
    """The section of docs/benchmarks.md (markdown lines, heading included)."""
    lim, b, server = result["limits"], result["burst"], result["server"]
    up, half = b["uploads"], b["half_sent"]
    code = result["machine"]["commit"]
    if result["machine"].get("package_modified"):
        code += " with uncommitted changes in sfllava_ext/"
    met = "met" if result["targets"]["burst_returns_within_100mb"] else "not met"
    out = [
        '<a id="serve-memory"></a>',
        "## The service's memory per upload: `sfllava serve` against its body limit",
        "",
        *provenance(result),
        f"Server (commit {code}): `{server['argv']}`. Limits: the video L = "
        f"{lim['max_video_mb']:g} MB, the body {lim['body_limit_mb']:.1f} MB (4/3 L + 1 MiB). "
        f"Baseline RSS {result['baseline']['rss_mb']:.0f} MB, after a warm-up request. "
        "Each upload is a chat request with a `data:video/mp4;base64,` URL of random bytes, "
        "sent over a raw socket; peak RSS from 20 ms samples and the kernel's VmHWM, reset "
        "before each step. The physical bound: a server that holds the body once costs 1x "
        "the body limit per upload; one that streams it to disk, its read buffers. "
        f"RSS read {b['settle_s']:g} s after each step. *Peak RSS added* counts new pages "
        "only: memory the server kept from an earlier step and reuses does not show (a "
        "lower bound; the half-sent bodies come after the burst's uploads). /health: "
        "polled every 50 ms, during each step and the 2 s after it.",
        "",
    ]
    rows = []
    for key, what in SINGLE.items():
        s = result["single"][key]
        rows.append(
            [
                what,
                f"{s['reply']['sent_bytes'] / MB:.1f} MB sent",
                _reply(s["reply"]),
                _added(s["added_mb"]),
                _times(s["x_video_limit"]),
                _times(s["x_body_limit"]),
                f"{s['settled_above_baseline_mb']:+.0f} MB",
                _health(s["health"]),
            ]
        )
    header = ["one upload", "body", "status", "peak RSS added", "x video limit"]
    out += table([*header, "x body limit", "RSS after, vs baseline", "/health p50 / max"], rows)
    small = half["small_request"]
    header = ["burst", "statuses", "peak RSS added", "vs baseline", "per upload, x body limit"]
    out += table(
        [*header, "/health p50 / max"],
        [
            [
                f"{len(up['replies'])} concurrent uploads, video just under L",
                _counts(up["statuses"]),
                _added(up["added_mb"]),
                f"{up['above_baseline_mb']:+.0f} MB",
                _times(up["x_body_limit_each"]),
                _health(up["health"]),
            ],
            [
                f"{len(half['replies'])} half-sent bodies held {result['settings']['hold_s']:g} s;"
                f" one small request meanwhile: {_reply(small)} in {ms(small['seconds'] * 1e3)}",
                _counts(half["statuses"]),
                _added(half["held_added_mb"]),
                f"{half['held_above_baseline_mb']:+.0f} MB",
                _times(half["x_body_limit_each"]),
                _health(half["health"]),
            ],
        ],
    )
    out += [
        f"Burst: peak RSS {b['peak_above_baseline_mb']:+.0f} MB above the baseline; "
        f"{b['settle_s']:g} s after it ended, {b['after_above_baseline_mb']:+.0f} MB "
        f"(target: within {TARGET_MB} MB, {met}). /health while idle: "
        f"{_health(result['baseline']['health'])}.",
        "",
    ]
    return out


def summary(result: dict) -> list[list[str]]:
    """README.md's summary row: one maximum-size upload, and the RSS after the burst."""
    one, b = result["single"]["under_limit"], result["burst"]
    lim = result["limits"]["max_video_mb"]
    met = "met" if result["targets"]["burst_returns_within_100mb"] else "not met"
    what = (
        f"`sfllava serve`: RSS added by one {lim:g} MB upload, x body limit / RSS left "
        f"{b['settle_s']:g} s after a burst"
    )
    return [
        summary_row(
            result,
            what,
            f"{one['x_body_limit']:.2f}x body limit / {b['after_above_baseline_mb']:+.0f} MB",
            f"1.00x (the body held once) / {TARGET_MB} MB",
            f"{one['x_body_limit']:.2f}x / {met}",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max-video-mb", type=float, default=None, help="L (default 64)")
    parser.add_argument("--uploads", type=int, default=4, help="concurrent uploads (N)")
    parser.add_argument("--half-sent", type=int, default=4, help="half-sent uploads (M)")
    parser.add_argument("--hold-s", type=float, default=3.0, help="how long they are held")
    parser.add_argument("--quick", action="store_true", help="L = 8 MB: a smoke test")
    parser.add_argument(
        "--server-arg", action="append", default=[], help="a server flag, as --server-arg=--x=1"
    )
    parser.add_argument(
        "--package-root",
        default=str(ROOT),
        help="the folder whose sfllava_ext the server imports (default: this checkout)",
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    package = os.path.abspath(args.package_root)
    from sfllava_ext.video.synthetic import write_synthetic_video

    video_mb = args.max_video_mb or (8 if args.quick else 64)
    video_bytes = int(video_mb * MB)
    body_limit = video_bytes * 4 // 3 + MB
    with tempfile.TemporaryDirectory(prefix="bench-serve-memory-") as workdir:
        # every body made before the server starts (the client's memory is not measured)
        clip = write_synthetic_video(
            os.path.join(workdir, "clip.mp4"), width=160, height=120, seconds=1, fps=10
        )
        small = chat_body(base64.b64encode(Path(clip).read_bytes()))
        blob = os.urandom(video_bytes + 3072)
        under = chat_body(base64.b64encode(blob[: (video_bytes - 4096) // 3 * 3]))
        over = chat_body(base64.b64encode(blob))
        too_big = under + b" " * (body_limit - len(under) + 4096)
        del blob
        full = [distinct(under, 100 + i) for i in range(args.uploads)]
        halves = [distinct(under, 200 + i) for i in range(args.half_sent)]
        port = free_port()
        proc, argv = start_server(port, video_mb, args.server_arg, workdir, package)
        rss, health = RssSampler(proc.pid), HealthPoller(port)
        steps = Steps(rss, health, video_bytes, body_limit)
        try:
            rss.start()
            warm_up = [upload(port, small) for _ in range(2)]
            if any(r["status"] != 200 for r in warm_up):
                print("warning: the warm-up request was not answered 200:", warm_up)
            time.sleep(1.0)
            health.start()
            baseline = steps.settle_baseline()
            single = {}
            for key, kwargs in (
                ("under_limit", {"body": under}),
                ("video_over_limit", {"body": over}),
                ("body_over_declared", {"body": too_big}),
                ("body_over_chunked", {"body": too_big, "chunked": True}),
            ):
                single[key] = steps.single(key, lambda kw=kwargs: upload(port, **kw))
            burst = steps.burst(port, full, halves, small, args.hold_s)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/health")
            health_after = json.loads(conn.getresponse().read())
        finally:
            rss.done.set()
            health.done.set()
            proc.send_signal(signal.SIGTERM)
            try:
                exit_code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                exit_code = "killed after 60 s"
            log = log_summary(workdir)
    result = {
        "machine": {**machine_info(), **commit(package)},
        "server": {
            "argv": " ".join(["sfllava", *argv[3:]]).replace(f" {port} ", " <port> "),
            "extra_args": args.server_arg,
            "exit": exit_code,
            "log": log,
            "health_after": health_after,
        },
        "limits": {
            "max_video_mb": video_mb,
            "video_bytes": video_bytes,
            "body_limit_bytes": body_limit,
            "body_limit_mb": round(body_limit / MB, 2),
        },
        "settings": {"uploads": args.uploads, "half_sent": args.half_sent, "hold_s": args.hold_s},
        "hwm_reset": steps.hwm_reset,
        "warm_up": warm_up,
        "baseline": baseline,
        "single": single,
        "burst": burst,
        "targets": {"burst_returns_within_100mb": burst["after_above_baseline_mb"] <= TARGET_MB},
        "timeline": steps.timeline(),
    }
    print(
        f"sfllava serve, L = {video_mb:g} MB, body limit {body_limit / MB:.1f} MB; baseline "
        f"RSS {baseline['rss_mb']:.0f} MB, /health idle {_health(baseline['health'])}"
    )
    for key, what in SINGLE.items():
        s = single[key]
        print(
            f"  {what:<38} {_reply(s['reply']):<28} +{s['added_mb']:>6.0f} MB "
            f"{s['x_body_limit']:>5.2f}x body limit, after {s['settled_above_baseline_mb']:+.0f}"
            f" MB, /health {_health(s['health'])}"
        )
    up, half = burst["uploads"], burst["half_sent"]
    print(
        f"  burst: {_counts(up['statuses'])}: +{up['added_mb']:.0f} MB, /health "
        f"{_health(up['health'])}; half-sent: {_counts(half['statuses'])}: "
        f"+{half['held_added_mb']:.0f} MB held, small request {_reply(half['small_request'])}"
        f", /health {_health(half['health'])}"
    )
    print(
        f"  burst peak {burst['peak_above_baseline_mb']:+.0f} MB, after "
        f"{burst['after_above_baseline_mb']:+.0f} MB above baseline; targets {result['targets']}"
    )
    print(f"  server exit: {exit_code}")
    default = Path(tempfile.gettempdir(), f"{RESULT}_quick.json") if args.quick else None
    path = args.json or default or RESULTS / f"{RESULT}.json"
    write_json(path, result)
    print("wrote", path)


if __name__ == "__main__":
    main()
