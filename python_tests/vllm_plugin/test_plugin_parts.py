"""The plugin's parts that need no vLLM, in the main suite: settings, the loader's
decode and limits, the media connector's file rule, the chat templates, the client's
parts and the flags ``sfllava serve --engine vllm`` refuses."""

from __future__ import annotations

import argparse
import os
from types import SimpleNamespace

import pytest
import torch

from sfllava_ext.cli import build_parser
from sfllava_ext.llm.prompts import CHAT_FORMATS
from sfllava_ext.models.demo import demo_tokenizer, onevision_tokenizer
from sfllava_ext.session.file import SessionFileError
from sfllava_ext.video import load_video
from sfllava_ext.video.limits import VideoLimitError
from sfllava_ext.video.synthetic import write_synthetic_video
from sfllava_ext.vllm_plugin.client import multiple_choice_text, video_embeds_part
from sfllava_ext.vllm_plugin.connector import local_media_bytes
from sfllava_ext.vllm_plugin.launch import NOT_HONOURED, plan_launch
from sfllava_ext.vllm_plugin.loader import decode_video_bytes
from sfllava_ext.vllm_plugin.settings import settings_of
from sfllava_ext.vllm_plugin.templates import (
    TEMPLATE_DIR,
    llava_ids,
    shipped_template,
    template_for,
)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_synthetic_video(
        tmp_path_factory.mktemp("v") / "clip.mp4", width=160, height=120, seconds=1.0
    )


def _config(model_type, text_type="llama", **sfllava):
    return SimpleNamespace(
        model_type=model_type, text_config=SimpleNamespace(model_type=text_type), sfllava=sfllava
    )


def test_settings_take_the_family_defaults_and_refuse_mistakes():
    assert settings_of(_config("llava_next")).slowfast == (
        "slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4"
    )
    one = settings_of(_config("llava_onevision", num_frames=32))
    assert (one.slowfast, one.num_frames) == (
        "slowfast-slow_15frms_spatial_1d_max_pool-fast_4x4",
        32,
    )
    for bad, word in (
        ({"frames": 8}, "unknown keys"),
        ({"num_frames": 0}, "num_frames"),
        ({"resize_mode": "zoom"}, "resize_mode"),
        ({"slowfast": "next_video_pool"}, "before the projector"),
        ({"slowfast": "slowfast-nonsense"}, "slow"),
    ):
        with pytest.raises(ValueError, match=word):
            settings_of(_config("llava_next", **bad))


def test_the_loader_gives_load_video_frames_within_limits(video):
    data = open(video, "rb").read()
    frames, meta = decode_video_bytes(data, 12)
    clip = load_video(video, 12, backend="pyav")
    assert torch.equal(torch.from_numpy(frames), clip.frames)
    assert meta["frames_indices"] == list(clip.indices)
    with pytest.raises(VideoLimitError) as caught:
        decode_video_bytes(data, 12, max_pixels=100)
    assert caught.value.limit == "max_pixels"
    with pytest.raises(VideoLimitError):
        decode_video_bytes(data, 12, max_decode_mpx=0.01)
    with pytest.raises(ValueError, match="max_pixel"):
        decode_video_bytes(data, 12, max_pixel=10)  # a typo cannot lift a limit
    with pytest.raises(ValueError, match="no bytes"):
        decode_video_bytes(b"", 12)


def test_local_media_stays_in_the_media_dir(tmp_path, video):
    media = tmp_path / "media"
    media.mkdir()
    inside = media / "clip.mp4"
    inside.write_bytes(open(video, "rb").read())
    assert local_media_bytes(f"file://{inside}", str(media)) == inside.read_bytes()
    (media / "out.mp4").symlink_to(video)
    os.mkfifo(media / "pipe.mp4")
    with pytest.raises(PermissionError):
        local_media_bytes(f"file://{media / 'out.mp4'}", str(media))
    with pytest.raises(ValueError, match="regular"):
        local_media_bytes(f"file://{media / 'pipe.mp4'}", str(media))
    with pytest.raises(PermissionError):
        local_media_bytes(f"file://{inside}", None)
    with pytest.raises(ValueError, match="over"):
        local_media_bytes(f"file://{inside}", str(media), max_bytes=10)


