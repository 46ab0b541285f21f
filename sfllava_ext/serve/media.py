"""Where a request's video comes from, and the limits checked before any decoding.

Two kinds of URL are taken, nothing else (the server fetches nothing from a network):

- ``data:video/<type>;base64,<payload>``: the bytes travel in the request; at most
  ``--max-video-mb`` once decoded from base64;
- ``file:///path``: a file inside ``--media-dir``. The path is percent-decoded, then
  every symbolic link and ``..`` in it is resolved (``os.path.realpath``), and only then
  compared with the media dir, itself resolved: no spelling of a path leaves it.

A video is keyed by the SHA-256 of its bytes (a file's hash is remembered while its
size, modification time and inode stay the same). Its container header must show a
video stream within ``--max-pixels`` and ``--max-duration-s``, read by demuxing the
header only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from .config import ServeConfig
from .errors import ApiError

__all__ = ["Video", "check_header", "resolve_video"]

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)(?P<params>(;[^,;]*)*),", re.I)
_HASHES: dict[tuple, str] = {}
_HASHES_LOCK = threading.Lock()


@dataclass
class Video:
    """A request's video: a file to decode, the SHA-256 of its bytes, and whether the
    file is the service's own temporary copy (removed by :meth:`discard`)."""

    path: str
    sha256: str
    temporary: bool = False

    def discard(self) -> None:
        if self.temporary and os.path.exists(self.path):
            os.remove(self.path)


def resolve_video(url: object, param: str, config: ServeConfig, workdir: str) -> Video:
    """The video a ``video_url.url`` names.

    Raises:
        ApiError: 400 for a URL of another kind (``http://`` among them) or a malformed
            one, 403 for a ``file://`` path outside the media dir (or no media dir),
            404 for a missing file inside it, 413 for a video over ``--max-video-mb``.
    """
    if not isinstance(url, str) or not url:
        raise ApiError(400, "video_url.url must be a non-empty string", param=param)
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        return _from_data_url(url, param, config, workdir)
    if scheme == "file":
        return _from_file_url(url, param, config)
    raise ApiError(
        400,
        f"video URLs of scheme '{scheme or url[:16]}' are refused: the server fetches "
        "nothing; send the video as a data:video/...;base64, URL, or as a file:// URL "
        "inside the server's --media-dir",
        param=param,
        code="unsupported_url",
    )


def _from_data_url(url: str, param: str, config: ServeConfig, workdir: str) -> Video:
    match = _DATA_URL.match(url)
    if match is None or not match.group("mime").lower().startswith("video/"):
        raise ApiError(400, "a data: URL must be data:video/<type>;base64,<bytes>", param=param)
    if "base64" not in match.group("params").lower():
        raise ApiError(400, "a data: URL must carry its video as base64", param=param)
    payload = url[match.end() :]
    if len(payload) * 3 // 4 > config.max_video_bytes + 2:
        raise _too_big(param, config)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f"the data: URL is not valid base64 ({exc})", param=param) from exc
    if len(data) > config.max_video_bytes:
        raise _too_big(param, config)
    if not data:
        raise ApiError(400, "the data: URL holds no bytes", param=param)
    sha = hashlib.sha256(data).hexdigest()
    fd, path = tempfile.mkstemp(prefix=f"{sha[:16]}-", suffix=".video", dir=workdir)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Video(path, sha, temporary=True)


def _from_file_url(url: str, param: str, config: ServeConfig) -> Video:
    if config.media_dir is None:
        raise ApiError(
            403,
            "file:// URLs are refused: the server was started without --media-dir",
            param=param,
            code="outside_media_dir",
        )
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise ApiError(400, f"a file:// URL names no host, got '{parsed.netloc}'", param=param)
    path = unquote(parsed.path)
    if "\x00" in path or not os.path.isabs(path):
        raise ApiError(400, "a file:// URL needs an absolute path", param=param)
    real = os.path.realpath(path)  # every link and .. resolved before the check
    if os.path.commonpath([real, config.media_dir]) != config.media_dir:
        raise ApiError(
            403,
            "the file:// URL leads outside the server's --media-dir",
            param=param,
            code="outside_media_dir",
        )
    if not os.path.isfile(real):
        raise ApiError(404, "no such file in the media dir", param=param, code="file_not_found")
    stat = os.stat(real)
    if stat.st_size > config.max_video_bytes:
        raise _too_big(param, config)
    return Video(real, _file_sha256(real, stat))


def _file_sha256(path: str, stat: os.stat_result) -> str:
    key = (path, stat.st_size, stat.st_mtime_ns, stat.st_ino)
    with _HASHES_LOCK:
        known = _HASHES.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    with _HASHES_LOCK:
        if len(_HASHES) > 4096:
            _HASHES.clear()
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def _too_big(param: str, config: ServeConfig) -> ApiError:
    return ApiError(
        413,
        f"the video is larger than the server's --max-video-mb ({config.max_video_mb:g} MB)",
        param=param,
        code="video_too_large",
    )


def check_header(video: Video, param: str, config: ServeConfig) -> None:
    """The container's header, read without decoding: a video stream, at most
    ``--max-pixels`` per frame and ``--max-duration-s`` long.

    Raises:
        ApiError: 400 for a file that is not a video or whose duration is unknown, or
            a video over the pixel or duration limits.
    """
    import av

    try:
        with av.open(video.path, mode="r", metadata_errors="ignore") as container:
            if not container.streams.video:
                raise ApiError(400, "the file holds no video stream", param=param)
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            duration = None
            if container.duration:
                duration = container.duration / 1_000_000
            elif stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            elif stream.frames and stream.average_rate:
                duration = stream.frames / float(stream.average_rate)
    except av.FFmpegError as exc:
        raise ApiError(400, f"the file is not a readable video ({exc})", param=param) from exc
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
