"""``embed_videos``: the visual tokens of many videos, pipelined on one machine.

    inputs --collect_inputs--> items (source, output name)
           --DecodePool (spawned processes)--> sha256, done? else frames in shared memory
           --model thread, in order--> visual tokens (SlowFastLlava.encode of the clip)
           --writer thread--> session files, index.jsonl, errors.jsonl (atomic)

At most ``max_in_flight`` videos are between submission and the model at once (those
decoding and those decoded and waiting), and at most ``max_in_flight`` encoded ones
wait for the writer: memory stays bounded whatever the number of videos.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..session.file import settings_key, tokens_bytes
from ..session.info import VideoInfo
from ..utils import faults
from ..utils.cpus import usable_cpus
from . import shared_memory
from .decoding import (
    DecodePool,
    decode_in_process,
    decode_settings,
    failure_reason,
    refuse_in_a_starting_worker,
)
from .inputs import Item, collect_inputs
from .store import ERRORS, INDEX, FolderLock, Journal, Store, index_record, session_info

__all__ = ["EmbedSummary", "default_decode_workers", "deferred_signals", "embed_videos"]

logger = logging.getLogger(__name__)


@dataclass
class EmbedSummary:
    """What a run of :func:`embed_videos` did: videos ``done`` (embedded now),
    ``skipped`` (already done for these bytes and settings), ``failed`` (and
    ``failures``: ``source``, ``output``, ``reason``), and where it wrote."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[dict] = field(default_factory=list)
    out_dir: str = ""
    index: str = ""
    errors: str = ""
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return self.done + self.skipped + self.failed

    @classmethod
    def of(cls, journal: Journal, started: float) -> EmbedSummary:
        """The summary of what ``journal`` recorded, for a run that began at
        ``started`` (``time.perf_counter()``)."""
        store = journal.store
        return cls(
            done=journal.done,
            skipped=journal.skipped,
            failed=len(journal.failures),
            failures=list(journal.failures),
            out_dir=store.root,
            index=os.path.join(store.root, INDEX),
            errors=os.path.join(store.root, ERRORS),
            seconds=time.perf_counter() - started,
        )

    def line(self) -> str:
        """The summary in one line, as ``sfllava embed`` prints it."""
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        return (
            f"embed: {self.done} done, {self.skipped} skipped, {self.failed} failed "
            f"in {self.seconds:.1f} s ({rate:.2f} videos/s) -> {self.out_dir}"
        )