def _tokenizer(fmt):
    if fmt == "qwen2":
        tok = onevision_tokenizer()
        tok.add_tokens(["<video>"], special_tokens=True)
        return tok, "<video>"
    tok = demo_tokenizer()
    extra = {"chatml": ["<|im_start|>", "<|im_end|>"], "llama3": ["<|start_header_id|>"]}
    tok.add_tokens(["<image>"] + extra.get(fmt, []), special_tokens=True)
    return tok, "<image>"


@pytest.mark.parametrize("fmt", CHAT_FORMATS)
def test_a_checked_template_gives_llavas_prompt_ids(fmt):
    tok, placeholder = _tokenizer(fmt)
    text_type = {"qwen2": "qwen2", "mistral": "mistral"}.get(fmt, "llama")
    check = template_for(
        tok, SimpleNamespace(text_config=SimpleNamespace(model_type=text_type)), placeholder
    )
    assert (check.format, check.exact) == (fmt, True)
    ph = tok.convert_tokens_to_ids(placeholder)
    question = multiple_choice_text("Who opens the door?", ["the dog", "the man"])
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": f"{placeholder}\n{question}"}],
        chat_template=check.template,
        tokenize=False,
        add_generation_prompt=True,
        prompt="multiple_choice",
    )
    ids = list(tok(rendered, add_special_tokens=False).input_ids)
    assert ids == llava_ids(tok, fmt, "multiple_choice_allvideo_v4", question, ph)


@pytest.mark.parametrize("fmt", CHAT_FORMATS)
def test_the_shipped_templates_are_current(fmt):
    with open(os.path.join(TEMPLATE_DIR, f"{fmt}.jinja")) as f:
        assert f.read() == shipped_template(fmt)  # write_shipped_templates() refreshes them


def test_a_session_file_becomes_a_video_embeds_part(tmp_path, video):
    import base64
    import io

    from sfllava_ext import ModelSpec

    sf = ModelSpec(model="demo", device="cpu", dtype="float32", num_frames=12).build()
    path = tmp_path / "clip.safetensors"
    sf.session(video).save(path)
    part = video_embeds_part(path)
    tokens = torch.load(io.BytesIO(base64.b64decode(part["video_embeds"])), weights_only=True)
    assert part["type"] == "video_embeds"
    assert torch.equal(tokens, sf.encode(video))
    with pytest.raises(SessionFileError, match="settings key"):
        video_embeds_part(path, settings_key="0" * 64)


@pytest.mark.parametrize("flag", sorted(NOT_HONOURED))
def test_flags_vllm_cannot_honour_are_refused(flag):
    args = build_parser().parse_args(
        ["serve", "--engine", "vllm", "--demo", f"--{flag.replace('_', '-')}", "13"]
    )
    with pytest.raises(ValueError, match=f"--{flag.replace('_', '-')} is not honoured"):
        plan_launch(args)


def test_the_launch_binds_locally_and_keeps_the_key_off_the_command_line(monkeypatch):
    monkeypatch.delenv("SFLLAVA_API_KEY", raising=False)
    args = build_parser().parse_args(["serve", "--engine", "vllm", "--demo", "--api-key", "s3"])
    assert isinstance(args, argparse.Namespace)
    launch = plan_launch(args)
    try:
        argv = launch.argv
        assert argv[argv.index("--host") + 1] == "127.0.0.1"
        assert "s3" not in " ".join(argv) and launch.env["VLLM_API_KEY"] == "s3"
        assert launch.env["VLLM_MEDIA_CONNECTOR"] == "sfllava"
        assert launch.env["SFLLAVA_ALLOW_FETCH"] == "0"
        assert "--trust-request-mm-kwargs" not in argv
    finally:
        import shutil

        shutil.rmtree(launch.workdir, ignore_errors=True)


