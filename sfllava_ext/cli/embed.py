"""``sfllava embed``: one video to one session file, or many videos into a folder
(:func:`~sfllava_ext.embed_videos`), or the same on a Ray cluster
(:func:`~sfllava_ext.embed.distributed.embed_dataset`).

SIGTERM (and SIGHUP, unless ignored) stop it as Ctrl-C does: what was encoded is
written, the workers end, the index is written; then it exits with 128 + the signal's
number (143, 129). A second such signal ends it at once (a rerun still resumes)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading

from .options import add_family_flag, add_model_flags, build_model, spec_of

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
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
    add_family_flag(embed)
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
    add_model_flags(embed)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread: the job stops as on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _stop_on_signals():
    """SIGTERM and SIGHUP (unless ignored, as under nohup) raise :class:`Terminated`;
    the second one takes its default action (the process ends at once)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers
        return
    saved = {}

    def stop(signum, frame):
        for number, handler in saved.items():
            signal.signal(number, handler)
        raise Terminated(signum)

    for number in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(number) is not signal.SIG_IGN:
            saved[number] = signal.signal(number, stop) or signal.SIG_DFL  # None: not Python's
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


def run(args: argparse.Namespace) -> int:
    try:
        with _stop_on_signals():
            return _run(args)
    except Terminated as stop:
        print(
            f"sfllava: terminated ({signal.Signals(stop.signum).name}); the index lists "
            "every finished video, a rerun resumes",
            file=sys.stderr,
        )
        return 128 + stop.signum


def _run(args: argparse.Namespace) -> int:
    if _single_file(args):
        model = build_model(args)
        session = model.session(args.inputs[0])  # decoded as encode(path) decodes it
        session.save(args.output)  # the session file format (VideoSession.load reads it)
        print(
            f"wrote {tuple(session.tokens.shape)} tokens from "
            f"{len(session.info['frame_indices'])} frames to {args.output}"
        )
        return 0
    from ..embed import FolderLock, collect_inputs

    # before a model loads (minutes, for a large one): the model's flags, the names and
    # collisions, and whether another run holds the folder (the job takes the lock
    # itself below)
    spec = spec_of(args)
    collect_inputs(args.inputs)
    with FolderLock(args.output):
        pass
    if args.ray is not None:
        from ..embed.distributed import embed_dataset

        summary = embed_dataset(
            args.inputs,
            args.output,
            spec,
            address=None if args.ray == "auto" else args.ray,
            actors=args.actors,
            progress=not args.quiet,
        )
    else:
        from ..embed import embed_videos

        summary = embed_videos(
            args.inputs,
            args.output,
            model=spec.build(),
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
    from ..embed.inputs import is_manifest

    if len(args.inputs) != 1:
        return False
    only = args.inputs[0]
    return (
        os.path.isfile(only)
        and not is_manifest(only)
        and args.output.endswith(".safetensors")
        and args.ray is None
    )
