"""``sfllava serve --engine vllm`` (vLLM's OpenAI server with the SlowFast plugin) against
``sfllava serve`` (this package's one-worker service), in one run, on the same model,
videos and frames, at 1, 4, 8 and 16 concurrent clients.

    python benchmarks/bench_vllm.py [--num-frames 50] [--fresh 12] [--follow-ups 64]

Run it with the Python that has vLLM (``/work/vllm-venv/bin/python``). The model: the
LLaVA-NeXT demo checkpoint folder (``vllm_plugin.checkpoint.demo_checkpoint("next")``,
float32), which both servers load (``--model FOLDER --dtype float32``). The videos:
320x240 2 s 30 fps H.264 clips (``write_synthetic_video``, a distinct ``variant`` per
video, so distinct bytes), ``file://`` URLs inside the servers' media dir. The official
``openai`` client, one thread per concurrent client, ``max_tokens`` 8, temperature 0.
Kinds of request:

- **fresh**: a video the server has not seen (a distinct clip per request, the same
  clips for both servers);
- **follow-up**: another question about a video the server has seen. Ours: the same
  ``file://`` URL (its session cache holds the visual tokens and the prompt's KV).
  vLLM, each way a client can avoid the decode: *embeds*, the video's visual tokens
  precomputed with our model on the same folder (``VideoSession.save``) sent as
  ``client.video_embeds_part`` (the part built once); *uuid*, vLLM's multimodal uuid
  (``video_url`` with a ``uuid`` once, then ``video_url: null`` with that ``uuid``);
  *url*, the same ``file://`` URL again (vLLM's processor cache, keyed by content).

Latency is per request, from sending it to having the whole answer; throughput is
requests over the wall time of the level. Each server runs alone (one at a time, the
other not started). Also measured: the CPU time of the server's process tree per level
(psutil), to show where the 2-core machine bounds both, and the in-process time of our
model alone on the same requests (``SlowFastLlava.answer``, ``VideoSession.answer``)
before either server starts, and, last, vLLM with the plugin in this process (``LLM``:
no HTTP server, no engine process), a fresh video alone and 64 follow-ups at once.
Token counts: the prompt tokens of a request
(``usage.prompt_tokens``) against vLLM's stock video path for the same frames
(LLaVA-NeXT-Video: ``num_frames * ceil(24/2)**2``; OneVision:
``num_frames * ceil(27/2)**2 + 1``). Targets: at 8 clients, vLLM's follow-up throughput
at least 3x ours; vLLM's fresh-video latency at one client no worse than ours. Writes
benchmarks/results/vllm.json.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from _common import (
    QUESTIONS,
    RESULTS,
    free_port,
    healthy,
    latency_summary,
    machine_info,
    provenance,
    summary_row,
    table,
    write_json,
)

#: the committed result in benchmarks/results/, which report.py renders
RESULT = "vllm"
LEVELS = (1, 4, 8, 16)
#: the follow-up ways of each engine, in the order they run
FOLLOW_UPS = {"sfllava": ("url",), "vllm": ("embeds", "uuid", "url")}


# ------------------------------------------------------------------------ the servers


def start_server(engine: str, folder: str, media: str, port: int, args) -> subprocess.Popen:
    """``sfllava serve`` (``--engine`` ``engine``) of ``folder`` on ``port``, in its own
    process group, once it answers ``/health``."""

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "VLLM_CPU_KVCACHE_SPACE": "1"}
    argv = [sys.executable, "-m", "sfllava_ext.cli", "serve", "--engine", engine]
    argv += ["--model", folder, "--dtype", "float32", "--num-frames", str(args.num_frames)]
    argv += ["--port", str(port), "--media-dir", media, "--log-level", "warning"]
    if engine == "vllm":
        argv.append("--allow-embeds")  # the embeds follow-ups
    log = open(os.path.join(media, f"{engine}.log"), "w")
    proc = subprocess.Popen(
        argv, env=env, cwd=media, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    if healthy(proc, port, 600, period_s=1):
        return proc
    stop_server(proc)
    log.flush()
    with open(log.name) as f:
        tail = f.read()[-3000:]
    raise RuntimeError(f"bench_vllm: the {engine} server did not start:\n{tail}")


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL if it is still there after 30 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def tree_cpu_s(proc: subprocess.Popen) -> float:
    """User + system CPU seconds of ``proc`` and its live descendants."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(proc.pid)
        for p in [root, *root.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


class Client:
    """One server's chat completions, with the official ``openai`` client."""

    def __init__(self, port: int, max_tokens: int):
        import openai

        self.openai = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", timeout=600, max_retries=0
        )
        self.model = self.openai.models.list().data[0].id
        self.max_tokens = max_tokens

    def ask(self, part: dict, question: str):
        """(latency s, answer, prompt tokens) of one question about one video part."""
        content = [part, {"type": "text", "text": question}]
        start = time.perf_counter()
        reply = self.openai.chat.completions.create(
            model=self.model,
            messages=[{"role": "user", "content": content}],
            max_tokens=self.max_tokens,
            temperature=0,
        )
        latency = time.perf_counter() - start
        return latency, reply.choices[0].message.content, reply.usage.prompt_tokens


