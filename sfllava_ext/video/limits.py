"""Limits on decoding a file that is not trusted: :class:`DecodeLimits`, enforced while
the ``pyav`` backend decodes (``load_video(path, limits=...)``), :class:`VideoLimitError`
when one is passed, and :func:`open_container`, the one ``av.open`` of the backend.

A file's header says little about what decoding it costs: an H.264 or HEVC stream may
change its size at any new SPS (two MPEG-TS files encoded at different sizes, put end
to end, start at 64x64 and go on at 8192x8192), and a small file may hold thousands of
4K frames. So every bound is checked while decoding, by one :class:`DecodeMeter` per
``load_video`` call that every decode thread of the call shares:

* ``max_pixels``: each decoder gets FFmpeg's own ``max_pixels`` option
  (:func:`limit_decoder`), so that FFmpeg refuses an oversize picture before it
  allocates it (PyAV 18.1, FFmpeg 8.1: H.264 and HEVC refuse it in ``ff_get_buffer``,
  MPEG-1/2/4 in ``ff_set_dimensions``); the decoders that ``av.open`` itself runs to
  probe the streams get it too. The meter then checks every decoded frame exactly, and
  tells FFmpeg's refusal from a damaged file (:meth:`DecodeMeter.decoder_failed`).
* ``max_decoded_pixels``: width x height summed over every frame a decoder outputs,
  wanted or not, across the whole call (retries included): the decode work allowed.
* ``deadline``: a ``time.monotonic()`` value, checked before the file is opened, by
  FFmpeg's interrupt callback while it opens, per packet while the plan indexes the
  file and while the workers decode, and per frame.
* ``formats``: the demuxers allowed, as FFmpeg's ``format_whitelist`` (checked right
  after FFmpeg probes the file, before the demuxer reads a byte of its header), with
  ``protocol_whitelist="file"`` and the path opened as ``file:<path>`` (never read as a
  URL), and the mov demuxer's external data references off explicitly.

:data:`SAFE_FORMATS`, the default, are demuxers that read the one file they are given
and open nothing else:

* ``mov``: MP4, MOV, M4V, 3GP (``mov,mp4,m4a,3gp,3g2,mj2``): phones and cameras. Its
  data references to other files (``dref``) are followed only with ``enable_drefs=1``;
  FFmpeg's default is 0 and :func:`open_container` sets 0 (and ``use_absolute_path=0``)
  anyway.
* ``matroska``: MKV and WebM (``matroska,webm``); FFmpeg does not follow linked segments.
* ``avi``: AVI, old cameras and screen recorders.
* ``mpegts``: MPEG-TS (.ts, .m2ts), broadcast and HLS segments saved as files.
* ``mpeg``: MPEG program streams (.mpg, .vob).
* ``flv``: Flash video, still written by streaming tools.
* ``ogg``: Ogg (Theora, VP8).
* ``asf``: ASF/WMV, Windows recordings.
* ``ivf``: raw VP8/VP9/AV1 in IVF, what libvpx and libaom write.
* ``h264``, ``hevc``, ``m4v``, ``mpegvideo``: raw H.264, HEVC, MPEG-4 Part 2 and
  MPEG-1/2 elementary streams.

Refused, among others, because they open other files or URLs: ``hls`` (an ``.m3u8``
playlist names segments, anywhere: local paths, http), ``dash`` (an MPD manifest, the
same), ``concat`` (an ffconcat script names files), ``image2`` (a ``%03d`` pattern or a
glob in the name opens a numbered sequence of other files), ``imf`` (a composition
playlist that names MXF files), ``lavfi`` (a filter graph whose ``movie`` source opens
any file or URL), ``sdp``, ``rtsp`` and ``rtp`` (network sessions); and every other
demuxer, which a video service has no use for (each is more parsing code an untrusted
file could reach).

Internal module; :class:`DecodeLimits`, :class:`VideoLimitError` and
:data:`SAFE_FORMATS` are public as ``sfllava_ext.video.*``; the service calls
:func:`open_container` from here.
"""

from __future__ import annotations

import errno
import math
import numbers
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NoReturn

from .frames import VideoDecodeError

__all__ = [
    "SAFE_FORMATS",
    "DecodeLimits",
    "DecodeMeter",
    "VideoLimitError",
    "av_reason",
    "decoder_options",
    "limit_decoder",
    "open_container",
]


class _Names(frozenset):
    """A frozenset of demuxer names that shows them sorted (stable docs and reprs)."""

    def __repr__(self) -> str:
        return "frozenset({" + ", ".join(repr(n) for n in sorted(self)) + "})"


