"""VideoSession (issue 15): encode once, ask many, against fresh calls of the same model.

The reference for every question is a fresh ``SlowFastLlava`` path: ``build_inputs``
then the model's own forward (prefill logits) and ``generate`` (greedy ids). A session
must give the same logits within 1e-4 x max|reference| at the last prompt position, and
the same greedy tokens wherever the reference's top-2 logit margin exceeds 1e-4, on the
demo model and on a SentencePiece Llama tokenizer, for the published, the ChatML and
user templates, in several question orders, across the dynamic-RoPE context edge, from
8 threads, and after a save/load round trip.
"""

from __future__ import annotations

import importlib.metadata
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from packaging.requirements import Requirement
from support.models import TEXT, VISION, tiny_llava
from support.tokenizers import hf_llama_tokenizer, train_llama_sentencepiece
from support.videos import write_test_video

from sfllava_ext import SlowFastLlava, VideoSession
from sfllava_ext.llm import kv_cache
from sfllava_ext.llm.prompts import PromptError, build_prompt
from sfllava_ext.models.demo import demo_model, demo_tokenizer
from sfllava_ext.models.loading import apply_rope_scaling
from sfllava_ext.session.file import SessionFileError

QUESTIONS = [
    "What is happening in the video?",
    "Who opens the door?",
    "why",
    "How many people walk across the street and where do they go?",
]
OPTIONS = ["the man runs", "the dog jumps", "a red car"]
USER_AFTER = "<image>\nLook at the frames. Question: {question}\nAnswer:"
USER_BEFORE = "Question: {question}\n<image>\nAnswer:"
EDGE = 320  # the original context of the dynamic-RoPE model below


