"""What a model's visual tokens depend on, and nothing else: the fingerprint that a
session file records and that ``sfllava embed`` hashes into its settings key
(:mod:`sfllava_ext.session.file`). A file stays valid for another language model on
the same tower; it is refused by a model whose fingerprint differs.

The fingerprint is plain data (strings, numbers, lists and dicts): it names no class,
so it does not change when code moves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["TOKEN_FORMAT", "clean_config", "fingerprint", "weights_digest"]

#: Changes only when the same model and settings would give other tokens.
TOKEN_FORMAT = 1
_SAMPLES = 4096  # values per weight tensor that enter the weights digest
# Hugging Face config keys that say nothing about what a model computes
_BOOKKEEPING = frozenset(
    {
        "architectures",
        "id2label",
        "label2id",
        "output_hidden_states",
        "output_attentions",
        "return_dict",
        "chunk_size_feed_forward",
        "is_encoder_decoder",
        "problem_type",
        "torchscript",
        "tie_word_embeddings",
        "pruned_heads",
        "tokenizer_class",
        "prefix",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "sep_token_id",
        "decoder_start_token_id",
        "task_specific_params",
        "finetuning_task",
        "transformers_version",
        "dtype",
        "torch_dtype",
        "use_cache",
    }
)


def fingerprint(
    config: Any,
    weights_sha256: str,
    normalize: Mapping[str, Any],
    aggregation: str,
    num_frames: int,
    dtype: torch.dtype,
    device: torch.device,
    pre_projector: bool = False,
) -> dict[str, Any]:
    """The fingerprint of an encoder (:meth:`~sfllava_ext.encoder.VideoEncoder.fingerprint`
    calls it):

    - ``vision``: the configuration of the vision tower, the layer and CLS choice, the
      projector and the hidden size it projects to (and, with ``pre_projector``, for
      ``next_video_pool``, the resampler's mode, stride and channels);
    - ``weights_sha256``: :func:`weights_digest` of the tower, the projector (and the
      resampler);
    - ``preprocess``: the frame normalisation (size, resize mode, crop, mean, std,
      rescale, Pillow's pass order), from ``normalize``, its settings;
    - ``aggregation``, ``num_frames`` (the frames a path is sampled to), ``dtype``,
      ``device`` (its type) and :data:`TOKEN_FORMAT`.
    """
    vision = {
        "model_type": getattr(config, "model_type", None),
        "vision_config": clean_config(config.vision_config.to_dict()),
        "vision_feature_layer": getattr(config, "vision_feature_layer", None),
        "vision_feature_select_strategy": getattr(config, "vision_feature_select_strategy", None),
        "projector_hidden_act": getattr(config, "projector_hidden_act", None),
        "multimodal_projector_bias": getattr(config, "multimodal_projector_bias", None),
        "text_hidden_size": config.text_config.hidden_size,
    }
    if pre_projector:  # next_video_pool: the resampler's settings
        vision["pre_projector"] = {
            k: getattr(config, k, None)
            for k in ("spatial_pool_mode", "spatial_pool_stride", "spatial_pool_out_channels")
        }
    preprocess = {k: clean_config(v) for k, v in normalize.items() if k not in ("dtype", "device")}
    return {
        "vision": vision,
        "weights_sha256": weights_sha256,
        "preprocess": preprocess,
        "aggregation": str(aggregation),
        "num_frames": num_frames,
        "dtype": str(dtype).replace("torch.", ""),
        "device": torch.device(device).type,
        "token_format": TOKEN_FORMAT,
    }


def clean_config(value: Any) -> Any:
    """A config dict without the keys that say nothing about the model."""
    if isinstance(value, dict):
        kept = {k: v for k, v in value.items() if k not in _BOOKKEEPING and k[:1] != "_"}
        return {k: clean_config(v) for k, v in kept.items()}
    if isinstance(value, (list, tuple)):
        return [clean_config(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def weights_digest(parts: Mapping[str, nn.Module]) -> str:
    """The SHA-256 of the name, shape, dtype and 4096 evenly spaced values of every
    tensor (parameters and persistent buffers) of ``parts`` (name -> module): a full
    hash of hundreds of MB would take seconds."""
    digest = hashlib.sha256()
    with torch.no_grad():
        tensors = [(f"{p}.{n}", t) for p, m in parts.items() for n, t in m.state_dict().items()]
        for name, tensor in tensors:
            flat = tensor.detach().reshape(-1)
            step = max(1, flat.numel() // _SAMPLES)
            sample = flat[::step][:_SAMPLES].float().cpu()
            digest.update(f"{name}:{list(tensor.shape)}:{tensor.dtype}".encode())
            digest.update(sample.numpy().tobytes())
    return digest.hexdigest()