def run_level(client: Client, jobs: list[tuple[dict, str]], clients: int, proc) -> dict:
    """``jobs`` (part, question) over ``clients`` threads: latencies, throughput, the
    server's CPU time over the level, the prompt tokens of the first reply."""
    results: list = [None] * len(jobs)
    lock = threading.Lock()
    pending = iter(range(len(jobs)))

    def worker() -> None:
        while True:
            with lock:
                i = next(pending, None)
            if i is None:
                return
            results[i] = client.ask(*jobs[i])

    cpu0 = tree_cpu_s(proc)
    client0 = time.process_time()  # this process: the clients' threads
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(worker) for _ in range(clients)]:
            f.result()
    wall = time.perf_counter() - start
    cpu = tree_cpu_s(proc) - cpu0
    client = time.process_time() - client0
    out = latency_summary([r[0] for r in results], wall, "s")
    out["client_cpu_s_per_request"] = client / len(jobs)
    out["machine_cpu_utilisation"] = (cpu + client) / (wall * (os.cpu_count() or 1))
    out["server_cpu_s_per_request"] = cpu / len(jobs)
    out["server_cpu_utilisation"] = cpu / (wall * (os.cpu_count() or 1))
    out["prompt_tokens"] = results[0][2]
    out["first_answer"] = results[0][1]
    return out


def url_part(path: str, uuid: str | None = None) -> dict:
    from sfllava_ext.vllm_plugin.client import video_url_part

    return video_url_part(f"file://{path}", uuid=uuid)


def bench_engine(engine, folder, media, fresh_sets, seen, session_file, args) -> dict:
    """One server: warm-up, then fresh and each follow-up way at every level."""
    from sfllava_ext.vllm_plugin.client import video_embeds_part, video_url_part

    port = free_port()
    t0 = time.perf_counter()
    proc = start_server(engine, folder, media, port, args)
    startup = time.perf_counter() - t0
    try:
        client = Client(port, args.max_tokens)
        ways = {"url": url_part(seen)}
        if engine == "vllm":
            ways["embeds"] = video_embeds_part(session_file)  # built once, as a client would
            ways["uuid"] = video_url_part(None, uuid="bench-seen")
            client.ask(url_part(seen, uuid="bench-seen"), QUESTIONS[0])  # registers the uuid
            client.ask(ways["embeds"], QUESTIONS[0])
        warm = client.ask(url_part(seen), QUESTIONS[0])  # warm-up: the seen video
        levels = {}
        for clients in args.levels:
            row = {}
            fresh = [
                (url_part(p), QUESTIONS[i % len(QUESTIONS)])
                for i, p in enumerate(fresh_sets[clients])
            ]
            row["fresh"] = run_level(client, fresh, clients, proc)
            count = max(args.follow_ups, 2 * clients)
            for way in FOLLOW_UPS[engine]:
                jobs = [(ways[way], QUESTIONS[(i + 1) % len(QUESTIONS)]) for i in range(count)]
                row[f"follow_up_{way}"] = run_level(client, jobs, clients, proc)
            levels[str(clients)] = row
            p50 = {k: round(v["p50_s"], 3) for k, v in row.items()}
            rps = {k: round(v["throughput_rps"], 2) for k, v in row.items()}
            print(engine, clients, "p50 s", p50, "req/s", rps, flush=True)
    finally:
        stop_server(proc)
    return {
        "startup_s": startup,
        "warm_up": {"answer": warm[1], "prompt_tokens": warm[2]},
        "levels": levels,
    }


