"""The vision tower run only up to the selected layer, then the projector
(docs/method.md#vision-layer, docs/method.md#projector).

Hugging Face's LLaVA-NeXT asks the tower for every layer's hidden states and
keeps one; here the layers after ``vision_feature_layer`` never run and no list
of hidden states is kept. Frames go through in micro-batches, so memory stays
bounded for long clips.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..utils.timing import null_timer

logger = logging.getLogger(__name__)

__all__ = ["PreProjector", "TruncatedVisionTower", "project_frames"]


@dataclass(frozen=True)
class PreProjector:
    """A module run on the tower's features (B, H * W, C) before the projector,
    pooling the grid by ``stride`` without padding (LLaVA-NeXT-Video's
    ``vision_resampler``, whichever of its average, max or conv modes)."""

    module: Any
    stride: int

    def grid(self, grid: tuple[int, int]) -> tuple[int, int]:
        """The token grid after the module."""
        return (grid[0] // self.stride, grid[1] // self.stride)


class TruncatedVisionTower(nn.Module):
    """``tower(pixels)`` -> the hidden states of layer ``feature_layer`` (the
    published -2: the second to last), with the CLS token dropped under the
    ``default`` strategy. Works for CLIP- and SigLIP-style towers (embeddings,
    optional pre-layernorm, ``encoder.layers``)."""

    def __init__(self, tower: nn.Module, feature_layer: int | list[int], select_strategy: str):
        super().__init__()
        body = getattr(tower, "vision_model", tower)
        if not hasattr(body, "embeddings") or not hasattr(getattr(body, "encoder", None), "layers"):
            raise TypeError(
                f"vision tower {type(tower).__name__} has no embeddings/encoder.layers; "
                "expected a CLIP- or SigLIP-style vision model"
            )
        if select_strategy not in ("default", "full"):
            raise ValueError(
                "vision_feature_select_strategy must be 'default' or 'full', "
                f"got {select_strategy!r}"
            )
        self.embeddings = body.embeddings
        self.pre_layernorm = getattr(body, "pre_layrnorm", None)
        num_layers = len(body.encoder.layers)
        layers = [feature_layer] if isinstance(feature_layer, int) else list(feature_layer)
        # hidden_states[i] of Hugging Face: 0 = embeddings, i = after layer i.
        self.keep = [k if k >= 0 else num_layers + 1 + k for k in layers]
        if any(not 0 <= k <= num_layers for k in self.keep):
            raise ValueError(
                f"vision_feature_layer {feature_layer} is out of range for {num_layers} layers"
            )
        self.layers = body.encoder.layers[: max(self.keep)]
        self.drop_cls = select_strategy == "default"

    @property
    def layers_run(self) -> int:
        return len(self.layers)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) pixels -> (B, N, hidden * len(feature layers))."""
        hidden = self.embeddings(pixel_values)
        if self.pre_layernorm is not None:
            hidden = self.pre_layernorm(hidden)
        picked = [hidden] if 0 in self.keep else []
        for i, layer in enumerate(self.layers, start=1):
            hidden = layer(hidden, None)
            if isinstance(hidden, tuple):  # older transformers return (hidden, ...)
                hidden = hidden[0]
            if i in self.keep:
                picked.append(hidden)
        out = picked[0] if len(picked) == 1 else torch.cat(picked, dim=-1)
        return out[:, 1:] if self.drop_cls else out


def project_frames(
    pixels_of: Callable[[int, int], torch.Tensor],
    num_frames: int,
    tower: TruncatedVisionTower,
    projector: nn.Module,
    out: torch.Tensor,
    micro_batch: int,
    timer=None,
    pre_projector: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Runs frames [0, num_frames) through tower, ``pre_projector`` (if any) and
    projector in micro-batches and writes ``out`` (T, N, D). ``pixels_of(start, stop)``
    returns the normalised pixels of those frames (so they are made per micro-batch
    too)."""
    timer = timer or null_timer()
    starts = range(0, num_frames, micro_batch)
    # A progress bar for long clips, on terminals only (disable=None).
    bar = tqdm(
        starts,
        desc="vision tower",
        unit="batch",
        leave=False,
        disable=True if len(starts) < 8 else None,
    )
    for start in bar:
        stop = min(num_frames, start + micro_batch)
        with timer("normalise"):
            pixels = pixels_of(start, stop)
        with timer("vision tower"):
            hidden = tower(pixels)
        if pre_projector is not None:
            with timer("resampler"):
                hidden = pre_projector(hidden)
        with timer("projector"):
            out[start:stop] = projector(hidden)
    return out
