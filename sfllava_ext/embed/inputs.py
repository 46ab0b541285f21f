"""What ``sfllava embed`` reads: video files, folders, globs and manifests, each video
with the name of its output.

- a **video file**: named by its file name;
- a **folder**: every video below it (by extension, recursively), named by its path
  relative to the folder, so that two ``a.mp4`` in different subfolders never collide;
- a **glob** (``clips/**/*.mp4``): the matches, named relative to the glob's fixed part;
- a **manifest**, ``.jsonl`` or ``.csv``: one video per row, its ``video`` column a path
  (relative ones from the manifest's folder), named by the optional ``id`` column or
  else relative to the manifest's folder.

Every name goes through :func:`output_name`, which gives it its one canonical form
(``x``, ``./x``, ``sub/../x``, ``x/`` and ``x//`` are all ``x``) or refuses it
(:class:`OutputNameError`): a name that leaves the output folder, is empty, has a hidden
part (``.x``: where the store keeps its temporary and lock files) or an unsafe
character. Two videos whose names are equal, equal but for case, or of which one would
need the other's file as a folder, are refused before any work
(:class:`OutputCollisionError`), naming both.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import unicodedata
from dataclasses import dataclass, field

__all__ = [
    "MAX_PART_BYTES",
    "SUFFIX",
    "VIDEO_EXTENSIONS",
    "Item",
    "OutputCollisionError",
    "OutputNameError",
    "collect_inputs",
    "is_manifest",
    "output_name",
]

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".flv", ".wmv"}
)
SUFFIX = ".safetensors"
#: the longest part of a name, in UTF-8 bytes: with the suffix and the temporary
#: file's (``.<name>.safetensors.tmp-<pid>-<thread>``) it stays under the 255 bytes a
#: file name may have
MAX_PART_BYTES = 200

# Unicode categories refused in a name: control characters (NUL, newline, escape),
# format characters (bidirectional overrides, zero-width joiners: a name that reads
# as another), line and paragraph separators, surrogates, unassigned code points
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Co", "Zl", "Zp"})


class OutputNameError(ValueError):
    """A video's output name that ``sfllava embed`` refuses (before any work):
    ``origin`` says where the name came from (a manifest's line, an argument),
    ``value`` is the name as given."""

    def __init__(self, message: str, origin: str = "", value: object = None) -> None:
        super().__init__(message)
        self.origin = origin
        self.value = value


class OutputCollisionError(ValueError):
    """Two videos that would write one output file (or one of which would need the
    other's file as its folder): ``first`` and ``second`` are their :class:`Item`."""

    def __init__(self, message: str, first: Item, second: Item) -> None:
        super().__init__(message)
        self.first = first
        self.second = second


@dataclass(frozen=True)
class Item:
    """One video of the job: ``source`` (an absolute path) and ``name``, the output's
    canonical path relative to the output folder (:func:`output_name`), without its
    ``.safetensors`` suffix; ``origin`` says which input named it (for error
    messages)."""

    source: str
    name: str
    origin: str = field(default="", compare=False)

    @property
    def output(self) -> str:
        return self.name + SUFFIX


def output_name(value: object, origin: str = "") -> str:
    """The canonical output name of ``value`` (a manifest's ``id``, or a path relative
    to an input's root): NFC, ``/``-separated, each part trimmed of spaces, without
    empty or ``.`` parts, ``..`` resolved within the name.

    Raises:
        OutputNameError: ``value`` is not a string (or an integer), is empty once
            normalised, leaves the output folder (``../a``, ``/a``), has a hidden part
            (``.a``), a part over :data:`MAX_PART_BYTES` bytes, a backslash, or an unsafe
            character (NUL, a control or format character); the message names
            ``origin``.
    """
    where = f"{origin}: " if origin else ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise OutputNameError(f"embed: {where}the name {value!r} is not a string", origin, value)
    text = str(value)
    for char in text:
        if char == "\\" or unicodedata.category(char) in _UNSAFE_CATEGORIES:
            raise OutputNameError(
                f"embed: {where}the name {text!r} has an unsafe character "
                f"(U+{ord(char):04X}); names may not hold backslashes, control or "
                "format characters",
                origin,
                value,
            )
    text = unicodedata.normalize("NFC", text).strip()
    if text.startswith("/"):
        raise OutputNameError(
            f"embed: {where}the name {text!r} is absolute: it leaves the output folder",
            origin,
            value,
        )
    parts: list[str] = []
    for part in (p.strip() for p in text.split("/")):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise OutputNameError(
                    f"embed: {where}the name {text!r} leaves the output folder", origin, value
                )
            parts.pop()
            continue
        if part.startswith("."):
            raise OutputNameError(
                f"embed: {where}the name {text!r} has a hidden part ({part!r}); the "
                "output folder keeps its own files under hidden names",
                origin,
                value,
            )
        if len(part.encode()) > MAX_PART_BYTES:
            raise OutputNameError(
                f"embed: {where}the name {text!r} has a part over {MAX_PART_BYTES} bytes",
                origin,
                value,
            )
        parts.append(part)
    if not parts:
        raise OutputNameError(
            f"embed: {where}the name {text!r} is empty once normalised", origin, value
        )
    return "/".join(parts)


def collect_inputs(inputs: list[str] | tuple[str, ...] | str) -> list[Item]:
    """The videos that ``inputs`` name, in order, each once, with their canonical
    output names (:func:`output_name`).

    Raises:
        FileNotFoundError: an input that is no file, folder, glob match or manifest.
        OutputNameError: a name that leaves the output folder, is empty, hidden or
            unsafe (:func:`output_name`), naming the manifest line or the argument.
        OutputCollisionError: two videos with the same output (equal, or equal but for
            case or Unicode normalisation), or one whose output would be the folder of
            another's, naming both.
        ValueError: a manifest row without ``video``, a line that is not JSON, no
            video at all.
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
            origin = f"the argument '{spec}'"
            items.append(_item(os.path.abspath(spec), os.path.basename(spec), origin))
        elif glob.has_magic(spec):
            items += _glob(spec)
        else:
            raise FileNotFoundError(f"embed: no such video, folder, glob or manifest: '{spec}'")
    unique = _refuse_collisions(items)
    if not unique:
        raise ValueError(f"embed: no video in {list(map(os.fspath, inputs))}")
    return unique


def is_manifest(path: str) -> bool:
    return os.fspath(path).lower().endswith((".jsonl", ".csv"))


def _item(source: str, name: object, origin: str) -> Item:
    return Item(source, output_name(name, origin), origin)


def _key(name: str) -> str:
    """What two names must not share: case, Unicode compatibility forms (full-width
    letters, no-break spaces) and the trailing dots and spaces that Windows drops
    aside, so that the folder reads the same on a case-insensitive file system, SMB or
    Windows."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return "/".join(part.rstrip(". ") for part in folded.split("/"))


def _describe(item: Item) -> str:
    return f"'{item.source}' ({item.origin})" if item.origin else f"'{item.source}'"


def _refuse_collisions(items: list[Item]) -> list[Item]:
    """``items`` without repeats (the same video under the same name, e.g. a folder
    given twice), or the first collision raised."""
    files: dict[str, Item] = {}
    unique: list[Item] = []
    for item in items:
        other = files.get(_key(item.output))
        if other is None:
            files[_key(item.output)] = item
            unique.append(item)
        elif other.source != item.source or other.output != item.output:
            same = other.output == item.output
            how = "" if same else f" and '{other.output}' (equal but for case)"
            raise OutputCollisionError(
                f"embed: {_describe(other)} and {_describe(item)} would both be written as "
                f"'{item.output}'{how}; give them distinct ids in a manifest, or pass "
                "their common folder",
                other,
                item,
            )
    for item in unique:  # a file where another output needs a folder
        parts = item.output.split("/")
        for depth in range(1, len(parts)):
            other = files.get(_key("/".join(parts[:depth])))
            if other is not None:
                raise OutputCollisionError(
                    f"embed: {_describe(item)} would be written inside "
                    f"'{'/'.join(parts[:depth])}', the output of {_describe(other)}; "
                    "give them distinct ids in a manifest",
                    other,
                    item,
                )
    return unique


def _is_video(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS and os.path.isfile(path)


def _folder(root: str) -> list[Item]:
    found = []
    origin = f"below the argument '{root}'"
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in sorted(files):
            path = os.path.join(folder, name)
            if not name.startswith(".") and _is_video(path):
                found.append(_item(os.path.abspath(path), os.path.relpath(path, root), origin))
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
    origin = f"a match of the argument '{pattern}'"
    return [_item(os.path.abspath(p), os.path.relpath(p, root), origin) for p in matches]


def _manifest(path: str) -> list[Item]:
    folder = os.path.dirname(os.path.abspath(path))
    items = []
    for where, row, blank_is_none in _rows(path):
        origin = f"{where} of '{path}'"
        video = row.get("video") if isinstance(row, dict) else None
        if not isinstance(video, str) or not video.strip():
            raise ValueError(f"embed: {origin} has no 'video'")
        source = video if os.path.isabs(video) else os.path.join(folder, video)
        ident = row.get("id")
        if blank_is_none and isinstance(ident, str) and not ident.strip():
            ident = None  # a CSV's empty cell: no id
        if ident is not None:
            items.append(_item(os.path.abspath(source), ident, f"the id of {origin}"))
            continue
        name = os.path.relpath(source, folder)
        if name.startswith(".."):
            name = os.path.basename(source)
        items.append(_item(os.path.abspath(source), name, origin))
    return items


def _rows(path: str) -> list[tuple[str, object, bool]]:
    """``(where, row, blank id means none)`` for each row: ``where`` is ``line N``
    (the file's line)."""
    if path.lower().endswith(".csv"):
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            return [(f"line {reader.line_num}", row, True) for row in reader]
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    rows.append((f"line {n}", json.loads(line), False))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"embed: line {n} of '{path}' is not JSON ({exc})") from exc
    return rows
