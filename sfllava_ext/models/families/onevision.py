"""LLaVA-OneVision (``llava_onevision``): SigLIP at 384 px, a 27 x 27 grid with no CLS
token (layer -1, strategy ``full``), Qwen2 with ChatML (docs/method.md#families)."""

from __future__ import annotations

from .base import Family

__all__ = ["ONEVISION"]

# 15 slow frames x 364 (the published 1-D max pool over the 729 flattened tokens) +
# 50 fast frames x 16 (4 x 4) = 6,260 tokens, near OneVision's own video budget of
# 32 frames x 196 (14 x 14) + 1 newline = 6,273 (docs/method.md#family-defaults)
ONEVISION = Family(
    model_type="llava_onevision",
    model_class="LlavaOnevisionForConditionalGeneration",
    default_slowfast="slowfast-slow_15frms_spatial_1d_max_pool-fast_4x4",
)
