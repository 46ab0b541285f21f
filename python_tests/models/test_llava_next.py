"""The LLaVA-NeXT families against Hugging Face's own code: LLaVA-NeXT and
LLaVA-NeXT-Video (CLIP-L/14 at 336 px, 24 x 24) with the family's PIL processor,
``get_image_features`` and ``get_video_features``, and saved Mistral, Llama-3, Qwen2
and Yi LLaVA-NeXT checkpoints with their own tokenizers (docs/method.md#family-parity)."""

from __future__ import annotations

import copy

import pytest
import torch
from support.hf_parity import hf_base_pixels, hf_features, hf_image_features, rel_error
from support.reference import slowfast_reference
from support.tokenizers import hf_llama_tokenizer, llama3_tokenizer, train_llama_sentencepiece
from support.videos import write_test_video

from sfllava_ext import SlowFastLlava, aggregate, num_visual_tokens
from sfllava_ext.models.demo import DEMO_VISION, demo_parts, onevision_tokenizer
from sfllava_ext.models.families import FAMILIES

# the base-image settings of the llava-hf LLaVA-NeXT and NeXT-Video processors (the
# class defaults are 224 px)
NEXT_PROCESSOR = {
    "size": {"shortest_edge": 336},
    "crop_size": {"height": 336, "width": 336},
    "do_center_crop": True,
    "resample": 3,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
}
PUBLISHED = ("slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4", 10, "spatial_1d_max_pool")


def _pil_processor():
    from transformers import LlavaNextImageProcessorPil

    return LlavaNextImageProcessorPil(**NEXT_PROCESSOR)


def _base_pixels(clip_frames: torch.Tensor) -> torch.Tensor:
    """The PIL processor's base image of every frame: (T, 3, 336, 336) float32."""
    return hf_base_pixels(_pil_processor(), clip_frames)


def _hf_video_features(model, pixels: torch.Tensor) -> torch.Tensor:
    """NeXT-Video's own video path: ``get_video_features`` (its resampler before the
    projector), (T * pooled tokens, D)."""
    config = model.config
    with torch.no_grad():
        return model.model.get_video_features(
            pixels[None],
            vision_feature_layer=config.vision_feature_layer,
            vision_feature_select_strategy=config.vision_feature_select_strategy,
        ).pooler_output[0]


@pytest.fixture(scope="module", params=["next", "next_video"])
def family_parts(request):
    return request.param, demo_parts(request.param, dtype=torch.float32)


def test_encode_of_frames_equals_the_reference_on_the_pil_processor(family_parts, clip_frames):
    name, (model, tokenizer, _) = family_parts
    sf = SlowFastLlava(model, tokenizer, _pil_processor())
    assert sf.family is FAMILIES[model.config.model_type] and sf.grid == (24, 24)
    pixels = _base_pixels(clip_frames)
    assert torch.equal(sf.encoder.normalize(clip_frames).float(), pixels)  # bit for bit
    features = hf_features(model, pixels)
    _, slow, pool = PUBLISHED
    ref = slowfast_reference(features.double(), slow, pool, (4, 4), grid=(24, 24))
    ours = sf.encode(clip_frames)
    assert ours.shape == (10 * 288 + 16 * 16, model.config.text_config.hidden_size)
    assert rel_error(ours, ref) <= 1e-5


def test_concat_of_one_frame_is_the_base_image_of_get_image_features(family_parts, clip_frames):
    name, (model, tokenizer, _) = family_parts
    sf = SlowFastLlava(model, tokenizer, _pil_processor(), slowfast="concat")
    packed = hf_image_features(model, _pil_processor(), clip_frames[0])
    ours = sf.encode(clip_frames[:1])
    assert ours.shape == (576, model.config.text_config.hidden_size)
    assert packed.shape[0] > 576  # the base image, then the tiles and newlines left out here
    assert rel_error(ours, packed[:576]) <= 1e-5


def _next_video_with(model, **changes):
    """The same family's model with other resampler settings (seeded weights)."""
    config = copy.deepcopy(model.config)
    for key, value in changes.items():
        setattr(config, key, value)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        return type(model)(config).eval()


