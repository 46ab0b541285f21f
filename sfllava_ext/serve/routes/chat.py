"""``POST /v1/chat/completions``: OpenAI's chat completions about one video, whole or
streamed as server-sent events (:mod:`sfllava_ext.serve.sse`).

A request's job runs on the model's worker (:mod:`sfllava_ext.serve.engine`): the
session of the video's bytes (cached, or decoded and encoded now), the prompt tokenized
once (its positions are the usage's ``prompt_tokens`` and are checked against the
context), then the generation. ``finish_reason`` is ``stop`` when the answer ended at
one of the model's stop tokens (:attr:`~sfllava_ext.llm.runtime.LanguageModel.stop_ids`: the EOS,
Llama-3's ``<|eot_id|>``), ``length`` when it ran out of ``max_tokens``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ...session import SessionPrompt, VideoSession
from .. import protocol, sse
from ..body import take_request
from ..connections import until_disconnected
from ..context import Context, ServeContext
from ..engine import submit_for, wait_for
from ..errors import ApiError, internal_error
from ..guards import authorise
from ..media import Video

__all__ = ["DEFAULT_MAX_TOKENS", "router"]

logger = logging.getLogger(__name__)
router = APIRouter()
DEFAULT_MAX_TOKENS = 256  # the published answer length


@router.post("/v1/chat/completions")
async def chat(request: Request, ctx: Context) -> Response:
    authorise(request, ctx.config)
    req, video = await take_request(
        request,
        ctx.config,
        ctx.bodies,
        ctx.workdir,
        lambda data: protocol.parse_chat(data, ctx.config.model_id),
    )
    max_tokens = req.max_tokens or DEFAULT_MAX_TOKENS
    if req.stream:
        return await _stream(ctx, req, video, max_tokens)
    return await _whole(request, ctx, req, video, max_tokens)


def _session_and_prompt(
    ctx: ServeContext, req: protocol.ChatRequest, video: Video, max_tokens: int
) -> tuple[VideoSession, SessionPrompt]:
    """On the worker: the session of the video's bytes and the question's prompt,
    tokenized once (its positions are counted here and run later), within the context.

    Raises:
        ApiError: 400 for a video that cannot be decoded or a prompt and ``max_tokens``
            past the model's context; 504 past the job's deadline.
    """
    session = ctx.engine.session_for(video, req.video_param)
    ctx.engine.check_deadline()
    asked = session.tokenize(req.question)
    ctx.engine.check_length(asked.positions, max_tokens)
    return session, asked


async def _whole(
    request: Request, ctx: ServeContext, req: protocol.ChatRequest, video: Video, max_tokens: int
) -> Response:
    queued = time.perf_counter()
    gone = threading.Event()

    def job() -> tuple[str, str, dict, float, float]:
        started = time.perf_counter()
        ctx.engine.check_client(gone)
        session, asked = _session_and_prompt(ctx, req, video, max_tokens)
        ids = session.generate(
            asked,
            max_new_tokens=max_tokens,
            stop=ctx.engine.stop_for(gone),
            **req.generate_kwargs(),
        )
        ctx.engine.check_deadline()
        text = ctx.sf.llm.decode(ids)
        finish = ctx.sf.llm.finish_reason(ids, max_tokens)
        used = protocol.usage(asked.positions, len(ids))
        return text, finish, used, started, time.perf_counter()

    future = submit_for(ctx.engine, job, "chat", video)
    watch = asyncio.create_task(until_disconnected(request, gone))
    text, finish, used, started, ended = await wait_for(future, video, watch)
    # OpenAI's header for the time spent on the request; ours also says how long it
    # waited for the model
    headers = {
        "openai-processing-ms": f"{(ended - started) * 1e3:.1f}",
        "x-queue-ms": f"{(started - queued) * 1e3:.1f}",
    }
    body = protocol.completion(protocol.completion_id(), ctx.config.model_id, text, finish, used)
    return JSONResponse(body, headers=headers)


async def _stream(
    ctx: ServeContext, req: protocol.ChatRequest, video: Video, max_tokens: int
) -> Response:
    events = sse.EventQueue()
    cancel = threading.Event()

    def job() -> None:
        if cancel.is_set():
            return  # the client left while the job waited
        try:
            session, asked = _session_and_prompt(ctx, req, video, max_tokens)
            events.put(sse.Started())
            # generated on the worker's thread; the client's leaving sets `cancel`
            ids = session.generate(
                asked,
                max_new_tokens=max_tokens,
                on_text=lambda piece: events.put(sse.Piece(piece)),
                stop=ctx.engine.stop_for(cancel),
                **req.generate_kwargs(),
            )
            if cancel.is_set():
                ctx.engine.count("cancelled")
                return
            ctx.engine.check_deadline()
            finish = ctx.sf.llm.finish_reason(ids, max_tokens)
            events.put(sse.Finished(finish, protocol.usage(asked.positions, len(ids))))
        except ApiError as exc:
            events.put(sse.Failed(exc))
        except Exception:  # reported to the client, the server goes on
            events.put(sse.Failed(internal_error(logger, "stream failed")))

    def ended(future) -> None:
        video.discard()
        if future.cancelled():  # dropped from the queue: the server is stopping
            events.put(sse.Failed(ApiError(503, "the server is shutting down", code="shutdown")))
        elif future.exception() is not None:  # the job never ran (it reports its own)
            error = future.exception()
            if not isinstance(error, ApiError):
                error = internal_error(logger, "job failed", error)
            events.put(sse.Failed(error))

    future = submit_for(ctx.engine, job, "chat", video)
    future.add_done_callback(ended)
    first = await events.get()
    if isinstance(first, sse.Failed):
        raise first.error
    body = sse.chat_events(
        events, protocol.completion_id(), ctx.config.model_id, req.include_usage, cancel
    )
    return StreamingResponse(
        body, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
