"""Encode once, ask many: time to first token of a fresh ``answer`` against a session
answering a question it has never seen, on the demo model, in one run.

    python benchmarks/bench_session.py [--rounds 5] [--threads 2]

Clip: 720p, 10 s, 30 fps H.264 (libx264 defaults), 50 frames; demo model in bf16;
16 new tokens. Each round asks a question no earlier round asked, first through
``SlowFastLlava.answer`` (decode, normalise, vision tower, projector, pooling, the whole
prefill), then through a session made once before the rounds (whose prefix for the
prompt was built by one warm-up question): only the question's own tokens are
prefilled. Time to first token = end to end less the generation after the first token.
Both sides must give the same answer. Target: the follow-up at least 20x lower.

Also reports what a session holds in memory, per visual token, measured here and, by
arithmetic, for LLaVA-NeXT-7B (32 layers, 32 KV heads of 128, fp16).
Writes benchmarks/results/session_cpu.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import TYPE_CHECKING

from _common import (
    RESULTS,
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

    from sfllava_ext import SlowFastLlava

#: the committed result in benchmarks/results/, which report.py renders
RESULT = "session_cpu"
QUESTIONS = [
    "What is moving across the screen?",
    "Which colour does the square have?",
    "Where does the square go at the end?",
    "How fast does the circle bounce up and down?",
    "Does the camera move to the left?",
    "What happens before the square stops?",
    "Who opens the door in the kitchen?",
    "Why do the colors change over time?",
]
# LLaVA-NeXT-7B (Vicuna): the language model's cache per position, and a visual token
SEVEN_B = {"layers": 32, "kv_heads": 32, "head_dim": 128, "hidden": 4096, "bytes": 2}


def timed(call, model: SlowFastLlava) -> tuple[str, float]:
    """(answer, time to first token in ms): end to end less the generation stage."""
    start = time.perf_counter()
    answer = call()
    total = time.perf_counter() - start
    return answer, (total - model.last_timings.seconds.get("generation", 0.0)) * 1e3


# ------------------------------------------------------------------ presentation
# What report.py collects from this module: ``render``, its section of
# docs/benchmarks.md; ``plots``, the figures that section shows (docs/plots/); and
# ``summary``, its row of README.md's table.


def render(result: dict) -> list[str]:
    """The section of docs/benchmarks.md (markdown lines, heading included)."""
    mem = result["memory"]
    out = [
        '<a id="session"></a>',
        "## Sessions: a follow-up question against a fresh `answer`",
        "",
        *provenance(result),
        f"Model: {result['model']}. Clip: {result['clip']}. {result['max_new_tokens']} new "
        "tokens. Each round asks a question no earlier round asked, fresh "
        "(`SlowFastLlava.answer`: decode, encode, the whole prefill) and then through a "
        "session made once before the rounds. Time to first token: end to end less the "
        "generation after the first token. Both sides gave the same answers. Target: the "
        "follow-up 20x lower "
        f"({'met' if result['targets']['follow_up_20x'] else 'not met'}).",
        "",
        *image(plot_name(result, "session"), "time to first token, session against fresh"),
    ]
    rows = [
        [
            r["question"],
            ms(r["fresh_ttft_ms"]),
            ms(r["session_ttft_ms"]),
            x(r["ratio"]),
            f"{r['prefilled_positions']} of {r['prompt_positions']}",
        ]
        for r in result["rounds"]
    ]
    med = result["median_ms"]
    rows.append(
        ["**median**", ms(med["fresh_ttft_ms"]), ms(med["session_ttft_ms"]), x(result["ratio"]), ""]
    )
    out += table(["question", "fresh", "session", "ratio", "positions prefilled"], rows)
    out += [
        f"Making the session took {result['session_made_ms']:.0f} ms and its first question, "
        f"which builds the prompt's cached prefix, {result['first_question_ms']:.0f} ms.",
        "",
        f"Memory: {mem['visual_tokens']} visual tokens; the session holds "
        f"{mem['tokens_bytes'] / 2**20:.2f} MiB of tokens and {mem['prefix_bytes'] / 2**20:.2f} "
        f"MiB of cached keys and values, {mem['per_visual_token_bytes'] / 1024:.1f} KiB per "
        "visual token. For LLaVA-NeXT-7B (32 layers, 32 KV heads of 128, fp16), by "
        f"arithmetic: {mem['7b_per_visual_token_bytes'] / 1024:.0f} KiB per visual token, "
        f"{mem['7b_session_bytes_one_template'] / 2**30:.2f} GiB for one template's prefix "
        "and the tokens; a running question adds a copy of the prefix.",
        "",
    ]
    return out


def plots(result: dict) -> dict[str, Figure]:
    """The figure of docs/benchmarks.md: each question's time to first token, fresh and
    in the session, the ratio over each pair; the questions in the table's order."""
    rounds = result["rounds"]
    labels = [f"question {i}" for i in range(1, len(rounds) + 1)] + ["median"]
    fresh = [r["fresh_ttft_ms"] for r in rounds] + [result["median_ms"]["fresh_ttft_ms"]]
    session = [r["session_ttft_ms"] for r in rounds] + [result["median_ms"]["session_ttft_ms"]]
    title = "Time to first token: a follow-up in a session against a fresh answer()"
    fig, (ax,) = figure(result, title)
    xs = range(len(labels))
    width = 0.38
    ax.bar([i - width / 2 for i in xs], fresh, width, color="tab:orange", label="fresh answer()")
    ax.bar([i + width / 2 for i in xs], session, width, color="tab:blue", label="session")
    for i, (a, b) in enumerate(zip(fresh, session, strict=True)):
        ax.text(i, a * 1.08, f"{a / b:.0f}x", ha="center", va="bottom")
    ax.set_xticks(list(xs), labels)
    log_axis(ax)
    ax.set_ylim(top=max(fresh) * 2)
    ax.grid(axis="x", visible=False)
    ax.set_ylabel("time to first token (ms, log scale)")
    ax.set_xlabel("question (the table's order; over each pair, fresh / session)")
    outside_legend(ax)
    return {plot_name(result, "session"): fig}


