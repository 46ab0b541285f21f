"""What ``sfllava serve`` adds to a request: the service against an in-process loop over
the same requests, in one run, at 1, 4 and 8 concurrent clients.

    python benchmarks/bench_serve.py [--fresh 4] [--follow-ups 20] [--max-tokens 16]

The demo model (bf16), 720p 10 s 30 fps H.264 clips sent as ``file://`` URLs inside the
server's media dir, async ``httpx`` clients, 16 new tokens, greedy. Two kinds of request:

- **fresh**: a video the server has never seen (copies of one clip, each made distinct
  by an MP4 ``free`` box of its own at the end, so that the bytes and their SHA-256
  differ but the frames do not): the server checks the header, decodes, encodes and
  answers; the in-process loop calls ``SlowFastLlava.answer(path, question)``;
- **follow-up**: another question about a video whose session the server holds; the
  in-process loop calls ``VideoSession.answer`` on a session of the same clip.

Latency is per request, from sending it to having the whole answer; throughput is
requests over the wall time of the level. The in-process loop runs the same requests
one after the other (one model serves one request at a time either way). The server
runs in its own process on the same machine, idle while the in-process loop runs.
Targets: at most 15 ms more than in-process at p50 for a cached follow-up; at most 10%
more for a fresh video at one client. Writes benchmarks/results/serve_cpu.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING

from _common import (
    QUESTIONS,
    RESULTS,
    distinct_copy,
    draw_series,
    figure,
    healthy,
    image,
    latency_summary,
    log_axis,
    machine_info,
    ms,
    outside_legend,
    plot_name,
    provenance,
    summary_row,
    table,
    write_json,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: the committed result in benchmarks/results/, which report.py renders
RESULT = "serve_cpu"
LEVELS = (1, 4, 8)


def body(path: str, question: str, max_tokens: int) -> dict:
    """The chat-completion request of one question about one video."""
    parts = [
        {"type": "video_url", "video_url": {"url": f"file://{path}"}},
        {"type": "text", "text": question},
    ]
    return {"messages": [{"role": "user", "content": parts}], "max_tokens": max_tokens}


async def run_clients(base: str, jobs: list[tuple[str, str]], clients: int, max_tokens: int):
    """``jobs`` (path, question) spread over ``clients`` concurrent clients: the answers
    in job order, each request's latency (ms), the wall time (s), and each request's
    ``openai-processing-ms``."""
    import httpx

    answers: list[str | None] = [None] * len(jobs)
    latencies: list[float] = [0.0] * len(jobs)
    processing: list[float] = [0.0] * len(jobs)

    async def client(worker: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=600) as http:
            for i in range(worker, len(jobs), clients):
                start = time.perf_counter()
                reply = await http.post("/v1/chat/completions", json=body(*jobs[i], max_tokens))
                latencies[i] = (time.perf_counter() - start) * 1e3
                reply.raise_for_status()
                answers[i] = reply.json()["choices"][0]["message"]["content"]
                processing[i] = float(reply.headers["openai-processing-ms"])

    start = time.perf_counter()
    await asyncio.gather(*(client(w) for w in range(clients)))
    return answers, latencies, time.perf_counter() - start, processing


def in_process(call, jobs: list[tuple[str, str]]) -> tuple[list[str], list[float], float]:
    """``call(path, question)`` for each job in turn: the answers, latencies (ms), wall (s)."""
    answers, latencies = [], []
    start = time.perf_counter()
    for job in jobs:
        t0 = time.perf_counter()
        answers.append(call(*job))
        latencies.append((time.perf_counter() - t0) * 1e3)
    return answers, latencies, time.perf_counter() - start


def start_server(media: str, port: int, threads: int) -> subprocess.Popen:
    """``sfllava serve --demo`` on ``port``, once it answers ``/health``."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    argv = [sys.executable, "-m", "sfllava_ext.cli", "serve", "--demo", "--port", str(port)]
    argv += ["--media-dir", media, "--dtype", "bfloat16", "--log-level", "warning"]
    proc = subprocess.Popen(argv, env=env, cwd=media)  # not the checkout: the package
    if not healthy(proc, port, 300):
        proc.kill()
        sys.exit("bench_serve: the server did not start")
    return proc


# ------------------------------------------------------------------ presentation
# What report.py collects from this module: ``render``, its section of
# docs/benchmarks.md; ``plots``, the figures that section shows (docs/plots/); and
# ``summary``, its row of README.md's table.


