"""What ``sfllava embed`` reads: video files, folders, globs and manifests, each video
with the name of its output.

- a **video file**: named by its file name;
- a **folder**: every video below it (by extension, recursively), named by its path
  relative to the folder, so that two ``a.mp4`` in different subfolders never collide;
- a **glob** (``clips/**/*.mp4``): the matches, named relative to the glob's fixed part;
- a **manifest**, ``.jsonl`` or ``.csv``: one video per row, its ``video`` column a path
  (relative ones from the manifest's folder), named by the optional ``id`` column or
  else relative to the manifest's folder.

Two videos that would get the same name are refused before any work.
"""

from __future__ import annotations

import csv
import glob
import json
import os
from dataclasses import dataclass

__all__ = ["VIDEO_EXTENSIONS", "Item", "collect_inputs", "is_manifest"]

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".flv", ".wmv"}
)


@dataclass(frozen=True)
class Item:
    """One video of the job: ``source`` (an absolute path) and ``name``, the output's
    path relative to the output folder, without its ``.safetensors`` suffix."""

    source: str
    name: str

    @property
    def output(self) -> str:
        return self.name + ".safetensors"


def collect_inputs(inputs: list[str] | tuple[str, ...] | str) -> list[Item]:
    """The videos that ``inputs`` name, in order, each once.

    Raises:
        FileNotFoundError: an input that is no file, folder, glob match or manifest.
        ValueError: a manifest row without ``video``, an ``id`` that leaves the output
            folder, two videos with the same output name, no video at all.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    items: list[Item] = []
    for raw in inputs:
        spec = os.fspath(raw)
        if os.path.isdir(spec):
            items += _folder(spec)
        elif os.path.isfile(spec) and is_manifest(spec):
            items += _manifest(spec)
        elif os.path.isfile(spec):
            items.append(Item(os.path.abspath(spec), os.path.basename(spec)))
        elif glob.has_magic(spec):
            items += _glob(spec)
        else:
            raise FileNotFoundError(f"embed: no such video, folder, glob or manifest: '{spec}'")
    seen: dict[str, str] = {}
    unique: list[Item] = []
    for item in items:
        other = seen.get(item.name)
        if other is None:
            seen[item.name] = item.source
            unique.append(item)
        elif other != item.source:
            raise ValueError(
                f"embed: '{item.source}' and '{other}' would both be written as "
                f"'{item.output}'; give them ids in a manifest, or pass their common folder"
            )
    if not unique:
        raise ValueError(f"embed: no video in {list(map(os.fspath, inputs))}")
    return unique


def is_manifest(path: str) -> bool:
    return os.fspath(path).lower().endswith((".jsonl", ".csv"))


def _is_video(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS and os.path.isfile(path)


def _folder(root: str) -> list[Item]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in sorted(files):
            path = os.path.join(folder, name)
            if not name.startswith(".") and _is_video(path):
                found.append(Item(os.path.abspath(path), os.path.relpath(path, root)))
    return found


def _glob(pattern: str) -> list[Item]:
    parts = pattern.split(os.sep)
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    root = os.sep.join(fixed) or "."
    matches = sorted(p for p in glob.glob(pattern, recursive=True) if _is_video(p))
    if not matches:
        raise FileNotFoundError(f"embed: the glob '{pattern}' matches no video")
    return [Item(os.path.abspath(p), os.path.relpath(p, root)) for p in matches]


def _manifest(path: str) -> list[Item]:
    folder = os.path.dirname(os.path.abspath(path))
    rows = _rows(path)
    items = []
    for n, row in enumerate(rows, start=1):
        video = row.get("video") if isinstance(row, dict) else None
        if not isinstance(video, str) or not video.strip():
            raise ValueError(f"embed: row {n} of '{path}' has no 'video'")
        source = video if os.path.isabs(video) else os.path.join(folder, video)
        ident = row.get("id")
        if ident is not None and str(ident).strip():
            name = str(ident).strip()
            normal = os.path.normpath(name)
            if os.path.isabs(name) or normal.startswith(".."):
                raise ValueError(f"embed: row {n} of '{path}': the id '{name}' leaves the output")
        else:
            name = os.path.relpath(source, folder)
            if name.startswith(".."):
                name = os.path.basename(source)
        items.append(Item(os.path.abspath(source), name))
    return items


def _rows(path: str) -> list:
    if path.lower().endswith(".csv"):
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"embed: line {n} of '{path}' is not JSON ({exc})") from exc
    return rows