def summary(result: dict) -> list[list[str]]:
    """README.md's summary row: the follow-up's time to first token against a fresh one."""
    med = result["median_ms"]
    what = "time to first token of a follow-up question in a session (demo model, 720p)"
    return [
        summary_row(
            result,
            what,
            ms(med["session_ttft_ms"]),
            f"fresh `answer` {ms(med['fresh_ttft_ms'])}",
            x(result["ratio"]),
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.rounds + 1 > len(QUESTIONS):
        sys.exit(f"bench_session: at most {len(QUESTIONS) - 1} rounds (one question each)")
    import torch

    from sfllava_ext import SlowFastLlava
    from sfllava_ext.models.demo import demo_model, demo_tokenizer
    from sfllava_ext.video.synthetic import write_synthetic_video

    torch.set_num_threads(args.threads)
    warm_memory()
    tokenizer = demo_tokenizer()
    sf = SlowFastLlava(demo_model(tokenizer, dtype=torch.bfloat16), tokenizer, profile=True)
    n = args.max_new_tokens
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        path = write_synthetic_video(
            os.path.join(tmp, "720p.mp4"), width=1280, height=720, seconds=10, fps=30
        )
        sf.answer(path, QUESTIONS[0], max_new_tokens=n)  # warm-up
        start = time.perf_counter()
        session = sf.session(path)
        session_ms = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        session.answer(QUESTIONS[0], max_new_tokens=n)  # builds the prompt's prefix
        prefix_ms = (time.perf_counter() - start) * 1e3
        for question in QUESTIONS[1 : args.rounds + 1]:
            fresh, fresh_ms = timed(lambda q=question: sf.answer(path, q, max_new_tokens=n), sf)
            follow, follow_ms = timed(lambda q=question: session.answer(q, max_new_tokens=n), sf)
            reused, total = session.reused_positions(question)
            assert follow == fresh, (question, follow, fresh)
            rounds.append(
                {
                    "question": question,
                    "fresh_ttft_ms": fresh_ms,
                    "session_ttft_ms": follow_ms,
                    "ratio": fresh_ms / follow_ms,
                    "prefilled_positions": total - reused,
                    "prompt_positions": total,
                }
            )
    held = session.held_bytes
    visual = session.num_visual_tokens
    text_cfg = sf.config.text_config
    kv_heads = getattr(text_cfg, "num_key_value_heads", text_cfg.num_attention_heads)
    head_dim = text_cfg.hidden_size // text_cfg.num_attention_heads
    itemsize = torch.empty((), dtype=sf.dtype).element_size()
    kv_per_position = 2 * text_cfg.num_hidden_layers * kv_heads * head_dim * itemsize
    seven_b_kv = 2 * SEVEN_B["layers"] * SEVEN_B["kv_heads"] * SEVEN_B["head_dim"] * 2
    prompt = rounds[0]["prompt_positions"]
    memory = {
        "visual_tokens": visual,
        "tokens_bytes": held["tokens"],
        "prefix_bytes": held["prefixes"],
        "per_visual_token_bytes": (held["tokens"] + held["prefixes"]) / visual,
        "kv_bytes_per_position": kv_per_position,
        "7b_per_visual_token_bytes": seven_b_kv + SEVEN_B["hidden"] * SEVEN_B["bytes"],
        "7b_session_bytes_one_template": (seven_b_kv * prompt)
        + visual * SEVEN_B["hidden"] * SEVEN_B["bytes"],
    }
    median = {
        k: statistics.median(r[k] for r in rounds) for k in ("fresh_ttft_ms", "session_ttft_ms")
    }
    ratio = median["fresh_ttft_ms"] / median["session_ttft_ms"]
    print(
        f"time to first token, demo model (bf16), 720p 10 s clip, {args.threads} threads "
        f"({machine_info()['cpu']}): session made in {session_ms:.0f} ms, first question "
        f"(builds the prefix) {prefix_ms:.0f} ms"
    )
    print(f"{'question':<46}{'fresh ms':>10}{'session ms':>12}{'ratio':>8}{'prefilled':>11}")
    for r in rounds:
        print(
            f"{r['question']:<46}{r['fresh_ttft_ms']:>10.1f}{r['session_ttft_ms']:>12.1f}"
            f"{r['ratio']:>7.1f}x{r['prefilled_positions']:>6} of {r['prompt_positions']}"
        )
    print(
        f"median: {median['fresh_ttft_ms']:.1f} ms fresh, {median['session_ttft_ms']:.1f} ms "
        f"follow-up: {ratio:.1f}x (target 20x)"
    )
    print(
        f"memory: {visual} visual tokens; session holds {held['tokens'] / 2**20:.2f} MiB of "
        f"tokens + {held['prefixes'] / 2**20:.2f} MiB of cached prefix = "
        f"{memory['per_visual_token_bytes'] / 1024:.1f} KiB per visual token; 7B by arithmetic: "
        f"{memory['7b_per_visual_token_bytes'] / 1024:.0f} KiB per visual token, "
        f"{memory['7b_session_bytes_one_template'] / 2**30:.2f} GiB for one template"
    )
    result = {
        "machine": machine_info(),
        "threads": args.threads,
        "clip": "720p 10 s 30 fps H.264 (libx264 defaults), 50 frames",
        "model": "demo (CLIP 64/256/4 layers, Llama 128/256/2 layers), bf16, random weights",
        "max_new_tokens": n,
        "session_made_ms": session_ms,
        "first_question_ms": prefix_ms,
        "rounds": rounds,
        "median_ms": median,
        "ratio": ratio,
        "targets": {"follow_up_20x": ratio >= 20},
        "memory": memory,
    }
    path = args.json or str(RESULTS / f"{RESULT}.json")
    write_json(path, result)
    print("wrote", path)


if __name__ == "__main__":
    main()
