"""Whether a path lies inside a folder (:func:`is_inside`), for the places that must
not reach outside one: the service's media dir, an embed run's output folder."""

from __future__ import annotations

import os

__all__ = ["is_inside"]


def is_inside(real: str, root: str) -> bool:
    """Whether ``real`` is ``root`` or lies under it. Both are compared as given:
    resolve them (``os.path.realpath``) first where links matter. An empty ``real``
    (nothing known) is not inside."""
    return bool(real) and os.path.commonpath([real, root]) == root
