"""Model families (docs/method.md#families): each checked against Hugging Face's own
modules and processors, on small random-weight models with the family's real image
size, patch size and grid."""

from __future__ import annotations

import pytest
import torch
from support.hf_parity import hf_base_pixels, hf_features, hf_image_features, rel_error
from support.reference import slowfast_reference
from support.servers import free_port, wait_for_health
from support.videos import write_test_video

from sfllava_ext import SlowFastLlava
from sfllava_ext.llm.prompts import PROMPTS
from sfllava_ext.models.demo import ONEVISION_PROCESSOR, demo_parts
from sfllava_ext.models.families import FAMILIES, UnsupportedModelError

ONEVISION_SLOWFAST = "slowfast-slow_15frms_spatial_1d_max_pool-fast_4x4"


@pytest.fixture(scope="module")
def onevision():
    model, tokenizer, processor = demo_parts("onevision", dtype=torch.float32)
    return model, tokenizer, processor


def _pil_processor():
    from transformers import LlavaOnevisionImageProcessorPil

    return LlavaOnevisionImageProcessorPil(
        **{k: v for k, v in ONEVISION_PROCESSOR.items() if k != "do_convert_rgb"}
    )


def _hf_base_pixels(clip_frames: torch.Tensor) -> torch.Tensor:
    """The PIL processor's base image of every frame: (T, 3, 384, 384) float32."""
    return hf_base_pixels(_pil_processor(), clip_frames)


def test_the_family_comes_from_the_model_type(onevision):
    model, tokenizer, processor = onevision
    sf = SlowFastLlava(model, tokenizer, processor)
    assert sf.family is FAMILIES["llava_onevision"]
    assert sf.grid == (27, 27)  # SigLIP 384 px, patch 14
    assert not sf.tower.drop_cls and sf.tower.layers_run == 4  # layer -1, strategy full
    assert str(sf.aggregation) == ONEVISION_SLOWFAST
    assert sf.num_visual_tokens(50) == 15 * 364 + 50 * 16 == 6260
    normalize = sf.encoder.normalize
    assert normalize.size == (384, 384)
    assert normalize.mean == (0.5, 0.5, 0.5) and normalize.std == (0.5, 0.5, 0.5)


def test_another_model_type_names_the_supported_ones(tmp_path):
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_size=28, patch_size=14,
        ),
        text_config=LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            vocab_size=64,
        ),
    )  # fmt: skip
    model = LlavaForConditionalGeneration(config)
    with pytest.raises(
        UnsupportedModelError, match="'llava'.*llava_next, llava_next_video, llava_onevision"
    ):
        SlowFastLlava(model)
    config.save_pretrained(tmp_path)
    with pytest.raises(
        UnsupportedModelError, match="llava_next, llava_next_video, llava_onevision"
    ):
        SlowFastLlava.from_pretrained(tmp_path)


def test_normalize_equals_the_pil_processor_bit_for_bit(onevision, clip_frames):
    model, tokenizer, processor = onevision
    sf = SlowFastLlava(model, tokenizer, processor)
    ours = sf.encoder.normalize(clip_frames)
    theirs = _hf_base_pixels(clip_frames)
    assert ours.dtype == torch.float32 and ours.shape == theirs.shape == (16, 3, 384, 384)
    assert torch.equal(ours, theirs)


def test_encode_pixels_equals_hf_modules_and_a_plain_reference(onevision, gen):
    model, tokenizer, processor = onevision
    sf = SlowFastLlava(model, tokenizer, processor)
    pixels = torch.rand(16, 3, 384, 384, generator=gen) * 2 - 1
    ours = sf.encode_pixels(pixels)
    features = hf_features(model, pixels)
    ref = slowfast_reference(features.double(), 15, "spatial_1d_max_pool", (4, 4), grid=(27, 27))
    assert ours.shape == ref.shape == (15 * 364 + 16 * 16, model.config.text_config.hidden_size)
    assert rel_error(ours, ref) <= 1e-5


def test_encode_of_frames_equals_the_reference_on_the_processor_output(onevision, clip_frames):
    model, tokenizer, processor = onevision
    sf = SlowFastLlava(model, tokenizer, processor)
    features = hf_features(model, _hf_base_pixels(clip_frames))
    ref = slowfast_reference(features.double(), 15, "spatial_1d_max_pool", (4, 4), grid=(27, 27))
    assert rel_error(sf.encode(clip_frames), ref) <= 1e-5


