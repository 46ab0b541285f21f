"""The ``decord`` backend: ``decord.VideoReader(path).get_batch(indices)``, what the
published code runs, in a child process. Internal module; ``load_video(...,
backend="decord")`` calls :func:`load_with_decord`.

decord aborts the whole process on some damaged files: a container that announces
2**31 frames (an MP4 ``stts`` count, an AVI ``strh`` length) makes its reader allocate
an index for all of them, and the ``std::bad_alloc`` ends in ``std::terminate``
(benchmarks/fuzz_videos.py found these). No check of the file beforehand can know every
such path, so every call runs decord in a child process of its own: a fresh
interpreter that imports only numpy and decord (about 0.2 s), opens the reader, says
how many frames and what frame rate it found, is told the indices (picked here, by
:func:`~sfllava_ext.video.sampling.pick_indices`), and sends the frames back through a
pipe. When the child dies, the caller gets a :class:`VideoDecodeError` naming the
signal, and this process goes on. The child's reader is also never shared between
threads (which aborts too) and is gone with the child (an idle reader keeps decoding
ahead and holds hundreds of MB). decord's and FFmpeg's messages go to a temporary file,
whose last line a crash's error quotes.

decord is never imported in this process. (Not named ``decord.py``, so that it is
never mistaken for decord itself.)
"""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np

from .frames import VideoClip, VideoDecodeError, make_clip
from .sampling import pick_indices

# The child: its answers are JSON lines on a private copy of stdout (fd 1 goes to
# stderr, so that nothing decord prints garbles them), then the frames' raw bytes.
_CHILD = r"""
import json, os, sys
sys.path[:] = json.loads(sys.argv[2])
out = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)

def send(message):
    out.write((json.dumps(message) + "\n").encode())
    out.flush()

import numpy as np
import decord
errors = (decord.DECORDError, RuntimeError, AssertionError, IndexError)
try:
    reader = decord.VideoReader(sys.argv[1], ctx=decord.cpu(0))
    send({"total": len(reader), "fps": float(reader.get_avg_fps())})
except errors as exc:
    send({"error": str(exc), "type": type(exc).__name__})
    sys.exit(0)
line = sys.stdin.readline()
if not line.strip():
    sys.exit(0)
try:
    batch = reader.get_batch(json.loads(line))
    array = np.ascontiguousarray(batch.asnumpy(), dtype=np.uint8)
except errors as exc:
    send({"error": str(exc), "type": type(exc).__name__})
    sys.exit(0)
del batch, reader
send({"shape": list(array.shape)})
out.write(memoryview(array).cast("B"))
out.flush()
"""


def load_with_decord(path: str, num_frames: int, fps: float | None) -> VideoClip:
    """``decord.VideoReader(path).get_batch(indices)`` in a child process, one per call.

    Raises:
        ImportError: decord is not installed.
        VideoDecodeError: decord cannot read the file, or its process died on it.
    """
    if importlib.util.find_spec("decord") is None:
        raise ImportError(
            "load_video(backend='decord') needs decord (pip install decord); "
            "backend='pyav' returns the same frames"
        )
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, path, json.dumps(sys.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        try:
            opened = _answer(proc, log, path)
            total_frames, video_fps = int(opened["total"]), float(opened["fps"])
            if total_frames < 1:
                raise VideoDecodeError(path, "decord: the video has no frames")
            if not np.isfinite(video_fps) or video_fps <= 0:
                video_fps = None
            indices = pick_indices(path, total_frames, video_fps, num_frames, fps)
            proc.stdin.write((json.dumps(indices) + "\n").encode())
            proc.stdin.flush()
            shape = _answer(proc, log, path)["shape"]
            array = np.empty(shape, dtype=np.uint8)
            view = memoryview(array).cast("B")
            got = 0
            while got < len(view):
                n = proc.stdout.readinto(view[got:])
                if not n:
                    _died(proc, log, path)
                got += n
        except BrokenPipeError:
            _died(proc, log, path)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
    return make_clip(array, indices, total_frames, video_fps, "decord", path)


def _answer(proc: subprocess.Popen, log: Any, path: str) -> dict[str, Any]:
    """The child's next message; VideoDecodeError for decord's error or its death."""
    line = proc.stdout.readline()
    if not line:
        _died(proc, log, path)
    message = json.loads(line)
    if "error" in message:
        raise VideoDecodeError(path, _decord_reason(message["error"], message["type"]))
    return message


def _died(proc: subprocess.Popen, log: Any, path: str) -> None:
    """The child ended without answering: VideoDecodeError with how, and its last words."""
    code = proc.wait()
    if code < 0:
        try:
            how = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
    else:
        how = f"exited with status {code}"
    log.seek(0)
    lines = [ln.strip() for ln in log.read()[-4096:].decode("utf-8", "replace").splitlines()]
    last = next((ln for ln in reversed(lines) if ln), "")
    said = f": {last}" if last else ""
    raise VideoDecodeError(path, f"decord's process died on this file ({how}{said})")


def _decord_reason(text: str, kind: str) -> str:
    """decord's messages start with '[time] /path/file.cc:line: '; keep the rest."""
    text = text.strip().splitlines()[0] if text.strip() else kind
    marker = text.find(".cc:")
    if text.startswith("[") and marker != -1:
        rest = text[marker + 4 :]
        text = rest.split(": ", 1)[1] if ": " in rest else rest
    return f"decord: {text}"