# ------------------------------------------------------------------------ token counts


def token_counts(num_frames: int, prompt_tokens: int) -> dict:
    """The SlowFast visual tokens per video against vLLM's stock video path, for the
    same frames, per family (the published grids: CLIP 336/14 = 24, SigLIP 384/14 = 27)."""
    from sfllava_ext.encoder.aggregation import num_visual_tokens

    defaults = _family_defaults()
    out = {}
    for family, grid, stock_per_frame, extra in (
        ("next", 24, math.ceil(24 / 2) ** 2, 0),
        ("next_video", 24, math.ceil(24 / 2) ** 2, 0),
        ("onevision", 27, math.ceil(27 / 2) ** 2, 1),
    ):
        slowfast = num_visual_tokens(num_frames, (grid, grid), defaults[family])
        stock = num_frames * stock_per_frame + extra
        out[family] = {
            "aggregation": defaults[family],
            "grid": grid,
            "slowfast_visual_tokens": slowfast,
            "stock_video_tokens": stock,
            "stock_path": "LLaVA-NeXT-Video (LLaVA-NeXT has none)"
            if family == "next"
            else ("LlavaNextVideo" if family == "next_video" else "LlavaOnevision"),
            "stock_over_slowfast": stock / slowfast,
        }
    measured = out["next"]
    text = prompt_tokens - measured["slowfast_visual_tokens"]
    out["measured_next"] = {
        "prompt_tokens_slowfast": prompt_tokens,
        "text_tokens": text,
        "prompt_tokens_stock": measured["stock_video_tokens"] + text,
        "stock_over_slowfast": (measured["stock_video_tokens"] + text) / prompt_tokens,
        # the demo's (and the published LLaVA-NeXT 7B's) context: 4096 tokens
        "stock_fits_4096_context": measured["stock_video_tokens"] + text <= 4096,
    }
    return out


def _family_defaults() -> dict[str, str]:
    from sfllava_ext.models.families.llava_next import LLAVA_NEXT
    from sfllava_ext.models.families.next_video import NEXT_VIDEO
    from sfllava_ext.models.families.onevision import ONEVISION

    return {
        "next": LLAVA_NEXT.default_slowfast,
        "next_video": NEXT_VIDEO.default_slowfast,
        "onevision": ONEVISION.default_slowfast,
    }


# ------------------------------------------------------------------ presentation
# What report.py collects from this module: ``render``, its section of
# docs/benchmarks.md, and ``summary``, its row of README.md's table.


def _s(value: float) -> str:
    return f"{value:.3f} s"


