"""What every route does to a request before its own work: the API key, checked in
constant time, and the JSON body, read no further than the service's limit."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import Request

from . import protocol
from .config import ServeConfig
from .errors import ApiError

__all__ = ["authorise", "read_json"]


def authorise(request: Request, config: ServeConfig) -> None:
    """Raises ApiError (401) unless the request carries ``Authorization: Bearer <key>``
    with the service's key (none needed when it has none)."""
    if config.api_key is None:
        return
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {config.api_key}".encode()):
        raise ApiError(
            401,
            "a valid API key is needed: Authorization: Bearer <key>",
            code="invalid_api_key",
        )


async def read_json(request: Request, config: ServeConfig) -> dict[str, Any]:
    """The body as a JSON object, read no further than ``max_body_bytes``.

    Raises:
        ApiError: 413 past the limit (declared or read), 400 for a body that is not a
            JSON object.
    """
    limit = config.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _body_too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _body_too_large(limit)
        chunks.append(chunk)
    return protocol.load_json(b"".join(chunks))


def _body_too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"the request body is larger than the server's limit ({limit} bytes: "
        "--max-video-mb as base64, and 1 MiB)",
        code="request_too_large",
    )
