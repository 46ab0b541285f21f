"""Reading what an embedding job wrote, for the tests of ``embed_videos`` and of its
Ray twin: the session files below a folder, and a JSON-lines file."""

from __future__ import annotations

import glob
import json
import os

__all__ = ["jsonl", "outputs"]


def outputs(out_dir) -> list[str]:
    """The session files below ``out_dir``, relative to it, sorted."""
    return sorted(
        os.path.relpath(p, out_dir)
        for p in glob.glob(os.path.join(out_dir, "**", "*.safetensors"), recursive=True)
    )


def jsonl(path) -> list[dict]:
    """The records of a JSON-lines file."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
