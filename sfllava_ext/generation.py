"""Generation from assembled input embeddings, and the clock that splits its time
into prefill (up to the first new token) and the rest."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from .timing import StageTimer

__all__ = ["FirstTokenClock", "generate"]


@torch.inference_mode()
def generate(
    model: nn.Module,
    tokenizer: Any,
    embeds: torch.Tensor,
    mask: torch.Tensor,
    max_new_tokens: int,
    timer: StageTimer,
    **generate_kwargs: Any,
) -> list[str]:
    """Greedy ``model.generate`` (unless ``generate_kwargs`` say otherwise) from
    ``inputs_embeds`` ``(B, L, hidden)`` and ``attention_mask`` ``(B, L)``; the decoded
    new text of each row, stripped. Records "prefill" and "generation" in ``timer``."""
    clock = FirstTokenClock(timer)
    kwargs = dict(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens)
    if tokenizer.pad_token_id is not None:
        kwargs["pad_token_id"] = tokenizer.pad_token_id
    elif tokenizer.eos_token_id is not None:
        kwargs["pad_token_id"] = tokenizer.eos_token_id
    kwargs.update(generate_kwargs)
    with timer("prefill+generation"):
        clock.start()
        ids = model.generate(inputs_embeds=embeds, attention_mask=mask, streamer=clock, **kwargs)
    clock.split()
    return [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]


class FirstTokenClock:
    """A ``generate()`` streamer that splits prefill (up to the first new token)
    from the rest of generation in a :class:`~sfllava_ext.timing.StageTimer`.

    Use: ``clock.start()`` just before ``generate(..., streamer=clock)`` inside the
    timer's ``"prefill+generation"`` stage, then ``clock.split()`` after it, which
    replaces that stage by "prefill" and "generation".
    """

    def __init__(self, timer: StageTimer):
        self._now = time.perf_counter
        self.timer = timer
        self.t0: float | None = None
        self.first: float | None = None
        self._puts = 0

    def start(self) -> None:
        self.t0 = self._now()

    def put(self, value) -> None:
        # generate() first puts the prompt ids (empty with inputs_embeds), then
        # each new token: the second put is the first generated token.
        self._puts += 1
        if self._puts == 2:
            self.first = self._now()

    def end(self) -> None:
        pass

    def split(self) -> None:
        if not self.timer.enabled or self.t0 is None:
            return
        total = self.timer.seconds.pop("prefill+generation", 0.0)
        prefill = (self.first - self.t0) if self.first is not None else total
        self.timer.add("prefill", prefill)
        self.timer.add("generation", max(0.0, total - prefill))

    @property
    def time_to_first_token(self) -> float | None:
        """Seconds from ``start()`` to the first new token (None before it)."""
        return None if self.first is None or self.t0 is None else self.first - self.t0
