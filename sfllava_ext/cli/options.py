"""What the ``sfllava`` commands share: the model flags, the demo's ``--family``, and the
:class:`~sfllava_ext.ModelSpec` that the flags describe."""

from __future__ import annotations

import argparse

from ..constants import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_NUM_FRAMES,
    DEFAULT_RESIZE_MODE,
    DEFAULT_SLOWFAST,
    DEMO_FAMILIES,
    RESIZE_MODES,
)

__all__ = ["DTYPES", "add_family_flag", "add_model_flags", "build_model", "dtype_of", "spec_of"]

DTYPES = {
    "float16": "float16",
    "fp16": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float32": "float32",
    "fp32": "float32",
}


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """--device, --dtype, --num-frames, --slowfast, --resize-mode, --backend."""
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


def add_family_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--family",
        default="next",
        choices=DEMO_FAMILIES,
        help="the demo model's family (with --demo; a checkpoint's comes from its config)",
    )


def dtype_of(name: str | None):
    """The torch dtype a ``--dtype`` value names (None: the device's default)."""
    import torch

    return None if name is None else getattr(torch, DTYPES[name])


def spec_of(args: argparse.Namespace):
    """The :class:`~sfllava_ext.ModelSpec` the flags describe.

    Raises:
        ValueError: ``--family`` beside ``--model`` (a checkpoint's family comes from
            its config).
    """
    from ..models.spec import DEMO, ModelSpec

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


def build_model(args: argparse.Namespace):
    """The :class:`~sfllava_ext.SlowFastLlava` the flags describe."""
    return spec_of(args).build()