def render(result: dict) -> list[str]:
    """The section of docs/benchmarks.md (markdown lines, heading included)."""
    targets, tokens = result["targets"], result["tokens"]
    bound = result["bound"]
    out = [
        '<a id="vllm"></a>',
        "## vLLM: `sfllava serve --engine vllm` against `sfllava serve`",
        "",
        *provenance(result),
        f"Model: {result['model']}, served by both from the same folder. Clips: "
        f"{result['clip']}, {result['num_frames']} frames, sent as `file://` URLs. "
        f"{result['max_tokens']} new tokens, temperature 0, the `openai` client, one "
        "thread per client; each server alone on the machine. *Fresh*: a video the "
        "server has not seen (a distinct clip per request). *Follow-up*: another question "
        "about a seen video; ours: the same URL (its session cache); vLLM: *embeds* "
        "(the visual tokens precomputed with our model, `client.video_embeds_part`), "
        "*uuid* (vLLM's multimodal uuid, `video_url: null`), *url* (the same URL again). "
        "*CPU*: the server's process tree's CPU time over the level, as a share of "
        f"the machine's {result['machine']['cores']} cores, and per request. The two "
        f"servers' first answers at each level {'agree' if result['answers_agree'] else 'differ'}"
        " (leading spaces aside).",
        "",
    ]
    rows = []
    for engine in ("sfllava", "vllm"):
        for clients, level in result["engines"][engine]["levels"].items():
            for kind, r in level.items():
                rows.append(
                    [
                        engine,
                        clients,
                        kind.replace("follow_up_", "follow-up: "),
                        f"{_s(r['p50_s'])} / {_s(r['p99_s'])}",
                        f"{r['throughput_rps']:.2f}",
                        f"{r['server_cpu_utilisation']:.0%}",
                        f"{r['server_cpu_s_per_request']:.3f} s",
                        str(r["requests"]),
                    ]
                )
    header = ["engine", "clients", "request", "p50 / p99", "req/s", "CPU", "CPU s/request"]
    header.append("requests")
    out += table(header, rows)
    t = targets
    out += [
        "Targets (at 8 clients, vLLM's follow-up throughput at least 3x ours; at one "
        "client, vLLM's fresh-video p50 no worse than ours):",
        "",
    ]
    out += [
        f"- follow-up at 8 clients, vLLM {way} / ours: "
        f"{x['ratio']:.2f}x ({x['vllm_rps']:.2f} / {x['ours_rps']:.2f} req/s): "
        f"{'met' if x['met'] else 'not met'}"
        for way, x in t["follow_up_3x_at_8_clients"].items()
    ]
    f = t["fresh_no_worse_at_one_client"]
    out += [
        f"- fresh at one client: vLLM {_s(f['vllm_p50_s'])}, ours {_s(f['ours_p50_s'])} "
        f"p50: {'met' if f['met'] else 'not met'}",
        "",
        f"The bound: {bound['note']}",
        "",
    ]
    m = tokens["measured_next"]
    out += [
        f"Prompt tokens per request ({result['num_frames']} frames): SlowFast "
        f"{m['prompt_tokens_slowfast']} (`usage.prompt_tokens`), vLLM's stock video path "
        f"{m['prompt_tokens_stock']} (LLaVA-NeXT has none; LLaVA-NeXT-Video's "
        f"{tokens['next']['stock_video_tokens']} visual tokens, same text), "
        f"{m['stock_over_slowfast']:.2f}x; the stock count "
        f"{'fits' if m['stock_fits_4096_context'] else 'does not fit'} the demo's (and "
        "LLaVA-NeXT 7B's) 4096-token context. Visual tokens per video, by family:",
        "",
    ]
    trows = [
        [
            family,
            f"`{tokens[family]['aggregation']}`",
            f"{tokens[family]['grid']} x {tokens[family]['grid']}",
            str(tokens[family]["slowfast_visual_tokens"]),
            str(tokens[family]["stock_video_tokens"]),
            f"{tokens[family]['stock_over_slowfast']:.2f}x",
        ]
        for family in ("next", "next_video", "onevision")
    ]
    out += table(
        ["family", "aggregation", "grid", "SlowFast", "vLLM stock", "stock / SlowFast"], trows
    )
    return out


def summary(result: dict) -> list[list[str]]:
    """README.md's summary row: follow-up throughput at 8 clients (vLLM's best way
    against ours) and the prompt tokens against vLLM's stock video path."""
    follow = result["targets"]["follow_up_3x_at_8_clients"]
    way = max(follow, key=lambda w: follow[w]["ratio"])
    best = follow[way]
    m = result["tokens"]["measured_next"]
    what = (
        "`sfllava serve --engine vllm` against `sfllava serve`: follow-ups/s at 8 clients "
        f"(vLLM {way}); prompt tokens against vLLM's stock video path "
        f"({result['num_frames']} frames)"
    )
    return [
        summary_row(
            result,
            what,
            f"{best['vllm_rps']:.2f} req/s; {m['prompt_tokens_slowfast']} tokens",
            f"ours {best['ours_rps']:.2f} req/s; stock {m['prompt_tokens_stock']} tokens",
            f"{best['ratio']:.2f}x; {m['stock_over_slowfast']:.2f}x fewer",
        )
    ]


