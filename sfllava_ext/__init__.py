"""sfllava_ext: SlowFast-LLaVA with fused C++/CUDA kernels.

Video file in, LLM-ready visual tokens or an answer out. The packages are the stages of
the data path, top to bottom, each arrow one owner (docs/development.md draws it):

    file --video/--> frames (uint8, T x H x W x 3; on the CPU, YUV 4:2:0 planes)
         --encoder/ (ops/ normalize_frames, the tower, the projector, ops/ slowfast_pool)-->
           visual tokens, written into the LLM's input embeddings
         --llm/ (prompts, input assembly, the language-model runtime, generate)--> text

    video/     file -> frames: containers (frames.py), what counts as a video input
               (input.py), sampling, buffers, one module per backend, pyav/
    ops/       one module per fused op, the fake kernels, the C++ checks' Python copies
    encoder/   frames -> visual tokens: normalisation settings, the truncated tower,
               aggregation strings, VideoEncoder, the fingerprint a session file records
    llm/       visual tokens + prompt -> text: prompts, input assembly, the runtime that
               owns the tokenizer, the lock, generate and the stop set; streaming; KV cache
    models/    families, loading, ModelSpec, the no-download demo models (demo/)
    session/   VideoSession (encode once, ask many), VideoInfo, the session file
    embed/     `sfllava embed` over many videos, locally and on Ray Data
    serve/     `sfllava serve`, the OpenAI-compatible service
    cli/       the `sfllava` command, one module per subcommand
    utils/     stage timings, usable CPUs, the fault hook for tests
    model.py   SlowFastLlava, the facade over all of the above
    constants.py  every fixed choice and default, written once

This file re-exports the public names; _moved.py keeps the module paths that moved
working.
"""

from __future__ import annotations

from . import _moved, ops
from ._extension import ExtensionBuildError, build_info
from ._version import __version__
from .constants import CLIP_MEAN, CLIP_STD, DEFAULT_SLOWFAST
from .embed import EmbedSummary, embed_videos
from .encoder.aggregation import SlowFastConfig, aggregate, num_visual_tokens, parse_aggregation
from .encoder.normalize import FrameNormalizer, frame_normalizer
from .llm.prompts import PromptError
from .model import SlowFastLlava
from .models.families import UnsupportedModelError
from .models.loading import NotLlavaNextError
from .models.spec import ModelSpec
from .ops import normalize_frames, slowfast_pool
from .session import SessionFileError, VideoSession
from .video import FrameBuffers, load_video, sample_frame_indices
from .video.frames import VideoClip, VideoDecodeError, Yuv420Frames

_moved.install()

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "DEFAULT_SLOWFAST",
    "EmbedSummary",
    "ExtensionBuildError",
    "FrameBuffers",
    "FrameNormalizer",
    "ModelSpec",
    "NotLlavaNextError",
    "PromptError",
    "SlowFastConfig",
    "SessionFileError",
    "UnsupportedModelError",
    "SlowFastLlava",
    "VideoClip",
    "VideoDecodeError",
    "VideoSession",
    "Yuv420Frames",
    "__version__",
    "aggregate",
    "build_info",
    "embed_videos",
    "frame_normalizer",
    "load_video",
    "normalize_frames",
    "num_visual_tokens",
    "ops",
    "parse_aggregation",
    "sample_frame_indices",
    "slowfast_pool",
]
