"""Fault injection for tests: one hook, called at named points of the code.

The code calls :func:`point` where a test needs to break it; nothing happens unless a
hook is installed. A test installs one in its own process with :func:`install`, or for
other processes (spawned decode workers, Ray actors, a server run as a subprocess) with
the environment variable ``SFLLAVA_FAULT_HOOK=module:function`` (the module must be
importable there); one installed with :func:`install` comes first. The hook is called
as ``hook(name, **context)`` and may do anything: raise, sleep, wait for an event, kill
its process.

The points (their context in brackets):

    embed.decode   a decode worker takes a video (source: its path, attempt: 0, then 1)
    embed.encode   a Ray encoder actor takes a decoded video (source)
    serve.job      the service's worker starts a job it admitted, before it runs it
                   (kind: "chat" or "tokens", video: the request's Video)

While a hook is installed, ``embed_videos`` leaves every video to its decode workers
(the main process decodes none itself), so that a worker fault always meets its video.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

__all__ = ["ENV", "Hook", "install", "installed", "point"]

ENV = "SFLLAVA_FAULT_HOOK"

Hook = Callable[..., Any]

_state: dict[str, Any] = {"hook": None, "env": ("", None)}


def install(hook: Hook | None) -> None:
    """Installs ``hook`` in this process, before the environment's (None removes it)."""
    _state["hook"] = hook


def installed() -> bool:
    """Whether a hook is installed in this process (by :func:`install` or the
    environment)."""
    return _current() is not None


def point(name: str, **context: Any) -> None:
    """A named point: the hook, if any, is called as ``hook(name, **context)``."""
    hook = _current()
    if hook is not None:
        hook(name, **context)


def _current() -> Hook | None:
    if _state["hook"] is not None:
        return _state["hook"]
    spec = os.environ.get(ENV, "").strip()
    if not spec:
        return None
    known, hook = _state["env"]
    if spec != known:
        module, _, function = spec.partition(":")
        if not module or not function:
            raise ValueError(f"{ENV} must be 'module:function', got {spec!r}")
        hook = getattr(importlib.import_module(module), function)
        _state["env"] = (spec, hook)
    return hook
