"""``sfllava serve`` (issue 16), a real server on a free local port, driven by the
official ``openai`` client and by ``httpx``: answers equal to in-process answers, the
bad-request matrix (each case followed by a health check and a good request), a load
test, a client that disconnects mid-stream, and a clean shutdown."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import httpx
import psutil
import pytest
import torch
from openai import OpenAI
from safetensors.torch import load as load_safetensors
from support import PACKAGE_ROOT
from support.servers import free_port, wait_for_health
from support.videos import write_test_video

from sfllava_ext import SlowFastLlava
from sfllava_ext.models.demo import demo_model, demo_tokenizer

KEY = "test-key-0123"
QUESTIONS = ["What is moving?", "Who opens the door?", "Where does the square go?"]
NEW = 8


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    videos = [
        write_test_video(root / f"v{i}.mp4", 96, 64, 30 + 4 * i, pattern=p)
        for i, p in enumerate(["moving", "noise", "moving", "noise"])
    ]
    long = write_test_video(root / "long.mp4", 64, 48, 150)  # 5 s: over --max-duration-s 3
    big = write_test_video(root / "big.mp4", 160, 120, 10)  # 19,200 px: over --max-pixels
    outside = tmp_path_factory.mktemp("outside") / "secret.mp4"
    write_test_video(outside, 64, 48, 10)
    os.symlink(outside, root / "link.mp4")
    return {"root": str(root), "videos": videos, "long": long, "big": big, "outside": str(outside)}


@pytest.fixture(scope="module")
def server(media, tmp_path_factory):
    port = free_port()
    tmp = tmp_path_factory.mktemp("server-tmp")
    argv = [sys.executable, "-m", "sfllava_ext.cli", "serve", "--demo", "--port", str(port)]
    argv += ["--media-dir", media["root"], "--api-key", KEY, "--num-frames", "8"]
    argv += ["--dtype", "float32", "--device", "cpu", "--max-video-mb", "1"]
    argv += ["--max-duration-s", "3", "--max-pixels", "10000", "--log-level", "warning"]
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT, "TMPDIR": str(tmp)}
    # cwd: not the checkout, whose unbuilt sfllava_ext `-m` would import first
    proc = subprocess.Popen(
        argv, env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    wait_for_health(proc, base)
    yield {"proc": proc, "base": base, "port": port}
    children = psutil.Process(proc.pid).children(recursive=True)
    assert list(tmp.glob("sfllava-serve-*")), "the server keeps its uploads in TMPDIR"
    proc.send_signal(signal.SIGTERM)
    # SIGTERM: the HTTP server shuts down gracefully, then the worker; exit status 0
    assert proc.wait(timeout=60) == 0
    assert not list(tmp.glob("sfllava-serve-*")), "the shutdown did not run (uploads left)"
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture(scope="module")
def local():
    """The same demo model in this process: the reference answers."""
    tok = demo_tokenizer()
    return SlowFastLlava(demo_model(tok, dtype=torch.float32), tok, num_frames=8)


@pytest.fixture(scope="module")
def client(server):
    return OpenAI(base_url=f"{server['base']}/v1", api_key=KEY, max_retries=0, timeout=120)


def message(url: str, question: str) -> list[dict]:
    parts = [{"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": question}]
    return [{"role": "user", "content": parts}]


def data_url(path: str, data: bytes | None = None) -> str:
    payload = base64.b64encode(data if data is not None else open(path, "rb").read()).decode()
    return f"data:video/mp4;base64,{payload}"


def file_url(path: str) -> str:
    return f"file://{path}"


def post(server, body, *, key=KEY, raw: bytes | None = None, path="/v1/chat/completions"):
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    content = raw if raw is not None else httpx.Request("POST", "/", json=body).content
    return httpx.post(f"{server['base']}{path}", content=content, headers=headers, timeout=120)


def good(server, media) -> None:
    """A health check and a successful request: the server keeps serving."""
    assert httpx.get(f"{server['base']}/health", timeout=10).json()["status"] == "ok"
    reply = post(
        server, {"messages": message(file_url(media["videos"][0]), "why"), "max_tokens": 2}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] is not None


# ---------------------------------------------------------------- real clients


def test_openai_client_chat_stream_and_usage(client, local, media):
    path = media["videos"][0]
    for question in QUESTIONS[:2]:
        expected = local.answer(path, question, max_new_tokens=NEW)
        reply = client.chat.completions.create(
            model="sfllava-demo", messages=message(file_url(path), question),
            max_tokens=NEW, temperature=0,
        )  # fmt: skip
        choice = reply.choices[0]
        assert choice.message.content == expected
        assert choice.finish_reason in ("stop", "length")
        prompt = local.session(path).reused_positions(question)[1]
        assert reply.usage.prompt_tokens == prompt
        assert 1 <= reply.usage.completion_tokens <= NEW
        assert reply.usage.total_tokens == prompt + reply.usage.completion_tokens
        pieces, usage = [], None
        stream = client.chat.completions.create(
            model="sfllava-demo", messages=message(data_url(path), question),
            max_tokens=NEW, stream=True, stream_options={"include_usage": True},
        )  # fmt: skip
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                usage = chunk.usage
        assert "".join(pieces) == expected
        assert usage is not None and usage.completion_tokens == reply.usage.completion_tokens
    assert [m.id for m in client.models.list().data] == ["sfllava-demo"]
    # temperature > 0 samples (with top_p); max_tokens bounds the answer
    sampled = client.chat.completions.create(
        model="sfllava-demo", messages=message(file_url(path), QUESTIONS[0]),
        max_tokens=3, temperature=0.9, top_p=0.8,
    )  # fmt: skip
    assert sampled.usage.completion_tokens <= 3 and sampled.choices[0].finish_reason


def test_sessions_are_cached_by_content_and_evicted_least_recent_first(local, media):
    """Engine: a second request for the same bytes (another path) reuses the session;
    past --cache-gb the least recently used session goes first."""
    from sfllava_ext.serve.config import ServeConfig
    from sfllava_ext.serve.engine import Engine
    from sfllava_ext.serve.media import resolve_video

    a, b = media["videos"][0], media["videos"][1]
    one = local.session(a)
    budget = sum(one.held_bytes.values()) * 1.5 / 2**30  # room for one session, not two
    config = ServeConfig(media_dir=media["root"], cache_gb=budget)
    engine = Engine(local, config)
    first = engine.session_for(resolve_video(file_url(a), "v", config, "/tmp"), "v")
    again = engine.session_for(resolve_video(data_url(a), "v", config, media["root"]), "v")
    assert again is first and engine.health()["sessions"] == 1
    engine.session_for(resolve_video(file_url(b), "v", config, "/tmp"), "v")
    assert engine.health()["sessions"] == 1  # a's session was the least recently used
    assert engine.session_for(resolve_video(file_url(a), "v", config, "/tmp"), "v") is not first


def test_tokens_endpoint(server, local, media):
    path = media["videos"][1]
    reply = httpx.post(
        f"{server['base']}/v1/video/tokens",
        json={"video_url": {"url": data_url(path)}},
        headers={"authorization": f"Bearer {KEY}"},
        timeout=120,
    )
    assert reply.status_code == 200, reply.text
    tokens = load_safetensors(reply.content)["tokens"]
    assert torch.equal(tokens, local.encode(path))
    assert reply.headers["x-visual-tokens"] == str(tokens.shape[0])
    assert reply.headers["x-video-sha256"] == hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_load_eight_clients(client, local, media):
    pairs = [(v, q) for v in media["videos"] for q in QUESTIONS]
    expected = {(v, q): local.answer(v, q, max_new_tokens=NEW) for v, q in pairs}
    work = [pairs[(c * 10 + r) % len(pairs)] for c in range(8) for r in range(10)]

    def one(job):
        video, question = job
        reply = client.chat.completions.create(
            model="sfllava-demo", messages=message(file_url(video), question), max_tokens=NEW
        )
        return reply.choices[0].message.content

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(one, work))
    wrong = [(job, got) for job, got in zip(work, answers, strict=True) if got != expected[job]]
    assert len(answers) == 80 and not wrong, wrong[:3]


def test_a_client_that_leaves_mid_stream_stops_its_generation(server, media):
    before = httpx.get(f"{server['base']}/health").json()["cancelled"]
    body = {"messages": message(file_url(media["videos"][2]), "Tell me everything."),
            "max_tokens": 300, "stream": True}  # fmt: skip
    headers = {"authorization": f"Bearer {KEY}"}
    with httpx.stream("POST", f"{server['base']}/v1/chat/completions", json=body,
                      headers=headers, timeout=120) as reply:  # fmt: skip
        assert reply.status_code == 200
        lines = reply.iter_lines()
        assert next(lines).startswith("data: ")
    deadline = time.monotonic() + 60
    while httpx.get(f"{server['base']}/health").json()["cancelled"] == before:
        assert time.monotonic() < deadline, "the generation was not stopped"
        time.sleep(0.2)
    good(server, media)


# -------------------------------------------------------- the bad-request matrix


def bad_cases(media):
    v = file_url(media["videos"][0])
    root = media["root"]
    clip = open(media["videos"][0], "rb").read()
    text = {"type": "text", "text": "why"}
    video = {"type": "video_url", "video_url": {"url": v}}
    return {
        "malformed JSON": ({"raw": b'{"messages": [}'}, 400, "not valid JSON"),
        "no messages": ({"body": {"messages": []}}, 400, "messages"),
        "no video part": ({"body": {"messages": [{"role": "user", "content": [text]}]}}, 400,
                          "no video_url"),
        "two video parts": ({"body": {"messages": [{"role": "user",
                             "content": [video, video, text]}]}}, 400, "2 video_url"),
        "a part of another type": ({"body": {"messages": [{"role": "user", "content": [
            video, {"type": "image_url", "image_url": {"url": v}}]}]}}, 400, "text or video_url"),
        "base64 that is not a video": ({"body": {"messages": message(
            data_url("", b"hello, this is not a video"), "why")}}, 400, "not a readable video"),
        "base64 that is not base64": ({"body": {"messages": message(
            "data:video/mp4;base64,@@@@", "why")}}, 400, "base64"),
        "a truncated MP4": ({"body": {"messages": message(
            data_url("", clip[: len(clip) // 2]), "why")}}, 400, "video"),
        "a body over the limit": ({"raw": b'{"x": "' + b"a" * (3 << 20) + b'"}'}, 413, "larger"),
        "a video over the duration limit": ({"body": {"messages": message(
            file_url(media["long"]), "why")}}, 400, "max-duration-s"),
        "a video over the pixel limit": ({"body": {"messages": message(
            file_url(media["big"]), "why")}}, 400, "max-pixels"),
        "a file outside the media dir": ({"body": {"messages": message(
            file_url(media["outside"]), "why")}}, 403, "media-dir"),
        "leaving through ..": ({"body": {"messages": message(
            f"file://{root}/../{os.path.basename(os.path.dirname(media['outside']))}/secret.mp4",
            "why")}}, 403, "media-dir"),
        "leaving through percent-encoded ..": ({"body": {"messages": message(
            f"file://{root}/%2e%2e/%2E%2E/%2e%2e/etc/passwd", "why")}}, 403, "media-dir"),
        "leaving through a symlink": ({"body": {"messages": message(
            file_url(os.path.join(root, "link.mp4")), "why")}}, 403, "media-dir"),
        "naming /etc/passwd": ({"body": {"messages": message("file:///etc/passwd", "why")}},
                               403, "media-dir"),
        "an http:// URL": ({"body": {"messages": message("http://127.0.0.1:1/v.mp4", "why")}},
                           400, "fetches nothing"),
        "n > 1": ({"body": {"messages": message(v, "why"), "n": 2}}, 400, "n must be 1"),
        "empty text": ({"body": {"messages": [{"role": "user", "content": [
            video, {"type": "text", "text": "   "}]}]}}, 400, "non-empty text"),
        "non-string text": ({"body": {"messages": [{"role": "user", "content": [
            video, {"type": "text", "text": 5}]}]}}, 400, "non-empty text"),
        "a negative max_tokens": ({"body": {"messages": message(v, "why"), "max_tokens": -3}},
                                  400, "max_tokens"),
        "max_tokens beyond the context": ({"body": {"messages": message(v, "why"),
                                           "max_tokens": 100000}}, 400, "context"),
        "a missing API key": ({"body": {"messages": message(v, "why")}, "key": None}, 401,
                              "API key"),
        "a wrong API key": ({"body": {"messages": message(v, "why")}, "key": "nope"}, 401,
                            "API key"),
        "another model": ({"body": {"model": "gpt-4o", "messages": message(v, "why")}}, 404,
                          "does not exist"),
        "an unknown field": ({"body": {"messages": message(v, "why"), "tools": []}}, 400,
                             "tools"),
    }  # fmt: skip


def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(server, media):
    statuses = {}
    for name, (request, status, words) in bad_cases(media).items():
        reply = post(server, request.get("body"), key=request.get("key", KEY),
                     raw=request.get("raw"))  # fmt: skip
        statuses[name] = reply.status_code
        assert reply.status_code == status, (name, reply.status_code, reply.text)
        error = reply.json()["error"]
        assert words in error["message"], (name, error)
        assert set(error) == {"message", "type", "param", "code"}
        good(server, media)
    assert len(statuses) == 26
    print("\nbad-request matrix:", statuses)


def test_unknown_route_and_busy_queue(server):
    reply = httpx.get(f"{server['base']}/v1/nothing", timeout=10)
    assert reply.status_code == 404 and "error" in reply.json()
    from sfllava_ext.serve.config import ServeConfig
    from sfllava_ext.serve.engine import Engine
    from sfllava_ext.serve.errors import ApiError

    gate = threading.Event()
    text = SimpleNamespace(max_position_embeddings=16, rope_parameters=None)
    engine = Engine(
        SimpleNamespace(config=SimpleNamespace(text_config=text)), ServeConfig(max_queue=1)
    )
    engine.start()
    try:
        first = engine.submit(gate.wait)
        with pytest.raises(ApiError) as busy:
            engine.submit(lambda: None)
        assert busy.value.status == 503 and busy.value.headers["Retry-After"] == "1"
        gate.set()
        assert first.result(timeout=10) is True
        assert engine.submit(lambda: 7).result(timeout=10) == 7  # room again
    finally:
        gate.set()
        engine.stop()


def test_missing_extra_names_the_install_line(monkeypatch):
    import importlib.util

    from sfllava_ext.serve import require_serve_extra

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else real(name, *a)
    )
    with pytest.raises(ImportError, match=r"fastapi .*pip install .*sfllava_ext\[serve\]"):
        require_serve_extra()
