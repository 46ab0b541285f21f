"""Fuzzing ``load_video``: mutated video files, each loaded on both backends in a child
process under a time limit, every load put in one of five classes.

Seed files are written at the start (PyAV, deterministic, 128x96, 48 frames, 12-frame
GOP): H.264 in MP4 (the index at the end), H.264 with an AAC track in MKV, H.264 4:4:4 in
an MP4 whose index comes first (``faststart``), MPEG-4 Part 2 in AVI, VP9 in WebM, HEVC in
MP4 and H.264 in MPEG-TS. File ``i`` of a run is one mutation of one seed, kinds taken in
turn (so that every kind gets its share), the seed and the mutation's parameters drawn
from ``random.Random(f"{seed}:{i}")``:

* ``truncate``: the first ``keep`` bytes;
* ``flip_header`` / ``flip_payload``: 1 to 8 bytes XORed with a non-zero mask, in the
  container's metadata (everything but the coded frames) or in the coded frames
  (``mdat``, the Clusters' content, the ``movi`` list, the TS packets);
* ``zero_range``: a range of up to 4 KiB set to zero;
* ``duplicate_element`` / ``remove_element``: an MP4 box, a Matroska element, a RIFF
  chunk or a TS packet repeated right after itself, or removed, the declared sizes of the
  boxes around it corrected;
* ``wrong_size``: a box's, element's or chunk's declared size, or an MP4 table's entry
  count, set to a wrong value (0, 1, off by one, doubled, the field's maximum, ...);
* ``wrong_duration``: a declared duration, time scale, frame count or rate (``mvhd``,
  ``tkhd``, ``mdhd``, ``stts``, ``elst``; Matroska's Duration, TimecodeScale,
  DefaultDuration; AVI's ``avih`` and ``strh``) set to 0, 1, the maximum, NaN, ...;
* ``concat``: the seed (possibly cut short) followed by another seed file.

Each file is loaded with ``load_video(path, 50, backend=...)`` on ``pyav`` and on
``decord`` by a pool of pre-started worker processes, one load at a time each, under a
time limit per load (``--time-limit``, 10 s by default). A load ends in one of five
classes: ``decoded``; ``typed`` (``VideoDecodeError``, ``FileNotFoundError``, or a
``ValueError`` whose message names an argument of ``load_video``); ``untyped`` (any other
exception); ``crash`` (the worker died: a signal, an abort, an exit); ``hang`` (no answer
within the limit: the worker is killed). A dead or killed worker is replaced at once.
The target is no untyped error, no crash and no hang.

The JSON holds the counts per backend, mutation kind and class, and every load that was
neither decoded nor a typed error, with its file's recipe (seed file, kind, parameters);
``--write DIR --only I J ...`` writes those files again to look at.

    python benchmarks/fuzz_videos.py                      # 1,000 files, both backends
    python benchmarks/fuzz_videos.py --count 60 --out /tmp/fuzz.json
    python benchmarks/fuzz_videos.py --write /tmp/fuzz --only 17 423
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import random
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from _common import RESULTS, machine_info, provenance, table, write_json

#: the committed result in benchmarks/results/, which report.py renders
RESULT = "fuzz_videos"
BACKENDS = ("pyav", "decord")
CLASSES = ("decoded", "typed", "untyped", "crash", "hang")
KINDS = (
    "truncate",
    "flip_header",
    "flip_payload",
    "zero_range",
    "duplicate_element",
    "remove_element",
    "wrong_size",
    "wrong_duration",
    "concat",
)
#: frames asked of each file (the published default)
NUM_FRAMES = 50
#: seconds one load may take before its worker is killed and the load called a hang
TIME_LIMIT_S = 10.0
#: seconds a new worker may take to import the package and say it is ready
START_LIMIT_S = 120.0
#: the address space of a worker (RLIMIT_AS): a file that makes a decoder allocate
#: without bound fails there instead of taking the machine's memory
MEMORY_LIMIT_BYTES = 8 << 30
#: load_video's parameter names: a ValueError naming one of them is a typed error
ARGUMENTS = ("num_frames", "backend", "fps", "yuv420", "threads", "buffers", "limits", "path")


# --------------------------------------------------------------------------- seed files
# Written with PyAV at the start of every run; their SHA-256 goes into the JSON, so a
# recipe names the exact bytes it mutated.


@dataclass(frozen=True)
class Seed:
    name: str
    suffix: str
    codec: str
    pix_fmt: str
    container: str  # the parser: mp4, ebml, riff, ts
    options: dict[str, str] = field(default_factory=dict)
    container_options: dict[str, str] = field(default_factory=dict)
    audio: bool = False


SEEDS = (
    Seed("h264_mp4", ".mp4", "libx264", "yuv420p", "mp4"),
    Seed("h264_aac_mkv", ".mkv", "libx264", "yuv420p", "ebml", audio=True),
    Seed(
        "h264_444_faststart_mp4",
        ".mp4",
        "libx264",
        "yuv444p",
        "mp4",
        container_options={"movflags": "faststart"},
    ),
    Seed("mpeg4_avi", ".avi", "mpeg4", "yuv420p", "riff"),
    Seed("vp9_webm", ".webm", "libvpx-vp9", "yuv420p", "ebml", {"deadline": "realtime"}),
    Seed("hevc_mp4", ".mp4", "libx265", "yuv420p", "mp4", {"x265-params": "log-level=none"}),
    Seed("h264_ts", ".ts", "libx264", "yuv420p", "ts"),
)
SEED_SIZE = (128, 96)
SEED_FRAMES = 48
SEED_FPS = 24
SEED_GOP = 12


def seed_frame(t: int) -> Any:
    """Frame ``t`` of every seed: a panning gradient and a moving box, uint8 RGB."""
    import numpy as np

    width, height = SEED_SIZE
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack(
        [(xx * 2 + 5 * t) % 256, (yy * 2 + 3 * t) % 256, ((xx + yy) + 7 * t) % 256], axis=-1
    ).astype(np.uint8)
    x0, y0 = (6 * t) % (width - 24), (4 * t) % (height - 24)
    img[y0 : y0 + 24, x0 : x0 + 24] = (240, 40, 40)
    return np.ascontiguousarray(img)


def write_seed(seed: Seed, path: Path) -> None:
    import av
    import numpy as np

    # bitexact: no random Matroska UIDs, no dates, no version strings: the same bytes each run
    options = {"fflags": "+bitexact", **seed.container_options}
    with av.open(str(path), mode="w", options=options) as container:
        stream = container.add_stream(seed.codec, rate=Fraction(SEED_FPS))
        stream.width, stream.height = SEED_SIZE
        stream.pix_fmt = seed.pix_fmt
        stream.codec_context.gop_size = SEED_GOP
        stream.codec_context.thread_count = 1  # the same bytes on every machine
        stream.options = dict(seed.options)
        audio = container.add_stream("aac", rate=16000) if seed.audio else None
        for t in range(SEED_FRAMES):
            frame = av.VideoFrame.from_ndarray(seed_frame(t), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
            if audio is not None:
                samples = 16000 // SEED_FPS
                wave = np.sin(np.arange(samples) * (0.05 + 0.001 * t), dtype=np.float32)
                aframe = av.AudioFrame.from_ndarray(wave[None, :], format="fltp", layout="mono")
                aframe.sample_rate, aframe.pts = 16000, t * samples
                for packet in audio.encode(aframe):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio is not None:
            for packet in audio.encode():
                container.mux(packet)


def write_seeds(folder: Path) -> dict[str, bytes]:
    """Every seed file, written into ``folder``: ``{name: bytes}``."""
    out = {}
    for seed in SEEDS:
        path = folder / f"seed_{seed.name}{seed.suffix}"
        write_seed(seed, path)
        out[seed.name] = path.read_bytes()
    return out


# ------------------------------------------------------------------------ the containers
# Just enough of each container's structure to find its boxes, elements or chunks, their
# size fields, and which bytes are metadata and which are coded frames.


@dataclass
class Node:
    """One box (MP4), element (Matroska), chunk (RIFF) or packet (TS)."""

    name: str
    start: int  # first byte of the header
    end: int  # one past the last byte
    body: int  # first byte after the header
    size_at: int  # where the size field is (-1: none)
    size_width: int  # its width in bytes
    size_kind: str  # "be", "le", "ebml", "" (none)
    parent: int  # index of the enclosing node, -1 at the top


MP4_CONTAINERS = {
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta", b"mvex",
    b"moof", b"traf", b"mfra",
}  # fmt: skip
MP4_PAYLOAD = {b"mdat"}
EBML_MASTERS = {
    0x1A45DFA3, 0x18538067, 0x114D9B74, 0x4DBB, 0x1549A966, 0x1654AE6B, 0xAE, 0xE0, 0xE1,
    0x1F43B675, 0xA0, 0x1C53BB6B, 0xBB, 0xB7, 0x1254C367, 0x7373, 0x67C8, 0x63C0, 0x6D80,
    0x6240, 0x1043A770, 0x45B9, 0xB6, 0x80, 0x55B0,
}  # fmt: skip
EBML_CLUSTER = 0x1F43B675
EBML_BLOCKS = {0xA3, 0xA1}  # SimpleBlock, Block: the coded frames


def parse(kind: str, data: bytes) -> list[Node]:
    nodes: list[Node] = []
    if kind == "mp4":
        _mp4(data, 0, len(data), -1, nodes)
    elif kind == "ebml":
        _ebml(data, 0, len(data), -1, nodes)
    elif kind == "riff":
        _riff(data, 0, len(data), -1, nodes)
    elif kind == "ts":
        for pos in range(0, len(data) - 187, 188):
            nodes.append(Node("ts", pos, pos + 188, pos + 4, -1, 0, "", -1))
    return nodes


def _mp4(data: bytes, pos: int, end: int, parent: int, nodes: list[Node]) -> None:
    while pos + 8 <= end:
        size, name = struct.unpack_from(">I4s", data, pos)
        header, size_at, width = 8, pos, 4
        if size == 1 and pos + 16 <= end:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header, size_at, width = 16, pos + 8, 8
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        nodes.append(
            Node(
                name.decode("latin-1"), pos, pos + size, pos + header, size_at, width, "be", parent
            )
        )
        if name in MP4_CONTAINERS:
            _mp4(data, pos + header, pos + size, len(nodes) - 1, nodes)
        pos += size


def _vint(data: bytes, pos: int, keep_marker: bool) -> tuple[int, int] | None:
    """An EBML variable-length integer at ``pos``: (value, width); None if malformed."""
    if pos >= len(data) or data[pos] == 0:
        return None
    width = 9 - data[pos].bit_length()
    if pos + width > len(data):
        return None
    value = int.from_bytes(data[pos : pos + width], "big")
    if not keep_marker:
        value &= (1 << (7 * width)) - 1
    return value, width


def _ebml(data: bytes, pos: int, end: int, parent: int, nodes: list[Node]) -> None:
    while pos < end:
        ident = _vint(data, pos, keep_marker=True)
        if ident is None:
            return
        size = _vint(data, pos + ident[1], keep_marker=False)
        if size is None:
            return
        body = pos + ident[1] + size[1]
        unknown = size[0] == (1 << (7 * size[1])) - 1
        stop = end if unknown else body + size[0]
        if stop > end:
            return
        nodes.append(
            Node(f"{ident[0]:X}", pos, stop, body, pos + ident[1], size[1], "ebml", parent)
        )
        if ident[0] in EBML_MASTERS:
            _ebml(data, body, stop, len(nodes) - 1, nodes)
        pos = stop


def _riff(data: bytes, pos: int, end: int, parent: int, nodes: list[Node]) -> None:
    while pos + 8 <= end:
        name, size = struct.unpack_from("<4sI", data, pos)
        stop = pos + 8 + size
        if stop > end:
            return
        nodes.append(Node(name.decode("latin-1"), pos, stop, pos + 8, pos + 4, 4, "le", parent))
        if name in (b"RIFF", b"LIST") and size >= 4:
            _riff(data, pos + 12, stop, len(nodes) - 1, nodes)
        pos = stop + (size & 1)


def payload_ranges(kind: str, data: bytes, nodes: list[Node]) -> list[tuple[int, int]]:
    """The byte ranges that hold coded frames (the rest is metadata)."""
    if kind == "mp4":
        return [(n.body, n.end) for n in nodes if n.name == "mdat"]
    if kind == "ebml":
        return [(n.body, n.end) for n in nodes if int(n.name, 16) in EBML_BLOCKS]
    if kind == "riff":
        lists = [n for n in nodes if n.name == "LIST"]
        return [(n.body + 4, n.end) for n in lists if data[n.body : n.body + 4] == b"movi"]
    return [(4, len(data))] if kind == "ts" else []  # TS: all but the first packet header


def header_ranges(data: bytes, payload: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, pos = [], 0
    for start, stop in sorted(payload):
        if start > pos:
            out.append((pos, start))
        pos = max(pos, stop)
    if pos < len(data):
        out.append((pos, len(data)))
    return out


def pick_offset(rng: random.Random, ranges: list[tuple[int, int]]) -> int:
    """An offset drawn uniformly from the bytes of ``ranges``."""
    total = sum(stop - start for start, stop in ranges)
    k = rng.randrange(total)
    for start, stop in ranges:
        if k < stop - start:
            return start + k
        k -= stop - start
    raise AssertionError("unreachable")


def write_size(buf: bytearray, node: Node, value: int) -> bool:
    """Writes ``value`` into ``node``'s size field; False where it does not fit."""
    if node.size_kind in ("be", "le"):
        if not 0 <= value < 1 << (8 * node.size_width):
            return False
        buf[node.size_at : node.size_at + node.size_width] = value.to_bytes(
            node.size_width, "big" if node.size_kind == "be" else "little"
        )
        return True
    if node.size_kind == "ebml":
        width = node.size_width
        if not 0 <= value < (1 << (7 * width)):
            return False
        buf[node.size_at : node.size_at + width] = (value | (1 << (7 * width))).to_bytes(
            width, "big"
        )
        return True
    return False


