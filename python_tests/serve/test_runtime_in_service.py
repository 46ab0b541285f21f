"""The service over the language-model runtime, on a real server in this process:
``finish_reason`` comes from the runtime's stop set (a Llama-3 answer that ends at
``<|eot_id|>`` at exactly ``max_tokens`` is ``stop``, not ``length``), every prompt is
tokenized once, and the fault hook can hold a job the service admitted."""

from __future__ import annotations

import base64
import hashlib
import json
import threading

import httpx
import pytest
from support.models import tiny_llava
from support.servers import serve_in_thread
from support.tokenizers import llama3_tokenizer
from support.videos import write_test_video

from sfllava_ext import SlowFastLlava
from sfllava_ext.utils import faults

SLOWFAST = "slowfast-slow_2frms_spatial_1d_max_pool-fast_2x2"


class CountingTokenizer:
    """A tokenizer that records the text of every call (and is otherwise the one it
    wraps)."""

    def __init__(self, inner) -> None:
        self.__dict__.update(inner=inner, calls=[])

    def __call__(self, text, *args, **kwargs):
        self.calls.append(text)
        return self.inner(text, *args, **kwargs)

    def __len__(self) -> int:
        return len(self.inner)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def llama3():
    """A tiny LLaVA-NeXT with a Llama-3 tokenizer (EOS <|end_of_text|>, end of turn
    <|eot_id|>), whose next token a test may force (``forced[0]``)."""
    tokenizer = CountingTokenizer(llama3_tokenizer())
    model = tiny_llava(len(tokenizer), max_position_embeddings=8192)
    forced: list[int | None] = [None]

    def force(module, inputs, logits):
        if forced[0] is None:
            return logits
        logits = logits.clone()
        logits[..., forced[0]] += 1e4
        return logits

    model.lm_head.register_forward_hook(force)
    sf = SlowFastLlava(model, tokenizer, slowfast=SLOWFAST, num_frames=4)
    return sf, tokenizer, forced


@pytest.fixture(scope="module")
def video_url(tmp_path_factory):
    path = write_test_video(tmp_path_factory.mktemp("v") / "v.mp4", 96, 64, 20)
    return "data:video/mp4;base64," + base64.b64encode(open(path, "rb").read()).decode()


def ask(base: str, url: str, question: str, max_tokens: int, stream: bool = False):
    content = [{"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": question}]
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}
    if stream:
        body["stream"] = True
    return httpx.post(f"{base}/v1/chat/completions", json=body, timeout=120)


def streamed_finish(reply: httpx.Response) -> str:
    events = [line[6:] for line in reply.text.splitlines() if line.startswith("data: ")]
    chunks = [json.loads(e) for e in events if e != "[DONE]"]
    return [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]


def test_finish_reason_reads_the_runtimes_stop_set(llama3, video_url):
    sf, tokenizer, forced = llama3
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert eot != tokenizer.eos_token_id and sf.llm.stop_ids == (tokenizer.eos_token_id, eot)
    plain = tokenizer.convert_tokens_to_ids("the")
    assert plain not in sf.llm.stop_ids
    with serve_in_thread(sf) as base:
        try:
            forced[0] = eot  # the answer is <|eot_id|>, at exactly max_tokens = 1
            for stream in (False, True):
                reply = ask(base, video_url, "What is moving?", 1, stream)
                assert reply.status_code == 200, reply.text
                if stream:
                    assert streamed_finish(reply) == "stop"
                else:
                    body = reply.json()
                    assert body["choices"][0]["finish_reason"] == "stop"
                    assert body["usage"]["completion_tokens"] == 1
            forced[0] = plain  # an answer cut at max_tokens
            assert ask(base, video_url, "What?", 2).json()["choices"][0]["finish_reason"] == (
                "length"
            )
            assert streamed_finish(ask(base, video_url, "What?", 2, True)) == "length"
        finally:
            forced[0] = None


def test_every_prompt_is_tokenized_once(llama3, video_url):
    sf, tokenizer, _ = llama3
    with serve_in_thread(sf) as base:
        for i, stream in enumerate((False, False, True)):  # new video, then cached, then SSE
            question = f"Which colour is square number {i}?"
            tokenizer.calls.clear()
            reply = ask(base, video_url, question, 2, stream)
            assert reply.status_code == 200, reply.text
            # LLaVA's rule tokenizes each side of <image>: the question is in one side
            assert sum(question in text for text in tokenizer.calls) == 1, tokenizer.calls
            if not stream:  # the positions counted are the prompt's, visual tokens included
                assert reply.json()["usage"]["prompt_tokens"] > sf.num_visual_tokens(4)


def test_a_job_that_never_runs_answers_with_an_error_not_a_hang(llama3, video_url):
    """A fault hook that raises where the worker starts a job: the request, whole or
    streamed, gets an OpenAI-style 500 at once, and the server goes on. The message
    gives a reference to the server's log, never the exception's text."""
    sf, _, _ = llama3

    def fail(point: str, **context) -> None:
        if point == "serve.job":
            raise RuntimeError("planted")

    with serve_in_thread(sf) as base:
        faults.install(fail)
        try:
            for stream in (False, True):
                reply = ask(base, video_url, "Q?", 1, stream)
                assert reply.status_code == 500, reply.text
                message = reply.json()["error"]["message"]
                assert "internal error (reference " in message and "planted" not in message
        finally:
            faults.install(None)
        assert ask(base, video_url, "Q?", 1).status_code == 200


def test_the_fault_hook_holds_an_admitted_job(llama3, video_url):
    sf, _, _ = llama3
    entered, release, seen = threading.Event(), threading.Event(), []

    def hold(point: str, **context) -> None:
        if point == "serve.job":
            seen.append((context["kind"], context["video"].sha256))
            entered.set()
            assert release.wait(timeout=120)

    faults.install(hold)
    try:
        with serve_in_thread(sf) as base:
            result: list[httpx.Response] = []
            asking = threading.Thread(target=lambda: result.append(ask(base, video_url, "Q?", 1)))
            asking.start()
            assert entered.wait(timeout=120)
            health = httpx.get(f"{base}/health", timeout=10).json()  # the server stays up
            assert health["status"] == "ok"
            assert (health["waiting"], health["running"]) == (0, 1)  # running, not waiting
            assert not result  # held after it was admitted, before it ran
            release.set()
            asking.join(timeout=120)
            assert result[0].status_code == 200, result[0].text
    finally:
        faults.install(None)
    payload = base64.b64decode(video_url.split(",", 1)[1])
    assert seen == [("chat", hashlib.sha256(payload).hexdigest())]
