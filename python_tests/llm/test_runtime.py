"""LanguageModel, the one owner of the language model's side, against Hugging Face's own
calls: generate and the next-token logits over input embeddings, streaming, LLaVA's
tokenization, the stop set and the prompt templates."""

from __future__ import annotations

import threading

import pytest
import torch
from support.tokenizers import llama3_tokenizer

from sfllava_ext.llm import LanguageModel
from sfllava_ext.llm.prompts import OPEN_ENDED, OPEN_ENDED_LLAMA3, tokenize_around_image
from sfllava_ext.models import demo_parts


@pytest.fixture(scope="module")
def demo():
    model, tokenizer, _ = demo_parts("next", dtype=torch.float32)
    return model, tokenizer, LanguageModel(model, tokenizer)


def embeds_of(model, tokenizer, text: str) -> torch.Tensor:
    ids = torch.tensor([tokenizer(text).input_ids])
    with torch.inference_mode():
        return model.model.language_model.get_input_embeddings()(ids)


def test_generate_equals_hugging_faces_generate(demo):
    model, tokenizer, llm = demo
    embeds = embeds_of(model, tokenizer, "USER: what is moving across the screen? ASSISTANT:")
    settings = llm.generation_kwargs(12, {})
    ours = llm.generate(embeds, settings)
    with torch.inference_mode():
        theirs = model.generate(
            inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long),
            max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
    assert torch.equal(ours, theirs)
    # the stream's pieces, joined, are the decoded ids
    pieces = list(llm.stream(embeds, settings))
    assert "".join(pieces) == llm.decode(ours[0])


def test_next_token_logits_equal_a_plain_forward(demo):
    model, tokenizer, llm = demo
    embeds = embeds_of(model, tokenizer, "the square moves from left to right")
    with torch.inference_mode():
        theirs = model(inputs_embeds=embeds).logits[0, -1]
    assert torch.allclose(llm.next_token_logits(embeds), theirs, atol=1e-5, rtol=1e-5)
    # and from a prefilled prefix of the first positions
    from sfllava_ext.llm.kv_cache import fresh_cache

    kv = llm.prefill(embeds[:, :4])
    cached = llm.next_token_logits(embeds, make_cache=lambda: fresh_cache(kv, 4))
    assert torch.allclose(cached, theirs, atol=1e-4, rtol=1e-4)


def test_a_set_stop_event_ends_the_generation_at_once(demo):
    model, tokenizer, llm = demo
    embeds = embeds_of(model, tokenizer, "one two three")
    stop = threading.Event()
    stop.set()
    assert llm.generate(embeds, llm.generation_kwargs(20, {}), stop=stop).shape[1] == 1


def test_tokenizing_is_llavas_rule_and_needs_a_tokenizer(demo):
    model, tokenizer, llm = demo
    text = "USER: <image>\nWhat is moving? ASSISTANT:"
    assert llm.tokenize(text) == tokenize_around_image(tokenizer, text)
    assert llm.tokenize_text("what is moving") == tokenizer("what is moving").input_ids
    bare = LanguageModel(model)
    with pytest.raises(ValueError, match="tokenizer="):
        bare.tokenize(text)
    with pytest.raises(ValueError, match="tokenizer="):
        bare.decode([1, 2])


def test_the_stop_set_and_the_template_follow_the_tokenizer(demo):
    model, tokenizer, _ = demo
    llm = LanguageModel(model, tokenizer)
    assert llm.stop_ids == (tokenizer.eos_token_id,)
    assert llm.template("image_seq_v3") == OPEN_ENDED
    assert llm.finish_reason([5, tokenizer.eos_token_id], 2) == "stop"
    assert llm.finish_reason([5, 6], 2) == "length"
    assert llm.finish_reason([5], 2) == "stop"
    llama3 = llama3_tokenizer()
    llm.tokenizer = llama3  # replaced: the stop set and the chat format follow
    eot = llama3.convert_tokens_to_ids("<|eot_id|>")
    assert llm.stop_ids == (llama3.eos_token_id, eot)
    assert llm.finish_reason([5, eot], 2) == "stop"
    assert llm.generation_kwargs(4, {})["eos_token_id"] == [llama3.eos_token_id, eot]
    assert llm.template("image_seq_v3") == OPEN_ENDED_LLAMA3
    with pytest.raises(TypeError, match="prompt must be a str"):
        llm.template(3)
