"""``sfllava embed`` over many videos:

inputs.py         what it reads: files, folders, globs, manifests
store.py          the output folder, its lock, and what counts as done
shared_memory.py  frames from the decode workers to the model, never copied
decoding.py       decoding ahead of the model in worker processes
pipeline.py       embed_videos: the pipeline on one machine
distributed.py    embed_dataset: the same job on a Ray cluster (the [ray] extra)
"""

from .distributed import embed_dataset
from .inputs import Item, OutputCollisionError, OutputNameError, collect_inputs, output_name
from .pipeline import EmbedSummary, default_decode_workers, embed_videos
from .store import FolderLock, OutputFolderLocked

__all__ = [
    "EmbedSummary",
    "FolderLock",
    "Item",
    "OutputCollisionError",
    "OutputFolderLocked",
    "OutputNameError",
    "collect_inputs",
    "default_decode_workers",
    "embed_dataset",
    "embed_videos",
    "output_name",
]
