"""Token ids to the language model's input embeddings, written in place: what a batch's
assembly (:mod:`.assembly`) and the runtime (:mod:`.runtime`) both use."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["embed_text"]


def embed_text(embed: nn.Module, ids: list[int], out: torch.Tensor) -> None:
    """The embeddings of ``ids`` written into ``out`` (len(ids), hidden)."""
    if not ids:
        return
    index = torch.tensor(ids, dtype=torch.long, device=out.device)
    if type(embed) is nn.Embedding:  # gather straight into place
        torch.index_select(embed.weight, 0, index, out=out)
    else:  # scaled embeddings and the like
        out.copy_(embed(index))
