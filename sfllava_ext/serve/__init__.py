"""``sfllava serve``: an OpenAI-compatible HTTP service for video questions and visual
tokens, over :class:`~sfllava_ext.SlowFastLlava` and :class:`~sfllava_ext.VideoSession`.

The optional extra ``[serve]`` (FastAPI and uvicorn) is needed:
``pip install --no-build-isolation "sfllava_ext[serve]"``.

    config.py    the limits (ServeConfig)
    errors.py    OpenAI-style errors (ApiError)
    protocol.py  the chat-completions schema and replies
    media.py     data: and file:// URLs copied to a private spool, the header checks
    body.py      a request's way in: its body read and parsed within limits
    engine.py    the one worker that owns the model, its queue, the session cache
    context.py   what every route shares (ServeContext)
    guards.py    the Host, the content type and the API key, before any route's work
    connections.py  uvicorn's settings; a deadline on every request head
    sse.py       streamed answers: the worker's events, server-sent events
    routes/      one module per route: chat, tokens, models, health
    app.py       the wiring: routes, errors, the engine's start and stop
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServeConfig", "create_app", "require_serve_extra", "serve"]

SERVE_EXTRA = 'pip install --no-build-isolation "sfllava_ext[serve]"'


def require_serve_extra() -> None:
    """Raises ImportError naming the missing package and the line that installs it."""
    import importlib.util

    missing = [name for name in ("fastapi", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f"sfllava serve needs {' and '.join(missing)} (the [serve] extra): {SERVE_EXTRA}"
        )


def create_app(sf: Any, config: Any):
    """The FastAPI app (see :mod:`sfllava_ext.serve.app`)."""
    require_serve_extra()
    from .app import create_app as make

    return make(sf, config)


def serve(sf: Any, config: Any, log_level: str = "info") -> None:
    """Runs the service until SIGINT or SIGTERM, which end it cleanly: the HTTP server
    on a thread, the model's worker on this (the main) thread."""
    require_serve_extra()
    import signal
    import threading

    import uvicorn

    from .app import create_app as make
    from .connections import server_config
    from .engine import Engine

    engine = Engine(sf, config)
    settings = server_config(
        make(sf, config, engine), config, log_level, timeout_graceful_shutdown=10
    )
    server = uvicorn.Server(settings)  # off the main thread, it leaves signals alone
    http = threading.Thread(target=server.run, name="sfllava-http", daemon=True)

    def leave(signum, frame) -> None:
        server.should_exit = True
        if not http.is_alive():
            engine.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, leave)
    http.start()
    watchdog = threading.Thread(target=lambda: (http.join(), engine.stop()), daemon=True)
    watchdog.start()  # the HTTP server ended (shut down, or failed to bind): so does the worker
    engine.serve()
    http.join(timeout=30)


def __getattr__(name: str):
    if name == "ServeConfig":
        from .config import ServeConfig

        return ServeConfig
    raise AttributeError(name)
