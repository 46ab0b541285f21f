"""The whole pipeline, file to answer, against the published reference pipeline
in the same run, on the demo model (fixed sizes; random weights).

    python benchmarks/bench_pipeline.py [--repeats 5] [--max-new-tokens 16]

Reference, as published: decord ``get_batch`` at the published indices, PIL
resize + CLIP processor per frame, the vision tower with every hidden state
(layer -2 kept), the projector, the torch-ops slow/fast pooling (rearrange,
MaxPool1d, AdaptiveAvgPool2d), ``torch.cat`` of the text and visual embeddings,
greedy ``generate``. Ours: ``SlowFastLlava.answer`` on the same file.

Clip: 720p, 10 s, 30 fps H.264 (libx264 defaults). 2 threads. Prints a
per-stage table (medians) and writes benchmarks/results/pipeline_cpu.json.
Targets (2-core CPU): everything except the model's forward passes (decode,
preprocessing, pooling, input assembly) >= 5x faster; end to end >= 1.5x.

The same run then measures the floor of that work on this machine (:func:`floors`):
our stages on one thread (the work itself, no parallel overhead) and the clip's
longest GOP decoded alone, which is one chain of dependent pictures. Each round also
decodes the clip the way ``load_video`` does but drops the wanted frames instead of
keeping them (:func:`decode_keeping_no_frame`: no RGB conversion, no copy of the
planes): the non-model time if keeping the frames and normalising them cost nothing,
and with both run after decoding.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import TYPE_CHECKING, Any

from _common import (
    RESULTS,
    clip_processor,
    figure,
    image,
    machine_info,
    ms,
    plot_name,
    provenance,
    published_normalize,
    published_pooling,
    summary_row,
    table,
    warm_memory,
    write_json,
    x,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from sfllava_ext import SlowFastLlava
    from sfllava_ext.utils.timing import StageTimer

#: the committed result in benchmarks/results/, which report.py renders
RESULT = "pipeline_cpu"
QUESTION = "What is moving across the screen?"
NON_MODEL = ("decode", "normalise", "pooling", "assembly")
MODEL = ("vision tower", "projector", "prefill", "generation")
# ``answer`` decodes with load_video's default threads: this sizes them (one_thread_stages)
DECODE_THREADS_ENV = "SFLLAVA_DECODE_THREADS"


def reference_answer(path, model, tokenizer, processor, max_new_tokens, timer: StageTimer) -> str:
    """The published pipeline, stage by stage: returns its answer."""
    import decord
    import torch

    from sfllava_ext import sample_frame_indices
    from sfllava_ext.llm.generation import FirstTokenClock
    from sfllava_ext.llm.prompts import PROMPTS, build_prompt

    with timer("decode"):
        reader = decord.VideoReader(path)
        frames = reader.get_batch(sample_frame_indices(len(reader), 50)).asnumpy()
        del reader
    with timer("normalise"):
        pixels = published_normalize(frames, processor).to(model.dtype)
    with torch.inference_mode():
        with timer("vision tower"):
            hidden = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states[-2]
        with timer("projector"):
            features = model.model.multi_modal_projector(hidden[:, 1:])
        with timer("pooling"):
            visual = published_pooling(features)
        with timer("assembly"):
            text = build_prompt(PROMPTS["image_seq_v3"][0], QUESTION)
            head, tail = text.split("<image>")
            embed = model.get_input_embeddings()
            ids_head = torch.tensor(tokenizer(head).input_ids)
            ids_tail = torch.tensor(tokenizer(tail).input_ids[1:])
            embeds = torch.cat([embed(ids_head), visual, embed(ids_tail)]).unsqueeze(0)
        clock = FirstTokenClock(timer)
        with timer("prefill+generation"):
            clock.start()
            ids = model.generate(
                inputs_embeds=embeds,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                streamer=clock,
                pad_token_id=tokenizer.pad_token_id,
            )
        clock.split()
    return tokenizer.decode(ids[0], skip_special_tokens=True).strip()


def our_run(model: SlowFastLlava, path: str, max_new_tokens: int) -> tuple[str, dict[str, float]]:
    """``answer`` once: the answer and seconds per stage; "assembly" is what the
    stages leave over (tokenization, input assembly, Python)."""
    start = time.perf_counter()
    answer = model.answer(path, QUESTION, max_new_tokens=max_new_tokens)
    timings = model.last_timings
    timings.add("end to end", time.perf_counter() - start)
    staged = sum(v for k, v in timings.seconds.items() if k != "end to end")
    timings.add("assembly", max(0.0, timings.seconds["end to end"] - staged))
    return answer, dict(timings.seconds)


def per_stage(runs: list[dict[str, float]], pick=statistics.median) -> dict[str, float]:
    """ms per stage: ``pick`` (the median, or e.g. ``min``) of the runs' seconds."""
    return {k: pick(r.get(k, 0.0) for r in runs) * 1e3 for k in runs[0]}


