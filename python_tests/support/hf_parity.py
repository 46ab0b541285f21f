"""References built from Hugging Face's own modules and processors, for the family
parity tests (docs/method.md#family-parity): independent of sfllava_ext's code path."""

from __future__ import annotations

import torch
from PIL import Image


def hf_base_pixels(processor, frames: torch.Tensor) -> torch.Tensor:
    """A PIL image processor's base image of every uint8 frame: (T, 3, h, w) float32."""
    images = [Image.fromarray(f.numpy()) for f in frames]
    return processor(images=images, return_tensors="pt").pixel_values[:, 0].float()


def hf_features(model, pixels: torch.Tensor) -> torch.Tensor:
    """HF's vision tower asked for every hidden state, the configured layer and CLS
    strategy, then HF's projector: (T, N, D)."""
    config = model.config
    with torch.no_grad():
        hidden = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states
        picked = hidden[config.vision_feature_layer]
        if config.vision_feature_select_strategy == "default":
            picked = picked[:, 1:]
        return model.model.multi_modal_projector(picked)


def hf_image_features(model, processor, frame: torch.Tensor) -> torch.Tensor:
    """``get_image_features`` of one uint8 frame through the PIL processor: the base
    image's rows first, then the any-res tiles and newlines."""
    hf = processor(images=[Image.fromarray(frame.numpy())], return_tensors="pt")
    with torch.no_grad():
        return model.model.get_image_features(
            pixel_values=hf.pixel_values, image_sizes=hf.image_sizes
        ).pooler_output[0]


def rel_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """max|ours - ref| / max|ref|, in float64."""
    return float((ours.double() - ref.double()).abs().max() / ref.double().abs().max())
