"""The demo models' tokenizers, trained on the spot from a built-in text in a fraction
of a second: a Llama-style one (LLaVA-NeXT's Vicuna) and a Qwen2-style one
(LLaVA-OneVision's)."""

from __future__ import annotations

__all__ = ["CORPUS", "byte_level_bpe", "demo_tokenizer", "onevision_tokenizer"]

# Text the demo tokenizer learns its pieces from: the published prompts and
# everyday words, enough for a Llama-style (SentencePiece-like) BPE vocabulary.
CORPUS = """
USER: The input consists of a sequence of key frames from a video. Answer concisely with overall
content and context of the video, highlighting any significant events, characters, or objects
that appear throughout the video. Question: What is happening? ASSISTANT: Answer: In the video,
You are a helpful expert in video analysis. Select the best option to answer the question.
Options: (A) (B) (C) (D) (E) Only give the best option. Best option:(
a person walks across the street while a dog runs after a red ball near the blue car
the camera moves slowly to the left and shows a green tree, a white house and the sky
two people talk in a kitchen, one of them opens the door and the other one sits down
the square moves from left to right, the circle bounces up and down, colors change over time
what who where when why how is are was were do does did can could will would should
one two three four five six seven eight nine ten first second last next before after
""".strip()


def demo_tokenizer():
    """A Llama-style tokenizer (BPE over pieces with a ``▁`` word prefix, BOS
    added, byte fallback) trained in a fraction of a second on a built-in text."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<unk>", "<s>", "</s>", "<pad>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    bytes_ = [f"<0x{i:02X}>" for i in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=1024, special_tokens=special + bytes_, show_progress=False
    )
    tok.train_from_iterator(CORPUS.split("\n"), trainer=trainer)
    from tokenizers import processors

    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )


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
        tokenizer_object=byte_level_bpe(CORPUS.split("\n"), special, 1024),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<image>"],
    )
