"""Video file -> sampled frames (docs/method.md#sampling). The first stage of the data path.

``load_video(path, num_frames=50)`` opens a video file (or a folder of images), picks
frames with the published SlowFast-LLaVA rule (:func:`sample_frame_indices`) or on a
fixed time grid (``fps=``), and returns them as a :class:`VideoClip` whose ``frames``
are uint8 RGB, shape (T, H, W, 3), contiguous (or, with ``yuv420=True``, the decoded
YUV 4:2:0 planes, :class:`Yuv420Frames`, which ``normalize_frames`` converts row by
row in cache).

Two decoding backends return bit-identical frames for the same file and indices:
``decord`` (what the published code runs) and ``pyav`` (PyAV with a decode plan: only
the groups of pictures that hold wanted frames, in parallel, never an unwanted
non-reference picture, only wanted frames converted, with swscale's very bytes).
``auto`` picks ``pyav``: the same frames, faster (docs/video.md,
benchmarks/bench_decode.py). Repeated loads can decode into reused memory
(:class:`FrameBuffers`, ``load_video(..., buffers=pool)``). No torch op runs here;
the final array is only wrapped with ``torch.from_numpy``.

The package, one concern per module (laid out like torchcodec's decoders and
samplers), in the order a load runs through it:

    load.py            load_video: the argument checks, then one backend
    sampling.py        which frames: the published rule, the time grid
    image_folder.py    backend "images": a folder of image files (Pillow)
    decord_backend.py  backend "decord"
    pyav/              backend "pyav": decode.py (entry), planning.py, h264.py,
                       workers.py, sinks.py, swscale.py; its docstring walks the plan
    limits.py          DecodeLimits, VideoLimitError, SAFE_FORMATS, open_container:
                       limits for files that are not trusted, enforced while decoding
    buffers.py         FrameBuffers
    frames.py          the containers (VideoClip, VideoDecodeError, and Yuv420Frames,
                       which the ops define), make_clip: every backend's last step
    input.py           what SlowFastLlava takes as a video, and how it reaches the model
    synthetic.py       deterministic H.264 test videos

This file only re-exports the public names. The modules are internal: their names
without a leading underscore are documented internal entry points (for the other
modules, the tests and the benchmarks), not API. The containers are re-exported here,
so that pickles naming ``sfllava_ext.video.VideoClip`` load; ``BACKENDS`` lives in
:mod:`sfllava_ext.constants`.
"""

from __future__ import annotations

from ..constants import BACKENDS
from .buffers import FrameBuffers
from .frames import VideoClip, VideoDecodeError, Yuv420Frames
from .limits import SAFE_FORMATS, DecodeLimits, VideoLimitError
from .load import load_video
from .pyav.workers import decode_threads
from .sampling import fps_frame_indices, sample_frame_indices

__all__ = [
    "BACKENDS",
    "SAFE_FORMATS",
    "DecodeLimits",
    "FrameBuffers",
    "VideoClip",
    "VideoDecodeError",
    "VideoLimitError",
    "Yuv420Frames",
    "decode_threads",
    "fps_frame_indices",
    "load_video",
    "sample_frame_indices",
]
