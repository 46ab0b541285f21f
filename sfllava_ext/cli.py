"""The ``sfllava`` command.

    sfllava ask VIDEO "question" --model PATH [--options A B C ...]
    sfllava embed VIDEO -o tokens.safetensors --model PATH
    sfllava embed INPUT... -o OUTDIR (--model PATH | --demo) [--decode-workers N] [--ray [ADDR]]
    sfllava demo
    sfllava serve (--model PATH | --demo) [--media-dir DIR] [--api-key KEY] ...

Shared flags: --device, --dtype, --num-frames, --slowfast, --resize-mode,
--backend. Errors print one line and exit non-zero (SFLLAVA_DEBUG=1 shows the
traceback).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .constants import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_NUM_FRAMES,
    DEFAULT_RESIZE_MODE,
    DEFAULT_SLOWFAST,
    DEMO_FAMILIES,
    RESIZE_MODES,
)

DTYPES = {
    "float16": "float16",
    "fp16": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float32": "float32",
    "fp32": "float32",
}


def _shared(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)"
    )
    parser.add_argument(
        "--dtype",
        default=None,
        choices=sorted(DTYPES),
        help="default: float16 on CUDA, bfloat16 on CPU",
    )
    parser.add_argument(
        "--num-frames",
        type=int,
        default=DEFAULT_NUM_FRAMES,
        help=f"frames sampled from the video (published: {DEFAULT_NUM_FRAMES})",
    )
    parser.add_argument(
        "--slowfast",
        default=None,
        help=f"aggregation string (any published one; default: the model family's, "
        f"for LLaVA-NeXT {DEFAULT_SLOWFAST})",
    )
    parser.add_argument("--resize-mode", default=DEFAULT_RESIZE_MODE, choices=RESIZE_MODES)
    parser.add_argument(
        "--backend", default=DEFAULT_BACKEND, choices=BACKENDS, help="video decoder"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sfllava", description="SlowFast-LLaVA video question answering and embedding"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    ask = sub.add_parser("ask", help="answer a question about a video")
    ask.add_argument("video")
    ask.add_argument("question")
    ask.add_argument(
        "--model",
        required=True,
        help="LLaVA-NeXT folder or hub id (e.g. llava-hf/llava-v1.6-vicuna-7b-hf)",
    )
    ask.add_argument(
        "--options", nargs="+", default=None, help="multiple choice: the options, in order"
    )
    ask.add_argument("--max-new-tokens", type=int, default=256)
    _shared(ask)

    embed = sub.add_parser(
        "embed",
        help="write videos' visual tokens to session files (VideoSession.load reads them)",
        description="One video and -o FILE.safetensors: that file. Otherwise every video of "
        "the inputs (files, folders, globs, .jsonl/.csv manifests with a 'video' column and "
        "an optional 'id') into the folder -o OUTDIR, with index.jsonl and errors.jsonl; a "
        "rerun skips what is done.",
    )
    embed.add_argument("inputs", nargs="+", metavar="INPUT")
    embed.add_argument(
        "-o", "--output", required=True, help="output folder (or one .safetensors file)"
    )
    source = embed.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a checkpoint folder (or hub id) of a supported family")
    source.add_argument("--demo", action="store_true", help="the built-in random demo model")
    _family(embed)
    embed.add_argument(
        "--decode-workers", type=int, default=None, help="decode processes (default: CPUs / 2)"
    )
    embed.add_argument("--quiet", action="store_true", help="no progress bar")
    embed.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        default=None,
        metavar="ADDRESS",
        help="run on a Ray cluster (the [ray] extra): ADDRESS, or $RAY_ADDRESS, or a local one",
    )
    embed.add_argument(
        "--actors", type=int, default=None, help="with --ray: model actors (default: GPUs, or 1)"
    )
    _shared(embed)

    demo = sub.add_parser(
        "demo", help="run the whole pipeline on a built-in random model and synthetic video"
    )
    demo.add_argument("--question", default=None)
    demo.add_argument("--video", default=None, help="use this video instead of the synthetic one")
    demo.add_argument("--max-new-tokens", type=int, default=32)
    _family(demo)
    _shared(demo)

    serve = sub.add_parser("serve", help="an OpenAI-compatible HTTP service (the [serve] extra)")
    which = serve.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="a checkpoint folder (or hub id) of a supported family")
    which.add_argument("--demo", action="store_true", help="the built-in random demo model")
    _family(serve)
    serve.add_argument("--host", default="127.0.0.1", help="default: this machine only")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--media-dir", default=None, help="the one folder file:// URLs may name")
    serve.add_argument(
        "--api-key", default=None, help="require this key (default: $SFLLAVA_API_KEY if set)"
    )
    serve.add_argument("--max-video-mb", type=float, default=256)
    serve.add_argument("--max-duration-s", type=float, default=3600)
    serve.add_argument("--max-pixels", type=int, default=3840 * 2160)
    serve.add_argument("--cache-gb", type=float, default=4, help="sessions kept, LRU")
    serve.add_argument("--max-queue", type=int, default=64, help="requests waiting; then 503")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    _shared(serve)
    return parser


def _dtype(name):
    import torch

    return None if name is None else getattr(torch, DTYPES[name])


def _spec(args):
    from .model_spec import DEMO, ModelSpec

    family = getattr(args, "family", "next")
    if not getattr(args, "demo", False) and family != "next":
        raise ValueError("--family is for --demo: a checkpoint's family comes from its config")
    return ModelSpec(
        model=DEMO if getattr(args, "demo", False) else args.model,
        device=args.device,
        dtype=None if args.dtype is None else DTYPES[args.dtype],
        slowfast=args.slowfast,
        num_frames=args.num_frames,
        resize_mode=args.resize_mode,
        backend=args.backend,
        family=family,
    )


def _family(parser) -> None:
    parser.add_argument(
        "--family",
        default="next",
        choices=DEMO_FAMILIES,
        help="the demo model's family (with --demo; a checkpoint's comes from its config)",
    )


def _load(args):
    return _spec(args).build()


def cmd_ask(args) -> None:
    model = _load(args)
    if args.options:
        letter = model.choose(args.video, args.question, args.options)
        print(letter if letter is not None else "(no option chosen)")
        return
    # the answer as it is generated
    pieces = model.stream(args.video, args.question, max_new_tokens=args.max_new_tokens)
    try:
        for piece in pieces:
            print(piece, end="", flush=True)
    finally:
        pieces.close()
        print()  # the line ends even when the generation fails midway


def cmd_embed(args) -> int:
    if _single_file(args):
        model = _load(args)
        session = model.session(args.inputs[0])  # decoded as encode(path) decodes it
        session.save(args.output)  # the session file format (VideoSession.load reads it)
        print(
            f"wrote {tuple(session.tokens.shape)} tokens from "
            f"{len(session.info['frame_indices'])} frames to {args.output}"
        )
        return 0
    if args.ray is not None:
        from .distributed import embed_dataset

        summary = embed_dataset(
            args.inputs,
            args.output,
            _spec(args),
            address=None if args.ray == "auto" else args.ray,
            actors=args.actors,
            progress=not args.quiet,
        )
    else:
        from .embed import embed_videos

        summary = embed_videos(
            args.inputs,
            args.output,
            model=_load(args),
            decode_workers=args.decode_workers,
            progress=not args.quiet,
        )
    print(summary.line())
    for failure in summary.failures:
        print(f"  failed: {failure['source']}: {failure['reason']}", file=sys.stderr)
    if summary.failed:
        print(
            f"sfllava: {summary.failed} video(s) failed, listed in {summary.errors}",
            file=sys.stderr,
        )
    return 1 if summary.failed else 0


def _single_file(args) -> bool:
    """``sfllava embed VIDEO -o FILE.safetensors``: one video to one file."""
    from .embed.inputs import is_manifest

    if len(args.inputs) != 1:
        return False
    only = args.inputs[0]
    return (
        os.path.isfile(only)
        and not is_manifest(only)
        and args.output.endswith(".safetensors")
        and args.ray is None
    )


def cmd_demo(args) -> None:
    from .demo import DEMO_QUESTION, run_demo

    result = run_demo(
        question=args.question or DEMO_QUESTION,
        device=args.device,
        dtype=_dtype(args.dtype),
        num_frames=args.num_frames,
        slowfast=args.slowfast,
        resize_mode=args.resize_mode,
        backend=args.backend,
        max_new_tokens=args.max_new_tokens,
        video=args.video,
        family=args.family,
    )
    name = {"next": "LLaVA-NeXT", "next_video": "LLaVA-NeXT-Video", "onevision": "LLaVA-OneVision"}[
        args.family
    ]
    print(f"SlowFast-LLaVA demo: built-in {name} with RANDOM weights (no download);")
    print("the answer below is meaningless, the latencies are real.")
    print(
        f"device {result['device']}, dtype {result['dtype']}, aggregation {result['aggregation']}, "
        f"{result['num_visual_tokens']} visual tokens"
    )
    print(f"question: {result['question']}")
    print(f"answer (random weights): {result['answer']!r}")
    print()
    print(result["timings"].table())


def cmd_serve(args) -> None:
    from .serve import require_serve_extra, serve
    from .serve.config import ServeConfig

    require_serve_extra()  # before loading any model
    sf = _load(args)
    model_id = sf.name_or_path if args.demo else os.path.basename(os.path.normpath(args.model))
    config = ServeConfig(
        host=args.host,
        port=args.port,
        media_dir=args.media_dir,
        api_key=args.api_key or os.environ.get("SFLLAVA_API_KEY") or None,
        max_video_mb=args.max_video_mb,
        max_duration_s=args.max_duration_s,
        max_pixels=args.max_pixels,
        cache_gb=args.cache_gb,
        max_queue=args.max_queue,
        model_id=model_id,
    )
    serve(sf, config, log_level=args.log_level)


COMMANDS = {"ask": cmd_ask, "embed": cmd_embed, "demo": cmd_demo, "serve": cmd_serve}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "embed" and "torch" not in sys.modules:
        # the model's threads sleep when idle rather than spin, leaving the cores to the
        # decode workers (set before torch loads its OpenMP runtime; yours wins)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.WARNING, format="sfllava: %(levelname)s: %(message)s")
    try:
        code = COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("sfllava: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`sfllava ask ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:  # one clear line, not a traceback
        if os.environ.get("SFLLAVA_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"sfllava: error: {type(exc).__name__}: {message}", file=sys.stderr)
        return 1
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
