"""The demo's LLaVA-NeXT (and, with ``video=True``, LLaVA-NeXT-Video): a small model with
random weights, fixed so that figures compare across runs: CLIP vision hidden 64,
intermediate 256, 4 layers, 4 heads, 336 px, patch 14 (24 x 24 tokens); Llama text
hidden 128, intermediate 256, 2 layers, 4 heads."""

from __future__ import annotations

import torch

__all__ = ["DEMO_TEXT", "DEMO_VISION", "demo_model"]

DEMO_VISION = dict(
    hidden_size=64,
    intermediate_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    image_size=336,
    patch_size=14,
    projection_dim=64,
)
DEMO_TEXT = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=4096,
)


def demo_model(
    tokenizer,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    video: bool = False,
    text_model: str = "llama",
):
    """The fixed demo LLaVA-NeXT with random weights (seeded); ``video``: the same
    parts as a LLaVA-NeXT-Video (its ``vision_resampler`` beside them); ``text_model``:
    the language model's ``model_type`` (``llama``, as Vicuna; ``mistral``, as
    llava-v1.6-mistral), its sizes :data:`DEMO_TEXT` either way."""
    import transformers
    from transformers import AutoConfig, CLIPVisionConfig

    kind = "LlavaNextVideo" if video else "LlavaNext"
    config_class = getattr(transformers, f"{kind}Config")
    model_class = getattr(transformers, f"{kind}ForConditionalGeneration")

    text = AutoConfig.for_model(
        text_model,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **DEMO_TEXT,
    )
    config = config_class(
        vision_config=CLIPVisionConfig(**DEMO_VISION),
        text_config=text,
        image_token_index=tokenizer.unk_token_id,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    return model.to(dtype).eval()