def test_concat_of_one_frame_is_the_base_image_of_get_image_features(onevision, clip_frames):
    model, tokenizer, processor = onevision
    sf = SlowFastLlava(model, tokenizer, processor, slowfast="concat")
    packed = hf_image_features(model, _pil_processor(), clip_frames[0])
    ours = sf.encode(clip_frames[:1])
    assert ours.shape == (729, model.config.text_config.hidden_size)
    assert packed.shape[0] > 729  # the base image, then the tiles and newlines left out here
    assert rel_error(ours, packed[:729]) <= 1e-5


def test_answer_builds_qwen2_chatml_inputs_and_matches_hf_generate(onevision, clip_frames):
    model, tokenizer, processor = onevision
    sf = SlowFastLlava(model, tokenizer, processor)
    question = "What is moving?"
    template = sf.prompt_template()
    assert template == PROMPTS["image_seq_v3"][2] and template.startswith("<|im_start|>system\n")
    text = template.replace("{question}", question)
    embeds, mask = sf.build_inputs([clip_frames], [text])
    head, tail = text.split("<image>")
    table = model.get_input_embeddings().weight
    before = table[torch.tensor(tokenizer(head).input_ids)]  # Qwen2: no BOS
    after = table[torch.tensor(tokenizer(tail).input_ids)]
    visual = sf.encode(clip_frames)
    ref = torch.cat([before, visual, after]).unsqueeze(0)
    assert tokenizer(head).input_ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert torch.equal(embeds, ref) and bool(mask.all())
    expected = model.generate(
        inputs_embeds=ref, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id
    )
    answer = sf.answer(clip_frames, question, max_new_tokens=8)
    assert answer == tokenizer.decode(expected[0], skip_special_tokens=True).strip()
    session = sf.session(clip_frames)
    assert session.answer(question, max_new_tokens=8) == answer


def test_from_pretrained_round_trips_a_saved_onevision(onevision, clip_frames, tmp_path):
    model, tokenizer, processor = onevision
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    _pil_processor().save_pretrained(tmp_path)
    loaded = SlowFastLlava.from_pretrained(tmp_path, dtype=torch.float32, device="cpu")
    assert loaded.family is FAMILIES["llava_onevision"]
    # a 32k context: no dynamic RoPE scaling
    rope = getattr(loaded.config.text_config, "rope_parameters", None) or {}
    assert rope.get("rope_type", "default") != "dynamic"
    normalize = loaded.encoder.normalize
    assert normalize.size == (384, 384) and normalize.mean == (0.5, 0.5, 0.5)
    sf = SlowFastLlava(model, tokenizer, processor)
    assert torch.equal(loaded.encode(clip_frames), sf.encode(clip_frames))


OPEN_TEXT = (
    "The input consists of a sequence of key frames from a video. Answer concisely with overall "
    "content and context of the video, highlighting any significant events, characters, or "
    "objects that appear throughout the video. Question: {question}"
)


class _Vocab:
    def __init__(self, *tokens):
        self.vocab = {t: i for i, t in enumerate(("a", *tokens))}

    def get_vocab(self):
        return self.vocab


@pytest.mark.parametrize(
    "text_type, tokens, expected",
    [
        ("llama", (), "vicuna"),
        ("llama", ("<|im_start|>",), "chatml"),  # Yi-34B
        ("llama", ("<|start_header_id|>",), "llama3"),
        ("mistral", (), "mistral"),
        ("qwen2", ("<|im_start|>",), "qwen2"),  # the 72B/110B and OneVision
    ],
)
def test_the_chat_format_follows_the_language_model(text_type, tokens, expected):
    from types import SimpleNamespace

    from sfllava_ext.llm.prompts import CHAT_FORMATS, chat_format, resolve_template

    assert chat_format(SimpleNamespace(model_type=text_type), _Vocab(*tokens)) == expected
    open_ended = resolve_template("image_seq_v3", expected)
    choice = resolve_template("multiple_choice_allvideo_v4", expected)
    assert OPEN_TEXT in open_ended and open_ended.count("<image>") == 1
    assert open_ended.endswith("Answer: In the video,")
    assert "Only give the best option." in choice and choice.endswith("Answer: Best option:(")
    assert choice.index("{question}") < choice.index("{options}")
    assert expected in CHAT_FORMATS


