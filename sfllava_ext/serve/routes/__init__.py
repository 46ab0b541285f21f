"""The service's routes, one module each (``router`` in every one):

chat.py     POST /v1/chat/completions   OpenAI's chat completions (stream: SSE)
tokens.py   POST /v1/video/tokens       one video's visual tokens, the session file
models.py   GET  /v1/models             the served model
health.py   GET  /health                liveness and counters (no API key needed)
"""

from __future__ import annotations

from . import chat, health, models, tokens

__all__ = ["ROUTERS"]

ROUTERS = (health.router, models.router, tokens.router, chat.router)
