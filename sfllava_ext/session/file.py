"""The session file: a video's visual tokens in safetensors, with what made them.

One tensor, ``tokens`` (num_visual_tokens, hidden), in the model's dtype, and string
metadata:

- ``format`` (``sfllava-visual-tokens``) and ``token_format``
  (:data:`~sfllava_ext.encoder.fingerprint.TOKEN_FORMAT`, a number that changes only when
  the same settings would give other tokens);
- ``fingerprint``: what the tokens depend on (:meth:`sfllava_ext.SlowFastLlava.fingerprint`:
  the vision tower's and projector's config and a digest of their weights, the frame
  normalisation (resize mode included), the aggregation, the number of frames sampled,
  the dtype and the device type); a file is refused by a model whose fingerprint
  differs, with every differing key named;
- ``settings_key``: the SHA-256 of the fingerprint (:func:`settings_key`), which
  ``sfllava embed`` compares to know a video is done;
- about the video (:class:`~sfllava_ext.session.info.VideoInfo`): ``frame_indices``,
  ``total_frames``, ``fps``, ``video`` (its path, when it came from one), ``sha256`` (of
  its bytes, when known); and ``model``, ``aggregation``, ``grid``, ``dtype``,
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

from ..encoder.fingerprint import TOKEN_FORMAT
from .info import VideoInfo

__all__ = [
    "FORMAT",
    "TOKEN_FORMAT",
    "SessionFileError",
    "read_session_file",
    "read_tokens",
    "settings_key",
    "tokens_bytes",
    "write_tokens",
]

FORMAT = "sfllava-visual-tokens"


class SessionFileError(ValueError):
    """A session file that is not one, or that another model or other settings made."""


def settings_key(sf: Any) -> str:
    """The SHA-256 of ``sf``'s fingerprint (:meth:`~sfllava_ext.SlowFastLlava.fingerprint`):
    equal keys, equal tokens for the same video bytes."""
    return _key_of(_fingerprint_text(sf))


def _fingerprint_text(sf: Any) -> str:
    return json.dumps(sf.fingerprint(), sort_keys=True, default=str)


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


def write_tokens(path: str | os.PathLike, tokens: torch.Tensor, sf: Any, info: VideoInfo) -> None:
    """Writes ``tokens`` with ``sf``'s fingerprint and the video's ``info`` to ``path``,
    atomically (a temporary file in the same folder, then a rename)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        with open(tmp, "wb") as f:
            f.write(tokens_bytes(tokens, sf, info))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def tokens_bytes(tokens: torch.Tensor, sf: Any, info: VideoInfo) -> bytes:
    """The session file's bytes (what :func:`write_tokens` writes); ``info`` may also be
    a mapping of :class:`~sfllava_ext.session.info.VideoInfo`'s fields."""
    from safetensors.torch import save

    info = info if isinstance(info, VideoInfo) else VideoInfo(**dict(info))
    fingerprint_text = _fingerprint_text(sf)  # once per file: the key is its hash
    meta = {
        "format": FORMAT,
        "token_format": str(TOKEN_FORMAT),
        "fingerprint": fingerprint_text,
        "settings_key": _key_of(fingerprint_text),
        **info.to_metadata(),
        "model": str(
            getattr(sf, "name_or_path", None) or getattr(sf.config, "name_or_path", None) or ""
        ),
        "aggregation": str(sf.aggregation),
        "grid": json.dumps(list(sf.grid)),
        "feature_grid": json.dumps(list(sf.encoder.feature_grid)),
        "dtype": str(tokens.dtype).replace("torch.", ""),
        "num_frames": str(sf.num_frames),
    }
    return save({"tokens": tokens.detach().contiguous().cpu()}, metadata=meta)


def read_tokens(path: str | os.PathLike, sf: Any) -> tuple[torch.Tensor, VideoInfo]:
    """The tokens of a session file, on ``sf``'s device, and its video info.

    Raises:
        FileNotFoundError: no such file.
        SessionFileError: not a session file, another token format, or a fingerprint
            that differs from ``sf``'s (the message names every field that differs).
    """
    tokens, meta = read_session_file(path)
    try:
        theirs = json.loads(meta["fingerprint"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise SessionFileError(f"'{path}' has no readable fingerprint ({exc})") from exc
    differ = _differences(theirs, json.loads(_fingerprint_text(sf)))
    if differ:
        raise SessionFileError(
            f"'{path}' was made by another model or other settings: " + "; ".join(differ)
        )
    return tokens.to(sf.device), VideoInfo.from_metadata(meta)


def read_session_file(path: str | os.PathLike) -> tuple[torch.Tensor, dict[str, str]]:
    """The tokens of a session file, on the CPU, and its metadata, unchecked against
    any model (:func:`read_tokens` checks them).

    Raises:
        FileNotFoundError: no such file.
        SessionFileError: not a session file.
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
    return tokens, meta
