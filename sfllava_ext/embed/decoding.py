"""Decoding ahead of the model: worker processes that decode into shared memory.

Each worker is a process started with ``spawn`` (forking a process whose torch has
started its threads can deadlock) and holds one video at a time. It hashes the file
first: a video whose output is already done (:meth:`.store.Store.done`) is reported
skipped without decoding. Otherwise it decodes it exactly as
``SlowFastLlava.encode(path)`` would (:func:`sfllava_ext.video.input.load_for_device`'s
rules) straight into a shared-memory block of its own (:class:`SharedBlocks`, a
:class:`~sfllava_ext.video.FrameBuffers` whose memory is shared), and sends only the
block's name and the layout of the frames in it: the frames are never pickled nor
copied. The main process maps the block (once: mappings are kept), encodes, and hands
the block back to its worker, which decodes a later video into it. A block is
unlinked by the worker that made it when it is no longer needed, or by the main
process when that worker is gone.

A worker that dies (killed, crashed) costs only the video it held: it is decoded again
once by a new worker, then recorded as failed. The tests inject such deaths through the
fault hook (:mod:`sfllava_ext.utils.faults`, point ``embed.decode``); while a hook is
installed, the main process, which otherwise decodes videos itself until the first
worker is ready, leaves every video to the workers.

A worker's settings (frames, backend, decoder threads, the output folder) reach it as
its start-up arguments (:func:`decode_settings`), never through the environment.

A worker dies with the main process, however that ends (SIGKILL included): on Linux it
asks the kernel for SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``), and
everywhere a watchdog thread checks ``os.getppid()`` twice a second. Either way, and on
a SIGTERM of its own, it removes the names of the shared-memory blocks it made and
exits at once (:mod:`.shared_memory` says why nothing else is left). Without the
workers, the ``multiprocessing`` resource tracker, which only they and the main process
keep open, ends too.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..utils import faults
from ..utils.cpus import usable_cpus
from ..video.buffers import FrameBuffers
from ..video.frames import VideoClip
from .shared_memory import SharedBlocks, block_prefix, map_block, unlink_prefix
from .store import Store, file_sha256

__all__ = [
    "Decoded",
    "DecodePool",
    "decode_in_process",
    "decode_settings",
    "failure_reason",
    "prepare",
]

logger = logging.getLogger(__name__)


@dataclass
class Decoded:
    """A decoded video, ready for the model; :meth:`release` once it is encoded."""

    index: int
    clip: Any
    sha256: str
    _release: Callable[[], None] | None = None

    def release(self) -> None:
        """Drops the frames and gives their memory back (to its worker, or to the
        model's frame buffers)."""
        self.clip = None
        if self._release is not None:
            release, self._release = self._release, None
            release()


def decode_settings(sf: Any, store: Store, workers: int, threads: int | None = None) -> dict:
    """What a worker needs to decode as ``sf.encode(path)`` would (``sf``: a
    SlowFastLlava, or a ModelSpec with its device), and to tell a done video
    (``store``) without decoding it; ``threads``: decoder threads per worker (default:
    half the CPUs over the workers, at least 1: the model has the rest)."""
    from ..video.input import keeps_planes

    cpus = usable_cpus()
    return {
        "num_frames": sf.num_frames,
        "backend": sf.backend,
        "yuv420": keeps_planes(sf.device),
        "threads": threads or max(1, cpus // (2 * max(1, workers))),
        "root": store.root,
        "key": store.key,
    }


def prepare(
    source: str,
    output: str,
    settings: dict,
    buffers: FrameBuffers | None = None,
    threads: int | None = None,
) -> tuple[str, Any, str]:
    """One video's work before the model: its SHA-256, then either ``("skipped",
    record, sha)`` when its output is done, or ``("clip", VideoClip, sha)`` (decoded
    into ``buffers`` when given, on ``threads`` decoder threads: a worker's share, or
    by default what ``load_video`` takes).

    Raises:
        OSError, VideoDecodeError, ValueError: an unreadable or undecodable video.
    """
    from ..video import load_video

    sha = file_sha256(source)
    record = Store(settings["root"], settings["key"]).done(output, sha)
    if record is not None:
        record["source"] = source
        return "skipped", record, sha
    clip = load_video(source, settings["num_frames"], backend=settings["backend"],
                      yuv420=settings["yuv420"], buffers=buffers, threads=threads)  # fmt: skip
    return "clip", clip, sha


def decode_in_process(index: int, source: str, output: str, settings: dict, buffers=None):
    """:func:`prepare` in the calling process (no workers), into ``buffers``:
    ``(kind, index, payload)`` as :meth:`DecodePool.next_result` gives it."""
    try:
        kind, value, sha = prepare(source, output, settings, buffers)
    except Exception as exc:
        return "error", index, failure_reason(exc)
    if kind == "skipped":
        return "skipped", index, value
    release = None if buffers is None else (lambda clip=value: buffers.release(clip))
    return "ok", index, Decoded(index, value, sha, release)


def failure_reason(exc: BaseException) -> str:
    """How a failed video's ``reason`` names what went wrong (errors.jsonl)."""
    return f"{type(exc).__name__}: {exc}"


class DecodePool:
    """``workers`` decode processes, each holding at most one video.

    Args:
        workers: processes to start (>= 1).
        settings: as :func:`decode_settings` makes them.
        keep: shared-memory blocks each worker keeps for reuse while idle.
    """

    def __init__(self, workers: int, settings: dict, keep: int = 2) -> None:
        self.settings = {**settings, "keep": keep}
        self.job = uuid.uuid4().hex[:10]
        self._ctx = mp.get_context("spawn")
        self._results = self._ctx.Queue()
        self._workers: list[_Worker] = []
        self._serial = 0
        self._maps: dict[str, Any] = {}  # the blocks this process has mapped (map_block)
        for _ in range(workers):
            self._workers.append(self._start())

    def _start(self) -> _Worker:
        tasks = self._ctx.Queue()
        ready = self._ctx.Event()  # set by the worker, at once (a queued message could be
        # lost when it is killed just after)
        prefix = block_prefix(self.job, self._serial)
        self._serial += 1
        process = self._ctx.Process(
            target=_work,
            args=(tasks, self._results, self.settings, prefix, ready, os.getpid()),
            daemon=True,
        )
        main = sys.modules.get("__main__")
        path = getattr(main, "__file__", None)
        if path is not None and not os.path.isfile(path):  # `python - <script`: nothing to
            del main.__file__  # re-import, and spawn would fail trying
            try:
                process.start()
            finally:
                main.__file__ = path
        else:
            process.start()
        return _Worker(process, tasks, prefix, ready)

    def idle(self) -> int:
        """Workers that have started and hold no video."""
        return sum(1 for w in self._workers if w.task is None and w.ready.is_set())

    def submit(self, index: int, source: str, output: str, attempt: int = 0) -> None:
        worker = next(w for w in self._workers if w.task is None)
        worker.task = (index, source, output, attempt)
        worker.tasks.put(("task", *worker.task))

    def next_result(self, timeout: float = 0.5) -> tuple[str, int, Any] | None:
        """One finished video: ``("ok", index, Decoded)``, ``("skipped", index,
        record)`` or ``("error", index, reason)``; None when nothing finished within
        ``timeout`` (0: only what has arrived). A dead worker's video is decoded again
        once, then reported as an error."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self._results.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return self._check_workers()
            result = self._receive(message)
            if result is not None:
                return result

    def _receive(self, message: tuple) -> tuple[str, int, Any] | None:
        kind, index, attempt, payload = message
        if kind == "dropped":
            self._unmap(payload)
            return None
        for worker in self._workers:
            if worker.task is not None and worker.task[0] == index and worker.task[3] == attempt:
                worker.task = None
        if kind != "ok":
            return kind, index, payload
        name, layout, meta, sha = payload
        block = self._maps.get(name)
        if block is None:  # claimed: from now on the mappings alone keep the memory
            block = map_block(name, claim=True)
            if isinstance(block, mmap.mmap):  # a copy (no /dev/shm) would go stale
                self._maps[name] = block
        clip = VideoClip.from_parts(block, layout, meta)
        return "ok", index, Decoded(index, clip, sha, lambda: self._give_back(name))

    def _give_back(self, name: str) -> None:
        """A block the main process is done with, back to the worker that made it."""
        for worker in self._workers:
            if name.startswith(worker.prefix + "-") and worker.process.is_alive():
                worker.tasks.put(("free", name))
                return
        self._unmap(name)  # its worker is gone: its blocks were unlinked

    def _unmap(self, name: str) -> None:
        """Drops this process's mapping of a block: unmapped now, or with the last
        clip array that still reads it (a worker died while the model read it)."""
        self._maps.pop(name, None)

    def _check_workers(self) -> tuple[str, int, Any] | None:
        for i, worker in enumerate(self._workers):
            if worker.process.is_alive():
                continue
            task = worker.task
            code = worker.process.exitcode
            if not worker.ready.is_set():
                raise RuntimeError(_not_started(code))
            self._forget(worker)
            self._workers[i] = self._start()
            if task is None:
                continue
            index, source, output, attempt = task
            if attempt == 0:
                logger.warning("decode worker died (exit %s) on %s; trying again", code, source)
                self.submit(index, source, output, attempt=1)
                return None
            return "error", index, f"the decode worker died twice on it (exit code {code})"
        return None

    def _forget(self, worker: _Worker) -> None:
        """Unlinks what a dead worker left in shared memory."""
        for name in [n for n in self._maps if n.startswith(worker.prefix + "-")]:
            self._unmap(name)
        unlink_prefix(worker.prefix)

    def close(self) -> None:
        """Stops the workers once they finish (they unlink their blocks).

        Raises:
            RuntimeError: a worker exited with an error before it ever started (the
                main process may have decoded everything itself meanwhile; a script
                without a main guard is still told so, on every run).
        """
        for worker in self._workers:
            if worker.process.is_alive():
                worker.tasks.put(None)
        for worker in self._workers:
            worker.process.join(timeout=10)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        failed = [w.process.exitcode for w in self._workers
                  if not w.ready.is_set() and w.process.exitcode]  # fmt: skip
        self._end()
        if failed:
            raise RuntimeError(_not_started(failed[0]))

    def terminate(self) -> None:
        """Ends the workers now (Ctrl-C)."""
        for worker in self._workers:
            if worker.process.is_alive():
                worker.process.kill()
        for worker in self._workers:
            worker.process.join()
        self._end()

    def _end(self) -> None:
        for name in list(self._maps):
            self._unmap(name)
        for worker in self._workers:
            unlink_prefix(worker.prefix)
        self._results.close()
        for worker in self._workers:
            worker.tasks.close()


@dataclass
class _Worker:
    process: Any
    tasks: Any
    prefix: str
    ready: Any
    task: tuple[int, str, str, int] | None = None


def _not_started(code) -> str:
    return (
        f"a decode worker could not start (exit code {code}). A script that calls "
        "embed_videos must do so under `if __name__ == '__main__':` (the workers are "
        "spawned processes, which import the main module); or pass decode_workers=0"
    )


def refuse_in_a_starting_worker() -> None:
    """Raises at once when called while a spawned process imports its parent's main
    module: a script without a main guard, whose workers would otherwise run the job
    again (and their own workers, without end).

    Raises:
        RuntimeError: naming the missing ``if __name__ == '__main__':``.
    """
    if getattr(mp.current_process(), "_inheriting", False):
        raise RuntimeError(_not_started(1))


def _work(tasks, results, settings: dict, prefix: str, ready, parent: int) -> None:
    """A decode worker's loop (in its own process; ``parent``: the main process)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    blocks = SharedBlocks(prefix, settings["keep"],
                          lambda name: results.put(("dropped", -1, -1, name)))  # fmt: skip

    def end(*_) -> None:  # the parent is gone, or SIGTERM: no name left behind, now
        blocks.unlink_names()
        os._exit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, end)
    _die_with(parent, end)
    ready.set()
    try:
        while True:
            try:
                message = tasks.get()
            except (EOFError, OSError):  # the main process is gone
                return
            if message is None:
                return
            if message[0] == "free":
                blocks.give_name(message[1])
                continue
            _, index, source, output, attempt = message
            faults.point("embed.decode", source=source, attempt=attempt)
            try:
                results.put(
                    ("ok", index, attempt, _decode_shared(source, output, settings, blocks))
                )
            except _Skipped as skipped:
                results.put(("skipped", index, attempt, skipped.record))
            except Exception as exc:
                results.put(("error", index, attempt, failure_reason(exc)))
    finally:
        blocks.clear()


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with(parent: int, end: Callable[[], None]) -> None:
    """Calls ``end`` as soon as process ``parent`` is no longer this one's parent (it
    died: this process was handed to init or a subreaper)."""
    if sys.platform.startswith("linux"):
        try:  # SIGTERM from the kernel when the parent thread exits
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still sees it
    if os.getppid() != parent:  # it died before the request above
        end()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        end()

    threading.Thread(target=watch, name="sfllava-parent-watch", daemon=True).start()


class _Skipped(Exception):
    def __init__(self, record: dict) -> None:
        self.record = record


def _decode_shared(source: str, output: str, settings: dict, blocks: SharedBlocks) -> tuple:
    """Decodes into one of the worker's blocks; the block's name, the layout of the
    frames in it, the clip's metadata and the SHA-256. The block stays lent to the
    main process until it sends it back."""
    kind, clip, sha = prepare(source, output, settings, blocks, settings["threads"])
    if kind == "skipped":
        raise _Skipped(clip)
    parts = clip.to_parts()
    buffer = clip.drop_buffer()  # the block is lent until the main process frees it
    name = None if buffer is None else blocks.name_of(buffer)
    if name is None:  # decoded elsewhere (another backend, or frames copied out): copy in
        flat = blocks.take(parts.nbytes)
        name = blocks.name_of(flat)
        for array, (_, offset) in zip(parts.arrays, parts.layout, strict=True):
            flat[offset : offset + array.nbytes] = array.reshape(-1)
        if buffer is not None:
            blocks.give(buffer)
        layout = parts.layout
    else:
        layout = [(list(a.shape), blocks.offset_in(name, a)) for a in parts.arrays]
    meta = parts.meta
    return name, layout, meta, sha