#: FFmpeg demuxer names that :class:`DecodeLimits` allows by default: none opens
#: another file or a URL (the module docstring gives each one's reason).
SAFE_FORMATS: frozenset[str] = _Names(
    {
        "mov",
        "matroska",
        "avi",
        "mpegts",
        "mpeg",
        "flv",
        "ogg",
        "asf",
        "ivf",
        "h264",
        "hevc",
        "m4v",
        "mpegvideo",
    }
)

# FFmpeg's max_pixels option is an int64 in 0..INT_MAX.
_FFMPEG_MAX_PIXELS = 2**31 - 1
# FFmpeg counts more than width x height against its max_pixels: ff_get_buffer rounds
# the width up to the stride alignment (64 on an AVX-512 build, at most 64 on any), and
# the MPEG-4 Part 2 and WMV decoders check padded scratch buffers too (measured with
# FFmpeg 8.1: about 54,000 pixels for any frame under 100x100, 25 times the frame's
# pixels for 400x16, the frame's own count from 1280x720 on). So the decoders get twice
# the limit plus 2**20 pixels, which no frame within the limit (and not absurdly
# narrow) reaches: a bound on memory, not the limit itself, which the meter checks
# exactly on every frame.
_STRIDE_ALIGN = 64
_FFMPEG_MARGIN = 2**20
_DEMUXER_NAME = re.compile(r"[a-z0-9_]+\Z")


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds on decoding one file that is not trusted, enforced while it decodes:
    ``load_video(path, limits=DecodeLimits(...))`` (``pyav`` backend; a folder of
    images checks each image before Pillow decodes it, and with ``formats`` reads only
    PNG, JPEG, BMP, GIF and WebP).

    Attributes:
        max_pixels: the most pixels (width x height) of any decoded frame: every frame
            is checked, not the header's size only, and FFmpeg's decoders get their own
            ``max_pixels`` so that an oversize picture is refused before its memory is
            allocated. None: no bound.
        max_decoded_pixels: the most pixels decoded in all: width x height summed over
            every frame the decoders output, wanted or not, retries included. None: no
            bound.
        deadline: a ``time.monotonic()`` value after which decoding stops (checked
            before and while opening the file, per packet, per frame). None: none.
        formats: the FFmpeg demuxer names allowed to read the file, applied before
            FFmpeg's demuxer reads its header (FFmpeg's ``format_whitelist``, with the
            ``file`` protocol only); a demuxer with several names (``mov,mp4,...``) is
            allowed when one of them is listed. Default :data:`SAFE_FORMATS`, none of
            which opens other files or URLs. None: any format and protocol (a trusted
            file).

    A breach raises :class:`VideoLimitError` (a :class:`VideoDecodeError`) naming it.

    Raises:
        ValueError: a field out of range, named in the message: ``max_pixels`` or
            ``max_decoded_pixels`` not an int >= 1 or None, ``deadline`` not a finite
            number or None, ``formats`` empty or not a set of demuxer names.
    """

    max_pixels: int | None = None
    max_decoded_pixels: int | None = None
    deadline: float | None = None
    formats: frozenset[str] | None = SAFE_FORMATS

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_decoded_pixels"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"DecodeLimits: {name} must be an int >= 1 or None, got {value!r}")
            object.__setattr__(self, name, int(value))
        deadline = self.deadline
        if deadline is not None:
            if (
                isinstance(deadline, bool)
                or not isinstance(deadline, numbers.Real)
                or not math.isfinite(deadline)
            ):
                raise ValueError(
                    "DecodeLimits: deadline must be a finite time.monotonic() value or None, "
                    f"got {deadline!r}"
                )
            object.__setattr__(self, "deadline", float(deadline))
        if self.formats is not None:
            object.__setattr__(self, "formats", _demuxer_names(self.formats))


def _demuxer_names(formats: Any) -> frozenset[str]:
    """``DecodeLimits.formats`` as a frozenset of demuxer names; ValueError if it is not."""
    if isinstance(formats, _Names):
        return formats
    names = (
        _Names(formats)
        if isinstance(formats, Iterable) and not isinstance(formats, (str, bytes))
        else None
    )
    if not names or not all(isinstance(n, str) and _DEMUXER_NAME.match(n) for n in names):
        raise ValueError(
            "DecodeLimits: formats must be a non-empty set of FFmpeg demuxer names "
            f"(lowercase, like 'mov' or 'mpegts') or None, got {formats!r}"
        )
    return names


class VideoLimitError(VideoDecodeError):
    """A file refused by a :class:`DecodeLimits` bound. ``limit`` names it
    (``"max_pixels"``, ``"max_decoded_pixels"``, ``"deadline"`` or ``"formats"``),
    ``seen`` is what the file came to (a frame's pixels, the pixels decoded so far, the
    ``time.monotonic()`` value, the format's name; None when FFmpeg does not say) and
    ``allowed`` the limit; the message says all three, and ``path`` and ``reason`` are
    as in :class:`VideoDecodeError`."""

    def __init__(
        self, path: str | os.PathLike, limit: str, seen: Any, allowed: Any, detail: str = ""
    ) -> None:
        self.limit = limit
        self.seen = seen
        self.allowed = allowed
        self.detail = detail
        super().__init__(path, _describe(limit, seen, allowed, detail))

    def __reduce__(self) -> tuple:
        return (type(self), (self.path, self.limit, self.seen, self.allowed, self.detail))

    def copy(self) -> VideoLimitError:
        """The same error, to raise in another thread (an exception's traceback is its own)."""
        return type(self)(self.path, self.limit, self.seen, self.allowed, self.detail)


def _describe(limit: str, seen: Any, allowed: Any, detail: str) -> str:
    if limit == "formats":
        found = f"format {seen!r}" if seen else "the format FFmpeg probed"
        return (
            f"limit formats: {found} is not an allowed container format "
            f"({', '.join(sorted(allowed))}){'; ' + detail if detail else ''}"
        )
    if limit == "deadline":
        late = seen - allowed
        return (
            f"limit deadline: passed {detail or 'while decoding'} "
            f"(time.monotonic() {seen:.3f} > deadline {allowed:.3f}, {late:.3f} s late)"
        )
    if seen is None:
        return f"limit {limit}: {detail} (over {limit} {allowed:,})"
    what = "pixels decoded" if limit == "max_decoded_pixels" else "pixels"
    return f"limit {limit}: {detail + ': ' if detail else ''}{seen:,} {what} > {limit} {allowed:,}"


def av_reason(exc: BaseException) -> str:
    """The reason of a PyAV error, without the file name PyAV appends."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(": '", 1)[0]


def open_container(path: str | os.PathLike, limits: DecodeLimits | None = None) -> Any:
    """``av.open(path)`` for reading, under ``limits``: with ``limits.formats``, FFmpeg's
    ``format_whitelist`` (those demuxers only, refused before the demuxer reads the
    header), ``protocol_whitelist="file"``, the path opened as ``file:<path>`` (never a
    URL) and mov's external data references off; with ``limits.max_pixels``, FFmpeg's
    ``max_pixels`` for the decoders that probe the streams; with ``limits.deadline``,
    an open that stops when it passes. Without limits, plain ``av.open``.

    Raises:
        VideoLimitError: the file's format is not in ``limits.formats`` (``"formats"``),
            or ``limits.deadline`` passed (``"deadline"``).
        VideoDecodeError: FFmpeg cannot open the file otherwise (FFmpeg's reason).
    """
    import av

    path = os.fspath(path)
    url, kwargs = path, {"mode": "r", "metadata_errors": "ignore"}
    if limits is not None:
        _check_deadline(limits, path, "before opening the file")
        url, kwargs = _open_arguments(path, limits, kwargs)
    try:
        container = av.open(url, **kwargs)
    except av.FFmpegError as exc:
        if limits is not None:
            _check_deadline(limits, path, "while opening the file")
            if (
                limits.formats is not None
                and getattr(exc, "errno", None) == errno.EINVAL
                and _format_refused(path, url, kwargs)
            ):
                raise VideoLimitError(path, "formats", None, limits.formats) from exc
        raise VideoDecodeError(path, f"cannot open the container ({av_reason(exc)})") from exc
    if limits is not None and limits.formats is not None:
        name = container.format.name
        if not set(name.split(",")) & limits.formats:  # FFmpeg's whitelist already held
            container.close()
            raise VideoLimitError(path, "formats", name, limits.formats)
    return container


def _open_arguments(
    path: str, limits: DecodeLimits, kwargs: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """``av.open``'s file name and arguments under ``limits``."""
    kwargs = dict(kwargs)
    url = path
    if limits.formats is not None:
        # A local file, never a URL: "concat:a|b" or "a:b.mp4" would name a protocol.
        url = "file:" + path
        kwargs["container_options"] = {
            "format_whitelist": ",".join(sorted(limits.formats)),
            "protocol_whitelist": "file",
            "enable_drefs": "0",  # FFmpeg's default, kept off whatever it becomes
            "use_absolute_path": "0",
        }
    options = decoder_options(limits)
    if options:  # the decoders avformat_find_stream_info runs on the streams it knows
        kwargs["options"] = options
    if limits.deadline is not None:  # FFmpeg's interrupt callback, while it opens
        kwargs["timeout"] = (max(limits.deadline - time.monotonic(), 0.0), None)
    return url, kwargs


def _format_refused(path: str, url: str, kwargs: dict[str, Any]) -> bool:
    """Whether an EINVAL from an open under ``format_whitelist`` was FFmpeg refusing the
    format it probed, rather than an allowed demuxer failing on a damaged header.

    FFmpeg tells the two apart only in its log, which PyAV keeps off (turning it on is
    process-wide). So the open is run again, under the same allowlist (no other demuxer
    runs), reading the file through Python (``io_open``; any other file or URL is
    refused) with ``skip_initial_bytes`` past its end: FFmpeg skips those bytes right
    after the allowlist check passes and before the demuxer reads its header, so a seek
    there means the format was allowed. The name and bytes FFmpeg probes are the same
    as in the first open, so the probe finds the same format. (A name that only the
    ``image2`` demuxer takes, a ``%03d`` pattern, is probed by name and never opened.)
    """
    import av

    marker = os.path.getsize(path) + (1 << 30)  # past any short-seek window: a real seek
    opened: list[_SeekWatch] = []

    def io_open(name: str, flags: int, options: dict) -> _SeekWatch:
        if opened or name != url:
            raise PermissionError(f"refused to open {name!r}")
        opened.append(_SeekWatch(path, marker))
        return opened[0]

    options = dict(kwargs.get("container_options", {}), skip_initial_bytes=str(marker))
    try:
        with av.open(url, mode="r", container_options=options, io_open=io_open):
            pass
    except Exception:  # noqa: BLE001 - what failed does not matter, only how far it got
        pass
    finally:
        for file in opened:
            file.close()
    return not (opened and opened[0].passed)


class _SeekWatch:
    """A file read through Python that notes a seek to ``marker`` or beyond."""

    def __init__(self, path: str, marker: int) -> None:
        self.file = open(path, "rb")  # noqa: SIM115 - closed by its owner
        self.marker = marker
        self.passed = False

    def read(self, size: int = -1) -> bytes:
        return self.file.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self.file.seek(offset, whence)
        self.passed = self.passed or position >= self.marker
        return position

    def tell(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        self.file.close()


def decoder_options(limits: DecodeLimits | None) -> dict[str, str]:
    """FFmpeg codec options for a decoder under ``limits``: ``max_pixels`` (twice the
    limit plus 2**20, at most INT_MAX: FFmpeg counts padding and alignment too, and the
    meter checks the exact limit); empty without one."""
    if limits is None or limits.max_pixels is None:
        return {}
    return {"max_pixels": str(_ffmpeg_max_pixels(limits.max_pixels))}


def _ffmpeg_max_pixels(max_pixels: int) -> int:
    return min(2 * max_pixels + _FFMPEG_MARGIN, _FFMPEG_MAX_PIXELS)


def limit_decoder(stream: Any, limits: DecodeLimits | None) -> None:
    """Give the decoder of PyAV ``stream`` FFmpeg's ``max_pixels`` under ``limits``
    (:func:`decoder_options`). It applies when the decoder opens, at its first packet.

    Raises:
        RuntimeError: the decoder is already open (the option would not apply).
    """
    options = decoder_options(limits)
    if not options:
        return
    codec = stream.codec_context
    if codec.is_open:
        raise RuntimeError("limit_decoder: the decoder is already open; max_pixels would not apply")
    codec.options = {**(codec.options or {}), **options}


def _check_deadline(limits: DecodeLimits, path: str, when: str) -> None:
    if limits.deadline is not None:
        now = time.monotonic()
        if now > limits.deadline:
            raise VideoLimitError(path, "deadline", now, limits.deadline, when)


class DecodeMeter:
    """One ``load_video`` call's account against its :class:`DecodeLimits`, shared by
    every decode thread of the call (thread-safe): the decode loops call :meth:`packet`
    per packet and :meth:`frame` per decoded frame. The first breach raises
    :class:`VideoLimitError` and stops the meter; every later call, in any thread,
    raises it again (a copy), so that the other workers stop at their next packet or
    frame."""

    def __init__(self, limits: DecodeLimits, path: str) -> None:
        self.path = path
        self.limits = limits
        self.max_pixels = limits.max_pixels
        self.budget = limits.max_decoded_pixels
        self.deadline = limits.deadline
        self.pixels = 0  # decoded so far (counted when there is a budget)
        self.frames = 0
        self.breach: VideoLimitError | None = None
        self.lock = threading.Lock()

    def packet(self, when: str = "while decoding") -> None:
        """A packet is about to be demuxed or decoded: raise if the call is stopped or
        its deadline passed."""
        if self.breach is not None:
            raise self.breach.copy()
        if self.deadline is not None:
            now = time.monotonic()
            if now > self.deadline:
                self.stop(VideoLimitError(self.path, "deadline", now, self.deadline, when))

    def frame(self, width: int, height: int, what: str = "a decoded frame") -> None:
        """A frame of ``width`` x ``height`` was decoded (or, for an image, is about to
        be): check it against ``max_pixels``, add it to the budget, check the deadline."""
        if self.breach is not None:
            raise self.breach.copy()
        pixels = width * height
        if self.max_pixels is not None and pixels > self.max_pixels:
            self.stop(
                VideoLimitError(
                    self.path, "max_pixels", pixels, self.max_pixels, f"{what} of {width}x{height}"
                )
            )
        if self.budget is not None:
            with self.lock:
                self.pixels += pixels
                self.frames += 1
                total, frames = self.pixels, self.frames
            if total > self.budget:
                self.stop(
                    VideoLimitError(
                        self.path, "max_decoded_pixels", total, self.budget, f"{frames} frames"
                    )
                )
        if self.deadline is not None:
            self.packet()

    def header(self, width: int, height: int) -> None:
        """The stream's header says ``width`` x ``height``: refuse it at once when it is
        over ``max_pixels`` (later frames are checked one by one)."""
        if self.max_pixels is not None and width * height > self.max_pixels:
            self.stop(
                VideoLimitError(
                    self.path,
                    "max_pixels",
                    width * height,
                    self.max_pixels,
                    f"the stream's header says {width}x{height}",
                )
            )

    def decoder_failed(self, codec: Any) -> None:
        """After an FFmpeg error in a decoder given FFmpeg's ``max_pixels``: raise
        ``VideoLimitError("max_pixels")`` when the error is that refusal; return when it
        is not (a damaged file, whose clip ends early as without limits).

        Raises:
            VideoLimitError: FFmpeg refused a frame over its ``max_pixels``; or the
                call was already stopped.
        """
        if self.breach is not None:
            raise self.breach.copy()
        if self.max_pixels is None:
            return
        # How FFmpeg's refusal shows (PyAV 18.1, FFmpeg 8.1; test_limits.py checks each):
        # H.264 and HEVC store a new SPS's size in the context, and then ff_get_buffer's
        # size check refuses the picture: the context holds the size it refused, over
        # the limit. MPEG-1/2/4 and VP9 go through ff_set_dimensions, which resets the
        # context's size to 0x0 when the check refuses it; a decoder whose context held
        # the stream's size (over 0: the plan checks it) says 0x0 only then (a damaged
        # header with a zero size reads the same: refusing it fails closed). A size
        # within the limit but over FFmpeg's count of it, the width rounded up to the
        # stride alignment, is FFmpeg's refusal too. Any other size: not a refusal.
        width, height = int(codec.width or 0), int(codec.height or 0)
        pixels = width * height
        detail = f"the decoder refused a frame of {width}x{height} (FFmpeg's max_pixels)"
        if pixels > self.max_pixels:
            self.stop(VideoLimitError(self.path, "max_pixels", pixels, self.max_pixels, detail))
        if pixels == 0:
            detail = "the decoder refused a new frame size (FFmpeg's size check reset it to 0x0)"
            self.stop(VideoLimitError(self.path, "max_pixels", None, self.max_pixels, detail))
        aligned = -(-width // _STRIDE_ALIGN) * _STRIDE_ALIGN
        if aligned * height > _ffmpeg_max_pixels(self.max_pixels):
            detail += f", {aligned}x{height} as FFmpeg counts it"
            self.stop(VideoLimitError(self.path, "max_pixels", pixels, self.max_pixels, detail))

    def stop(self, error: VideoLimitError) -> NoReturn:
        """Stop the call with ``error`` (the first breach wins) and raise it."""
        with self.lock:
            first = self.breach
            if first is None:
                self.breach = error
        raise error if first is None else first.copy()
