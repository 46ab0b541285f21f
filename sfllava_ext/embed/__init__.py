"""``sfllava embed`` over many videos: the inputs (:mod:`.inputs`), the output folder
and what counts as done (:mod:`.store`), decoding ahead of the model in worker
processes (:mod:`.decoding`), and the pipeline that ties them (:mod:`.pipeline`). The
same job on a Ray cluster is :func:`sfllava_ext.distributed.embed_dataset`.
"""

from .inputs import Item, collect_inputs
from .pipeline import EmbedSummary, default_decode_workers, embed_videos

__all__ = ["EmbedSummary", "Item", "collect_inputs", "default_decode_workers", "embed_videos"]
