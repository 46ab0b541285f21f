"""sfllava_ext: SlowFast-LLaVA with fused C++/CUDA kernels.

Video file in, LLM-ready visual tokens or an answer out. The data path, top to
bottom, one owner per arrow:

    file --video.load_video--> frames (uint8, T x H x W x 3; on the CPU, YUV 4:2:0 planes)
         --ops.normalize_frames--> pixels (NCHW)
         --vision.TruncatedVisionTower--> per-frame tokens --projector--> features (T, N, D)
         --ops.slowfast_pool--> visual tokens, written into the LLM's input embeddings
         --model.SlowFastLlava (prompts, generate)--> text
"""

from __future__ import annotations

from . import ops
from ._extension import ExtensionBuildError, build_info
from .model import NotLlavaNextError, SlowFastLlava
from .ops import CLIP_MEAN, CLIP_STD, normalize_frames, slowfast_pool
from .preprocess import FrameNormalizer, frame_normalizer
from .prompts import PromptError
from .slowfast import (
    DEFAULT_SLOWFAST,
    SlowFastConfig,
    aggregate,
    num_visual_tokens,
    parse_aggregation,
)
from .video import FrameBuffers, VideoClip, VideoDecodeError, load_video, sample_frame_indices
from .yuv_to_rgb import Yuv420Frames

__version__ = "0.1.0"

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "DEFAULT_SLOWFAST",
    "ExtensionBuildError",
    "FrameBuffers",
    "FrameNormalizer",
    "NotLlavaNextError",
    "PromptError",
    "SlowFastConfig",
    "SlowFastLlava",
    "VideoClip",
    "VideoDecodeError",
    "Yuv420Frames",
    "aggregate",
    "build_info",
    "frame_normalizer",
    "load_video",
    "normalize_frames",
    "num_visual_tokens",
    "ops",
    "parse_aggregation",
    "sample_frame_indices",
    "slowfast_pool",
]
