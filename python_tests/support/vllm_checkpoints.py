"""Tiny random-weight checkpoints for the vLLM tests: each family, and LLaVA-NeXT in each
chat format (Vicuna, ChatML, Mistral, Llama-3; OneVision brings Qwen2)."""

from __future__ import annotations

import torch

from sfllava_ext.models.demo import DEMO_TEXT, DEMO_VISION, demo_tokenizer
from sfllava_ext.vllm_plugin.checkpoint import demo_checkpoint, save_for_vllm, with_placeholders

#: name -> (family, chat format)
CHECKPOINTS = {
    "next-vicuna": ("llava_next", "vicuna"),
    "next-chatml": ("llava_next", "chatml"),
    "next-mistral": ("llava_next", "mistral"),
    "next-llama3": ("llava_next", "llama3"),
    "next_video-vicuna": ("llava_next_video", "vicuna"),
    "onevision-qwen2": ("llava_onevision", "qwen2"),
}
_SPECIALS = {
    "chatml": ["<|im_start|>", "<|im_end|>"],
    "llama3": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
}


def tiny_checkpoint(name: str, folder: str) -> str:
    if name == "next-vicuna":
        return demo_checkpoint("next", folder)
    if name == "next_video-vicuna":
        return demo_checkpoint("next_video", folder)
    if name == "onevision-qwen2":
        return demo_checkpoint("onevision", folder)
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        MistralConfig,
    )

    fmt = CHECKPOINTS[name][1]
    tokenizer = demo_tokenizer()
    tokenizer.add_tokens(["<image>", "<video>"] + _SPECIALS.get(fmt, []), special_tokens=True)
    text_class = MistralConfig if fmt == "mistral" else LlamaConfig
    text = text_class(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **DEMO_TEXT,
    )
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(**DEMO_VISION),
        text_config=text,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    with_placeholders(config, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = LlavaNextForConditionalGeneration(config).eval()
    return save_for_vllm(model, tokenizer, folder)
