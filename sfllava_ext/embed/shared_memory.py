"""Frames in shared memory: how a decoded clip crosses from a decode worker to the
model without being pickled or copied.

A worker decodes into blocks of its own (:class:`SharedBlocks`) and sends the block's
name with the layout of the planes in it (:meth:`~sfllava_ext.video.VideoClip.to_parts`);
the main process maps the block (:func:`map_block`) and rebuilds the clip as views of
it (:meth:`~sfllava_ext.video.VideoClip.from_parts`). Such views hold the mapping:
dropping the main process's own reference to it leaves it mapped while arrays still
use it, and unmapped with the last of them, so that a worker dying while the model
reads a clip it decoded costs no segfault.
"""

from __future__ import annotations

import glob
import mmap
import os
from collections.abc import Callable
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from ..video.buffers import FrameBuffers

__all__ = ["SharedBlocks", "map_block", "unlink_prefix"]

_SHM = "/dev/shm"  # where Linux keeps POSIX shared memory, one file per block


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


def map_block(name: str) -> mmap.mmap | bytes:
    """Block ``name`` as this process sees it: a mapping of its memory (Linux, where a
    block is a file in /dev/shm), or elsewhere a copy of its bytes. A mapping lives as
    long as a reference to it does, the arrays made from it included: drop it once
    done, and it is unmapped with the last array that still reads it."""
    if os.path.isdir(_SHM):
        fd = os.open(os.path.join(_SHM, name), os.O_RDWR)
        try:
            return mmap.mmap(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)  # the mapping keeps the memory
    block = SharedMemory(name=name)  # no file to map: copy, so that nothing outlives it
    try:
        return bytes(block.buf)
    finally:
        block.close()


def unlink_prefix(prefix: str) -> None:
    """Unlinks the shared-memory blocks named ``<prefix>-*`` that still exist (Linux
    lists them in /dev/shm; elsewhere a dead worker's blocks wait for the resource
    tracker, which unlinks them when this process exits)."""
    for path in glob.glob(os.path.join(_SHM, glob.escape(prefix) + "-*")):
        try:
            block = SharedMemory(name=os.path.basename(path))
        except FileNotFoundError:
            continue
        block.close()
        try:
            block.unlink()
        except FileNotFoundError:
            pass
