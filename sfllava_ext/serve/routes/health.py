"""``GET /health`` (and ``HEAD``): liveness and the engine's counters; no API key
needed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..context import Context

__all__ = ["router"]

router = APIRouter()


@router.api_route("/health", methods=["GET", "HEAD"])
async def health(ctx: Context) -> dict[str, Any]:
    return {"status": "ok", "model": ctx.config.model_id, **ctx.engine.health()}
