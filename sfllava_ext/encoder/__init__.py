"""Frames to visual tokens, the second stage of the data path (docs/method.md):

normalize.py    normalisation settings read from an image processor (FrameNormalizer)
tower.py        the vision tower run up to its feature layer, the pre-projector hook,
                the micro-batched tower -> projector loop
aggregation.py  SF-LLaVA's aggregation strings, their token counts, running them
encoder.py      VideoEncoder: uint8 frames -> features -> visual tokens
fingerprint.py  what a model's visual tokens depend on (the session file's settings key)
"""

from __future__ import annotations

from .aggregation import SlowFastConfig, aggregate, num_visual_tokens, parse_aggregation
from .encoder import VideoEncoder
from .normalize import FrameNormalizer, frame_normalizer
from .tower import PreProjector, TruncatedVisionTower

__all__ = [
    "FrameNormalizer",
    "PreProjector",
    "SlowFastConfig",
    "TruncatedVisionTower",
    "VideoEncoder",
    "aggregate",
    "frame_normalizer",
    "num_visual_tokens",
    "parse_aggregation",
]
