"""The service's settings (``sfllava serve`` flags), checked once at start."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ..video.limits import SAFE_FORMATS, DecodeLimits

__all__ = ["ServeConfig"]

MB = 1 << 20
#: Host names every service answers to without an API key (besides its bind address).
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class ServeConfig:
    """What ``sfllava serve`` allows (docs/security.md: what each limit protects).

    Attributes:
        host, port: where to listen (127.0.0.1 by default: only this machine).
        media_dir: the one folder ``file://`` URLs may name (none: no ``file://``).
        api_key: when set, every request needs ``Authorization: Bearer <key>``.
        allowed_hosts: without an API key, the ``Host`` names answered (besides the
            bind address and localhost; ``"*"``: any), against DNS rebinding.
        max_video_mb: most bytes of one video (decoded from base64, or on disk); the
            request body may be a third larger, for base64, plus 1 MiB of JSON.
        max_uploads: most request bodies over 1 MiB read at once; past it, 503 with
            Retry-After.
        max_connections: most open connections; past it, uvicorn answers 503.
        read_timeout_s: most seconds a client may stay silent while sending a
            request's head or body (then 408, or the connection is closed).
        job_timeout_s: most seconds one job may hold the model (decode, encode and
            answer); past it, 504 ``job_timeout``.
        max_duration_s: the longest video, read from the container's header.
        max_pixels: the most pixels of any decoded frame (checked on every frame, and
            by FFmpeg before it allocates one).
        max_decode_mpx: the most megapixels decoded for one video (every frame the
            decoder outputs, wanted or not): a file of many large frames stops early.
            The default, 4,000, is 480 frames of 4K or 1,930 of 1080p; a long video
            with long keyframe intervals at a high resolution may need more.
        cache_gb: most memory of the cached sessions (visual tokens and prompt
            prefixes), least recently used first out.
        max_queue: most requests waiting for the model (besides the one it runs);
            past it, 503 with Retry-After.
        model_id: the name ``/v1/models`` lists and requests may give as ``model``.

    Raises:
        ValueError: a limit below 1 (or not finite), a port outside 0-65535, a media
            dir that is not a folder.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    media_dir: str | None = None
    api_key: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    max_video_mb: float = 256
    max_uploads: int = 2
    max_connections: int = 512
    read_timeout_s: float = 30
    job_timeout_s: float = 600
    max_duration_s: float = 3600
    max_pixels: int = 3840 * 2160
    max_decode_mpx: float = 4_000
    cache_gb: float = 4
    max_queue: int = 64
    model_id: str = "sfllava"

    def __post_init__(self) -> None:
        for name in (
            "max_video_mb",
            "max_uploads",
            "max_connections",
            "read_timeout_s",
            "job_timeout_s",
            "max_duration_s",
            "max_pixels",
            "max_decode_mpx",
            "max_queue",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"serve: {name} must be a number > 0, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"serve: {name} must be finite, got {value!r}")
        if not self.cache_gb >= 0:
            raise ValueError(f"serve: cache_gb must be >= 0, got {self.cache_gb!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"serve: port must be in 0-65535, got {self.port}")
        if self.media_dir is not None:
            if not os.path.isdir(self.media_dir):
                raise ValueError(f"serve: media_dir '{self.media_dir}' is not a folder")
            object.__setattr__(self, "media_dir", os.path.realpath(self.media_dir))
        if self.api_key is not None and not self.api_key:
            raise ValueError("serve: api_key must not be empty")
        hosts = tuple(h.strip().lower() for h in self.allowed_hosts if h.strip())
        object.__setattr__(self, "allowed_hosts", hosts)

    def decode_limits(self, deadline: float | None = None) -> DecodeLimits:
        """The limits a video is decoded under (``sfllava serve``'s, and the vLLM
        plugin's loader's): ``max_pixels`` per frame, ``max_decode_mpx`` in all, the
        formats allowed, and ``deadline`` (a ``time.monotonic()`` value, None: none)."""
        return DecodeLimits(
            max_pixels=int(self.max_pixels),
            max_decoded_pixels=int(self.max_decode_mpx * 1e6),
            deadline=deadline,
            formats=SAFE_FORMATS,
        )

    @property
    def max_video_bytes(self) -> int:
        return int(self.max_video_mb * MB)

    @property
    def max_body_bytes(self) -> int:
        """The video as base64 (4/3 of its bytes) and up to 1 MiB of JSON around it."""
        return self.max_video_bytes * 4 // 3 + MB

    @property
    def cache_bytes(self) -> int:
        return int(self.cache_gb * (1 << 30))

    @property
    def hosts(self) -> frozenset[str] | None:
        """The ``Host`` names answered without an API key (None: any): the bind
        address, localhost and ``allowed_hosts``."""
        if "*" in self.allowed_hosts:
            return None
        return frozenset({self.host.lower().strip("[]"), *LOCAL_HOSTS, *self.allowed_hosts})
