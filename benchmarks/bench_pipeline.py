"""The whole pipeline, file to answer, against the published reference pipeline
in the same run, on the demo model (fixed sizes; random weights).

    python benchmarks/bench_pipeline.py [--repeats 3] [--max-new-tokens 16]

Reference, as published: decord ``get_batch`` at the published indices, PIL
resize + CLIP processor per frame, the vision tower with every hidden state
(layer -2 kept), the projector, the torch-ops slow/fast pooling (rearrange,
MaxPool1d, AdaptiveAvgPool2d), ``torch.cat`` of the text and visual embeddings,
greedy ``generate``. Ours: ``SlowFastLlava.answer`` on the same file.

Clip: 720p, 10 s, 30 fps H.264 (libx264 defaults). 2 threads. Prints a
per-stage table (medians) and writes benchmarks/results/pipeline_cpu.json.
Targets (2-core CPU): everything except the model's forward passes (decode,
preprocessing, pooling, input assembly) >= 5x faster; end to end >= 1.5x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info, warm_memory, write_json  # noqa: E402
from bench_normalize_frames import clip_processor, published_path  # noqa: E402
from bench_slowfast_pool import published as published_pooling  # noqa: E402

from sfllava_ext import SlowFastLlava, sample_frame_indices  # noqa: E402
from sfllava_ext.demo import demo_model, demo_tokenizer, write_synthetic_video  # noqa: E402
from sfllava_ext.model import _FirstTokenClock  # noqa: E402
from sfllava_ext.prompts import PROMPTS, build_prompt  # noqa: E402
from sfllava_ext.timing import StageTimer  # noqa: E402

QUESTION = "What is moving across the screen?"
NON_MODEL = ("decode", "normalise", "pooling", "assembly")
MODEL = ("vision tower", "projector", "prefill", "generation")


def reference_answer(path, model, tokenizer, processor, max_new_tokens, timer: StageTimer) -> str:
    """The published pipeline, stage by stage."""
    import decord

    with timer("decode"):
        reader = decord.VideoReader(path)
        frames = reader.get_batch(sample_frame_indices(len(reader), 50)).asnumpy()
        del reader
    with timer("normalise"):
        pixels = published_path(frames, processor).to(model.dtype)
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
        clock = _FirstTokenClock(timer)
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


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r.get(k, 0.0) for r in runs) * 1e3 for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warm_memory()

    tokenizer = demo_tokenizer()
    model = demo_model(tokenizer, dtype=torch.bfloat16)
    processor = clip_processor()
    ours_model = SlowFastLlava(model, tokenizer, profile=True)
    ref_runs, our_runs, answers = [], [], {}
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
            start = time.perf_counter()
            answers["ours"] = ours_model.answer(path, QUESTION, max_new_tokens=args.max_new_tokens)
            ours = ours_model.last_timings
            ours.add("end to end", time.perf_counter() - start)
            staged = sum(v for k, v in ours.seconds.items() if k != "end to end")
            ours.add("assembly", max(0.0, ours.seconds["end to end"] - staged))
            if i:
                ref_runs.append(dict(timer.seconds))
                our_runs.append(dict(ours.seconds))

    ref, ours = medians(ref_runs), medians(our_runs)
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
    results = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    out = args.json or os.path.join(results, "pipeline_cpu.json")
    write_json(out, result)
    print("wrote", out)


if __name__ == "__main__":
    main()
