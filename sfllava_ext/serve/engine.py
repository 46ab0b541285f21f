"""The one worker that owns the model, its bounded queue, and the session cache.

Requests become jobs, run one at a time on the worker in arrival order; at most
``--max-queue`` wait besides the one running, and past that a request is refused at
once (503, Retry-After). Every job has ``--job-timeout-s`` from its start
(:attr:`Engine.deadline`): decoding stops at it, and so does a generation, which then
answers 504 ``job_timeout``.
Sessions (:class:`~sfllava_ext.VideoSession`) are kept by the SHA-256 of their video's
bytes, least recently used first out once they hold more than ``--cache-gb``, so a
second question about a video skips decoding and encoding.

The worker is the process's main thread under ``sfllava serve`` (:meth:`Engine.serve`;
the HTTP server then runs on a thread of its own): on the CPU, PyTorch's thread pools
answer a parallel region from the main thread at once, but wake up per region from
any other thread, which doubles the time of the small operations of token-by-token
decoding. :meth:`Engine.start` runs the worker on a thread instead.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ..llm.runtime import context_length
from ..session.session import VideoSession
from ..utils import faults
from ..video import load_video
from ..video.frames import VideoDecodeError
from ..video.input import keeps_planes
from ..video.limits import DecodeLimits
from .config import ServeConfig
from .errors import ApiError, job_timeout
from .media import Video, check_header, video_error

__all__ = ["Engine", "JobStop", "submit_for", "wait_for"]

logger = logging.getLogger(__name__)
_STOP = object()


class Engine:
    """Runs jobs for the model on one thread.

    Args:
        sf: the :class:`~sfllava_ext.SlowFastLlava` served.
        config: the service's limits.
    """

    def __init__(self, sf: Any, config: ServeConfig) -> None:
        if getattr(sf, "backend", "pyav") == "decord":
            raise ValueError(
                "serve: the service decodes with pyav, which enforces --max-pixels and "
                "--max-decode-mpx on every frame; decord cannot, so backend='decord' is "
                "refused"
            )
        self.sf = sf
        self.config = config
        self.context = context_length(sf.config.text_config)
        self._jobs: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._waiting = 0
        self.deadline = math.inf  # the running job's (time.monotonic())
        self._sessions: OrderedDict[str, VideoSession] = OrderedDict()
        self.stats = {"completed": 0, "failed": 0, "cancelled": 0, "refused_busy": 0}
        self._thread = threading.Thread(target=self._run, name="sfllava-serve", daemon=True)

    def start(self) -> None:
        """Runs the worker on a thread of its own."""
        self._thread.start()

    def serve(self) -> None:
        """Runs the worker on the calling thread (the main one) until :meth:`stop`."""
        self._run()

    def stop(self) -> None:
        """Lets the job in hand finish, drops the waiting ones, ends the worker."""
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                item[1].cancel()  # (fn, future, kind, video)
                with self._lock:
                    self._waiting -= 1
        self._jobs.put(_STOP)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=60)

    def submit(
        self, fn: Callable[[], Any], kind: str = "job", video: Video | None = None
    ) -> Future:
        """Queues ``fn`` for the worker (``kind`` and ``video`` name the job for the
        fault hook's ``serve.job`` point).

        Raises:
            ApiError: 503 with ``Retry-After`` when ``--max-queue`` jobs already wait.
        """
        with self._lock:
            if self._waiting >= self.config.max_queue:
                self.stats["refused_busy"] += 1
                raise ApiError(
                    503,
                    f"the server is busy: {self._waiting} requests are waiting "
                    f"(--max-queue {self.config.max_queue}); retry shortly",
                    code="server_busy",
                    headers={"Retry-After": "1"},
                )
            self._waiting += 1
        future: Future = Future()
        self._jobs.put((fn, future, kind, video))
        return future

    def health(self) -> dict[str, Any]:
        with self._lock:
            sessions = list(self._sessions.values())
            running = int(math.isfinite(self.deadline))
            stats = {"waiting": self._waiting, "running": running, **self.stats}
        # outside the engine's lock: a session builds its prefix under its own
        return {**stats, "sessions": len(sessions), "session_bytes": sum(map(_held, sessions))}

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is _STOP:
                return
            fn, future, kind, video = item
            with self._lock:
                self._waiting -= 1  # running, or dropped: no longer waiting
            if not future.set_running_or_notify_cancel():
                continue
            self.deadline = time.monotonic() + self.config.job_timeout_s
            try:
                faults.point("serve.job", kind=kind, video=video)
                future.set_result(fn())
                self.count("completed")
            except BaseException as exc:  # handed to the request
                self.count("failed")
                future.set_exception(exc)
            finally:
                self.deadline = math.inf

    def count(self, key: str) -> None:
        """Adds one to the counter ``key`` of :meth:`health`."""
        with self._lock:
            self.stats[key] += 1

    # ------------------------------------------------------------- in the worker

    def session_for(self, video: Video, param: str) -> VideoSession:
        """The cached session of the video's bytes, or a new one (the header checked,
        then decoded within the limits and encoded). The service's copy is removed
        either way.

        Raises:
            ApiError: 400 for a video over the limits or one that cannot be decoded;
                504 past the job's deadline.
        """
        try:
            with self._lock:
                session = self._sessions.get(video.sha256)
                if session is not None:
                    self._sessions.move_to_end(video.sha256)
                    return session
            limits = self.decode_limits()  # the deadline's check comes first in both
            check_header(video, param, self.config, limits)
            session = self._decode_and_encode(video, param, limits)
        finally:
            video.discard()
        session.info = session.info.replace(sha256=video.sha256, video=None)
        with self._lock:
            self._sessions[video.sha256] = session
        self.trim()
        return session

    def decode_limits(self) -> DecodeLimits:
        """The limits a video is decoded under: ``--max-pixels`` per frame,
        ``--max-decode-mpx`` in all, the formats allowed and the job's deadline."""
        return self.config.decode_limits(self.deadline if math.isfinite(self.deadline) else None)

    def _decode_and_encode(self, video: Video, param: str, limits: DecodeLimits) -> VideoSession:
        sf = self.sf
        try:
            clip = load_video(
                video.path,
                sf.num_frames,
                backend="pyav",
                buffers=sf.frame_buffers,
                yuv420=keeps_planes(sf.device),
                limits=limits,
            )
        except (VideoDecodeError, FileNotFoundError) as exc:  # VideoLimitError included
            raise video_error(exc, param) from None
        try:
            session = sf.session(clip)
        finally:
            sf.frame_buffers.release(clip)
        return session

    def stop_for(self, cancel: threading.Event | None = None) -> JobStop:
        """What ends the running job's generation: its deadline, or ``cancel``."""
        return JobStop(self.deadline, cancel)

    def check_client(self, gone: threading.Event) -> None:
        """Raises ApiError (``client_closed``) when the job's client has left (the
        job is then skipped: nobody would read its answer)."""
        if gone.is_set():
            self.count("cancelled")
            raise ApiError(400, "the client left before its job ran", code="client_closed")

    def check_deadline(self) -> None:
        """Raises ApiError (504 ``job_timeout``) once the running job is past its
        deadline."""
        if time.monotonic() > self.deadline:
            raise job_timeout()

    def trim(self) -> None:
        """Drops the least recently used sessions while they hold more than
        ``--cache-gb`` (the newest always stays until the next one arrives)."""
        with self._lock:
            while len(self._sessions) > 1 and (
                sum(_held(s) for s in self._sessions.values()) > self.config.cache_bytes
            ):
                self._sessions.popitem(last=False)
            if self.config.cache_bytes == 0:
                self._sessions.clear()

    def check_length(self, prompt_tokens: int, max_tokens: int) -> None:
        """Raises ApiError (400, ``max_tokens``) when the prompt and ``max_tokens`` pass
        the model's context."""
        if prompt_tokens + max_tokens > self.context:
            raise ApiError(
                400,
                f"the prompt holds {prompt_tokens} tokens (with the video's visual tokens); "
                f"with max_tokens {max_tokens} that passes the model's context of "
                f"{self.context}",
                param="max_tokens",
                code="context_length_exceeded",
            )


def submit_for(engine: Engine, job: Callable[[], Any], kind: str, video: Video) -> Future:
    """Queues ``job`` about ``video``; the video's temporary copy goes at once when the
    queue is full (the request is refused)."""
    try:
        return engine.submit(job, kind, video)
    except BaseException:
        video.discard()
        raise


async def wait_for(future: Future, video: Video, watch: Any = None) -> Any:
    """The job's result (or its exception); the video's copy goes either way, and so
    does ``watch`` (a task watching the client, cancelled here)."""
    try:
        return await asyncio.wrap_future(future)
    finally:
        video.discard()
        if watch is not None:
            watch.cancel()


class JobStop:
    """A stop event for a generation (``is_set``): true once the job's deadline has
    passed, or ``cancel`` is set."""

    def __init__(self, deadline: float, cancel: threading.Event | None = None) -> None:
        self.deadline = deadline
        self.cancel = cancel

    def is_set(self) -> bool:
        return time.monotonic() > self.deadline or (
            self.cancel is not None and self.cancel.is_set()
        )


def _held(session: VideoSession) -> int:
    return sum(session.held_bytes.values())
