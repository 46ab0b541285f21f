"""SF-LLaVA inside vLLM: a plugin (entry point ``vllm.general_plugins``: ``sfllava``)
that vLLM loads in each of its processes (docs/vllm.md).

    settings.py    the aggregation, frames and resize mode (``--hf-overrides``), and
                   the SlowFast architecture of each family
    loader.py      the ``sfllava`` video loader backend: our decoder, within limits
    connector.py   the ``sfllava`` media connector: media-dir files checked on the
                   descriptor, fetching off
    processing.py  placeholder counts, the frames or precomputed tokens passed on
    model.py       the SlowFast architectures (vLLM's models, our video path)
    templates.py   chat templates of the published prompts, checked against a tokenizer
    client.py      request parts: precomputed tokens from a session file, options
    launch.py      ``sfllava serve --engine vllm``: vLLM's OpenAI server, configured
    guard.py       the Host check, as ASGI middleware for vLLM's server

Importing this package does not import vLLM; :func:`register` does.
"""

from __future__ import annotations

__all__ = ["register"]


def register() -> None:
    """Registers the SlowFast architectures, the ``sfllava`` video loader and media
    connector with vLLM. Called by vLLM in each of its processes."""
    from vllm import ModelRegistry

    from .connector import register_connector
    from .loader import register_loader
    from .settings import ARCHITECTURES

    for name in ARCHITECTURES.values():
        if name not in ModelRegistry.get_supported_archs():
            ModelRegistry.register_model(name, f"sfllava_ext.vllm_plugin.model:{name}")
    register_loader()
    register_connector()
