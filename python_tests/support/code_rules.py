"""Static checks of a package's code: its import graph (and the cycles in it) and the
uses of one module's private names by another, read from the source with ``ast`` (no
import runs).

A *private use* is, across two modules of the package:

- importing a ``_name`` (dunders aside) from another module;
- importing any name from a ``_private`` module (or package) from outside the package
  that holds it;
- reading or setting an attribute ``_x`` of anything but ``self`` / ``cls`` where
  ``_x`` is defined (as a class attribute, a method, or ``self._x = ...``) in another
  module's class and not in the module's own.

An *import cycle* is a strongly connected group of modules in the graph of every
import statement (function-level and ``TYPE_CHECKING`` ones included). An import of
``pkg.sub.mod`` adds an edge to ``pkg.sub.mod`` and to the ``__init__`` of each package
on the way that the importer is not itself inside (importing it runs them), the root
package's aside (every import runs it).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PrivateUse", "import_cycles", "import_graph", "modules_of", "private_uses"]


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def modules_of(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package at ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = _package_of(module, path).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path, known: dict[str, Path]):
    """(target module, imported name or None, line) for each import of ``module``."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path, node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:  # `from pkg import submodule`
                    yield sub, None, node.lineno
                else:
                    yield target, alias.name, node.lineno


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports."""
    known = modules_of(root)
    graph: dict[str, set[str]] = {m: set() for m in known}
    for module, path in known.items():
        own = _ancestors(_package_of(module, path))
        for target, _, _ in _imports(module, path, known):
            if target not in known or target == module:
                continue
            graph[module].add(target)
            for package in _ancestors(target)[1:]:  # the packages run on the way
                if package != root.name and package not in own and package != module:
                    graph[module].add(package)
    return graph


def _ancestors(module: str) -> list[str]:
    """``a.b.c`` -> ``["a.b.c", "a.b", "a"]``."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def import_cycles(root: Path) -> list[list[str]]:
    """The strongly connected groups of two or more modules (Tarjan), sorted."""
    graph = import_graph(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


@dataclass(frozen=True)
class PrivateUse:
    module: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.what}"


def _class_privates(tree: ast.AST) -> set[str]:
    """The ``_x`` names a module's classes define: class-level names, methods and
    ``self._x`` assignments."""
    names: set[str] = set()
    for cls in [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]:
        for node in ast.walk(cls):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_private(node.name):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name) and _is_private(t.id):
                        names.add(t.id)
                    elif (
                        isinstance(t, ast.Attribute)
                        and isinstance(t.value, ast.Name)
                        and t.value.id in ("self", "cls")
                        and _is_private(t.attr)
                    ):
                        names.add(t.attr)
    return names


def _in_package(module: str, private_module: str) -> bool:
    """Whether ``module`` lies inside the package that holds ``private_module``."""
    parts = private_module.split(".")
    cut = next(i for i, p in enumerate(parts) if _is_private(p))
    holder = ".".join(parts[:cut])
    return module == holder or module.startswith(holder + ".")


def private_uses(root: Path, extra: dict[str, Path] | None = None) -> list[PrivateUse]:
    """Every private use among the package's modules (and by the ``extra`` modules,
    tests or benchmarks say, of the package's names)."""
    known = modules_of(root)
    trees = {m: ast.parse(p.read_text()) for m, p in known.items()}
    defined = {m: _class_privates(t) for m, t in trees.items()}
    every_private = set().union(*defined.values())
    found: list[PrivateUse] = []
    checked = dict(known)
    checked.update(extra or {})
    for module, path in checked.items():
        tree = trees.get(module) or ast.parse(path.read_text())
        own = defined.get(module, set())
        for target, name, line in _imports(module, path, known):
            if not (target in known or target.split(".")[0] == root.name):
                continue
            if name is not None and _is_private(name):
                found.append(PrivateUse(module, line, f"imports {name} from {target}"))
            elif any(_is_private(p) for p in target.split(".")) and not _in_package(module, target):
                found.append(PrivateUse(module, line, f"imports from private {target}"))
        for node in ast.walk(tree):
            use = _attribute_use(node)
            if use is None:
                continue
            verb, owner, attr = use
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Call) and getattr(owner.func, "id", "") == "super":
                continue
            if attr in own:
                continue
            # a read of another module's class's private; any write of a private that
            # this module's classes do not define
            if verb == "sets" or attr in every_private:
                found.append(PrivateUse(module, node.lineno, f"{verb} .{attr}"))
    return found


def _attribute_use(node: ast.AST) -> tuple[str, ast.AST, str] | None:
    """("reads" or "sets", the object, the private name) of ``obj._x`` and of
    ``getattr`` / ``hasattr`` / ``setattr`` / ``delattr`` with a literal ``"_x"``."""
    if isinstance(node, ast.Attribute) and _is_private(node.attr):
        verb = "sets" if isinstance(node.ctx, (ast.Store, ast.Del)) else "reads"
        return verb, node.value, node.attr
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
        and _is_private(node.args[1].value)
    ):
        verb = "sets" if node.func.id in ("setattr", "delattr") else "reads"
        return verb, node.args[0], node.args[1].value
    return None
