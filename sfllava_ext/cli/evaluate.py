"""``sfllava eval run`` and ``sfllava eval score``: the paper's benchmarks with the
official arithmetic (:mod:`sfllava_ext.eval`, docs/eval.md)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from .options import add_family_flag, add_model_flags, spec_of

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    from ..eval.datasets import FORMATS, TASKS
    from ..eval.generation import DEFAULT_MAX_NEW_TOKENS
    from ..eval.judge import DEFAULT_JUDGE_MODEL, DEFAULT_JUDGE_URL
    from ..eval.official import CRITERIA

    parser = sub.add_parser(
        "eval",
        help="evaluate on a benchmark with the paper's arithmetic (run, score)",
        description="run: a question file through a model into OUTDIR/predictions.jsonl "
        "and summary.json (a rerun continues). score: a predictions file, ours or the "
        "official scripts', with no model.",
    )
    actions = parser.add_subparsers(dest="action", required=True)

    def judge_flags(p) -> None:
        p.add_argument(
            "--judge",
            choices=("chat", "exact"),
            default="chat",
            help="chat: an OpenAI-compatible endpoint (the paper's); exact: offline "
            "exact match, a smoke test",
        )
        p.add_argument(
            "--judge-url",
            default=DEFAULT_JUDGE_URL,
            help=f"the judge's API base URL (default {DEFAULT_JUDGE_URL}; key from "
            "SFLLAVA_JUDGE_API_KEY, else OPENAI_API_KEY)",
        )
        p.add_argument(
            "--judge-model",
            default=DEFAULT_JUDGE_MODEL,
            help=f"default {DEFAULT_JUDGE_MODEL} (the paper's)",
        )
        p.add_argument(
            "--judge-attempts",
            type=int,
            default=5,
            help="tries per item, for the transport and for an unreadable reply",
        )
        p.add_argument(
            "--criteria",
            default=None,
            help=f"generative: comma-separated, among {', '.join(CRITERIA)} (default: each item's)",
        )
        p.add_argument(
            "--strict",
            action="store_true",
            help="headline the strict figures (every item counts, failed ones "
            "as wrong); both are always in summary.json",
        )
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    run_p = actions.add_parser("run", help="predict, judge and score a question file")
    run_p.add_argument("dataset", metavar="DATASET", help="a question file (or VCGBench folder)")
    run_p.add_argument(
        "--task",
        choices=TASKS,
        default=None,
        help="required for our layout; an official format implies its own",
    )
    run_p.add_argument("--format", dest="fmt", choices=list(FORMATS), default="ours")
    run_p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    source = run_p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a checkpoint folder of a supported family")
    source.add_argument("--demo", action="store_true", help="the built-in random demo model")
    add_family_flag(run_p)
    run_p.add_argument(
        "--video-root",
        default=None,
        help="where video names resolve (default: the question file's folder)",
    )
    run_p.add_argument(
        "--max-new-tokens",
        type=int,
        default=DEFAULT_MAX_NEW_TOKENS,
        help=f"per answer (the official scripts': {DEFAULT_MAX_NEW_TOKENS})",
    )
    run_p.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        default=None,
        metavar="ADDRESS",
        help="generate on a Ray cluster (the [ray] extra), as sfllava embed --ray",
    )
    run_p.add_argument(
        "--actors", type=int, default=None, help="with --ray: model actors (default: GPUs, or 1)"
    )
    judge_flags(run_p)
    add_model_flags(run_p)

    score_p = actions.add_parser("score", help="score a predictions file with no model")
    score_p.add_argument("predictions", metavar="PREDICTIONS")
    score_p.add_argument("--task", choices=TASKS, required=True)
    score_p.add_argument(
        "--rejudge",
        action="store_true",
        help="judge every line again, even one holding a reply (ours from a run)",
    )
    score_p.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="OUTDIR",
        help="where summary.json goes (default: beside the file)",
    )
    judge_flags(score_p)


def _judge(args, task: str):
    """The judge the flags name (None for multiple choice, which needs none)."""
    from ..eval.judge import DEFAULT_JUDGE_URL, ChatJudge, ExactJudge, judge_key

    if task == "mc":
        return None
    if args.judge == "exact":
        return ExactJudge()
    if args.judge_url == DEFAULT_JUDGE_URL and judge_key() is None:
        raise ValueError(
            "--judge-url: the OpenAI API needs a key: set SFLLAVA_JUDGE_API_KEY or "
            "OPENAI_API_KEY (or --judge exact for an offline run)"
        )
    return ChatJudge(args.judge_url, args.judge_model, attempts=args.judge_attempts)


def _criteria(args, task: str) -> tuple[str, ...] | None:
    from ..eval.official import CRITERIA

    if args.criteria is None:
        return None
    if task != "generative":
        raise ValueError(f"--criteria: is for generative questions, not {task}")
    names = tuple(name.strip() for name in args.criteria.split(",") if name.strip())
    unknown = [name for name in names if name not in CRITERIA]
    if not names or unknown:
        raise ValueError(f"--criteria: choose among {', '.join(CRITERIA)}, got {args.criteria!r}")
    return names


def _report(summary, out: Path, strict: bool) -> None:
    from ..eval.summary import format_table

    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}%"

    def num(x):
        return "-" if x is None else f"{x:.2f}"

    def figures(prefix: str) -> str:
        parts = []
        if summary["task"] != "generative":
            parts.append(f"accuracy {pct(summary.get(prefix + 'accuracy'))}")
        if summary["task"] != "mc":
            parts.append(f"score {num(summary.get(prefix + 'score'))}")
        return " ".join(parts)

    head, other = ("strict_", "") if strict else ("", "strict_")
    pending = summary.get("pending") or 0
    print(
        f"{summary['task']}: {figures(head)} ({'strict' if strict else 'published'}; "
        f"{'published' if strict else 'strict'}: {figures(other)}), {summary['scored']} "
        f"scored, {summary['failed']} failed of {summary['total']}"
        + (f", {pending} pending (rerun to continue)" if pending else "")
    )
    print(format_table(summary))
    print(f"summary: {out / 'summary.json'}")


def run(args: argparse.Namespace) -> int:
    if args.action == "score":
        return _score(args)
    from ..eval.datasets import load_items
    from ..eval.runner import run_eval

    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    items = load_items(args.dataset, args.task, args.fmt)
    task = args.task or _implied(args.fmt)
    criteria = _criteria(args, task)
    if criteria is not None:
        items = [dataclasses.replace(item, criteria=criteria) for item in items]
        if "consistency" in criteria and any(item.question2 is None for item in items):
            raise ValueError("--criteria: consistency needs every item's question2")
    judge = _judge(args, task)
    root = args.video_root or str(Path(args.dataset).resolve().parent)
    spec = spec_of(args)  # built by run_eval once the output folder is locked
    options = dict(
        task=task,
        judge=judge,
        video_root=root,
        max_new_tokens=args.max_new_tokens,
        progress=not args.quiet,
        context={"dataset": str(args.dataset), "format": args.fmt},
    )
    try:
        if args.ray is not None:
            from ..eval.distributed import RayGeneration

            generate = RayGeneration(
                spec,
                task,
                args.max_new_tokens,
                address=None if args.ray == "auto" else args.ray,
                actors=args.actors,
            )
            options.update(generate=generate, settings=generate.settings)
        summary = run_eval(items, spec, args.output, **options)
    finally:
        if judge is not None:
            judge.close()
    print(f"predictions: {Path(args.output) / 'predictions.jsonl'}", file=sys.stderr)
    _report(summary, Path(args.output), args.strict)
    return 0


def _implied(fmt: str) -> str:
    from ..eval.datasets import FORMATS

    return FORMATS[fmt]


def _score(args) -> int:
    from ..eval.scoring import score_predictions

    try:
        judge, missing = _judge(args, args.task), None
    except ValueError as exc:  # needed only where the file holds no replies
        judge, missing = None, exc
    out = Path(args.output) if args.output else Path(args.predictions).resolve().parent
    try:
        summary = score_predictions(
            args.predictions,
            args.task,
            judge=judge,
            out_dir=out,
            criteria=_criteria(args, args.task),
            rejudge=args.rejudge,
            progress=not args.quiet,
        )
    except ValueError as exc:
        if missing is not None and str(exc).startswith("judge:"):
            raise missing from None
        raise
    finally:
        if judge is not None:
            judge.close()
    _report(summary, out, args.strict)
    return 0
