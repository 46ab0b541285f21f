"""The language model's one owner: :class:`LanguageModel`.

Everything that runs the language model or reads its tokenizer goes through here:
:class:`~sfllava_ext.SlowFastLlava`, :class:`~sfllava_ext.VideoSession` and the service.

- **Tokenizer.** LLaVA's tokenization around ``<image>`` (:meth:`LanguageModel.tokenize`),
  plain text (:meth:`~LanguageModel.tokenize_text`) and decoding
  (:meth:`~LanguageModel.decode`), under the tokenizer's own lock: fast tokenizers are
  not safe to share across threads.
- **Stop set.** What a generation ends at (:attr:`~LanguageModel.stop_ids`: the EOS,
  and Llama-3's ``<|eot_id|>``) and the ``finish_reason`` that follows
  (:meth:`~LanguageModel.finish_reason`), written once in :mod:`.generation`.
- **One call at a time.** :attr:`~LanguageModel.lock` is held around every language-model
  call, and dynamic RoPE is reset before each (its frequencies are module state,
  docs/method.md#rope): :meth:`~LanguageModel.generate`, :meth:`~LanguageModel.stream`,
  :meth:`~LanguageModel.next_token_logits` and :meth:`~LanguageModel.prefill`, each
  over input embeddings, with an optional KV cache (:mod:`.kv_cache`).
- **Prompt templates.** A published prompt name in the model's chat format
  (:meth:`~LanguageModel.template`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..utils.timing import StageTimer, null_timer
from . import kv_cache, prompts
from .embeddings import embed_text
from .generation import finish_reason, generation_kwargs, stop_ids, timed_generate
from .prompts import PromptIds, resolve_template, tokenize_around_image
from .streaming import StopOn, TextPieces, TextStream, stream_generation

__all__ = ["LanguageModel", "context_length"]


class LanguageModel:
    """The language-model side of a LLaVA-style model.

    Args:
        model: the whole model (``model.generate``, ``model.model.language_model``).
        tokenizer: its tokenizer, or None (tokenizing then raises ValueError).
        chat_format: ``chat_format(tokenizer) -> str``, the chat format around the
            published prompts (:data:`~sfllava_ext.llm.prompts.CHAT_FORMATS`), computed
            once per tokenizer; by default :func:`~sfllava_ext.llm.prompts.chat_format`
            of the model's text config.

    Thread-safe. ``tokenizer`` may be replaced; the stop set and the chat format follow.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any = None,
        chat_format: Callable[[Any], str] | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.lock = threading.RLock()
        self.rope_limit = kv_cache.dynamic_rope_limit(model)
        self._chat_format = chat_format or (
            lambda tokenizer: prompts.chat_format(model.config.text_config, tokenizer)
        )
        self._tokenizer_lock = threading.Lock()
        self._per_tokenizer: tuple[Any, tuple[int, ...], str] | None = None

    # ------------------------------------------------------------------ the tokenizer

    def require_tokenizer(self) -> Any:
        """The tokenizer.

        Raises:
            ValueError: there is none.
        """
        if self.tokenizer is None:
            raise ValueError("a tokenizer is needed to answer questions; pass tokenizer=")
        return self.tokenizer

    def tokenize(self, text: str) -> PromptIds:
        """Ids before and after ``<image>`` (LLaVA's rule:
        :func:`~sfllava_ext.llm.prompts.tokenize_around_image`).

        Raises:
            ValueError: no tokenizer. PromptError: not exactly one ``<image>``.
        """
        tokenizer = self.require_tokenizer()
        with self._tokenizer_lock:
            return tokenize_around_image(tokenizer, text)

    def tokenize_text(self, text: str) -> list[int]:
        """The ids of plain text, with the tokenizer's special tokens."""
        tokenizer = self.require_tokenizer()
        with self._tokenizer_lock:
            return list(tokenizer(text).input_ids)

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """New token ids -> text, special tokens skipped, white space stripped."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        tokenizer = self.require_tokenizer()
        with self._tokenizer_lock:
            return tokenizer.decode(ids, skip_special_tokens=True).strip()

    def template(self, prompt: str) -> str:
        """The template ``prompt`` names: a published prompt name, in this model's chat
        format, or a user template with one ``{question}`` and one ``<image>``, as given.

        Raises:
            TypeError: ``prompt`` is not a str. ValueError: no tokenizer.
            PromptError: a user template without its placeholders.
        """
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        return resolve_template(prompt, self._tokenizer_facts()[2])

    # ------------------------------------------------------------------- stopping

    @property
    def stop_ids(self) -> tuple[int, ...]:
        """The token ids a generation ends at (:func:`~.generation.stop_ids`)."""
        return self._tokenizer_facts()[1]

    def finish_reason(self, ids: Sequence[int], max_new_tokens: int) -> str:
        """``"stop"`` for a generation that ended at :attr:`stop_ids` (or before
        ``max_new_tokens``), ``"length"`` for one that ran out."""
        return finish_reason(ids, max_new_tokens, self.stop_ids)

    def generation_kwargs(self, max_new_tokens: int, overrides: dict[str, Any]) -> dict:
        """The checked settings of one generation
        (:func:`~sfllava_ext.llm.generation.generation_kwargs`).

        Raises:
            ValueError: no tokenizer, a bad ``max_new_tokens`` or override.
            TypeError: ``max_new_tokens`` is not an int.
        """
        tokenizer = self.require_tokenizer()
        return generation_kwargs(tokenizer, max_new_tokens, overrides, stops=self.stop_ids)

    def _tokenizer_facts(self) -> tuple[Any, tuple[int, ...], str]:
        """(tokenizer, its stop ids, its chat format), worked out once per tokenizer
        (the chat format reads the whole vocabulary)."""
        tokenizer = self.require_tokenizer()
        facts = self._per_tokenizer
        if facts is None or facts[0] is not tokenizer:
            with self._tokenizer_lock:
                chat = self._chat_format(tokenizer)
                facts = self._per_tokenizer = (tokenizer, stop_ids(tokenizer), chat)
        return facts

    # --------------------------------------------------------------- the model's calls

    def embed_text(self, ids: Sequence[int], out: torch.Tensor) -> None:
        """The input embeddings of ``ids`` written into ``out`` (len(ids), hidden)."""
        embed_text(self.input_embeddings(), list(ids), out)

    def input_embeddings(self) -> nn.Module:
        """The language model's token embedding module."""
        return self.model.model.language_model.get_input_embeddings()

    def generate(
        self,
        embeds: torch.Tensor,
        settings: dict[str, Any],
        *,
        mask: torch.Tensor | None = None,
        cache: Any = None,
        make_cache: Callable[[], Any] | None = None,
        streamer: Any = None,
        stop: threading.Event | None = None,
        timer: StageTimer | None = None,
    ) -> torch.Tensor:
        """``generate()`` from input embeddings (B, L, hidden), one call at a time, dynamic
        RoPE reset first; the new token ids (B, new).

        Args:
            settings: from :meth:`generation_kwargs` (its ``stopping_criteria``, if any,
                run before ``stop``'s).
            mask: the attention mask (B, L) of a left-padded batch; all ones by default.
            cache: a cache of the first ``n < L`` positions (None: every position is
                prefilled); or ``make_cache``, which makes one under the lock, so that
                the copies of a shared prefix exist one at a time.
            streamer: a second streamer that receives every token (text pieces).
            stop: an event that ends the generation once set.
            timer: gets the stages "prefill" (to the first new token) and "generation".
        """
        kwargs = dict(settings)
        if stop is not None:
            from transformers import StoppingCriteriaList

            extra = list(kwargs.pop("stopping_criteria", None) or [])
            kwargs["stopping_criteria"] = StoppingCriteriaList([*extra, StopOn(stop)])
        with self.lock, torch.inference_mode():
            made = make_cache() if make_cache is not None else cache
            return timed_generate(
                lambda clock: kv_cache.generate_from(
                    self.model, embeds, made, mask, streamer=clock, **kwargs
                ),
                timer or null_timer(),
                then=streamer,
            )

    def stream(
        self,
        embeds: torch.Tensor,
        settings: dict[str, Any],
        *,
        mask: torch.Tensor | None = None,
        cache: Any = None,
        make_cache: Callable[[], Any] | None = None,
        timer: StageTimer | None = None,
    ) -> TextStream:
        """:meth:`generate` on a worker thread, its text as it is generated: the pieces
        joined are ``decode`` of the new ids. Closing the stream stops the generation."""

        def run(streamer: TextPieces, stop: threading.Event) -> torch.Tensor:
            return self.generate(
                embeds, settings, mask=mask, cache=cache, make_cache=make_cache,
                streamer=streamer, stop=stop, timer=timer,
            )  # fmt: skip

        return stream_generation(run, self.decode)

    def pieces(self, emit: Callable[[str], None]) -> TextPieces:
        """A streamer for :meth:`generate` that hands ``emit`` the text as it is
        generated, piece by piece (the pieces joined are :meth:`decode`'s text)."""
        return TextPieces(self.decode, emit)

    def next_token_logits(
        self,
        embeds: torch.Tensor,
        cache: Any = None,
        make_cache: Callable[[], Any] | None = None,
    ) -> torch.Tensor:
        """The logits (vocab,) after the whole prompt (1, L, hidden), computing only the
        positions the cache (``cache``, or what ``make_cache`` makes under the lock) does
        not hold, as :meth:`generate` prefills them."""
        with self.lock, torch.inference_mode():
            made = make_cache() if make_cache is not None else cache
            return kv_cache.logits_from(self.model, embeds, made)[0]

    def prefill(self, embeds: torch.Tensor) -> kv_cache.KV:
        """The per-layer keys and values of ``embeds`` (1, n, hidden), every position
        kept (:func:`~sfllava_ext.llm.kv_cache.prefill`)."""
        with self.lock, torch.inference_mode():
            kv, _ = kv_cache.prefill(self.model, embeds)
        return kv


def context_length(text_config: Any) -> int:
    """Positions the language model of ``text_config`` serves: its context, times the
    dynamic RoPE factor when that scaling is on (docs/method.md#rope)."""
    params = dict(getattr(text_config, "rope_parameters", None) or {})
    factor = float(params.get("factor", 1.0)) if params.get("rope_type") == "dynamic" else 1.0
    return int(text_config.max_position_embeddings * factor)
