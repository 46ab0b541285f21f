"""The op tests reach the kernels through torch.ops.sfllava at import time (e.g.
test_fake_kernels.py), so the library is loaded before any of them is collected:
``pytest python_tests/ops`` on its own (CI's sanitizer step) collects as the whole
suite does."""

from __future__ import annotations

import sfllava_ext  # noqa: F401  (loads the kernels: registers torch.ops.sfllava)
