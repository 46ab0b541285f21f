"""Visual tokens and a prompt to text, the last stage of the data path:

prompts.py      the published prompts in each chat format, LLaVA's tokenization
                around <image>, option letters
assembly.py     the LLM's input embeddings, visual tokens written in place
runtime.py      LanguageModel: the one owner of the tokenizer, the language model's
                lock, tokenizing, decoding, the stop set, generate and next-token logits
generation.py   generate()'s settings and the prefill clock
streaming.py    text pieces as they are generated
kv_cache.py     every call into Hugging Face's cache API that sessions make
"""

from __future__ import annotations

from .prompts import PromptError, chat_format
from .runtime import LanguageModel

__all__ = ["LanguageModel", "PromptError", "chat_format"]
