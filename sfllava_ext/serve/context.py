"""What every route of the service shares: the model, the limits, the engine and the
folder of temporary copies (:class:`ServeContext`), found on the app's state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from .config import ServeConfig
from .engine import Engine

__all__ = ["Context", "ServeContext", "context"]


@dataclass(frozen=True)
class ServeContext:
    """The service's parts: ``sf`` (the :class:`~sfllava_ext.SlowFastLlava` served),
    ``config`` (its limits), ``engine`` (the model's worker) and ``workdir`` (where the
    videos of data: URLs are copied while they wait)."""

    sf: Any
    config: ServeConfig
    engine: Engine
    workdir: str


def context(request: Request) -> ServeContext:
    """The service's parts (a FastAPI dependency)."""
    return request.app.state.context


#: A route's parameter that receives the :class:`ServeContext`.
Context = Annotated[ServeContext, Depends(context)]
