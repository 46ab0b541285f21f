"""The repository stands on its own: no tracked file points outside it.

Every tracked text file is read, and it fails when it holds
- a relative path or link that resolves outside the repository root (``../x`` from the
  root, say); absolute system paths used on purpose (``/usr/local/cuda``) are fine;
- a mention of a document that is not tracked (the design notes kept beside the
  checkout, any ``*.md`` whose name is no tracked file's);
- a link to a tracked Markdown file's anchor (``docs/method.md#sampling``) that the
  file does not define.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest
from support import REPO

SKIP_DIRS = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache"}
RELATIVE = re.compile(r"(?<![\w./-])((?:\.\./)+[\w./-]*)")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
DOCUMENT = re.compile(r"(?<![\w-])([\w./-]*\b[\w-]+\.md)(#[\w-]+)?\b")


@cache
def tracked_files() -> tuple[Path, ...]:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True
        ).stdout.decode()
        names = [n for n in out.split("\0") if n]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk the tree
        names = [
            str(p.relative_to(REPO))
            for p in REPO.rglob("*")
            if p.is_file() and not SKIP_DIRS & set(p.relative_to(REPO).parts)
        ]
    return tuple(REPO / n for n in sorted(names))


def text_files() -> list[Path]:
    found = []
    for path in tracked_files():
        data = path.read_bytes()
        if b"\0" not in data[:8192]:
            found.append(path)
    return found


def inside(path: Path) -> bool:
    try:
        path.resolve().relative_to(REPO)
    except ValueError:
        return False
    return True


@cache
def anchors(path: Path) -> frozenset[str]:
    """The anchors a Markdown file defines: <a id="..."> and GitHub's heading slugs."""
    text = path.read_text()
    ids = set(re.findall(r'<a id="([\w-]+)"', text))
    for heading in re.findall(r"^#+\s+(.*)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        ids.add(slug)
    return frozenset(ids)


def test_the_checkout_has_tracked_text_files():
    names = {p.name for p in text_files()}
    assert {"README.md", "method.md", "setup.py"} <= names


def test_no_relative_path_leaves_the_repository():
    leaving = []
    for path in text_files():
        text = path.read_text(errors="replace")
        targets = RELATIVE.findall(text) + [
            t for t in MARKDOWN_LINK.findall(text) if not re.match(r"[a-z]+:|#|/", t)
        ]
        for target in targets:
            if not inside(path.parent / target.split("#")[0]):
                leaving.append(f"{path.relative_to(REPO)}: {target}")
    assert not leaving, leaving


def test_every_document_named_is_tracked():
    tracked = {p.name for p in tracked_files()}
    missing = []
    for path in text_files():
        for name, _ in DOCUMENT.findall(path.read_text(errors="replace")):
            if Path(name).name not in tracked:
                missing.append(f"{path.relative_to(REPO)}: {name}")
    assert not missing, missing


def test_markdown_links_and_anchors_resolve():
    broken = []
    for path in text_files():
        if path.suffix != ".md":
            continue
        for target in MARKDOWN_LINK.findall(path.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a URL
            file, _, anchor = target.partition("#")
            dest = path if not file else (path.parent / file)
            if not dest.exists():
                broken.append(f"{path.relative_to(REPO)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.resolve()):
                broken.append(f"{path.relative_to(REPO)}: {target} (no such anchor)")
    assert not broken, broken


def test_method_sections_cited_in_code_exist():
    """Comments and docstrings cite sections as docs/method.md#sampling; each must exist."""
    method = anchors(REPO / "docs" / "method.md")
    cited = []
    for path in text_files():
        for anchor in re.findall(r"method\.md#([\w-]+)", path.read_text(errors="replace")):
            if anchor not in method:
                cited.append(f"{path.relative_to(REPO)}: #{anchor}")
    assert not cited, cited


# the design notes beside the checkout (spelled in two parts, so that this file does
# not name them itself)
OUTSIDE_NOTES = ["SPEC" + ".md", "STYLE" + ".md", "../" + "shared"]


@pytest.mark.parametrize("name", OUTSIDE_NOTES)
def test_untracked_design_documents_are_not_cited(name):
    holders = [
        str(p.relative_to(REPO)) for p in text_files() if name in p.read_text(errors="replace")
    ]
    assert not holders, holders