def one_thread_stages(model: SlowFastLlava, path: str, max_new_tokens: int, repeats: int):
    """The best (smallest) ms per stage over ``repeats`` runs of ``answer`` with one
    decoder thread and one torch thread: the work of each stage with no parallel
    overhead, as little disturbed by the rest of the machine as observed."""
    import torch

    saved_threads, saved_env = torch.get_num_threads(), os.environ.get(DECODE_THREADS_ENV)
    torch.set_num_threads(1)
    os.environ[DECODE_THREADS_ENV] = "1"
    try:
        runs = [our_run(model, path, max_new_tokens)[1] for _ in range(repeats + 1)]
    finally:
        torch.set_num_threads(saved_threads)
        if saved_env is None:
            os.environ.pop(DECODE_THREADS_ENV, None)
        else:
            os.environ[DECODE_THREADS_ENV] = saved_env
    return per_stage(runs[1:], min)


def longest_gop(path: str, num_frames: int, threads: int, repeats: int) -> dict[str, Any]:
    """The chunk of load_video's decode plan with the most packets, decoded alone the
    way load_video decodes it (its reference pictures and its wanted frames, which are
    dropped instead of kept): the best wall and CPU ms
    over ``repeats`` runs, on one thread and on ``threads`` FFmpeg frame threads and,
    when its pictures have that many slices, slice threads. ``split`` names the
    faster of the two; ``load_video_picks`` what load_video uses. Each run decodes
    from an already open container, as load_video's first worker (which gets this
    chunk) does with the container the plan indexed with."""
    from sfllava_ext.video.limits import open_container
    from sfllava_ext.video.pyav import planning, sinks, workers

    plan = planning.plan_decode(path, num_frames)
    plan.close()
    chunk = max(plan.chunks, key=lambda c: c.cost)
    result: dict[str, Any] = {
        "packets": chunk.cost,
        "wanted": len(chunk.wanted),
        "slices_per_picture": plan.index.slices,
        "load_video_picks": workers.decoder_thread_type(threads, plan.index.slices).lower(),
    }
    # slices=0 makes the reader take frame threads, slices=threads slice threads
    layouts = {"one thread": (1, 0), "frame threads": (threads, 0)}
    if plan.index.slices >= threads:
        layouts["slice threads"] = (threads, threads)
    for name, (n, slices) in layouts.items():
        walls, cpus = [], []
        for i in range(repeats + 1):
            sink = sinks.DiscardingSink(1, 1, plan.indices)
            container = open_container(path)
            cpu, wall = time.process_time(), time.perf_counter()
            workers.decode_chunk_alone(plan, chunk, sink, n, slices, container)
            if i:  # the first round warms up
                walls.append((time.perf_counter() - wall) * 1e3)
                cpus.append((time.process_time() - cpu) * 1e3)
            assert sink.filled == set(chunk.wanted.values()), "the GOP lost wanted frames"
        result[name] = {"wall_ms": min(walls), "cpu_ms": min(cpus)}
    split = [k for k in ("slice threads", "frame threads") if k in result]
    result["split"] = min(split, key=lambda k: result[k]["wall_ms"])
    return result