@pytest.mark.parametrize("mode, stride", [("average", 2), ("max", 2), ("conv", 2), ("average", 3)])
def test_next_video_pool_runs_the_resampler_before_the_projector(mode, stride, gen):
    model, tokenizer, _ = demo_parts("next_video", dtype=torch.float32)
    if (mode, stride) != (model.config.spatial_pool_mode, model.config.spatial_pool_stride):
        model = _next_video_with(model, spatial_pool_mode=mode, spatial_pool_stride=stride)
    sf = SlowFastLlava(model, tokenizer, slowfast="next_video_pool", micro_batch=4, profile=True)
    pixels = torch.rand(6, 3, 336, 336, generator=gen) * 2 - 1
    ours = sf.encode_pixels(pixels)
    ref = _hf_video_features(model, pixels)
    per_frame = (24 // stride) ** 2  # 144, or 64 at stride 3
    assert ours.shape == ref.shape == (6 * per_frame, model.config.text_config.hidden_size)
    counted = num_visual_tokens(6, (24, 24), "next_video_pool", pool_stride=stride)
    assert sf.num_visual_tokens(6) == counted == 6 * per_frame
    assert rel_error(ours, ref) <= 1e-5
    assert "resampler" in sf.last_timings.seconds


def test_next_video_pool_on_frames_and_where_it_is_refused(clip_frames):
    model, tokenizer, _ = demo_parts("next_video", dtype=torch.float32)
    sf = SlowFastLlava(model, tokenizer, _pil_processor(), slowfast="next_video_pool")
    ref = _hf_video_features(model, _base_pixels(clip_frames))
    assert rel_error(sf.encode(clip_frames), ref) <= 1e-5
    assert sf.num_visual_tokens(50) == 50 * 144 == 7200
    other, other_tokenizer, _ = demo_parts("next", dtype=torch.float32)
    with pytest.raises(ValueError, match="next_video_pool.*vision_resampler.*llava_next model"):
        SlowFastLlava(other, other_tokenizer, slowfast="next_video_pool")
    with pytest.raises(ValueError, match="before the projector"):
        aggregate(torch.zeros(2, 576, 8), "next_video_pool")


@pytest.mark.parametrize("slowfast", [None, "next_video_pool"])
def test_next_video_answer_matches_an_independent_assembly_and_hf_generate(slowfast, clip_frames):
    model, tokenizer, _ = demo_parts("next_video", dtype=torch.float32)
    sf = SlowFastLlava(model, tokenizer, _pil_processor(), slowfast=slowfast)
    question = "What is moving?"
    text = sf.prompt_template().replace("{question}", question)
    assert text.startswith("USER: <image>\n")  # Vicuna, as published
    embeds, mask = sf.build_inputs([clip_frames], [text])
    ref = _independent_assembly(model, tokenizer, text, sf.encode(clip_frames))
    assert torch.equal(embeds, ref) and bool(mask.all())
    expected = model.generate(
        inputs_embeds=ref, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id
    )
    answer = sf.answer(clip_frames, question, max_new_tokens=8)
    assert answer and answer == tokenizer.decode(expected[0], skip_special_tokens=True).strip()
    assert sf.session(clip_frames).answer(question, max_new_tokens=8) == answer


def _independent_assembly(model, tokenizer, text, visual):
    """Each side of ``<image>`` tokenized on its own, the second side's BOS dropped,
    the visual tokens between: (1, L, D)."""
    head, tail = text.split("<image>")
    before = tokenizer(head).input_ids
    after = tokenizer(tail).input_ids
    if tokenizer.bos_token_id is not None and after[:1] == [tokenizer.bos_token_id]:
        after = after[1:]
    table = model.get_input_embeddings().weight
    parts = [table[torch.tensor(before)], visual, table[torch.tensor(after)]]
    return torch.cat(parts).unsqueeze(0)


def _saved_checkpoint(language: str, folder):
    """A saved LLaVA-NeXT checkpoint with a Mistral (32k, SentencePiece tokenizer), a
    Llama-3 (8k, byte-level BPE with header tokens), a Qwen2 (32k, byte-level BPE
    with ChatML tokens and no BOS: the 72B and 110B) or a Yi (4k, SentencePiece with
    ChatML tokens: the 34B) language model, its tokenizer and its processor."""
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        MistralConfig,
        Qwen2Config,
    )

    narrow = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    if language in ("mistral", "yi"):
        spm_folder = str(folder / "spm")
        train_llama_sentencepiece(spm_folder)
        tokenizer = hf_llama_tokenizer(spm_folder)
        if language == "yi":
            chatml = {"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]}
            tokenizer.add_special_tokens(chatml)
        text_class, context = (
            (MistralConfig, 32768) if language == "mistral" else (LlamaConfig, 4096)
        )
        text = text_class(vocab_size=len(tokenizer), max_position_embeddings=context,
                          bos_token_id=1, eos_token_id=2, **narrow)  # fmt: skip
        image_token = tokenizer.unk_token_id
    elif language == "qwen2":
        tokenizer = onevision_tokenizer()
        text = Qwen2Config(vocab_size=len(tokenizer), max_position_embeddings=32768,
                           eos_token_id=tokenizer.eos_token_id, **narrow)  # fmt: skip
        image_token = tokenizer.convert_tokens_to_ids("<image>")
    else:
        tokenizer = llama3_tokenizer()
        text = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=8192,
                           rope_theta=500000.0, bos_token_id=tokenizer.bos_token_id,
                           eos_token_id=tokenizer.eos_token_id, **narrow)  # fmt: skip
        image_token = tokenizer.convert_tokens_to_ids("<image>")
    config = LlavaNextConfig(vision_config=CLIPVisionConfig(**DEMO_VISION), text_config=text,
                             image_token_index=image_token)  # fmt: skip
    torch.manual_seed(3)
    model = LlavaNextForConditionalGeneration(config).eval()
    checkpoint = folder / language
    model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    _pil_processor().save_pretrained(checkpoint)
    return checkpoint


