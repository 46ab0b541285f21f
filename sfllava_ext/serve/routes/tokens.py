"""``POST /v1/video/tokens``: one video's visual tokens, as the session file's bytes
(``VideoSession.load`` reads them), with the video's SHA-256 and the token count in the
headers."""

from __future__ import annotations

import asyncio
import threading

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...session.file import tokens_bytes
from .. import protocol
from ..body import take_request
from ..connections import until_disconnected
from ..context import Context
from ..engine import submit_for, wait_for
from ..guards import authorise

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/video/tokens")
async def video_tokens(request: Request, ctx: Context) -> Response:
    authorise(request, ctx.config)
    _, video = await take_request(
        request,
        ctx.config,
        ctx.bodies,
        ctx.workdir,
        lambda data: protocol.parse_tokens_request(data, ctx.config.model_id),
    )
    param = "video_url.url"

    gone = threading.Event()

    def job() -> tuple[bytes, str, int]:
        ctx.engine.check_client(gone)
        session = ctx.engine.session_for(video, param)
        data = tokens_bytes(session.tokens, ctx.sf, session.info)
        return data, video.sha256, len(session.tokens)

    future = submit_for(ctx.engine, job, "tokens", video)
    watch = asyncio.create_task(until_disconnected(request, gone))
    data, sha, count = await wait_for(future, video, watch)
    headers = {"X-Video-SHA256": sha, "X-Visual-Tokens": str(count)}
    return Response(data, media_type="application/octet-stream", headers=headers)
