"""``GET /v1/models``: the one model served, as OpenAI lists models."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from ..context import Context
from ..guards import authorise

__all__ = ["router"]

router = APIRouter()


@router.get("/v1/models")
async def models(request: Request, ctx: Context) -> dict[str, Any]:
    authorise(request, ctx.config)
    created = int(time.time())
    return {
        "object": "list",
        "data": [
            {"id": ctx.config.model_id, "object": "model", "created": created,
             "owned_by": "sfllava_ext"}
        ],
    }  # fmt: skip
