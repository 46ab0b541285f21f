"""Writes docs/benchmarks.md and the summary table of README.md from the committed
results (benchmarks/results/*.json), so that no figure is typed by hand.

    python benchmarks/report.py            # rewrite both from the JSON files
    python benchmarks/report.py --check    # exit 1 if either is out of date

Each JSON file records the machine and the exact command that produced it; run that
command to refresh a result, then this script. python_tests/test_benchmark_report.py
runs the check.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
README = ROOT / "README.md"
SUMMARY = re.compile(r"(<!-- benchmarks:summary -->\n)(.*?)(<!-- /benchmarks:summary -->)", re.S)


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def ms(value: float) -> str:
    return f"{value:.1f} ms"


def x(value: float) -> str:
    return f"{value:.2f}x"


def machine(data: dict) -> str:
    m = data["machine"]
    cpu = f"{m['cpu']}, {m['cores']} cores"
    if m.get("gpu"):
        cpu = f"{m['gpu']} ({cpu})"
    threads = f"{m['torch_threads']} torch thread" + "s" * (m["torch_threads"] != 1)
    return f"{cpu}, torch {m['torch']}, {threads}"


def provenance(data: dict) -> list[str]:
    date = str(data.get("date", ""))[:10]
    return [f"Machine: {machine(data)}. Date: {date}.", "", f"    {data['command']}", ""]


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


# ------------------------------------------------------------------------------ sections


def decode_section(d: dict) -> list[str]:
    out = ['<a id="decode"></a>', "## Video decoding: `load_video` against decord", ""]
    out += provenance(d)
    out += [
        f"50 frames at the published indices of 10 s, 30 fps H.264 clips; {d['threads']} "
        f"threads for both sides; medians of {d['repeats']} loads, the four sides "
        "alternating load by load, guest memory warmed first. *Pooled*: `load_video` into a "
        "`FrameBuffers` pool; *planes*: pooled with `yuv420=True` (what `SlowFastLlava` "
        "does for paths on the CPU). *Identical*: the four sides give the same frames "
        "(`to_rgb()` for the planes). CPU time is summed over threads; peak RSS is what "
        "one load adds.",
        "",
    ]
    rows = []
    for c in d["cases"]:
        gop = "long" if "250" in c["gop"] else "1 s"
        rows.append(
            [
                c["resolution"],
                gop,
                ms(c["decord_ms"]),
                f"{ms(c['load_video_ms'])} ({x(c['speedup'])})",
                f"{ms(c['load_video_pooled_ms'])} ({x(c['speedup_pooled'])})",
                f"{ms(c['load_video_planes_ms'])} ({x(c['speedup_planes'])})",
                f"{c['decord_cpu_ms']:.0f} / {c['load_video_cpu_ms']:.0f} ms",
                "yes" if c["identical"] else "**no**",
                f"{c['peak_rss_added_mb_decord']:.0f} / {c['peak_rss_added_mb_load_video']:.0f} MB",
            ]
        )
    header = ["video", "GOP", "decord", "load_video", "pooled", "planes", "CPU decord / ours"]
    out += table([*header, "identical", "peak RSS decord / ours"], rows)
    mem = d.get("memory")
    if mem:
        out += [
            f"Memory over repeated loads: {mem['loads']} loads of {mem['file']} in one process "
            f"took the resident memory from {mem['rss_first_mb']:.1f} MB after the first load "
            f"to {mem['rss_last_mb']:.1f} MB after the last ({mem['rss_max_mb']:.1f} MB at "
            f"most, +{mem['max_growth_over_first_mb']:.1f} MB).",
            "",
        ]
    return out


def normalize_section(d: dict) -> list[str]:
    bw = d["copy_bandwidth"]["gb_per_s"]
    out = [
        '<a id="normalize-frames"></a>',
        "## Frame normalisation: `normalize_frames`",
        "",
        *provenance(d),
        f"{d['frames']} uint8 frames to ({d['frames']}, 3, 336, 336) {d['dtype']}; medians. "
        "*Published*: PIL `Image.resize` + the CLIP processor per frame. *Plain torch*: "
        "`F.interpolate(bicubic, antialias=True)` then the normalisation (not Pillow's "
        "arithmetic). *Floor*: bytes read and written at the copy bandwidth measured in the "
        f"same run ({bw:.1f} GB/s, read + write). Ratios use the `out=` call.",
        "",
    ]
    rows = []
    for name, r in d["results"].items():
        best = min(r["ours"]["median_ms"], r["ours_out"]["median_ms"])
        published = r.get("published", {}).get("median_ms")  # CPU only
        rows.append(
            [
                name,
                ms(published) if published else "-",
                ms(r["torch"]["median_ms"]),
                ms(r["ours"]["median_ms"]),
                ms(r["ours_out"]["median_ms"]),
                ms(r["floor_ms"]),
                x(published / best) if published else "-",
                x(r["torch"]["median_ms"] / best),
                x(best / r["floor_ms"]),
                f"{r['max_abs_diff_vs_published_fp16']:g}" if published else "-",
            ]
        )
    out += table(
        [
            "input",
            "published",
            "plain torch",
            "ours",
            "ours `out=`",
            "floor",
            "vs published",
            "vs torch",
            "ours / floor",
            "max diff vs published",
        ],
        rows,
    )
    out += [
        "From YUV 4:2:0 planes of the same frames: *two steps* is `yuv420_to_rgb` per frame "
        "then `normalize_frames(out=)`; *fused* is `normalize_frames(Yuv420Frames, out=)`, "
        "whose bytes the run checks against the two steps'.",
        "",
    ]
    rows = []
    for name, r in d["results"].items():
        if "yuv_fused" not in r:
            continue
        rows.append(
            [
                name,
                ms(r["yuv_two_steps"]["median_ms"]),
                ms(r["yuv_fused"]["median_ms"]),
                ms(r["floor_yuv_ms"]),
                x(r["yuv_two_steps"]["median_ms"] / r["yuv_fused"]["median_ms"]),
                x(r["yuv_fused"]["median_ms"] / r["floor_yuv_ms"]),
                "yes" if r["yuv_fused_equals_two_steps"] else "**no**",
            ]
        )
    header = ["input", "two steps", "fused", "floor", "two steps / fused", "fused / floor"]
    out += table([*header, "identical"], rows)
    return out


def _pct(value: float) -> str:
    return "0" if value == 0 else f"{value:.3g}%"


def _value(value) -> str:
    """A setting in words: sizes as ``h x w`` / ``shortest_edge S``, triples as a/b/c."""
    if isinstance(value, dict):
        if {"height", "width"} <= value.keys():
            return f"{value['height']} x {value['width']}"
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, list):
        return "/".join(f"{v:g}" for v in value)
    return str(value)


def _settings(used: dict) -> str:
    """A processor's settings in one line: size, crop, mean / std, resample, rescale."""
    size = _value(used.get("size") or {})
    crop = f"crop {_value(used['crop_size'])}" if used.get("do_center_crop") else "no crop"
    mean, std = _value(used["image_mean"]), _value(used["image_std"])
    rescale = f"1/{1 / used['rescale_factor']:.0f}" if used.get("do_rescale") else "no rescale"
    return f"size {size}; {crop}; mean {mean}; std {std}; resample {used['resample']}; {rescale}"