@pytest.mark.parametrize(
    "language, opening",
    [
        ("mistral", "[INST] <image>\n"),
        ("llama3", "<|start_header_id|>system<|end_header_id|>"),
        ("qwen2", "<|im_start|>system\nAnswer the question.<|im_end|>"),
        ("yi", "<|im_start|>system\n Answer the question. <|im_end|>"),
    ],
)
def test_a_saved_checkpoint_loads_and_answers_as_hf_generate(
    language, opening, clip_frames, tmp_path
):
    from transformers import AutoTokenizer, LlavaNextForConditionalGeneration

    checkpoint = _saved_checkpoint(language, tmp_path)
    sf = SlowFastLlava.from_pretrained(checkpoint, dtype=torch.float32, device="cpu")
    model = LlavaNextForConditionalGeneration.from_pretrained(checkpoint).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    assert sf.family is FAMILIES["llava_next"]
    rope = getattr(sf.config.text_config, "rope_parameters", None) or {}
    # dynamic RoPE for the 34B's 4k context only (it changes nothing below 4k positions,
    # so HF's unscaled model stays the reference here)
    assert (rope.get("rope_type") == "dynamic") == (language == "yi")
    normalize = sf.encoder.normalize
    assert normalize.size == (336, 336) and normalize.mean == tuple(NEXT_PROCESSOR["image_mean"])
    question = "What is the man doing?"
    text = sf.prompt_template().replace("{question}", question)
    assert text.startswith(opening)
    # the visual tokens against HF's modules and the PIL processor
    features = hf_features(model, _base_pixels(clip_frames))
    visual = slowfast_reference(features.double(), 10, "spatial_1d_max_pool", (4, 4))
    assert rel_error(sf.encode(clip_frames), visual) <= 1e-5
    # the prompt against an independent assembly, one BOS first
    embeds, mask = sf.build_inputs([clip_frames], [text])
    ref = _independent_assembly(model, tokenizer, text, sf.encode(clip_frames))
    assert torch.equal(embeds, ref) and bool(mask.all())
    first = tokenizer(text.split("<image>")[0]).input_ids[0]
    if language == "qwen2":  # no BOS: the prompt opens with <|im_start|>
        assert tokenizer.bos_token_id is None
        assert first == tokenizer.convert_tokens_to_ids("<|im_start|>")
    else:
        assert first == tokenizer.bos_token_id
    stop = [tokenizer.eos_token_id]
    if language == "llama3":
        stop.append(tokenizer.convert_tokens_to_ids("<|eot_id|>"))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop[0]
    expected = model.generate(inputs_embeds=ref, max_new_tokens=8, do_sample=False,
                              eos_token_id=stop, pad_token_id=pad)  # fmt: skip
    answer = sf.answer(clip_frames, question, max_new_tokens=8)
    assert answer and answer == tokenizer.decode(expected[0], skip_special_tokens=True).strip()
    assert sf.session(clip_frames).answer(question, max_new_tokens=8) == answer