def random_frames(t: int, seed: int, h: int = 48, w: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (t, h, w, 3), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def spm_tokenizer(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("spm"))
    train_llama_sentencepiece(folder)
    return hf_llama_tokenizer(folder)


@pytest.fixture(scope="module")
def spm_sf(spm_tokenizer):
    return SlowFastLlava(tiny_llava(len(spm_tokenizer)), spm_tokenizer)


@pytest.fixture(scope="module")
def demo_sf():
    tok = demo_tokenizer()
    return SlowFastLlava(demo_model(tok), tok, num_frames=8)


def reference(sf: SlowFastLlava, video, text: str, max_new_tokens: int):
    """Fresh prefill logits (vocab,), greedy ids and the top-2 margin at each step, as a
    freshly loaded model computes them: its dynamic-RoPE frequencies at their original
    values, whatever an earlier call grew them to."""
    embeds, mask = sf.build_inputs([video], [text])
    tok = sf.tokenizer
    with torch.inference_mode():
        kv_cache.reset_dynamic_rope(sf.model)
        logits = sf.model(inputs_embeds=embeds, attention_mask=mask).logits[0, -1].float()
        kv_cache.reset_dynamic_rope(sf.model)
        out = sf.model.generate(
            inputs_embeds=embeds,
            attention_mask=mask,
            do_sample=False,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            output_scores=True,
            return_dict_in_generate=True,
        )
    top2 = [s[0].float().topk(2).values for s in out.scores]
    margins = [float(v[0] - v[1]) for v in top2]
    return logits, out.sequences[0].tolist(), margins


def assert_matches(session: VideoSession, sf, video, question, prompt, options=None, new=6):
    template = sf.prompt_template(prompt)
    text = build_prompt(template, question, options)
    ref_logits, ref_ids, margins = reference(sf, video, text, new)
    got = session.next_token_logits(question, prompt=prompt, options=options).float()
    scale = ref_logits.abs().max().item()
    assert (got - ref_logits).abs().max().item() <= 1e-4 * scale, (prompt, question)
    ids = session.generate(question, prompt=prompt, options=options, max_new_tokens=new)
    decided = next((i for i, m in enumerate(margins) if m <= 1e-4), len(margins))
    assert decided >= 1, "the reference's first token is a tie: nothing to compare"
    assert ids[:decided] == ref_ids[:decided], (prompt, question, ids, ref_ids)
    return decided


# ------------------------------------------------------------------ parity


@pytest.mark.parametrize("order", [0, 1, 2])
def test_demo_model_questions_in_any_order_match_fresh_calls(demo_sf, tmp_path, order):
    video = write_test_video(tmp_path / "v.mp4", 96, 64, 30)
    session = demo_sf.session(video)
    asked = QUESTIONS[order:] + QUESTIONS[:order]
    for question in asked:
        assert_matches(session, demo_sf, video, question, "image_seq_v3")
    reused, total = session.reused_positions(asked[0])
    assert total - reused < 40 and reused > session.num_visual_tokens  # the visual tokens reused
    assert session.answer(asked[1], max_new_tokens=5) == demo_sf.answer(
        video, asked[1], max_new_tokens=5
    )


@pytest.mark.parametrize("template", ["image_seq_v3", USER_BEFORE])
def test_the_first_question_makes_the_prefix_from_its_own_prefill(spm_sf, template):
    """A template's first question generates from an empty cache and keeps the positions
    it shares with the fixed part: its tokens are the fresh call's, and the next
    questions reuse that prefix with the fresh call's logits."""
    frames = random_frames(3, seed=17)
    session = spm_sf.session(frames)
    text = build_prompt(spm_sf.prompt_template(template), QUESTIONS[0])
    _, ref_ids, margins = reference(spm_sf, frames, text, 6)
    ids = session.generate(QUESTIONS[0], prompt=template, max_new_tokens=6)
    decided = next((i for i, m in enumerate(margins) if m <= 1e-4), len(margins))
    assert decided >= 1 and ids[:decided] == ref_ids[:decided]
    assert len(session.cached_templates) == 1  # kept, with no separate prefill
    reused, _ = session.reused_positions(QUESTIONS[1], prompt=template)
    assert reused > (session.num_visual_tokens if template == "image_seq_v3" else 0)
    for question in QUESTIONS[1:]:
        assert_matches(session, spm_sf, frames, question, template)


@pytest.mark.parametrize("template", ["image_seq_v3", USER_AFTER, USER_BEFORE])
def test_sentencepiece_templates_match_fresh_calls(spm_sf, template):
    frames = random_frames(4, seed=1)
    session = spm_sf.session(frames)
    for question in (QUESTIONS[1], QUESTIONS[0], QUESTIONS[3], QUESTIONS[1]):
        assert_matches(session, spm_sf, frames, question, template)
    reused, total = session.reused_positions(QUESTIONS[0], prompt=template)
    if template == USER_BEFORE:  # the question comes first: only the text before it
        assert 0 < reused < 10  # BOS and "Question:", never the visual tokens
    else:
        assert reused >= session.num_visual_tokens


def test_multiple_choice_prompt_has_its_own_prefix(spm_sf):
    frames = random_frames(3, seed=2)
    session = spm_sf.session(frames)
    for question in ("Who opens the door?", "What is the man doing?"):
        assert_matches(
            session, spm_sf, frames, question, "multiple_choice_allvideo_v4", options=OPTIONS
        )
        assert session.choose(question, OPTIONS) == spm_sf.choose(frames, question, OPTIONS)
    assert_matches(session, spm_sf, frames, "Why?", "image_seq_v3")
    assert len(session.cached_templates) == 2


def test_chatml_template(spm_tokenizer):
    from transformers import AutoTokenizer

    chatml = AutoTokenizer.from_pretrained(spm_tokenizer.name_or_path, add_bos_token=True)
    chatml.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    sf = SlowFastLlava(tiny_llava(len(chatml), seed=3), chatml)
    assert "<|im_start|>" in sf.prompt_template("image_seq_v3")
    frames = random_frames(3, seed=4)
    session = sf.session(frames)
    for question in (QUESTIONS[2], QUESTIONS[0]):
        assert_matches(session, sf, frames, question, "image_seq_v3")
    reused, total = session.reused_positions(QUESTIONS[0])
    assert reused >= session.num_visual_tokens


# ---------------------------------------------------------- the two traps


def test_the_generate_call_and_the_pinned_range(demo_sf):
    """The exact call sessions make: generate() from the whole prompt's embeddings and
    a cache of its first n positions gives the fresh call's tokens, a cache covering
    the prompt is refused, and the installed transformers is in the pinned range."""
    requirement = next(
        Requirement(r)
        for r in importlib.metadata.requires("sfllava_ext")
        if r.startswith("transformers")
    )
    assert requirement.specifier, "transformers must be pinned to a tested range"
    assert importlib.metadata.version("transformers") in requirement.specifier
    torch.manual_seed(0)
    embeds = torch.randn(1, 40, demo_sf.hidden_size) * 0.5
    kwargs = dict(do_sample=False, max_new_tokens=6, pad_token_id=demo_sf.tokenizer.pad_token_id)
    with torch.inference_mode():
        fresh = kv_cache.generate_from(demo_sf.model, embeds, None, **kwargs)
        prefix, _ = kv_cache.prefill(demo_sf.model, embeds[:, :30])
        before = [(k.clone(), v.clone()) for k, v in prefix]
        again = kv_cache.generate_from(
            demo_sf.model, embeds, kv_cache.fresh_cache(prefix, 25), **kwargs
        )
        for (k, v), (k0, v0) in zip(prefix, before, strict=True):  # never written
            assert torch.equal(k, k0) and torch.equal(v, v0)
        with pytest.raises(ValueError, match="at least one position"):
            kv_cache.generate_from(
                demo_sf.model, embeds[:, :30], kv_cache.fresh_cache(prefix, 30), **kwargs
            )
    assert again.tolist() == fresh.tolist()


@pytest.fixture(scope="module")
def rope_sf(spm_tokenizer):
    """A model with dynamic RoPE scaling and a 320-position original context, whose
    prompts sit near that edge: 148 visual tokens (1 slow frame 2x2-pooled, 4 fast) and
    about 150 of text."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextConfig
    from transformers import LlavaNextForConditionalGeneration as Llava

    settings = {**TEXT, "max_position_embeddings": EDGE}
    text = LlamaConfig(vocab_size=len(spm_tokenizer), bos_token_id=1, eos_token_id=2, **settings)
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(**VISION), text_config=text, image_token_index=0
    )
    apply_rope_scaling(config.text_config, 2.0)
    torch.manual_seed(5)
    model = Llava(config).eval()
    return SlowFastLlava(
        model, spm_tokenizer, slowfast="slowfast-slow_1frms_spatial_2d_avg_pool-fast_1x1"
    )


def test_dynamic_rope_context_edge(rope_sf):
    assert rope_sf.rope_limit == EDGE
    frames = random_frames(4, seed=6)
    session = rope_sf.session(frames)
    short = "why"
    long = " ".join(["what is the man doing in the kitchen with the red ball"] * 8)
    middle = " ".join(["the dog runs"] * 3)
    _, total_short = session.reused_positions(short)
    reused_long, total_long = session.reused_positions(long)
    reused_mid, total_mid = session.reused_positions(middle)
    assert total_short < EDGE < total_long and reused_long == 0  # past the edge: full prefill
    assert reused_mid > 0 and total_mid < EDGE < total_mid + 30  # generation crosses it
    for question, new in ((short, 8), (long, 8), (middle, 30), (short, 8)):
        assert_matches(session, rope_sf, frames, question, "image_seq_v3", new=new)
    # a prompt of exactly the original context, right after a longer call (whose
    # frequencies the rotary module would otherwise keep)
    edge = None
    for digits in range(60):  # the tokenizer splits digits: one more position each
        question = "why " + "7" * digits
        if session.reused_positions(question)[1] == EDGE:
            edge = question
            break
    assert edge is not None, "no question made a prompt of exactly EDGE positions"
    for question in (long, edge, long, edge):
        assert_matches(session, rope_sf, frames, question, "image_seq_v3", new=4)


# ------------------------------------------------------------- streaming


def test_stream_pieces_join_to_the_answer(demo_sf, spm_sf, tmp_path):
    video = write_test_video(tmp_path / "s.mp4", 64, 48, 20)
    for sf in (demo_sf, spm_sf):
        session = sf.session(video)
        for question in QUESTIONS[:2]:
            answer = sf.answer(video, question, max_new_tokens=12)
            pieces = list(sf.stream(video, question, max_new_tokens=12))
            assert "".join(pieces) == answer
            assert "".join(session.stream(question, max_new_tokens=12)) == answer
            assert session.answer(question, max_new_tokens=12) == answer


def test_generate_on_the_calling_thread_with_text_pieces_and_stop(spm_sf):
    frames = random_frames(2, seed=16)
    session = spm_sf.session(frames)
    answer = session.answer("What is happening?", max_new_tokens=12)
    pieces: list[str] = []
    ids = session.generate("What is happening?", max_new_tokens=12, on_text=pieces.append)
    assert "".join(pieces) == answer == spm_sf.llm.decode(ids)
    stop = threading.Event()

    def halt(piece: str) -> None:
        stop.set()  # the first piece ends the generation

    ids = session.generate("What is happening?", max_new_tokens=200, min_new_tokens=200,
                           on_text=halt, stop=stop)  # fmt: skip
    assert len(ids) < 200


def test_a_prompt_tokenized_once_generates_what_the_question_does(spm_sf):
    session = spm_sf.session(random_frames(3, seed=17))
    asked = session.tokenize("What is happening?")
    assert asked.positions == session.prompt_positions("What is happening?")
    assert asked.positions == len(asked.ids) and asked.ids.count(-1) == session.num_visual_tokens
    by_question = session.generate("What is happening?", max_new_tokens=6)
    assert session.generate(asked, max_new_tokens=6) == by_question
    options = ["a dog", "a cat"]
    choice = session.tokenize("Which?", prompt="multiple_choice_allvideo_v4", options=options)
    assert session.generate(choice, max_new_tokens=4) == session.generate(
        "Which?", prompt="multiple_choice_allvideo_v4", options=options, max_new_tokens=4
    )
    other = spm_sf.session(random_frames(5, seed=18))  # another count of visual tokens
    assert other.num_visual_tokens != session.num_visual_tokens
    with pytest.raises(ValueError, match="tokenized for .* visual tokens"):
        other.generate(asked, max_new_tokens=2)


def test_stream_errors_come_first_and_closing_stops(spm_sf):
    frames = random_frames(2, seed=7)
    session = spm_sf.session(frames)
    with pytest.raises(PromptError, match="question is empty"):
        session.stream("  ")
    with pytest.raises(ValueError, match="max_new_tokens"):
        spm_sf.stream(frames, "why", max_new_tokens=0)
    with pytest.raises(TypeError, match="max_new_tokens"):
        session.answer("why", max_new_tokens="5")
    with pytest.raises(ValueError, match="streamer: set by sfllava_ext"):
        session.stream("why", streamer=object())
    with pytest.raises(ValueError, match="num_return_sequences must be 1"):
        session.answer("why", num_return_sequences=2, do_sample=True)
    with pytest.raises(ValueError, match="num_beams must be 1"):
        spm_sf.answer(frames, "why", num_beams=2)
    pieces = session.stream("What is happening?", max_new_tokens=200, min_new_tokens=200)
    next(pieces)
    pieces.close()  # stops the generation and releases the model
    assert len(pieces.token_ids) < 200, "closing did not stop the generation"
    assert not [t for t in threading.enumerate() if t.name == "sfllava-stream"]
    assert list(pieces) == []
    assert isinstance(session.answer("why", max_new_tokens=2), str)


# --------------------------------------------------------------- threads


def test_eight_threads_give_the_serial_results(spm_sf):
    videos = [random_frames(3, seed=s) for s in (11, 12)]
    sessions = [spm_sf.session(v) for v in videos]
    tasks = []
    for v in range(len(videos)):
        tasks.append(("encode", v, None))
        for q in QUESTIONS[:3]:
            tasks += [("answer", v, q), ("stream", v, q), ("choose", v, q)]
            tasks += [("session.answer", v, q), ("session.stream", v, q)]
            tasks += [("session.choose", v, q)]

    def run(task):
        kind, v, q = task
        video, session = videos[v], sessions[v]
        result = {
            "encode": lambda: spm_sf.encode(video),
            "answer": lambda: spm_sf.answer(video, q, max_new_tokens=6),
            "stream": lambda: "".join(spm_sf.stream(video, q, max_new_tokens=6)),
            "choose": lambda: spm_sf.choose(video, q, OPTIONS),
            "session.answer": lambda: session.answer(q, max_new_tokens=6),
            "session.stream": lambda: "".join(session.stream(q, max_new_tokens=6)),
            "session.choose": lambda: session.choose(q, OPTIONS),
        }[kind]()
        stages = set(spm_sf.last_timings.seconds)
        return result, stages

    spm_sf.profile = True
    try:
        serial = [run(t) for t in tasks]
        work = tasks * 3
        random.Random(0).shuffle(work)
        with ThreadPoolExecutor(max_workers=8) as pool:
            threaded = list(pool.map(run, work))
    finally:
        spm_sf.profile = False
    expected = {t: r for t, r in zip(tasks, serial, strict=True)}
    for task, (result, stages) in zip(work, threaded, strict=True):
        want, want_stages = expected[task]
        if isinstance(want, torch.Tensor):
            assert torch.equal(result, want), task
        else:
            assert result == want, task
        assert stages == want_stages, task  # this thread's own call's timings
    assert len(work) == 3 * len(tasks) == 3 * 38


def test_a_new_session_asked_by_eight_threads_at_once(spm_sf):
    """The prefixes are built while 8 threads ask: each template once, every answer the
    serial one."""
    frames = random_frames(3, seed=13)
    serial = spm_sf.session(frames)
    work = [(q, p) for q in QUESTIONS for p in ("image_seq_v3", USER_AFTER)] * 2
    expected = {job: serial.answer(job[0], prompt=job[1], max_new_tokens=5) for job in work}
    fresh = spm_sf.session(frames)
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda job: fresh.answer(job[0], prompt=job[1], max_new_tokens=5),
                            work))  # fmt: skip
    assert got == [expected[job] for job in work]
    assert len(fresh.cached_templates) == 2


def test_sliding_window_model(spm_tokenizer):
    """A Mistral-style language model whose window is shorter than the prefix: the
    session keeps every position, and answers as the fresh call does."""
    from transformers import CLIPVisionConfig, LlavaNextConfig, MistralConfig
    from transformers import LlavaNextForConditionalGeneration as Llava

    text = MistralConfig(
        vocab_size=len(spm_tokenizer), bos_token_id=1, eos_token_id=2, sliding_window=64,
        **{k: v for k, v in TEXT.items() if k != "max_position_embeddings"},
        max_position_embeddings=4096,
    )  # fmt: skip
    config = LlavaNextConfig(vision_config=CLIPVisionConfig(**VISION), text_config=text,
                             image_token_index=0)  # fmt: skip
    torch.manual_seed(14)
    sf = SlowFastLlava(Llava(config).eval(), spm_tokenizer,
                       slowfast="slowfast-slow_1frms_spatial_2d_avg_pool-fast_1x1")  # fmt: skip
    frames = random_frames(3, seed=15)
    session = sf.session(frames)
    for question in QUESTIONS[:3]:
        assert_matches(session, sf, frames, question, "image_seq_v3")
    assert session.reused_positions(QUESTIONS[0])[0] > 64


# ------------------------------------------------------------------ files


def test_save_and_load(spm_sf, spm_tokenizer, tmp_path):
    frames = random_frames(3, seed=8)
    session = spm_sf.session(frames)
    path = tmp_path / "tokens.safetensors"
    session.save(path)
    loaded = VideoSession.load(path, spm_sf)
    assert torch.equal(loaded.tokens, session.tokens)
    assert loaded.answer("why", max_new_tokens=5) == session.answer("why", max_new_tokens=5)
    other_weights = SlowFastLlava(tiny_llava(len(spm_tokenizer), seed=9), spm_tokenizer)
    with pytest.raises(SessionFileError, match="weights_sha256"):
        VideoSession.load(path, other_weights)
    other_settings = SlowFastLlava(spm_sf.model, spm_tokenizer, slowfast="spatial_2d_avg_pool")
    with pytest.raises(SessionFileError, match="aggregation"):
        VideoSession.load(path, other_settings)
    other_frames = SlowFastLlava(spm_sf.model, spm_tokenizer, num_frames=8)
    with pytest.raises(SessionFileError, match="num_frames: file 50, model 8"):
        VideoSession.load(path, other_frames)
    other_mode = SlowFastLlava(spm_sf.model, spm_tokenizer, resize_mode="pad")
    with pytest.raises(SessionFileError, match="preprocess.resize_mode"):
        VideoSession.load(path, other_mode)
    processor = {
        "size": {"shortest_edge": 336},
        "crop_size": {"height": 336, "width": 336},
        "do_center_crop": True,
        "image_mean": [0.5] * 3,
        "image_std": [0.5] * 3,
    }
    other_norm = SlowFastLlava(spm_sf.model, spm_tokenizer, image_processor=processor)
    with pytest.raises(SessionFileError, match="preprocess.mean"):
        VideoSession.load(path, other_norm)
    import copy

    other_dtype = SlowFastLlava(copy.deepcopy(spm_sf.model).to(torch.bfloat16), spm_tokenizer)
    with pytest.raises(SessionFileError, match="dtype"):
        VideoSession.load(path, other_dtype)
    other_lm = SlowFastLlava(copy.deepcopy(spm_sf.model), spm_tokenizer)
    with torch.no_grad():
        other_lm.language_model.get_input_embeddings().weight.add_(1.0)
    assert torch.equal(VideoSession.load(path, other_lm).tokens, session.tokens)  # LM apart
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(SessionFileError, match="not a"):
        VideoSession.load(bad, spm_sf)
    with pytest.raises(FileNotFoundError):
        VideoSession.load(tmp_path / "missing.safetensors", spm_sf)
