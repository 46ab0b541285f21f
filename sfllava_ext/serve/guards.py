"""What every request meets before any route's work:

- :class:`RequestGuard` (the app's outermost layer): without an API key, the ``Host``
  header must name the bind address, localhost or ``--allowed-hosts`` (403
  ``host_not_allowed``: a web page on another origin that reaches the service through
  DNS rebinding names its own host); with or without one, a ``POST`` must say
  ``Content-Type: application/json`` (415: a browser sends JSON cross-origin only
  after a preflight this service never grants, so no form can post to it);
- :func:`authorise`: the API key, ``Authorization: Bearer <key>`` (the scheme in any
  case, one such header only), compared in constant time.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from .config import ServeConfig
from .errors import ApiError

__all__ = ["RequestGuard", "authorise"]


def authorise(request: Request, config: ServeConfig) -> None:
    """Raises ApiError (401) unless the request carries exactly one ``Authorization``
    header, ``Bearer <key>`` with the service's key (none needed when it has none)."""
    if config.api_key is None:
        return
    given = request.headers.getlist("authorization")
    scheme, _, key = (given[0] if len(given) == 1 else "").strip().partition(" ")
    valid = hmac.compare_digest(key.strip().encode(), config.api_key.encode())
    if len(given) != 1 or scheme.lower() != "bearer" or not valid:
        raise ApiError(
            401,
            "a valid API key is needed: one header Authorization: Bearer <key>",
            code="invalid_api_key",
        )


class RequestGuard:
    """ASGI middleware: the ``Host`` and ``Content-Type`` rules above, answered with
    OpenAI-style errors before any route runs."""

    def __init__(self, app: Any, config: ServeConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                response = JSONResponse(
                    refusal.body(), status_code=refusal.status, headers=refusal.headers
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: dict) -> ApiError | None:
        """The error for a request these rules refuse, or None."""
        headers: dict[bytes, list[bytes]] = {}
        for name, value in scope.get("headers", ()):
            headers.setdefault(name.lower(), []).append(value)
        hosts = self.config.hosts
        if self.config.api_key is None and hosts is not None:
            given = headers.get(b"host", [])
            name = host_name(given[0]) if len(given) == 1 else None
            if name not in hosts:
                return ApiError(
                    403,
                    "this Host is not served (without an API key the server answers its "
                    "bind address and localhost; see --allowed-hosts)",
                    code="host_not_allowed",
                )
        if scope.get("method") == "POST":
            kind = headers.get(b"content-type", [b""])
            media = kind[0].split(b";", 1)[0].strip().lower() if len(kind) == 1 else b""
            if media != b"application/json":
                return ApiError(
                    415,
                    "the request body must be sent as Content-Type: application/json",
                    code="unsupported_media_type",
                )
        return None


def host_name(value: bytes) -> str | None:
    """The name in a ``Host`` header (``name``, ``name:port``, ``[v6]``, ``[v6]:port``;
    the port all digits), lower case; None when it is not one of these."""
    try:
        text = value.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        return None
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1 :]
        if end <= 1 or (rest and not (rest[:1] == ":" and rest[1:].isdigit())):
            return None
        return text[1:end]
    name, colon, port = text.partition(":")
    if not name or ":" in port or (colon and not port.isdigit()):
        return None
    return name
