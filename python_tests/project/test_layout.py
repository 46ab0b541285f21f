"""The house rules of the layout, checked: small modules, one home per name with the
old import paths still working, every constant and the version written once, one
dispatch key per C++ file, and a light ``import sfllava_ext``."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# The checkout's files (the source of what is installed, which may be a copy).
from support import PACKAGE_ROOT, REPO

import sfllava_ext

PACKAGE = REPO / "sfllava_ext"
# Where the imported package lives, so that child interpreters import it.
INSTALLED_ROOT = Path(PACKAGE_ROOT)
MAX_MODULE_LINES = 550


def package_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_is_longer_than_550_lines():
    lengths = {
        str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in package_modules()
    }
    too_long = {name: n for name, n in lengths.items() if n > MAX_MODULE_LINES}
    assert len(lengths) > 10 and not too_long, too_long


@pytest.mark.parametrize(
    "old, new",
    [
        ("sfllava_ext.load_video", "sfllava_ext.video.load.load_video"),
        ("sfllava_ext.video.load_video", "sfllava_ext.video.load.load_video"),
        ("sfllava_ext.video.VideoClip", "sfllava_ext.video.frames.VideoClip"),
        ("sfllava_ext.video.VideoDecodeError", "sfllava_ext.video.frames.VideoDecodeError"),
        ("sfllava_ext.video.FrameBuffers", "sfllava_ext.video.buffers.FrameBuffers"),
        ("sfllava_ext.ops.slowfast_pool", "sfllava_ext.ops.slowfast_pool.slowfast_pool"),
        ("sfllava_ext.ops.normalize_frames", "sfllava_ext.ops.normalize_frames.normalize_frames"),
        ("sfllava_ext.yuv_to_rgb.Yuv420Frames", "sfllava_ext.ops.yuv420_frames.Yuv420Frames"),
        ("sfllava_ext.yuv_to_rgb.yuv420_to_rgb", "sfllava_ext.ops.yuv420_to_rgb.yuv420_to_rgb"),
        ("sfllava_ext.slowfast.SlowFastConfig", "sfllava_ext.encoder.aggregation.SlowFastConfig"),
        ("sfllava_ext.model.NotLlavaNextError", "sfllava_ext.models.loading.NotLlavaNextError"),
        ("sfllava_ext.ops.CLIP_MEAN", "sfllava_ext.constants.CLIP_MEAN"),
        ("sfllava_ext.DEFAULT_SLOWFAST", "sfllava_ext.constants.DEFAULT_SLOWFAST"),
        # the module paths that moved in the layout by stage (sfllava_ext/_moved.py)
        ("sfllava_ext.frames.VideoClip", "sfllava_ext.video.frames.VideoClip"),
        ("sfllava_ext.prompts.chat_format", "sfllava_ext.llm.prompts.chat_format"),
        ("sfllava_ext.model_spec.ModelSpec", "sfllava_ext.models.spec.ModelSpec"),
        ("sfllava_ext.ModelSpec", "sfllava_ext.models.spec.ModelSpec"),
        ("sfllava_ext.frames.Yuv420Frames", "sfllava_ext.ops.yuv420_frames.Yuv420Frames"),
        ("sfllava_ext.video.Yuv420Frames", "sfllava_ext.ops.yuv420_frames.Yuv420Frames"),
        ("sfllava_ext.families.PreProjector", "sfllava_ext.encoder.tower.PreProjector"),
        (
            "sfllava_ext.preprocess.frame_normalizer",
            "sfllava_ext.encoder.normalize.frame_normalizer",
        ),
        ("sfllava_ext.distributed.embed_dataset", "sfllava_ext.embed.distributed.embed_dataset"),
        ("sfllava_ext.demo.demo_parts", "sfllava_ext.models.demo.demo_parts"),
        (
            "sfllava_ext.demo.write_synthetic_video",
            "sfllava_ext.video.synthetic.write_synthetic_video",
        ),
        ("sfllava_ext.families.family_of", "sfllava_ext.models.families.family_of"),
        ("sfllava_ext.loading.load_pretrained", "sfllava_ext.models.loading.load_pretrained"),
        ("sfllava_ext.timing.StageTimer", "sfllava_ext.utils.timing.StageTimer"),
    ],
)
def test_old_import_paths_reach_the_new_homes(old, new):
    def resolve(dotted: str):
        module, _, name = dotted.rpartition(".")
        return getattr(importlib.import_module(module), name)

    assert resolve(old) is resolve(new)


def test_the_version_has_one_source():
    assert importlib.metadata.version("sfllava_ext") == sfllava_ext.__version__
    version_file = (PACKAGE / "_version.py").read_text()
    assert f'__version__ = "{sfllava_ext.__version__}"' in version_file
    for name in ("pyproject.toml", "CMakeLists.txt", "setup.py"):
        text = (REPO / name).read_text()
        assert sfllava_ext.__version__ not in text, f"{name} repeats the version"
        assert "_version" in text or name == "setup.py", f"{name} does not read _version.py"


def _code_literals(tree: ast.AST) -> list[object]:
    """The constants and all-constant tuples/lists of a module's code, docstrings left out."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    found: list[object] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in docstrings:
            found.append(node.value)
        elif isinstance(node, (ast.Tuple, ast.List)) and all(
            isinstance(e, ast.Constant) for e in node.elts
        ):
            found.append(tuple(e.value for e in node.elts))
    return found


def test_each_constant_is_written_once():
    """The method's constants appear as literals in constants.py only: every other
    module imports them."""
    from sfllava_ext import constants

    values = [
        constants.CLIP_MEAN,
        constants.CLIP_STD,
        constants.CLIP_MEAN[0],
        constants.CLIP_STD[0],
        constants.RESIZE_MODES,
        constants.PASS_ORDERS,
        constants.SLOW_POOLS,
        constants.BACKENDS,
        constants.DEFAULT_SLOWFAST,
    ]
    holders: dict[str, list[object]] = {}
    for path in package_modules():
        literals = _code_literals(ast.parse(path.read_text()))
        for value in values:
            if value in literals:
                holders.setdefault(str(path.relative_to(PACKAGE)), []).append(value)
    assert list(holders) == ["constants.py"], holders


def _registrations(path: Path) -> set[str]:
    return set(re.findall(r"TORCH_LIBRARY_IMPL\(\s*sfllava\s*,\s*(\w+)", path.read_text()))


@pytest.mark.parametrize("folder, key", [("cpu", "CPU"), ("cuda", "CUDA")])
def test_each_kernel_folder_registers_one_dispatch_key(folder, key):
    files = sorted((REPO / "csrc" / folder).glob("*.c*"))
    keys = {f.name: _registrations(f) for f in files}
    assert files and all(k <= {key} for k in keys.values()), keys
    assert any(keys.values())
    for other in ("ops", "common"):
        for f in (REPO / "csrc" / other).glob("*"):
            assert not _registrations(f), f"{f} registers a kernel"


def test_import_is_light(tmp_path):
    """``import sfllava_ext`` loads the kernels but no decoder and no transformers;
    ``sfllava_ext.video.frames`` imports no decoder either."""
    code = (
        "import sys, sfllava_ext, sfllava_ext.video.frames; "
        "print(sorted(m for m in ('av', 'decord', 'transformers') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(INSTALLED_ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
