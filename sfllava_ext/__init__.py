"""sfllava_ext: SlowFast-LLaVA with fused C++/CUDA kernels.

Video file in, LLM-ready visual tokens or an answer out. The data path, top to
bottom: file -> frames (uint8, THWC) -> normalised pixels (NCHW) -> vision
tower -> projector -> slow/fast tokens -> LLM input embeddings -> text.
"""

from __future__ import annotations

from . import ops
from ._extension import ExtensionBuildError, build_info
from .slowfast import (
    DEFAULT_SLOWFAST,
    SlowFastConfig,
    aggregate,
    num_visual_tokens,
    parse_aggregation,
)
from .video import VideoClip, VideoDecodeError, load_video, sample_frame_indices

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SLOWFAST",
    "ExtensionBuildError",
    "SlowFastConfig",
    "VideoClip",
    "VideoDecodeError",
    "aggregate",
    "build_info",
    "load_video",
    "num_visual_tokens",
    "ops",
    "parse_aggregation",
    "sample_frame_indices",
]
