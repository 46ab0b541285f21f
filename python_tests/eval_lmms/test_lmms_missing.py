"""Without lmms-eval, the adapter's import says what to install (main suite: lmms-eval's
absence is simulated where it is installed)."""

from __future__ import annotations

import importlib
import sys

import pytest


def test_import_without_lmms_eval_names_the_fix(monkeypatch):
    for name in [n for n in sys.modules if n == "lmms_eval" or n.startswith("lmms_eval.")]:
        monkeypatch.setitem(sys.modules, name, None)  # None: "import ... halted"
    monkeypatch.setitem(sys.modules, "lmms_eval", None)
    monkeypatch.delitem(sys.modules, "sfllava_ext.eval.lmms_model", raising=False)
    with pytest.raises(ImportError) as caught:
        importlib.import_module("sfllava_ext.eval.lmms_model")
    message = str(caught.value)
    assert "lmms-eval" in message
    assert "pip install --no-deps lmms-eval==0.7.3" in message
    assert "docs/lmms_eval.md" in message
    assert "sfllava_ext.eval.lmms_model" not in sys.modules
