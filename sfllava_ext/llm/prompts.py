"""The published SF-LLaVA prompts and their tokenization
(docs/method.md#prompts).

The visual tokens replace the single ``<image>`` placeholder. As LLaVA does, the
text on each side of ``<image>`` is tokenized separately with the tokenizer's
own special tokens, and only the very first BOS is kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

IMAGE_PLACEHOLDER = "<image>"

# Vicuna (LLaVA-NeXT 7B and 13B) prompts, as published.
OPEN_ENDED = (
    "USER: <image>\nThe input consists of a sequence of key frames from a video. Answer concisely "
    "with overall content and context of the video, highlighting any significant events, "
    "characters, or objects that appear throughout the video. Question: {question} \n"
    "ASSISTANT:\nAnswer: In the video,"
)
MULTIPLE_CHOICE = (
    "You are a helpful expert in video analysis. Select the best option to answer the question. "
    "USER: <image>\nThe input consists of a sequence of key frames from a video.\n"
    "Question: {question}\nOptions:\n{options}Only give the best option. \n"
    "ASSISTANT:\nAnswer: Best option:("
)
# Yi / ChatML (LLaVA-NeXT 34B) prompts; note the spaces after the role lines.
OPEN_ENDED_CHATML = (
    "<|im_start|>system\n Answer the question. <|im_end|>\n<|im_start|>user\n <image>\n"
    "The input consists of a sequence of key frames from a video. Answer concisely with overall "
    "content and context of the video, highlighting any significant events, characters, or "
    "objects that appear throughout the video. Question: {question} <|im_end|>\n"
    "<|im_start|>assistant\nAnswer: In the video,"
)
MULTIPLE_CHOICE_CHATML = (
    "<|im_start|>system\n You are a helpful expert in video analysis. Select the best option to "
    "answer the question. <|im_end|>\n<|im_start|>user\n <image>\nThe input consists of a "
    "sequence of key frames from a video. Question: {question}\nOptions:\n{options}"
    "Only give the best option. <|im_end|>\n<|im_start|>assistant\nAnswer: Best option:("
)

# Qwen2 (LLaVA-OneVision): the published instruction text in Qwen2's ChatML, as the
# family was trained (system, user, assistant turns; "<image>\n" opens the user turn),
# without the 34B's Yi-specific spaces (docs/method.md#family-prompts)
OPEN_ENDED_QWEN2 = (
    "<|im_start|>system\nAnswer the question.<|im_end|>\n<|im_start|>user\n<image>\n"
    "The input consists of a sequence of key frames from a video. Answer concisely with overall "
    "content and context of the video, highlighting any significant events, characters, or "
    "objects that appear throughout the video. Question: {question}<|im_end|>\n"
    "<|im_start|>assistant\nAnswer: In the video,"
)
MULTIPLE_CHOICE_QWEN2 = (
    "<|im_start|>system\nYou are a helpful expert in video analysis. Select the best option to "
    "answer the question.<|im_end|>\n<|im_start|>user\n<image>\nThe input consists of a "
    "sequence of key frames from a video.\nQuestion: {question}\nOptions:\n{options}"
    "Only give the best option.<|im_end|>\n<|im_start|>assistant\nAnswer: Best option:("
)

# Mistral (llava-v1.6-mistral-7b): one [INST] turn; the system line opens it
OPEN_ENDED_MISTRAL = (
    "[INST] <image>\nThe input consists of a sequence of key frames from a video. Answer "
    "concisely with overall content and context of the video, highlighting any significant "
    "events, characters, or objects that appear throughout the video. Question: {question} "
    "[/INST] Answer: In the video,"
)
MULTIPLE_CHOICE_MISTRAL = (
    "[INST] You are a helpful expert in video analysis. Select the best option to answer the "
    "question. <image>\nThe input consists of a sequence of key frames from a video.\n"
    "Question: {question}\nOptions:\n{options}Only give the best option. [/INST] "
    "Answer: Best option:("
)
# Llama-3 (llama3-llava-next-8b): header-delimited system, user and assistant turns
_L3 = "<|start_header_id|>{}<|end_header_id|>\n\n"
OPEN_ENDED_LLAMA3 = (
    _L3.format("system") + "Answer the question.<|eot_id|>" + _L3.format("user") + "<image>\n"
    "The input consists of a sequence of key frames from a video. Answer concisely with overall "
    "content and context of the video, highlighting any significant events, characters, or "
    "objects that appear throughout the video. Question: {question}<|eot_id|>"
    + _L3.format("assistant")
    + "Answer: In the video,"
)
MULTIPLE_CHOICE_LLAMA3 = (
    _L3.format("system") + "You are a helpful expert in video analysis. Select the best option "
    "to answer the question.<|eot_id|>" + _L3.format("user") + "<image>\nThe input consists of "
    "a sequence of key frames from a video.\nQuestion: {question}\nOptions:\n{options}"
    "Only give the best option.<|eot_id|>" + _L3.format("assistant") + "Answer: Best option:("
)

#: The chat formats, in the order of each PROMPTS entry (docs/method.md#family-prompts).
CHAT_FORMATS = ("vicuna", "chatml", "qwen2", "mistral", "llama3")
# Published names -> one template per chat format.
PROMPTS = {
    "image_seq_v3": (
        OPEN_ENDED, OPEN_ENDED_CHATML, OPEN_ENDED_QWEN2, OPEN_ENDED_MISTRAL, OPEN_ENDED_LLAMA3,
    ),
    "multiple_choice_allvideo_v4": (
        MULTIPLE_CHOICE, MULTIPLE_CHOICE_CHATML, MULTIPLE_CHOICE_QWEN2, MULTIPLE_CHOICE_MISTRAL,
        MULTIPLE_CHOICE_LLAMA3,
    ),
}  # fmt: skip
OPTION_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class PromptError(ValueError):
    """A question, option list or template that cannot make a prompt."""


def chat_format(text_config, tokenizer) -> str:
    """The chat format of a language model (one of :data:`CHAT_FORMATS`): Qwen2 and
    Mistral by their config's ``model_type``; Llama-3 by its header tokens and the Yi
    34B by ``<|im_start|>`` in the vocabulary; else Vicuna."""
    text_type = getattr(text_config, "model_type", None)
    if text_type in ("qwen2", "mistral"):
        return text_type
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    if "<|start_header_id|>" in vocab:
        return "llama3"
    return "chatml" if "<|im_start|>" in vocab else "vicuna"


def check_question(question: object) -> str:
    if not isinstance(question, str):
        raise TypeError(f"question must be a str, got {type(question).__name__}")
    if not question.strip():
        raise PromptError("question is empty")
    return question


def format_options(options: Sequence[str]) -> str:
    """``(A) first\\n(B) second\\n...`` as published."""
    if isinstance(options, str) or not isinstance(options, Sequence):
        raise TypeError(f"options must be a list of str, got {type(options).__name__}")
    if len(options) < 2:
        raise PromptError(f"options needs at least two choices, got {len(options)}")
    if len(options) > len(OPTION_LETTERS):
        raise PromptError(f"options has {len(options)} choices; at most {len(OPTION_LETTERS)}")
    for i, option in enumerate(options):
        if not isinstance(option, str) or not option.strip():
            raise PromptError(f"options[{i}] must be a non-empty str, got {option!r}")
    return "".join(f"({OPTION_LETTERS[i]}) {opt}\n" for i, opt in enumerate(options))


def resolve_template(prompt: str, chatml: bool | str) -> str:
    """A published prompt name, in the chat format ``chatml`` names (one of
    :data:`CHAT_FORMATS`; True and False are ``"chatml"`` and ``"vicuna"``), or a user
    template with one ``{question}`` and one ``<image>``, as given.

    Raises:
        PromptError: a user template without its placeholders.
        ValueError: an unknown chat format.
    """
    chat = ("chatml" if chatml else "vicuna") if isinstance(chatml, bool) else chatml
    if chat not in CHAT_FORMATS:
        raise ValueError(f"chat format must be one of {', '.join(CHAT_FORMATS)}, got {chat!r}")
    if prompt in PROMPTS:
        return PROMPTS[prompt][CHAT_FORMATS.index(chat)]
    if prompt.count(IMAGE_PLACEHOLDER) != 1 or "{question}" not in prompt:
        raise PromptError(
            f"prompt must be one of {', '.join(PROMPTS)} or a template with one '{{question}}' "
            f"and one '{IMAGE_PLACEHOLDER}', got {prompt!r}"
        )
    return prompt


def build_prompt(template: str, question: str, options: Sequence[str] | None = None) -> str:
    text = template.replace("{question}", check_question(question))
    if "{options}" in text:
        text = text.replace("{options}", format_options(options or []))
    return text


@dataclass(frozen=True)
class PromptIds:
    """Token ids before and after the visual tokens; ``before`` starts with BOS
    when the tokenizer adds one."""

    before: list[int]
    after: list[int]


def tokenize_around_image(tokenizer, text: str) -> PromptIds:
    """LLaVA's rule: each side of ``<image>`` tokenized on its own with the
    tokenizer's special tokens; the BOS that the second side gets is dropped."""
    if text.count(IMAGE_PLACEHOLDER) != 1:
        raise PromptError(f"the prompt must hold exactly one {IMAGE_PLACEHOLDER}")
    head, tail = text.split(IMAGE_PLACEHOLDER)
    before = list(tokenizer(head).input_ids)
    after = list(tokenizer(tail).input_ids)
    bos = tokenizer.bos_token_id
    if bos is not None and before and before[0] == bos and after and after[0] == bos:
        after = after[1:]
    return PromptIds(before, after)


def parse_choice(text: str, num_options: int) -> str | None:
    """The option letter at the start of the text generated after
    ``Best option:(`` — ``"B) the dog"``, ``" (b)"``, ``"B"`` -> ``"B"``."""
    letters = OPTION_LETTERS[:num_options]
    stripped = text.strip().lstrip("(").strip()
    if stripped and stripped[0].upper() in letters:
        rest = stripped[1:2]
        if not rest or not rest.isalpha():
            return stripped[0].upper()
    # Otherwise the first stand-alone capital option letter: "The answer is D."
    for match in re.finditer(r"(?:^|[\s(])([A-Z])(?=[).:,\s]|$)", text):
        if match.group(1) in letters:
            return match.group(1)
    return None
