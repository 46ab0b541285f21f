"""Generation from assembled input embeddings: the settings every call gets
(:func:`generation_kwargs`), what a generation stops at (:func:`stop_ids`, and the
``finish_reason`` that follows: :func:`finish_reason`), and the clock that splits its
time into prefill (up to the first new token) and the rest (:func:`timed_generate`,
with an optional second streamer, text pieces (:mod:`.streaming`), beside the clock).
:class:`~sfllava_ext.llm.runtime.LanguageModel` is the one caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..utils.timing import StageTimer

__all__ = [
    "FirstTokenClock",
    "finish_reason",
    "generation_kwargs",
    "stop_ids",
    "timed_generate",
]

_RESERVED = frozenset(
    {"inputs_embeds", "input_ids", "attention_mask", "cache", "past_key_values", "streamer"}
)


def stop_ids(tokenizer: Any) -> tuple[int, ...]:
    """The token ids a generation ends at: the tokenizer's EOS and, for a Llama-3
    tokenizer, its end of turn ``<|eot_id|>`` (docs/method.md#family-prompts); EOS first.
    Empty when the tokenizer has neither."""
    found = [] if tokenizer.eos_token_id is None else [int(tokenizer.eos_token_id)]
    end_of_turn = _token_id(tokenizer, "<|eot_id|>")
    if end_of_turn is not None and end_of_turn not in found:
        found.append(end_of_turn)
    return tuple(found)


def finish_reason(ids: Sequence[int], max_new_tokens: int, stops: Sequence[int]) -> str:
    """OpenAI's ``finish_reason`` of a generation's new ids: ``"stop"`` when it ended at
    one of ``stops`` (or before ``max_new_tokens``), ``"length"`` when it ran out."""
    if ids and int(ids[-1]) in stops:
        return "stop"
    return "length" if len(ids) >= max_new_tokens else "stop"


def generation_kwargs(
    tokenizer: Any,
    max_new_tokens: int,
    overrides: dict[str, Any],
    stops: Sequence[int] | None = None,
) -> dict:
    """Greedy decoding of at most ``max_new_tokens`` (published: 256 for open-ended
    answers), the tokenizer's pad id (else its EOS), ending at ``stops`` (by default
    :func:`stop_ids`: Llama-3 also at its end of turn), then the caller's ``overrides``.

    Raises:
        TypeError: ``max_new_tokens`` is not an int.
        ValueError: ``max_new_tokens`` below 1; an override that sfllava_ext sets itself
            (the inputs, the cache, the streamer) or one it cannot serve (beam search,
            several sequences per prompt).
    """
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise TypeError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens}")
    reserved = sorted(set(overrides) & _RESERVED)
    if reserved:
        raise ValueError(f"{', '.join(reserved)}: set by sfllava_ext itself; leave it out")
    for name in ("num_beams", "num_return_sequences"):
        if overrides.get(name, 1) != 1:
            raise ValueError(
                f"{name} must be 1 (greedy or sampled decoding of one sequence), "
                f"got {overrides[name]!r}"
            )
    kwargs: dict[str, Any] = dict(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens)
    if tokenizer.pad_token_id is not None:
        kwargs["pad_token_id"] = tokenizer.pad_token_id
    elif tokenizer.eos_token_id is not None:
        kwargs["pad_token_id"] = tokenizer.eos_token_id
    stops = stop_ids(tokenizer) if stops is None else tuple(stops)
    if len(stops) > 1:  # the model's config names its EOS alone
        kwargs["eos_token_id"] = list(stops)
    kwargs.update(overrides)
    return kwargs


def _token_id(tokenizer: Any, token: str) -> int | None:
    """The id of ``token`` when it is in the vocabulary (not the unknown token)."""
    convert = getattr(tokenizer, "convert_tokens_to_ids", None)
    found = convert(token) if convert is not None else None
    unknown = getattr(tokenizer, "unk_token_id", None)
    return None if not isinstance(found, int) or found == unknown else found


def timed_generate(
    call: Callable[[Any], torch.Tensor], timer: StageTimer, then: Any = None
) -> torch.Tensor:
    """``call(streamer)`` (a ``generate()`` call given its streamer), timed: the stage
    "prefill" ends at the first new token, "generation" takes the rest. ``then``, a
    second streamer, receives every token too. Returns what ``call`` returns."""
    clock = FirstTokenClock(timer, then)
    with timer("prefill+generation"):
        clock.start()
        ids = call(clock)
    clock.split()
    return ids


class FirstTokenClock:
    """A ``generate()`` streamer that splits prefill (up to the first new token)
    from the rest of generation in a :class:`~sfllava_ext.utils.timing.StageTimer`, and
    hands every call on to ``then`` (another streamer) when given.

    Use: ``clock.start()`` just before ``generate(..., streamer=clock)`` inside the
    timer's ``"prefill+generation"`` stage, then ``clock.split()`` after it, which
    replaces that stage by "prefill" and "generation".
    """

    def __init__(self, timer: StageTimer, then: Any = None):
        self._now = time.perf_counter
        self.timer = timer
        self.then = then
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
        if self.then is not None:
            self.then.put(value)

    def end(self) -> None:
        if self.then is not None:
            self.then.end()

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
