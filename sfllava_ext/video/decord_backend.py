"""The ``decord`` backend: ``decord.VideoReader(path).get_batch(indices)``, what the
published code runs. Internal module; ``load_video(..., backend="decord")`` calls
:func:`load_with_decord`.

decord is imported only when this backend is used. Every call makes its own reader (a
reader shared between threads aborts the process) and releases it as soon as the
frames are copied out (an idle reader keeps decoding ahead and holds hundreds of MB).
(Not named ``decord.py``, so that it is never mistaken for decord itself.)
"""

from __future__ import annotations

import numpy as np

from .frames import VideoClip, VideoDecodeError, make_clip
from .sampling import pick_indices


def load_with_decord(path: str, num_frames: int, fps: float | None) -> VideoClip:
    """``decord.VideoReader(path).get_batch(indices)``, one reader per call, freed at once."""
    try:
        import decord
    except ImportError as exc:
        raise ImportError(
            "load_video(backend='decord') needs decord (pip install decord); "
            "backend='pyav' returns the same frames"
        ) from exc
    decord_errors = (decord.DECORDError, RuntimeError, AssertionError, IndexError)
    reader = None
    try:
        try:
            reader = decord.VideoReader(path, ctx=decord.cpu(0))
            total_frames = len(reader)
            video_fps = float(reader.get_avg_fps())
        except decord_errors as exc:
            raise VideoDecodeError(path, _decord_reason(exc)) from exc
        if total_frames < 1:
            raise VideoDecodeError(path, "decord: the video has no frames")
        if not np.isfinite(video_fps) or video_fps <= 0:
            video_fps = None
        indices = pick_indices(path, total_frames, video_fps, num_frames, fps)
        try:
            batch = reader.get_batch(indices)
        except decord_errors as exc:
            raise VideoDecodeError(path, _decord_reason(exc)) from exc
        # decord's output bridge is global state (another library may switch it to torch).
        array = batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)
        del batch
    finally:
        # Release the reader now: its decoder thread keeps decoding ahead while it lives.
        del reader
    return make_clip(array, indices, total_frames, video_fps, "decord", path)


def _decord_reason(exc: BaseException) -> str:
    """decord's messages start with '[time] /path/file.cc:line: '; keep the rest."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    marker = text.find(".cc:")
    if text.startswith("[") and marker != -1:
        rest = text[marker + 4 :]
        text = rest.split(": ", 1)[1] if ": " in rest else rest
    return f"decord: {text}"
