"""What the tests share, and nothing the package has: independent float64 references
(reference.py), test videos written with PyAV (videos.py), small models (models.py),
tokenizers trained on the spot (tokenizers.py), Hugging Face references (hf_parity.py),
real servers on free ports (servers.py), a local stand-in for an OpenAI-compatible
judge (judge_server.py), embed outputs (embed_outputs.py), the fault
hook's test side (faults.py) and the static code rules (code_rules.py).

Import it as ``support``: ``python_tests/`` is on ``sys.path`` under pytest (its
conftest.py lives there), and child processes get it through :data:`PYTHONPATH`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import sfllava_ext

__all__ = ["DATA", "PACKAGE_ROOT", "PYTHONPATH", "REPO", "TESTS", "load_benchmark", "load_script"]

#: the checkout (whose sources may be a copy of what is installed)
REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "python_tests"
DATA = TESTS / "data"
#: where the imported package lives, so that child interpreters import the very
#: package under test (not the unbuilt sources of the checkout)
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(sfllava_ext.__file__)))
#: PYTHONPATH for a child process: the package under test, then this support package
PYTHONPATH = os.pathsep.join([PACKAGE_ROOT, str(TESTS)])


def load_script(path: Path) -> ModuleType:
    """A script of the repository (docs/make_api.py, a benchmark) as a module, without
    putting its folder on ``sys.path``."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module named ``name``: registered in ``sys.modules``
    (a script's dataclasses need it), with ``benchmarks/`` on ``sys.path`` while it
    imports ``_common``, as report.py has it."""
    folder = str(REPO / "benchmarks")
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    return module
