"""What a client of a SlowFast model on vLLM sends (docs/vllm.md): precomputed visual
tokens from a session file as a ``video_embeds`` part, a video file as a ``video_url``
part, and the multiple-choice question text. No vLLM needed."""

from __future__ import annotations

import base64
import io
import os
from typing import Any

import torch

from ..llm.prompts import check_question, format_options
from ..session.file import SessionFileError, read_session_file

__all__ = ["multiple_choice_text", "video_embeds_part", "video_url_part"]


def video_embeds_part(
    path: str | os.PathLike, *, settings_key: str | None = None, uuid: str | None = None
) -> dict[str, Any]:
    """A chat content part that sends a session file's visual tokens (``sfllava embed``,
    ``VideoSession.save``) as precomputed video embeddings: no decode, no encode on the
    server (started with ``--enable-mm-embeds``).

    Args:
        path: the session file.
        settings_key: if given, the file's ``settings_key`` must equal it (the served
            model's, :func:`sfllava_ext.session.file.settings_key`): tokens of another
            model or other settings are refused here, since the server cannot tell.
        uuid: vLLM's multimodal uuid for the part, if wanted.

    Raises:
        FileNotFoundError: no such file.
        SessionFileError: not a session file, or another settings key.
    """
    tokens, meta = read_session_file(path)
    if settings_key is not None and meta.get("settings_key") != settings_key:
        raise SessionFileError(
            f"'{os.fspath(path)}' was made with settings key {meta.get('settings_key')!r}, "
            f"not the served model's {settings_key!r}"
        )
    buffer = io.BytesIO()
    torch.save(tokens.contiguous(), buffer)
    part: dict[str, Any] = {
        "type": "video_embeds",
        "video_embeds": base64.b64encode(buffer.getvalue()).decode("ascii"),
    }
    if uuid is not None:
        part["uuid"] = uuid
    return part


def video_url_part(url: str, *, uuid: str | None = None) -> dict[str, Any]:
    """A chat content part for a video at ``url`` (``file://`` in the media dir, or a
    ``data:`` URL); with ``uuid``, a later request may send the uuid alone (``url``
    None) and vLLM reuses its processed frames."""
    part: dict[str, Any] = {"type": "video_url", "video_url": None if url is None else {"url": url}}
    if uuid is not None:
        part["uuid"] = uuid
    return part


def multiple_choice_text(question: str, options: list[str]) -> str:
    """The user text for ``chat_template_kwargs={"prompt": "multiple_choice"}``: the
    question and its lettered options, as the published prompt's slot holds them."""
    return f"{check_question(question)}\nOptions:\n{format_options(options)}"
