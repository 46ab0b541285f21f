"""The models SF-LLaVA runs on and how they are built:

    families/   one adapter per model type (llava_next, llava_next_video, llava_onevision)
    loading.py  from_pretrained's pieces: device, dtype, memory check, RoPE scaling
    demo/       the no-download demo models (demo_parts), for the CLI, tests, benchmarks
    spec.py     ModelSpec: a picklable description of a model to build

This file re-exports what the facade (:class:`~sfllava_ext.SlowFastLlava`) builds on, and
not :class:`~sfllava_ext.models.spec.ModelSpec`, which builds the facade: importing it
here would close a cycle (the facade imports this package). ``sfllava_ext.ModelSpec`` is
its public name.
"""

from __future__ import annotations

from .demo import demo_parts
from .families import FAMILIES, Family, UnsupportedModelError, family_of
from .loading import load_pretrained

__all__ = [
    "FAMILIES",
    "Family",
    "UnsupportedModelError",
    "demo_parts",
    "family_of",
    "load_pretrained",
]
