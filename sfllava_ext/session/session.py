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
   reused positions (:mod:`sfllava_ext.llm.kv_cache`), made under the model's lock just
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

The language model itself is run by the model's runtime
(:class:`~sfllava_ext.llm.runtime.LanguageModel`: tokenizing, the lock, generation); the
ids-level pieces of reuse are in :mod:`.prefix`.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..llm import kv_cache
from ..llm.prompts import build_prompt, parse_choice
from ..llm.streaming import TextStream
from .file import read_tokens, write_tokens
from .info import VideoInfo
from .prefix import VISUAL, Prefix, SessionPrompt, fixed_text, reusable, shared_run

__all__ = ["SessionPrompt", "VideoSession"]


class VideoSession:
    """The visual tokens of one video, and cached prompt prefixes over them.

    Make one with :meth:`SlowFastLlava.session` (decodes and encodes the video) or
    :meth:`load` (a file :meth:`save` wrote: no decode, no encode). Thread-safe: one
    session may serve several threads, which get exactly the serial results.

    Attributes:
        model: the :class:`~sfllava_ext.SlowFastLlava` it belongs to (which makes
            sessions; a session only calls it back, so it imports no facade).
        tokens: ``(num_visual_tokens, hidden)`` in the model's dtype, on its device.
        info: a :class:`~sfllava_ext.session.info.VideoInfo` (``frame_indices``,
            ``total_frames``, ``fps``, ``video`` (path or None), ``sha256``), also
            readable as a mapping; a plain mapping of those names is taken too.

    Raises:
        ValueError: ``tokens`` not ``(N, hidden)`` for the model.
    """

    def __init__(self, model: Any, tokens: torch.Tensor, info: Mapping[str, Any]):
        if tokens.dim() != 2 or tokens.shape[1] != model.hidden_size:
            raise ValueError(
                f"VideoSession: tokens must be (N, {model.hidden_size}), got {list(tokens.shape)}"
            )
        self.model = model
        self.tokens = tokens
        self.info = info if isinstance(info, VideoInfo) else VideoInfo(**dict(info))
        self._prefixes: dict[tuple[int, str], Prefix] = {}
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
            prefixes = list(self._prefixes.values())
        return {
            "tokens": self.tokens.numel() * self.tokens.element_size(),
            "prefixes": sum(p.nbytes for p in prefixes),
        }

    @property
    def cached_templates(self) -> list[str]:
        """The templates whose prefix is cached (one entry per template and tokenizer)."""
        with self._lock:
            return [template for _, template in self._prefixes]

    def clear_prefixes(self) -> None:
        """Frees the cached prompt prefixes (rebuilt on the next question)."""
        with self._lock:
            self._prefixes.clear()

    # ------------------------------------------------------------------ questions

    def tokenize(
        self, question: str, *, prompt: str = "image_seq_v3", options: Sequence[str] | None = None
    ) -> SessionPrompt:
        """A question's whole prompt (``prompt``'s template, with ``options`` for the
        multiple-choice one), tokenized once: :meth:`generate` takes it in place of the
        question, and its ``positions`` are what :meth:`prompt_positions` counts.

        Raises:
            TypeError, PromptError: a question that is not a non-empty str, bad options,
                a bad template. ValueError: no tokenizer.
        """
        return self._tokenized(*self._prompt_text(question, prompt, options))

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
        template, text = self._prompt_text(question, prompt)
        settings = self.model.llm.generation_kwargs(max_new_tokens, generate_kwargs)
        ids = self._generate(self._tokenized(template, text), settings)
        return self.model.llm.decode(ids)

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
        template, text = self._prompt_text(question, "multiple_choice_allvideo_v4", options)
        settings = self.model.llm.generation_kwargs(max_new_tokens, generate_kwargs)
        ids = self._generate(self._tokenized(template, text), settings)
        return parse_choice(self.model.llm.decode(ids), len(options))

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
        settings = self.model.llm.generation_kwargs(max_new_tokens, generate_kwargs)
        embeds, prefix, reuse = self._inputs(self.tokenize(question, prompt=prompt))
        timer = self.model.new_timings()
        return self.model.llm.stream(
            embeds, settings, make_cache=_cache(prefix, reuse), timer=timer
        )

    def generate(
        self,
        question: str | SessionPrompt,
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

        ``question`` may also be what this session's :meth:`tokenize` returned
        (``prompt`` and ``options`` are then its own), so that a caller that counts the
        prompt's positions first tokenizes it once.

        ``on_text``, when given, receives the text as it is generated, piece by piece
        (the pieces joined are :meth:`answer`'s text), on the calling thread; setting
        ``stop`` ends the generation early. This is streaming for a caller that runs
        the model on a thread of its own (a server's worker): :meth:`stream` instead
        generates on a new thread, which on the CPU costs PyTorch's thread pools a wake-up
        per parallel region.

        Raises:
            TypeError, PromptError: as :meth:`answer`.
            ValueError: a bad ``max_new_tokens``; a tokenized prompt made for another
                number of visual tokens (another session's).
        """
        llm = self.model.llm
        if isinstance(question, SessionPrompt):
            if question.num_visual != self.num_visual_tokens:
                raise ValueError(
                    f"generate: the prompt was tokenized for {question.num_visual} visual "
                    f"tokens, this session holds {self.num_visual_tokens}"
                )
            settings = llm.generation_kwargs(max_new_tokens, generate_kwargs)
            asked = question
        else:
            template, text = self._prompt_text(question, prompt, options)
            settings = llm.generation_kwargs(max_new_tokens, generate_kwargs)
            asked = self._tokenized(template, text)
        pieces = llm.pieces(on_text) if on_text is not None else None
        return self._generate(asked, settings, pieces, stop).tolist()

    def next_token_logits(
        self,
        question: str,
        *,
        prompt: str = "image_seq_v3",
        options: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """The language model's logits (vocab,) at the last prompt position, computed
        the way :meth:`answer` prefills (from the cached prefix)."""
        asked = self.tokenize(question, prompt=prompt, options=options)
        embeds, prefix, reuse = self._inputs(asked)
        return self.model.llm.next_token_logits(embeds, make_cache=_cache(prefix, reuse))

    def prompt_positions(
        self, question: str, *, prompt: str = "image_seq_v3", options: Sequence[str] | None = None
    ) -> int:
        """Positions of a question's whole prompt (text tokens and visual tokens), with
        no work for the model: what ``usage.prompt_tokens`` counts."""
        return self.tokenize(question, prompt=prompt, options=options).positions

    def reused_positions(
        self, question: str, *, prompt: str = "image_seq_v3", options: Sequence[str] | None = None
    ) -> tuple[int, int]:
        """(positions taken from the cached prefix, positions of the whole prompt) for
        a question: how much of its prefill a session saves."""
        asked = self.tokenize(question, prompt=prompt, options=options)
        ids = asked.ids
        return reusable(self._prefix(asked.template), ids, self.model.rope_limit), len(ids)

    # ----------------------------------------------------------------------- files

    def save(self, path: str | os.PathLike) -> None:
        """Writes the visual tokens and their metadata (the model's fingerprint, the
        video's frame indices) to a safetensors file; not the KV cache."""
        write_tokens(path, self.tokens, self.model, self.info)

    @classmethod
    def load(cls, path: str | os.PathLike, model: Any) -> VideoSession:
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

    def _prompt_text(
        self, question: str, prompt: str, options: Sequence[str] | None = None
    ) -> tuple[str, str]:
        """(template, the question's whole prompt): checks the template and the question
        (and options), before any tokenizing."""
        template = self.model.prompt_template(prompt)
        return template, build_prompt(template, question, options)

    def _tokenized(self, template: str, text: str) -> SessionPrompt:
        ids = self.model.llm.tokenize(text)
        return SessionPrompt(template, ids.before, ids.after, self.num_visual_tokens)

    def _generate(
        self,
        asked: SessionPrompt,
        settings: dict,
        pieces: Any = None,
        stop: threading.Event | None = None,
    ) -> torch.Tensor:
        key = self._key(asked.template)
        with self._lock:
            known = key in self._prefixes
        if not known:  # the template's first question: its prefill makes the prefix
            return self._generate_and_keep(key, asked, settings, pieces, stop)
        embeds, prefix, reuse = self._inputs(asked)
        timer = self.model.new_timings()
        ids = self.model.llm.generate(
            embeds, settings, make_cache=_cache(prefix, reuse), streamer=pieces, stop=stop,
            timer=timer,
        )  # fmt: skip
        return ids[0]

    def _generate_and_keep(self, key, asked: SessionPrompt, settings, pieces, stop):
        """Generates for a template's first question from a plain, empty cache, and keeps
        the positions its prompt shares with the template's fixed part as the prefix:
        the same keys and values a separate prefill of that part would give (each
        position sees only those before it), without a second prefill. The copy is made
        under the model's lock, as every copy of cached positions is."""
        from transformers import DynamicCache

        fixed = self._fixed(asked.template)[0]
        ids = asked.ids
        shared = min(shared_run(fixed, ids), len(ids) - 1)
        limit = self.model.rope_limit
        keep = shared > 0 and (limit is None or max(len(ids), len(fixed)) <= limit)
        timer = self.model.new_timings()
        llm = self.model.llm
        with llm.lock:  # re-entered by generate: the copy below follows it under the lock
            cache = DynamicCache()  # a plain cache: every position, also on sliding layers
            out = llm.generate(
                self._embeds(asked.before, asked.after), settings, cache=cache,
                streamer=pieces, stop=stop, timer=timer,
            )  # fmt: skip
            kv = None
            if keep:  # else a later question prefills the fixed part itself
                with torch.inference_mode():
                    kv = [
                        (k[:, :, :shared].clone(), v[:, :, :shared].clone())
                        for k, v in kv_cache.prefix_tensors(cache)
                    ]
            del cache
        if kv is not None:
            with self._lock:
                self._prefixes.setdefault(key, Prefix(fixed, kv))
        return out[0]

    def _key(self, template: str) -> tuple[int, str]:
        return (id(self.model.tokenizer), template)

    def _inputs(self, asked: SessionPrompt) -> tuple[torch.Tensor, Prefix, int]:
        """The whole prompt's embeddings (1, L, hidden), the template's cached prefix and
        how many of its positions the prompt reuses (0: prefill all)."""
        embeds = self._embeds(asked.before, asked.after)
        prefix = self._prefix(asked.template)
        return embeds, prefix, reusable(prefix, asked.ids, self.model.rope_limit)

    def _embeds(self, before: list[int], after: list[int] | None) -> torch.Tensor:
        """Embeddings (1, L, hidden) of ``before``, then (unless ``after`` is None) the
        visual tokens and ``after``."""
        m, count = self.model, self.num_visual_tokens
        length = len(before) + (0 if after is None else count + len(after))
        embeds = torch.empty((1, length, m.hidden_size), dtype=m.dtype, device=m.device)
        with torch.inference_mode():
            m.llm.embed_text(before, embeds[0, : len(before)])
            if after is not None:
                embeds[0, len(before) : len(before) + count] = self.tokens
                m.llm.embed_text(after, embeds[0, len(before) + count :])
        return embeds

    def _prefix(self, template: str) -> Prefix:
        """The template's cached prefix, built on first use (one build per template and
        tokenizer, also when several threads ask at once)."""
        key = self._key(template)
        with self._lock:
            prefix = self._prefixes.get(key)
            if prefix is None:
                prefix = self._prefixes[key] = self._build_prefix(template)
        return prefix

    def _build_prefix(self, template: str) -> Prefix:
        """Tokenizes and prefills the template's fixed part (:func:`.prefix.fixed_text`)."""
        ids, (before, after) = self._fixed(template)
        limit = self.model.rope_limit
        if not ids or (limit is not None and len(ids) > limit):
            return Prefix(ids, None)
        return Prefix(ids, self.model.llm.prefill(self._embeds(before, after)))

    def _fixed(self, template: str) -> tuple[list[int], tuple[list[int], list[int] | None]]:
        """The ids of the template's fixed part (visual positions as :data:`VISUAL`),
        and its text ids before and after the visual tokens (``after`` None: the part
        ends before ``<image>``)."""
        text, with_image = fixed_text(template)
        llm = self.model.llm
        if with_image:
            ids = llm.tokenize(text)
            return [*ids.before, *([VISUAL] * self.num_visual_tokens), *ids.after], (
                ids.before,
                ids.after,
            )
        before = llm.tokenize_text(text)
        return list(before), (before, None)


def _cache(prefix: Prefix, reuse: int) -> Callable[[], Any] | None:
    """What makes a fresh cache of the ``reuse`` positions a question takes from
    ``prefix`` (None: nothing reused), called by the runtime under the model's lock so
    that the copies of a prefix exist one at a time."""
    return functools.partial(kv_cache.fresh_cache, prefix.kv, reuse) if reuse else None