def render(result: dict) -> list[str]:
    """The section of docs/benchmarks.md (markdown lines, heading included)."""
    targets = result["targets"]
    out = [
        '<a id="serve"></a>',
        "## The service: `sfllava serve` against an in-process loop",
        "",
        *provenance(result),
        f"Model: {result['model']}. Clips: {result['clip']}, sent as `file://` URLs. "
        f"{result['max_tokens']} new tokens, greedy, async `httpx` clients. *Fresh*: a video "
        "the server has not seen (distinct bytes, same frames); *follow-up*: another "
        "question about a video whose session the server holds. The in-process loop runs "
        "the same requests one after the other (`SlowFastLlava.answer`, "
        "`VideoSession.answer`). *Model*: the server's own time on the request "
        "(`openai-processing-ms`); the rest of the service's latency is HTTP and waiting "
        "for the one worker. Both gave the same answers. Targets: at most 15 ms added at "
        "p50 to a follow-up ("
        f"{'met' if targets['follow_up_adds_at_most_15ms_p50'] else 'not met'}), at "
        "most 10% to a fresh video at one client ("
        f"{'met' if targets['fresh_adds_at_most_10pct_at_one_client'] else 'not met'}).",
        "",
        *image(plot_name(result, "serve"), "service latency over concurrency, against in-process"),
    ]
    rows = []
    for clients, level in result["levels"].items():
        for kind, r in level.items():
            sv, ip = r["service"], r["in_process"]
            rows.append(
                [
                    clients,
                    kind.replace("_", "-"),
                    f"{ms(sv['p50_ms'])} / {ms(sv['p99_ms'])}",
                    f"{sv['throughput_rps']:.2f}",
                    f"{ms(ip['p50_ms'])} / {ms(ip['p99_ms'])}",
                    f"{ip['throughput_rps']:.2f}",
                    f"{r['added_p50_ms']:+.1f} ms ({r['added_p50_fraction']:+.0%})",
                    ms(r["service_processing_p50_ms"]),
                ]
            )
    header = ["clients", "request", "service p50 / p99", "req/s", "in-process p50 / p99"]
    out += table([*header, "req/s", "added at p50", "model p50"], rows)
    return out


def plots(result: dict) -> dict[str, Figure]:
    """The figure of docs/benchmarks.md: latency over the number of clients, a panel per
    kind of request, the service against the in-process loop."""
    from matplotlib.ticker import NullLocator

    levels = result["levels"]
    clients = [int(n) for n in levels]
    title = "sfllava serve: latency over concurrent clients, against an in-process loop"
    fig, axes = figure(result, title, ncols=2, sharey=True)
    for ax, kind in zip(axes, ("fresh", "follow_up"), strict=True):
        runs = [level[kind] for level in levels.values()]
        series = [
            ("in-process loop p50", [r["in_process"]["p50_ms"] for r in runs], "reference"),
            ("in-process loop p99", [r["in_process"]["p99_ms"] for r in runs], "reference"),
            ("service p50", [r["service"]["p50_ms"] for r in runs], "ours"),
            ("service p99", [r["service"]["p99_ms"] for r in runs], "ours"),
            (
                "floor: the model's own time, p50",
                [r["service_processing_p50_ms"] for r in runs],
                "bound",
            ),
        ]
        draw_series(ax, clients, series)
        ax.set_xscale("log", base=2)
        ax.set_xticks(clients, [str(n) for n in clients])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.margins(x=0.08)
        log_axis(ax)
        ax.set_title("a fresh video" if kind == "fresh" else "a follow-up question")
        ax.set_xlabel("concurrent clients (log scale)")
    axes[0].set_ylabel("latency (ms, log scale)")
    outside_legend(axes[-1])
    return {plot_name(result, "serve"): fig}


