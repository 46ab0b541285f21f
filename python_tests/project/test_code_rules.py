"""The layering rules, read from the source (support/code_rules.py): no module uses
another module's private names, no import cycle (function-level and ``TYPE_CHECKING``
imports count), and the top of the package keeps the facade and its plumbing only.
The checker itself is checked on a small package with each kind of use planted."""

from __future__ import annotations

import textwrap

from support import REPO, code_rules

PACKAGE = REPO / "sfllava_ext"
#: the plain modules at the top of the package: the public facade and its plumbing
TOP_LEVEL = {
    "__init__.py",  # the public names
    "_version.py",  # the version, written once
    "_extension.py",  # loads the kernels
    "_moved.py",  # the module paths that moved, kept working
    "constants.py",  # every fixed choice and default, written once
    "model.py",  # SlowFastLlava, the facade
}
# a private module's own unit test may import it
TESTS_OF_PRIVATE_MODULES = {"tests.project.test_build": "sfllava_ext._extension"}


def test_no_module_of_the_package_uses_another_modules_private_names():
    assert code_rules.private_uses(PACKAGE) == []


def test_tests_and_benchmarks_use_no_private_name_of_the_package():
    extra = {
        "tests." + ".".join(p.relative_to(REPO / "python_tests").with_suffix("").parts): p
        for p in (REPO / "python_tests").rglob("*.py")
    }
    extra.update({f"benchmarks.{p.stem}": p for p in (REPO / "benchmarks").rglob("*.py")})
    uses = [
        use
        for use in code_rules.private_uses(PACKAGE, extra)
        if not use.what.endswith(TESTS_OF_PRIVATE_MODULES.get(use.module, "\0"))
    ]
    assert uses == []


def test_the_package_has_no_import_cycle():
    assert code_rules.import_cycles(PACKAGE) == []


def test_the_top_level_holds_the_facade_and_plumbing_only():
    plain = {p.name for p in PACKAGE.glob("*.py")} - {"_built_with.py"}  # written by the build
    assert plain == TOP_LEVEL and len(plain) <= 8


def _plant(root, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_checker_finds_each_kind_of_private_use(tmp_path):
    _plant(tmp_path / "pkg", {
        "__init__.py": "",
        "a.py": """
            _TABLE = 1
            class A:
                _kind = "a"
                def __init__(self):
                    self._state = 0
                def _helper(self):
                    return self._state
        """,
        "b.py": """
            from .a import A, _TABLE
            from ._hidden import thing
            def use(a: A, other):
                a._helper()
                other._state = 2
                getattr(a, "_kind")
                a._unknown = 3
                return a._state
        """,
        "_hidden.py": "thing = 1\n",
        "sub/__init__.py": "",
        "sub/c.py": """
            from .._hidden import thing
            class C:
                def __init__(self):
                    self._mine = 1
                def same(self, other: "C"):
                    return other._mine
        """,
    })  # fmt: skip
    found = sorted((u.module, u.what) for u in code_rules.private_uses(tmp_path / "pkg"))
    assert found == [
        ("pkg.b", "imports _TABLE from pkg.a"),
        ("pkg.b", "reads ._helper"),
        ("pkg.b", "reads ._kind"),
        ("pkg.b", "reads ._state"),
        ("pkg.b", "sets ._state"),
        ("pkg.b", "sets ._unknown"),
    ]  # pkg.b may import pkg._hidden (its own package), pkg.sub.c too; C reads its own


def test_the_checker_finds_cycles_hidden_in_functions_type_checking_and_package_inits(
    tmp_path,
):
    _plant(tmp_path / "pkg", {
        "__init__.py": "from . import c\n",  # the root's __init__ runs on every import
        "a.py": "def f():\n    from . import b\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import f\n",
        "c.py": "from . import a\n",
        "sub/__init__.py": "from .d import g\n",
        "sub/d.py": "from ..c import a\ng = 1\n",
        # p imports sub2.e, which runs sub2's __init__, which imports g, which imports p
        "p.py": "from .sub2.e import x\n",
        "sub2/__init__.py": "from . import g\n",
        "sub2/e.py": "x = 1\n",
        "sub2/g.py": "def h():\n    from ..p import x\n",
    })  # fmt: skip
    assert code_rules.import_cycles(tmp_path / "pkg") == [
        ["pkg.a", "pkg.b"],
        ["pkg.p", "pkg.sub2", "pkg.sub2.g"],
    ]


def _environment_writes(path) -> list[str]:
    """``os.environ[...] = ``, ``os.environ.update/setdefault/pop(...)``, ``os.putenv``:
    the statements (as source) that write the environment."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        target = None
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            target = next((t.value for t in targets if isinstance(t, ast.Subscript)), None)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("update", "setdefault", "pop", "clear"):
                target = node.func.value
            elif node.func.attr == "putenv":
                found.append(ast.unparse(node))
        if isinstance(target, ast.Attribute) and target.attr == "environ":
            found.append(ast.unparse(node))
    return found


def test_settings_travel_as_arguments_not_through_the_environment():
    """No module writes the environment at run time: decoder threads reach the decode
    workers and Ray tasks as arguments. The one exception is the CLI's default for its
    own process, set before torch starts its OpenMP runtime."""
    writes = {
        str(p.relative_to(PACKAGE)): _environment_writes(p) for p in sorted(PACKAGE.rglob("*.py"))
    }
    assert {name: w for name, w in writes.items() if w} == {
        "cli/__init__.py": ["os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')"]
    }