# ------------------------------------------------------------------------- the run


def our_model(folder: str, seen: str, args):
    """Our model on ``folder`` (float32, the servers' frames), in this process, and the
    seen video's session file (its visual tokens, for vLLM's *embeds* follow-ups)."""
    import torch

    from sfllava_ext import SlowFastLlava

    torch.set_num_threads(args.threads)
    sf = SlowFastLlava.from_pretrained(
        folder, dtype=torch.float32, device="cpu", num_frames=args.num_frames
    )
    session = sf.session(seen)
    session_file = os.path.join(os.path.dirname(seen), "seen.safetensors")
    session.save(session_file)
    return sf, session, session_file


def in_process_times(sf, session, fresh: list[str], args) -> dict:
    """Our model alone, in this process, on ``args.threads`` threads, with no server
    running: the median time of a follow-up (``VideoSession.answer``, the prefix cached)
    and of a fresh video (``SlowFastLlava.answer``)."""
    n = args.max_tokens
    session.answer(QUESTIONS[0], max_new_tokens=n)
    follow = []
    for i in range(16):
        t0 = time.perf_counter()
        session.answer(QUESTIONS[(i + 1) % len(QUESTIONS)], max_new_tokens=n)
        follow.append(time.perf_counter() - t0)
    fresh_t = []
    for i, path in enumerate(fresh):
        t0 = time.perf_counter()
        sf.answer(path, QUESTIONS[i % len(QUESTIONS)], max_new_tokens=n)
        fresh_t.append(time.perf_counter() - t0)
    return {
        "in_process_follow_up_p50_s": statistics.median(follow),
        "in_process_fresh_p50_s": statistics.median(fresh_t),
    }


