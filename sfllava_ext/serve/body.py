"""A request's way in: its body read within the service's limits, parsed within limits
(:mod:`.jsonlimits`), and its video copied to a private spool (:func:`take_request`).

Reading, on the event loop (:func:`read_body`):

- a declared ``Content-Length`` over the body limit is refused at once (413), and the
  bytes are counted as they arrive: the read stops at the limit (413);
- the body must keep coming: 408 after a silence of ``--read-timeout-s``, or once it
  falls behind :data:`MIN_BODY_RATE` on average after that grace (a client that sends a
  byte now and then holds nothing for long);
- what bodies hold in memory is bounded (:class:`BodyBudget`): a body over 1 MiB
  (declared, or once it passes 1 MiB) is an upload and takes one of ``--max-uploads``
  slots, smaller ones share :data:`SMALL_BODIES_BYTES`; past either, 503 with
  ``Retry-After``;
- the bytes go into one ``bytearray`` that grows in place.

Parsing and spooling, on a thread, so that the loop keeps answering: a data: URL's
base64 characters are cut out of the body before parsing (:func:`payload_span`) and
decoded into the spool piece by piece straight from the body, so an upload costs its
body once and no long call holds the interpreter's lock. The JSON beside the video may
hold at most :data:`JSON_BYTES` (413 past it: the body limit's "1 MiB of JSON"). The
body goes as soon as the video is in the spool (:mod:`.media`), before the request
waits for the model, and the allocator gives the memory back.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ..utils.memory import give_back_memory
from .config import MB, ServeConfig
from .errors import ApiError
from .jsonlimits import parse_json, text_chars
from .media import Payload, Video, resolve_video

__all__ = [
    "JSON_BYTES",
    "MIN_BODY_RATE",
    "PAYLOAD_BYTES",
    "SMALL_BODIES_BYTES",
    "BodyBudget",
    "payload_span",
    "read_body",
    "take_request",
]

UPLOAD_BYTES = MB  # a body past this is an upload (it takes a slot)
SMALL_BODIES_BYTES = 64 * MB  # what all the bodies under UPLOAD_BYTES may hold at once
MIN_BODY_RATE = 64 << 10  # bytes per second a body must average after the grace
JSON_BYTES = MB  # the JSON beside a request's video
PAYLOAD_BYTES = 1 << 16  # a data: URL's characters past this are cut out before parsing
_TRIM_AFTER = 256 << 10  # bodies past this give their memory back when they end
_PLACEHOLDER = b"sfllava-payload-" + uuid.uuid4().hex.encode()

Settings = TypeVar("Settings")


class BodyBudget:
    """What request bodies may hold in memory at once: ``uploads`` bodies over 1 MiB
    (each within the body limit), and :data:`SMALL_BODIES_BYTES` for all the others
    together. Used on the event loop only."""

    def __init__(self, uploads: int) -> None:
        self.uploads = uploads
        self.uploading = 0
        self.small_bytes = 0

    def take_upload(self) -> None:
        """Raises ApiError (503, Retry-After) when every upload slot is taken."""
        if self.uploading >= self.uploads:
            raise _busy(
                f"the server is receiving {self.uploading} uploads (--max-uploads "
                f"{self.uploads}); retry shortly",
                "uploads_busy",
            )
        self.uploading += 1

    def take_small(self, size: int) -> None:
        """Raises ApiError (503, Retry-After) when the small bodies hold too much."""
        if self.small_bytes + size > SMALL_BODIES_BYTES:
            raise _busy("the server is receiving too many requests; retry shortly", "bodies_busy")
        self.small_bytes += size


class _Reading:
    """One body's share of the :class:`BodyBudget`, given back by :meth:`end`."""

    def __init__(self, budget: BodyBudget) -> None:
        self.budget = budget
        self.upload = False
        self.small = 0
        self.size = 0

    def grow(self, size: int) -> None:
        self.size = size
        if self.upload:
            return
        if size > UPLOAD_BYTES:
            self.budget.take_upload()
            self.upload = True
            self.budget.small_bytes -= self.small
            self.small = 0
        else:
            self.budget.take_small(size - self.small)
            self.small = size

    def end(self) -> None:
        if self.upload:
            self.budget.uploading -= 1
        self.budget.small_bytes -= self.small
        self.upload, self.small = False, 0


