"""Frames in shared memory: how a decoded clip crosses from a decode worker to the
model without being pickled or copied.

A worker decodes into blocks of its own (:class:`SharedBlocks`) and sends the block's
name with the layout of the planes in it (:func:`clip_parts`); the main process maps
the block and rebuilds the clip as views of it (:func:`clip_from`). Such views hold
the mapping: :func:`close_mapping` leaves a mapping that arrays still use to the last
of them, so that a worker dying while the model reads its clip costs no segfault.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from ..video.buffers import FrameBuffers

__all__ = [
    "SharedBlocks",
    "arrays_of",
    "clip_from",
    "clip_parts",
    "close_mapping",
    "meta_of",
    "unlink_prefix",
]


def clip_parts(clip: Any) -> tuple[list[np.ndarray], list, dict]:
    """A clip as flat parts: its uint8 arrays (the Y, U and V planes, or the RGB
    frames), their layout one after another (``[(shape, offset), ...]``) and the rest
    of the clip as plain values; :func:`clip_from` puts it back together."""
    arrays = arrays_of(clip)
    layout, offset = [], 0
    for array in arrays:
        layout.append((list(array.shape), offset))
        offset += array.nbytes
    return arrays, layout, meta_of(clip)


def arrays_of(clip: Any) -> list[np.ndarray]:
    """A clip's frames as uint8 arrays: the Y, U and V planes, or the one RGB array."""
    from ..frames import Yuv420Frames

    if isinstance(clip.frames, Yuv420Frames):
        return [clip.frames.y.numpy(), clip.frames.u.numpy(), clip.frames.v.numpy()]
    return [clip.frames.numpy()]


def meta_of(clip: Any) -> dict:
    """What :func:`clip_from` needs besides the arrays: indices, counts, colour
    coefficients (None for RGB frames), backend and path; JSON-serialisable."""
    from ..frames import Yuv420Frames

    coeffs = list(clip.frames.coeffs) if isinstance(clip.frames, Yuv420Frames) else None
    return {"coeffs": coeffs, "indices": list(clip.indices), "path": clip.path,
            "total_frames": clip.total_frames, "fps": clip.fps,
            "duration": clip.duration, "backend": clip.backend}  # fmt: skip


def clip_from(buffer: Any, layout: list, meta: dict) -> Any:
    """The :class:`~sfllava_ext.frames.VideoClip` of :func:`clip_parts`, its frames
    views of ``buffer`` (shared memory, or bytes: read-only views, which the model
    only reads)."""
    import warnings

    import torch

    from ..frames import VideoClip, Yuv420Frames

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        # np.frombuffer holds the buffer exported while an array lives, so that the
        # mapping cannot be closed under it (np.ndarray(buffer=...) does not)
        arrays = [
            torch.from_numpy(
                np.frombuffer(buffer, np.uint8, int(np.prod(shape)), offset).reshape(shape)
            )
            for shape, offset in layout
        ]
    frames = Yuv420Frames(*arrays, meta["coeffs"]) if meta["coeffs"] is not None else arrays[0]
    return VideoClip(frames, meta["indices"], meta["total_frames"], meta["fps"],
                     meta["duration"], meta["backend"], meta["path"])  # fmt: skip


class SharedBlocks(FrameBuffers):
    """A worker's :class:`~sfllava_ext.video.FrameBuffers` over shared-memory blocks
    named ``<prefix>-<n>``: ``take`` lends the smallest idle block that fits (at most
    twice the size asked), or makes one; ``give`` makes it idle again. At most
    ``keep`` idle blocks stay; the others are unlinked, and ``on_drop(name)`` tells
    the main process to unmap them."""

    def __init__(self, prefix: str, keep: int, on_drop: Callable[[str], None]) -> None:
        super().__init__(max_idle_bytes=0)
        self.prefix, self.keep, self.on_drop = prefix, keep, on_drop
        self.blocks: dict[str, SharedMemory] = {}
        self.views: dict[str, np.ndarray] = {}
        self.free: list[str] = []
        self._made = 0

    def take(self, nbytes: int) -> np.ndarray:
        fits = [n for n in self.free if nbytes <= self.views[n].nbytes <= 2 * max(nbytes, 1)]
        if fits:
            name = min(fits, key=lambda n: self.views[n].nbytes)
            self.free.remove(name)
            return self.views[name]
        name = f"{self.prefix}-{self._made}"
        self._made += 1
        block = SharedMemory(name=name, create=True, size=max(1, nbytes))
        self.blocks[name] = block
        self.views[name] = np.ndarray(max(1, nbytes), np.uint8, buffer=block.buf)
        return self.views[name]

    def give(self, buffer: np.ndarray) -> None:
        self.give_name(self.name_of(buffer))

    def give_name(self, name: str | None) -> None:
        if name is None or name not in self.views or name in self.free:
            return
        self.free.append(name)
        while len(self.free) > self.keep:
            self._drop(self.free.pop(0))

    def name_of(self, array: np.ndarray) -> str | None:
        """The block whose memory ``array`` starts at, if any."""
        start = array.__array_interface__["data"][0]
        for name, view in self.views.items():
            if view.__array_interface__["data"][0] == start:
                return name
        return None

    def offset_in(self, name: str, array: np.ndarray) -> int:
        return (
            array.__array_interface__["data"][0] - self.views[name].__array_interface__["data"][0]
        )

    def _drop(self, name: str) -> None:
        self.views.pop(name)
        block = self.blocks.pop(name)
        block.close()
        block.unlink()
        self.on_drop(name)

    def clear(self) -> None:
        """Unlinks every block (the worker's exit)."""
        self.views.clear()
        for block in self.blocks.values():
            block.close()
            try:
                block.unlink()
            except FileNotFoundError:
                pass
        self.blocks.clear()
        self.free.clear()


def close_mapping(block: SharedMemory) -> None:
    """Closes this process's mapping of ``block``, or, while arrays of
    :func:`clip_from` still use it, leaves it to them: it is unmapped with the last of
    them (a worker that died while the model reads a clip it decoded)."""
    try:
        block.close()
    except BufferError:  # the arrays export the mapping, and hold it
        block._mmap = None
        block.close()  # closes the file descriptor


def unlink_prefix(prefix: str) -> None:
    """Unlinks the shared-memory blocks named ``<prefix>-*`` that still exist (Linux
    lists them in /dev/shm; elsewhere a dead worker's blocks wait for the resource
    tracker, which unlinks them when this process exits)."""
    for path in glob.glob(os.path.join("/dev/shm", glob.escape(prefix) + "-*")):
        try:
            block = SharedMemory(name=os.path.basename(path))
        except FileNotFoundError:
            continue
        block.close()
        try:
            block.unlink()
        except FileNotFoundError:
            pass
