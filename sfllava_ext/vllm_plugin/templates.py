"""Chat templates that render the published prompts (:mod:`sfllava_ext.llm.prompts`)
for vLLM's chat API, one per chat format, and the check that a template gives a
tokenizer the same prompt token ids as LLaVA's tokenization (docs/vllm.md#templates).

A chat request holds one user message: the video and the question. The question may
not be empty, nor hold ``<video>`` or ``<image>`` (a second placeholder). The template puts
the question where the published prompt has it; ``chat_template_kwargs``
``{"prompt": "multiple_choice"}`` selects the multiple-choice prompt, whose question
slot takes the question and its options (:func:`~.client.multiple_choice_text`).

LLaVA tokenizes each side of the placeholder on its own. A byte-level BPE (Qwen2,
Llama-3) gives the same ids for the whole text. A SentencePiece-style tokenizer that
adds its word prefix (``▁``) only at the start of a text does not: there the text
after the placeholder (and, for some, after BOS) needs one space, which
:func:`template_for` adds after checking the ids. The shipped files
(``templates/<format>.jinja``) have no space; ``sfllava serve --engine vllm`` writes
the checked one.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..llm.prompts import (
    CHAT_FORMATS,
    IMAGE_PLACEHOLDER,
    PROMPTS,
    chat_format,
    tokenize_around_image,
)

__all__ = [
    "BOS_FORMATS",
    "QUESTION_SLOT",
    "TemplateCheck",
    "chat_template",
    "llava_ids",
    "shipped_template",
    "template_for",
    "write_shipped_templates",
]

TEMPLATE_DIR = os.path.join(os.path.dirname(__file__), "templates")
#: the chat formats whose tokenizers start a text with BOS (Llama's, Mistral's, Llama-3's)
BOS_FORMATS = ("vicuna", "mistral", "llama3")
#: what the question slot of each published prompt spans
QUESTION_SLOT = {
    "image_seq_v3": "{question}",
    "multiple_choice_allvideo_v4": "{question}\nOptions:\n{options}",
}
_KWARG = {"image_seq_v3": "open_ended", "multiple_choice_allvideo_v4": "multiple_choice"}
_SAMPLE_QUESTION = "What is happening in the video?"


def _parts(prompt: str, fmt: str) -> tuple[str, str, str]:
    """(before the placeholder, between it and the question, after the question)."""
    text = PROMPTS[prompt][CHAT_FORMATS.index(fmt)]
    before, rest = text.split(IMAGE_PLACEHOLDER)
    middle, after = rest.split(QUESTION_SLOT[prompt])
    return before, middle, after


def chat_template(
    fmt: str, *, bos: bool, space_after_bos: bool = False, space_after_placeholder: bool = False
) -> str:
    """The Jinja chat template of the published prompts in chat format ``fmt``.

    Args:
        fmt: one of :data:`~sfllava_ext.llm.prompts.CHAT_FORMATS`.
        bos: start with the tokenizer's BOS (vLLM's chat API adds no special tokens).
        space_after_bos, space_after_placeholder: one space after BOS, after the
            placeholder, where the text after it is tokenized as the start of a text
            (see the module's docstring).

    Raises:
        ValueError: an unknown chat format.
    """
    if fmt not in CHAT_FORMATS:
        raise ValueError(f"chat format must be one of {', '.join(CHAT_FORMATS)}, got {fmt!r}")
    lines = [
        f"{{#- SF-LLaVA's published prompts, {fmt} chat format (sfllava_ext.vllm_plugin) -#}}",
        "{%- set ns = namespace(question='', video='', users=0) -%}",
        "{%- for message in messages -%}",
        "{%- if message['role'] == 'user' -%}",
        "{%- set ns.users = ns.users + 1 -%}",
        "{%- set text = message['content'] if message['content'] is string else "
        "message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') "
        "| join('\\n') -%}",
        "{%- set ns.question = text -%}",
        # vLLM puts the video's placeholder first: "<video>\n" + the text
        "{%- for ph in ['<video>', '<image>'] -%}"
        "{%- if not ns.video and ns.question.startswith(ph + '\\n') -%}"
        "{%- set ns.video = ph -%}{%- set ns.question = ns.question[ph | length + 1 :] -%}"
        "{%- endif -%}{%- endfor -%}",
        "{%- if '<video>' in ns.question or '<image>' in ns.question -%}"
        "{{- raise_exception('the question may not hold <video> or <image>: attach the "
        "video as a video part') -}}{%- endif -%}",
        "{%- if not ns.question | trim -%}{{- raise_exception('the question is empty') -}}"
        "{%- endif -%}",
        "{%- elif message['role'] != 'system' -%}",
        "{{- raise_exception(\"SF-LLaVA's prompt is one question about one video: send one "
        'user message") -}}',
        "{%- endif -%}",
        "{%- endfor -%}",
        "{%- if ns.users != 1 -%}{{- raise_exception(\"SF-LLaVA's prompt is one question about "
        'one video: send one user message") -}}{%- endif -%}',
    ]
    if bos:
        lines.append(f"{{{{- bos_token + {json.dumps(' ' if space_after_bos else '')} -}}}}")
    space = " " if space_after_placeholder else ""
    for i, (prompt, kwarg) in enumerate(_KWARG.items()):
        before, middle, after = _parts(prompt, fmt)
        test = "if" if i == 0 else "elif"
        lines.append(f"{{%- {test} (prompt | default('open_ended')) == {json.dumps(kwarg)} -%}}")
        lines.append(
            f"{{{{- {json.dumps(before)} + ns.video + ({json.dumps(space)} if ns.video else '')"
            f" + {json.dumps(middle)} + ns.question + {json.dumps(after)} -}}}}"
        )
    lines.append(
        '{%- else -%}{{- raise_exception("chat_template_kwargs prompt must be open_ended or '
        'multiple_choice") -}}{%- endif -%}'
    )
    return "\n".join(lines) + "\n"


def shipped_template(fmt: str) -> str:
    """The template shipped for chat format ``fmt`` (BOS as the format's tokenizers
    add it, no space after the placeholder)."""
    return chat_template(fmt, bos=fmt in BOS_FORMATS)


def write_shipped_templates(folder: str = TEMPLATE_DIR) -> list[str]:
    """Writes ``<format>.jinja`` for every chat format; returns the paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for fmt in CHAT_FORMATS:
        path = os.path.join(folder, f"{fmt}.jinja")
        with open(path, "w") as f:
            f.write(shipped_template(fmt))
        paths.append(path)
    return paths


class TemplateCheck:
    """A template chosen for a tokenizer. ``exact``: its prompt ids equal LLaVA's
    tokenization for both published prompts; ``note``: why not, when not."""

    def __init__(self, fmt: str, template: str, exact: bool, note: str = "") -> None:
        self.format, self.template, self.exact, self.note = fmt, template, exact, note


def _rendered_ids(tokenizer: Any, template: str, placeholder: str, kwarg: str) -> list[int]:
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": f"{placeholder}\n{_sample_question(kwarg)}"}],
        chat_template=template,
        tokenize=False,
        add_generation_prompt=True,
        prompt=kwarg,
    )
    return list(tokenizer(text, add_special_tokens=False).input_ids)


