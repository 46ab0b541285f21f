"""The plugin's multimodal processing, in vLLM's terms: how many placeholder tokens a
video gets (SF-LLaVA's visual token count), and what the model receives for it — the
uint8 frames as the loader decoded them (normalised on the model's device by
:func:`~sfllava_ext.ops.normalize_frames`), or precomputed visual tokens
(``video_embeds``, from a session file).

One video per prompt, as published. LLaVA-NeXT has no video token, so its video takes
the place of ``<image>``; NeXT-Video and OneVision use ``<video>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature
from vllm.multimodal.inputs import MultiModalFieldConfig
from vllm.multimodal.parse import (
    MultiModalDataParser,
    VideoEmbeddingItems,
    VideoProcessorItems,
)
from vllm.multimodal.processing import (
    BaseDummyInputsBuilder,
    BaseMultiModalProcessor,
    BaseProcessingInfo,
    PromptReplacement,
)

from ..encoder.aggregation import num_visual_tokens, parse_aggregation
from .loader import BACKEND
from .settings import PLACEHOLDERS, PluginSettings, grid_of, settings_of

__all__ = [
    "SlowFastDummyInputsBuilder",
    "SlowFastMultiModalProcessor",
    "SlowFastProcessingInfo",
    "placeholder_token_id",
]


def placeholder_token_id(hf_config: Any) -> int:
    """The token id of the video's placeholder: ``image_token_index`` (LLaVA-NeXT),
    else ``video_token_index``."""
    if hf_config.model_type == "llava_next":
        return int(hf_config.image_token_index)
    return int(hf_config.video_token_index)


def frames_tensor(video: Any) -> torch.Tensor:
    """A video item's frames as a uint8 ``(T, H, W, 3)`` tensor.

    Raises:
        ValueError: not uint8 RGB frames of that shape, named ``video``.
    """
    if isinstance(video, tuple):  # (frames, metadata)
        video = video[0]
    video = getattr(video, "media", video)  # vLLM's MediaWithBytes
    if isinstance(video, list):
        video = np.stack([np.asarray(frame) for frame in video])
    frames = torch.as_tensor(np.asarray(video) if not isinstance(video, torch.Tensor) else video)
    if frames.dtype != torch.uint8 or frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"video must be uint8 RGB frames (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}"
        )
    return frames.contiguous()


class _VideoDataParser(MultiModalDataParser):
    """vLLM's parser, refusing the named-tensor form of ``video_embeds`` (a SlowFast
    model has no named fields)."""

    def _parse_video_data(self, data):
        if isinstance(data, dict) or (
            isinstance(data, list) and data and isinstance(data[0], dict)
        ):
            raise ValueError("video_embeds must be one tensor (num_tokens, hidden), not fields")
        return super()._parse_video_data(data)


class SlowFastProcessingInfo(BaseProcessingInfo):
    """What vLLM asks of a SlowFast model before running it."""

    @cached_property
    def settings(self) -> PluginSettings:
        return settings_of(self.get_hf_config())

    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {"video": 1}

    def get_data_parser(self) -> MultiModalDataParser:
        return _VideoDataParser(
            expected_hidden_size=self._get_expected_hidden_size(),
            allow_missing_mm_embeddings=self.allow_missing_mm_embeddings,
        )

    def get_num_video_tokens(self, num_frames: int) -> int:
        """SF-LLaVA's visual tokens for ``num_frames`` frames."""
        aggregation = parse_aggregation(self.settings.slowfast)
        return num_visual_tokens(num_frames, grid_of(self.get_hf_config()), aggregation)

    def get_mm_max_tokens_per_item(
        self, seq_len: int, mm_counts: Mapping[str, int]
    ) -> Mapping[str, int]:
        return {"video": self.get_num_video_tokens(self.settings.num_frames)}


class SlowFastDummyInputsBuilder(BaseDummyInputsBuilder[SlowFastProcessingInfo]):
    """The video vLLM profiles memory with: ``num_frames`` frames of the tower's size."""

    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        config = self.info.get_hf_config()
        return PLACEHOLDERS[config.model_type] * mm_counts.get("video", 0)

    def get_dummy_mm_data(self, seq_len: int, mm_counts: Mapping[str, int], mm_options=None):
        size = self.info.get_hf_config().vision_config.image_size
        return {
            "video": self._get_dummy_videos(
                width=size,
                height=size,
                num_frames=self.info.settings.num_frames,
                num_videos=mm_counts.get("video", 0),
                overrides=(mm_options or {}).get("video"),
            )
        }


class SlowFastMultiModalProcessor(BaseMultiModalProcessor[SlowFastProcessingInfo]):
    """Frames pass as uint8 (``video_frames``); precomputed tokens as ``video_embeds``;
    the placeholder is repeated once per visual token."""

    def _call_hf_processor(
        self, hf_data: Mapping[str, object], hf_kwargs: Mapping[str, object]
    ) -> BatchFeature:
        videos = hf_data.get("videos") or []
        return BatchFeature({"video_frames": [frames_tensor(video) for video in videos]})

    def _get_mm_fields_config(
        self, hf_inputs: BatchFeature, hf_processor_mm_kwargs: Mapping[str, object]
    ) -> Mapping[str, MultiModalFieldConfig]:
        return {
            "video_frames": MultiModalFieldConfig.batched("video"),
            "video_embeds": MultiModalFieldConfig.batched("video"),
        }

    def _get_prompt_updates(self, mm_items, hf_processor_mm_kwargs, out_mm_kwargs):
        config = self.info.get_hf_config()
        token = placeholder_token_id(config)
        settings = self.info.settings

        def replacement(item_idx: int) -> list[int]:
            videos = mm_items.get_items("video", (VideoEmbeddingItems, VideoProcessorItems))
            if isinstance(videos, VideoEmbeddingItems):
                return [token] * videos.get_feature_size(item_idx)
            num_frames = videos.get_num_frames(item_idx)
            metadata = videos.metadata[item_idx] if isinstance(videos.metadata, list) else None
            if isinstance(metadata, dict) and metadata.get("video_backend") == BACKEND:
                asked = metadata.get("requested_num_frames", num_frames)
                if asked != settings.num_frames:
                    raise ValueError(
                        f"the {BACKEND} loader was asked for {asked} frames but the model is "
                        f"set to {settings.num_frames}: give --media-io-kwargs "
                        f'\'{{"video": {{"num_frames": {settings.num_frames}}}}}\''
                    )
            return [token] * self.info.get_num_video_tokens(num_frames)

        return [PromptReplacement(modality="video", target=[token], replacement=replacement)]
