"""OpenAI's chat-completions schema as this service takes it, and the replies.

A request holds one user message whose content is text parts and one video part,
``{"type": "video_url", "video_url": {"url": ...}}`` (vLLM's convention); the text
parts, joined by newlines, are the question of the published open-ended prompt. Fields:
``model`` (the served model, or left out), ``max_tokens`` / ``max_completion_tokens``,
``temperature`` (0, or below 1e-5: greedy, the published decoding; negative or not
finite: refused), ``top_p``, ``n`` (1 only), ``stream``,
``stream_options.include_usage`` and ``user`` (a string, or null; not used). Anything
else is refused by name, so that no setting is silently ignored.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .errors import ApiError, shown

__all__ = ["CHAT_FIELDS", "GREEDY_BELOW", "ChatRequest", "parse_chat", "parse_tokens_request"]

#: A temperature below this is greedy decoding (sampling at it would divide the
#: logits into infinities).
GREEDY_BELOW = 1e-5

#: The fields a chat request may hold; any other is refused by name.
CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "n",
        "stream",
        "stream_options",
        "user",
    }
)


@dataclass(frozen=True)
class ChatRequest:
    """A checked chat request: the question, where its video URL sat in the request
    (for errors) and the generation settings."""

    question: str
    video_param: str
    max_tokens: int | None
    temperature: float
    top_p: float
    stream: bool
    include_usage: bool

    def generate_kwargs(self) -> dict[str, Any]:
        if self.temperature < GREEDY_BELOW:
            return {"do_sample": False}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p}


def parse_chat(data: dict[str, Any], model_id: str) -> tuple[ChatRequest, str, str]:
    """Checks a chat-completions request: (its settings, its video URL, the URL's field).

    Raises:
        ApiError: 400 naming the field at fault; 404 for another model.
    """
    unknown = sorted(set(data) - CHAT_FIELDS)
    if unknown:
        raise _unknown(unknown)
    model = data.get("model")
    if model is not None and model != model_id:
        raise ApiError(
            404,
            f"the model {shown(model)} does not exist; this server serves '{model_id}'",
            param="model",
            code="model_not_found",
        )
    n = data.get("n", 1)
    if n != 1 or isinstance(n, bool):
        raise ApiError(400, f"n must be 1 (one answer per request), got {shown(n)}", param="n")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list", param="messages")
    if len(messages) != 1:
        raise ApiError(
            400,
            "messages must hold exactly one user message (the published SF-LLaVA prompt "
            f"has one question), got {len(messages)} messages",
            param="messages",
        )
    message = messages[0]
    if not isinstance(message, dict) or message.get("role") != "user":
        raise ApiError(400, "the message must be a user message", param="messages[0].role")
    question, url, url_param = _content(message.get("content"))
    max_tokens = _max_tokens(data)
    temperature = _number(data, "temperature", 0.0, 0.0, 2.0)
    top_p = _number(data, "top_p", 1.0, 0.0, 1.0)
    if top_p == 0:
        raise ApiError(400, "top_p must be in (0, 1]", param="top_p")
    user = data.get("user")
    if user is not None and not isinstance(user, str):
        raise ApiError(400, f"user must be a string, got {shown(user)}", param="user")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "stream must be a boolean", param="stream")
    options = data.get("stream_options")
    options = {} if options is None else options
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise ApiError(400, "stream_options may only hold include_usage", param="stream_options")
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise ApiError(
            400,
            f"stream_options.include_usage must be a boolean, got {shown(include_usage)}",
            param="stream_options.include_usage",
        )
    settings = ChatRequest(
        question, url_param, max_tokens, temperature, top_p, stream, include_usage
    )
    return settings, url, url_param


def _content(content: Any) -> tuple[str, str, str]:
    if not isinstance(content, list):
        raise ApiError(
            400,
            "the user message's content must be a list of parts: text and one video_url",
            param="messages[0].content",
        )
    texts, videos = [], []
    for i, part in enumerate(content):
        param = f"messages[0].content[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str) or not text.strip():
                raise ApiError(400, "a text part must hold non-empty text", param=f"{param}.text")
            texts.append(text)
        elif kind == "video_url":
            video = part.get("video_url")
            url = video.get("url") if isinstance(video, dict) else None
            videos.append((url, f"{param}.video_url.url"))
        else:
            raise ApiError(
                400,
                f"a content part must be of type text or video_url, got {shown(kind)}",
                param=f"{param}.type",
            )
    if not videos:
        raise ApiError(400, "the message holds no video_url part", param="messages[0].content")
    if len(videos) > 1:
        raise ApiError(
            400,
            f"the message holds {len(videos)} video_url parts; one per request",
            param=videos[1][1],
        )
    if not texts:
        raise ApiError(
            400, "the message holds no text part (the question)", param="messages[0].content"
        )
    if not isinstance(videos[0][0], str):
        raise ApiError(400, "video_url.url must be a string", param=videos[0][1])
    return "\n".join(texts), videos[0][0], videos[0][1]


def _max_tokens(data: dict[str, Any]) -> int | None:
    name = "max_completion_tokens" if "max_completion_tokens" in data else "max_tokens"
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ApiError(400, f"{name} must be an integer >= 1, got {shown(value)}", param=name)
    return value


def _number(data: dict[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    value = data.get(name, default)
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not lo <= value <= hi
    ):
        raise ApiError(
            400, f"{name} must be a number in [{lo:g}, {hi:g}], got {shown(value)}", param=name
        )
    return float(value)


def parse_tokens_request(data: dict[str, Any], model_id: str) -> tuple[None, str, str]:
    """``{"video_url": {"url": ...}, "model": ...}`` -> (no settings, url, its param).

    Raises:
        ApiError: 400 for another shape, 404 for another model.
    """
    unknown = sorted(set(data) - {"video_url", "model"})
    if unknown:
        raise _unknown(unknown)
    if data.get("model") not in (None, model_id):
        raise ApiError(
            404,
            f"the model {shown(data['model'])} does not exist; this server serves '{model_id}'",
            param="model",
            code="model_not_found",
        )
    video = data.get("video_url")
    url = video.get("url") if isinstance(video, dict) else None
    if not isinstance(url, str):
        raise ApiError(400, 'the body must be {"video_url": {"url": ...}}', param="video_url")
    return None, url, "video_url.url"


def _unknown(names: list[str]) -> ApiError:
    """400 naming the first of the fields the route does not take (in sorted order),
    and how many others there are: one quoted name, so the message stays short."""
    more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
    return ApiError(400, f"unsupported field {shown(names[0])}{more}", param=names[0][:64])


# ----------------------------------------------------------------------- replies


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def completion(cid: str, model_id: str, text: str, finish: str, usage: dict) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_id,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }
        ],
        "usage": usage,
    }


def chunk(
    cid: str,
    model_id: str,
    delta: dict,
    finish: str | None = None,
    usage: dict | None = None,
    choices: bool = True,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model_id,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
