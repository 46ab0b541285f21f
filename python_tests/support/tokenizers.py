"""A real Llama-style SentencePiece tokenizer, trained offline in the tests."""

from __future__ import annotations

import os

import sentencepiece as spm

from sfllava_ext.llm.prompts import PROMPTS

_WORDS = (
    "what is happening in the video who where why how many people the man woman dog cat car "
    "red blue green runs walks jumps opens door kitchen street ball camera moves left right"
)


def _corpus() -> list[str]:
    lines = []
    for templates in PROMPTS.values():
        for template in templates:
            lines += (
                template.replace("{question}", "What is the man doing?")
                .replace("{options}", "(A) cooking\n(B) running\n")
                .split("\n")
            )
    lines += [_WORDS, _WORDS.upper(), "0 1 2 3 4 5 6 7 8 9 , . ? ! : ; ( ) -"]
    return [line for line in lines if line.strip()] * 8


def train_llama_sentencepiece(folder: str, vocab_size: int = 420) -> str:
    """Trains a BPE SentencePiece model with Llama's settings (byte fallback,
    dummy prefix, identity normalisation, split digits, unk/bos/eos = 0/1/2) and
    writes it as ``folder/tokenizer.model``; returns its path."""
    os.makedirs(folder, exist_ok=True)
    prefix = os.path.join(folder, "tokenizer")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus()),
        model_prefix=prefix,
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        split_digits=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
        num_threads=1,
    )
    return prefix + ".model"


def hf_llama_tokenizer(folder: str):
    """The Hugging Face LlamaTokenizer of that SentencePiece model (BOS added, as
    LLaVA's Vicuna tokenizer does)."""
    from transformers import LlamaTokenizer

    return LlamaTokenizer.from_pretrained(folder, add_bos_token=True)


LLAMA3_SPECIAL = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<image>",
)


def llama3_tokenizer(vocab_size: int = 600):
    """A Llama-3-style tokenizer: byte-level BPE (no word prefix) trained on the same
    corpus, ``<|begin_of_text|>`` added to every encoding by its post-processor,
    EOS ``<|end_of_text|>``, the header and ``<|eot_id|>`` tokens and LLaVA's
    ``<image>`` as special tokens, no pad token."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    from sfllava_ext.models.demo import byte_level_bpe

    tok = byte_level_bpe(_corpus(), LLAMA3_SPECIAL, vocab_size)
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token="<|end_of_text|>",
        additional_special_tokens=list(LLAMA3_SPECIAL[2:]),
    )
