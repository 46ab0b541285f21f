"""The demo models: small LLaVA-NeXT, LLaVA-NeXT-Video and LLaVA-OneVision models with
random weights and tokenizers trained on the spot, so that the whole pipeline runs with
no download. Their answers mean nothing; their latencies are real. The way in is
:func:`demo_parts` (re-exported by :mod:`sfllava_ext.models`), or
:class:`~sfllava_ext.ModelSpec` with ``model="demo"``; the builders of each part
are here for the tests and benchmarks.

    tokenizers.py  the Llama-style and Qwen2-style tokenizers
    llava_next.py  LLaVA-NeXT and LLaVA-NeXT-Video
    onevision.py   LLaVA-OneVision
"""

from __future__ import annotations

import torch

from ...constants import DEMO_FAMILIES
from .llava_next import DEMO_TEXT, DEMO_VISION, demo_model
from .onevision import ONEVISION_PROCESSOR, onevision_model
from .tokenizers import byte_level_bpe, demo_tokenizer, onevision_tokenizer

__all__ = [
    "DEMO_TEXT",
    "DEMO_VISION",
    "ONEVISION_PROCESSOR",
    "byte_level_bpe",
    "demo_model",
    "demo_parts",
    "demo_tokenizer",
    "onevision_model",
    "onevision_tokenizer",
]


def demo_parts(family: str = "next", *, dtype: torch.dtype = torch.float32):
    """``(model, tokenizer, image_processor)`` of the demo of ``family`` (``next``:
    LLaVA-NeXT; ``next_video``: LLaVA-NeXT-Video; ``onevision``: LLaVA-OneVision);
    the processor is None where the vision config's size and CLIP's mean and std are
    the model's.

    Raises:
        ValueError: an unknown family.
    """
    if family == "next":
        tokenizer = demo_tokenizer()
        return demo_model(tokenizer, dtype=dtype), tokenizer, None
    if family == "next_video":
        tokenizer = demo_tokenizer()
        return demo_model(tokenizer, dtype=dtype, video=True), tokenizer, None
    if family == "onevision":
        tokenizer = onevision_tokenizer()
        return onevision_model(tokenizer, dtype=dtype), tokenizer, dict(ONEVISION_PROCESSOR)
    raise ValueError(f"family must be one of {', '.join(DEMO_FAMILIES)}, got {family!r}")