async def take_request(
    request: Request,
    config: ServeConfig,
    budget: BodyBudget,
    workdir: str,
    parse: Callable[[dict[str, Any]], tuple[Settings, str, str]],
) -> tuple[Settings, Video]:
    """The request's settings and its video in the spool: the body read
    (:func:`read_body`), then, on a thread, parsed, checked by ``parse`` (which
    returns the settings, the video URL and the URL's field) and the video copied
    (:func:`~.media.resolve_video`).

    Raises:
        ApiError: 4xx for the body, the JSON, the fields or the video; 503 with the
            bodies' budget spent.
    """
    reading = _Reading(budget)
    try:
        body = await read_body(request, config, reading)
        return await run_in_threadpool(_intake, body, config, workdir, parse)
    finally:
        reading.end()
        if reading.size > _TRIM_AFTER:
            await run_in_threadpool(give_back_memory)


async def read_body(request: Request, config: ServeConfig, reading: _Reading) -> bytearray:
    """The body's bytes, read no further than ``max_body_bytes``, each byte counted
    against the budget as it arrives.

    Raises:
        ApiError: 413 past the limit (declared or read), 408 after a silence of
            ``read_timeout_s`` or behind :data:`MIN_BODY_RATE`, 503 past the budget.
    """
    limit = config.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > limit:
            raise _body_too_large(limit)
        reading.grow(int(declared))
    body = bytearray()
    chunks = request.stream().__aiter__()
    started = time.monotonic()
    while True:
        # the silence allowed, and no longer than the average rate allows
        behind = started + config.read_timeout_s + len(body) / MIN_BODY_RATE
        wait = min(config.read_timeout_s, behind - time.monotonic())
        try:
            if wait <= 0:
                raise asyncio.TimeoutError
            chunk = await asyncio.wait_for(chunks.__anext__(), wait)
        except StopAsyncIteration:
            return body
        except ClientDisconnect:  # nobody is left to answer: no traceback
            raise ApiError(400, "the client left before its body ended") from None
        except asyncio.TimeoutError:
            raise ApiError(
                408,
                f"the request body stalled: a silence of {config.read_timeout_s:g} s "
                f"(--read-timeout-s), or slower than {MIN_BODY_RATE >> 10} KiB/s after it",
                code="request_timeout",
                headers={"Connection": "close"},
            ) from None
        if len(body) + len(chunk) > limit:
            body.clear()
            raise _body_too_large(limit)
        body += chunk
        if len(body) > reading.size:
            reading.grow(len(body))


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
            if len(around) > JSON_BYTES + len(_PLACEHOLDER):
                raise _json_too_large()
            if around.count(_PLACEHOLDER) == 1:
                settings, url, param = _checked(parse, parse_json(around))
                if isinstance(url, str) and url.endswith(_PLACEHOLDER.decode()):
                    payload = Payload(body, start, end)
                    return settings, resolve_video(url, param, config, workdir, payload)
        # no payload cut out, or not the video's: the body, whole
        settings, url, param = _checked(parse, parse_json(body))
        return settings, resolve_video(url, param, config, workdir)
    finally:
        body.clear()


def _checked(parse, data: dict[str, Any]) -> tuple[Any, Any, str]:
    """``parse(data)``, and the JSON's text beside the video within :data:`JSON_BYTES`."""
    try:
        settings, url, param = parse(data)
        beside = text_chars(data) - (len(url) if isinstance(url, str) else 0)
        if beside > JSON_BYTES:
            raise _json_too_large()
        return settings, url, param
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


def _busy(message: str, code: str) -> ApiError:
    return ApiError(503, message, code=code, headers={"Retry-After": "1"})


def _json_too_large() -> ApiError:
    return ApiError(
        413,
        f"the request's JSON beside its video holds more than {JSON_BYTES} bytes of text",
        code="request_too_large",
    )


def _body_too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"the request body is larger than the server's limit ({limit} bytes: "
        "--max-video-mb as base64, and 1 MiB)",
        code="request_too_large",
        headers={"Connection": "close"},
    )
