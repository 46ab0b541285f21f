"""``sfllava demo``: the main job on the built-in default. A synthetic H.264 video and a
small random-weight model of the chosen family (no download), the whole pipeline, the
(meaningless) answer and the latency of every stage."""

from __future__ import annotations

import argparse
import os

import torch

from ..constants import DEFAULT_BACKEND, DEFAULT_NUM_FRAMES, DEFAULT_RESIZE_MODE
from ..video import synthetic
from .options import add_family_flag, add_model_flags, dtype_of

__all__ = ["DEMO_QUESTION", "add_parser", "run", "run_demo"]

DEMO_QUESTION = "What is moving across the screen?"


def add_parser(sub) -> None:
    demo = sub.add_parser(
        "demo", help="run the whole pipeline on a built-in random model and synthetic video"
    )
    demo.add_argument("--question", default=None)
    demo.add_argument("--video", default=None, help="use this video instead of the synthetic one")
    demo.add_argument("--max-new-tokens", type=int, default=32)
    add_family_flag(demo)
    add_model_flags(demo)


def run_demo(
    *,
    question: str = DEMO_QUESTION,
    device: str | None = None,
    dtype: torch.dtype | None = None,
    num_frames: int = DEFAULT_NUM_FRAMES,
    slowfast: str | None = None,
    resize_mode: str = DEFAULT_RESIZE_MODE,
    backend: str = DEFAULT_BACKEND,
    max_new_tokens: int = 32,
    video: str | None = None,
    workdir: str | None = None,
    family: str = "next",
) -> dict:
    """Writes a synthetic video (unless ``video`` is given), builds the demo model of
    ``family`` (:func:`~sfllava_ext.models.demo_parts`), answers ``question`` through
    the whole pipeline and returns the answer with per-stage latencies.

    Raises:
        ValueError: an unknown family.
    """
    import tempfile

    from ..models.spec import DEMO, ModelSpec

    spec = ModelSpec(
        model=DEMO,
        device=device,
        dtype=None if dtype is None else str(dtype).replace("torch.", ""),
        slowfast=slowfast,
        family=family,
        num_frames=num_frames,
        resize_mode=resize_mode,
        backend=backend,
    )
    sf = spec.build()  # the device's default dtype where none is given
    sf.profile = True
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = video or synthetic.write_synthetic_video(os.path.join(tmp, "demo.mp4"))
        answer = sf.answer(path, question, max_new_tokens=max_new_tokens)
    timings = sf.last_timings
    return {
        "answer": answer,
        "question": question,
        "timings": timings,
        "device": str(torch.device(device)) if device is not None else sf.device.type,
        "dtype": str(sf.dtype).replace("torch.", ""),
        "num_visual_tokens": sf.num_visual_tokens(num_frames),
        "aggregation": str(sf.aggregation),
        "family": family,
    }


def run(args: argparse.Namespace) -> None:
    result = run_demo(
        question=args.question or DEMO_QUESTION,
        device=args.device,
        dtype=dtype_of(args.dtype),
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
