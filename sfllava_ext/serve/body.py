"""A request's way in: its body read within the service's limits, parsed within
limits, and its video copied to a private spool (:func:`take_request`).

Reading, on the event loop (:func:`read_body`):

- a declared ``Content-Length`` over the body limit is refused at once (413), and the
  bytes are counted as they arrive: the read stops at the limit (413);
- a client silent for ``--read-timeout-s`` while sending gets 408;
- a body over 1 MiB (declared, or once it passes 1 MiB) is an upload: it takes one of
  ``--max-uploads`` slots (:class:`UploadSlots`) until its video is on disk; none free,
  503 with ``Retry-After``;
- the bytes go into one ``bytearray``, a single allocation that grows in place and
  goes back to the system whole when cleared.

Parsing and spooling, on a thread, so that the loop keeps answering
(:func:`parse_json`): strict UTF-8; at most :data:`MAX_VALUES` JSON values (counted on
the bytes before parsing: an array of a million empty objects would cost gigabytes),
:data:`MAX_DEPTH` levels, integers of at most :data:`MAX_DIGITS` digits; no
``NaN``/``Infinity``; no lone surrogate (``"\\ud800"``) in any key or string. Each is a
400 that says which. A data: URL's base64 characters are cut out of the body before
parsing (:func:`payload_span`) and decoded into the spool piece by piece straight from
the body, so an upload costs its body once, and no long call holds the interpreter's
lock; the body goes as soon as the video is in the spool (:mod:`.media`), before the
request waits for the model, and the allocator gives the memory back.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ..utils.memory import give_back_memory
from .config import MB, ServeConfig
from .errors import ApiError
from .media import Payload, Video, resolve_video

__all__ = [
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_VALUES",
    "PAYLOAD_BYTES",
    "UploadSlots",
    "parse_json",
    "payload_span",
    "read_body",
    "take_request",
]

MAX_DEPTH = 32  # the chat schema needs 6
MAX_VALUES = 100_000
MAX_DIGITS = 20  # an int64 has 19
UPLOAD_BYTES = MB  # a body past this is an upload (it takes a slot)
PAYLOAD_BYTES = 1 << 16  # a data: URL's characters past this are cut out before parsing
_PLACEHOLDER = b"sfllava-payload-" + uuid.uuid4().hex.encode()
_STRUCTURE = b"[{,:"  # one of these precedes every JSON value but the first

Settings = TypeVar("Settings")


class UploadSlots:
    """At most ``size`` uploads read at once (used on the event loop only)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.taken = 0

    def take(self) -> None:
        """Raises ApiError (503, Retry-After) when every slot is taken."""
        if self.taken >= self.size:
            raise ApiError(
                503,
                f"the server is receiving {self.taken} uploads (--max-uploads "
                f"{self.size}); retry shortly",
                code="uploads_busy",
                headers={"Retry-After": "1"},
            )
        self.taken += 1

    def give(self) -> None:
        self.taken -= 1


async def take_request(
    request: Request,
    config: ServeConfig,
    slots: UploadSlots,
    workdir: str,
    parse: Callable[[dict[str, Any]], tuple[Settings, str, str]],
) -> tuple[Settings, Video]:
    """The request's settings and its video in the spool: the body read
    (:func:`read_body`), then, on a thread, parsed (:func:`parse_json`), checked by
    ``parse`` (which returns the settings, the video URL and the URL's field) and the
    video copied (:func:`~.media.resolve_video`).

    Raises:
        ApiError: 4xx for the body, the JSON, the fields or the video; 503 with no
            upload slot free.
    """
    holding: list[bool] = []
    try:
        body = await read_body(request, config, slots, holding)
        return await run_in_threadpool(_intake, body, config, workdir, parse)
    finally:
        if holding:
            slots.give()
            await run_in_threadpool(give_back_memory)


def _intake(
    body: bytearray,
    config: ServeConfig,
    workdir: str,
    parse: Callable[[dict[str, Any]], tuple[Settings, str, str]],
) -> tuple[Settings, Video]:
    """:func:`take_request`'s work on a thread: a data: URL's base64 characters are
    cut out of the body before parsing (:func:`payload_span`), so that they are never
    copied into a string, and decoded into the spool straight from the body."""
    try:
        span = payload_span(body)
        if span is not None:
            start, end = span
            around = body[:start] + _PLACEHOLDER + body[end:]
            if around.count(_PLACEHOLDER) == 1:
                settings, url, param = _parsed(parse, parse_json(around))
                if isinstance(url, str) and url.endswith(_PLACEHOLDER.decode()):
                    payload = Payload(body, start, end)
                    return settings, resolve_video(url, param, config, workdir, payload)
        # no payload cut out, or not the video's: the body, whole
        settings, url, param = _parsed(parse, parse_json(body))
        return settings, resolve_video(url, param, config, workdir)
    finally:
        body.clear()