def processor_diff_section(d: dict) -> list[str]:
    b = d["stage_b"]
    features = any("feature_rel_diff" in r for r in d["rows"])
    out = [
        '<a id="processor-diff"></a>',
        "## Preprocessing against Hugging Face's processors: PIL and torchvision",
        "",
        *provenance(d),
        f"{d['frames']} decoded frames of libx264 clips (moving gradients, boxes and noise: "
        "all 256 levels in every channel), normalised to float32 by ours "
        "(`frame_normalizer(settings, resize_mode=...)`) and by Hugging Face's processors "
        "with the checkpoints' settings (below). The PIL processors ran in the same "
        f"process (transformers {d['stage_a']['transformers']}, Pillow "
        f"{d['stage_a']['pillow']}); the torchvision ones, the default classes of "
        "transformers 5 and the only video processors, in a second environment (torch "
        f"{b['torch']}, torchvision {b['torchvision']}, transformers {b['transformers']}, "
        f"on the CPU: {b['cpu_capability']}). Image processors with any-res tiles are "
        "compared on their base image: LLaVA-NeXT's is a resize to 336 x 336, which is "
        "SF-LLaVA's `squash`; CLIP's processor and LLaVA-NeXT-Video's video processor take "
        "the shortest edge to 336 and crop (ours `crop`). *Levels*: the difference x std "
        "x 255; each side's 8-bit level is recovered as `round(value * std * 255 + mean * "
        "255)`. *Differ*: elements not "
        "bit for bit equal; *level differs*: a different 8-bit level; *> 1* / *> 2*: by "
        "more than 1 or 2 levels. Ours equals every PIL processor bit for bit: "
        f"{'yes' if d['ours_equals_pil'] else '**no**'}.",
        "",
    ]
    rows = []
    for r in d["rows"]:
        row = [
            r["family"],
            f"`{r['processor']}`",
            r["backend"],
            f"`{r['ours_mode']}`",
            r["resolution"],
            f"{r['max_abs']:.3g}",
            f"{r['max_levels']:.3g}",
            f"{r['mean_levels']:.3g}",
            _pct(r["pct_differ"]),
            _pct(r["pct_level_differs"]),
            _pct(r["pct_over_1_level"]),
            _pct(r["pct_over_2_levels"]),
        ]
        if features:
            row.append(f"{r['feature_rel_diff']:.2g}")
        rows.append(row)
    header = ["family", "processor", "backend", "ours", "video", "max diff", "max levels"]
    header += ["mean levels", "differ", "level differs", "> 1", "> 2"]
    out += table(header + ["features"] * features, rows)
    same = {r["processor"]: r["same_output_as"] for r in d["rows"] if r["kind"] == "video"}
    arithmetic = max(
        r["max_abs_where_level_same"] for r in d["rows"] if r["backend"] == "torchvision"
    )
    out += [
        "Where the 8-bit levels agree the torchvision processors still differ by up to "
        f"{arithmetic:.2g} (their rescale is fused into the mean and std): that is most of "
        "*differ*; the rest is their resize (`interpolate`, bicubic, antialias, on uint8). "
        + " ".join(
            f"`{name}` gave the same output as `{', '.join(others)}`."
            for name, others in same.items()
            if others
        ),
        "",
    ]
    if features:
        ref = ", ".join(f"{k} {v:.2g}" for k, v in d["feature_rel_diff_fp16_pixels"].items())
        out += [
            "*Features*: the relative difference, max |a - b| / max |b|, of the pooled "
            "vision features of the demo models (random weights, float32, "
            "`SlowFastLlava.encode_pixels`) from ours and from the processor's pixels; for "
            f"scale, rounding ours to float16 moves them by {ref}.",
            "",
        ]
    rows = []
    for name, p in d["processors"].items():
        differ = p["class_defaults_differing_from_checkpoint"]
        defaults = "; ".join(
            f"{k} {_value(v['class'])} (checkpoint {_value(v['checkpoint'])})"
            for k, v in differ.items()
        )
        rows.append(
            [
                f"`{name}`",
                p["compared"],
                _settings(p["used"]),
                "yes" if p["used_equals_passed"] else "**no**",
                defaults or "-",
            ]
        )
    out += ["The settings each processor used, and its class defaults where they differ:", ""]
    out += table(["processor", "compared", "settings used", "as passed", "class defaults"], rows)
    return out


