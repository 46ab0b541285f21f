"""The sfllava command: demo, embed, ask; errors as one line and a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from support.models import tiny_llava
from support.tokenizers import hf_llama_tokenizer, train_llama_sentencepiece
from support.videos import write_test_video

import sfllava_ext
from sfllava_ext import (
    SlowFastLlava,
    VideoSession,
    load_video,
    num_visual_tokens,
    sample_frame_indices,
)
from sfllava_ext.cli import main
from sfllava_ext.models.families import FAMILIES
from sfllava_ext.utils.timing import STAGES

ONEVISION_DEFAULT = FAMILIES["llava_onevision"].default_slowfast


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    from transformers import CLIPImageProcessor

    folder = tmp_path_factory.mktemp("tiny-llava")
    train_llama_sentencepiece(str(folder))
    tok = hf_llama_tokenizer(str(folder))
    tiny_llava(len(tok)).save_pretrained(folder)
    tok.save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}
    ).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_test_video(tmp_path_factory.mktemp("video") / "clip.mp4", 160, 120, 40)


@pytest.mark.parametrize(
    "family, extra, name, tokens",
    [
        ("next", [], "LLaVA-NeXT", num_visual_tokens(12)),
        ("next_video", ["--slowfast", "next_video_pool"], "LLaVA-NeXT-Video", 12 * 144),
        ("onevision", [], "LLaVA-OneVision", num_visual_tokens(12, (27, 27), ONEVISION_DEFAULT)),
    ],
)
def test_demo_runs_the_whole_pipeline(family, extra, name, tokens, capsys):
    argv = ["demo", "--family", family, "--num-frames", "12", "--max-new-tokens", "4",
            "--device", "cpu", *extra]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"built-in {name} with RANDOM weights" in out and "answer (random weights):" in out
    for stage in STAGES:  # the resampler runs only for NeXT-Video's own pooling
        assert (stage in out) == (stage != "resampler" or bool(extra)), stage
    assert f"{tokens} visual tokens" in out


def test_embed_writes_tokens_and_metadata(model_folder, video, tmp_path, capsys):
    out_path = tmp_path / "tokens.safetensors"
    argv = [
        "embed",
        video,
        "-o",
        str(out_path),
        "--model",
        model_folder,
        "--dtype",
        "float32",
        "--num-frames",
        "8",
    ]
    assert main(argv) == 0
    with safe_open(str(out_path), "pt") as f:
        tokens = f.get_tensor("tokens")
        meta = f.metadata()
    assert json.loads(meta["frame_indices"]) == sample_frame_indices(40, 8)
    assert meta["aggregation"] == "slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4"
    assert meta["model"] == model_folder
    sf = SlowFastLlava.from_pretrained(model_folder, device="cpu", dtype=torch.float32)
    assert torch.equal(tokens, sf.encode(load_video(video, 8)))
    assert tokens.shape[0] == num_visual_tokens(8)
    # the session file format: a session loads from it without decoding or encoding
    sf.num_frames = 8
    session = VideoSession.load(out_path, sf)
    assert torch.equal(session.tokens, tokens)
    assert session.info["frame_indices"] == sample_frame_indices(40, 8)


def test_ask_open_and_multiple_choice(model_folder, video, capsys):
    base = ["--model", model_folder, "--dtype", "float32", "--num-frames", "6"]
    assert main(["ask", video, "What happens?", "--max-new-tokens", "3", *base]) == 0
    assert capsys.readouterr().out.strip() != ""
    assert main(["ask", video, "Which?", "--options", "cat", "dog", "bird", *base]) == 0
    assert capsys.readouterr().out.strip() in {"A", "B", "C", "(no option chosen)"}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["ask", "/no/such/video.mp4", "What?", "--model", "{model}"], "FileNotFoundError"),
        (["ask", "{video}", "   ", "--model", "{model}"], "PromptError: question is empty"),
        (
            ["ask", "{video}", "Which?", "--options", "one", "--model", "{model}"],
            "at least two choices",
        ),
        (
            ["embed", "{video}", "-o", "x.safetensors", "--model", "/no/such/model"],
            "sfllava: error:",
        ),
    ],
)
def test_errors_are_one_line(argv, message, model_folder, video, tmp_path):
    argv = [a.replace("{model}", model_folder).replace("{video}", video) for a in argv]
    proc = subprocess.run(
        [sys.executable, "-m", "sfllava_ext.cli", *argv, "--dtype", "float32"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(sfllava_ext.__file__))},
    )
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr
    assert lines[-1].startswith("sfllava: error:") and message in lines[-1], proc.stderr
