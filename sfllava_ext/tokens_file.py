"""The session file: a video's visual tokens in safetensors, with what made them.

One tensor, ``tokens`` (num_visual_tokens, hidden), in the model's dtype, and string
metadata:

- ``format`` (``sfllava-visual-tokens``) and ``token_format`` (:data:`TOKEN_FORMAT`, a
  number that changes only when the same settings would give other tokens);
- ``fingerprint``: what the tokens depend on (:func:`fingerprint`): the vision tower's
  and projector's config and a digest of their weights, the frame normalisation (resize
  mode included), the aggregation, the number of frames sampled, the dtype and the
  device type; a file is refused by a model whose fingerprint differs, with every
  differing key named;
- ``settings_key``: the SHA-256 of the fingerprint (:func:`settings_key`), which
  ``sfllava embed`` compares to know a video is done;
- about the video: ``frame_indices``, ``total_frames``, ``fps``, ``video`` (its path,
  when it came from one), ``sha256`` (of its bytes, when known); and ``model``,
  ``aggregation``, ``grid``, ``dtype``, ``num_frames`` in plain words.

:meth:`sfllava_ext.VideoSession.save` writes it, :meth:`sfllava_ext.VideoSession.load`
reads it, and ``sfllava embed`` writes it too.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from typing import Any

import torch

__all__ = [
    "TOKEN_FORMAT",
    "SessionFileError",
    "fingerprint",
    "read_tokens",
    "settings_key",
    "tokens_bytes",
    "write_tokens",
]

FORMAT = "sfllava-visual-tokens"
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


class SessionFileError(ValueError):
    """A session file that is not one, or that another model or other settings made."""


def fingerprint(sf: Any) -> dict[str, Any]:
    """What a :class:`~sfllava_ext.SlowFastLlava`'s visual tokens depend on, and
    nothing else (a file stays valid for another language model on the same tower):

    - ``vision``: the configuration of the vision tower, the layer and CLS choice, the
      projector and the hidden size it projects to (and, for ``next_video_pool``, the
      resampler's mode, stride and channels);
    - ``weights_sha256``: the name, shape, dtype and 4096 evenly spaced values of every
      tensor of the vision tower and the projector (and the resampler, for
      ``next_video_pool``), computed once per model: a full hash of hundreds of MB
      would take seconds;
    - ``preprocess``: the frame normalisation (size, resize mode, crop, mean, std,
      rescale, Pillow's pass order);
    - ``aggregation``, ``num_frames`` (the frames a path is sampled to), ``dtype``,
      ``device`` (its type) and :data:`TOKEN_FORMAT`.
    """
    cached = getattr(sf, "_weights_sha256", None)
    if cached is None:
        cached = sf._weights_sha256 = _weights_digest(
            sf.model, with_resampler=sf.encoder.pre_projector is not None
        )
    config = sf.config
    vision = {
        "model_type": getattr(config, "model_type", None),
        "vision_config": _clean(config.vision_config.to_dict()),
        "vision_feature_layer": getattr(config, "vision_feature_layer", None),
        "vision_feature_select_strategy": getattr(config, "vision_feature_select_strategy", None),
        "projector_hidden_act": getattr(config, "projector_hidden_act", None),
        "multimodal_projector_bias": getattr(config, "multimodal_projector_bias", None),
        "text_hidden_size": config.text_config.hidden_size,
    }
    if sf.encoder.pre_projector is not None:  # next_video_pool: the resampler's settings
        vision["pre_projector"] = {
            k: getattr(config, k, None)
            for k in ("spatial_pool_mode", "spatial_pool_stride", "spatial_pool_out_channels")
        }
    normalize = sf.encoder.normalize
    preprocess = {k: _clean(v) for k, v in vars(normalize).items() if k not in ("dtype", "device")}
    return {
        "vision": vision,
        "weights_sha256": cached,
        "preprocess": preprocess,
        "aggregation": str(sf.aggregation),
        "num_frames": sf.num_frames,
        "dtype": str(sf.dtype).replace("torch.", ""),
        "device": sf.device.type,
        "token_format": TOKEN_FORMAT,
    }


def settings_key(sf: Any) -> str:
    """The SHA-256 of ``sf``'s :func:`fingerprint`: equal keys, equal tokens for the
    same video bytes."""
    return _key_of(_fingerprint_text(sf))


def _fingerprint_text(sf: Any) -> str:
    return json.dumps(fingerprint(sf), sort_keys=True, default=str)


def _key_of(fingerprint_text: str) -> str:
    return hashlib.sha256(fingerprint_text.encode()).hexdigest()


def _differences(theirs: Any, ours: Any, path: str = "") -> list[str]:
    """The keys (dotted) whose values differ, with both values."""
    if isinstance(theirs, dict) and isinstance(ours, dict):
        found = []
        for key in sorted(set(theirs) | set(ours)):
            sub = f"{path}.{key}" if path else str(key)
            found += _differences(theirs.get(key), ours.get(key), sub)
        return found
    if theirs != ours:
        return [f"{path}: file {_short(theirs)}, model {_short(ours)}"]
    return []


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def write_tokens(path: str | os.PathLike, tokens: torch.Tensor, sf: Any, info: dict) -> None:
    """Writes ``tokens`` with ``sf``'s fingerprint and the video's ``info``
    (``frame_indices``, ``total_frames``, ``fps``, ``video``) to ``path``, atomically
    (a temporary file in the same folder, then a rename)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        with open(tmp, "wb") as f:
            f.write(tokens_bytes(tokens, sf, info))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def tokens_bytes(tokens: torch.Tensor, sf: Any, info: dict) -> bytes:
    """The session file's bytes (what :func:`write_tokens` writes)."""
    from safetensors.torch import save

    video = info.get("video")
    fingerprint_text = _fingerprint_text(sf)  # once per file: the key is its hash
    meta = {
        "format": FORMAT,
        "token_format": str(TOKEN_FORMAT),
        "fingerprint": fingerprint_text,
        "settings_key": _key_of(fingerprint_text),
        "frame_indices": json.dumps([int(i) for i in info.get("frame_indices", [])]),
        "total_frames": json.dumps(info.get("total_frames")),
        "fps": json.dumps(info.get("fps")),
        "video": os.path.abspath(video) if video else "",
        "sha256": str(info.get("sha256") or ""),
        "model": str(getattr(sf, "name_or_path", None) or getattr(sf.config, "_name_or_path", "")),
        "aggregation": str(sf.aggregation),
        "grid": json.dumps(list(sf.grid)),
        "feature_grid": json.dumps(list(sf.encoder.feature_grid)),
        "dtype": str(tokens.dtype).replace("torch.", ""),
        "num_frames": str(sf.num_frames),
    }
    return save({"tokens": tokens.detach().contiguous().cpu()}, metadata=meta)


def read_tokens(path: str | os.PathLike, sf: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    """The tokens of a session file, on ``sf``'s device, and its video info.

    Raises:
        FileNotFoundError: no such file.
        SessionFileError: not a session file, another token format, or a fingerprint
            that differs from ``sf``'s (the message names every field that differs).
    """
    from safetensors import SafetensorError, safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no session file at '{path}'")
    try:
        with safe_open(path, "pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT or "tokens" not in f.keys():
                raise SessionFileError(
                    f"'{path}' is not a session file (format {FORMAT}); files that "
                    "sfllava_ext 0.1.0's `sfllava embed` wrote have no fingerprint: "
                    "embed the video again"
                )
            tokens = f.get_tensor("tokens")
    except SafetensorError as exc:
        raise SessionFileError(f"'{path}' is not a safetensors file: {exc}") from exc
    try:
        theirs = json.loads(meta["fingerprint"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise SessionFileError(f"'{path}' has no readable fingerprint ({exc})") from exc
    differ = _differences(theirs, json.loads(json.dumps(fingerprint(sf), default=str)))
    if differ:
        raise SessionFileError(
            f"'{path}' was made by another model or other settings: " + "; ".join(differ)
        )
    info = {
        "frame_indices": json.loads(meta.get("frame_indices", "[]")),
        "total_frames": json.loads(meta.get("total_frames", "null")),
        "fps": json.loads(meta.get("fps", "null")),
        "video": meta.get("video") or None,
        "sha256": meta.get("sha256") or None,
    }
    return tokens.to(sf.device), info


def _config_digest(config: Any) -> str:
    data = config.to_dict() if hasattr(config, "to_dict") else dict(vars(config))
    return hashlib.sha256(
        json.dumps(_clean(data), sort_keys=True, default=str).encode()
    ).hexdigest()


def _clean(value: Any) -> Any:
    """A config dict without the keys that say nothing about the model."""
    if isinstance(value, dict):
        kept = {k: v for k, v in value.items() if k not in _BOOKKEEPING and k[:1] != "_"}
        return {k: _clean(v) for k, v in kept.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _weights_digest(model: torch.nn.Module, with_resampler: bool = False) -> str:
    digest = hashlib.sha256()
    inner = model.model
    parts = {
        "vision_tower": inner.vision_tower,
        "multi_modal_projector": inner.multi_modal_projector,
    }
    if with_resampler:  # its conv mode has weights
        parts["vision_resampler"] = inner.vision_resampler
    with torch.no_grad():
        # state dicts: parameters and persistent buffers
        tensors = [(f"{p}.{n}", t) for p, m in parts.items() for n, t in m.state_dict().items()]
        for name, tensor in tensors:
            flat = tensor.detach().reshape(-1)
            step = max(1, flat.numel() // _SAMPLES)
            sample = flat[::step][:_SAMPLES].float().cpu()
            digest.update(f"{name}:{list(tensor.shape)}:{tensor.dtype}".encode())
            digest.update(sample.numpy().tobytes())
    return digest.hexdigest()