def test_a_mistral_llava_next_gets_its_inst_format():
    from transformers import (
        CLIPVisionConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        MistralConfig,
    )

    from sfllava_ext.models.demo import DEMO_VISION, demo_tokenizer

    tokenizer = demo_tokenizer()
    text = MistralConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32768,
    )  # fmt: skip
    config = LlavaNextConfig(vision_config=CLIPVisionConfig(**DEMO_VISION), text_config=text,
                             image_token_index=tokenizer.unk_token_id)  # fmt: skip
    sf = SlowFastLlava(LlavaNextForConditionalGeneration(config).eval(), tokenizer)
    template = sf.prompt_template()
    assert template.startswith("[INST] <image>\n") and "[/INST] Answer: In the video," in template
    assert FAMILIES["llava_next"].wants_dynamic_rope(text) is False  # a 32k context


def test_next_video_encodes_with_hf_modules_and_loads_with_its_class(gen, tmp_path):
    model, tokenizer, processor = demo_parts("next_video", dtype=torch.float32)
    sf = SlowFastLlava(model, tokenizer, processor)
    assert sf.family is FAMILIES["llava_next_video"] and sf.grid == (24, 24)
    pixels = torch.rand(12, 3, 336, 336, generator=gen) * 2 - 1
    features = hf_features(model, pixels)  # layer -2, CLS dropped; the resampler not run
    ref = slowfast_reference(features.double(), 10, "spatial_1d_max_pool", (4, 4), grid=(24, 24))
    assert rel_error(sf.encode_pixels(pixels), ref) <= 1e-5
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = SlowFastLlava.from_pretrained(tmp_path, dtype=torch.float32, device="cpu")
    assert type(loaded.model).__name__ == "LlavaNextVideoForConditionalGeneration"
    assert loaded.config.text_config.rope_parameters["rope_type"] == "dynamic"  # 4k context
    assert torch.equal(loaded.encode_pixels(pixels), sf.encode_pixels(pixels))


def test_embed_and_session_files_work_for_onevision(onevision, tmp_path):
    from sfllava_ext import VideoSession, embed_videos

    model, tokenizer, processor = onevision
    sf = SlowFastLlava(model, tokenizer, processor, num_frames=16)
    path = tmp_path / "in" / "clip.mp4"
    path.parent.mkdir()
    write_test_video(path, 320, 240, num_frames=40)
    summary = embed_videos([str(path.parent)], tmp_path / "out", model=sf, decode_workers=0,
                           progress=False)  # fmt: skip
    assert (summary.done, summary.failed) == (1, 0)
    session = VideoSession.load(tmp_path / "out" / "clip.mp4.safetensors", sf)
    assert torch.equal(session.tokens, sf.encode(str(path)))
    assert session.answer("What is moving?", max_new_tokens=4) == sf.answer(
        str(path), "What is moving?", max_new_tokens=4
    )


def test_the_service_answers_with_the_onevision_demo(onevision, tmp_path):
    import base64
    import signal
    import subprocess
    import sys

    from openai import OpenAI

    port = free_port()
    path = tmp_path / "clip.mp4"
    write_test_video(path, 320, 240, num_frames=40)
    argv = [sys.executable, "-m", "sfllava_ext.cli", "serve", "--demo", "--family", "onevision",
            "--port", str(port), "--num-frames", "16", "--dtype", "float32", "--device", "cpu",
            "--log-level", "warning"]  # fmt: skip
    # from outside the checkout, so that `-m` finds the installed package
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_health(proc, f"http://127.0.0.1:{port}")
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-", max_retries=0)
        url = "data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode()
        parts = [{"type": "video_url", "video_url": {"url": url}},
                 {"type": "text", "text": "What is moving?"}]  # fmt: skip
        assert client.models.list().data[0].id == "sfllava-demo-onevision"
        reply = client.chat.completions.create(
            model="sfllava-demo-onevision", max_tokens=6, temperature=0,
            messages=[{"role": "user", "content": parts}],
        )  # fmt: skip
        model, tokenizer, processor = onevision
        sf = SlowFastLlava(model, tokenizer, processor, num_frames=16)
        expected = sf.answer(str(path), "What is moving?", max_new_tokens=6)
        assert reply.choices[0].message.content == expected
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_onevision_video_pool_equals_get_video_features(onevision, gen):
    from sfllava_ext import aggregate, num_visual_tokens

    model, tokenizer, processor = onevision
    sf = SlowFastLlava(model, tokenizer, processor, slowfast="onevision_video_pool")
    pixels = torch.rand(6, 3, 384, 384, generator=gen) * 2 - 1
    with torch.no_grad():
        theirs = model.model.get_video_features(pixel_values_videos=pixels[None])
    theirs = getattr(theirs, "pooler_output", theirs)
    theirs = theirs.reshape(-1, theirs.shape[-1])  # 6 frames x 14 x 14, then the newline
    assert torch.equal(theirs[-1], model.model.image_newline.to(theirs.dtype))
    theirs = theirs[:-1]
    ours = sf.encode_pixels(pixels)
    assert ours.shape == theirs.shape == (6 * 196, model.config.text_config.hidden_size)
    assert num_visual_tokens(32, (27, 27), "onevision_video_pool") + 1 == 6273
    assert rel_error(ours, theirs) <= 1e-5
    features = hf_features(model, pixels)
    assert torch.equal(aggregate(features, "onevision_video_pool", grid=(27, 27)), ours)
    answer = sf.answer(pixels.new_zeros(6, 64, 64, 3, dtype=torch.uint8), "What?", max_new_tokens=2)
    assert isinstance(answer, str)  # the embeddings take a PyTorch-op aggregation too


