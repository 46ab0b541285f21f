"""sfllava_ext: SlowFast-LLaVA with fused C++/CUDA kernels.

Video file in, LLM-ready visual tokens or an answer out. The data path, top to
bottom, one owner per arrow:

    file --video.load_video--> frames (uint8, T x H x W x 3; on the CPU, YUV 4:2:0 planes)
         --ops.normalize_frames--> pixels (NCHW)
         --vision.TruncatedVisionTower--> per-frame tokens --projector--> features (T, N, D)
         --ops.slowfast_pool--> visual tokens, written into the LLM's input embeddings
         --model.SlowFastLlava (prompts, generate)--> text

Where each piece lives:

    frames.py        VideoClip, Yuv420Frames, VideoDecodeError (no decoder imported)
    video/           sampling, frame buffers, one module per backend, pyav/ (the fast decoder)
    ops/             one module per fused op, the fake kernels, the C++ checks' Python copies
    preprocess.py    normalisation settings read from a Hugging Face image processor
    vision.py        the vision tower run up to its feature layer
    slowfast.py      the aggregation strings and their token counts
    encoding.py      frames -> visual tokens (normalise, tower, projector, pooling)
    prompts.py       the published prompts and LLaVA's tokenization around <image>
    assembly.py      the LLM's input embeddings with the visual tokens written in place
    generation.py    generate() and its prefill clock
    families/        one adapter per model type: llava_next, llava_next_video, llava_onevision
    loading.py       from_pretrained's pieces: device, dtype, memory check, RoPE scaling
    video_input.py   what counts as a video, and the planes-on-CPU rule
    session.py       VideoSession: encode once, ask many (kv_cache.py: the KV-cache calls)
    streaming.py     text pieces as they are generated
    tokens_file.py   the session file: visual tokens and what made them
    embed/           `sfllava embed` over many videos: inputs, output folder, decode workers
    distributed.py   the same job on Ray Data (the [ray] extra)
    model_spec.py    a picklable description of a model to build (demo or checkpoint)
    model.py         SlowFastLlava, the facade over all of the above
    constants.py     every fixed choice and default, written once (cpus.py: CPUs usable)
    cli.py, demo.py  the `sfllava` command and its no-download demo (demo_onevision.py)
"""

from __future__ import annotations

from . import ops
from ._extension import ExtensionBuildError, build_info
from ._version import __version__
from .constants import CLIP_MEAN, CLIP_STD, DEFAULT_SLOWFAST
from .embed import EmbedSummary, embed_videos
from .frames import VideoClip, VideoDecodeError, Yuv420Frames
from .loading import NotLlavaNextError, UnsupportedModelError
from .model import SlowFastLlava
from .ops import normalize_frames, slowfast_pool
from .preprocess import FrameNormalizer, frame_normalizer
from .prompts import PromptError
from .session import VideoSession
from .slowfast import SlowFastConfig, aggregate, num_visual_tokens, parse_aggregation
from .tokens_file import SessionFileError
from .video import FrameBuffers, load_video, sample_frame_indices

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "DEFAULT_SLOWFAST",
    "EmbedSummary",
    "ExtensionBuildError",
    "FrameBuffers",
    "FrameNormalizer",
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
