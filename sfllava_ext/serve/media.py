"""Where a request's video comes from: copied once, into a private spool, while it is
hashed (:func:`resolve_video`), and the header checks before any decoding
(:func:`check_header`).

Two kinds of URL are taken, nothing else (the server fetches nothing from a network):

- ``data:video/<type>;base64,<payload>``: the bytes travel in the request; at most
  ``--max-video-mb`` once decoded from base64, decoded in pieces into the spool;
- ``file:///path``: a file inside ``--media-dir``. The path is percent-decoded and
  resolved (every link and ``..``) and compared with the media dir, so that no spelling
  of a path outside it is even opened; then the file is opened once, without blocking
  (a FIFO cannot hang the server), and the descriptor itself is checked: a regular
  file, whose real path (what the kernel opened, ``/proc/self/fd``) lies inside the
  media dir. Links that stay inside the media dir work; a link swapped in between the
  two checks is caught by the second. The bytes are copied from that descriptor.

The decoders read the spool's copy, never the original, so the video's key (the
SHA-256 of the bytes copied) and the bytes decoded are the same bytes by construction:
a file swapped or rewritten in place after the copy changes nothing, and a file
rewritten in place before it is simply new bytes. The copy goes when the request ends
(:meth:`Video.discard`).
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from ..utils.paths import NotARegularFileError, OutsideRootError, open_inside
from ..video.frames import VideoDecodeError
from ..video.limits import DecodeLimits, VideoLimitError, open_container
from .config import ServeConfig
from .errors import ApiError, job_timeout

__all__ = ["Payload", "Video", "check_header", "resolve_video", "video_error"]

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)(?P<params>(;[^,;]*)*),", re.I)
# bytes copied (and base64 characters decoded) at a time; a multiple of 4, small enough
# that the pieces come and go in the allocator's free lists, not as fresh mappings
_PIECE = 1 << 20


@dataclass
class Video:
    """A request's video: the service's private copy (``path``), the SHA-256 of its
    bytes, and where it came from (``source``: the file's name, or ``data-url``) for
    logs and the fault hook. :meth:`discard` removes the copy."""

    path: str
    sha256: str
    source: str = "data-url"

    def discard(self) -> None:
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass


@dataclass(frozen=True)
class Payload:
    """A data: URL's base64 characters, ``text[start:end]``: cut out of the request's
    body (bytes) before its JSON was parsed, so that they are never copied into a
    string (:mod:`.body`), or the URL's own tail (a string)."""

    text: str | bytes | bytearray
    start: int
    end: int


def resolve_video(
    url: object,
    param: str,
    config: ServeConfig,
    workdir: str,
    payload: Payload | None = None,
) -> Video:
    """The video a ``video_url.url`` names, copied into ``workdir``; for a data: URL
    whose characters were cut out of the body, ``payload`` holds them (``url`` then
    ends at ``base64,`` and a placeholder).

    Raises:
        ApiError: 400 for a URL of another kind (``http://`` among them), a malformed
            one, or a file that is not a regular file; 403 for a ``file://`` path
            outside the media dir (or no media dir); 404 for a missing file inside it;
            413 for a video over ``--max-video-mb``.
    """
    if not isinstance(url, str) or not url:
        raise ApiError(400, "video_url.url must be a non-empty string", param=param)
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        return _from_data_url(url, param, config, workdir, payload)
    if scheme == "file":
        return _from_file_url(url, param, config, workdir)
    raise ApiError(
        400,
        f"video URLs of scheme '{scheme[:16] or url[:16]}' are refused: the server "
        "fetches nothing; send the video as a data:video/...;base64, URL, or as a "
        "file:// URL inside the server's --media-dir",
        param=param,
        code="unsupported_url",
    )


def _from_data_url(
    url: str, param: str, config: ServeConfig, workdir: str, payload: Payload | None
) -> Video:
    match = _DATA_URL.match(url[:256])
    if match is None or not match.group("mime").lower().startswith("video/"):
        raise ApiError(400, "a data: URL must be data:video/<type>;base64,<bytes>", param=param)
    if "base64" not in match.group("params").lower():
        raise ApiError(400, "a data: URL must carry its video as base64", param=param)
    if payload is None:
        payload = Payload(url, match.end(), len(url))
    text, start, end = payload.text, payload.start, payload.end
    size = end - start
    if size * 3 // 4 > config.max_video_bytes + 2:
        raise _too_big(param, config)
    if size == 0:
        raise ApiError(400, "the data: URL holds no bytes", param=param)
    padding = text.find("=" if isinstance(text, str) else b"=", start, end)
    if padding != -1 and padding < end - 2 or size % 4:
        raise ApiError(400, "the data: URL is not valid base64 (padding)", param=param)

    def pieces():
        for at in range(start, end, _PIECE):
            try:
                yield base64.b64decode(text[at : min(at + _PIECE, end)], validate=True)
            except (binascii.Error, ValueError):
                # binascii's own text is not passed on: no exception's text reaches a client
                where = f"in its payload's bytes {at - start} to {min(at + _PIECE, end) - start}"
                raise ApiError(
                    400, f"the data: URL is not valid base64 ({where})", param=param
                ) from None

    return _spool(pieces(), "data-url", param, config, workdir)


def _from_file_url(url: str, param: str, config: ServeConfig, workdir: str) -> Video:
    if config.media_dir is None:
        raise ApiError(
            403,
            "file:// URLs are refused: the server was started without --media-dir",
            param=param,
            code="outside_media_dir",
        )
    try:
        parsed = urlparse(url)
    except ValueError:  # a malformed host, "file://[::1/a.mp4": urllib's text stays here
        raise ApiError(400, "a file:// URL names no host", param=param) from None
    if parsed.netloc not in ("", "localhost"):
        raise ApiError(400, "a file:// URL names no host", param=param)
    try:
        path = unquote(parsed.path, errors="strict")
    except UnicodeDecodeError:
        raise ApiError(400, "a file:// URL's path must be UTF-8", param=param) from None
    if "\x00" in path or not os.path.isabs(path):
        raise ApiError(400, "a file:// URL needs an absolute path", param=param)
    try:
        fd = open_inside(path, config.media_dir)
    except OutsideRootError:
        raise _outside(param) from None
    except (FileNotFoundError, NotADirectoryError):  # "a.mp4/x": a path under a file
        raise _no_such_file(param) from None
    except NotARegularFileError:
        raise ApiError(
            400, "the media file is not a regular file", param=param, code="not_a_file"
        ) from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:  # a name no file in the media dir can have
            raise _no_such_file(param) from None
        raise ApiError(403, "the file cannot be read", param=param, code="unreadable") from None
    try:
        if os.fstat(fd).st_size > config.max_video_bytes:
            raise _too_big(param, config)

        def pieces():
            while block := os.read(fd, _PIECE):
                yield block

        return _spool(pieces(), os.path.basename(path), param, config, workdir)
    finally:
        os.close(fd)


def _no_such_file(param: str) -> ApiError:
    return ApiError(404, "no such file in the media dir", param=param, code="file_not_found")


def _outside(param: str) -> ApiError:
    return ApiError(
        403,
        "the file:// URL leads outside the server's --media-dir",
        param=param,
        code="outside_media_dir",
    )


def _spool(pieces, source: str, param: str, config: ServeConfig, workdir: str) -> Video:
    """Writes ``pieces`` to a private file in ``workdir`` while hashing them, no further
    than ``--max-video-mb``."""
    digest = hashlib.sha256()
    fd, path = tempfile.mkstemp(suffix=".video", dir=workdir)  # mode 0600
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for piece in pieces:
                size += len(piece)
                if size > config.max_video_bytes:
                    raise _too_big(param, config)
                digest.update(piece)
                out.write(piece)
        if size == 0:
            raise ApiError(400, "the video holds no bytes", param=param)
    except BaseException:
        os.remove(path)
        raise
    return Video(path, digest.hexdigest(), source)


def _too_big(param: str, config: ServeConfig) -> ApiError:
    return ApiError(
        413,
        f"the video is larger than the server's --max-video-mb ({config.max_video_mb:g} MB)",
        param=param,
        code="video_too_large",
    )


def check_header(video: Video, param: str, config: ServeConfig, limits: DecodeLimits) -> None:
    """The container's header, read without decoding frames beyond FFmpeg's probe,
    under ``limits`` (the formats allowed, and for the probe's decoders the pixels and
    the deadline): a video stream, at most ``--max-pixels`` per frame and
    ``--max-duration-s`` long.

    Raises:
        ApiError: 400 for a file that is not a video or whose duration is unknown, or
            a video over the pixel or duration limits; 504 past the deadline.
    """
    import av

    try:
        with open_container(video.path, limits) as container:
            if not container.streams.video:
                raise ApiError(
                    400, "the file holds no video stream", param=param, code="invalid_video"
                )
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            duration = None
            if container.duration:
                duration = container.duration / 1_000_000
            elif stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            elif stream.frames and stream.average_rate:
                duration = stream.frames / float(stream.average_rate)
    except (VideoDecodeError, av.FFmpegError) as exc:
        raise video_error(exc, param) from None
    if width * height > config.max_pixels:
        raise ApiError(
            400,
            f"the video's frames are {width}x{height}, more than the server's --max-pixels "
            f"({config.max_pixels})",
            param=param,
            code="video_too_large",
        )
    if duration is None:
        raise ApiError(400, "the video's header gives no duration", param=param)
    if duration > config.max_duration_s:
        raise ApiError(
            400,
            f"the video lasts {duration:.1f} s, more than the server's --max-duration-s "
            f"({config.max_duration_s:g})",
            param=param,
            code="video_too_long",
        )


def video_error(exc: Exception, param: str) -> ApiError:
    """The service's error for a video that could not be read: for a limit passed
    (:class:`~sfllava_ext.video.limits.VideoLimitError`), 504 ``job_timeout`` at the
    deadline, else 400 ``unsupported_format``, ``video_too_costly`` (the decode budget)
    or ``video_too_large``; for any other failure (a ``VideoDecodeError``, FFmpeg's own
    error, the copy gone), 400 ``invalid_video`` with the reason, never the path."""
    if isinstance(exc, VideoLimitError):
        if exc.limit == "deadline":
            return job_timeout()
        codes = {"formats": "unsupported_format", "max_decoded_pixels": "video_too_costly"}
        return ApiError(
            400,
            f"the video is refused: {exc.reason}",
            param=param,
            code=codes.get(exc.limit, "video_too_large"),
        )
    if isinstance(exc, FileNotFoundError):
        reason = "the file is gone"
    else:
        reason = getattr(exc, "reason", None) or type(exc).__name__
    return ApiError(
        400, f"the file is not a readable video ({reason})", param=param, code="invalid_video"
    )
