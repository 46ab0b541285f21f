"""The language model's input: text embeddings and visual tokens in one buffer.

For a batch of (video, prompt) pairs, each prompt tokenized on both sides of
``<image>`` (LLaVA's rule, :func:`~sfllava_ext.llm.prompts.tokenize_around_image`),
:func:`assemble` allocates the left-padded ``inputs_embeds`` once, gathers the text
embeddings into their positions and lets the pooling kernel write the visual tokens
straight into theirs: no concatenation, no copy of the visual tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..encoder.encoder import VideoEncoder
from ..utils.timing import StageTimer
from ..video import FrameBuffers
from ..video.frames import VideoClip, Yuv420Frames
from .embeddings import embed_text

__all__ = ["PromptItem", "assemble"]


@dataclass(frozen=True)
class PromptItem:
    """One (video, prompt) of a batch, tokenized.

    Attributes:
        frames: its uint8 frames (or planes).
        clip: the clip loaded for it from a path, whose buffer goes back to the pool
            once its frames are normalised; None otherwise.
        before, after: token ids on each side of the visual tokens.
        num_visual: the visual tokens' count.
    """

    frames: torch.Tensor | Yuv420Frames
    clip: VideoClip | None
    before: list[int]
    after: list[int]
    num_visual: int

    @property
    def length(self) -> int:
        return len(self.before) + self.num_visual + len(self.after)


@torch.inference_mode()
def assemble(
    items: list[PromptItem],
    encoder: VideoEncoder,
    embed: nn.Module,
    buffers: FrameBuffers,
    timer: StageTimer,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``inputs_embeds`` (B, L, hidden) and the attention mask (B, L) of a left-padded
    batch; each item's clip goes back to ``buffers`` as soon as its frames are
    normalised."""
    length = max(item.length for item in items)
    shape = (len(items), length, encoder.hidden_size)
    embeds = torch.zeros(shape, dtype=encoder.dtype, device=encoder.device)
    mask = torch.zeros((len(items), length), dtype=torch.long, device=encoder.device)
    for b, item in enumerate(items):
        start = length - item.length  # left padding
        mask[b, start:] = 1
        vis = start + len(item.before)
        embed_text(embed, item.before, embeds[b, start:vis])
        embed_text(embed, item.after, embeds[b, vis + item.num_visual :])
        features = encoder.features(item.frames, timer)
        buffers.release(item.clip)  # its frames are normalised
        encoder.pool(features, timer, out=embeds[b, vis : vis + item.num_visual])
    return embeds, mask
