"""The ``pyav`` backend: PyAV (FFmpeg) with a decode plan. Internal package:
``load_video`` (:mod:`sfllava_ext.video`) is the way in.

The plan, step by step (each in its module, read top to bottom):

1. ``planning.py``: the packets are indexed once, by demuxing without decoding (pts,
   dts, keyframe flags, H.264 slices per picture), the wanted frames are picked with
   the published sampling, and every group of pictures (GOP) that holds a wanted
   frame becomes a chunk, to be decoded from its keyframe up to the last wanted frame
   only; GOPs with no wanted frame are never read. The indexing container stays open
   for the first worker to take over.
2. ``workers.py``: the chunks are decoded in parallel, largest first, one container
   and decoder per worker thread; a worker whose share is well above an even split
   (a long GOP) gets FFmpeg decoder threads too, slice threads when every picture has
   a slice per thread, frame threads otherwise.
3. ``h264.py``: non-reference frames that are not wanted are never decoded. H.264
   packets that hold only non-reference pictures are not even sent to the decoder;
   other codecs use ``skip_frame="NONREF"`` packet by packet.
4. ``sinks.py``: only wanted frames are converted to RGB (or, with ``yuv420=True``,
   kept as their YUV 4:2:0 planes: :class:`~sfllava_ext.ops.yuv420_frames.Yuv420Frames`, which
   ``normalize_frames`` converts row by row in cache), straight into the clip's
   buffer. The YUV -> RGB conversion is the same swscale call decord makes
   (same-size, bilinear flags, the frame's own colour matrix and range, unscaled fast
   path), or the native converter where ``swscale.py`` found it gives swscale's very
   bytes, so the pixels match decord's bit for bit; the test-suite checks it on many
   files.
5. ``decode.py``: the entry point, :func:`load_with_pyav`, runs the steps above,
   retries in RGB when the planes cannot hold a frame, and makes the clip.

When a container's timestamps do not give the presentation order (H.264 in AVI, raw
``.h264`` streams), the file is decoded from the start instead and the frames counted
(``workers.decode_sequential``).

The modules call each other through the module (``workers.run_chunks(...)``), so that
monkeypatching a name in the module that defines it patches every call site.
"""

from __future__ import annotations

from .decode import load_with_pyav

__all__ = ["load_with_pyav"]
