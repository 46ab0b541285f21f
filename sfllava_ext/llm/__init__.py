"""Visual tokens and a prompt to text, the last stage of the data path:

prompts.py      the published prompts in each chat format, LLaVA's tokenization
                around <image>, option letters
assembly.py     a batch's input embeddings, visual tokens written in place
embeddings.py   token ids to input embeddings, written in place
runtime.py      LanguageModel: the one owner of the tokenizer, the language model's
                lock, tokenizing, decoding, the stop set, generate and next-token logits
generation.py   generate()'s settings, the stop set and the prefill clock
streaming.py    text pieces as they are generated
kv_cache.py     every call into Hugging Face's cache API that sessions make
"""

from __future__ import annotations

from .prompts import PromptError, chat_format
from .runtime import LanguageModel

__all__ = ["LanguageModel", "PromptError", "chat_format"]
