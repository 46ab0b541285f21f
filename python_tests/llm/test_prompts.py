"""Prompts (docs/method.md#prompts) and their tokenization around <image>, checked with a
real SentencePiece tokenizer against SentencePiece itself."""

from __future__ import annotations

import pytest
import sentencepiece as spm
from support.tokenizers import hf_llama_tokenizer, train_llama_sentencepiece

from sfllava_ext.llm.prompts import (
    PROMPTS,
    PromptError,
    build_prompt,
    format_options,
    parse_choice,
    resolve_template,
    tokenize_around_image,
)

PUBLISHED_OPEN = (
    "USER: <image>\nThe input consists of a sequence of key frames from a video. Answer concisely "
    "with overall content and context of the video, highlighting any significant events, "
    "characters, or objects that appear throughout the video. Question: {question} \nASSISTANT:\n"
    "Answer: In the video,"
)
PUBLISHED_MC = (
    "You are a helpful expert in video analysis. Select the best option to answer the question. "
    "USER: <image>\nThe input consists of a sequence of key frames from a video.\nQuestion: "
    "{question}\nOptions:\n{options}Only give the best option. \nASSISTANT:\nAnswer: Best option:("
)
PUBLISHED_OPEN_CHATML = (
    "<|im_start|>system\n Answer the question. <|im_end|>\n<|im_start|>user\n <image>\nThe input "
    "consists of a sequence of key frames from a video. Answer concisely with overall content and "
    "context of the video, highlighting any significant events, characters, or objects that appear "
    "throughout the video. Question: {question} <|im_end|>\n<|im_start|>assistant\n"
    "Answer: In the video,"
)
PUBLISHED_MC_CHATML = (
    "<|im_start|>system\n You are a helpful expert in video analysis. Select the best option to "
    "answer the question. <|im_end|>\n<|im_start|>user\n <image>\nThe input consists of a sequence "
    "of key frames from a video. Question: {question}\nOptions:\n{options}"
    "Only give the best option. "
    "<|im_end|>\n<|im_start|>assistant\nAnswer: Best option:("
)


def test_templates_are_the_published_ones():
    assert PROMPTS["image_seq_v3"][:2] == (PUBLISHED_OPEN, PUBLISHED_OPEN_CHATML)
    assert PROMPTS["multiple_choice_allvideo_v4"][:2] == (PUBLISHED_MC, PUBLISHED_MC_CHATML)
    assert resolve_template("image_seq_v3", chatml=True) == PUBLISHED_OPEN_CHATML
    assert format_options(["cat", "dog", "bird"]) == "(A) cat\n(B) dog\n(C) bird\n"
    text = build_prompt(PUBLISHED_MC, "Who?", ["cat", "dog"])
    assert text.endswith(
        "Question: Who?\nOptions:\n(A) cat\n(B) dog\nOnly give the best option. \nASSISTANT:\n"
        "Answer: Best option:("
    )


@pytest.fixture(scope="module")
def sentencepiece_tokenizer(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("spm"))
    model = train_llama_sentencepiece(folder)
    return spm.SentencePieceProcessor(model_file=model), hf_llama_tokenizer(folder)


@pytest.mark.parametrize("name", list(PROMPTS))
@pytest.mark.parametrize("chatml", [False, True])
def test_tokenization_matches_sentencepiece(name, chatml, sentencepiece_tokenizer):
    """BOS once at the very start; each side of <image> encoded on its own, with
    SentencePiece's dummy-prefix rule applying to the second side too."""
    sp, tokenizer = sentencepiece_tokenizer
    text = build_prompt(
        resolve_template(name, chatml), "What is the man doing?", ["cooking", "running"]
    )
    ids = tokenize_around_image(tokenizer, text)
    head, tail = text.split("<image>")
    assert ids.before == [sp.bos_id()] + sp.encode(head)
    assert ids.after == sp.encode(tail)
    assert sp.bos_id() not in ids.after


def test_user_template_and_errors():
    assert resolve_template("Q: {question} <image> A:", chatml=False) == "Q: {question} <image> A:"
    with pytest.raises(PromptError, match="one '\\{question\\}' and one '<image>'"):
        resolve_template("no placeholder {question}", chatml=False)
    with pytest.raises(PromptError, match="question is empty"):
        build_prompt(PUBLISHED_OPEN, "   ")
    with pytest.raises(TypeError, match="question must be a str"):
        build_prompt(PUBLISHED_OPEN, 42)
    with pytest.raises(PromptError, match="at least two choices"):
        build_prompt(PUBLISHED_MC, "Who?", ["cat"])
    with pytest.raises(TypeError, match="options must be a list of str"):
        format_options("cat")


@pytest.mark.parametrize(
    "text, n, letter",
    [
        ("B) the dog", 3, "B"),
        (" (c) bird", 3, "C"),
        ("A", 2, "A"),
        ("The answer is D.", 4, "D"),
        ("E) x", 4, None),
        ("none", 2, None),
    ],
)
def test_parse_choice(text, n, letter):
    assert parse_choice(text, n) == letter
