"""Frames in shared memory: how a decoded clip crosses from a decode worker to the
model without being pickled or copied.

A worker decodes into blocks of its own (:class:`SharedBlocks`) and sends the block's
name with the layout of the planes in it (:meth:`~sfllava_ext.video.VideoClip.to_parts`);
the main process maps the block (:func:`map_block`) and rebuilds the clip as views of
it (:meth:`~sfllava_ext.video.VideoClip.from_parts`). Such views hold the mapping:
dropping the main process's own reference to it leaves it mapped while arrays still
use it, and unmapped with the last of them, so that a worker dying while the model
reads a clip it decoded costs no segfault.

Nothing outlives the processes (Linux, where a block is a file in ``/dev/shm``):

- a worker makes its blocks itself (not through ``multiprocessing.shared_memory``, so
  that the resource tracker has no say in them), readable by its user only;
- the main process **claims** a block once it has mapped it: it removes the name, and
  the memory then lives exactly as long as the two mappings (the worker's, reused for
  later videos, and the main process's). A name exists only between a worker making
  the block and the main process mapping it;
- a worker removes the names it still has when it ends, its parent dies included
  (:mod:`.decoding`); and
- a block's name holds the main process's pid (and pid namespace):
  :func:`unlink_stale`, called by every run, removes the blocks of runs whose main
  process is gone (one killed with its workers at once, say).
"""

from __future__ import annotations

import glob
import mmap
import os
import re
from collections.abc import Callable
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from ..video.buffers import FrameBuffers

__all__ = ["SharedBlocks", "block_prefix", "map_block", "unlink_prefix", "unlink_stale"]

_SHM = "/dev/shm"  # where Linux keeps POSIX shared memory, one file per block
_NAME = re.compile(r"sfllava-(\d+)-(\d+)-[0-9a-f]+-\d+-\d+")  # namespace, pid, job, worker, n


def _namespace() -> int:
    """This process's pid namespace (its inode), 0 where there is none to read: a pid
    in a block's name means something only within its namespace."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def block_prefix(job: str, worker: int) -> str:
    """The names of the blocks of worker ``worker`` of job ``job`` (a hex string) of
    this (the main) process: ``sfllava-<namespace>-<pid>-<job>-<worker>``."""
    return f"sfllava-{_namespace()}-{os.getpid()}-{job}-{worker}"


class _Block:
    """A block this process made: ``/dev/shm/<name>`` mapped (Linux), else a
    ``SharedMemory``."""

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.shared: SharedMemory | None = None
        if os.path.isdir(_SHM):
            path = os.path.join(_SHM, name)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.ftruncate(fd, size)
                self.map: mmap.mmap | memoryview = mmap.mmap(fd, size)
            except BaseException:
                os.unlink(path)
                raise
            finally:
                os.close(fd)
        else:
            self.shared = SharedMemory(name=name, create=True, size=size)
            self.map = self.shared.buf

    def close(self) -> None:
        """Unmaps (left to the garbage collector while arrays still read it) and
        removes the name, if still there."""
        try:
            if self.shared is not None:
                self.shared.close()
            else:
                self.map.close()
        except BufferError:
            pass  # a view still reads it: unmapped with the last one
        unlink(self.name)


def unlink(name: str) -> None:
    """Removes block ``name`` (nothing if it is gone)."""
    try:
        if os.path.isdir(_SHM):
            os.unlink(os.path.join(_SHM, name))
        else:
            block = SharedMemory(name=name)
            block.close()
            block.unlink()
    except FileNotFoundError:
        pass


class SharedBlocks(FrameBuffers):
    """A worker's :class:`~sfllava_ext.video.FrameBuffers` over shared-memory blocks
    named ``<prefix>-<n>``: ``take`` lends the smallest idle block that fits (at most
    twice the size asked), or makes one; ``give`` makes it idle again. At most
    ``keep`` idle blocks stay; the others are unlinked, and ``on_drop(name)`` tells
    the main process to unmap them."""

    def __init__(self, prefix: str, keep: int, on_drop: Callable[[str], None]) -> None:
        super().__init__(max_idle_bytes=0)
        self.prefix, self.keep, self.on_drop = prefix, keep, on_drop
        self.blocks: dict[str, _Block] = {}
        self.views: dict[str, np.ndarray] = {}
        self.free: list[str] = []
        self.named: list[str] = []  # every name made, for the exit (kept before making)
        self._made = 0

    def take(self, nbytes: int) -> np.ndarray:
        fits = [n for n in self.free if nbytes <= self.views[n].nbytes <= 2 * max(nbytes, 1)]
        if fits:
            name = min(fits, key=lambda n: self.views[n].nbytes)
            self.free.remove(name)
            return self.views[name]
        name = f"{self.prefix}-{self._made}"
        self._made += 1
        self.named.append(name)  # before the file exists: an exit between the two
        block = _Block(name, max(1, nbytes))  # still removes it
        self.blocks[name] = block
        self.views[name] = np.ndarray(max(1, nbytes), np.uint8, buffer=block.map)
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
        self.blocks.pop(name).close()
        self.named.remove(name)
        self.on_drop(name)

    def clear(self) -> None:
        """Unlinks every block (the worker's exit)."""
        self.views.clear()
        for block in self.blocks.values():
            block.close()
        self.blocks.clear()
        self.free.clear()
        self.unlink_names()

    def unlink_names(self) -> None:
        """Removes every name this worker made that is still there, and nothing else
        (safe at any point: a signal handler's, when the worker must end now)."""
        for name in list(self.named):
            unlink(name)


def map_block(name: str, *, claim: bool = False) -> mmap.mmap | bytes:
    """Block ``name`` as this process sees it: a mapping of its memory (Linux, where a
    block is a file in /dev/shm), or elsewhere a copy of its bytes. A mapping lives as
    long as a reference to it does, the arrays made from it included: drop it once
    done, and it is unmapped with the last array that still reads it. ``claim``:
    remove the name once mapped (Linux), so that the memory lives only as long as
    the mappings of it."""
    if os.path.isdir(_SHM):
        path = os.path.join(_SHM, name)
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        try:
            mapped = mmap.mmap(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)  # the mapping keeps the memory
        if claim:
            unlink(name)
        return mapped
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
        unlink(os.path.basename(path))


def unlink_stale() -> int:
    """Removes the blocks of runs whose main process is gone (by the pid in their
    name, in this pid namespace; this user's blocks only); returns how many. Blocks
    of a live process, of another namespace or of another user are left alone."""
    if not os.path.isdir(_SHM):
        return 0
    here, removed = _namespace(), 0
    for entry in os.scandir(_SHM):
        match = _NAME.fullmatch(entry.name)
        if match is None or int(match[1]) != here or _alive(int(match[2])):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            os.unlink(entry.path)
            removed += 1
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0
