"""``POST /v1/video/tokens``: one video's visual tokens, as the session file's bytes
(``VideoSession.load`` reads them), with the video's SHA-256 and the token count in the
headers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...session.file import tokens_bytes
from .. import protocol
from ..body import take_request
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
        ctx.uploads,
        ctx.workdir,
        lambda data: protocol.parse_tokens_request(data, ctx.config.model_id),
    )
    param = "video_url.url"

    def job() -> tuple[bytes, str, int]:
        session = ctx.engine.session_for(video, param)
        data = tokens_bytes(session.tokens, ctx.sf, session.info)
        return data, video.sha256, len(session.tokens)

    data, sha, count = await wait_for(submit_for(ctx.engine, job, "tokens", video), video)
    headers = {"X-Video-SHA256": sha, "X-Visual-Tokens": str(count)}
    return Response(data, media_type="application/octet-stream", headers=headers)
