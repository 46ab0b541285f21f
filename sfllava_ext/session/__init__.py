"""Encode once, ask many:

info.py     VideoInfo: what a session knows of its video, written once
prefix.py   a question's tokenized prompt, cached prefixes, how much is reused
session.py  VideoSession: a video's visual tokens and cached prompt prefixes
file.py     the session file: visual tokens in safetensors with what made them
"""

from __future__ import annotations

from .file import SessionFileError
from .info import VideoInfo
from .session import SessionPrompt, VideoSession

__all__ = ["SessionFileError", "SessionPrompt", "VideoInfo", "VideoSession"]