def decode_keeping_no_frame(path: str, num_frames: int, threads: int) -> float:
    """ms of ``load_video``'s decoding with every picture it decodes, but the wanted
    frames dropped instead of kept (as RGB or as planes): what decoding would cost if
    keeping the frames (and normalising them afterwards) cost nothing. For files whose
    timestamps give the frame order (load_video's chunked decode), as the clip here."""
    from sfllava_ext.video.pyav import planning, sinks, workers

    start = time.perf_counter()
    plan = planning.plan_decode(path, num_frames)
    assert plan.chunks, "decode_keeping_no_frame measures the chunked decode only"
    try:
        sink = sinks.DiscardingSink(1, 1, plan.indices)
        workers.run_chunks(plan, sink, threads)
    finally:
        plan.close()
    elapsed = (time.perf_counter() - start) * 1e3
    assert sink.filled == set(plan.indices), "the decode lost wanted frames"
    return elapsed


def floors(one_thread: dict[str, float], gop: dict[str, Any], threads: int) -> dict[str, float]:
    """Two lower bounds (ms) on the wall time of the work outside the model, from
    best-of-rounds figures.

    * ``perfect_split``: the one-thread work spread evenly over ``threads`` cores.
    * ``threaded_gop``: the longest GOP is one chain of dependent pictures; only
      FFmpeg's decoder threads split it (the faster of frame and slice threads), which
      takes ``wall`` ms at ``cpu`` ms of CPU. Everything else (the one-thread work less
      that GOP's decoding, so keeping the frames included) may run in the cores' idle time
      meanwhile (``threads * wall - cpu``) and, for the rest, spread evenly before or
      after: ``max(wall, (cpu + rest) / threads)``.
    """
    work = sum(one_thread.get(k, 0.0) for k in NON_MODEL)
    wall, cpu = gop[gop["split"]]["wall_ms"], gop[gop["split"]]["cpu_ms"]
    rest = work - gop["one thread"]["cpu_ms"]
    idle = max(0.0, threads * wall - cpu)
    return {
        "one_thread_work": work,
        "perfect_split": work / threads,
        "threaded_gop": wall + max(0.0, rest - idle) / threads,
    }


# ------------------------------------------------------------------ presentation
# What report.py collects from this module: ``render``, its section of
# docs/benchmarks.md; ``plots``, the figures that section shows (docs/plots/); and
# ``summary``, its row of README.md's table.

#: the rows of the per-stage table: (key in the result, label)
STAGES = [
    ("decode", "decode"),
    ("normalise", "normalise"),
    ("pooling", "pooling"),
    ("assembly", "tokenize, assemble inputs, Python"),
    ("everything but the model", "**everything but the model**"),
    ("vision tower", "vision tower (ours skips the last layer)"),
    ("projector", "projector"),
    ("prefill", "prefill"),
    ("generation", "generation"),
    ("time to first token", "time to first token"),
    ("end to end", "**end to end**"),
]