def declared_size(node: Node) -> int:
    """What ``node``'s size field holds."""
    if node.size_kind == "le" or node.size_kind == "ebml":
        return node.end - node.body
    return node.end - node.start  # MP4: the whole box


# ----------------------------------------------------------------------------- mutations
# Each draws its parameters from ``rng`` and returns (bytes, parameters); the parameters
# name every offset and value, so that the file can be made again from the seed alone.


def mutate(
    kind: str, name: str, seeds: dict[str, bytes], rng: random.Random
) -> tuple[bytes, dict[str, Any]]:
    data = seeds[name]
    spec = next(s for s in SEEDS if s.name == name)
    nodes = parse(spec.container, data)
    payload = payload_ranges(spec.container, data, nodes)
    buf = bytearray(data)
    if kind == "truncate":
        keep = rng.choice(
            [rng.randrange(1, 64), rng.randrange(len(data)), int(len(data) * rng.uniform(0.9, 1))]
        )
        return data[:keep], {"keep": keep}
    if kind in ("flip_header", "flip_payload"):
        ranges = payload if kind == "flip_payload" else header_ranges(data, payload)
        flips = []
        for _ in range(rng.randint(1, 8)):
            offset, mask = pick_offset(rng, ranges), rng.randrange(1, 256)
            buf[offset] ^= mask
            flips.append([offset, mask])
        return bytes(buf), {"xor": flips}
    if kind == "zero_range":
        length = rng.randint(1, 4096)
        offset = rng.randrange(len(data))
        buf[offset : offset + length] = bytes(len(buf[offset : offset + length]))
        return bytes(buf), {"offset": offset, "length": length}
    if kind in ("duplicate_element", "remove_element"):
        index = rng.randrange(len(nodes))
        node = nodes[index]
        piece = data[node.start : node.end]
        delta = len(piece) if kind == "duplicate_element" else -len(piece)
        fixed = []
        parent = node.parent
        while parent != -1:  # the enclosing sizes, corrected where the field allows
            up = nodes[parent]
            if write_size(buf, up, declared_size(up) + delta):
                fixed.append(up.name)
            parent = up.parent
        if kind == "duplicate_element":
            buf[node.end : node.end] = piece
        else:
            del buf[node.start : node.end]
        params = {"element": node.name, "start": node.start, "end": node.end, "sizes_fixed": fixed}
        return bytes(buf), params
    if kind == "wrong_size":
        return _wrong_size(data, buf, spec, nodes, rng)
    if kind == "wrong_duration":
        return _wrong_duration(data, buf, spec, nodes, rng)
    if kind == "concat":
        other = rng.choice([s.name for s in SEEDS])
        cut = rng.choice([len(data), len(data), rng.randrange(len(data) // 2, len(data))])
        return data[:cut] + seeds[other], {"then": other, "cut": cut}
    raise ValueError(f"mutate: kind must be one of {KINDS}, got {kind!r}")


MP4_TABLES = {"stsz": 8, "stco": 4, "co64": 4, "stss": 4, "stts": 4, "ctts": 4, "stsc": 4}


def _wrong_size(
    data: bytes, buf: bytearray, spec: Seed, nodes: list[Node], rng: random.Random
) -> tuple[bytes, dict[str, Any]]:
    tables = [n for n in nodes if n.name in MP4_TABLES]
    if tables and rng.random() < 0.35:  # an MP4 table's declared entry count
        node = rng.choice(tables)
        at = node.body + MP4_TABLES[node.name]
        (count,) = struct.unpack_from(">I", data, at)
        value = rng.choice([0, 1, count - 1, count + 1, count * 2, 0x7FFFFFFF, 0xFFFFFFFF])
        value &= 0xFFFFFFFF
        struct.pack_into(">I", buf, at, value)
        return bytes(buf), {"field": f"{node.name} entry count", "offset": at, "value": value}
    sized = [n for n in nodes if n.size_kind]
    node = rng.choice(sized)
    size = declared_size(node)
    if node.size_kind == "ebml":
        top = (1 << (7 * node.size_width)) - 2  # the largest known size
    else:
        top = (1 << (8 * node.size_width)) - 1
    choices = [0, 1, size - 1, size + 1, size + rng.randint(2, 4096), 2 * size, top]
    if node.size_kind == "be":
        choices.append(7)  # under the 8-byte header
    if node.size_kind == "ebml":
        choices.append(top + 1)  # all ones: "unknown size"
    value = rng.choice([c for c in choices if c >= 0])
    value = min(value, top + (1 if node.size_kind == "ebml" else 0))  # EBML: all ones
    write_size(buf, node, value)
    return bytes(buf), {"field": f"{node.name} size", "offset": node.size_at, "value": value}


def _duration_fields(data: bytes, spec: Seed, nodes: list[Node]) -> list[tuple[str, int, str]]:
    """(what, offset, format) of every declared duration, scale, count or rate."""
    out: list[tuple[str, int, str]] = []
    for n in nodes:
        if spec.container == "mp4" and n.name in ("mvhd", "mdhd", "tkhd"):
            v1 = data[n.body] == 1
            word = ">Q" if v1 else ">I"
            if n.name == "tkhd":
                out.append(("tkhd duration", n.body + (28 if v1 else 20), word))
            else:
                out.append((f"{n.name} timescale", n.body + (20 if v1 else 12), ">I"))
                out.append((f"{n.name} duration", n.body + (24 if v1 else 16), word))
        elif spec.container == "mp4" and n.name == "stts" and n.end - n.body >= 16:
            out.append(("stts first delta", n.body + 12, ">I"))
            out.append(("stts first count", n.body + 8, ">I"))
        elif spec.container == "mp4" and n.name == "elst" and n.end - n.body >= 12:
            v1 = data[n.body] == 1
            out.append(("elst segment duration", n.body + 8, ">Q" if v1 else ">I"))
        elif spec.container == "ebml" and n.name in ("4489", "2AD7B1", "23E383"):
            width = n.end - n.body
            if n.name == "4489" and width in (4, 8):
                out.append(("Duration", n.body, ">f" if width == 4 else ">d"))
            elif 1 <= width <= 8 and n.name != "4489":
                what = "TimecodeScale" if n.name == "2AD7B1" else "DefaultDuration"
                out.append((what, n.body, f"uint{width}"))
        elif spec.container == "riff" and n.name == "avih":
            out.append(("avih microseconds per frame", n.body, "<I"))
            out.append(("avih total frames", n.body + 16, "<I"))
        elif spec.container == "riff" and n.name == "strh":
            for what, off in (("scale", 20), ("rate", 24), ("start", 28), ("length", 32)):
                out.append((f"strh {what}", n.body + off, "<I"))
    return out


def _wrong_duration(
    data: bytes, buf: bytearray, spec: Seed, nodes: list[Node], rng: random.Random
) -> tuple[bytes, dict[str, Any]]:
    what, at, fmt = rng.choice(_duration_fields(data, spec, nodes))
    if fmt in (">f", ">d"):
        (old,) = struct.unpack_from(fmt, data, at)
        value = rng.choice([0.0, -1.0, float("nan"), float("inf"), 1e300, old * 1000, old / 1000])
        struct.pack_into(fmt, buf, at, value)
        return bytes(buf), {"field": what, "offset": at, "value": repr(value)}
    if fmt.startswith("uint"):
        width = int(fmt[4:])
        old = int.from_bytes(data[at : at + width], "big")
        top = (1 << (8 * width)) - 1
        value = rng.choice([0, 1, top, min(old * 1000, top), old // 1000])
        buf[at : at + width] = value.to_bytes(width, "big")
        return bytes(buf), {"field": what, "offset": at, "value": value}
    (old,) = struct.unpack_from(fmt, data, at)
    top = (1 << (8 * struct.calcsize(fmt))) - 1
    value = rng.choice([0, 1, top, top >> 1, min(old * 1000, top), old // 1000, old + 1])
    struct.pack_into(fmt, buf, at, value)
    return bytes(buf), {"field": what, "offset": at, "value": value}


def supports(kind: str, seed: Seed) -> bool:
    return seed.container != "ts" or kind not in ("wrong_size", "wrong_duration")


@dataclass(frozen=True)
class Recipe:
    """How file ``index`` of a run is made: ``seed`` mutated by ``kind`` with ``params``."""

    index: int
    seed: str
    kind: str
    params: dict[str, Any]
    size: int

    def name(self) -> str:
        suffix = next(s.suffix for s in SEEDS if s.name == self.seed)
        return f"fuzz_{self.index:05d}_{self.kind}{suffix}"


def make_file(index: int, run_seed: int, seeds: dict[str, bytes]) -> tuple[Recipe, bytes]:
    """File ``index`` of the run seeded ``run_seed``: its recipe and bytes."""
    rng = random.Random(f"{run_seed}:{index}")
    kind = KINDS[index % len(KINDS)]
    seed = rng.choice([s for s in SEEDS if supports(kind, s)])
    data, params = mutate(kind, seed.name, seeds, rng)
    return Recipe(index, seed.name, kind, params, len(data)), data


# ------------------------------------------------------------------------------ workers
# A worker is this script run with --worker: it imports the package once, says "ready",
# then loads one file per line read from stdin and answers one line of JSON. The parent
# watches each load's time; a worker that dies (crash) or does not answer in time (hang,
# killed) is replaced by a fresh one.


def classify(exc: BaseException) -> str:
    """``typed`` or ``untyped``: the class of an exception ``load_video`` raised."""
    from sfllava_ext.video import VideoDecodeError

    if isinstance(exc, (VideoDecodeError, FileNotFoundError)):
        return "typed"
    if type(exc) is ValueError and str(exc).startswith("load_video: "):
        if any(arg in str(exc) for arg in ARGUMENTS):
            return "typed"
    return "untyped"


def worker_main() -> None:
    """The worker's loop. Its answers go to a private copy of stdout; fd 1 is sent to
    stderr, so that nothing a library prints can garble them."""
    import faulthandler
    import traceback
    import warnings

    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    faulthandler.enable()  # a crash leaves its Python stack in the worker's log
    import av  # noqa: F401 - imported before the first file, not inside its time
    import decord  # noqa: F401

    from sfllava_ext.video import load_video

    answers.write("ready\n")
    for line in sys.stdin:
        job = json.loads(line)
        plant = job.get("plant")
        if plant == "abort":
            os.abort()
        elif plant == "sleep":
            time.sleep(job["seconds"])
        sys.stderr.write(f"--- {job['path']} {job['backend']}\n")
        sys.stderr.flush()
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                clip = load_video(job["path"], job["num_frames"], backend=job["backend"])
                out = {"class": "decoded", "frames": len(clip), "total": clip.total_frames}
            except Exception as exc:  # noqa: BLE001 - every exception is classified
                out = {
                    "class": classify(exc),
                    "type": type(exc).__name__,
                    "message": str(exc)[:500],
                }
                if out["class"] == "untyped":
                    out["traceback"] = traceback.format_exc()[-3000:]
        out["seconds"] = round(time.perf_counter() - start, 4)
        out["warnings"] = len(caught)
        answers.write(json.dumps(out) + "\n")


@dataclass
class Job:
    path: str
    backend: str
    key: Any = None  # the caller's
    plant: str | None = None  # "abort" or "sleep": the classifier's test
    num_frames: int = NUM_FRAMES


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


class Worker:
    def __init__(self, log_dir: Path, number: int) -> None:
        self.log = log_dir / f"worker_{number}.log"
        self.log_file = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log_file,
            preexec_fn=_limit_memory,
            start_new_session=True,
        )
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buffer = b""
        self.ready = False
        self.job: Job | None = None
        self.deadline = time.monotonic() + START_LIMIT_S

    def send(self, job: Job, time_limit: float) -> None:
        self.job = job
        message = {"path": job.path, "backend": job.backend, "num_frames": job.num_frames}
        if job.plant:
            message.update(plant=job.plant, seconds=time_limit * 10)
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()
        self.deadline = time.monotonic() + time_limit

    def lines(self) -> tuple[list[bytes], bool]:
        """The complete lines read now, and whether the pipe reached its end."""
        try:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
        except BlockingIOError:
            return [], False
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return lines, not chunk

    def log_tail(self, limit: int = 3000) -> str:
        """What the worker wrote to stderr since its last job began (a crash's message
        and faulthandler's stack), without faulthandler's list of extension modules."""
        self.log_file.flush()
        text = self.log.read_bytes()[-65536:].decode("utf-8", "replace")
        text = text[text.rfind("\n--- ") + 1 :] if "\n--- " in text else text
        lines = [ln for ln in text.splitlines() if not ln.startswith("Extension modules:")]
        return "\n".join(lines)[-limit:]

    def stop(self) -> int:
        """Kills the worker (its whole session); returns its exit status."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        code = self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        self.log_file.close()
        return code


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


class Pool:
    """``size`` pre-started workers; :meth:`run` feeds them jobs and calls back with each
    job's answer (a dict with ``class``), replacing every worker that crashes or hangs."""

    def __init__(self, size: int, time_limit: float = TIME_LIMIT_S, log_dir: Path | None = None):
        self.time_limit = time_limit
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="fuzz_workers_"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.started = 0
        self.replaced = 0
        self.selector = selectors.DefaultSelector()
        self.workers: list[Worker] = []
        for _ in range(size):
            self._start()

    def _start(self) -> None:
        worker = Worker(self.log_dir, self.started)
        self.started += 1
        self.workers.append(worker)
        self.selector.register(worker.proc.stdout, selectors.EVENT_READ, worker)

    def _replace(self, worker: Worker) -> int:
        self.selector.unregister(worker.proc.stdout)
        self.workers.remove(worker)
        code = worker.stop()
        self.replaced += 1
        self._start()
        return code

    def close(self) -> None:
        for worker in list(self.workers):
            self.selector.unregister(worker.proc.stdout)
            worker.stop()
        self.workers = []
        self.selector.close()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, jobs: Iterable[Job], done: Callable[[Job, dict[str, Any]], None]) -> None:
        pending = iter(jobs)
        exhausted = False
        while True:
            for worker in self.workers:
                if worker.ready and worker.job is None and not exhausted:
                    job = next(pending, None)
                    if job is None:
                        exhausted = True
                    else:
                        worker.send(job, self.time_limit)
            busy = [w for w in self.workers if w.job is not None]
            if exhausted and not busy:
                return
            now = time.monotonic()
            waits = [w.deadline - now for w in self.workers if w.job is not None or not w.ready]
            for key, _ in self.selector.select(timeout=max(0.0, min(waits, default=1.0))):
                worker: Worker = key.data
                lines, ended = worker.lines()
                for line in lines:
                    if line == b"ready":
                        worker.ready = True
                    elif worker.job is not None:
                        job, worker.job = worker.job, None
                        done(job, json.loads(line))
                if ended:
                    job, tail = worker.job, worker.log_tail()
                    code = self._replace(worker)
                    if job is None:
                        raise RuntimeError(f"a fuzz worker died idle ({code}): {tail}")
                    done(job, {"class": "crash", "exit": describe_exit(code), "log": tail})
            now = time.monotonic()
            for worker in list(self.workers):
                if worker.deadline < now and (worker.job is not None or not worker.ready):
                    job, tail = worker.job, worker.log_tail()
                    self._replace(worker)
                    if job is None:
                        raise RuntimeError(f"a fuzz worker did not start in time: {tail}")
                    done(job, {"class": "hang", "limit_s": self.time_limit, "log": tail})


# ---------------------------------------------------------------------------------- run


def fuzz(
    count: int,
    run_seed: int,
    workers: int,
    time_limit: float = TIME_LIMIT_S,
    backends: tuple[str, ...] = BACKENDS,
    progress: bool = False,
) -> dict[str, Any]:
    """Writes the seeds, makes ``count`` mutated files and loads each on ``backends``;
    returns the result (counts, findings, recipes of the findings)."""
    start = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="fuzz_videos_"))
    try:
        seeds = write_seeds(folder)
        counts = {b: {k: dict.fromkeys(CLASSES, 0) for k in KINDS} for b in backends}
        findings: list[dict[str, Any]] = []
        recipes: dict[int, Recipe] = {}
        left: dict[int, int] = {}
        typed_reasons: dict[str, dict[str, int]] = {b: {} for b in backends}
        seconds: dict[str, list[float]] = {b: [] for b in backends}
        child_deaths = dict.fromkeys(backends, 0)  # typed: decord's child process died

        def jobs() -> Iterator[Job]:
            for index in range(count):
                recipe, data = make_file(index, run_seed, seeds)
                path = folder / recipe.name()
                path.write_bytes(data)
                recipes[index], left[index] = recipe, len(backends)
                for backend in backends:
                    yield Job(str(path), backend, key=index)

        def done(job: Job, answer: dict[str, Any]) -> None:
            recipe = recipes[job.key]
            cls = answer["class"]
            counts[job.backend][recipe.kind][cls] += 1
            if "seconds" in answer:
                seconds[job.backend].append(answer["seconds"])
            if cls == "typed" and "decord's process died" in answer["message"]:
                child_deaths[job.backend] += 1
            if cls == "typed":
                reason = answer["message"].split("': ", 1)[-1][:60]
                bucket = typed_reasons[job.backend]
                bucket[reason] = bucket.get(reason, 0) + 1
            if cls not in ("decoded", "typed"):
                findings.append({"backend": job.backend, "recipe": recipe.__dict__, **answer})
                if progress:
                    print(f"  {cls}: {recipe.name()} on {job.backend}", flush=True)
            left[job.key] -= 1
            if not left[job.key]:
                Path(job.path).unlink(missing_ok=True)
                if progress and (job.key + 1) % 100 == 0:
                    print(f"{job.key + 1} files, {time.perf_counter() - start:.0f} s", flush=True)

        with Pool(workers, time_limit, folder / "logs") as pool:
            pool.run(jobs(), done)
            restarts = pool.replaced
        totals = {b: {c: sum(counts[b][k][c] for k in KINDS) for c in CLASSES} for b in backends}
        per_seed: dict[str, int] = {}
        for recipe in recipes.values():
            per_seed[recipe.seed] = per_seed.get(recipe.seed, 0) + 1
        return {
            "seed": run_seed,
            "count": count,
            "num_frames": NUM_FRAMES,
            "time_limit_s": time_limit,
            "memory_limit_bytes": MEMORY_LIMIT_BYTES,
            "workers": workers,
            "worker_restarts": restarts,
            "backends": list(backends),
            "kinds": list(KINDS),
            "classes": list(CLASSES),
            "seeds": {
                s.name: {
                    "codec": s.codec,
                    "pix_fmt": s.pix_fmt,
                    "container": s.suffix.lstrip("."),
                    "bytes": len(seeds[s.name]),
                    "sha256": hashlib.sha256(seeds[s.name]).hexdigest(),
                    "files": per_seed.get(s.name, 0),
                }
                for s in SEEDS
            },
            "totals": totals,
            "counts": counts,
            "median_load_s": {
                b: round(sorted(v)[len(v) // 2], 4) if v else None for b, v in seconds.items()
            },
            "typed_reasons": {
                b: dict(sorted(r.items(), key=lambda kv: -kv[1])[:15])
                for b, r in typed_reasons.items()
            },
            "decord_child_died": child_deaths.get("decord", 0),
            "findings": findings,
            "wall_s": round(time.perf_counter() - start, 1),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bad(result: dict[str, Any]) -> int:
    """Loads that were neither decoded nor a typed error."""
    return sum(t[c] for t in result["totals"].values() for c in ("untyped", "crash", "hang"))


# ------------------------------------------------------------------------- presentation
# What report.py collects from this module: ``render``, its section of docs/benchmarks.md.


def render(result: dict) -> list[str]:
    """The section of docs/benchmarks.md (markdown lines, heading included)."""
    out = ['<a id="fuzz"></a>', "## Fuzzed video files: `load_video` on both backends", ""]
    out += provenance(result)
    seeds = ", ".join(
        f"{s['codec']} {s['pix_fmt']} in {s['container']}" for s in result["seeds"].values()
    )
    out += [
        f"{result['count']:,} mutated files (seed {result['seed']}) made from {seeds}; each "
        f"loaded with `load_video(path, {result['num_frames']}, backend=...)` on "
        f"{' and '.join(result['backends'])} by {result['workers']} pre-started worker "
        f"processes, {result['time_limit_s']:g} s per load (then a hang: the worker is "
        f"killed), address space {result['memory_limit_bytes'] >> 30} GiB per worker. "
        f"*Typed*: `VideoDecodeError`, `FileNotFoundError` or a `ValueError` naming an "
        f"argument; *untyped*: any other exception; *crash*: the worker died. The run took "
        f"{result['wall_s']:.0f} s, {result['worker_restarts']} workers replaced. Target: "
        f"no untyped error, crash or hang. decord's own process died on "
        f"{result['decord_child_died']} of the files (`load_video` runs decord in a child "
        f"process: a typed error, docs/video.md).",
        "",
    ]
    backends = result["backends"]
    header = ["mutation", "files"]
    for b in backends:
        header += [f"{b} decoded", f"{b} typed", f"{b} untyped / crash / hang"]
    rows = []
    for kind in [*result["kinds"], "all"]:
        row_counts = {
            b: result["totals"][b] if kind == "all" else result["counts"][b][kind] for b in backends
        }
        files = sum(row_counts[backends[0]].values())
        row = [f"**{kind}**" if kind == "all" else f"`{kind}`", str(files)]
        for b in backends:
            c = row_counts[b]
            worst = f"{c['untyped']} / {c['crash']} / {c['hang']}"
            row += [str(c["decoded"]), str(c["typed"]), worst]
        rows.append(row)
    out += table(header, rows)
    return out


def write_files(folder: Path, indices: list[int], run_seed: int) -> None:
    """Writes files ``indices`` of the run seeded ``run_seed`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    seeds = write_seeds(folder)
    for index in indices:
        recipe, data = make_file(index, run_seed, seeds)
        (folder / recipe.name()).write_bytes(data)
        print(folder / recipe.name(), json.dumps(recipe.params))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="the run's seed")
    parser.add_argument("--count", type=int, default=1000, help="mutated files")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT_S, help="seconds per load")
    parser.add_argument("--out", default=str(RESULTS / f"{RESULT}.json"), help="the JSON to write")
    parser.add_argument("--write", type=Path, help="write files --only into this folder, no run")
    parser.add_argument("--only", type=int, nargs="*", default=[])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args()
    if args.worker:
        worker_main()
        return 0
    if args.write:
        write_files(args.write, args.only, args.seed)
        return 0
    result = {
        "benchmark": "load_video on mutated video files, both backends",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        **fuzz(args.count, args.seed, args.workers, args.time_limit, progress=True),
    }
    print(f"wrote {write_json(args.out, result)}")
    for backend, totals in result["totals"].items():
        print(backend, totals)
    return 1 if bad(result) else 0


if __name__ == "__main__":
    sys.exit(main())
