"""What every route of the service shares: the model, the limits, the engine, the
folder of the videos' private copies and the bodies' budget (:class:`ServeContext`),
found on the app's state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from .body import BodyBudget
from .config import ServeConfig
from .engine import Engine

__all__ = ["Context", "ServeContext", "context"]


@dataclass(frozen=True)
class ServeContext:
    """The service's parts: ``sf`` (the :class:`~sfllava_ext.SlowFastLlava` served),
    ``config`` (its limits), ``engine`` (the model's worker), ``workdir`` (where every
    request's video is copied while it waits) and ``bodies`` (what request bodies
    may hold in memory)."""

    sf: Any
    config: ServeConfig
    engine: Engine
    workdir: str
    bodies: BodyBudget


def context(request: Request) -> ServeContext:
    """The service's parts (a FastAPI dependency)."""
    return request.app.state.context


#: A route's parameter that receives the :class:`ServeContext`.
Context = Annotated[ServeContext, Depends(context)]
