"""A session's cached prompt prefixes, by token ids: the pieces :class:`VideoSession`
(:mod:`.session`) decides reuse with.

- :class:`SessionPrompt`: a question's whole prompt, tokenized once (LLaVA's rule), its
  visual positions marked :data:`VISUAL`;
- :func:`fixed_text`: the part of a template that every question shares;
- :class:`Prefix`: that part's ids and its per-layer keys and values;
- :func:`shared_run` and :func:`reusable`: how many positions a prompt may take from a
  prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..llm.kv_cache import KV
from ..llm.prompts import IMAGE_PLACEHOLDER

__all__ = ["VISUAL", "Prefix", "SessionPrompt", "fixed_text", "reusable", "shared_run"]

VISUAL = -1  # the id compared at a visual token's position (no text id is negative)
_PLACEHOLDER = re.compile(r"\{question\}|\{options\}")


@dataclass(frozen=True)
class SessionPrompt:
    """A question's whole prompt about a session's video, tokenized once.

    Attributes:
        template: the template it was built from (its cached prefix's key).
        before, after: the text ids on each side of the visual tokens.
        num_visual: the visual tokens between them.
    """

    template: str
    before: list[int]
    after: list[int]
    num_visual: int

    @property
    def ids(self) -> list[int]:
        """Every position's id, :data:`VISUAL` at the visual tokens'."""
        return [*self.before, *([VISUAL] * self.num_visual), *self.after]

    @property
    def positions(self) -> int:
        """Positions of the whole prompt (what ``usage.prompt_tokens`` counts)."""
        return len(self.before) + self.num_visual + len(self.after)


@dataclass(frozen=True)
class Prefix:
    """A template's cached prefix: its ids (visual positions as :data:`VISUAL`) and their
    per-layer keys and values; ``kv`` is None where reuse is impossible (RoPE)."""

    ids: list[int]
    kv: KV | None

    @property
    def held(self) -> int:
        """Positions whose keys and values are kept."""
        return 0 if not self.kv else int(self.kv[0][0].shape[-2])

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for pair in self.kv or [] for t in pair)


def fixed_text(template: str) -> tuple[str, bool]:
    """The part of ``template`` that every question shares, and whether it holds the
    ``<image>``: up to ``{question}`` (or ``{options}``) after ``<image>``, visual tokens
    included (True); or, for a template whose placeholder comes before ``<image>``, only
    the text before that placeholder (False)."""
    head, tail = template.split(IMAGE_PLACEHOLDER)
    first = _PLACEHOLDER.search(head)
    if first is None:
        cut = _PLACEHOLDER.search(tail)
        return head + IMAGE_PLACEHOLDER + (tail[: cut.start()] if cut else tail), True
    return head[: first.start()], False


def shared_run(a: list[int], b: list[int]) -> int:
    """The length of the longest common start of ``a`` and ``b``."""
    shared = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        shared += 1
    return shared


def reusable(prefix: Prefix, ids: list[int], rope_limit: int | None) -> int:
    """Positions a prompt of ``ids`` takes from ``prefix``: their longest shared run,
    less one when it would cover the whole prompt (at least one position is always
    prefilled); 0 when the prefix holds nothing or dynamic RoPE rules reuse out (a
    prompt past ``rope_limit``)."""
    if prefix.kv is None or (rope_limit is not None and len(ids) > rope_limit):
        return 0
    return min(shared_run(prefix.ids, ids), prefix.held, len(ids) - 1)
