"""The language model's KV cache, as sessions use it: prefill a prefix once, then start
every question from a fresh cache holding the first ``n`` positions of that prefix.

Every call into Hugging Face's cache and ``generate`` API that sessions make is here,
because that API moves between transformers 5 releases:

- the keyword is ``cache`` in newer releases and ``past_key_values`` in older ones
  (:func:`cache_kwarg` reads which from the model's own signature);
- ``generate(inputs_embeds=..., cache=...)`` takes the **whole** prompt's embeddings
  and slices off the ``cache.get_seq_length()`` positions the cache holds; with a cache
  that covers the whole prompt it would slice nothing and recompute everything, so a
  session always leaves at least one prompt position uncached (:func:`generate_from`
  refuses otherwise);
- ``DynamicCache.crop`` changed its argument's meaning; :func:`fresh_cache` never crops:
  it builds a new plain cache holding a copy of the prefix's first positions (its
  layers concatenate), so the shared prefix is never written. The prefill uses a plain
  cache too: a model's default cache keeps only a sliding window of positions on
  sliding-window layers, and a session needs all of them;
- dynamic RoPE keeps its frequencies as module state, grown by one call and reset only
  by a later, shorter one: :func:`reset_dynamic_rope` puts them back before every
  language-model call, so that no call's result depends on the call before it.

``python_tests/session/test_session.py`` runs the exact calls below against the installed
release; the supported range is pinned in pyproject.toml.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

__all__ = [
    "cache_kwarg",
    "dynamic_rope_limit",
    "fresh_cache",
    "generate_from",
    "logits_from",
    "prefill",
    "prefix_tensors",
    "reset_dynamic_rope",
]

KV = list[tuple[torch.Tensor, torch.Tensor]]


def cache_kwarg(model: nn.Module) -> str:
    """``"cache"`` or ``"past_key_values"``: what this release's forward calls it."""
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def prefill(model: nn.Module, embeds: torch.Tensor) -> tuple[KV, torch.Tensor]:
    """Runs ``embeds`` (1, n, hidden) through the language model with a cache and
    returns the cache as per-layer (keys, values) tensors (1, heads, n, head_dim) and the
    logits of the last position (1, vocab)."""
    from transformers import DynamicCache

    plain = {cache_kwarg(model): DynamicCache()}  # every position, also on sliding layers
    reset_dynamic_rope(model)
    out = model(inputs_embeds=embeds, use_cache=True, logits_to_keep=1, **plain)
    cache = out.get("cache", None)
    if cache is None:
        cache = out.get("past_key_values")
    return prefix_tensors(cache), out.logits[:, -1]


def prefix_tensors(cache: Any) -> KV:
    """The (keys, values) of each layer of a Hugging Face cache."""
    return [(item[0], item[1]) for item in cache]


def fresh_cache(prefix: KV, length: int) -> Any:
    """A new plain ``DynamicCache`` holding a copy of positions ``[0, length)`` of
    ``prefix`` (its layers concatenate); updating it never writes ``prefix``'s tensors."""
    from transformers import DynamicCache

    if not 0 < length <= prefix[0][0].shape[-2]:
        raise ValueError(
            f"fresh_cache: length must be in [1, {prefix[0][0].shape[-2]}], got {length}"
        )
    return DynamicCache(ddp_cache_data=[(k[:, :, :length], v[:, :, :length]) for k, v in prefix])


def generate_from(
    model: nn.Module,
    embeds: torch.Tensor,
    cache: Any,
    mask: torch.Tensor | None = None,
    **generate_kwargs: Any,
) -> torch.Tensor:
    """``model.generate`` from the whole prompt's embeddings (B, L, hidden) and a cache
    of its first ``n < L`` positions (or None: every position is prefilled): only
    positions ``[n, L)`` are prefilled. ``mask``: the attention mask (B, L) of a
    left-padded batch; all ones by default. Returns the new token ids (B, new)."""
    length = embeds.shape[1]
    cached = cache.get_seq_length() if cache is not None else 0
    if cached >= length:
        raise ValueError(
            f"generate_from: the cache holds {cached} positions of a {length}-position prompt; "
            "at least one position must be left to prefill"
        )
    if mask is None:
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
    kwargs = dict(generate_kwargs)
    if cache is not None:
        kwargs[cache_kwarg(model)] = cache
    reset_dynamic_rope(model)
    return model.generate(inputs_embeds=embeds, attention_mask=mask, **kwargs)


def logits_from(model: nn.Module, embeds: torch.Tensor, cache: Any) -> torch.Tensor:
    """The next-token logits (1, vocab) after the whole prompt (1, L, hidden), computing
    only the positions the cache does not hold, as :func:`generate_from` prefills them."""
    cached = cache.get_seq_length() if cache is not None else 0
    kwargs = {cache_kwarg(model): cache} if cache is not None else {}
    mask = torch.ones((1, embeds.shape[1]), dtype=torch.long, device=embeds.device)
    reset_dynamic_rope(model)
    out = model(inputs_embeds=embeds[:, cached:], attention_mask=mask, logits_to_keep=1, **kwargs)
    return out.logits[:, -1]


def _dynamic_rope_modules(model: nn.Module) -> list[nn.Module]:
    return [
        m
        for m in model.modules()
        if isinstance(getattr(m, "rope_type", None), str)
        and "dynamic" in m.rope_type
        and hasattr(m, "original_inv_freq")
        and hasattr(m, "original_max_seq_len")
    ]


def dynamic_rope_limit(model: nn.Module) -> int | None:
    """The original context of a model's dynamic RoPE (past it, the frequencies change
    with the length; docs/method.md#rope), as the rotary module itself holds it; None
    when no module scales dynamically."""
    modules = _dynamic_rope_modules(model)
    return min(int(m.original_max_seq_len) for m in modules) if modules else None


def reset_dynamic_rope(model: nn.Module) -> None:
    """Puts every dynamic-RoPE module back to its original frequencies, as a fresh
    model has them. Call it, under the model's lock, before each language-model call."""
    for module in _dynamic_rope_modules(model):
        freq = module.original_inv_freq.to(module.inv_freq.device)
        module.register_buffer("inv_freq", freq, persistent=False)
        module.max_seq_len_cached = module.original_max_seq_len
