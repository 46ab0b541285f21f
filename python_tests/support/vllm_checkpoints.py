"""Tiny random-weight checkpoints for the vLLM tests: each family, and LLaVA-NeXT in each
chat format (Vicuna, ChatML, Mistral, Llama-3; OneVision brings Qwen2)."""

from __future__ import annotations

from sfllava_ext.models.demo import demo_model, demo_tokenizer
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
    fmt = CHECKPOINTS[name][1]
    tokenizer = demo_tokenizer()
    tokenizer.add_tokens(["<image>", "<video>"] + _SPECIALS.get(fmt, []), special_tokens=True)
    model = demo_model(tokenizer, text_model="mistral" if fmt == "mistral" else "llama")
    with_placeholders(model.config, tokenizer)
    return save_for_vllm(model, tokenizer, folder)
