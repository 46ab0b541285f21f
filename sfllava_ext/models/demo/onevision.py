"""The demo's LLaVA-OneVision (``sfllava demo --family onevision``): a small random
model with the family's real geometry (SigLIP at 384 px, patch 14, a 27 x 27 grid,
layer -1 with no CLS token), a 2-layer Qwen2 and its processor's settings (mean and std
of 0.5, bicubic); its tokenizer is :func:`~.tokenizers.onevision_tokenizer`.
"""

from __future__ import annotations

import torch

from .llava_next import DEMO_TEXT

__all__ = ["ONEVISION_PROCESSOR", "ONEVISION_VISION", "onevision_model"]

ONEVISION_VISION = dict(
    hidden_size=64,
    intermediate_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    image_size=384,
    patch_size=14,
    vision_use_head=False,
)
# the base-image settings of the published OneVision processors
ONEVISION_PROCESSOR = {
    "size": {"height": 384, "width": 384},
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "resample": 3,
    "rescale_factor": 1 / 255,
    "do_convert_rgb": True,
}


def onevision_model(tokenizer, *, seed: int = 0, dtype: torch.dtype = torch.float32):
    """The demo LLaVA-OneVision with random weights (seeded)."""
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        Qwen2Config,
        SiglipVisionConfig,
    )

    text = Qwen2Config(
        vocab_size=len(tokenizer),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **{**DEMO_TEXT, "max_position_embeddings": 32768},
    )
    config = LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(**ONEVISION_VISION).to_dict(),
        text_config=text.to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaOnevisionForConditionalGeneration(config)
    return model.to(dtype).eval()