def _sample_question(kwarg: str) -> str:
    if kwarg == "multiple_choice":
        return f"{_SAMPLE_QUESTION}\nOptions:\n(A) a dog\n(B) a cat\n"
    return _SAMPLE_QUESTION


def llava_ids(
    tokenizer: Any, fmt: str, prompt: str, question: str, placeholder_id: int
) -> list[int]:
    """LLaVA's tokenization of a published prompt with one placeholder token between
    its two sides (what the model's own path, :class:`~sfllava_ext.SlowFastLlava`,
    tokenizes)."""
    text = PROMPTS[prompt][CHAT_FORMATS.index(fmt)].replace(QUESTION_SLOT[prompt], question)
    ids = tokenize_around_image(tokenizer, text)
    return ids.before + [placeholder_id] + ids.after


def template_for(tokenizer: Any, hf_config: Any, placeholder: str) -> TemplateCheck:
    """The template whose prompt ids equal LLaVA's for this tokenizer: the chat format
    of the checkpoint, BOS as its tokenizer adds one, a space after the placeholder
    where its tokenization needs one. ``exact`` is False (with the reason) where no
    variant matches; then the template without the space is returned."""
    fmt = chat_format(hf_config.text_config, tokenizer)
    placeholder_id = tokenizer.convert_tokens_to_ids(placeholder)
    bos = tokenizer.bos_token_id is not None and list(tokenizer("x").input_ids[:1]) == [
        tokenizer.bos_token_id
    ]
    variants = ((False, False), (False, True), (True, True), (True, False))
    for after_bos, after_placeholder in variants:
        template = chat_template(
            fmt, bos=bos, space_after_bos=after_bos, space_after_placeholder=after_placeholder
        )
        if all(
            _rendered_ids(tokenizer, template, placeholder, kwarg)
            == llava_ids(tokenizer, fmt, prompt, _sample_question(kwarg), placeholder_id)
            for prompt, kwarg in _KWARG.items()
        ):
            return TemplateCheck(fmt, template, True)
    return TemplateCheck(
        fmt,
        chat_template(fmt, bos=bos),
        False,
        "no template gives this tokenizer LLaVA's prompt ids (each side of the placeholder "
        "tokenized on its own); send token ids instead (docs/vllm.md#templates)",
    )
