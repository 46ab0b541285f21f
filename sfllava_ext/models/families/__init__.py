"""The model families SF-LLaVA runs on, one module each, picked by
``config.model_type`` (docs/method.md#families)."""

from __future__ import annotations

from typing import Any

from .base import Family
from .llava_next import LLAVA_NEXT
from .next_video import NEXT_VIDEO
from .onevision import ONEVISION

__all__ = ["FAMILIES", "Family", "UnsupportedModelError", "family_of"]

FAMILIES: dict[str, Family] = {f.model_type: f for f in (LLAVA_NEXT, NEXT_VIDEO, ONEVISION)}


class UnsupportedModelError(TypeError):
    """A model (or checkpoint) of a type SF-LLaVA has no family adapter for."""


def family_of(config: Any, what: str = "model") -> Family:
    """The family of a config (or of anything with ``.config``).

    Raises:
        UnsupportedModelError: ``config.model_type`` is none of :data:`FAMILIES`;
            the message lists the supported types.
    """
    config = getattr(config, "config", config)
    model_type = getattr(config, "model_type", None)
    family = FAMILIES.get(model_type)
    if family is None:
        raise UnsupportedModelError(
            f"{what} is a {model_type!r} model; SF-LLaVA supports {', '.join(sorted(FAMILIES))}"
        )
    return family
