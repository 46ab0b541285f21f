"""Reading what an embedding job wrote, for the tests of ``embed_videos`` and of its
Ray twin: the session files below a folder, and a JSON-lines file; and one short
video embedded, for the families' tests."""

from __future__ import annotations

import glob
import json
import os

from support.videos import write_test_video

__all__ = ["embed_one_video", "jsonl", "outputs"]


def embed_one_video(sf, folder, out: str = "out"):
    """A 320 x 240 test video (``folder/in/clip.mp4``, written once) embedded with
    ``sf`` into ``folder/out``, in process; ``(video path, session file path)``."""
    from sfllava_ext import embed_videos

    path = folder / "in" / "clip.mp4"
    if not path.exists():
        path.parent.mkdir(parents=True)
        write_test_video(path, 320, 240, num_frames=40)
    summary = embed_videos([str(path.parent)], folder / out, model=sf, decode_workers=0,
                           progress=False)  # fmt: skip
    assert (summary.done, summary.failed) == (1, 0)
    return path, folder / out / "clip.mp4.safetensors"


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