def yuv_section(d: dict) -> list[str]:
    bw = d["copy_bandwidth"]["gb_per_s"]
    out = [
        '<a id="yuv-to-rgb"></a>',
        "## The decoder's colour conversion: `yuv420_to_rgb`",
        "",
        *provenance(d),
        "50 decoded frames into the clip's buffer, one thread, bytes checked against "
        "swscale first. *swscale + copy*: PyAV's reformat into a new frame, then the copy "
        "(what decord does). *Plain torch*: the same fixed-point arithmetic in torch ops. "
        f"*Floor*: planes read and RGB written at {bw:.1f} GB/s (one thread). Medians.",
        "",
    ]
    rows = []
    for name, r in d["results"].items():
        t = r["timings"]
        rows.append(
            [
                name,
                ms(t["swscale"]["median_ms"]),
                ms(t["torch"]["median_ms"]),
                ms(t["ours"]["median_ms"]),
                ms(r["floor_ms"]),
                x(r["speedup_vs_swscale"]),
                x(r["speedup_vs_torch"]),
                x(r["ours_over_floor"]),
                "yes" if r["identical"] else "**no**",
            ]
        )
    header = ["input", "swscale + copy", "plain torch", "ours", "floor", "vs swscale"]
    out += table([*header, "vs torch", "ours / floor", "identical"], rows)
    return out


