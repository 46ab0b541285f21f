"""The HTTP layer: FastAPI routes over the :class:`~sfllava_ext.serve.engine.Engine`.

    POST /v1/chat/completions   OpenAI's chat completions (stream: server-sent events)
    POST /v1/video/tokens       one video's visual tokens, the session file's bytes
    GET  /v1/models             the served model
    GET  /health                liveness and counters (no API key needed)

Every refusal is OpenAI-style JSON with a 4xx status (503 when busy), and nothing a
request does stops the others: the body is read up to its limit and no further, the
video's header is checked before decoding, and the model runs on the engine's one
worker thread.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import shutil
import tempfile
import threading
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..tokens_file import tokens_bytes
from . import protocol
from .config import ServeConfig
from .engine import Engine
from .errors import ApiError, error_body
from .media import resolve_video

__all__ = ["create_app"]

logger = logging.getLogger(__name__)
DEFAULT_MAX_TOKENS = 256  # the published answer length


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

    app = FastAPI(title="sfllava", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.engine = engine

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(exc.detail), kind), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("request failed")
        return JSONResponse(error_body(f"internal error: {exc}", "server_error"), status_code=500)

    def authorise(request: Request) -> None:
        if config.api_key is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {config.api_key}".encode()):
            raise ApiError(
                401,
                "a valid API key is needed: Authorization: Bearer <key>",
                code="invalid_api_key",
            )

    async def read_json(request: Request) -> dict[str, Any]:
        """The body, read no further than ``max_body_bytes`` (413 past it)."""
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

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": config.model_id, **engine.health()}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        authorise(request)
        created = int(time.time())
        return {
            "object": "list",
            "data": [
                {
                    "id": config.model_id,
                    "object": "model",
                    "created": created,
                    "owned_by": "sfllava_ext",
                }
            ],
        }

    @app.post("/v1/video/tokens")
    async def video_tokens(request: Request) -> Response:
        authorise(request)
        url, param = protocol.parse_tokens_request(await read_json(request), config.model_id)
        video = resolve_video(url, param, config, workdir)

        def job() -> tuple[bytes, str, int]:
            session = engine.session_for(video, param)
            return tokens_bytes(session.tokens, sf, session.info), video.sha256, len(session.tokens)

        data, sha, count = await _wait(_submit(engine, job, video), video)
        headers = {"X-Video-SHA256": sha, "X-Visual-Tokens": str(count)}
        return Response(data, media_type="application/octet-stream", headers=headers)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        authorise(request)
        req = protocol.parse_chat(await read_json(request), config.model_id)
        video = resolve_video(req.video_url, req.video_param, config, workdir)
        max_tokens = req.max_tokens or DEFAULT_MAX_TOKENS
        cid = protocol.completion_id()
        if not req.stream:
            queued = time.perf_counter()

            def job() -> tuple[str, str, dict, float, float]:
                started = time.perf_counter()
                session = engine.session_for(video, req.video_param)
                total = session.prompt_positions(req.question)
                engine.check_length(total, max_tokens)
                ids = session.generate(
                    req.question, max_new_tokens=max_tokens, **req.generate_kwargs()
                )
                text = sf._decode(ids)
                used = protocol.usage(total, len(ids))
                return text, _finish(ids, max_tokens, sf), used, started, time.perf_counter()

            text, finish, used, started, ended = await _wait(_submit(engine, job, video), video)
            # OpenAI's header for the time spent on the request; ours also says how long
            # it waited for the model
            headers = {
                "openai-processing-ms": f"{(ended - started) * 1e3:.1f}",
                "x-queue-ms": f"{(started - queued) * 1e3:.1f}",
            }
            body = protocol.completion(cid, config.model_id, text, finish, used)
            return JSONResponse(body, headers=headers)
        return await _stream(req, video, max_tokens, cid)

    async def _stream(req, video, max_tokens: int, cid: str) -> Response:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        def emit(*message) -> None:
            loop.call_soon_threadsafe(events.put_nowait, message)

        def job() -> None:
            if cancel.is_set():
                return  # the client left while the job waited
            try:
                session = engine.session_for(video, req.video_param)
                total = session.prompt_positions(req.question)
                engine.check_length(total, max_tokens)
                emit("start")
                # generated on the worker's thread; the client's leaving sets `cancel`
                ids = session.generate(
                    req.question,
                    max_new_tokens=max_tokens,
                    on_text=lambda piece: emit("piece", piece),
                    stop=cancel,
                    **req.generate_kwargs(),
                )
                if cancel.is_set():
                    engine._count("cancelled")
                    return
                emit("end", _finish(ids, max_tokens, sf), protocol.usage(total, len(ids)))
            except ApiError as exc:
                emit("error", exc)
            except Exception as exc:  # reported to the client, the server goes on
                logger.exception("stream failed")
                emit("error", ApiError(500, f"internal error: {exc}"))

        future = _submit(engine, job, video)
        future.add_done_callback(lambda f: video.discard())
        first = await events.get()
        if first[0] == "error":
            raise first[1]
        model = config.model_id

        async def sse():
            try:
                yield _sse(protocol.chunk(cid, model, {"role": "assistant", "content": ""}))
                while True:
                    message = await events.get()
                    if message[0] == "piece":
                        yield _sse(protocol.chunk(cid, model, {"content": message[1]}))
                    elif message[0] == "end":
                        yield _sse(protocol.chunk(cid, model, {}, finish=message[1]))
                        if req.include_usage:
                            yield _sse(
                                protocol.chunk(cid, model, {}, usage=message[2], choices=False)
                            )
                        yield "data: [DONE]\n\n"
                        return
                    else:  # an error after the first piece: in the stream, as OpenAI does
                        yield _sse(message[1].body())
                        return
            finally:
                cancel.set()  # the client left (or the stream ended): stop generating

        return StreamingResponse(
            sse(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return app


def _submit(engine: Engine, job, video):
    """Queues ``job``; the video's temporary copy goes when the queue is full."""
    try:
        return engine.submit(job)
    except BaseException:
        video.discard()
        raise


async def _wait(future, video):
    try:
        return await asyncio.wrap_future(future)
    finally:
        video.discard()


def _finish(ids: list[int], max_tokens: int, sf: Any) -> str:
    eos = sf.tokenizer.eos_token_id
    if ids and ids[-1] == eos:
        return "stop"
    return "length" if len(ids) >= max_tokens else "stop"


def _sse(data: dict) -> str:
    return f"data: {json.dumps(data)}\n\n"


def _body_too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"the request body is larger than the server's limit ({limit} bytes: "
        "--max-video-mb as base64, and 1 MiB)",
        code="request_too_large",
    )
