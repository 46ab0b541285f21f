"""Checkpoint folders vLLM can serve: a transformers LLaVA model saved in the Hub's
layout (vLLM reads the vision tower's weights as ``vision_tower.vision_model.*``, which
transformers 5 saves as ``vision_tower.*``), and the demo models as such folders
(``sfllava serve --engine vllm --demo``), their tokenizers holding the placeholder
tokens that vLLM's prompts need."""

from __future__ import annotations

import json
import os
from typing import Any

import torch

__all__ = ["demo_checkpoint", "save_for_vllm"]

# where transformers puts the vision tower's weights (it saves the pre-v4.52 names)
_VISION_PREFIXES = ("vision_tower.", "model.vision_tower.")


def save_for_vllm(model: Any, tokenizer: Any, folder: str, image_processor: Any = None) -> str:
    """Saves ``model`` (a transformers LLaVA-NeXT, NeXT-Video or OneVision model),
    ``tokenizer`` and ``image_processor`` (a dict of its settings, if any) in
    ``folder``, the vision tower's keys under ``vision_model`` as on the Hub. Returns
    ``folder``."""
    from safetensors.torch import load_file, save_file

    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if image_processor is not None:
        with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
            json.dump(dict(image_processor), f, indent=1)
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".safetensors"):
            continue
        path = os.path.join(folder, name)
        tensors = load_file(path)
        renamed = {_hub_name(key): value for key, value in tensors.items()}
        save_file(renamed, path, metadata={"format": "pt"})
    return folder


def _hub_name(key: str) -> str:
    for prefix in _VISION_PREFIXES:
        if key.startswith(prefix) and not key.startswith(prefix + "vision_model."):
            return prefix + "vision_model." + key[len(prefix) :]
    return key


def demo_checkpoint(family: str, folder: str, *, dtype: torch.dtype = torch.float32) -> str:
    """The demo model of ``family`` (``next``, ``next_video``, ``onevision``) saved for
    vLLM in ``folder``: the same small random-weight model as ``sfllava demo``, its
    tokenizer given ``<image>`` and ``<video>`` tokens. Returns ``folder``.

    Raises:
        ValueError: an unknown family.
    """
    from ..models.demo import (
        ONEVISION_PROCESSOR,
        demo_model,
        demo_tokenizer,
        onevision_model,
        onevision_tokenizer,
    )

    processor = None
    if family in ("next", "next_video"):
        tokenizer = demo_tokenizer()
        tokenizer.add_tokens(["<image>", "<video>"], special_tokens=True)
        model = demo_model(tokenizer, dtype=dtype, video=family == "next_video")
    elif family == "onevision":
        tokenizer = onevision_tokenizer()
        tokenizer.add_tokens(["<video>"], special_tokens=True)
        model = onevision_model(tokenizer, dtype=dtype)
        processor = ONEVISION_PROCESSOR
    else:
        raise ValueError(f"family must be next, next_video or onevision, got {family!r}")
    with_placeholders(model.config, tokenizer)
    return save_for_vllm(model, tokenizer, folder, processor)


def with_placeholders(config: Any, tokenizer: Any) -> None:
    """Points the config's ``image_token_index`` (and ``video_token_index``, where the
    family has one) at the tokenizer's ``<image>`` and ``<video>``."""
    config.image_token_index = tokenizer.convert_tokens_to_ids("<image>")
    if hasattr(config, "video_token_index") or config.model_type != "llava_next":
        config.video_token_index = tokenizer.convert_tokens_to_ids("<video>")
