"""LLaVA-NeXT (``llava_next``): CLIP-L/14 at 336 px (24 x 24 tokens, CLS dropped) and
the published checkpoints' language models: Vicuna-7B/13B, Mistral-7B, the 34B (Yi,
ChatML), Llama-3-8B and the 72B/110B (docs/method.md#families)."""

from __future__ import annotations

from ...constants import DEFAULT_SLOWFAST
from .base import Family

__all__ = ["LLAVA_NEXT"]

# the published default: 10 slow frames x 288 + 50 fast frames x 16 = 3,680 tokens
LLAVA_NEXT = Family(
    model_type="llava_next",
    model_class="LlavaNextForConditionalGeneration",
    default_slowfast=DEFAULT_SLOWFAST,
)
