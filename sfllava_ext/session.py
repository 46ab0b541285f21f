"""Encode once, ask many: :class:`VideoSession`.

``session = sf.session(video)`` decodes and encodes the video once and keeps its visual
tokens. Each question then costs only the language model's work on the tokens that
follow what it shares with a cached prefix:

1. **The cached prefix, per prompt template**, built on the first question that uses the
   template: the prompt up to the end of the visual tokens and of the fixed text after
   them (up to ``{question}``), run once through the language model with a KV cache.
   The open-ended and the multiple-choice prompts differ before ``<image>``, so each has
   its own.
2. **Reuse by token ids.** A question's prompt is tokenized whole (LLaVA's rule: each
   side of ``<image>`` on its own, docs/method.md#tokenization) and compared with the
   prefix position by position, visual tokens included; the longest shared run is
   reused, less one position when it covers the whole prompt (at least one prompt
   token is always prefilled). Comparing ids, not strings, matters: tokenizers merge
   across the boundary (the space before the question, for one).
3. **Never written.** Each question starts from a fresh cache holding a copy of the
   reused positions (:mod:`sfllava_ext.kv_cache`), made under the model's lock just
   before its prefill, so questions can come in any order, and from several threads,
   with one copy alive at a time.
4. **RoPE.** With dynamic RoPE scaling (docs/method.md#rope) the frequencies change
   once a sequence passes the original context, and a fresh prefill of a longer prompt
   uses the new frequencies for every position. A question whose prompt, or the cached
   prefix, is longer than that context is therefore prefilled in full, from the stored
   visual tokens (no decode, no encode): the answer is the fresh call's. The rotary
   modules are reset before every language-model call, fresh or cached, so that no
   answer depends on the length of the call before it.

A template whose ``{question}`` (or ``{options}``) comes before ``<image>`` works too,
but reuses only the text before it: everything from there on (the visual tokens
included) is prefilled for every question. Memory: each template used keeps its
prefix's keys and values (:attr:`VideoSession.held_bytes`; :meth:`clear_prefixes`
frees them).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from . import kv_cache
from .assembly import embed_text
from .generation import generation_kwargs, timed_generate
from .prompts import IMAGE_PLACEHOLDER, build_prompt, parse_choice
from .streaming import StopOn, TextPieces, TextStream, stream_generation
from .tokens_file import read_tokens, write_tokens

if TYPE_CHECKING:
    from .model import SlowFastLlava

__all__ = ["VideoSession"]

_VISUAL = -1  # the id compared at a visual token's position (no text id is negative)
_PLACEHOLDER = re.compile(r"\{question\}|\{options\}")


@dataclass(frozen=True)
class _Prefix:
    """A template's cached prefix: its ids (visual positions as ``_VISUAL``) and their
    per-layer keys and values; ``kv`` is None where reuse is impossible (RoPE)."""

    ids: list[int]
    kv: list | None


class VideoSession:
    """The visual tokens of one video, and cached prompt prefixes over them.

    Make one with :meth:`SlowFastLlava.session` (decodes and encodes the video) or
    :meth:`load` (a file :meth:`save` wrote: no decode, no encode). Thread-safe: one
    session may serve several threads, which get exactly the serial results.

    Attributes:
        model: the :class:`~sfllava_ext.SlowFastLlava` it belongs to.
        tokens: ``(num_visual_tokens, hidden)`` in the model's dtype, on its device.
        info: ``frame_indices``, ``total_frames``, ``fps``, ``video`` (path or None).

    Raises:
        ValueError: ``tokens`` not ``(N, hidden)`` for the model.
    """

    def __init__(self, model: SlowFastLlava, tokens: torch.Tensor, info: dict[str, Any]):
        if tokens.dim() != 2 or tokens.shape[1] != model.hidden_size:
            raise ValueError(
                f"VideoSession: tokens must be (N, {model.hidden_size}), got {list(tokens.shape)}"
            )
        self.model = model
        self.tokens = tokens
        self.info = dict(info)
        self._prefixes: dict[tuple[int, str], _Prefix] = {}
        self._lock = threading.Lock()

    @property
    def num_visual_tokens(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def held_bytes(self) -> dict[str, int]:
        """Memory the session holds: ``tokens`` (the visual tokens) and ``prefixes``
        (the cached keys and values of every template used so far). A question adds a
        transient copy of one prefix's keys and values while it runs."""
        with self._lock:
            kv = [t for p in self._prefixes.values() if p.kv for pair in p.kv for t in pair]
        return {
            "tokens": self.tokens.numel() * self.tokens.element_size(),
            "prefixes": sum(t.numel() * t.element_size() for t in kv),
        }

    def clear_prefixes(self) -> None:
        """Frees the cached prompt prefixes (rebuilt on the next question)."""
        with self._lock:
            self._prefixes.clear()

    # ------------------------------------------------------------------ questions

    def answer(
        self,
        question: str,
        *,
        prompt: str = "image_seq_v3",
        max_new_tokens: int = 256,
        **generate_kwargs: Any,
    ) -> str:
        """The answer ``sf.answer(video, question, ...)`` gives, from the cached prefix.

        Raises:
            TypeError, PromptError: a question that is not a non-empty str, a bad
                template. ValueError: no tokenizer, a bad ``max_new_tokens``.
        """
        template = self._template(prompt)
        text = build_prompt(template, question)
        return self.model._decode(self._generate(template, text, max_new_tokens, generate_kwargs))

    def choose(
        self,
        question: str,
        options: Sequence[str],
        *,
        max_new_tokens: int = 16,
        **generate_kwargs: Any,
    ) -> str | None:
        """The option letter ``sf.choose(video, question, options)`` gives, from the
        multiple-choice prompt's cached prefix.

        Raises:
            PromptError: fewer than two options, more than 26, an empty option.
        """
        template = self._template("multiple_choice_allvideo_v4")
        text = build_prompt(template, question, options)
        ids = self._generate(template, text, max_new_tokens, generate_kwargs)
        generated = self.model._decode(ids)
        return parse_choice(generated, len(options))

    def stream(
        self,
        question: str,
        *,
        prompt: str = "image_seq_v3",
        max_new_tokens: int = 256,
        **generate_kwargs: Any,
    ) -> TextStream:
        """:meth:`answer`'s text as it is generated, piece by piece; the pieces joined
        are :meth:`answer`'s text. Bad arguments raise here, before any piece; closing
        the iterator early stops the generation."""
        kwargs = generation_kwargs(self.model._require_tokenizer(), max_new_tokens, generate_kwargs)
        template = self._template(prompt)
        embeds, prefix, reuse = self._inputs(template, build_prompt(template, question))
        timer = self.model._new_timings()

        def run(streamer, stopping):
            extra = list(kwargs.pop("stopping_criteria", None) or [])
            with self.model._lm_lock, torch.inference_mode():
                cache = self._cache(prefix, reuse)  # made under the lock: one copy at a time
                return timed_generate(
                    lambda clock: kv_cache.generate_from(
                        self.model.model,
                        embeds,
                        cache,
                        streamer=clock,
                        stopping_criteria=type(stopping)([*extra, *stopping]),
                        **kwargs,
                    ),
                    timer,
                    then=streamer,
                )

        return stream_generation(run, self.model._decode)

    def generate(
        self,
        question: str,
        *,
        prompt: str = "image_seq_v3",
        options: Sequence[str] | None = None,
        max_new_tokens: int = 256,
        on_text: Callable[[str], None] | None = None,
        stop: threading.Event | None = None,
        **generate_kwargs: Any,
    ) -> list[int]:
        """The new token ids that :meth:`answer` (or, with ``options`` and the
        multiple-choice prompt, :meth:`choose`) decodes, generated on the calling thread.

        ``on_text``, when given, receives the text as it is generated, piece by piece
        (the pieces joined are :meth:`answer`'s text), on the calling thread; setting
        ``stop`` ends the generation early. This is streaming for a caller that runs
        the model on a thread of its own (a server's worker): :meth:`stream` instead
        generates on a new thread, which on the CPU costs PyTorch's thread pools a wake-up
        per parallel region.
        """
        template = self._template(prompt)
        text = build_prompt(template, question, options)
        ids = self._generate(template, text, max_new_tokens, generate_kwargs, on_text, stop)
        return ids.tolist()

    def next_token_logits(
        self,
        question: str,
        *,
        prompt: str = "image_seq_v3",
        options: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """The language model's logits (vocab,) at the last prompt position, computed
        the way :meth:`answer` prefills (from the cached prefix)."""
        template = self._template(prompt)
        embeds, prefix, reuse = self._inputs(template, build_prompt(template, question, options))
        with self.model._lm_lock, torch.inference_mode():
            return kv_cache.logits_from(self.model.model, embeds, self._cache(prefix, reuse))[0]

    def prompt_positions(
        self, question: str, *, prompt: str = "image_seq_v3", options: Sequence[str] | None = None
    ) -> int:
        """Positions of a question's whole prompt (text tokens and visual tokens), with
        no work for the model: what ``usage.prompt_tokens`` counts."""
        before, after = self.model._tokenize(
            build_prompt(self._template(prompt), question, options)
        )
        return len(before) + self.num_visual_tokens + len(after)

    def reused_positions(
        self, question: str, *, prompt: str = "image_seq_v3", options: Sequence[str] | None = None
    ) -> tuple[int, int]:
        """(positions taken from the cached prefix, positions of the whole prompt) for
        a question: how much of its prefill a session saves."""
        template = self._template(prompt)
        ids, _ = self._ids_and_embeds(build_prompt(template, question, options))
        return self._reuse(self._prefix(template), ids), len(ids)

    # ----------------------------------------------------------------------- files

    def save(self, path: str | os.PathLike) -> None:
        """Writes the visual tokens and their metadata (the model's fingerprint, the
        video's frame indices) to a safetensors file; not the KV cache."""
        write_tokens(path, self.tokens, self.model, self.info)

    @classmethod
    def load(cls, path: str | os.PathLike, model: SlowFastLlava) -> VideoSession:
        """The session of a file :meth:`save` (or ``sfllava embed``) wrote, for
        ``model``, without decoding or encoding.

        Raises:
            FileNotFoundError: no such file.
            SessionFileError: not a session file, or made by another model or other
                settings (the message says what differs).
        """
        tokens, info = read_tokens(path, model)
        return cls(model, tokens, info)

    # ------------------------------------------------------------------- internals

    def _template(self, prompt: str) -> str:
        return self.model.prompt_template(prompt)

    def _generate(
        self,
        template: str,
        text: str,
        max_new_tokens: int,
        overrides: dict,
        on_text: Callable[[str], None] | None = None,
        stop: threading.Event | None = None,
    ) -> torch.Tensor:
        kwargs = generation_kwargs(self.model._require_tokenizer(), max_new_tokens, overrides)
        pieces = TextPieces(self.model._decode, on_text) if on_text is not None else None
        if stop is not None:
            extra = list(kwargs.pop("stopping_criteria", None) or [])
            from transformers import StoppingCriteriaList

            kwargs["stopping_criteria"] = StoppingCriteriaList([*extra, StopOn(stop)])
        key = (id(self.model.tokenizer), template)
        with self._lock:
            known = key in self._prefixes
        if not known:  # the template's first question: its prefill makes the prefix
            return self._generate_and_keep(key, template, text, kwargs, pieces)
        embeds, prefix, reuse = self._inputs(template, text)
        timer = self.model._new_timings()
        with self.model._lm_lock, torch.inference_mode():
            cache = self._cache(prefix, reuse)  # made under the lock: one copy at a time
            ids = timed_generate(
                lambda clock: kv_cache.generate_from(
                    self.model.model, embeds, cache, streamer=clock, **kwargs
                ),
                timer,
                then=pieces,
            )
        return ids[0]

    def _generate_and_keep(self, key, template: str, text: str, kwargs: dict, pieces):
        """Generates for a template's first question from a plain, empty cache, and keeps
        the positions its prompt shares with the template's fixed part as the prefix:
        the same keys and values a separate prefill of that part would give (each
        position sees only those before it), without a second prefill."""
        from transformers import DynamicCache

        fixed, _ = self._fixed(template, embed=False)
        ids, embeds = self._ids_and_embeds(text)
        shared = 0
        for a, b in zip(fixed, ids, strict=False):
            if a != b:
                break
            shared += 1
        shared = min(shared, len(ids) - 1)
        limit = self.model.rope_limit
        keep = shared > 0 and (limit is None or max(len(ids), len(fixed)) <= limit)
        timer = self.model._new_timings()
        with self.model._lm_lock, torch.inference_mode():
            cache = DynamicCache()
            out = timed_generate(
                lambda clock: kv_cache.generate_from(
                    self.model.model, embeds, cache, streamer=clock, **kwargs
                ),
                timer,
                then=pieces,
            )
            kv = (
                [
                    (k[:, :, :shared].clone(), v[:, :, :shared].clone())
                    for k, v in kv_cache.prefix_tensors(cache)
                ]
                if keep
                else None
            )
        if kv is not None:  # else a later question prefills the fixed part itself
            with self._lock:
                self._prefixes.setdefault(key, _Prefix(fixed, kv))
        return out[0]

    def _inputs(self, template: str, text: str) -> tuple[torch.Tensor, _Prefix, int]:
        """The whole prompt's embeddings (1, L, hidden), the template's cached prefix and
        how many of its positions the prompt reuses (0: prefill all)."""
        ids, embeds = self._ids_and_embeds(text)
        prefix = self._prefix(template)
        return embeds, prefix, self._reuse(prefix, ids)

    @staticmethod
    def _cache(prefix: _Prefix, reuse: int) -> Any:
        """A fresh cache of the reused positions (None: nothing reused). Call it under
        the model's lock, so that the copies of a prefix exist one at a time."""
        return kv_cache.fresh_cache(prefix.kv, reuse) if reuse else None

    def _ids_and_embeds(self, text: str) -> tuple[list[int], torch.Tensor]:
        before, after = self.model._tokenize(text)
        ids = [*before, *([_VISUAL] * self.num_visual_tokens), *after]
        m = self.model
        embeds = torch.empty((1, len(ids), m.hidden_size), dtype=m.dtype, device=m.device)
        embed = m.language_model.get_input_embeddings()
        with torch.inference_mode():
            embed_text(embed, before, embeds[0, : len(before)])
            embeds[0, len(before) : len(before) + self.num_visual_tokens] = self.tokens
            embed_text(embed, after, embeds[0, len(before) + self.num_visual_tokens :])
        return ids, embeds

    def _reuse(self, prefix: _Prefix, ids: list[int]) -> int:
        """Positions to take from the prefix: their longest shared run, less one when it
        would cover the whole prompt; 0 when RoPE scaling rules reuse out."""
        limit = self.model.rope_limit
        if prefix.kv is None or (limit is not None and len(ids) > limit):
            return 0
        shared = 0
        for a, b in zip(prefix.ids, ids, strict=False):
            if a != b:
                break
            shared += 1
        held = prefix.kv[0][0].shape[-2]
        return min(shared, held, len(ids) - 1)

    def _prefix(self, template: str) -> _Prefix:
        """The template's cached prefix, built on first use (one build per template and
        tokenizer, also when several threads ask at once)."""
        key = (id(self.model.tokenizer), template)
        with self._lock:
            prefix = self._prefixes.get(key)
            if prefix is None:
                prefix = self._prefixes[key] = self._build_prefix(template)
        return prefix

    def _build_prefix(self, template: str) -> _Prefix:
        """Tokenizes and prefills the template's fixed part (:meth:`_fixed`)."""
        ids, embeds = self._fixed(template)
        limit = self.model.rope_limit
        if not ids or (limit is not None and len(ids) > limit):
            return _Prefix(ids, None)
        with self.model._lm_lock, torch.inference_mode():
            kv, _ = kv_cache.prefill(self.model.model, embeds)
        return _Prefix(ids, kv)

    def _fixed(self, template: str, embed: bool = True) -> tuple[list[int], torch.Tensor | None]:
        """The ids (and embeddings) of the template's fixed part: up to ``{question}``
        after ``<image>`` (visual tokens included), or the text before it."""
        head, tail = template.split(IMAGE_PLACEHOLDER)
        if not _PLACEHOLDER.search(head):
            cut = _PLACEHOLDER.search(tail)
            fixed = head + IMAGE_PLACEHOLDER + (tail[: cut.start()] if cut else tail)
            if not embed:
                before, after = self.model._tokenize(fixed)
                return [*before, *([_VISUAL] * self.num_visual_tokens), *after], None
            return self._ids_and_embeds(fixed)
        # the question (or options) come before <image>: only the text before it
        ids = list(self.model._tokenize_text(head[: _PLACEHOLDER.search(head).start()]))
        if not embed:
            return ids, None
        m = self.model
        embeds = torch.empty((1, len(ids), m.hidden_size), dtype=m.dtype, device=m.device)
        with torch.inference_mode():
            embed_text(m.language_model.get_input_embeddings(), ids, embeds[0])
        return ids, embeds