def _parsed(parse, data: dict[str, Any]) -> tuple[Any, Any, str]:
    try:
        return parse(data)
    finally:
        data.clear()


def payload_span(body: bytearray) -> tuple[int, int] | None:
    """Where a large data: URL's base64 characters lie in a JSON body: after the
    first ``;base64,`` up to the closing quote (base64 holds no quote), when they are
    at least :data:`PAYLOAD_BYTES` long and hold no escape. :func:`take_request`
    checks that they were the video's URL, and parses the body whole otherwise."""
    marker = body.find(b";base64,")
    if marker == -1:
        return None
    start = marker + len(b";base64,")
    end = body.find(b'"', start)
    if end - start < PAYLOAD_BYTES or body.find(b"\\", start, end) != -1:
        return None
    return start, end


async def read_body(
    request: Request, config: ServeConfig, slots: UploadSlots, holding: list[bool]
) -> bytearray:
    """The body's bytes, read no further than ``max_body_bytes``; an upload takes a
    slot of ``slots`` (``holding`` gets an item then: the caller gives it back).

    Raises:
        ApiError: 413 past the limit (declared or read), 408 after a silence of
            ``read_timeout_s``, 503 with no slot free.
    """
    limit = config.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _body_too_large(limit)
    if declared is not None and declared.isdigit() and int(declared) > UPLOAD_BYTES:
        slots.take()
        holding.append(True)
    body = bytearray()
    chunks = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), config.read_timeout_s)
        except StopAsyncIteration:
            return body
        except ClientDisconnect:  # nobody is left to answer: no traceback
            raise ApiError(400, "the client left before its body ended") from None
        except asyncio.TimeoutError:
            raise ApiError(
                408,
                f"the request body stalled for {config.read_timeout_s:g} s (--read-timeout-s)",
                code="request_timeout",
                headers={"Connection": "close"},
            ) from None
        if len(body) + len(chunk) > limit:
            body.clear()
            raise _body_too_large(limit)
        body += chunk
        if not holding and len(body) > UPLOAD_BYTES:
            slots.take()
            holding.append(True)


def parse_json(body: bytearray) -> dict[str, Any]:
    """The body as a JSON object, within the limits of this module (the body is
    cleared on the way).

    Raises:
        ApiError: 400 naming what is wrong.
    """
    try:
        values = sum(body.count(c) for c in _STRUCTURE)
        if values > MAX_VALUES:
            raise _bad(f"the JSON holds more than {MAX_VALUES} values")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _bad(f"the request body is not UTF-8 (byte {exc.start})") from None
    finally:
        body.clear()
    try:
        data = json.loads(text, parse_int=_integer, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise _bad(f"the request body is not valid JSON ({exc.msg} at char {exc.pos})") from None
    except RecursionError:
        raise _bad(f"the JSON is nested more than {MAX_DEPTH} levels deep") from None
    finally:
        del text
    if not isinstance(data, dict):
        raise _bad("the request body must be a JSON object")
    _check(data, "", 1)
    return data


def _integer(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > MAX_DIGITS:
        raise _bad(f"a JSON integer has {len(digits)} digits (at most {MAX_DIGITS})")
    return int(text)


def _constant(text: str) -> Any:
    raise _bad(f"{text} is not a JSON number")


def _check(value: Any, where: str, depth: int) -> None:
    """Depth and lone surrogates, through the whole document."""
    if depth > MAX_DEPTH:
        raise _bad(f"the JSON is nested more than {MAX_DEPTH} levels deep", where)
    if isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, where or "body")
            _check(item, f"{where}.{key}" if where else key, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]", depth + 1)
    elif isinstance(value, str):
        _check_text(value, where)


def _check_text(text: str, where: str) -> None:
    if text.isascii():  # O(1): CPython knows
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad("a string holds a lone surrogate (not Unicode text)", where) from None


def _bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param or None, code="invalid_json")


def _body_too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"the request body is larger than the server's limit ({limit} bytes: "
        "--max-video-mb as base64, and 1 MiB)",
        code="request_too_large",
        headers={"Connection": "close"},
    )
