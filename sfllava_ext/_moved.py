"""Module paths that moved, kept working: ``import sfllava_ext.model_spec`` and
``from sfllava_ext.prompts import chat_format`` still find their names, in their new
homes. Pickles that name an old path load too (0.1.0's ``VideoClip`` pickles name
``sfllava_ext.yuv_to_rgb.Yuv420Frames``).

An old path is a module made on first import whose attributes are looked up, in order,
in the new homes :data:`MOVED` lists for it: the same objects, not copies. CHANGELOG.md
lists every move; new code imports from the new homes.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any

__all__ = ["MOVED", "install"]

#: old module path -> the modules that now hold its public names, searched in order
MOVED: dict[str, tuple[str, ...]] = {
    "sfllava_ext.demo": (
        "sfllava_ext.models.demo",
        "sfllava_ext.models.demo.tokenizers",
        "sfllava_ext.video.synthetic",
        "sfllava_ext.cli.demo",
    ),
    "sfllava_ext.distributed": ("sfllava_ext.embed.distributed",),
    "sfllava_ext.families": ("sfllava_ext.models.families", "sfllava_ext.encoder.tower"),
    "sfllava_ext.frames": ("sfllava_ext.video.frames",),
    "sfllava_ext.loading": ("sfllava_ext.models.loading",),
    "sfllava_ext.model_spec": ("sfllava_ext.models.spec",),
    "sfllava_ext.preprocess": ("sfllava_ext.encoder.normalize",),
    "sfllava_ext.prompts": ("sfllava_ext.llm.prompts",),
    "sfllava_ext.slowfast": ("sfllava_ext.encoder.aggregation",),
    "sfllava_ext.timing": ("sfllava_ext.utils.timing",),
    "sfllava_ext.yuv_to_rgb": (
        "sfllava_ext.video.frames",
        "sfllava_ext.ops.yuv420_to_rgb",
        "sfllava_ext.video.pyav.swscale",
    ),
}


class _MovedModule(types.ModuleType):
    """An old module path: every attribute comes from the first new home that has it."""

    def __init__(self, name: str, homes: tuple[str, ...]) -> None:
        super().__init__(name, f"moved to {', '.join(homes)}")
        self.__homes = homes

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        for home in self.__homes:
            module = importlib.import_module(home)
            if hasattr(module, attr):
                return getattr(module, attr)
        raise AttributeError(
            f"module {self.__name__!r} has no attribute {attr!r} (it moved to "
            f"{', '.join(self.__homes)})"
        )

    def __dir__(self) -> list[str]:
        names: set[str] = set()
        for home in self.__homes:
            names.update(getattr(importlib.import_module(home), "__all__", ()))
        return sorted(names)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old paths of :data:`MOVED` and makes their forwarding modules."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _MovedModule(spec.name, MOVED[spec.name])

    def exec_module(self, module: types.ModuleType) -> None:
        pass


_FINDER = _Finder()


def install() -> None:
    """Puts the finder first on ``sys.meta_path`` (once), so that a stale folder of an
    old layout (a ``__pycache__`` left by an update) cannot shadow an old path."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