def summary(result: dict) -> list[list[str]]:
    """README.md's summary row: one client, a cached follow-up and a fresh video."""
    one = result["levels"]["1"]
    follow, fresh = one["follow_up"], one["fresh"]
    what = "`sfllava serve` at one client: a cached follow-up / a fresh video (demo, 720p)"
    return [
        summary_row(
            result,
            what,
            f"{ms(follow['service']['p50_ms'])} / {ms(fresh['service']['p50_ms'])}",
            f"in-process {ms(follow['in_process']['p50_ms'])} / "
            f"{ms(fresh['in_process']['p50_ms'])}",
            f"{follow['added_p50_ms']:+.1f} ms / {fresh['added_p50_fraction']:+.0%}",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fresh", type=int, default=4, help="fresh videos per client level")
    parser.add_argument("--follow-ups", type=int, default=20, help="follow-ups per level")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    import torch

    from sfllava_ext import SlowFastLlava
    from sfllava_ext.models.demo import demo_model, demo_tokenizer
    from sfllava_ext.video.synthetic import write_synthetic_video

    torch.set_num_threads(args.threads)
    tokenizer = demo_tokenizer()
    sf = SlowFastLlava(demo_model(tokenizer, dtype=torch.bfloat16), tokenizer)
    n = args.max_tokens
    with tempfile.TemporaryDirectory() as media:
        clip = write_synthetic_video(
            os.path.join(media, "720p.mp4"), width=1280, height=720, seconds=10, fps=30
        )
        copies = iter(range(10_000))
        port = socket.socket()
        port.bind(("127.0.0.1", 0))
        number = port.getsockname()[1]
        port.close()
        server = start_server(media, number, args.threads)
        base = f"http://127.0.0.1:{number}"
        try:
            # warm both sides; the server's session of the clip serves the follow-ups
            asyncio.run(run_clients(base, [(clip, QUESTIONS[0])], 1, n))
            session = sf.session(clip)
            session.answer(QUESTIONS[0], max_new_tokens=n)
            sf.answer(clip, QUESTIONS[0], max_new_tokens=n)
            levels = {}
            for clients in LEVELS:
                count = args.fresh * (1 if clients == 1 else 2)
                fresh = [
                    (
                        distinct_copy(clip, os.path.join(media, f"c{i}.mp4"), i),
                        QUESTIONS[i % len(QUESTIONS)],
                    )
                    for i in (next(copies) for _ in range(count))
                ]
                follow = [(clip, QUESTIONS[i % len(QUESTIONS)]) for i in range(args.follow_ups)]
                row = {}
                for kind, jobs, call in (
                    ("fresh", fresh, lambda p, q: sf.answer(p, q, max_new_tokens=n)),
                    ("follow_up", follow, lambda p, q: session.answer(q, max_new_tokens=n)),
                ):
                    local = in_process(call, jobs)
                    served = asyncio.run(run_clients(base, jobs, clients, n))
                    assert served[0] == local[0], f"{kind}: the service's answers differ"
                    row[kind] = {
                        "service": latency_summary(served[1], served[2], "ms"),
                        "in_process": latency_summary(local[1], local[2], "ms"),
                        # the model's own time in the server: the rest is HTTP and queueing
                        "service_processing_p50_ms": statistics.median(served[3]),
                    }
                    s, p = row[kind]["service"], row[kind]["in_process"]
                    row[kind]["added_p50_ms"] = s["p50_ms"] - p["p50_ms"]
                    row[kind]["added_p50_fraction"] = s["p50_ms"] / p["p50_ms"] - 1
                for path, _ in fresh:
                    os.remove(path)
                levels[str(clients)] = row
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    one = levels["1"]
    targets = {
        "follow_up_adds_at_most_15ms_p50": one["follow_up"]["added_p50_ms"] <= 15,
        "fresh_adds_at_most_10pct_at_one_client": one["fresh"]["added_p50_fraction"] <= 0.10,
    }
    print(f"sfllava serve against in-process, demo model (bf16), 720p 10 s clips, {n} tokens")
    print(
        f"{'clients':>7} {'kind':<10} {'service p50':>12} {'p99':>9} {'req/s':>7} "
        f"{'in-process p50':>15} {'p99':>9} {'req/s':>7} {'added p50':>10}"
    )
    for clients, row in levels.items():
        for kind, r in row.items():
            s, p = r["service"], r["in_process"]
            print(
                f"{clients:>7} {kind:<10} {s['p50_ms']:>10.1f}ms {s['p99_ms']:>7.1f}ms "
                f"{s['throughput_rps']:>7.2f} {p['p50_ms']:>13.1f}ms {p['p99_ms']:>7.1f}ms "
                f"{p['throughput_rps']:>7.2f} {r['added_p50_ms']:>8.1f}ms "
                f"{r['service_processing_p50_ms']:>8.1f}ms"
            )
    print("targets:", targets)
    result = {
        "machine": machine_info(),
        "threads": args.threads,
        "clip": "720p 10 s 30 fps H.264 (libx264 defaults), 50 frames",
        "model": "demo (CLIP 64/256/4 layers, Llama 128/256/2 layers), bf16, random weights",
        "max_tokens": n,
        "levels": levels,
        "targets": targets,
    }
    path = args.json or str(RESULTS / f"{RESULT}.json")
    write_json(path, result)
    print("wrote", path)


if __name__ == "__main__":
    main()