def pool_section(d: dict) -> list[str]:
    out = [
        '<a id="slowfast-pool"></a>',
        "## Slow/fast pooling: `slowfast_pool`",
        "",
        *provenance(d),
        "The published aggregation (10 slow frames, 1-D max pool; 4 x 4 fast grid). "
        "*Published*: einops `rearrange`, `MaxPool1d`, `AdaptiveAvgPool2d`, `cat`. *Plain "
        "torch*: the best torch-ops path we could write (reductions into views of a "
        "preallocated output). *Floor*: input and output bytes at the copy bandwidth of "
        f"`dst.copy_(src)` on 1 GiB buffers, {d['copy_bandwidth_GBps']:.1f} GB/s read + "
        "write, measured in the same run. Medians.",
        "",
    ]
    rows = []
    for r in d["rows"]:
        rows.append(
            [
                "(" + ", ".join(map(str, r["shape"])) + ")",
                r["dtype"],
                ms(r["published_ms"]),
                ms(r["plain_torch_ms"]),
                ms(r["ours_ms"]),
                ms(r["ours_out_ms"]),
                ms(r["floor_ms"]),
                x(r["out_vs_floor"]),
                x(r["speedup_vs_published"]),
                x(r["speedup_vs_plain_torch"]),
            ]
        )
    header = ["features", "dtype", "published", "plain torch", "ours", "ours `out=`", "floor"]
    out += table([*header, "`out=` / floor", "vs published", "vs plain"], rows)
    out += [
        "At D = 1024 the working set partly stays in cache, so the op can beat a floor "
        "measured on 1 GiB buffers. Without `out=` the op also allocates and first touches "
        "its result.",
        "",
    ]
    return out


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


def pipeline_section(d: dict) -> list[str]:
    ref, ours = d["reference_ms"], d["ours_ms"]
    rounds = d["non_model_speedup_per_round"]
    out = [
        '<a id="pipeline"></a>',
        "## The whole pipeline: `SlowFastLlava.answer` against the published pipeline",
        "",
        *provenance(d),
        f"Model: {d['model']}. Clip: {d['clip']}. {d['max_new_tokens']} new tokens, "
        f"{d['threads']} threads. *Reference*: decord `get_batch`, PIL + CLIP processor per "
        "frame, the tower with every hidden state, the torch-ops pooling, `torch.cat`, the "
        "same `generate`. The two alternate round by round; medians of "
        f"{len(rounds)} rounds after a warm-up. Same answer on both sides: "
        f"{'yes' if d['same_answer'] else '**no**'}. Targets: everything but the model "
        f"5x faster ({'met' if d['targets']['non_model_5x'] else 'not met'}), end to end "
        f"1.5x ({'met' if d['targets']['end_to_end_1.5x'] else 'not met'}).",
        "",
    ]
    rows = [
        [label, ms(ref[key]), ms(ours[key]), x(ref[key] / ours[key])]
        for key, label in STAGES
        if key in ref and key in ours and ours[key] > 0
    ]
    out += table(["stage", "reference", "ours", "speed-up"], rows)
    per_round = d["non_model_ms_per_round"]
    out += [
        "Everything but the model, round by round: speed-up "
        f"{min(rounds):.2f}x to {max(rounds):.2f}x ({sum(r >= 5 for r in rounds)} of "
        f"{len(rounds)} rounds at 5x or more); ours {min(per_round['ours']):.0f}-"
        f"{max(per_round['ours']):.0f} ms, the reference {min(per_round['reference']):.0f}-"
        f"{max(per_round['reference']):.0f} ms.",
        "",
    ]
    gop, floor, bound = d["longest_gop"], d["floor_ms"], d["decode_bound_ms"]
    one = d["one_thread_ms"]
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


