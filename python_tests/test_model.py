"""SlowFastLlava on small random LLaVA-NeXT models: parity with an independent
reference of the published method (docs/method.md, sections 3-8), batching, RoPE, loading."""

from __future__ import annotations

import threading

import pytest
import sentencepiece as spm
import torch
from support.models import TEXT, tiny_llava
from support.reference import slowfast_reference
from support.tokenizers import hf_llama_tokenizer, train_llama_sentencepiece
from support.videos import write_test_video

from sfllava_ext import SlowFastConfig, SlowFastLlava, load_video
from sfllava_ext.llm.prompts import PROMPTS, PromptError
from sfllava_ext.model import NotLlavaNextError
from sfllava_ext.ops import normalize_frames


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("spm"))
    sp = spm.SentencePieceProcessor(model_file=train_llama_sentencepiece(folder))
    return sp, hf_llama_tokenizer(folder)


@pytest.fixture(scope="module")
def llava(tokenizers):
    sp, tok = tokenizers
    return tiny_llava(len(tok))


def random_frames(t: int, h: int = 90, w: int = 120, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (t, h, w, 3), generator=g, dtype=torch.uint8)


def reference_visual_tokens(model, pixels: torch.Tensor, aggregation: str) -> torch.Tensor:
    """The published path: the whole CLIP tower with every hidden state, layer -2
    without CLS, the projector, then the plain-torch slow/fast reference in fp64."""
    with torch.no_grad():
        hidden = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states[-2][
            :, 1:
        ]
        features = model.model.multi_modal_projector(hidden)
    cfg = SlowFastConfig.parse(aggregation)
    ref = slowfast_reference(features.double(), cfg.slow_frames, cfg.slow_pool, cfg.fast_size)
    return ref.to(features.dtype)


