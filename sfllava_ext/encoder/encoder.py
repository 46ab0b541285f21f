"""Frames to visual tokens: normalise, vision tower, projector, slow/fast pooling.

:class:`VideoEncoder` holds the model's parts that turn uint8 frames (or already
normalised pixels) into LLM-ready visual tokens; :class:`~sfllava_ext.SlowFastLlava`
keeps one and calls it for ``encode`` and for the visual part of every prompt.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..utils.timing import StageTimer
from ..video.frames import Yuv420Frames
from ..video.input import frames_to_device
from .aggregation import SlowFastConfig, aggregate, num_visual_tokens, writes_out
from .fingerprint import fingerprint, weights_digest
from .normalize import FrameNormalizer, frame_normalizer
from .tower import PreProjector, TruncatedVisionTower, project_frames

__all__ = ["VideoEncoder", "make_normalizer"]


class VideoEncoder:
    """uint8 frames -> projected features ``(T, N, D)`` -> visual tokens.

    Args:
        tower: the vision tower, run up to its feature layer.
        projector: the multimodal projector (vision hidden -> LLM hidden).
        normalize: uint8 frames -> normalised pixels (a :class:`FrameNormalizer`).
        grid: (H, W) of the tower's token grid.
        hidden_size: the LLM's hidden size D.
        aggregation: the validated aggregation (a :class:`SlowFastConfig` or a
            single-pathway name).
        micro_batch: frames per tower forward.
        device, dtype: the model's.
        pre_projector: a hook run on the tower's features before the projector
            (LLaVA-NeXT-Video's ``vision_resampler`` for its native
            ``next_video_pool``); its frames' tokens are then kept in order.
        config: the model's config, and ``weights``: the modules whose weights the
            tokens depend on (name -> module), for :meth:`fingerprint`.
    """

    def __init__(
        self,
        tower: TruncatedVisionTower,
        projector: nn.Module,
        normalize: FrameNormalizer,
        grid: tuple[int, int],
        hidden_size: int,
        aggregation: str | SlowFastConfig,
        micro_batch: int,
        device: torch.device,
        dtype: torch.dtype,
        pre_projector: PreProjector | None = None,
        config: Any = None,
        weights: dict[str, nn.Module] | None = None,
    ) -> None:
        self.tower = tower
        self.projector = projector
        self.normalize = normalize
        self.grid = grid
        self.hidden_size = hidden_size
        self.aggregation = aggregation
        self.micro_batch = micro_batch
        self.device = device
        self.dtype = dtype
        self.pre_projector = pre_projector
        self.config = config
        self.weights = dict(weights or {})
        self._weights_sha256: str | None = None  # computed on first use
        # the grid of the projected features: the tower's, or the hook's output
        self.feature_grid = grid if pre_projector is None else pre_projector.grid(grid)
        # what pool() runs on them: the aggregation, or, where the hook already pooled
        # before the projector, every token of every frame in order
        self._pooling = (
            (aggregation, grid) if pre_projector is None else ("concat", self.feature_grid)
        )

    @classmethod
    def from_llava(
        cls,
        model: nn.Module,
        image_processor: Any,
        aggregation: str | SlowFastConfig,
        resize_mode: str,
        micro_batch: int,
        pre_projector: PreProjector | None = None,
    ) -> VideoEncoder:
        """The encoder of a LLaVA-style model: its tower up to ``vision_feature_layer``,
        its projector, the grid and sizes of its configs, on the model's device and
        in its dtype; normalisation from ``image_processor`` (or the vision config's
        size with CLIP's mean and std)."""
        config, inner = model.config, model.model
        vc = config.vision_config
        param = next(model.parameters())
        tower = TruncatedVisionTower(
            inner.vision_tower, config.vision_feature_layer, config.vision_feature_select_strategy
        )
        side = vc.image_size // vc.patch_size
        normalize = make_normalizer(
            image_processor, (vc.image_size, vc.image_size), resize_mode, param.dtype
        )
        weights = {
            "vision_tower": inner.vision_tower,
            "multi_modal_projector": inner.multi_modal_projector,
        }
        if pre_projector is not None:  # the resampler: its conv mode has weights
            weights["vision_resampler"] = inner.vision_resampler
        return cls(
            tower,
            inner.multi_modal_projector,
            normalize,
            (side, side),
            config.text_config.hidden_size,
            aggregation,
            micro_batch,
            param.device,
            param.dtype,
            pre_projector,
            config,
            weights,
        )

    def fingerprint(self, num_frames: int) -> dict[str, Any]:
        """What this encoder's visual tokens of a video sampled to ``num_frames`` frames
        depend on (:func:`~sfllava_ext.encoder.fingerprint.fingerprint`); the weights
        digest is computed on the first call.

        Raises:
            ValueError: an encoder made without its model's config.
        """
        if self.config is None:
            raise ValueError("VideoEncoder: made without its model's config, so no fingerprint")
        if self._weights_sha256 is None:
            self._weights_sha256 = weights_digest(self.weights)
        return fingerprint(
            self.config,
            self._weights_sha256,
            self.normalize.settings(),
            str(self.aggregation),
            num_frames,
            self.dtype,
            self.device,
            pre_projector=self.pre_projector is not None,
        )

    def num_tokens(self, num_frames: int) -> int:
        """Visual tokens of ``num_frames`` frames."""
        aggregation, grid = self._pooling
        return num_visual_tokens(num_frames, grid, aggregation)

    @torch.inference_mode()
    def features(self, frames: torch.Tensor | Yuv420Frames, timer: StageTimer) -> torch.Tensor:
        """uint8 frames -> projected features (T, N, D) on the model's device;
        frames cross to the GPU as uint8 (through pinned memory)."""
        frames = frames_to_device(frames, self.device)
        return self._project(lambda a, b: self.normalize(frames[a:b]), frames.shape[0], timer)

    @torch.inference_mode()
    def pixel_features(self, pixel_values: torch.Tensor, timer: StageTimer) -> torch.Tensor:
        """Normalised pixels (T, 3, h, w) -> projected features (T, N, D).

        Raises:
            ValueError: not a (T, 3, h, w) tensor.
            TypeError: not floating point.
        """
        if (
            not isinstance(pixel_values, torch.Tensor)
            or pixel_values.dim() != 4
            or pixel_values.shape[1] != 3
        ):
            raise ValueError(
                "pixel_values must be a (T, 3, h, w) tensor, got "
                f"{getattr(pixel_values, 'shape', type(pixel_values).__name__)}"
            )
        if not pixel_values.is_floating_point():
            raise TypeError(f"pixel_values must be floating point, got {pixel_values.dtype}")
        pixels = pixel_values.to(self.device, self.dtype)
        return self._project(lambda a, b: pixels[a:b], pixels.shape[0], timer)

    def pool(
        self, features: torch.Tensor, timer: StageTimer, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The aggregation of features (T, N, D): ``(num_tokens, D)``, written into
        ``out`` when given."""
        aggregation, grid = self._pooling
        with timer("pooling"):
            if out is not None and not writes_out(aggregation):
                return out.copy_(aggregate(features, aggregation, grid=grid))
            return aggregate(features, aggregation, grid=grid, out=out)

    def _project(self, pixels_of, num_frames: int, timer: StageTimer) -> torch.Tensor:
        """Features (T, N, D) of the pixels ``pixels_of(start, stop)`` returns."""
        features = torch.empty(
            (num_frames, self.feature_grid[0] * self.feature_grid[1], self.hidden_size),
            dtype=self.dtype,
            device=self.device,
        )
        hook = None if self.pre_projector is None else self.pre_projector.module
        return project_frames(
            pixels_of,
            num_frames,
            self.tower,
            self.projector,
            features,
            self.micro_batch,
            timer,
            pre_projector=hook,
        )


def make_normalizer(
    image_processor: Any, size: tuple[int, int], resize_mode: str, dtype: torch.dtype
) -> FrameNormalizer:
    """The frame normalisation of a model: its image processor's settings, or without
    one a ``size`` output with CLIP's mean and std (FrameNormalizer's defaults)."""
    if image_processor is not None:
        return frame_normalizer(image_processor, resize_mode=resize_mode, dtype=dtype)
    return FrameNormalizer(size, resize_mode=resize_mode, dtype=dtype)