def session_section(d: dict) -> list[str]:
    mem = d["memory"]
    out = [
        '<a id="session"></a>',
        "## Sessions: a follow-up question against a fresh `answer`",
        "",
        *provenance(d),
        f"Model: {d['model']}. Clip: {d['clip']}. {d['max_new_tokens']} new tokens. Each "
        "round asks a question no earlier round asked, fresh (`SlowFastLlava.answer`: "
        "decode, encode, the whole prefill) and then through a session made once before "
        "the rounds. Time to first token: end to end less the generation after the first "
        f"token. Both sides gave the same answers. Target: the follow-up 20x lower "
        f"({'met' if d['targets']['follow_up_20x'] else 'not met'}).",
        "",
    ]
    rows = [
        [
            r["question"],
            ms(r["fresh_ttft_ms"]),
            ms(r["session_ttft_ms"]),
            x(r["ratio"]),
            f"{r['prefilled_positions']} of {r['prompt_positions']}",
        ]
        for r in d["rounds"]
    ]
    med = d["median_ms"]
    rows.append(
        ["**median**", ms(med["fresh_ttft_ms"]), ms(med["session_ttft_ms"]), x(d["ratio"]), ""]
    )
    out += table(["question", "fresh", "session", "ratio", "positions prefilled"], rows)
    out += [
        f"Making the session took {d['session_made_ms']:.0f} ms and its first question, "
        f"which builds the prompt's cached prefix, {d['first_question_ms']:.0f} ms.",
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


def serve_section(d: dict) -> list[str]:
    out = [
        '<a id="serve"></a>',
        "## The service: `sfllava serve` against an in-process loop",
        "",
        *provenance(d),
        f"Model: {d['model']}. Clips: {d['clip']}, sent as `file://` URLs. "
        f"{d['max_tokens']} new tokens, greedy, async `httpx` clients. *Fresh*: a video "
        "the server has not seen (distinct bytes, same frames); *follow-up*: another "
        "question about a video whose session the server holds. The in-process loop runs "
        "the same requests one after the other (`SlowFastLlava.answer`, "
        "`VideoSession.answer`). *Model*: the server's own time on the request "
        "(`openai-processing-ms`); the rest of the service's latency is HTTP and waiting "
        "for the one worker. Both gave the same answers. Targets: at most 15 ms added at "
        "p50 to a follow-up ("
        f"{'met' if d['targets']['follow_up_adds_at_most_15ms_p50'] else 'not met'}), at "
        "most 10% to a fresh video at one client ("
        f"{'met' if d['targets']['fresh_adds_at_most_10pct_at_one_client'] else 'not met'}).",
        "",
    ]
    rows = []
    for clients, level in d["levels"].items():
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


def embed_many_section(d: dict) -> list[str]:
    b, r, t = d["bound"], d["ratios"], d["targets"]
    out = [
        '<a id="embed-many"></a>',
        "## Embedding many videos: the loop, the pipeline, Ray, and the CPU bound",
        "",
        *provenance(d),
        f"{d['videos']} videos ({d['clip']}), {d['model']}. *loop*: `sf.encode(path)` for "
        "each path; *embed*: `embed_videos` with its defaults (decode workers, "
        "`OMP_WAIT_POLICY=PASSIVE` as `sfllava embed` sets it); *ray*: `embed_dataset` on "
        "a local cluster of all the cores (its start not counted). *Job*: videos over the "
        "whole call, workers and actors starting included; *steady*: from the first video "
        "done to the last. **Bound**: decode CPU per video "
        f"({b['decode_cpu_s_per_video']:.3f} s, one decoder thread) plus model CPU per "
        f"video ({b['model_cpu_s_per_video']:.3f} s), over {b['cores']} cores: "
        f"{b['videos_per_s']:.2f} videos/s. Targets: embed at 90% of the bound or more "
        f"({'met' if t['embed_at_least_90pct_of_bound'] else 'not met'}), at least 1.1x "
        f"the loop ({'met' if t['embed_at_least_1_1x_loop'] else 'not met'}).",
        "",
    ]
    rows = []
    for mode, m in d["modes"].items():
        rows.append(
            [
                mode,
                f"{m['videos_per_s']:.2f}",
                f"{m['steady_videos_per_s']:.2f}",
                f"{m['videos_per_s'] / b['videos_per_s']:.0%}",
                f"{m['steady_videos_per_s'] / b['videos_per_s']:.0%}",
                f"{m['wall_s']:.1f} s",
            ]
        )
    for mode, m in d.get("one_core", {}).items():
        rows.append(
            [
                f"{mode}, 1 core",
                f"{m['videos_per_s']:.2f}",
                f"{m['steady_videos_per_s']:.2f}",
                "",
                "",
                f"{m['wall_s']:.1f} s",
            ]
        )
    header = ["mode", "videos/s (job)", "steady", "job / bound", "steady / bound", "wall"]
    out += table(header, rows)
    model = d["scaling_model"]
    cpu = ", ".join(f"{n} cores {v:.1f}" for n, v in model["cpu_videos_per_s"].items())
    gpu = ", ".join(f"{n} cores {v:.1f}" for n, v in model["gpu_decode_bound_videos_per_s"].items())
    out += [
        "",
        f"Embed over loop: {r['embed_over_loop']:.2f}x; the loop itself runs at "
        f"{r['loop_over_bound']:.0%} of the bound here, because both of its stages already "
        "use both cores (the decoder splits the video's GOPs over threads, the model runs "
        "on torch's threads), which leaves a pipeline little to overlap on 2 cores.",
        "",
        f"**Scaling, a model (not measured)**: CPUs only, videos/s = cores / CPU seconds "
        f"per video: {cpu}; it holds while decode workers (one per two cores) and the "
        "model's threads keep every core busy. With the model on a GPU, decoding stays on "
        f"the CPUs and bounds the job at cores / decode CPU per video: {gpu} videos/s, or "
        "the GPU's own time per video if lower (unverified: no GPU measured).",
        "",
    ]
    return out


def gpu_section() -> list[str]:
    """The committed GPU checks (benchmarks/gpu_check.sh): one summary per card."""
    out = ['<a id="gpu"></a>', "## GPU", ""]
    summaries = sorted(p for p in RESULTS.glob("gpu_check_*.json") if p.stem.count("_") == 2)
    if not summaries:
        return [
            *out,
            "No GPU run is committed yet: every GPU figure is **unverified**. Targets: "
            "pooling at 60% or more of the device copy bandwidth, normalisation at 50% or "
            "more. `bash benchmarks/gpu_check.sh` measures both (README.md, *The GPU check*).",
            "",
        ]
    for path in summaries:
        summary = json.loads(path.read_text())
        card = summary["card"]
        env = json.loads((RESULTS / f"gpu_check_{card}_env.json").read_text())
        out += [
            f"### {env.get('gpu', card)}",
            "",
            f"`bash benchmarks/gpu_check.sh` in {summary['seconds']:.0f} s: torch "
            f"{env.get('torch')}, CUDA {env.get('torch_cuda')}, compute capability "
            f"{env.get('capability')}, {env.get('cores')} cores.",
            "",
        ]
        rows = [[step, r["status"], r["figures"]] for step, r in summary["steps"].items()]
        out += table(["step", "status", "figures"], rows)
        for step, section in (("bench_pool", pool_section), ("bench_normalize", normalize_section)):
            step_path = RESULTS / f"gpu_check_{card}_{step}.json"
            data = json.loads(step_path.read_text()).get("result") if step_path.exists() else None
            if data:
                body = section(data)
                out += ["#" + body[1], *body[2:]]  # one heading level down
    return out


def render_doc() -> str:
    out = [
        "# Benchmarks",
        "",
        "Every measured table of the project. Generated by `python benchmarks/report.py` "
        "from the JSON files in `benchmarks/results/`, which the scripts write; each "
        "section gives the machine and the exact command. Each script measures its "
        "reference, and the physical bound where one applies, in the same run as ours. "
        "Timings on shared virtual machines vary from run to run; the JSON files keep "
        "every run.",
        "",
    ]
    for name, section in (
        ("pipeline_cpu", pipeline_section),
        ("session_cpu", session_section),
        ("serve_cpu", serve_section),
        ("embed_many_cpu", embed_many_section),
        ("decode_cpu", decode_section),
        ("normalize_frames_cpu", normalize_section),
        ("processor_diff_cpu", processor_diff_section),
        ("slowfast_pool_cpu", pool_section),
        ("yuv_to_rgb_cpu", yuv_section),
    ):
        data = load(name)
        if data is not None:
            out += section(data)
    out += gpu_section()
    return "\n".join(out).rstrip() + "\n"


def short_machine(data: dict) -> str:
    m = data["machine"]
    where = m.get("gpu") or m["cpu"]
    threads = f"{m['torch_threads']} thread" + "s" * (m["torch_threads"] != 1)
    return f"{where}, {m['cores']} cores, {threads}, torch {m['torch']}"


def render_summary() -> str:
    """One row per benchmark: what, machine, command, ours, reference, ratio."""
    rows = []

    def row(data: dict, what: str, ours: str, reference: str, ratio: str) -> None:
        rows.append([what, short_machine(data), f"`{data['command']}`", ours, reference, ratio])

    dec = load("decode_cpu")
    if dec:
        c = next(c for c in dec["cases"] if c["resolution"] == "720p" and "250" in c["gop"])
        what = "decode 50 frames of 720p (long GOP) as planes into reused memory"
        row(
            dec,
            what,
            ms(c["load_video_planes_ms"]),
            f"decord {ms(c['decord_ms'])}",
            x(c["speedup_planes"]),
        )
    nf = load("normalize_frames_cpu")
    if nf:
        r = nf["results"]["720p"]
        best = min(r["ours"]["median_ms"], r["ours_out"]["median_ms"])
        what = "normalise 50 frames, 720p to 336 x 336 fp16"
        row(
            nf,
            what,
            ms(best),
            f"PIL + CLIP processor {ms(r['published']['median_ms'])}",
            x(r["published"]["median_ms"] / best),
        )
    pool = load("slowfast_pool_cpu")
    if pool:
        wanted = ([50, 576, 4096], "bfloat16")
        r = next(r for r in pool["rows"] if (r["shape"], r["dtype"]) == wanted)
        what = "slow/fast pooling of (50, 576, 4096) bf16, `out=`"
        row(
            pool,
            what,
            ms(r["ours_out_ms"]),
            f"published torch ops {ms(r['published_ms'])}",
            x(r["published_ms"] / r["ours_out_ms"]),
        )
    yuv = load("yuv_to_rgb_cpu")
    if yuv:
        r = yuv["results"]["720p"]
        t = r["timings"]
        what = "YUV 4:2:0 to RGB, 50 frames of 720p"
        reference = f"swscale + copy {ms(t['swscale']['median_ms'])}"
        row(yuv, what, ms(t["ours"]["median_ms"]), reference, x(r["speedup_vs_swscale"]))
    pipe = load("pipeline_cpu")
    if pipe:
        ref, ours = pipe["reference_ms"], pipe["ours_ms"]
        key, e2e = "everything but the model", "end to end"
        what = "`answer` on the demo model, 720p clip: outside the model / end to end"
        row(
            pipe,
            what,
            f"{ms(ours[key])} / {ms(ours[e2e])}",
            f"published pipeline {ms(ref[key])} / {ms(ref[e2e])}",
            f"{x(ref[key] / ours[key])} / {x(ref[e2e] / ours[e2e])}",
        )
    sess = load("session_cpu")
    if sess:
        med = sess["median_ms"]
        what = "time to first token of a follow-up question in a session (demo model, 720p)"
        row(
            sess,
            what,
            ms(med["session_ttft_ms"]),
            f"fresh `answer` {ms(med['fresh_ttft_ms'])}",
            x(sess["ratio"]),
        )
    srv = load("serve_cpu")
    if srv:
        one = srv["levels"]["1"]
        follow, fresh = one["follow_up"], one["fresh"]
        what = "`sfllava serve` at one client: a cached follow-up / a fresh video (demo, 720p)"
        row(
            srv,
            what,
            f"{ms(follow['service']['p50_ms'])} / {ms(fresh['service']['p50_ms'])}",
            f"in-process {ms(follow['in_process']['p50_ms'])} / "
            f"{ms(fresh['in_process']['p50_ms'])}",
            f"{follow['added_p50_ms']:+.1f} ms / {fresh['added_p50_fraction']:+.0%}",
        )
    many = load("embed_many_cpu")
    if many:
        what = f"`sfllava embed` over {many['videos']} 720p 10 s videos (demo model)"
        row(
            many,
            what,
            f"{many['modes']['embed']['videos_per_s']:.2f} videos/s",
            f"loop of `encode` {many['modes']['loop']['videos_per_s']:.2f}; "
            f"bound {many['bound']['videos_per_s']:.2f}",
            f"{many['ratios']['embed_over_loop']:.2f}x / "
            f"{many['ratios']['embed_over_bound']:.0%} of bound",
        )
    header = ["what", "machine", "command", "ours", "reference", "ratio"]
    return "\n".join(table(header, rows)).rstrip() + "\n"


def render_readme(text: str) -> str:
    if not SUMMARY.search(text):
        raise SystemExit("README.md has no <!-- benchmarks:summary --> block")
    return SUMMARY.sub(lambda m: m.group(1) + render_summary() + m.group(3), text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that both are current")
    args = parser.parse_args()
    doc, readme = render_doc(), render_readme(README.read_text())
    if args.check:
        stale = [p.name for p, text in ((DOC, doc), (README, readme)) if p.read_text() != text]
        if stale:
            print(f"out of date: {', '.join(stale)}; run python benchmarks/report.py")
            return 1
        return 0
    DOC.write_text(doc)
    README.write_text(readme)
    print(f"wrote {DOC} and the summary in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
