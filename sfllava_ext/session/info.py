"""What a session knows of the video its visual tokens came from: :class:`VideoInfo`,
written once, used by sessions, their files, ``sfllava embed``'s index and the service."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["VideoInfo"]


@dataclass(frozen=True, eq=False)  # eq: a mapping's, so that it equals the dict it was
class VideoInfo(Mapping):
    """The video behind a session's visual tokens.

    Attributes:
        frame_indices: the frames sampled (0-based, presentation order); empty for
            frames given as a tensor.
        total_frames: frames in the video; None when unknown.
        fps: its average frame rate; None when unknown (a folder of images).
        video: its path, when it came from one.
        sha256: the SHA-256 of its bytes, when known (``sfllava embed``, the service).

    Also a read-only mapping of these names (``info["frame_indices"]``, ``dict(info)``),
    equal to a dict of the same items, as the plain dict it replaces was.
    """

    frame_indices: list[int] = field(default_factory=list)
    total_frames: int | None = None
    fps: float | None = None
    video: str | None = None
    sha256: str | None = None

    @classmethod
    def of_clip(cls, clip: Any, *, video: str | None = None, sha256: str | None = None):
        """The info of a decoded :class:`~sfllava_ext.video.VideoClip` (``video``: the
        path to record, if any)."""
        return cls([int(i) for i in clip.indices], clip.total_frames, clip.fps, video, sha256)

    def replace(self, **changes: Any) -> VideoInfo:
        """A copy with ``changes`` (``info.replace(sha256=..., video=None)``)."""
        return dataclasses.replace(self, **changes)

    def to_metadata(self) -> dict[str, str]:
        """The session file's string metadata of these fields (``video`` made absolute)."""
        return {
            "frame_indices": json.dumps([int(i) for i in self.frame_indices]),
            "total_frames": json.dumps(self.total_frames),
            "fps": json.dumps(self.fps),
            "video": os.path.abspath(self.video) if self.video else "",
            "sha256": str(self.sha256 or ""),
        }

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str]) -> VideoInfo:
        """The info a session file's metadata holds (:meth:`to_metadata`'s inverse)."""
        return cls(
            json.loads(meta.get("frame_indices", "[]")),
            json.loads(meta.get("total_frames", "null")),
            json.loads(meta.get("fps", "null")),
            meta.get("video") or None,
            meta.get("sha256") or None,
        )

    # the mapping of the fields, for code that reads info["frame_indices"]
    def __getitem__(self, name: str) -> Any:
        if name not in self._names():
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))
