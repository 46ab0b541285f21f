"""The models SF-LLaVA runs on and how they are built:

families/   one adapter per model type (llava_next, llava_next_video, llava_onevision)
loading.py  from_pretrained's pieces: device, dtype, memory check, RoPE scaling
spec.py     ModelSpec: a picklable description of a model to build
_demo/      the no-download demo models (private; demo_parts is the way in)
"""

from __future__ import annotations

from .demo import demo_parts
from .families import FAMILIES, Family, UnsupportedModelError, family_of
from .loading import load_pretrained
from .spec import DEMO, ModelSpec

__all__ = [
    "DEMO",
    "FAMILIES",
    "Family",
    "ModelSpec",
    "UnsupportedModelError",
    "demo_parts",
    "family_of",
    "load_pretrained",
]
