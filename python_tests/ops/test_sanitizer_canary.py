"""The sanitizer build (setup.py, ``SFLLAVA_SANITIZE=address,undefined``; CI step (f))
reports a planted out-of-bounds read: its test-only op ``_debug_read_past_end`` reads
one float past the end of a tensor from torch's allocator, and a child process that
calls it must die with AddressSanitizer's report pointing at that line. A sanitizer
run whose op tests pass is then known to have been watching.

Skipped where the imported build is not the sanitizer build; with
``SFLLAVA_REQUIRE_SANITIZER=1`` (CI's sanitizer step) that fails instead."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch
from support import PACKAGE_ROOT

import sfllava_ext

if not hasattr(torch.ops.sfllava, "_debug_read_past_end"):
    if os.environ.get("SFLLAVA_REQUIRE_SANITIZER") == "1":
        raise RuntimeError(
            "SFLLAVA_REQUIRE_SANITIZER=1 but the imported sfllava_ext is not the sanitizer "
            f"build ({sfllava_ext.__file__})"
        )
    pytest.skip(
        "needs the sanitizer build (SFLLAVA_SANITIZE=address,undefined, "
        "docs/development.md#sanitizers)",
        allow_module_level=True,
    )


def test_asan_reports_the_planted_read_past_the_end(tmp_path):
    code = (
        "import torch, sfllava_ext\n"
        "torch.ops.sfllava._debug_read_past_end(torch.ones(5))\n"
        "print('no report')\n"
    )
    # Outside the source tree, importing the very package under test; the environment
    # (LD_PRELOAD of the ASan runtime, ASAN_OPTIONS) is the parent's.
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    report = proc.stderr
    assert proc.returncode != 0 and "no report" not in proc.stdout, report
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in report, report
    assert "READ of size 4" in report, report
    # exactly past the end of the 5-float (20-byte) block torch allocated: ASan tracks
    # the uninstrumented allocator's buffers to the byte
    assert re.search(r"0 bytes (to the right of|after) 20-byte region", report), report
    assert "debug_read_past_end_kernel.cpp" in report, report
