"""The session file: a video's visual tokens in safetensors, with what made them.

One tensor, ``tokens`` (num_visual_tokens, hidden), in the model's dtype, and string
metadata:

- ``format`` (``sfllava-visual-tokens``) and ``token_format`` (:data:`TOKEN_FORMAT`, a
  number that changes only when the same settings would give other tokens);
- ``fingerprint``: what the tokens depend on (:func:`fingerprint`): the model's config,
  a digest of its weights, the aggregation, the number of frames sampled, the resize
  mode and the dtype; a file is refused by a model whose fingerprint differs, with the
  differences named;
- about the video: ``frame_indices``, ``total_frames``, ``fps``, ``video`` (its path,
  when it came from one); and ``model``, ``aggregation``, ``grid``, ``dtype``,
  ``num_frames`` in plain words.

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
    "tokens_bytes",
    "write_tokens",
]

FORMAT = "sfllava-visual-tokens"
#: Changes only when the same model and settings would give other tokens.
TOKEN_FORMAT = 1
_SAMPLES = 4096  # values per weight tensor that enter the weights digest


class SessionFileError(ValueError):
    """A session file that is not one, or that another model or other settings made."""


def fingerprint(sf: Any) -> dict[str, Any]:
    """What a :class:`~sfllava_ext.SlowFastLlava`'s visual tokens depend on.

    ``config_sha256`` hashes the model's config (Hugging Face's dict, without its
    bookkeeping keys); ``weights_sha256`` the name, shape, dtype and 4096 evenly spaced
    values of every tensor of its state dict (computed once per model: a full hash of a
    7B model's 13 GB would take tens of seconds).
    """
    cached = getattr(sf, "_weights_sha256", None)
    if cached is None:
        cached = sf._weights_sha256 = _weights_digest(sf.model)
    return {
        "model_type": getattr(sf.config, "model_type", None),
        "config_sha256": _config_digest(sf.config),
        "weights_sha256": cached,
        "aggregation": str(sf.aggregation),
        "num_frames": sf.num_frames,
        "resize_mode": sf.resize_mode,
        "dtype": str(sf.dtype).replace("torch.", ""),
        "token_format": TOKEN_FORMAT,
    }


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
    meta = {
        "format": FORMAT,
        "token_format": str(TOKEN_FORMAT),
        "fingerprint": json.dumps(fingerprint(sf), sort_keys=True),
        "frame_indices": json.dumps([int(i) for i in info.get("frame_indices", [])]),
        "total_frames": json.dumps(info.get("total_frames")),
        "fps": json.dumps(info.get("fps")),
        "video": os.path.abspath(video) if video else "",
        "sha256": str(info.get("sha256") or ""),
        "model": str(getattr(sf, "name_or_path", None) or getattr(sf.config, "_name_or_path", "")),
        "aggregation": str(sf.aggregation),
        "grid": json.dumps(list(sf.grid)),
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
                raise SessionFileError(f"'{path}' is not a session file (format {FORMAT})")
            tokens = f.get_tensor("tokens")
    except SafetensorError as exc:
        raise SessionFileError(f"'{path}' is not a safetensors file: {exc}") from exc
    theirs = json.loads(meta.get("fingerprint", "{}"))
    ours = fingerprint(sf)
    differ = [
        f"{key}: file {theirs.get(key)!r}, model {ours[key]!r}"
        for key in ours
        if theirs.get(key) != ours[key]
    ]
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
    volatile = {"transformers_version", "_name_or_path", "_commit_hash", "dtype", "torch_dtype"}
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k not in volatile}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _weights_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    with torch.no_grad():
        # the state dict: parameters and persistent buffers, not the RoPE frequencies
        # that dynamic scaling rewrites at run time
        for name, tensor in model.state_dict().items():
            flat = tensor.detach().reshape(-1)
            step = max(1, flat.numel() // _SAMPLES)
            sample = flat[::step][:_SAMPLES].float().cpu()
            digest.update(f"{name}:{list(tensor.shape)}:{tensor.dtype}".encode())
            digest.update(sample.numpy().tobytes())
    return digest.hexdigest()