# the open-ended prompt in each new chat format, written out from docs/method.md#family-prompts
QWEN2_OPEN = (
    "<|im_start|>system\nAnswer the question.<|im_end|>\n<|im_start|>user\n<image>\n"
    + OPEN_TEXT
    + "<|im_end|>\n<|im_start|>assistant\nAnswer: In the video,"
)
MISTRAL_OPEN = "[INST] <image>\n" + OPEN_TEXT + " [/INST] Answer: In the video,"
LLAMA3_OPEN = (
    "<|start_header_id|>system<|end_header_id|>\n\nAnswer the question.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n<image>\n" + OPEN_TEXT + "<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nAnswer: In the video,"
)
LLAMA3_CHOICE = (
    "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful expert in video analysis. "
    "Select the best option to answer the question.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n<image>\nThe input consists of a sequence of "
    "key frames from a video.\nQuestion: {question}\nOptions:\n{options}Only give the best "
    "option.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nAnswer: Best option:("
)


def test_each_chat_format_is_exactly_as_documented():
    from sfllava_ext.llm.prompts import resolve_template

    assert resolve_template("image_seq_v3", "qwen2") == QWEN2_OPEN
    assert resolve_template("image_seq_v3", "mistral") == MISTRAL_OPEN
    assert resolve_template("image_seq_v3", "llama3") == LLAMA3_OPEN
    assert resolve_template("multiple_choice_allvideo_v4", "llama3") == LLAMA3_CHOICE
    with pytest.raises(ValueError, match="chat format must be one of"):
        resolve_template("image_seq_v3", "gemma")


def test_a_llama3_tokenizer_also_stops_at_its_end_of_turn():
    from types import SimpleNamespace

    from sfllava_ext.llm.generation import generation_kwargs

    ids = {"<|eot_id|>": 9}
    llama3 = SimpleNamespace(pad_token_id=None, eos_token_id=7, unk_token_id=None,
                             convert_tokens_to_ids=ids.get)  # fmt: skip
    assert generation_kwargs(llama3, 8, {})["eos_token_id"] == [7, 9]
    assert generation_kwargs(llama3, 8, {"eos_token_id": 7})["eos_token_id"] == 7
    other = SimpleNamespace(pad_token_id=0, eos_token_id=2, unk_token_id=0,
                            convert_tokens_to_ids=lambda token: 0)  # fmt: skip
    assert "eos_token_id" not in generation_kwargs(other, 8, {})


def test_an_explicit_rope_factor_applies_to_any_context(onevision, tmp_path):
    model, tokenizer, processor = onevision
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    _pil_processor().save_pretrained(tmp_path)
    loaded = SlowFastLlava.from_pretrained(
        tmp_path, dtype=torch.float32, device="cpu", rope_scaling_factor=2
    )
    rope = loaded.config.text_config.rope_parameters
    assert rope["rope_type"] == "dynamic" and rope["factor"] == 2.0


def test_family_is_refused_with_a_checkpoint(capsys, tmp_path):
    from sfllava_ext.cli import main

    argv = ["embed", str(tmp_path / "x.mp4"), "-o", str(tmp_path / "out"), "--model",
            str(tmp_path), "--family", "onevision"]  # fmt: skip
    assert main(argv) == 1
    assert "--family is for --demo" in capsys.readouterr().err
