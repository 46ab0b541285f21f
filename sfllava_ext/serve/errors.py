"""OpenAI-style errors: every refusal is a 4xx (or 503) with a JSON body
``{"error": {"message", "type", "param", "code"}}`` that names what was wrong."""

from __future__ import annotations

import logging
import uuid
from typing import Any

__all__ = ["ApiError", "error_body", "internal_error", "job_timeout", "shown"]


class ApiError(Exception):
    """A request the service refuses.

    Args:
        status: the HTTP status (400, 401, 404, 413, 503, ...).
        message: what was wrong, for a person.
        param: the request field at fault (``messages[0].content[1]``, ``max_tokens``).
        code: a machine-readable code (``invalid_api_key``, ``video_too_long``, ...).
        headers: extra response headers (``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param[:128] if param else param
        self.code = code
        self.headers = headers or {}

    @property
    def type(self) -> str:
        if self.status == 401:
            return "authentication_error"
        if self.status == 404:
            return "not_found_error"
        if self.status == 503:
            return "server_overloaded"
        if self.status >= 500:
            return "server_error"
        return "invalid_request_error"

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def job_timeout() -> ApiError:
    """504 ``job_timeout``: the job passed ``--job-timeout-s``."""
    return ApiError(504, "the job ran past the server's --job-timeout-s", code="job_timeout")


def internal_error(logger: logging.Logger, what: str, exc: BaseException | None = None) -> ApiError:
    """A 500 for a failure of the server's own (never a client's mistake): the
    traceback goes to ``logger`` under a short reference, which the client gets
    instead of the exception's text (that may hold server paths)."""
    reference = uuid.uuid4().hex[:12]
    logger.error("%s (reference %s)", what, reference, exc_info=exc or True)
    return ApiError(500, f"internal error (reference {reference})", code="internal_error")


def shown(value: Any, limit: int = 64) -> str:
    """``value`` as an error message quotes a client's value: its ``repr``, at most
    ``limit`` characters in all (a container by its type and length). The cut comes
    after ``repr`` has escaped what is not printable (one character may become ten), at
    an escape's edge, and its marker (``...``, with a long string's length) is inside
    the limit, so that a reply never echoes a large field back."""
    if isinstance(value, (list, dict)):
        return f"a {type(value).__name__} of {len(value)} items"
    if not isinstance(value, str):
        text = repr(value)
        return text if len(text) <= limit else text[: limit - 3] + "..."
    # each character as repr escapes it inside single quotes
    pieces = [repr(c)[1:-1] if c != "'" else "\\'" for c in value[:limit]]
    if len(value) <= limit and sum(map(len, pieces)) + 2 <= limit:
        return "'" + "".join(pieces) + "'"
    marker = f"... ({len(value)} characters)"
    room = limit - len(marker) - 2
    kept, used = [], 0
    for piece in pieces:
        if used + len(piece) > room:
            break
        kept.append(piece)
        used += len(piece)
    return "'" + "".join(kept) + "'" + marker
