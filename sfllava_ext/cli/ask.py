"""``sfllava ask VIDEO "question" --model PATH [--options A B C ...]``: one answer,
printed as it is generated (or the chosen option's letter)."""

from __future__ import annotations

import argparse

from .options import add_model_flags, build_model

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
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
    add_model_flags(ask)


def run(args: argparse.Namespace) -> None:
    model = build_model(args)
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