@pytest.mark.parametrize(
    "aggregation",
    [
        "slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4",
        "slowfast-slow_4frms_spatial_2d_avg_pool-fast_3x2",
    ],
)
def test_encode_pixels_matches_reference(llava, aggregation):
    g = torch.Generator().manual_seed(3)
    pixels = torch.randn(13, 3, 336, 336, generator=g)
    sf = SlowFastLlava(llava, slowfast=aggregation, micro_batch=5)
    ours = sf.encode_pixels(pixels)
    ref = reference_visual_tokens(llava, pixels, aggregation)
    assert ours.shape == ref.shape == (sf.num_visual_tokens(13), TEXT["hidden_size"])
    assert (ours - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_last_layer_never_runs(llava):
    calls = []
    hooks = [
        layer.register_forward_hook(lambda m, i, o, k=k: calls.append(k))
        for k, layer in enumerate(llava.model.vision_tower.encoder.layers)
    ]
    try:
        SlowFastLlava(llava, micro_batch=4).encode(random_frames(6))
    finally:
        for h in hooks:
            h.remove()
    assert sorted(set(calls)) == [0, 1]  # layer 2 of 3 (the last) never runs
    assert len(calls) == 2 * 2  # two micro-batches of 4 + 2 frames


def test_encode_uses_given_frames_and_normalises_like_the_op(llava):
    frames = random_frames(7)
    sf = SlowFastLlava(llava)
    ours = sf.encode(frames)
    pixels = normalize_frames(frames, (336, 336), dtype=torch.float32)
    torch.testing.assert_close(ours, sf.encode_pixels(pixels), rtol=0, atol=0)


def reference_inputs(model, sp, frames, question, aggregation):
    """Reference assembly by docs/method.md#tokenization: BOS + sentencepiece(head), visual tokens,
    sentencepiece(tail), looked up in the embedding table directly."""
    text = PROMPTS["image_seq_v3"][0].replace("{question}", question)
    head, tail = text.split("<image>")
    weight = model.model.language_model.get_input_embeddings().weight
    before = weight[torch.tensor([sp.bos_id()] + sp.encode(head))]
    after = weight[torch.tensor(sp.encode(tail))]
    pixels = normalize_frames(frames, (336, 336), dtype=torch.float32)
    visual = reference_visual_tokens(model, pixels, aggregation)
    return torch.cat([before, visual, after]).unsqueeze(0)


def test_answer_inputs_logits_and_generation_match_reference(llava, tokenizers):
    sp, tok = tokenizers
    frames = random_frames(12)
    aggregation = "slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4"
    sf = SlowFastLlava(llava, tok, micro_batch=64)
    question = "What is the man doing?"
    text = PROMPTS["image_seq_v3"][0].replace("{question}", question)
    embeds, mask = sf.build_inputs([frames], [text])
    ref = reference_inputs(llava, sp, frames, question, aggregation)
    assert embeds.shape == ref.shape and bool(mask.all())
    assert torch.equal(embeds, ref)  # element for element
    with torch.no_grad():
        ours_logits = llava(inputs_embeds=embeds, attention_mask=mask).logits
        ref_logits = llava(inputs_embeds=ref).logits
    assert (ours_logits - ref_logits).abs().max() <= 1e-5 * ref_logits.abs().max()
    expected = llava.generate(inputs_embeds=ref, max_new_tokens=12, do_sample=False, pad_token_id=2)
    answer = sf.answer(frames, question, max_new_tokens=12)
    assert answer == tok.decode(expected[0], skip_special_tokens=True).strip()


def test_batch_matches_single(llava, tokenizers):
    _, tok = tokenizers
    sf = SlowFastLlava(llava, tok, micro_batch=8)
    videos = [random_frames(9, seed=1), random_frames(20, seed=2)]
    questions = ["What is the man doing?", "Where is the dog?"]
    texts = [PROMPTS["image_seq_v3"][0].replace("{question}", q) for q in questions]
    embeds, mask = sf.build_inputs(videos, texts)
    assert mask[0].sum() < mask[1].sum() and mask[0, 0] == 0  # left padded
    with torch.no_grad():
        batch_logits = llava(inputs_embeds=embeds, attention_mask=mask).logits[:, -1]
        for b in range(2):
            single, single_mask = sf.build_inputs([videos[b]], [texts[b]])
            one = llava(inputs_embeds=single, attention_mask=single_mask).logits[0, -1]
            assert (batch_logits[b] - one).abs().max() <= 1e-4 * one.abs().max()
    answers = sf.answer(videos, questions, max_new_tokens=5)
    assert isinstance(answers, list) and len(answers) == 2
    assert answers[0] == sf.answer(videos[0], questions[0], max_new_tokens=5)


def test_paths_decode_into_reused_buffers(llava, tokenizers, tmp_path):
    """A path is decoded into the model's frame buffers, as YUV 4:2:0 planes on the
    CPU; the tokens equal those of the RGB clip loaded on its own, from one thread
    or several, alone or in a batch."""
    _, tok = tokenizers
    paths = [
        write_test_video(tmp_path / "a.mp4", 96, 64, 40, gop=10),
        write_test_video(tmp_path / "b.mp4", 96, 64, 40, pattern="noise"),
    ]
    sf = SlowFastLlava(llava, tok, num_frames=8, micro_batch=4)
    expected = [sf.encode(load_video(p, 8)) for p in paths]
    assert sf.frame_buffers.idle_bytes == 0  # clips given by the caller: no pool

    planes = 8 * (64 * 96 + 2 * 32 * 48)  # Y, U and V of 8 frames: no RGB frames

    def idle_address() -> int:
        buffer = sf.frame_buffers.take(planes)
        sf.frame_buffers.give(buffer)
        return buffer.ctypes.data

    addresses = set()
    for path, want in zip(paths * 2, expected * 2, strict=True):
        torch.testing.assert_close(sf.encode(path), want, rtol=0, atol=0)
        assert sf.frame_buffers.idle_bytes == planes  # released after use
        addresses.add(idle_address())
    assert len(addresses) == 1  # one buffer, reused by every call

    results: dict[int, list[torch.Tensor]] = {0: [], 1: []}
    workers = [
        threading.Thread(target=lambda k=k: results[k % 2].append(sf.encode(paths[k % 2])))
        for k in range(4)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for k in (0, 1):
        assert len(results[k]) == 2
        for tokens in results[k]:
            torch.testing.assert_close(tokens, expected[k], rtol=0, atol=0)

    texts = [PROMPTS["image_seq_v3"][0].replace("{question}", "What moves?")] * 2
    sf.frame_buffers.clear()
    from_paths = sf.build_inputs(paths, texts)
    assert sf.frame_buffers.idle_bytes == 2 * planes  # both released
    from_clips = sf.build_inputs([load_video(p, 8) for p in paths], texts)
    for ours, ref in zip(from_paths, from_clips, strict=True):
        torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    # a batch that fails part-way gives back the buffers of the videos it loaded
    sf.frame_buffers.clear()
    with pytest.raises(FileNotFoundError):
        sf.build_inputs([paths[0], str(tmp_path / "missing.mp4")], texts)
    assert sf.frame_buffers.idle_bytes == planes


def test_choose_parses_a_letter(llava, tokenizers):
    _, tok = tokenizers
    sf = SlowFastLlava(llava, tok)
    letter = sf.choose(
        random_frames(5), "What is the man doing?", ["cooking", "running", "sleeping"]
    )
    assert letter is None or letter in "ABC"


def test_chatml_tokenizer_gets_the_chatml_prompt(llava, tokenizers):
    _, tok = tokenizers
    from transformers import AutoTokenizer

    chatml = AutoTokenizer.from_pretrained(tok.name_or_path, add_bos_token=True)
    chatml.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    model = tiny_llava(len(chatml))
    sf = SlowFastLlava(model, chatml)
    text = sf.prompt_template("image_seq_v3").replace("{question}", "Why?")
    embeds, _ = sf.build_inputs([random_frames(3)], [text])
    ids = chatml(text.split("<image>")[0]).input_ids
    assert chatml.convert_tokens_to_ids("<|im_start|>") in ids
    assert (
        embeds.shape[1]
        == len(ids) + sf.num_visual_tokens(3) + len(chatml(text.split("<image>")[1]).input_ids) - 1
    )
    # the ChatML test is made once per tokenizer: a tokenizer swapped in is tested anew
    sf.tokenizer = tok
    assert "<|im_start|>" not in sf.prompt_template("image_seq_v3")
    sf.tokenizer = chatml
    assert "<|im_start|>" in sf.prompt_template("image_seq_v3")


def test_from_pretrained_roundtrip_rope_and_long_prompt(tmp_path, llava, tokenizers):
    _, tok = tokenizers
    from transformers import CLIPImageProcessor

    folder = tmp_path / "tiny-llava"
    llava.save_pretrained(folder)
    tok.save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}
    ).save_pretrained(folder)
    sf = SlowFastLlava.from_pretrained(
        folder, device="cpu", dtype=torch.float32, rope_scaling_factor=2
    )
    rope = sf.config.text_config.rope_parameters
    assert rope["rope_type"] == "dynamic" and rope["factor"] == 2.0
    assert sf.model.model.language_model.rotary_emb.rope_type == "dynamic"
    frames = random_frames(12)
    assert torch.equal(sf.encode(frames), SlowFastLlava(llava).encode(frames))
    # 10*288 + 12*16 visual tokens: far beyond the original 256 positions.
    assert sf.num_visual_tokens(12) > TEXT["max_position_embeddings"]
    assert isinstance(sf.answer(frames, "What happens?", max_new_tokens=3), str)