def render(result: dict) -> list[str]:
    """The section of docs/benchmarks.md (markdown lines, heading included)."""
    ref, ours = result["reference_ms"], result["ours_ms"]
    rounds = result["non_model_speedup_per_round"]
    targets = result["targets"]
    out = [
        '<a id="pipeline"></a>',
        "## The whole pipeline: `SlowFastLlava.answer` against the published pipeline",
        "",
        *provenance(result),
        f"Model: {result['model']}. Clip: {result['clip']}. {result['max_new_tokens']} new "
        f"tokens, {result['threads']} threads. *Reference*: decord `get_batch`, PIL + CLIP "
        "processor per frame, the tower with every hidden state, the torch-ops pooling, "
        "`torch.cat`, the same `generate`. The two alternate round by round; medians of "
        f"{len(rounds)} rounds after a warm-up. Same answer on both sides: "
        f"{'yes' if result['same_answer'] else '**no**'}. Targets: everything but the model "
        f"5x faster ({'met' if targets['non_model_5x'] else 'not met'}), end to end "
        f"1.5x ({'met' if targets['end_to_end_1.5x'] else 'not met'}).",
        "",
        *image(plot_name(result, "pipeline"), "where answer() spends its time, stage by stage"),
    ]
    rows = [
        [label, ms(ref[key]), ms(ours[key]), x(ref[key] / ours[key])]
        for key, label in STAGES
        if key in ref and key in ours and ours[key] > 0
    ]
    out += table(["stage", "reference", "ours", "speed-up"], rows)
    per_round = result["non_model_ms_per_round"]
    out += [
        "Everything but the model, round by round: speed-up "
        f"{min(rounds):.2f}x to {max(rounds):.2f}x ({sum(r >= 5 for r in rounds)} of "
        f"{len(rounds)} rounds at 5x or more); ours {min(per_round['ours']):.0f}-"
        f"{max(per_round['ours']):.0f} ms, the reference {min(per_round['reference']):.0f}-"
        f"{max(per_round['reference']):.0f} ms.",
        "",
    ]
    gop, floor, bound = result["longest_gop"], result["floor_ms"], result["decode_bound_ms"]
    one = result["one_thread_ms"]
    best_ref = min(per_round["reference"])
    median_ref = ref["everything but the model"]

    def bound_row(label: str, value: float) -> list[str]:
        return [label, ms(value), x(median_ref / value), x(best_ref / value)]

    split = gop["split"]
    rows = [
        [
            "our non-model stages on one thread ("
            + ", ".join(f"{k} {one[k]:.1f}" for k in ("decode", "normalise", "pooling", "assembly"))
            + ")",
            ms(floor["one_thread_work"]),
            "",
            "",
        ],
        bound_row("that work split perfectly over the cores", floor["perfect_split"]),
        bound_row(
            f"the longest GOP ({gop['packets']} packets) on FFmpeg's {split} "
            f"({gop[split]['wall_ms']:.1f} ms wall, {gop[split]['cpu_ms']:.1f} ms CPU), "
            "the rest in its idle time",
            floor["threaded_gop"],
        ),
        bound_row(
            "the decode keeping no frame, with keeping and normalising free",
            bound["if_keeping_and_normalising_were_free"],
        ),
        bound_row(
            "the same, with keeping and normalising split over the cores after decoding",
            bound["with_both_after_decoding"],
        ),
    ]
    out += [
        "How far the work outside the model can go on this machine, measured in the same "
        "run (best rounds); *at most* is the speed-up each bound allows against the "
        "reference's median and its fastest round:",
        "",
    ]
    out += table(["bound", "ms", "at most (median)", "at most (fastest)"], rows)
    layouts = [k for k in ("one thread", "frame threads", "slice threads") if k in gop]
    out += [
        f"The longest GOP alone ({gop['packets']} packets, {gop['wanted']} wanted, "
        f"{gop['slices_per_picture']} slices per picture; `load_video` picks "
        f"{gop['load_video_picks']} threads): "
        + "; ".join(
            f"{k} {gop[k]['wall_ms']:.1f} ms wall / {gop[k]['cpu_ms']:.1f} ms CPU" for k in layouts
        )
        + ".",
        "",
    ]
    return out


#: the stages of the figure, in the order of the data path, with their colours: the
#: work outside the model in blues and greens, the model in warm colours
PLOT_STAGES = [
    ("decode", "tab:blue"),
    ("normalise", "tab:cyan"),
    ("vision tower", "tab:orange"),
    ("projector", "tab:brown"),
    ("pooling", "tab:green"),
    ("assembly", "tab:olive"),
    ("prefill", "tab:red"),
    ("generation", "tab:pink"),
]