def test_the_guard_checks_the_host_and_the_key_on_every_path(monkeypatch):
    import asyncio

    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from sfllava_ext.vllm_plugin.guard import VllmRequestGuard, guard_environment

    async def ok(request):
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/tokenize", ok, methods=["POST"]), Route("/health", ok)])
    for name, value in guard_environment("127.0.0.1", ()).items():
        monkeypatch.setenv(name, value)

    async def statuses():
        transport = httpx.ASGITransport(app=VllmRequestGuard(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            auth = {"Authorization": "Bearer k1"}
            return [
                (await c.get("/health")).status_code,
                (await c.post("/tokenize", json={})).status_code,
                (await c.post("/tokenize", json={}, headers=auth)).status_code,
                (await c.post("/tokenize", content=b"x", headers=auth)).status_code,
                (await c.post("/tokenize", json={}, headers={"Host": "evil.test"})).status_code,
            ]

    monkeypatch.setenv("VLLM_API_KEY", "k1")  # vLLM's own check spares /tokenize; ours not
    assert asyncio.run(statuses()) == [200, 401, 200, 415, 401]
    monkeypatch.delenv("VLLM_API_KEY")  # no key: the Host check guards against rebinding
    assert asyncio.run(statuses()) == [200, 200, 200, 415, 403]


def test_precomputed_tokens_must_be_a_dense_finite_matrix(tmp_path):
    import io

    from sfllava_ext.vllm_plugin.connector import check_embeddings

    good = torch.randn(12, 8)
    assert check_embeddings(good) is good

    def reloaded(t):  # what the server gets: torch.load(weights_only=True) keeps strides
        buffer = io.BytesIO()
        torch.save(t, buffer)
        return torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)

    bomb = reloaded(torch.zeros(1).expand(50_000, 4096))  # 4 bytes claiming 800 MB
    assert bomb.untyped_storage().nbytes() == 4
    for bad, word in (
        (bomb, "every value stored"),
        (reloaded(torch.zeros(4, 8, 8, 3, dtype=torch.uint8)), "num_tokens, hidden"),
        (torch.zeros(12, 8, dtype=torch.int64), "floating point"),
        (torch.tensor([[1.0, float("nan")]]), "NaN"),
        (torch.zeros(0, 8), "num_tokens, hidden"),
        (good.t(), "contiguous"),
        ("not a tensor", "dense tensor"),
    ):
        with pytest.raises(ValueError, match=word):
            check_embeddings(bad)


@pytest.mark.parametrize(
    "question, word",
    [
        ("What does <image> mean?", "may not hold"),
        ("<video>\nAgain?", "may not hold"),
        ("  ", "empty"),
    ],
)
def test_the_template_refuses_a_second_placeholder_and_an_empty_question(question, word):
    from jinja2 import TemplateError

    tok, placeholder = _tokenizer("qwen2")
    with pytest.raises(TemplateError, match=word):
        tok.apply_chat_template(
            [{"role": "user", "content": f"{placeholder}\n{question}"}],
            chat_template=shipped_template("qwen2"),
            tokenize=False,
            add_generation_prompt=True,
        )


def test_the_launch_checks_its_flags_before_starting_anything(monkeypatch, tmp_path):
    import glob
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for flags, word in (
        (["--allow-fetch"], "--allowed-media-domains"),
        (["--job-timeout-s", "nan"], "job_timeout_s"),
        (["--max-decode-mpx", "inf"], "max_decode_mpx"),
        (["--slowfast", "next_video_pool"], "before the projector"),
        (["--num-frames", "0"], "num_frames"),
    ):
        args = build_parser().parse_args(["serve", "--engine", "vllm", "--demo", *flags])
        with pytest.raises(ValueError, match=word):
            plan_launch(args)
    assert glob.glob(str(tmp_path / "sfllava-vllm-*")) == []  # nothing left behind
    monkeypatch.setenv("VLLM_API_KEY", "from-env")
    monkeypatch.setenv("VLLM_SERVER_DEV_MODE", "1")
    args = build_parser().parse_args(
        ["serve", "--engine", "vllm", "--demo", "--allow-embeds", "--allow-fetch",
         "--allowed-media-domains", "videos.example"]
    )  # fmt: skip
    launch = plan_launch(args)
    assert launch.env["VLLM_API_KEY"] == "from-env"  # an operator's own key is kept
    assert "VLLM_SERVER_DEV_MODE" not in launch.env
    assert launch.env["VLLM_MEDIA_URL_ALLOW_REDIRECTS"] == "0"
    assert "--enable-mm-embeds" in launch.argv and "videos.example" in launch.argv
