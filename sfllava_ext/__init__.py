"""sfllava_ext: SlowFast-LLaVA with fused C++/CUDA kernels.

Video file in, LLM-ready visual tokens or an answer out. The data path, top to
bottom: file -> frames (uint8, THWC) -> normalised pixels (NCHW) -> vision
tower -> projector -> slow/fast tokens -> LLM input embeddings -> text.
"""

from __future__ import annotations

from . import ops
from ._extension import ExtensionBuildError, build_info
from .ops import normalize_frames
from .preprocess import FrameNormalizer, frame_normalizer
from .slowfast import (
    DEFAULT_SLOWFAST,
    SlowFastConfig,
    aggregate,
    num_visual_tokens,
    parse_aggregation,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SLOWFAST",
    "ExtensionBuildError",
    "FrameNormalizer",
    "SlowFastConfig",
    "aggregate",
    "build_info",
    "frame_normalizer",
    "normalize_frames",
    "num_visual_tokens",
    "ops",
    "parse_aggregation",
]