def plots(result: dict) -> dict[str, Figure]:
    """The figure of docs/benchmarks.md (and README.md's overview): each side's stages
    stacked, their shares written on them, the end-to-end time after each bar."""
    sides = [("published pipeline", result["reference_ms"]), ("ours", result["ours_ms"])]
    clip = result["clip"].split(" ")[0]
    title = f"answer() stage by stage: the published pipeline and ours (demo model, {clip} clip)"
    fig, (ax,) = figure(result, title)
    longest = max(stages["end to end"] for _, stages in sides)
    for row, (_, stages) in enumerate(sides):
        left = 0.0
        for stage, colour in PLOT_STAGES:
            value = stages.get(stage, 0.0)
            label = stage if row == 0 else None
            ax.barh(row, value, 0.6, left, color=colour, label=label, edgecolor="white")
            share = value / stages["end to end"]
            if value > 0.045 * longest:
                ax.text(left + value / 2, row, f"{share:.0%}", ha="center", va="center")
            left += value
        total = stages["end to end"]
        ax.text(left + 0.01 * longest, row, f"{total:.0f} ms", va="center")
    ax.set_yticks(range(len(sides)), [name for name, _ in sides])
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1 * longest)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("time (ms, median of each stage; on the bars, its share of the end to end)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=len(PLOT_STAGES) // 2)
    return {plot_name(result, "pipeline"): fig}


def summary(result: dict) -> list[list[str]]:
    """README.md's summary row: outside the model and end to end, against the published."""
    ref, ours = result["reference_ms"], result["ours_ms"]
    key, e2e = "everything but the model", "end to end"
    what = "`answer` on the demo model, 720p clip: outside the model / end to end"
    return [
        summary_row(
            result,
            what,
            f"{ms(ours[key])} / {ms(ours[e2e])}",
            f"published pipeline {ms(ref[key])} / {ms(ref[e2e])}",
            f"{x(ref[key] / ours[key])} / {x(ref[e2e] / ours[e2e])}",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    import torch

    from sfllava_ext import SlowFastLlava
    from sfllava_ext.models.demo import demo_model, demo_tokenizer
    from sfllava_ext.utils.timing import StageTimer
    from sfllava_ext.video.synthetic import write_synthetic_video

    torch.set_num_threads(args.threads)
    warm_memory()

    tokenizer = demo_tokenizer()
    model = demo_model(tokenizer, dtype=torch.bfloat16)
    processor = clip_processor()
    ours_model = SlowFastLlava(model, tokenizer, profile=True)
    ref_runs, our_runs, answers = [], [], {}
    bare_decodes: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = write_synthetic_video(
            os.path.join(tmp, "720p.mp4"), width=1280, height=720, seconds=10, fps=30
        )
        for i in range(args.repeats + 1):  # the first round warms up
            timer = StageTimer("cpu")
            start = time.perf_counter()
            answers["reference"] = reference_answer(
                path, model, tokenizer, processor, args.max_new_tokens, timer
            )
            timer.add("end to end", time.perf_counter() - start)
            answers["ours"], ours = our_run(ours_model, path, args.max_new_tokens)
            bare = decode_keeping_no_frame(path, ours_model.num_frames, args.threads)
            if i:
                ref_runs.append(dict(timer.seconds))
                our_runs.append(ours)
                bare_decodes.append(bare)
        one_thread = one_thread_stages(ours_model, path, args.max_new_tokens, args.repeats)
        bare_one_thread = min(
            decode_keeping_no_frame(path, ours_model.num_frames, 1) for _ in range(args.repeats + 1)
        )
        gop = longest_gop(path, ours_model.num_frames, args.threads, args.repeats)

    ref, ours = per_stage(ref_runs), per_stage(our_runs)
    for side in (ref, ours):
        side["everything but the model"] = sum(side.get(k, 0.0) for k in NON_MODEL)
        side["time to first token"] = side["end to end"] - side.get("generation", 0.0)
    rows = list(NON_MODEL) + ["everything but the model"] + list(MODEL)
    rows += ["time to first token", "end to end"]
    print(
        f"\npipeline on the demo model, 720p 10 s H.264, 50 frames, {args.threads} threads "
        f"({machine_info()['cpu']}); medians of {args.repeats} runs"
    )
    print(f"{'stage':<26}{'reference ms':>14}{'ours ms':>10}{'speed-up':>10}")
    for k in rows:
        speedup = ref.get(k, 0.0) / ours[k] if ours.get(k) else float("nan")
        print(f"{k:<26}{ref.get(k, 0.0):>14.1f}{ours.get(k, 0.0):>10.1f}{speedup:>9.1f}x")
    result = {
        "machine": machine_info(),
        "threads": args.threads,
        "clip": "720p 10 s 30 fps H.264 (libx264 defaults), 50 frames",
        "model": "demo (CLIP 64/256/4 layers, Llama 128/256/2 layers), bf16, random weights",
        "max_new_tokens": args.max_new_tokens,
        "reference_ms": ref,
        "ours_ms": ours,
        "same_answer": answers["ours"] == answers["reference"],
        "targets": {
            "non_model_5x": ref["everything but the model"] / ours["everything but the model"] >= 5,
            "end_to_end_1.5x": ref["end to end"] / ours["end to end"] >= 1.5,
        },
    }
    print("same answer:", result["same_answer"], "| targets:", result["targets"])
    # the reference's decode (decord) swings between runs: show every round
    per_round = {
        side: [round(sum(r.get(k, 0.0) for k in NON_MODEL) * 1e3, 1) for r in runs]
        for side, runs in (("reference", ref_runs), ("ours", our_runs))
    }
    ratios = [a / b for a, b in zip(per_round["reference"], per_round["ours"], strict=True)]
    print(
        "everything but the model, per round (ms): reference "
        f"{per_round['reference']}, ours {per_round['ours']}; "
        f"speed-up {min(ratios):.1f}x to {max(ratios):.1f}x, "
        f"{sum(r >= 5 for r in ratios)} of {len(ratios)} rounds at 5x or more"
    )
    result["non_model_ms_per_round"] = per_round
    result["non_model_speedup_per_round"] = [round(r, 2) for r in ratios]

    bound = floors(one_thread, gop, args.threads)
    non_model = ref["everything but the model"]
    print(f"\nfloor of the work outside the model on {args.threads} cores (ms, best rounds)")
    print(
        "  our stages on one thread: "
        + ", ".join(f"{k} {one_thread.get(k, 0.0):.1f}" for k in NON_MODEL)
        + f" = {bound['one_thread_work']:.1f}"
    )
    print(
        f"  longest GOP ({gop['packets']} packets, {gop['wanted']} wanted frames, "
        f"{gop['slices_per_picture']} slices per picture) decoded alone, frames dropped: "
        + "; ".join(
            f"{k} {gop[k]['wall_ms']:.1f} wall / {gop[k]['cpu_ms']:.1f} CPU"
            for k in ("one thread", "frame threads", "slice threads")
            if k in gop
        )
        + f" (load_video picks {gop['load_video_picks']} threads)"
    )
    for name, label in (
        ("perfect_split", "one-thread work split evenly over the cores"),
        ("threaded_gop", "that GOP on decoder threads, the rest in its idle time and after"),
    ):
        print(
            f"  {label}: {bound[name]:.1f} -> at most {non_model / bound[name]:.2f}x "
            f"(5x needs <= {non_model / 5:.1f}; against the reference's fastest round, "
            f"<= {min(per_round['reference']) / 5:.1f})"
        )
    # What is left once decoding is done: the decode that keeps no frame, measured in
    # the rounds above, plus the rest of our stages.
    bare = statistics.median(bare_decodes)
    rest = ours["pooling"] + ours["assembly"]
    # the decode stage on one thread less the same decode keeping no frame: what the
    # kept frames cost (the copies of their planes, the clip around them)
    convert = max(0.0, one_thread["decode"] - bare_one_thread)
    after = {
        "decode_keeping_no_frame": bare,
        "decode_keeping_no_frame_one_thread": bare_one_thread,
        "keeping_frames_one_thread": convert,
        "if_keeping_and_normalising_were_free": bare + rest,
        "with_both_after_decoding": bare
        + rest
        + (convert + one_thread["normalise"]) / args.threads,
    }
    print(
        f"\nthe same decode keeping no frame: {bare:.1f} ms ({args.threads} threads, "
        f"median), {bare_one_thread:.1f} ms on one thread (so keeping the frames costs "
        f"{convert:.1f} ms of CPU, normalising them {one_thread['normalise']:.1f})"
    )
    for name, label in (
        ("if_keeping_and_normalising_were_free", "if keeping and normalising cost 0"),
        ("with_both_after_decoding", "with both split evenly over the cores after decoding"),
    ):
        print(
            f"  {label}: {after[name]:.1f} -> {non_model / after[name]:.2f}x "
            f"(5x needs <= {non_model / 5:.1f})"
        )
    result["one_thread_ms"] = one_thread
    result["longest_gop"] = gop
    result["floor_ms"] = bound
    result["decode_bound_ms"] = after
    out = args.json or str(RESULTS / f"{RESULT}.json")
    write_json(out, result)
    print("wrote", out)


if __name__ == "__main__":
    main()
