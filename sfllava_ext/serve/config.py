"""The service's settings (``sfllava serve`` flags), checked once at start."""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["ServeConfig"]

MB = 1 << 20


@dataclass(frozen=True)
class ServeConfig:
    """What ``sfllava serve`` allows.

    Attributes:
        host, port: where to listen (127.0.0.1 by default: only this machine).
        media_dir: the one folder ``file://`` URLs may name (none: no ``file://``).
        api_key: when set, every request needs ``Authorization: Bearer <key>``.
        max_video_mb: most bytes of one video (decoded from base64, or on disk); the
            request body may be a third larger, for base64, plus 1 MiB of JSON.
        max_duration_s, max_pixels: limits read from the container's header before any
            decoding.
        cache_gb: most memory of the cached sessions (visual tokens and prompt
            prefixes), least recently used first out.
        max_queue: most requests waiting for the model; past it, 503 with Retry-After.
        model_id: the name ``/v1/models`` lists and requests may give as ``model``.

    Raises:
        ValueError: a limit below 1, a port outside 0-65535, a media dir that is not a
            folder.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    media_dir: str | None = None
    api_key: str | None = None
    max_video_mb: float = 256
    max_duration_s: float = 3600
    max_pixels: int = 3840 * 2160
    cache_gb: float = 4
    max_queue: int = 64
    model_id: str = "sfllava"

    def __post_init__(self) -> None:
        for name in ("max_video_mb", "max_duration_s", "max_pixels", "max_queue"):
            if not getattr(self, name) > 0:
                raise ValueError(f"serve: {name} must be > 0, got {getattr(self, name)!r}")
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
