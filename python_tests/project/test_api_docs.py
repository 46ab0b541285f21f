"""The API reference (docs/api.md) is generated from the docstrings and current, and
every public function or method that raises documents what it raises."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import textwrap

import pytest
from support import REPO, load_script

make_api = load_script(REPO / "docs" / "make_api.py")


def public_callables():
    for module, name, members in make_api.API:
        obj = getattr(importlib.import_module(module), name)
        yield f"{module}.{name}", obj
        for member in members:
            attr = inspect.getattr_static(obj, member)
            if isinstance(attr, (staticmethod, classmethod)):
                attr = getattr(obj, member)
            yield f"{module}.{name}.{member}", attr


def test_api_reference_is_current():
    """Run ``python docs/make_api.py`` after changing a public docstring."""
    result = subprocess.run(
        [sys.executable, str(REPO / "docs" / "make_api.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_every_public_name_is_in_the_reference():
    import sfllava_ext

    listed = {name for _, name, _ in make_api.API}
    constants = {"CLIP_MEAN", "CLIP_STD", "DEFAULT_SLOWFAST", "__version__", "ops"}
    assert set(sfllava_ext.__all__) - constants <= listed


@pytest.mark.parametrize("title, obj", list(public_callables()), ids=lambda v: str(v)[:60])
def test_docstrings_document_what_they_raise(title, obj):
    doc = inspect.getdoc(obj) or ""
    assert doc.strip(), f"{title} has no docstring"
    if isinstance(obj, property) or inspect.isclass(obj) and issubclass(obj, BaseException):
        return
    target = obj.__init__ if inspect.isclass(obj) and "__init__" in vars(obj) else obj
    target = getattr(target, "__wrapped__", target)
    try:
        source = textwrap.dedent(inspect.getsource(target))
    except (OSError, TypeError):
        return  # a dataclass' generated __init__: its __post_init__ is checked below
    post_init = getattr(obj, "__post_init__", None) if inspect.isclass(obj) else None
    if post_init is not None:
        source += inspect.getsource(post_init)
    body = source.split('"""', 2)[-1] if '"""' in source else source
    if "raise " in body:
        assert "Raises:" in doc or "Raises" in doc, f"{title} raises but documents no Raises"
