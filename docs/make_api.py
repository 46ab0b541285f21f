"""Writes docs/api.md, the API reference, from the public names' signatures and
docstrings (the docstrings are the source; this page only gathers them).

    python docs/make_api.py            # rewrite docs/api.md
    python docs/make_api.py --check    # exit 1 if docs/api.md is out of date

python_tests/test_api_docs.py runs the check, so the page never drifts from the code.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "api.md"

# (module, name, members): the public API, in the order a user meets it.
API = [
    (
        "sfllava_ext",
        "SlowFastLlava",
        [
            "from_pretrained",
            "encode",
            "encode_pixels",
            "answer",
            "choose",
            "session",
            "stream",
            "build_inputs",
            "load_video",
            "prompt_template",
            "num_visual_tokens",
            "fingerprint",
            "new_timings",
        ],
    ),
    (
        "sfllava_ext",
        "VideoSession",
        [
            "answer",
            "choose",
            "stream",
            "tokenize",
            "generate",
            "next_token_logits",
            "prompt_positions",
            "reused_positions",
            "save",
            "load",
            "held_bytes",
        ],
    ),
    ("sfllava_ext.session", "VideoInfo", ["of_clip", "replace"]),
    (
        "sfllava_ext.llm",
        "LanguageModel",
        [
            "tokenize",
            "tokenize_text",
            "decode",
            "template",
            "stop_ids",
            "finish_reason",
            "generation_kwargs",
            "generate",
            "stream",
            "next_token_logits",
            "prefill",
        ],
    ),  # fmt: skip
    ("sfllava_ext", "embed_videos", []),
    ("sfllava_ext", "EmbedSummary", ["line"]),
    ("sfllava_ext.embed", "collect_inputs", []),
    ("sfllava_ext.embed", "embed_dataset", []),
    ("sfllava_ext.eval", "load_items", []),
    ("sfllava_ext.eval", "EvalItem", ["record"]),
    ("sfllava_ext.eval", "resolve_video", []),
    ("sfllava_ext.eval", "run_eval", []),
    ("sfllava_ext.eval", "score_predictions", []),
    ("sfllava_ext.eval", "summarize", []),
    ("sfllava_ext.eval", "ChatJudge", ["reply"]),
    ("sfllava_ext.eval", "ExactJudge", []),
    ("sfllava_ext.eval.official", "parse_option", []),
    ("sfllava_ext.eval.official", "multiple_choice_figures", []),
    ("sfllava_ext.eval.official", "judge_messages", []),
    ("sfllava_ext.eval.official", "read_judge_reply", []),
    ("sfllava_ext.eval.official", "open_ended_figures", []),
    ("sfllava_ext.eval.official", "vcgbench_average", []),
    ("sfllava_ext", "ModelSpec", ["build"]),
    ("sfllava_ext", "load_video", []),
    ("sfllava_ext.video", "DecodeLimits", []),
    ("sfllava_ext.video", "VideoLimitError", []),
    ("sfllava_ext.video.limits", "open_container", []),
    ("sfllava_ext", "sample_frame_indices", []),
    ("sfllava_ext.video", "fps_frame_indices", []),
    ("sfllava_ext.video", "decode_threads", []),
    ("sfllava_ext", "VideoClip", []),
    ("sfllava_ext", "Yuv420Frames", ["to_rgb"]),
    ("sfllava_ext", "FrameBuffers", ["take", "give", "release", "clear", "idle_bytes"]),
    ("sfllava_ext", "normalize_frames", []),
    ("sfllava_ext", "frame_normalizer", []),
    ("sfllava_ext", "FrameNormalizer", ["__call__"]),
    ("sfllava_ext", "slowfast_pool", []),
    ("sfllava_ext", "SlowFastConfig", ["parse", "num_tokens"]),
    ("sfllava_ext", "parse_aggregation", []),
    ("sfllava_ext", "num_visual_tokens", []),
    ("sfllava_ext", "aggregate", []),
    ("sfllava_ext.ops", "yuv420_to_rgb", []),
    ("sfllava_ext", "build_info", []),
    ("sfllava_ext", "VideoDecodeError", []),
    ("sfllava_ext", "PromptError", []),
    ("sfllava_ext", "SessionFileError", []),
    ("sfllava_ext", "UnsupportedModelError", []),
    ("sfllava_ext", "NotLlavaNextError", []),
    ("sfllava_ext.models", "family_of", []),
    ("sfllava_ext.models", "Family", ["chat_format", "wants_dynamic_rope", "load_class"]),
    ("sfllava_ext.llm", "chat_format", []),
    ("sfllava_ext.models", "demo_parts", []),
    ("sfllava_ext", "ExtensionBuildError", []),
]


def _signature(obj) -> str:
    target = obj.fget if isinstance(obj, property) else obj
    if isinstance(obj, property):
        return ""
    try:
        return str(inspect.signature(target))
    except (TypeError, ValueError):
        return "(...)"


def _entry(title: str, obj, level: str) -> list[str]:
    doc = inspect.getdoc(obj) or ""
    if not doc:
        raise SystemExit(f"{title} has no docstring")
    anchor = title.replace(".", "-").lower()
    lines = [f'<a id="{anchor}"></a>', f"{level} `{title}`", "", "```text"]
    lines += [f"{title}{_signature(obj)}", "", *doc.splitlines()]
    return [*lines, "```", ""]


def render() -> str:
    import importlib

    import sfllava_ext

    lines = [
        "# API reference",
        "",
        f"sfllava_ext {sfllava_ext.__version__}. Generated by `python docs/make_api.py` from the",
        "docstrings, which are the source: shapes, dtypes, layouts and errors are given there.",
        "The method behind the numbers is in [method.md](method.md).",
        "",
    ]
    toc = []
    body: list[str] = []
    for module, name, members in API:
        obj = getattr(importlib.import_module(module), name)
        title = f"{module}.{name}"
        toc.append(f"- [`{title}`](#{title.replace('.', '-').lower()})")
        body += _entry(title, obj, "##")
        for member in members:
            attr = inspect.getattr_static(obj, member)
            if isinstance(attr, (staticmethod, classmethod)):
                attr = getattr(obj, member)
            body += _entry(f"{title}.{member}", attr, "###")
    return "\n".join([*lines, *toc, "", *body]).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that api.md is current")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python docs/make_api.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
