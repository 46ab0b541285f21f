"""The demo's LLaVA-OneVision (``sfllava demo --family onevision``): a small random
model with the family's real geometry (SigLIP at 384 px, patch 14, a 27 x 27 grid,
layer -1 with no CLS token), a 2-layer Qwen2, its processor's settings (mean and std
of 0.5, bicubic) and a Qwen2-style byte-level tokenizer with ChatML's special tokens,
trained on the spot.
"""

from __future__ import annotations

import torch

from .demo import _CORPUS, DEMO_TEXT

__all__ = ["ONEVISION_PROCESSOR", "onevision_model", "onevision_tokenizer"]

ONEVISION_VISION = dict(
    hidden_size=64,
    intermediate_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    image_size=384,
    patch_size=14,
    vision_use_head=False,
)
# the base-image settings of the published OneVision processors
ONEVISION_PROCESSOR = {
    "size": {"height": 384, "width": 384},
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "resample": 3,
    "rescale_factor": 1 / 255,
    "do_convert_rgb": True,
}


def byte_level_bpe(texts, special_tokens, vocab_size: int):
    """A ``tokenizers`` byte-level BPE (no word prefix, as Qwen2's and Llama-3's)
    trained on ``texts``, with ``special_tokens`` first in its vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def onevision_tokenizer():
    """A Qwen2-style tokenizer: byte-level BPE, no BOS, ``<|endoftext|>``,
    ``<|im_start|>`` and ``<|im_end|>`` as special tokens (EOS ``<|im_end|>``)."""
    from transformers import PreTrainedTokenizerFast

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"]
    return PreTrainedTokenizerFast(
        tokenizer_object=byte_level_bpe(_CORPUS.split("\n"), special, 1024),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<image>"],
    )


def onevision_model(tokenizer, *, seed: int = 0, dtype: torch.dtype = torch.float32):
    """The demo LLaVA-OneVision with random weights (seeded)."""
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        Qwen2Config,
        SiglipVisionConfig,
    )

    text = Qwen2Config(
        vocab_size=len(tokenizer),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **{**DEMO_TEXT, "max_position_embeddings": 32768},
    )
    config = LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(**ONEVISION_VISION).to_dict(),
        text_config=text.to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaOnevisionForConditionalGeneration(config)
    return model.to(dtype).eval()
