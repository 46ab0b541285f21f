"""The ``sfllava`` command, one module per subcommand.

    sfllava ask VIDEO "question" --model PATH [--options A B C ...]      ask.py
    sfllava embed VIDEO -o tokens.safetensors --model PATH              embed.py
    sfllava embed INPUT... -o OUTDIR (--model PATH | --demo) [--decode-workers N] [--ray [ADDR]]
    sfllava demo                                                        demo.py
    sfllava serve (--model PATH | --demo) [--media-dir DIR] [--api-key KEY] ...   serve.py
    sfllava eval run DATASET [--task T] [--format F] -o OUTDIR (--model PATH | --demo)  evaluate.py
    sfllava eval score PREDICTIONS --task T [--judge-url URL | --judge exact]

Shared flags (options.py): --device, --dtype, --num-frames, --slowfast, --resize-mode,
--backend. Errors print one line and exit non-zero (SFLLAVA_DEBUG=1 shows the
traceback).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import ask, demo, embed, evaluate, serve

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = {"ask": ask, "embed": embed, "demo": demo, "serve": serve, "eval": evaluate}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sfllava", description="SlowFast-LLaVA video question answering and embedding"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS.values():
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "embed" and "torch" not in sys.modules:
        # the model's threads sleep when idle rather than spin, leaving the cores to the
        # decode workers (set before torch loads its OpenMP runtime; yours wins)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.WARNING, format="sfllava: %(levelname)s: %(message)s")
    try:
        code = COMMANDS[args.command].run(args)
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
