"""Items -> predictions with the model, as the official inference makes them: greedy,
the published prompts, at most 128 new tokens, one session per video (the video is
decoded and encoded once for all its questions).

Used by the run in this process (:mod:`.runner`) and by the Ray actors
(:mod:`.distributed`) alike.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .datasets import EvalItem, resolve_video
from .official import option_letter, parse_option

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "MC_PROMPT",
    "OPEN_PROMPT",
    "by_video",
    "generate_for",
    "generate_group",
    "generation_settings",
]

logger = logging.getLogger(__name__)

#: what the official inference scripts generate at most (greedy: temperature 0)
DEFAULT_MAX_NEW_TOKENS = 128
MC_PROMPT = "multiple_choice_allvideo_v4"
OPEN_PROMPT = "image_seq_v3"
#: the settings that decide the predictions: a rerun into an output folder must agree
IDENTITY = ("model", "num_frames", "slowfast", "resize_mode", "rope_scaling", "max_new_tokens",
            "dtype")  # fmt: skip


def generation_settings(model: Any, max_new_tokens: int) -> dict[str, Any]:
    """What a run's predictions depend on besides the weights: recorded in the summary so
    that two runs can be compared (and checked by a rerun into the same folder)."""
    text = getattr(model.config, "text_config", None) or model.config
    rope = getattr(text, "rope_scaling", None) or getattr(text, "rope_parameters", None)
    return {
        "model": model.name_or_path,
        "num_frames": model.num_frames,
        "slowfast": str(model.aggregation),
        "resize_mode": model.resize_mode,
        "rope_scaling": rope,
        "max_new_tokens": max_new_tokens,
        "decoding": "greedy",
        "dtype": str(model.dtype).replace("torch.", ""),
        "backend": model.backend,
        "prompts": {"mc": MC_PROMPT, "open": OPEN_PROMPT},
    }


def generate_for(session: Any, item: EvalItem, task: str, max_new_tokens: int) -> dict[str, Any]:
    """The prediction fields of one item from its video's session: the raw generated
    text (multiple choice: with "In the image" replaced by "In the video", as the
    official script does, and ``correct`` decided by the official parser on it)."""
    if task == "mc":
        ids = session.generate(
            item.question,
            prompt=MC_PROMPT,
            options=list(item.options or ()),
            max_new_tokens=max_new_tokens,
        )
        text = session.model.llm.decode(ids).replace("In the image", "In the video")
        option = parse_option(text)
        return {
            "prediction": text,
            "option": option,
            "correct": option == option_letter(item.answer_number),
        }
    out = {"prediction": session.answer(item.question, max_new_tokens=max_new_tokens)}
    if item.question2 is not None and task == "generative":
        out["prediction2"] = session.answer(item.question2, max_new_tokens=max_new_tokens)
    return out


def by_video(
    items: Sequence[EvalItem], root: str | os.PathLike
) -> list[tuple[Path | None, list[EvalItem]]]:
    """Items grouped by the file their video resolves to (None: not found), in
    first-seen order."""
    groups: dict[Any, tuple[Path | None, list[EvalItem]]] = {}
    for item in items:
        path = resolve_video(item.video, root)
        key = path if path is not None else ("missing", item.video)
        groups.setdefault(key, (path, []))[1].append(item)
    return list(groups.values())


def generate_group(
    path: Path | None, items: Sequence[EvalItem], model: Any, task: str, max_new_tokens: int
) -> Iterator[tuple[EvalItem, dict[str, Any]]]:
    """(item, prediction fields) of each item about one video (``path``; None: it was not
    found): one session, so the video is decoded and encoded once. A video that fails
    gives each of its items the error; so does a generation that fails, for its item."""
    if path is None:
        for item in items:
            yield (
                item,
                {"error": f"FileNotFoundError: no video {item.video!r} under the video root"},
            )
        return
    try:
        session = model.session(path)
    except Exception as exc:  # any failure of this video is its items' record
        logger.warning("eval: %s: %s", path, failure(exc))
        for item in items:
            yield item, {"error": failure(exc)}
        return
    for item in items:
        try:
            yield item, generate_for(session, item, task, max_new_tokens)
        except Exception as exc:
            yield item, {"error": failure(exc)}


def failure(exc: BaseException) -> str:
    """An exception as a record's ``error``: its type and first line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
