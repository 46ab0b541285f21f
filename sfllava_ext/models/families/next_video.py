"""LLaVA-NeXT-Video (``llava_next_video``): LLaVA-NeXT's tower and layer (CLIP-L/14 at
336 px, layer -2, CLS dropped) and a Vicuna language model. Its own video path pools
each frame's features with ``vision_resampler`` (a 2 x 2 average) before the projector;
SF-LLaVA's pathways replace that pooling, after the projector; ``slowfast=
"next_video_pool"`` runs the native path, the resampler hooked in before the projector
(docs/method.md#native-poolings)."""

from __future__ import annotations

from ...constants import DEFAULT_SLOWFAST
from .base import Family

__all__ = ["NEXT_VIDEO"]

# the published default, as for LLaVA-NeXT: the same 24 x 24 grid, 3,680 tokens
NEXT_VIDEO = Family(
    model_type="llava_next_video",
    model_class="LlavaNextVideoForConditionalGeneration",
    default_slowfast=DEFAULT_SLOWFAST,
    pre_projector_pool="next_video_pool",
)
