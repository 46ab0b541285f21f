"""What SF-LLaVA needs to know about one LLaVA-style model family
(docs/method.md#families).

Every supported family keeps Hugging Face's LLaVA layout: ``model.model.vision_tower``,
``.multi_modal_projector``, ``.language_model`` and ``model.lm_head``. A
:class:`Family` says the rest: the class that loads it, the chat format around the
published instruction text (its language model's), whether dynamic RoPE scaling
applies, how ``image_newline`` is treated, and the default aggregation. The feature
layer and its CLS strategy are read from the checkpoint's config, and the
image-processor settings (size, mean and std, resample filter) from its processor
(:func:`sfllava_ext.encoder.normalize.frame_normalizer`), never from class defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...encoder.aggregation import PRE_PROJECTOR_POOLS
from ...encoder.tower import PreProjector
from ...llm.prompts import chat_format

__all__ = ["DYNAMIC_ROPE_MAX_CONTEXT", "Family"]

# dynamic RoPE scaling (docs/method.md#rope) is for models trained with this context
# or less: Vicuna and Llama-2-style 4k models, not Mistral's, Llama-3's or Qwen2's
DYNAMIC_ROPE_MAX_CONTEXT = 4096


@dataclass(frozen=True)
class Family:
    """One model family.

    Attributes:
        model_type: ``config.model_type`` of its checkpoints.
        model_class: the transformers class that loads them.
        default_slowfast: the aggregation used when none is given, and why
            (docs/method.md#family-defaults).
        image_newline: how the model's ``image_newline`` is treated (SF-LLaVA feeds
            frames as one base image each, with no newline token).
        pre_projector_pool: the aggregation name of the family's own pooling that runs
            before the projector (``model.model.vision_resampler``), if it has one.
    """

    model_type: str
    model_class: str
    default_slowfast: str
    image_newline: str = "unused: each frame is one base image, tokens in pathway order"
    pre_projector_pool: str | None = None

    def load_class(self) -> Any:
        """The transformers class (imported on first use)."""
        import transformers

        return getattr(transformers, self.model_class)

    def chat_format(self, config: Any, tokenizer: Any) -> str:
        """The chat format around the published instruction text: its language model's
        (:func:`sfllava_ext.llm.prompts.chat_format`: Vicuna, the 34B's ChatML, Qwen2,
        Mistral or Llama-3)."""
        return chat_format(config.text_config, tokenizer)

    def pre_projector(self, model: Any, aggregation: object) -> PreProjector | None:
        """The hook that runs between the tower and the projector for ``aggregation``:
        the model's own ``vision_resampler`` for the family's native pooling, else None.

        Raises:
            ValueError: ``aggregation`` is another family's pre-projector pooling.
        """
        if aggregation not in PRE_PROJECTOR_POOLS:
            return None
        if aggregation != self.pre_projector_pool:
            raise ValueError(
                f"slowfast='{aggregation}' runs a model's own vision_resampler before the "
                f"projector (LLaVA-NeXT-Video's); a {self.model_type} model has none"
            )
        config = model.config
        return PreProjector(model.model.vision_resampler, int(config.spatial_pool_stride))

    def wants_dynamic_rope(self, text_config: Any) -> bool:
        """Whether dynamic RoPE scaling applies: a context of at most 4,096 positions."""
        context = getattr(text_config, "max_position_embeddings", None)
        return context is not None and context <= DYNAMIC_ROPE_MAX_CONTEXT
