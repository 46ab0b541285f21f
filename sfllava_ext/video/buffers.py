"""Reusable memory for the decoded frames of repeated loads: :class:`FrameBuffers`
(public, exported by :mod:`sfllava_ext.video`). The ``pyav`` backend's sinks
(:mod:`.pyav.sinks`) decode into the buffers it lends.
"""

from __future__ import annotations

import threading

import numpy as np

from .frames import VideoClip


class FrameBuffers:
    """Reusable memory for the decoded frames of repeated loads.

    A freshly allocated frame buffer (138 MB for 50 frames of 720p) costs the kernel a
    page fault and a zeroed page per 4 KiB as the decoder first writes it; a buffer
    that an earlier load used costs nothing (``python benchmarks/bench_decode.py``
    measures both).

    ``load_video(..., buffers=pool)`` (the ``pyav`` backend) decodes into a buffer taken
    from the pool; ``pool.release(clip)`` gives it back once nothing reads
    ``clip.frames`` any more: the next load overwrites them. A clip that is never
    released keeps its buffer until the clip itself is freed: nothing leaks, the memory
    is just not reused. An idle buffer is reused only for frames that fill at least
    half of it, so a clip never pins much more memory than its frames.
    :class:`SlowFastLlava` keeps one pool per model and releases each clip as soon as
    its frames are normalised. Thread-safe.

    Args:
        max_idle_bytes: most bytes kept while not lent out (default 1 GiB); buffers
            beyond it are freed, oldest first.

    Raises:
        TypeError: max_idle_bytes not an int. ValueError: max_idle_bytes < 0.
    """

    def __init__(self, max_idle_bytes: int = 1 << 30) -> None:
        if isinstance(max_idle_bytes, bool) or not isinstance(max_idle_bytes, int):
            raise TypeError(
                f"FrameBuffers: max_idle_bytes must be an int, got {type(max_idle_bytes).__name__}"
            )
        if max_idle_bytes < 0:
            raise ValueError(f"FrameBuffers: max_idle_bytes must be >= 0, got {max_idle_bytes}")
        self.max_idle_bytes = max_idle_bytes
        self._idle: list[np.ndarray] = []
        self._lock = threading.Lock()

    @property
    def idle_bytes(self) -> int:
        """Bytes held by buffers that are not lent out."""
        with self._lock:
            return sum(b.nbytes for b in self._idle)

    def take(self, nbytes: int) -> np.ndarray:
        """A 1-D uint8 buffer of at least ``nbytes``: the smallest idle one that is
        large enough and at most twice that, else a new one of exactly ``nbytes``."""
        with self._lock:
            fits = [b for b in self._idle if nbytes <= b.nbytes <= 2 * max(nbytes, 1)]
            if fits:
                buffer = min(fits, key=lambda b: b.nbytes)
                self._idle = [b for b in self._idle if b is not buffer]
                return buffer
        return np.empty(nbytes, dtype=np.uint8)

    def give(self, buffer: np.ndarray) -> None:
        """Return a buffer from :meth:`take` (nothing may use it afterwards).

        Raises:
            TypeError: not a 1-D uint8 numpy array.
        """
        if not isinstance(buffer, np.ndarray) or buffer.dtype != np.uint8 or buffer.ndim != 1:
            raise TypeError(
                "FrameBuffers.give: buffer must be a 1-D uint8 numpy array from take(), got "
                f"{type(buffer).__name__} {getattr(buffer, 'dtype', '')}"
            )
        with self._lock:
            if any(b is buffer for b in self._idle):
                return
            self._idle.append(buffer)
            while self._idle and sum(b.nbytes for b in self._idle) > self.max_idle_bytes:
                self._idle.pop(0)

    def release(self, clip: VideoClip | None) -> None:
        """Give back the buffer of a clip loaded with ``buffers=`` this pool; its
        ``frames`` must not be read afterwards. No-op for any other clip, for
        ``None`` and for a clip already released."""
        if not isinstance(clip, VideoClip):
            return
        with self._lock:
            buffer = clip.drop_buffer()
        if buffer is not None:
            self.give(buffer)

    def clear(self) -> None:
        """Free the idle buffers."""
        with self._lock:
            self._idle = []
