"""Loads the compiled kernels (sfllava_ext._C) and registers torch.ops.sfllava.

A build made for another torch fails here with a message that says so and how
to rebuild, instead of an undefined-symbol trace from the dynamic loader.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch

REBUILD_HINT = (
    "rebuild it against the installed torch: "
    "pip install --no-build-isolation --force-reinstall --no-deps ."
)


class ExtensionBuildError(ImportError):
    """sfllava_ext._C is missing or was built for another torch."""


def check_torch_version(built_with: str | None, running: str) -> None:
    """Raise ExtensionBuildError when the extension was built against `built_with`
    but `running` is the torch in this process."""
    if built_with is not None and built_with != running:
        raise ExtensionBuildError(
            f"sfllava_ext._C was built against torch {built_with}, but torch {running} "
            f"is installed; {REBUILD_HINT}"
        )


def _built_with() -> str | None:
    try:
        return importlib.import_module("sfllava_ext._built_with").TORCH_VERSION
    except ImportError:
        return None


def load() -> ModuleType:
    built_with = _built_with()
    check_torch_version(built_with, torch.__version__)
    try:
        module = importlib.import_module("sfllava_ext._C")
    except ImportError as exc:
        if "undefined symbol" in str(exc) or "symbol not found" in str(exc):
            raise ExtensionBuildError(
                f"sfllava_ext._C does not match the installed torch {torch.__version__}"
                f" (built against {built_with or 'an unknown version'}): {REBUILD_HINT}"
            ) from exc
        raise ExtensionBuildError(
            f"sfllava_ext._C is not built ({exc}); install the package with "
            "`pip install --no-build-isolation .` after installing torch"
        ) from exc
    check_torch_version(module.build_info()["torch_version"], torch.__version__)
    return module


_C = load()


def build_info() -> dict:
    """How the kernels were built: ``torch_version`` (built against), ``cuda``
    (bool, CUDA kernels compiled in), ``cuda_archs`` and ``openmp``."""
    return dict(_C.build_info())
