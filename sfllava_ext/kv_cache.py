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
  it builds a new cache from views of the prefix, which ``update`` concatenates onto
  (new tensors), so the shared prefix is never written.

``python_tests/test_session.py`` runs the exact calls below against the installed
release; the supported range is pinned in pyproject.toml.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

__all__ = ["cache_kwarg", "fresh_cache", "generate_from", "prefill", "prefix_tensors"]

KV = list[tuple[torch.Tensor, torch.Tensor]]


def cache_kwarg(model: nn.Module) -> str:
    """``"cache"`` or ``"past_key_values"``: what this release's forward calls it."""
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def prefill(model: nn.Module, embeds: torch.Tensor) -> tuple[KV, torch.Tensor]:
    """Runs ``embeds`` (1, n, hidden) through the language model with a cache and
    returns the cache as per-layer (keys, values) tensors (1, heads, n, head_dim) and the
    logits of the last position (1, vocab)."""
    out = model(inputs_embeds=embeds, use_cache=True, logits_to_keep=1)
    cache = out.get("cache", None)
    if cache is None:
        cache = out.get("past_key_values")
    return prefix_tensors(cache), out.logits[:, -1]


def prefix_tensors(cache: Any) -> KV:
    """The (keys, values) of each layer of a Hugging Face cache."""
    return [(item[0], item[1]) for item in cache]


def fresh_cache(prefix: KV, length: int) -> Any:
    """A new ``DynamicCache`` holding positions ``[0, length)`` of ``prefix``; updating it
    never writes ``prefix``'s tensors."""
    from transformers import DynamicCache

    if not 0 < length <= prefix[0][0].shape[-2]:
        raise ValueError(
            f"fresh_cache: length must be in [1, {prefix[0][0].shape[-2]}], got {length}"
        )
    return DynamicCache(ddp_cache_data=[(k[:, :, :length], v[:, :, :length]) for k, v in prefix])


def generate_from(
    model: nn.Module, embeds: torch.Tensor, cache: Any, **generate_kwargs: Any
) -> torch.Tensor:
    """``model.generate`` from the whole prompt's embeddings (1, L, hidden) and a cache
    of its first ``n < L`` positions: only positions ``[n, L)`` are prefilled. Returns
    the new token ids (1, new)."""
    length = embeds.shape[1]
    cached = cache.get_seq_length() if cache is not None else 0
    if cached >= length:
        raise ValueError(
            f"generate_from: the cache holds {cached} positions of a {length}-position prompt; "
            "at least one position must be left to prefill"
        )
    mask = torch.ones((1, length), dtype=torch.long, device=embeds.device)
    kwargs = dict(generate_kwargs)
    if cache is not None:
        kwargs[cache_kwarg(model)] = cache
    return model.generate(inputs_embeds=embeds, attention_mask=mask, **kwargs)


def logits_from(model: nn.Module, embeds: torch.Tensor, cache: Any) -> torch.Tensor:
    """The next-token logits (1, vocab) after the whole prompt (1, L, hidden), computing
    only the positions the cache does not hold, as :func:`generate_from` prefills them."""
    cached = cache.get_seq_length() if cache is not None else 0
    kwargs = {cache_kwarg(model): cache} if cache is not None else {}
    mask = torch.ones((1, embeds.shape[1]), dtype=torch.long, device=embeds.device)
    out = model(inputs_embeds=embeds[:, cached:], attention_mask=mask, logits_to_keep=1, **kwargs)
    return out.logits[:, -1]