def test_from_pretrained_refuses_what_does_not_fit(tmp_path, llava, tokenizers, monkeypatch):
    _, tok = tokenizers
    llava.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    monkeypatch.setattr("sfllava_ext.models.loading.available_memory", lambda device: 1024)
    with pytest.raises(MemoryError, match=r"needs .* GiB .* only 0.0 GiB is free on cpu"):
        SlowFastLlava.from_pretrained(tmp_path, device="cpu")


def test_bad_input(llava, tokenizers, tmp_path):
    _, tok = tokenizers
    sf = SlowFastLlava(llava, tok)
    frames = random_frames(3)
    with pytest.raises(PromptError, match="question is empty"):
        sf.answer(frames, "  ")
    with pytest.raises(TypeError, match="question must be a str"):
        sf.answer(frames, None)
    with pytest.raises(PromptError, match="at least two choices"):
        sf.choose(frames, "Which?", ["only one"])
    with pytest.raises(FileNotFoundError):
        sf.encode(str(tmp_path / "missing.mp4"))
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(ValueError, match="bad.mp4"):
        sf.encode(str(bad))
    with pytest.raises(TypeError, match="uint8"):
        sf.encode(frames.float())
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        sf.encode(frames[..., :2])
    with pytest.raises(NotLlavaNextError, match="LLaVA-style model"):
        SlowFastLlava(llava.model.language_model)
    with pytest.raises(ValueError, match="requested but the model is on cpu"):
        SlowFastLlava(llava, tok, device="meta")
    with pytest.raises(ValueError, match="unknown aggregation"):
        SlowFastLlava(llava, slowfast="temporal_max_pool")
    with pytest.raises(ValueError, match="resize_mode"):
        SlowFastLlava(llava, resize_mode="stretch")