def vllm_in_process(folder: str, media: str, fresh: list[str], seen: str, session_file, args):
    """vLLM with the plugin in this process (``LLM``, no server, no engine process): the
    median time of a fresh video asked alone, and the throughput of 64 follow-ups on the
    seen video submitted at once (continuous batching, the processor and prefix caches
    warm), sent as the same URL and as precomputed tokens. Runs last: it imports vLLM
    into this process."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from transformers import AutoConfig, AutoTokenizer
    from vllm import LLM, SamplingParams

    from sfllava_ext.vllm_plugin.client import video_embeds_part
    from sfllava_ext.vllm_plugin.settings import ARCHITECTURES, PLACEHOLDERS
    from sfllava_ext.vllm_plugin.templates import template_for

    config = AutoConfig.from_pretrained(folder)
    template = template_for(
        AutoTokenizer.from_pretrained(folder), config, PLACEHOLDERS[config.model_type]
    ).template
    llm = LLM(
        model=folder,
        hf_overrides={
            "architectures": [ARCHITECTURES[config.model_type]],
            "sfllava": {"num_frames": args.num_frames},
        },
        dtype="float32",
        limit_mm_per_prompt={"video": 1},
        enable_mm_embeds=True,
        enable_prefix_caching=True,
        media_io_kwargs={"video": {"num_frames": args.num_frames, "video_backend": "sfllava"}},
        allowed_local_media_path=media,
    )
    params = SamplingParams(temperature=0, max_tokens=args.max_tokens)

    def chats(part, n: int, offset: int = 0):
        return [
            [
                {
                    "role": "user",
                    "content": [
                        part,
                        {"type": "text", "text": QUESTIONS[(i + offset) % len(QUESTIONS)]},
                    ],
                }
            ]
            for i in range(n)
        ]

    def run(conversations) -> float:
        start = time.perf_counter()
        llm.chat(conversations, params, chat_template=template, use_tqdm=False)
        return time.perf_counter() - start

    run(chats(url_part(seen), 1))  # warm-up, and the seen video cached
    fresh_t = [run(chats(url_part(path), 1, i)) for i, path in enumerate(fresh)]
    embeds = video_embeds_part(session_file)
    run(chats(embeds, 1))
    batched = {
        way: 64 / run(chats(part, 64, 1))
        for way, part in (("url", url_part(seen)), ("embeds", embeds))
    }
    return {
        "vllm_in_process_fresh_p50_s": statistics.median(fresh_t),
        "vllm_in_process_follow_up_batch64_rps": batched,
    }


def busy_cores() -> float:
    """How many cores the machine keeps busy, over 2 s (psutil)."""
    import psutil

    return psutil.cpu_percent(interval=2) / 100 * (os.cpu_count() or 1)


def wait_idle(limit_s: float = 180) -> float:
    """Waits (at most ``limit_s``) until others use under half a core; returns the
    cores busy when it stopped waiting."""
    deadline = time.monotonic() + limit_s
    busy = busy_cores()
    while busy > 0.5 and time.monotonic() < deadline:
        busy = busy_cores()
    return busy


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num-frames", type=int, default=50)
    parser.add_argument("--fresh", type=int, default=12, help="fresh videos at the lowest level")
    parser.add_argument("--follow-ups", type=int, default=64, help="follow-ups per level, at least")
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument(
        "--levels", default=",".join(map(str, LEVELS)), help="concurrent clients (8 and 1 needed)"
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    args.levels = tuple(int(c) for c in args.levels.split(","))
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        sys.exit("bench_vllm: run it with the Python that has vLLM (/work/vllm-venv/bin/python)")
    from sfllava_ext.video.synthetic import write_synthetic_video
    from sfllava_ext.vllm_plugin.checkpoint import demo_checkpoint

    started = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-vllm-") as media:
        media = os.path.realpath(media)
        folder = demo_checkpoint("next", os.path.join(media, "ckpt"))

        def clip(variant: int) -> str:
            return write_synthetic_video(
                os.path.join(media, f"v{variant}.mp4"),
                width=320,
                height=240,
                seconds=2,
                variant=variant,
            )

        seen = clip(0)
        variants = iter(range(1, 10_000))
        # the same fresh clips for both servers: each has seen none of them
        fresh_sets = {
            c: [clip(next(variants)) for _ in range(max(args.fresh, 2 * c))] for c in args.levels
        }
        paths = [seen, *(p for ps in fresh_sets.values() for p in ps)]
        digests = {hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths}
        assert len(digests) == len(paths), "the clips' bytes are not all distinct"
        sf, session, session_file = our_model(folder, seen, args)
        engines, busy = {}, {}
        for engine in ("sfllava", "vllm"):
            busy[engine] = wait_idle()
            engines[engine] = bench_engine(
                engine, folder, media, fresh_sets, seen, session_file, args
            )
        busy["in_process"] = wait_idle()
        bound = in_process_times(sf, session, fresh_sets[1], args)
        del sf, session
        busy["vllm_in_process"] = wait_idle()
        bound.update(vllm_in_process(folder, media, fresh_sets[1], seen, session_file, args))
    load_after = os.getloadavg()
    ours8, theirs8 = engines["sfllava"]["levels"]["8"], engines["vllm"]["levels"]["8"]
    follow = {}
    for way in FOLLOW_UPS["vllm"]:
        v, o = (
            theirs8[f"follow_up_{way}"]["throughput_rps"],
            ours8["follow_up_url"]["throughput_rps"],
        )
        follow[way] = {"vllm_rps": v, "ours_rps": o, "ratio": v / o, "met": v >= 3 * o}
    f_v = engines["vllm"]["levels"]["1"]["fresh"]["p50_s"]
    f_o = engines["sfllava"]["levels"]["1"]["fresh"]["p50_s"]
    targets = {
        "follow_up_3x_at_8_clients": follow,
        "fresh_no_worse_at_one_client": {"vllm_p50_s": f_v, "ours_p50_s": f_o, "met": f_v <= f_o},
    }
    cores = os.cpu_count() or 1
    best = max(follow, key=lambda w: follow[w]["ratio"])
    ours_f, theirs_f = ours8["follow_up_url"], theirs8[f"follow_up_{best}"]
    fresh_o, fresh_v = (
        engines["sfllava"]["levels"]["1"]["fresh"],
        engines["vllm"]["levels"]["1"]["fresh"],
    )
    bound.update(
        {
            # a server cannot answer more than cores / (CPU s per request) requests/s
            "ours_follow_up_cpu_s_at_8": ours_f["server_cpu_s_per_request"],
            "vllm_follow_up_cpu_s_at_8": theirs_f["server_cpu_s_per_request"],
            "ours_follow_up_ceiling_rps": cores / ours_f["server_cpu_s_per_request"],
            "vllm_follow_up_ceiling_rps": cores / theirs_f["server_cpu_s_per_request"],
            "vllm_cpu_s_needed_for_3x": cores / (3 * ours_f["throughput_rps"]),
            "ours_fresh_cpu_s_at_1": fresh_o["server_cpu_s_per_request"],
            "vllm_fresh_cpu_s_at_1": fresh_v["server_cpu_s_per_request"],
        }
    )
    bound["note"] = (
        f"at 8 clients the servers' process trees keep "
        f"{ours_f['server_cpu_utilisation']:.0%} (ours) and "
        f"{theirs_f['server_cpu_utilisation']:.0%} (vLLM {best}) of the {cores} cores busy, "
        f"and with the benchmark's own clients {ours_f['machine_cpu_utilisation']:.0%} and "
        f"{theirs_f['machine_cpu_utilisation']:.0%}; "
        f"a server answers at most {cores} / (its CPU seconds per request) requests/s: ours "
        f"{ours_f['server_cpu_s_per_request']:.3f} s per follow-up, at most "
        f"{bound['ours_follow_up_ceiling_rps']:.0f}/s; vLLM ({best}) "
        f"{theirs_f['server_cpu_s_per_request']:.3f} s, at most "
        f"{bound['vllm_follow_up_ceiling_rps']:.0f}/s. 3x ours would need vLLM at "
        f"{bound['vllm_cpu_s_needed_for_3x']:.3f} CPU s per follow-up on this machine. Our model "
        f"alone, in-process with no server running, answers a follow-up in "
        f"{bound['in_process_follow_up_p50_s']:.3f} s and a fresh video in "
        f"{bound['in_process_fresh_p50_s']:.3f} s ({args.threads} threads). A fresh video "
        f"costs vLLM {fresh_v['server_cpu_s_per_request']:.2f} CPU s against our "
        f"{fresh_o['server_cpu_s_per_request']:.2f} s (one client). vLLM with the plugin in "
        f"process (`LLM`, no server): a fresh video in "
        f"{bound['vllm_in_process_fresh_p50_s']:.3f} s; 64 follow-ups submitted at once, "
        + ", ".join(
            f"{rps:.1f}/s ({way})"
            for way, rps in bound["vllm_in_process_follow_up_batch64_rps"].items()
        )
        + ": what continuous batching gives on these 2 cores without the HTTP server "
        "and its processes."
    )
    tokens = token_counts(args.num_frames, engines["vllm"]["warm_up"]["prompt_tokens"])
    tokens["measured_next"]["prompt_tokens_ours_service"] = engines["sfllava"]["warm_up"][
        "prompt_tokens"
    ]
    answers_agree = all(
        level[kind]["first_answer"].strip()
        == engines["vllm"]["levels"][clients][kind]["first_answer"].strip()
        for clients, level in engines["sfllava"]["levels"].items()
        for kind in ("fresh", "follow_up_url")
    )
    result = {
        "machine": machine_info(),
        "answers_agree": answers_agree,
        "threads": args.threads,
        "num_frames": args.num_frames,
        "clip": "320x240 2 s 30 fps H.264 (write_synthetic_video, a distinct variant each)",
        "model": "the LLaVA-NeXT demo checkpoint (CLIP 64/256/4 layers, Llama 128/256/2 "
        "layers, random weights), float32, vllm_plugin.checkpoint.demo_checkpoint('next')",
        "max_tokens": args.max_tokens,
        "levels": list(args.levels),
        "engines": engines,
        "bound": bound,
        "targets": targets,
        "tokens": tokens,
        "busy_cores_before": busy,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "run_s": time.perf_counter() - started,
    }
    print("\n".join(render({**result, "command": " ".join(sys.argv), "date": ""})))
    path = args.json or str(RESULTS / f"{RESULT}.json")
    write_json(path, result)
    print("wrote", path)


if __name__ == "__main__":
    main()
