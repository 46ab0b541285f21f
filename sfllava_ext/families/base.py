"""What SF-LLaVA needs to know about one LLaVA-style model family
(docs/method.md#families).

Every supported family keeps Hugging Face's LLaVA layout: ``model.model.vision_tower``,
``.multi_modal_projector``, ``.language_model`` and ``model.lm_head``. A
:class:`Family` says the rest: the class that loads it, the chat format around the
published instruction text (its language model's), whether dynamic RoPE scaling
applies, how ``image_newline`` is treated, and the default aggregation. The feature
layer and its CLS strategy are read from the checkpoint's config, and the
image-processor settings (size, mean and std, resample filter) from its processor
(:func:`sfllava_ext.preprocess.frame_normalizer`), never from class defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    """

    model_type: str
    model_class: str
    default_slowfast: str
    image_newline: str = "unused: each frame is one base image, tokens in pathway order"

    def load_class(self) -> Any:
        """The transformers class (imported on first use)."""
        import transformers

        return getattr(transformers, self.model_class)

    def chat_format(self, config: Any, tokenizer: Any) -> str:
        """The chat format around the published instruction text: its language model's
        (:func:`sfllava_ext.prompts.chat_format`: Vicuna, the 34B's ChatML, Qwen2,
        Mistral or Llama-3)."""
        from ..prompts import chat_format

        return chat_format(config.text_config, tokenizer)

    def wants_dynamic_rope(self, text_config: Any) -> bool:
        """Whether dynamic RoPE scaling applies: a context of at most 4,096 positions."""
        context = getattr(text_config, "max_position_embeddings", None)
        return context is not None and context <= DYNAMIC_ROPE_MAX_CONTEXT
