"""The built extension: build_info, and a clear error for a build made for another torch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from support import PACKAGE_ROOT

import sfllava_ext
from sfllava_ext._extension import ExtensionBuildError, check_torch_version


def test_build_info():
    info = sfllava_ext.build_info()
    assert info["torch_version"] == torch.__version__
    assert isinstance(info["cuda"], bool)
    assert isinstance(info["cuda_archs"], str)
    if info["cuda"]:
        assert info["cuda_archs"]
    assert hasattr(torch.ops.sfllava, "slowfast_pool")
    assert hasattr(torch.ops.sfllava, "slowfast_pool_backward")


def test_version_mismatch_message():
    with pytest.raises(
        ExtensionBuildError,
        match=r"built against torch 2\.0\.0.*torch 2\.99\.0 is installed.*"
        r"pip install --no-build-isolation",
    ):
        check_torch_version("2.0.0", "2.99.0")
    check_torch_version(torch.__version__, torch.__version__)
    assert issubclass(ExtensionBuildError, ImportError)


def test_import_under_another_torch_fails_clearly(tmp_path):
    """A fresh interpreter whose torch reports another version refuses to load the
    kernels with the rebuild hint, instead of crashing on a symbol."""
    code = (
        "import torch; torch.__version__ = '1.99.0'\n"
        "try:\n"
        "    import sfllava_ext\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    # Outside the source tree, importing the very package under test.
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ExtensionBuildError" in proc.stdout
    assert "torch 1.99.0 is installed" in proc.stdout
    assert "--no-build-isolation" in proc.stdout
