"""The SlowFast architectures: vLLM's LLaVA-NeXT, NeXT-Video and OneVision models, with
SF-LLaVA's video path (docs/vllm.md).

Each class keeps its vLLM base's language model, vision tower, projector and weight
loading, and replaces the video path:

    uint8 frames (the ``sfllava`` loader's, at the published indices)
      --normalize_frames-->  pixels, Pillow-exact, on the model's device
      --vLLM's vision tower up to the feature layer, the projector-->  (T, N, D)
      --slowfast_pool-->     SF-LLaVA's visual tokens, which fill the placeholders

or precomputed visual tokens (``video_embeds``) as they are. The settings (aggregation,
frames, resize mode) come from the config's ``sfllava`` entry (:mod:`.settings`).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from vllm.model_executor.models.llava_next import LlavaNextForConditionalGeneration
from vllm.model_executor.models.llava_next_video import LlavaNextVideoForConditionalGeneration
from vllm.model_executor.models.llava_onevision import LlavaOnevisionForConditionalGeneration
from vllm.multimodal import MULTIMODAL_REGISTRY

from ..encoder.aggregation import aggregate, parse_aggregation
from ..encoder.encoder import make_normalizer
from ..models.loading import load_image_processor
from .processing import (
    PLACEHOLDERS,
    SlowFastDummyInputsBuilder,
    SlowFastMultiModalProcessor,
    SlowFastProcessingInfo,
)
from .settings import grid_of, settings_of

__all__ = [
    "MICRO_BATCH",
    "SlowFastLlavaNextForConditionalGeneration",
    "SlowFastLlavaNextVideoForConditionalGeneration",
    "SlowFastLlavaOnevisionForConditionalGeneration",
]

#: frames per vision-tower forward: the default of SlowFastLlava.from_pretrained; on
#: the CPU, 16 frames at a time run the demo's tower about 25% faster than 50 at once
MICRO_BATCH = 16


class SlowFastVideoPath:
    """SF-LLaVA's video path for a vLLM LLaVA-style model (put first in the bases)."""

    model_type: ClassVar[str]

    @classmethod
    def get_placeholder_str(cls, modality: str, i: int) -> str | None:
        if modality.startswith("video"):
            return PLACEHOLDERS[cls.model_type]
        raise ValueError(
            f"a SlowFast model takes videos, not {modality}; serve images with the "
            "checkpoint's own architecture"
        )

    def __init__(self, *, vllm_config, prefix: str = "") -> None:
        super().__init__(vllm_config=vllm_config, prefix=prefix)
        config = vllm_config.model_config.hf_config
        settings = settings_of(config)
        self.sfllava_settings = settings
        self.sfllava_aggregation = parse_aggregation(settings.slowfast)
        self.sfllava_grid = grid_of(config)
        size = config.vision_config.image_size
        self.sfllava_normalize = make_normalizer(
            load_image_processor(vllm_config.model_config.model),
            (size, size),
            settings.resize_mode,
            vllm_config.model_config.dtype,
        )

    def video_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels (T, 3, h, w) -> projected features (T, N, D): the tower up to its
        feature layer (the CLS token dropped where the config says so), the projector."""
        kwargs = {"feature_select_strategy": self.config.vision_feature_select_strategy}
        select_layers = getattr(self, "select_layers", None)
        if select_layers is not None:
            kwargs["select_layers"] = select_layers
        return self.multi_modal_projector(self.vision_tower(pixels, **kwargs))

    def video_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (T, H, W, 3) -> SF-LLaVA's visual tokens (num_tokens, D); the
        frames go to the device, are normalised and pass the tower :data:`MICRO_BATCH`
        at a time, as in ``SlowFastLlava`` (the peak memory for frames of any size is
        that of one micro-batch)."""
        param = next(self.multi_modal_projector.parameters())
        features = None
        for start in range(0, frames.shape[0], MICRO_BATCH):
            # the frames reach the device, and are normalised, a micro-batch at a time
            chunk = frames[start : start + MICRO_BATCH].to(param.device)
            part = self.video_features(self.sfllava_normalize(chunk).to(param.dtype))
            if features is None:
                features = part.new_empty((frames.shape[0], *part.shape[1:]))
            features[start : start + part.shape[0]] = part
        return aggregate(features, self.sfllava_aggregation, grid=self.sfllava_grid)

    def embed_multimodal(self, **kwargs: object):
        embeds = kwargs.pop("video_embeds", None)
        frames = kwargs.pop("video_frames", None)
        param = next(self.multi_modal_projector.parameters())
        if embeds is not None:
            items = list(embeds) if isinstance(embeds, (list, tuple)) else list(embeds.unbind(0))
            return [e.to(param.device, param.dtype) for e in items]
        if frames is None:
            return []
        items = list(frames) if isinstance(frames, (list, tuple)) else list(frames.unbind(0))
        with torch.inference_mode():
            return [self.video_tokens(clip) for clip in items]


def _registered(cls):
    return MULTIMODAL_REGISTRY.register_processor(
        SlowFastMultiModalProcessor,
        info=SlowFastProcessingInfo,
        dummy_inputs=SlowFastDummyInputsBuilder,
    )(cls)


@_registered
class SlowFastLlavaNextForConditionalGeneration(
    SlowFastVideoPath, LlavaNextForConditionalGeneration
):
    """LLaVA-NeXT (the paper's model) with a video modality: SF-LLaVA's tokens."""

    model_type = "llava_next"


@_registered
class SlowFastLlavaNextVideoForConditionalGeneration(
    SlowFastVideoPath, LlavaNextVideoForConditionalGeneration
):
    """LLaVA-NeXT-Video with SF-LLaVA's tokens in place of its own pooling."""

    model_type = "llava_next_video"


@_registered
class SlowFastLlavaOnevisionForConditionalGeneration(
    SlowFastVideoPath, LlavaOnevisionForConditionalGeneration
):
    """LLaVA-OneVision with SF-LLaVA's tokens in place of its own pooling."""

    model_type = "llava_onevision"
