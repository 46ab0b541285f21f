"""The service's app: the routes (:mod:`.routes`, one module each) wired to one
:class:`~sfllava_ext.serve.context.ServeContext` (the model, the limits, the engine),
OpenAI-style errors, and the engine's start and stop with the app.

    POST /v1/chat/completions   OpenAI's chat completions (stream: server-sent events)
    POST /v1/video/tokens       one video's visual tokens, the session file's bytes
    GET  /v1/models             the served model
    GET  /health                liveness and counters (no API key needed)

Every refusal is OpenAI-style JSON with a 4xx status (503 when busy, 504 past a
job's time limit; docs/security.md lists them all), and nothing a request does stops
the others: the host and content type are checked first (:mod:`.guards`), the body
is read up to its limit and no further and parsed within limits on a thread
(:mod:`.body`), the video is copied once to a private spool (:mod:`.media`), decoded
within the limits, and the model runs on the engine's one worker thread.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .body import BodyBudget
from .config import ServeConfig
from .context import ServeContext
from .engine import Engine
from .errors import ApiError, error_body, internal_error
from .guards import RequestGuard
from .routes import ROUTERS

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


def create_app(sf: Any, config: ServeConfig, engine: Engine | None = None) -> FastAPI:
    """The service's app, serving ``sf`` (a :class:`~sfllava_ext.SlowFastLlava`) within
    ``config``'s limits. Without ``engine``, it makes one whose worker runs on a thread
    and starts and stops with the app; with one, the caller runs its worker
    (``sfllava serve`` runs it on the main thread) and the app stops it."""
    own_engine = engine is None
    engine = engine if engine is not None else Engine(sf, config)
    workdir = tempfile.mkdtemp(prefix="sfllava-serve-")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if own_engine:
            engine.start()
        try:
            yield
        finally:
            engine.stop()
            shutil.rmtree(workdir, ignore_errors=True)

    # no schema or docs pages (they would answer without the key), and no redirect of
    # a path with a trailing slash (a 307 to the Host the client named): a 404
    app = FastAPI(
        title="sfllava",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
    )
    bodies = BodyBudget(config.max_uploads)
    app.state.context = ServeContext(sf, config, engine, workdir, bodies)
    app.add_middleware(RequestGuard, config=config)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    for router in ROUTERS:
        app.include_router(router)
    return app


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    return JSONResponse(error_body(str(exc.detail), kind), status_code=exc.status_code)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    error = internal_error(logger, f"{request.method} {request.url.path} failed", exc)
    return JSONResponse(error.body(), status_code=error.status)