def test_embed_and_session_files_work_with_next_video_pool(tmp_path):
    from sfllava_ext import VideoSession, embed_videos
    from sfllava_ext.session.file import SessionFileError

    model, tokenizer, _ = demo_parts("next_video", dtype=torch.float32)
    sf = SlowFastLlava(model, tokenizer, slowfast="next_video_pool", num_frames=8)
    path = tmp_path / "in" / "clip.mp4"
    path.parent.mkdir()
    write_test_video(path, 320, 240, num_frames=40)
    summary = embed_videos([str(path.parent)], tmp_path / "out", model=sf, decode_workers=0,
                           progress=False)  # fmt: skip
    assert (summary.done, summary.failed) == (1, 0)
    file = tmp_path / "out" / "clip.mp4.safetensors"
    session = VideoSession.load(file, sf)
    assert session.tokens.shape[0] == 8 * 144
    assert torch.equal(session.tokens, sf.encode(str(path)))
    question = "What is moving?"
    assert session.answer(question, max_new_tokens=4) == sf.answer(
        str(path), question, max_new_tokens=4
    )
    # the resampler's settings are part of what the tokens depend on
    other = _next_video_with(model, spatial_pool_mode="max")
    other.load_state_dict(model.state_dict())  # the same weights: only the mode differs
    with pytest.raises(SessionFileError, match="vision"):
        VideoSession.load(file, SlowFastLlava(other, tokenizer, slowfast="next_video_pool",
                                              num_frames=8))  # fmt: skip
    # the published pathways do not run it: their files do not depend on it
    plain = SlowFastLlava(model, tokenizer, num_frames=8)
    embed_videos([str(path.parent)], tmp_path / "plain", model=plain, decode_workers=0,
                 progress=False)  # fmt: skip
    VideoSession.load(tmp_path / "plain" / "clip.mp4.safetensors",
                      SlowFastLlava(other, tokenizer, num_frames=8))  # fmt: skip


def test_from_pretrained_round_trips_a_saved_next_video_with_its_processor(clip_frames, tmp_path):
    from transformers import LlavaNextVideoForConditionalGeneration

    model, tokenizer, _ = demo_parts("next_video", dtype=torch.float32)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    _pil_processor().save_pretrained(tmp_path)
    sf = SlowFastLlava.from_pretrained(tmp_path, dtype=torch.float32, device="cpu")
    hf = LlavaNextVideoForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert type(sf.model) is LlavaNextVideoForConditionalGeneration
    normalize = sf.encoder.normalize
    assert normalize.size == (336, 336) and normalize.mean == tuple(NEXT_PROCESSOR["image_mean"])
    features = hf_features(hf, _base_pixels(clip_frames))
    ref = slowfast_reference(features.double(), 10, "spatial_1d_max_pool", (4, 4))
    assert rel_error(sf.encode(clip_frames), ref) <= 1e-5
    native = SlowFastLlava(sf.model, sf.tokenizer, sf.image_processor, slowfast="next_video_pool")
    assert (
        rel_error(native.encode(clip_frames), _hf_video_features(hf, _base_pixels(clip_frames)))
        <= 1e-5
    )
