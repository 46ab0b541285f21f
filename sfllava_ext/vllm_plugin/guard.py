"""``sfllava serve``'s request rules on vLLM's OpenAI server, as ASGI middleware
(vLLM's ``--middleware sfllava_ext.vllm_plugin.guard.VllmRequestGuard``), outermost:

- the ``Host`` check and ``Content-Type: application/json`` on POSTs
  (:class:`~sfllava_ext.serve.guards.RequestGuard`);
- with an API key, the key on every path but ``/health`` (vLLM's own check guards only
  ``/v1`` and a few other prefixes, leaving ``/tokenize``, ``/pooling``,
  ``/reset_mm_cache`` ... open).

vLLM builds middleware without arguments, so the settings travel in the environment
(:data:`GUARD_ENV`, JSON), which ``sfllava serve --engine vllm`` sets for the server's
process; the key itself travels as ``VLLM_API_KEY``, never on a command line.
"""

from __future__ import annotations

import json
import os
from typing import Any

from starlette.requests import Request

from ..serve.config import ServeConfig
from ..serve.errors import ApiError
from ..serve.guards import RequestGuard, authorise

__all__ = ["GUARD_ENV", "VllmRequestGuard", "guard_environment"]

GUARD_ENV = "SFLLAVA_VLLM_GUARD"
_OPEN_PATHS = ("/health",)


def guard_environment(host: str, allowed_hosts: tuple[str, ...]) -> dict[str, str]:
    """The environment entry that configures the guard in vLLM's server process."""
    return {GUARD_ENV: json.dumps({"host": host, "allowed_hosts": list(allowed_hosts)})}


class VllmRequestGuard(RequestGuard):
    """:class:`~sfllava_ext.serve.guards.RequestGuard` configured from the environment,
    with the API key checked on every path but ``/health``."""

    def __init__(self, app: Any) -> None:
        raw = os.environ.get(GUARD_ENV)
        if raw is None:
            raise RuntimeError(
                f"{GUARD_ENV} is not set: start the server with `sfllava serve --engine vllm`"
            )
        settings = json.loads(raw)
        key = os.environ.get("VLLM_API_KEY") or None
        config = ServeConfig(
            host=settings["host"],
            api_key=key,
            allowed_hosts=tuple(settings.get("allowed_hosts") or ()),
        )
        super().__init__(app, config)

    def refusal(self, scope: dict) -> ApiError | None:
        refused = super().refusal(scope)
        if refused is not None or scope.get("path") in _OPEN_PATHS:
            return refused
        try:
            authorise(Request(scope), self.config)
        except ApiError as exc:
            return exc
        return None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            refused = self.refusal({**scope, "method": "GET"})
            if refused is not None:
                await send({"type": "websocket.close", "code": 1008})
                return
        await super().__call__(scope, receive, send)