def test_each_public_call_starts_its_own_timings(llava, tokenizers, tmp_path):
    """last_timings belongs to the latest public call: build_inputs called directly
    starts afresh instead of adding to the previous call's stages."""
    _, tok = tokenizers
    sf = SlowFastLlava(llava, tok, num_frames=4, profile=True)
    path = write_test_video(tmp_path / "t.mp4", 64, 48, 12)
    text = sf.prompt_template().replace("{question}", "Why?")
    sf.build_inputs([path], [text])
    first = sf.last_timings
    first_seconds = dict(first.seconds)
    assert {"decode", "normalise", "vision tower", "projector", "pooling"} <= set(first_seconds)
    sf.build_inputs([path], [text])
    assert sf.last_timings is not first and first.seconds == first_seconds
    sf.answer(path, "Why?", max_new_tokens=2)
    assert {"decode", "pooling", "prefill", "generation"} <= set(sf.last_timings.seconds)
    sf.encode(random_frames(3))
    assert set(sf.last_timings.seconds) == {"normalise", "vision tower", "projector", "pooling"}
    sf.encode_pixels(torch.zeros(2, 3, 336, 336))
    assert set(sf.last_timings.seconds) == {"normalise", "vision tower", "projector", "pooling"}
    sf.choose(path, "Which?", ["a", "b"], max_new_tokens=2)
    assert {"decode", "prefill"} <= set(sf.last_timings.seconds)


def test_load_video_decodes_as_encode_does(llava, tokenizers, tmp_path):
    """SlowFastLlava.load_video (what the CLI's embed uses) keeps CPU planes and the
    frame-buffer pool, and encodes to the same tokens as encode(path)."""
    _, tok = tokenizers
    sf = SlowFastLlava(llava, tok, num_frames=6)
    path = write_test_video(tmp_path / "p.mp4", 64, 48, 20)
    clip = sf.load_video(path)
    assert type(clip.frames).__name__ == "Yuv420Frames" and clip.buffer is not None
    tokens = sf.encode(clip)
    sf.frame_buffers.release(clip)
    assert sf.frame_buffers.idle_bytes > 0
    assert torch.equal(tokens, sf.encode(path))
