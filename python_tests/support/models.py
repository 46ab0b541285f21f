"""Small random-weight LLaVA-NeXT models for the tests: a 3-layer CLIP tower at 336 px
(24 x 24 tokens) and a 2-layer Llama, seeded."""

from __future__ import annotations

import torch

__all__ = ["TEXT", "VISION", "tiny_llava"]

VISION = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    image_size=336,
    patch_size=14,
)
TEXT = dict(
    hidden_size=48,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=256,
)


def tiny_llava(vocab_size: int, seed: int = 0, **text_overrides):
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
    )

    text = LlamaConfig(
        vocab_size=vocab_size, bos_token_id=1, eos_token_id=2, **{**TEXT, **text_overrides}
    )
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(**VISION), text_config=text, image_token_index=0
    )
    torch.manual_seed(seed)
    return LlavaNextForConditionalGeneration(config).eval()
