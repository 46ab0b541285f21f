"""The method's fixed choices and the library's defaults, each written once.

Everything that validates, documents or offers one of these (the ops, the model,
the CLI, the preprocessing settings) imports it from here. The numbers themselves
are explained in docs/method.md.
"""

from __future__ import annotations

#: The CLIP image processor's (OpenAI CLIP's) per-channel mean and std, RGB.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: How a frame meets the vision tower's square input: ``squash`` (the published
#: resize), ``crop`` (the CLIP processor alone) or ``pad`` (LLaVA's expand2square).
RESIZE_MODES = ("squash", "crop", "pad")
DEFAULT_RESIZE_MODE = "squash"

#: Which Pillow's resampling to reproduce: ``pillow13`` (Pillow >= 13 runs the
#: vertical pass first when the height shrinks by more than twice as many pixels as
#: the width) or ``pillow12`` (Pillow <= 12: always horizontal first).
PASS_ORDERS = ("pillow13", "pillow12")
DEFAULT_PASS_ORDER = "pillow13"

#: The slow pathway's poolings of one frame's token grid.
SLOW_POOLS = (
    "concat",
    "spatial_1d_max_pool",
    "spatial_1d_avg_pool",
    "spatial_2d_max_pool",
    "spatial_2d_avg_pool",
)
#: The published two-pathway aggregation (10 slow frames, 1-D max pool; 4x4 fast grid).
DEFAULT_SLOWFAST = "slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4"

#: Frames sampled from a video (the published 50).
DEFAULT_NUM_FRAMES = 50

#: The families the no-download demo builds (``sfllava demo --family``).
DEMO_FAMILIES = ("next", "next_video", "onevision")

#: Video decoding backends; ``auto`` picks ``pyav`` (same frames, faster).
BACKENDS = ("auto", "pyav", "decord")
DEFAULT_BACKEND = "auto"
AUTO_BACKEND = "pyav"

__all__ = [
    "AUTO_BACKEND",
    "BACKENDS",
    "CLIP_MEAN",
    "CLIP_STD",
    "DEFAULT_BACKEND",
    "DEFAULT_NUM_FRAMES",
    "DEFAULT_PASS_ORDER",
    "DEFAULT_RESIZE_MODE",
    "DEFAULT_SLOWFAST",
    "DEMO_FAMILIES",
    "PASS_ORDERS",
    "RESIZE_MODES",
    "SLOW_POOLS",
]