def default_decode_workers() -> int:
    """Decode processes when none are asked for: half the CPUs (the model takes the
    rest), at most 4; none on a single CPU, where a worker could only take turns with
    the model."""
    cpus = usable_cpus()
    return 0 if cpus < 2 else min(4, cpus // 2)


def embed_videos(
    inputs: str | os.PathLike | list,
    out_dir: str | os.PathLike,
    model: Any,
    *,
    decode_workers: int | None = None,
    decode_threads: int | None = None,
    progress: bool = True,
    max_in_flight: int | None = None,
    on_video: Callable[[str, dict], None] | None = None,
) -> EmbedSummary:
    """Writes the visual tokens of every video that ``inputs`` name into ``out_dir``:
    one session file per video (:meth:`sfllava_ext.VideoSession.load` reads it), equal
    to ``model.encode(path)``, with ``index.jsonl`` and ``errors.jsonl``.

    Args:
        inputs: video files, folders (recursive), globs and ``.jsonl``/``.csv``
            manifests (:func:`~sfllava_ext.embed.collect_inputs`).
        out_dir: the output folder (made if missing). A video already done there for
            the same bytes and settings is skipped; a failed one is tried again.
        model: the :class:`~sfllava_ext.SlowFastLlava` that encodes.
        decode_workers: decode processes running ahead of the model (default
            :func:`default_decode_workers`); 0 decodes on the calling thread.
        decode_threads: decoder threads per worker (default: half the CPUs over the
            workers, at least 1; the model's threads have the rest).
        progress: a tqdm bar (videos, videos per second, ETA) on stderr.
        max_in_flight: videos decoding or decoded and waiting for the model at once
            (default ``decode_workers + 2``).
        on_video: called as ``on_video(kind, record)`` once per video, as it is
            recorded: ``"done"`` or ``"skipped"`` with its index record, ``"failed"``
            with ``source``, ``output`` and ``reason`` (from the pipeline's threads, one
            call at a time: keep it quick).

    Returns:
        The :class:`EmbedSummary`; a video that fails is recorded there and in
        ``errors.jsonl``, and the run goes on.

    Raises:
        FileNotFoundError, ValueError: inputs that name no video (before any work).
        OutputNameError, OutputCollisionError: an output name that is unsafe or leaves
            ``out_dir``, or two videos with the same output name (before any work;
            :func:`~sfllava_ext.embed.inputs.output_name`).
        OutputFolderLocked: another run is writing into ``out_dir`` (before any work).
        KeyboardInterrupt: after stopping cleanly (only complete outputs are left, and
            the index and errors of what was finished are written).
    """
    started = time.perf_counter()
    items = collect_inputs(inputs)
    workers = default_decode_workers() if decode_workers is None else int(decode_workers)
    if workers < 0:
        raise ValueError(f"decode_workers must be >= 0, got {decode_workers}")
    if workers:
        refuse_in_a_starting_worker()
    limit = max(1, workers) + 2 if max_in_flight is None else int(max_in_flight)
    if limit < 1:
        raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
    with FolderLock(out_dir):  # one run per folder, from reading the index to writing it
        store = Store(out_dir, settings_key(model))
        store.clean_stale_temps()
        shared_memory.unlink_stale()  # the blocks of an earlier run that was killed
        journal = Journal(store, listener=on_video)
        _run(items, store, journal, model, workers, decode_threads, limit, progress)
    return EmbedSummary.of(journal, started)


def _run(items, store, journal, model, workers, decode_threads, limit, progress) -> None:
    from tqdm.auto import tqdm

    settings = decode_settings(model, store, workers, decode_threads)
    bar = tqdm(total=len(items), unit="video", desc="embed", disable=not progress, smoothing=0.1)
    writer = _Writer(store, model, journal, bar, limit)
    decoded = _in_order(items, settings, workers, limit, model.frame_buffers)
    try:
        for item, kind, payload in decoded:
            if kind == "skipped":
                journal.add(payload, skipped=True)
                bar.update(1)
            elif kind == "error":
                journal.fail(item.source, item.output, payload)
                bar.update(1)
            else:
                _encode(model, item, payload, writer, journal, bar)
            bar.set_postfix(
                done=journal.done, skipped=journal.skipped, failed=len(journal.failures)
            )
            journal.maybe_flush()
    finally:  # also on Ctrl-C, SIGTERM (sfllava embed) or an error; a signal that
        with deferred_signals():  # comes now waits until the index is written
            try:
                decoded.close()  # the workers end, their shared memory is freed
            finally:
                writer.close()  # what was encoded is written: complete outputs only
                journal.flush()  # a record for every output written
                bar.set_postfix(
                    done=journal.done, skipped=journal.skipped, failed=len(journal.failures)
                )
                bar.close()


@contextlib.contextmanager
def deferred_signals(signums=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP)):
    """The body runs to its end before the Python handlers of ``signums`` do (Ctrl-C's,
    ``sfllava embed``'s SIGTERM): the first such signal is held until the body is done,
    then its handler runs (raising, as it would have); a second one runs at once.
    Signals left to the system (default, ignored) are untouched; outside the main
    thread this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    saved = {}

    def restore() -> None:
        for number, handler in saved.items():
            signal.signal(number, handler)

    def hold(signum, frame) -> None:
        if pending:  # the second: no more waiting
            restore()
            saved[signum](signum, frame)
        pending.append(signum)

    for number in signums:
        handler = signal.getsignal(number)
        if callable(handler):
            saved[number] = handler
            signal.signal(number, hold)
    try:
        yield
    finally:
        restore()
        if pending:
            saved[pending[0]](pending[0], None)


def _encode(model, item: Item, decoded, writer: _Writer, journal: Journal, bar) -> None:
    """One decoded video through the model, handed to the writer."""
    clip = decoded.clip
    try:
        tokens = model.encode(clip)
        info = session_info(clip, item.source, decoded.sha256)
    except Exception as exc:
        journal.fail(item.source, item.output, failure_reason(exc))
        bar.update(1)
        return
    finally:
        del clip
        decoded.release()
    writer.put(item, tokens, info)


def _in_order(items: list[Item], settings: dict, workers: int, limit: int, buffers) -> Iterator:
    """``(item, kind, payload)`` for every item, in order, decoded ahead by ``workers``
    processes with at most ``limit`` items between submission and the consumer (with
    no workers: decoded here, into ``buffers``)."""
    if workers == 0:
        for i, item in enumerate(items):
            kind, _, payload = decode_in_process(i, item.source, item.output, settings, buffers)
            yield item, kind, payload
        return
    pool = DecodePool(workers, settings, keep=limit + 1)
    held: dict[int, tuple[str, Any]] = {}
    submitted = consumed = 0
    finished = False
    try:
        while consumed < len(items):
            while (result := pool.next_result(timeout=0)) is not None:
                held[result[1]] = (result[0], result[2])
            while submitted < len(items) and pool.idle() and submitted - consumed < limit:
                pool.submit(submitted, items[submitted].source, items[submitted].output)
                submitted += 1
            if consumed in held:
                kind, payload = held.pop(consumed)
            elif submitted == consumed and not faults.installed():
                # no worker has started yet: decode it here (a fault hook's videos are
                # the workers' alone)
                item = items[consumed]
                kind, _, payload = decode_in_process(consumed, item.source, item.output,
                                                     settings, buffers)  # fmt: skip
                submitted += 1
            else:
                result = pool.next_result(timeout=0.5)
                if result is not None:
                    held[result[1]] = (result[0], result[2])
                continue
            yield items[consumed], kind, payload
            consumed += 1
        finished = True
    finally:
        for kind, payload in held.values():
            if kind == "ok":
                payload.release()
        if finished:
            pool.close()
        else:
            pool.terminate()


class _Writer:
    """The thread that serialises tokens and writes session files, so that the model
    never waits on the disk. At most ``limit`` encoded videos wait for it."""

    def __init__(self, store: Store, model, journal: Journal, bar, limit: int) -> None:
        self.store, self.model, self.journal, self.bar = store, model, journal, bar
        self._queue: queue.Queue = queue.Queue(maxsize=limit)
        self._thread = threading.Thread(target=self._run, name="sfllava-embed-writer", daemon=True)
        self._thread.start()

    def put(self, item: Item, tokens, info: VideoInfo) -> None:
        self._queue.put((item, tokens, info))

    def close(self) -> None:
        """Writes what is queued, then stops."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            item, tokens, info = task
            try:
                self.store.write_output(item.output, tokens_bytes(tokens, self.model, info))
                self.journal.add(index_record(item.output, info, tokens), skipped=False)
            except Exception as exc:  # a full disk, a read-only folder
                self.journal.fail(item.source, item.output, f"writing: {failure_reason(exc)}")
            finally:
                del tokens, task
            self.bar.update(1)
