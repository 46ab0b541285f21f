"""Fuzzing ``sfllava serve``: mutated and random requests against a real server on a
free local port, every answer checked against docs/security.md's table of statuses.

The server is ``sfllava serve --demo`` (float32 on the CPU, 4 frames) in a child process
started outside the checkout, with an API key from ``$SFLLAVA_API_KEY`` (never on its
command line), a media dir of two small synthetic clips (and a folder, a FIFO, a text
file, a playlist and a link that leads outside), ``--max-video-mb 1`` and
``--read-timeout-s 1``, so that slow clients are answered within seconds.

Request ``i`` of a run belongs to family ``SCHEDULE[i % len(SCHEDULE)]`` (every family
gets its share, the valid requests three times over, spread through the run) and is
drawn from ``random.Random(f"{seed}:{i}")``. The families (:data:`FAMILIES`):

* ``valid``: chat completions (whole, streamed, a data: URL, optional fields), visual
  tokens, the model list and ``/health``, whose answers must equal the same demo
  model's in this process (greedy, the same settings);
* ``types``, ``missing``, ``unknown``: a field of another type, a field left out, a
  field the service does not take (at the top level, where it is refused by name, and
  inside a message, a part or a ``video_url``, where it is ignored);
* ``numbers``: huge, negative, fractional, 21-digit, ``NaN``/``Infinity`` and
  overflowing values of ``max_tokens``, ``temperature``, ``top_p``, ``n``;
* ``nesting``, ``values``: JSON deeper than 32 levels (and just within), more than
  100,000 values, text over 1 MiB beside the video, a body over the body limit;
* ``content_type``, ``utf8``: a missing, wrong or doubled ``Content-Type``; bytes that
  are not UTF-8, lone surrogates, a BOM;
* ``cut``, ``slow``, ``disconnect``: bodies shorter than their ``Content-Length`` (the
  client then leaves, half-closes or waits: 408), a body dripped slower than 64 KiB/s
  or stalled (408), a request head dripped (the connection is closed), clients that
  leave mid-body, while their answer is computed, or after the first event of a stream;
* ``auth``, ``host``, ``routes``: a missing, wrong, doubled or otherwise spelled API
  key (401), odd ``Host`` headers, unknown routes and methods (404, 405);
* ``urls``: ``file://`` URLs outside the media dir (403), missing files (404), a folder
  or a FIFO (400 ``not_a_file``), other schemes (400 ``unsupported_url``), data: URLs of
  garbage (400 ``invalid_video``), a playlist (400 ``unsupported_format``);
* ``random``: random bytes as a body, and as a whole request;
* ``mutation``: one to four random mutations of a valid request's JSON;
* ``keyless``: after the run, a second server without a key: ``Host`` headers that
  name it (served) and others (403 ``host_not_allowed``).

Each request carries the statuses docs/security.md allows for it (and, where one
applies, the ``code`` and the ``param``), whether its client waits for an answer, and
for every request with a known video, question and ``max_tokens`` (any family) a
reference computed in this process: a greedy answer's text, ``finish_reason`` and
usage, a sampled one's prompt length, or the refusal of a prompt past the context. An
answer is a *violation* when its status is not among those, when its ``(status,
code)`` is not in docs/security.md's table (parsed at the start), when an error's body
is not OpenAI's ``{"error": {"message", "type", "param", "code"}}`` (uvicorn's
plain-text 400 is allowed where the request is not HTTP), when a message names a server
path or holds a traceback or is longer than its fixed text and the 64 characters a
client's value is quoted to, when it is a 5xx other than 503 (stricter than the docs,
which list 500 and 504), when a 200 is not its route's shape or a stream's error event
has a code the table does not list (or ``internal_error``), when it differs from its
reference, or when no answer came where one was due. A request without an answer passes
only when its client left on purpose or the server closed or reset the connection (a
stalled head within ``3 * --read-timeout-s + 2`` s); a timeout never does. The requests
run on ``--concurrency`` threads, in batches of 100, while a thread polls ``/health``
every 0.5 s (200 within 2 s each time); after each batch the server must be alive; one
valid request follows the last batch, and then nothing may be waiting or running. The
server's log must hold no traceback. The cost of a request is bounded: no request
leaves ``max_tokens`` out (the default is 256 tokens) or asks for more than 8 tokens
that the context could hold.

    python benchmarks/fuzz_serve.py                      # 2,000 requests
    python benchmarks/fuzz_serve.py --count 200 --out /tmp/fuzz_serve.json

Writes benchmarks/results/fuzz_serve.json (the counts per family and status, every
violation with its request, the health checks, the server's RSS).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import random
import re
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import RESULTS, ROOT, free_port, machine_info, provenance, table, write_json

#: the committed result in benchmarks/results/, which report.py renders
RESULT = "fuzz_serve"
FAMILIES = {
    "valid": "valid requests, answers compared with in-process ones",
    "types": "a field of another type",
    "missing": "a field left out",
    "unknown": "a field the service does not take",
    "numbers": "huge, negative, fractional, 21-digit, NaN/Infinity numbers",
    "nesting": "JSON deeper than 32 levels, and just within",
    "values": "over 100,000 values, over 1 MiB of text, over the body limit",
    "content_type": "a missing, wrong or doubled Content-Type",
    "utf8": "bytes that are not UTF-8, lone surrogates, a BOM",
    "cut": "a body shorter than its Content-Length",
    "slow": "a body or head dripped or stalled",
    "disconnect": "clients that leave mid-request or mid-stream",
    "auth": "a missing, wrong, doubled or respelled API key",
    "host": "odd Host headers",
    "routes": "unknown routes and methods",
    "urls": "file:// outside the media dir, other schemes, garbage videos",
    "random": "random bytes as a body or as a request",
    "mutation": "random mutations of a valid request's JSON",
    "keyless": "Host headers against a second server without a key (a short second phase)",
}
#: the order of the families through a run: the valid ones three times over
SCHEDULE = [f for f in FAMILIES if f != "keyless" for _ in range(3 if f == "valid" else 1)]
QUESTIONS = [
    "What is moving?",
    "Which colour does the square have?",
    "Where does the square go at the end?",
    "Qu'est-ce qui bouge ? 動いているのは何？",
    # the demo model answers "kitchen, kitchen, ..." to every video and question above;
    # to this one it answers otherwise for a.mp4 than for b.mp4 (from 2 tokens on), so
    # a valid answer's comparison shows that the right video reached the model
    "a" * 80,
]
VIDEOS = ("a.mp4", "b.mp4")
NUM_FRAMES = 4
MAX_TOKENS = 4  # a valid request asks for 1 to this many
MODEL_ID = "sfllava-demo"
READ_TIMEOUT_S = 1.0
MAX_VIDEO_MB = 1
#: the body limit the server computes from --max-video-mb (ServeConfig.max_body_bytes)
BODY_LIMIT = (MAX_VIDEO_MB << 20) * 4 // 3 + (1 << 20)
MAX_DEPTH, MAX_VALUES = 32, 100_000
BATCH = 100
HEALTH_LIMIT_S = 2.0
#: a status no HTTP answer has: the request's client does not wait for one
NO_ANSWER = None
#: the "code" of uvicorn's plain-text answers (not JSON)
PLAIN = "(plain text)"
#: a message's fixed text (what the service writes itself), and what it may quote of a
#: client's value (docs/security.md: 64 characters at most, and one value per message)
FIXED_TEXT_LIMIT, QUOTED_LIMIT = 200, 64
MESSAGE_LIMIT = FIXED_TEXT_LIMIT + QUOTED_LIMIT
#: a connection whose head does not arrive within --read-timeout-s is closed: by when
#: its client must see the close (the server's timer, and slack for a loaded machine)
CLOSE_WITHIN_S = 3 * READ_TIMEOUT_S + 2
#: how a connection may end without an answer: the client left on purpose (abandoned),
#: or the server closed or reset it (a timeout or a failed connect is never one)
NO_ANSWER_ERRORS = ("abandoned", "closed", "reset")
HEALTH_POLL_S = 0.5
#: the keyless phase's requests: this many, or a fiftieth of the run if more
KEYLESS_MIN = 20
GREEDY_BELOW = 1e-5  # sfllava_ext.serve.protocol.GREEDY_BELOW

Expect = dict[int | None, frozenset[str | None] | None]


# ----------------------------------------------------------------- the documented table


def documented_statuses(path: Path = ROOT / "docs" / "security.md") -> dict[int, set]:
    """docs/security.md's table "Every status the service returns": ``{status: {code,
    ...}}``, ``None`` for a row without a code, :data:`PLAIN` for uvicorn's plain-text
    answers (the row of ``--max-connections``, and the sentence after the table on
    bytes that are not HTTP)."""
    text = path.read_text()
    section = text.split("## Every status the service returns", 1)[1].split("\n## ", 1)[0]
    out: dict[int, set] = {}
    for line in section.splitlines():
        if not re.match(r"\|\s*\d{3}", line):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        codes: set = set(re.findall(r"`([a-z_]+)`", cells[1]))
        if not cells[1] or "(none)" in cells[1]:
            codes.add(None)
        if "(plain text)" in cells[1]:
            codes.add(PLAIN)
        for status in re.findall(r"\d{3}", cells[0]):
            out.setdefault(int(status), set()).update(codes)
    if "uvicorn's plain-text 400" in section:
        out.setdefault(400, set()).add(PLAIN)
    return out


# ------------------------------------------------------------------------ the requests


@dataclass
class Case:
    """One request: its bytes, how they are sent (``action``), and what may come back.

    ``expect`` maps each status allowed to the codes allowed with it (None: any code the
    table lists for that status); the key :data:`NO_ANSWER` allows no answer at all (a
    client that leaves, or a request head the server drops). ``param``: the ``param`` a
    400 without a code must name. ``answer``: a valid request's reference, as a key
    into the answers computed in this process."""

    index: int
    family: str
    what: str
    request: bytes
    expect: Expect
    action: str = "send"  # send, abandon, half_close, stall, drip, slow_head, first_event
    cut: int | None = None  # bytes sent before the action's pause, close or drip
    reset: bool = False  # abandon with a TCP reset rather than a FIN
    param: str | None = None
    answer: tuple | None = None  # ("chat", video, question, tokens, decoding), ("tokens", video)
    stream: bool = False
    method: str = "POST"
    close_within: float | None = None  # a connection closed unanswered: within this many s
    timeout: float = 120.0  # how long the client waits for an answer


@dataclass
class Outcome:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None  # closed, reset, timeout, incomplete, abandoned
    seconds: float = 0.0


class Env:
    """What the requests of a run name: the port, the key, the media dir's files."""

    def __init__(self, port: int, key: str, media: str, outside: str, root: bool) -> None:
        self.port, self.key, self.media, self.outside, self.root = port, key, media, outside, root

    def file_url(self, name: str) -> str:
        return "file://" + os.path.join(self.media, name)

    def data_url(self, name: str) -> str:
        data = Path(self.media, name).read_bytes()
        return "data:video/mp4;base64," + base64.b64encode(data).decode()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        headers: list[tuple[str, str | bytes]] | None = None,
        key: bool = True,
        content_type: bool = True,
        host: bool = True,
        length: int | None = None,
        version: str = "HTTP/1.1",
    ) -> bytes:
        """An HTTP request's bytes: ``Host``, the key, ``Content-Type: application/json``
        and ``Content-Length`` (``length``, else the body's) unless told otherwise, then
        ``headers``; ``Connection: close`` always."""
        lines: list[tuple[str, str | bytes]] = []
        if host:
            lines.append(("Host", f"127.0.0.1:{self.port}"))
        if key:
            lines.append(("Authorization", f"Bearer {self.key}"))
        if content_type and method == "POST":
            lines.append(("Content-Type", "application/json"))
        lines += headers or []
        if body is not None:
            lines.append(("Content-Length", str(len(body) if length is None else length)))
        lines.append(("Connection", "close"))
        head = f"{method} {path} {version}\r\n".encode()
        for name, value in lines:
            raw = value if isinstance(value, bytes) else value.encode("latin-1")
            head += name.encode() + b": " + raw + b"\r\n"
        return head + b"\r\n" + (body or b"")


def chat_body(
    env: Env,
    rng: random.Random,
    *,
    video: str | None = None,
    question: str | None = None,
    max_tokens: int | None = None,
    stream: bool = False,
    data_url: bool = False,
) -> dict[str, Any]:
    video = video or rng.choice(VIDEOS)
    question = question or rng.choice(QUESTIONS)
    url = env.data_url(video) if data_url else env.file_url(video)
    parts = [
        {"type": "video_url", "video_url": {"url": url}},
        {"type": "text", "text": question},
    ]
    if rng.random() < 0.3:
        parts.reverse()
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": parts}],
        "max_tokens": max_tokens or rng.randint(1, MAX_TOKENS),
    }
    if stream:
        body["stream"] = True
    return body


def answer_key(body: dict[str, Any], video: str) -> tuple:
    """The reference a chat request's answer is compared with: its video, its question
    (the text parts joined), its max_tokens, and whether it decodes greedily (its text
    is then known; a sampled answer's prompt and length are)."""
    parts = body["messages"][0]["content"]
    question = "\n".join(p["text"] for p in parts if p["type"] == "text")
    tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    temperature = body.get("temperature")
    greedy = temperature is None or temperature < GREEDY_BELOW
    return ("chat", video, question, tokens, "greedy" if greedy else "sampled")


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def _at(body: Any, path: tuple) -> tuple[Any, Any]:
    """The container holding ``path``'s last step, and that step."""
    node = body
    for step in path[:-1]:
        node = node[step]
    return node, path[-1]


def _param(path: tuple) -> str:
    """A path as the service names a field: ``messages[0].content[1].text``."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


def _video_index(body: dict[str, Any]) -> int:
    return next(i for i, p in enumerate(body["messages"][0]["content"]) if p["type"] == "video_url")


def _chat(env: Env, body: dict[str, Any] | bytes, **kw: Any) -> bytes:
    raw = body if isinstance(body, bytes) else dumps(body)
    return env.request("POST", "/v1/chat/completions", raw, **kw)


def _only(status: int, *codes: str | None) -> Expect:
    return {status: frozenset(codes) if codes else None}


def _field_error(param: str) -> tuple[Expect, str]:
    return {400: frozenset({None})}, param


# -- valid


def gen_valid(env: Env, rng: random.Random, i: int) -> Case:
    kind = rng.choice(["chat", "chat", "stream", "data", "extras", "tokens", "models", "health"])
    if kind in ("chat", "stream", "data", "extras"):
        video = rng.choice(VIDEOS)
        body = chat_body(env, rng, video=video, stream=kind == "stream", data_url=kind == "data")
        if kind == "stream" and rng.random() < 0.5:
            body["stream_options"] = {"include_usage": True}
        if kind == "extras":
            extras = {
                "model": MODEL_ID,
                "n": 1,
                "temperature": rng.choice([0, 0.0, 1e-6]),
                "top_p": round(rng.uniform(0.05, 1), 3),
                "user": "fuzz",
                "stream": False,
                "stream_options": None,
            }
            for name in rng.sample(sorted(extras), rng.randint(1, len(extras))):
                body[name] = extras[name]
            if rng.random() < 0.5:
                body["max_completion_tokens"] = body.pop("max_tokens")
        return Case(
            i,
            "valid",
            f"chat ({kind})",
            _chat(env, body),
            _only(200),
            answer=answer_key(body, video),
            stream=body.get("stream", False),
        )
    if kind == "tokens":
        video = rng.choice(VIDEOS)
        url = env.file_url(video) if rng.random() < 0.5 else env.data_url(video)
        body = {"video_url": {"url": url}}
        if rng.random() < 0.5:
            body["model"] = MODEL_ID
        raw = env.request("POST", "/v1/video/tokens", dumps(body))
        return Case(i, "valid", "visual tokens", raw, _only(200), answer=("tokens", video))
    if kind == "models":
        raw = env.request("GET", "/v1/models")
        return Case(i, "valid", "model list", raw, _only(200), answer=("models",), method="GET")
    method = rng.choice(["GET", "HEAD"])
    raw = env.request(method, "/health", key=rng.random() < 0.5)
    return Case(i, "valid", f"{method} /health", raw, _only(200), answer=("health",), method=method)


# -- types

_TYPE_POOL: list[Any] = [None, True, False, 0, -3, 1.5, "", "x", [], [1], {}, {"a": 1}]
#: strings whose repr is many times their length (docs/security.md: quoted to 64)
_UNPRINTABLE = ["\U000e0001" * 100, "\x00" * 70, "\x7f\x1b" * 40, "\u200b" * 65]
_TYPE_POOL += [_UNPRINTABLE[0], _UNPRINTABLE[1]]


def gen_types(env: Env, rng: random.Random, i: int) -> Case:
    video_name = rng.choice(VIDEOS)
    body = chat_body(env, rng, video=video_name, stream=False)
    body.update(temperature=0.0, top_p=1.0, n=1, stream=False, stream_options=None)
    video, text = _video_index(body), 1 - _video_index(body)
    content = ("messages", 0, "content")
    targets = [
        (("model",), "model"),
        (("messages",), "messages"),
        (("messages", 0), "messages[0].role"),
        (("messages", 0, "role"), "messages[0].role"),
        (content, "messages[0].content"),
        ((*content, video), f"messages[0].content[{video}].type"),
        ((*content, video, "type"), f"messages[0].content[{video}].type"),
        ((*content, video, "video_url"), f"messages[0].content[{video}].video_url.url"),
        ((*content, video, "video_url", "url"), f"messages[0].content[{video}].video_url.url"),
        ((*content, text), f"messages[0].content[{text}].type"),
        ((*content, text, "text"), f"messages[0].content[{text}].text"),
        (("max_tokens",), "max_tokens"),
        (("temperature",), "temperature"),
        (("top_p",), "top_p"),
        (("n",), "n"),
        (("stream",), "stream"),
        (("stream_options",), "stream_options"),
        (("user",), "user"),
    ]
    path, param = rng.choice(targets)
    node, step = _at(body, path)
    original = node[step] if not (isinstance(node, dict) and step not in node) else None
    pool = [v for v in _TYPE_POOL if type(v) is not type(original)]
    if path == ("max_tokens",):
        pool = [v for v in pool if v is not None]  # no default of 256 tokens
    value = rng.choice(pool)
    node[step] = value
    what = f"{_param(path)} = {json.dumps(value)}"
    if path == ("messages",) and value == [1]:
        param = "messages[0].role"  # one message, not a user message
    # which swaps the service takes: the oracle of protocol's rules, field by field
    expect: Expect = {400: frozenset({None})}
    if path == ("model",):
        expect = _only(200) if value is None else _only(404, "model_not_found")
    elif path == ("user",) and (value is None or isinstance(value, str)):
        expect = _only(200)  # OpenAI's type: a string (null: left out)
    elif path == ("temperature",) and (
        value is None or (type(value) in (int, float) and 0 <= value <= 2)
    ):
        expect = _only(200)
    elif path == ("top_p",) and (value is None or (type(value) in (int, float) and 0 < value <= 1)):
        expect = _only(200)
    elif path == ("stream",) and value is False:
        expect = _only(200)
    elif path == ("stream_options",) and (value is None or value == {}):
        expect = _only(200)
    stream = path == ("stream",) and value is True
    if path == ("stream",) and value is True:
        expect = _only(200)
    answer = answer_key(body, video_name) if 200 in expect else None
    raw = _chat(env, body)
    return Case(i, "types", what, raw, expect, param=param, stream=stream, answer=answer)


# -- missing


def gen_missing(env: Env, rng: random.Random, i: int) -> Case:
    video = rng.choice(VIDEOS)
    body = chat_body(env, rng, video=video)
    body["model"] = MODEL_ID
    vi, ti = _video_index(body), 1 - _video_index(body)
    content = ("messages", 0, "content")
    choices: list[tuple[tuple, str | None]] = [
        (("messages",), "messages"),
        (("messages", 0), "messages"),
        (("messages", 0, "role"), "messages[0].role"),
        (content, "messages[0].content"),
        ((*content, vi), "messages[0].content"),
        ((*content, ti), "messages[0].content"),
        ((*content, vi, "type"), f"messages[0].content[{vi}].type"),
        ((*content, ti, "type"), f"messages[0].content[{ti}].type"),
        ((*content, ti, "text"), f"messages[0].content[{ti}].text"),
        ((*content, vi, "video_url"), f"messages[0].content[{vi}].video_url.url"),
        ((*content, vi, "video_url", "url"), f"messages[0].content[{vi}].video_url.url"),
        (("model",), None),
        ((), "messages"),
        (("<body>",), None),
    ]
    path, param = rng.choice(choices)
    if path == ():
        return Case(i, "missing", "{}", _chat(env, b"{}"), _only(400, None), param="messages")
    if path == ("<body>",):
        raw = _chat(env, rng.choice([b"", b"null", b" "]))
        return Case(i, "missing", "no body", raw, _only(400, "invalid_json"))
    node, step = _at(body, path)
    del node[step]
    if param is None:  # the model may be left out
        return Case(
            i,
            "missing",
            f"no {_param(path)}",
            _chat(env, body),
            _only(200),
            answer=answer_key(body, video),
        )
    return Case(i, "missing", f"no {_param(path)}", _chat(env, body), _only(400, None), param=param)


# -- unknown

_OPENAI_FIELDS = [
    "tools",
    "tool_choice",
    "functions",
    "logprobs",
    "top_logprobs",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "response_format",
    "top_k",
    "modalities",
    "audio",
    "metadata",
    "store",
    "reasoning_effort",
    "parallel_tool_calls",
]


def _random_name(rng: random.Random) -> str:
    kind = rng.randrange(7)
    if kind == 6:  # long, and longer still once repr escapes it
        return rng.choice(_UNPRINTABLE) + str(rng.randrange(100))
    if kind == 0:
        return rng.choice(_OPENAI_FIELDS)
    if kind == 1:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(1, 12)))
    if kind == 2:
        return "x" * rng.choice([65, 1000, 20_000])
    if kind == 3:
        return rng.choice(["", " ", "\n", '"', "\\", "\u00e9t\u00e9", "\u2603", "\U0001f600"])
    if kind == 4:
        return "MESSAGES" if rng.random() < 0.5 else "Model"
    return "".join(chr(rng.randint(0x20, 0x2FFF)) for _ in range(rng.randint(1, 8)))


def gen_unknown(env: Env, rng: random.Random, i: int) -> Case:
    video = rng.choice(VIDEOS)
    body = chat_body(env, rng, video=video)
    kind = rng.randrange(5)
    if kind <= 1:  # top level, refused by name: the first in sorted order
        from sfllava_ext.serve.protocol import CHAT_FIELDS  # a fuzzed name is none of them

        count = 1 if kind == 0 else rng.choice([2, 9, 50, 20_000])
        names = sorted({_random_name(rng) for _ in range(count)} - set(body) - CHAT_FIELDS)
        if not names:
            names = ["tools"]
        for name in names:
            body[name] = rng.choice(_TYPE_POOL)
        raw = _chat(env, body)
        what = f"{len(names)} unknown field(s), first {names[0][:20]!r}"
        return Case(i, "unknown", what, raw, _only(400, None), param=names[0][:64])
    if kind == 2:  # stream_options holds only include_usage
        body["stream_options"] = {"include_usage": False, _random_name(rng) or "x": 1}
        raw = _chat(env, body)
        return Case(
            i, "unknown", "stream_options.<unknown>", raw, _only(400, None), param="stream_options"
        )
    if kind == 3:  # the tokens route's body takes video_url and model
        name = _random_name(rng)
        tokens = {"video_url": {"url": env.file_url(video)}, name: 1}
        if name in ("video_url", "model"):
            tokens = {"video_url": {"url": env.file_url(video)}, "x": 1}
        raw = env.request("POST", "/v1/video/tokens", dumps(tokens))
        names = sorted(set(tokens) - {"video_url", "model"})
        return Case(i, "unknown", "tokens: <unknown>", raw, _only(400, None), param=names[0][:64])
    # inside a message, a part or video_url: ignored, the answer is the plain one's
    where = rng.choice(["message", "text part", "video part", "video_url"])
    message = body["messages"][0]
    v = _video_index(body)
    node = {
        "message": message,
        "text part": message["content"][1 - v],
        "video part": message["content"][v],
        "video_url": message["content"][v]["video_url"],
    }[where]
    extra = rng.choice(["name", "detail", "uuid", "cache_control", "x"])
    node.setdefault(extra, rng.choice(["high", 1, None, {"type": "ephemeral"}]))
    return Case(
        i,
        "unknown",
        f"{where}.{extra} (ignored)",
        _chat(env, body),
        _only(200),
        answer=answer_key(body, video),
    )


# -- numbers

_NUMBERS = [
    "0",
    "-1",
    "-0",
    "-0.0",
    "1",
    "1.0",
    "1e0",
    "2",
    "3.0",
    "1.5",
    "2.0000001",
    "1e-6",
    "0.00001",
    "1e-400",
    "-1e-320",
    "1e308",
    "1e309",
    "-1e309",
    "1E400",
    "4096",
    "5000",
    "2147483648",
    "9223372036854775808",
    "18446744073709551616",
    "99999999999999999999",
    "-99999999999999999999",
    "100000000000000000000",
    "123456789012345678901234567890",
    "NaN",
    "Infinity",
    "-Infinity",
    "0.5",
    "0.999999",
    "1.0000001",
    "-1e-6",
]


def number_expect(name: str, text: str) -> Expect:
    """What the service answers for ``name`` set to the JSON number ``text`` (or NaN,
    Infinity): the rules of docs/security.md and of the chat schema."""
    if text in ("NaN", "Infinity", "-Infinity"):
        return _only(400, "invalid_json")
    if re.fullmatch(r"-?\d+", text):
        if len(text.lstrip("-")) > 20:
            return _only(400, "invalid_json")
        value: float = int(text)
    else:
        value = float(text)
    integral = isinstance(value, int)
    if name in ("max_tokens", "max_completion_tokens"):
        if not integral or value < 1:
            return _only(400, None)
        return _only(200) if value <= 8 else _only(400, "context_length_exceeded")
    if name == "temperature":
        ok = value == value and abs(value) != float("inf") and 0 <= value <= 2
        return _only(200) if ok else _only(400, None)
    if name == "top_p":
        ok = value == value and 0 < value <= 1
        return _only(200) if ok else _only(400, None)
    return _only(200) if value == 1 else _only(400, None)  # n


def gen_numbers(env: Env, rng: random.Random, i: int) -> Case:
    name = rng.choice(["max_tokens", "max_completion_tokens", "temperature", "top_p", "n"])
    text = rng.choice(_NUMBERS)
    if name.startswith("max_") and re.fullmatch(r"\d+", text) and 8 < int(text) < 4096:
        text = "5000"  # a generation that long would cost seconds; over the context it is not
    video = rng.choice(VIDEOS)
    body = chat_body(env, rng, video=video)
    placeholder = "@@number@@"
    body[name] = placeholder
    raw = dumps(body).replace(f'"{placeholder}"'.encode(), text.encode())
    expect = number_expect(name, text)
    if name == "max_completion_tokens":
        body.pop("max_tokens")
        raw = dumps(body).replace(f'"{placeholder}"'.encode(), text.encode())
    param = name if None in (expect.get(400) or ()) else None
    answer = None
    if 200 in expect:  # the value as the service reads it, for the answer's reference
        body[name] = json.loads(text)
        answer = answer_key(body, video)
    what = f"{name} = {text}"
    return Case(i, "numbers", what, _chat(env, raw), expect, param=param, answer=answer)


# -- nesting


def _nested(depth: int, inner: str, kind: str) -> str:
    if kind == "list":
        return "[" * depth + inner + "]" * depth
    return '{"a":' * depth + inner + "}" * depth


def gen_nesting(env: Env, rng: random.Random, i: int) -> Case:
    depth = rng.choice([1, 5, 20, 29, 30, 31, 32, 33, 34, 40, 100, 999, 1000, 5000, 100_000])
    kind = rng.choice(["list", "dict"])
    inner = rng.choice(["", "0"]) if kind == "list" else "0"
    where = rng.choice(["user", "user", "unknown", "messages", "body", "unterminated"])
    if where == "unterminated":
        raw = ("[" if kind == "list" else '{"a":') * depth
        return Case(
            i,
            "nesting",
            f"{depth} levels, unterminated",
            _chat(env, raw.encode()),
            _only(400, "invalid_json"),
        )
    value = _nested(depth, inner, kind)
    if where == "body":  # a list is not an object; objects of objects are one unknown field
        expect, param = _only(400, "invalid_json"), None
        if kind == "dict" and depth + 1 <= MAX_DEPTH:
            expect, param = _only(400, None), "a"
        raw = _chat(env, value.encode())
        return Case(i, "nesting", f"body of {depth} {kind}s", raw, expect, param=param)
    body = chat_body(env, rng)
    name = {"user": "user", "unknown": "zz_unknown", "messages": "messages"}[where]
    placeholder = "@@nested@@"
    body[name] = placeholder
    raw = dumps(body).replace(f'"{placeholder}"'.encode(), value.encode())
    # levels: the body's object is 1, the field's value 2, ...; a scalar inside counts too
    deepest = 1 + depth + (1 if inner else 0)
    if deepest > MAX_DEPTH:
        expect, param = _only(400, "invalid_json"), None
    elif where == "user":  # a string or null only
        expect, param = _only(400, None), "user"
    elif where == "unknown":
        expect, param = _only(400, None), name
    elif kind == "dict" or (depth == 1 and not inner):  # not a list, or an empty one
        expect, param = _only(400, None), "messages"
    else:  # its one message is not a user message
        expect, param = _only(400, None), "messages[0].role"
    what = f"{where}: {depth} nested {kind}s (deepest level {deepest})"
    return Case(i, "nesting", what, _chat(env, raw), expect, param=param)


# -- values


def gen_values(env: Env, rng: random.Random, i: int) -> Case:
    kind = rng.choice(["many", "many", "commas", "keys", "big text", "over limit", "parts"])
    video = rng.choice(VIDEOS)
    body = chat_body(env, rng, video=video)
    if kind in ("many", "commas"):
        n = rng.choice([1000, 99_900, 100_001, 250_000])
        if kind == "many":  # in a key of the message, which the service ignores
            body["messages"][0]["name"] = [0] * n
        else:
            v = _video_index(body)
            body["messages"][0]["content"][1 - v]["text"] = "," * n
        raw = dumps(body)
        values = sum(raw.count(c) for c in b"[{,:")
        answer = None
        if values > MAX_VALUES:
            expect = _only(400, "invalid_json")
        elif kind == "many":
            expect, answer = _only(200), answer_key(body, video)
        else:  # a comma is a token: the in-process tokenizer decides (the reference)
            expect = {200: None, 400: frozenset({"context_length_exceeded"})}
            answer = answer_key(body, video)
        what = f"{kind}: {n} ({values} counted)"
        return Case(i, "values", what, _chat(env, raw), expect, answer=answer)
    if kind == "keys":
        n = rng.choice([1000, 30_000])
        for k in range(n):
            body[f"k{k:05d}"] = k
        raw = _chat(env, body)
        return Case(i, "values", f"{n} unknown keys", raw, _only(400, None), param="k00000")
    if kind == "big text":  # more than 1 MiB of JSON beside the video, within the body limit
        v = _video_index(body)
        body["messages"][0]["content"][1 - v]["text"] = "word " * rng.choice([220_000, 300_000])
        expect: Expect = {413: frozenset({"request_too_large"}), 503: frozenset({"uploads_busy"})}
        return Case(i, "values", "over 1 MiB of text", _chat(env, body), expect)
    if kind == "over limit":  # declared past the body limit: refused before it is read
        length = rng.choice([BODY_LIMIT + 1, 1 << 30, 10**18])
        head = _chat(env, b"", length=length)
        return Case(
            i,
            "values",
            f"Content-Length {length}",
            head + b'{"messages": [',
            _only(413, "request_too_large"),
            action="stall",
        )
    n = rng.choice([2, 3, 1000])
    v = _video_index(body)
    body["messages"][0]["content"] += [body["messages"][0]["content"][v]] * (n - 1)
    param = f"messages[0].content[{2}].video_url.url"
    what = f"{len(body['messages'][0]['content'])} parts, {n} videos"
    return Case(i, "values", what, _chat(env, body), _only(400, None), param=param)


# -- content types


def gen_content_type(env: Env, rng: random.Random, i: int) -> Case:
    refused = [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; b=x",
        "application/jsonp",
        "application/json-patch+json",
        "application/json, text/plain",
        "",
        "json",
        "application/*",
        "*/*",
        "text/json",
        "application/json5",
    ]
    taken = ["application/json; charset=utf-8", "APPLICATION/JSON", "Application/Json ;x=y"]
    route = rng.choice(["/v1/chat/completions", "/v1/video/tokens", "/v1/models", "/nowhere"])
    video = rng.choice(VIDEOS)
    body = chat_body(env, rng, video=video)
    if route == "/v1/video/tokens":
        body = {"video_url": {"url": env.file_url(video)}}
    if rng.random() < 0.7:
        value = rng.choice(refused)
        headers = [] if value is None else [("Content-Type", value)]
        if rng.random() < 0.2:  # two headers, even both JSON, are refused
            headers = [("Content-Type", "application/json")] * 2
        raw = env.request("POST", route, dumps(body), content_type=False, headers=headers)
        what = f"POST {route}, Content-Type {headers[0][1] if headers else '(none)'}"
        if len(headers) == 2:
            what += " (twice)"
        return Case(i, "content_type", what, raw, _only(415, "unsupported_media_type"))
    value = rng.choice(taken)
    raw = env.request(
        "POST", route, dumps(body), content_type=False, headers=[("Content-Type", value)]
    )
    what = f"POST {route}, Content-Type {value}"
    if route == "/v1/chat/completions":
        return Case(i, "content_type", what, raw, _only(200), answer=answer_key(body, video))
    if route == "/v1/video/tokens":
        return Case(i, "content_type", what, raw, _only(200), answer=("tokens", video))
    return Case(i, "content_type", what, raw, _only(405 if route == "/v1/models" else 404, None))


# -- UTF-8

_BAD_BYTES = [
    b"\xff",
    b"\xfe\xff",
    b"\xc0\xaf",
    b"\xe0\x80\xaf",
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xe2\x82",
    b"\xf4\x90\x80\x80",
    b"\xf8\x88\x80\x80\x80",
    b"caf\xe9",
    b"\x80",
    b"\xc3",
]


def gen_utf8(env: Env, rng: random.Random, i: int) -> Case:
    video = rng.choice(VIDEOS)
    body = chat_body(env, rng, video=video)
    v = _video_index(body)
    placeholder = "@@text@@"
    kind = rng.choice(
        [
            "bytes",
            "bytes",
            "surrogate",
            "key surrogate",
            "pair",
            "bom",
            "utf16",
            "control",
            "escaped nul",
            "url bytes",
        ]
    )
    target = ("messages", 0, "content", 1 - v, "text")
    if kind == "url bytes":
        target = ("messages", 0, "content", v, "video_url", "url")
    node, step = _at(body, target)
    original = node[step]
    node[step] = placeholder
    raw = dumps(body)
    quoted = f'"{placeholder}"'.encode()

    def put(text: bytes) -> bytes:
        return raw.replace(quoted, b'"' + text + b'"')

    if kind in ("bytes", "url bytes"):
        bad = rng.choice(_BAD_BYTES)
        raw = put(original.encode()[: rng.randint(0, 8)] + bad + b"?")
        return Case(i, "utf8", f"{kind}: {bad!r}", _chat(env, raw), _only(400, "invalid_json"))
    if kind in ("surrogate", "key surrogate"):
        lone = rng.choice([r"\ud800", r"\udfff", r"\udc00\ud800", r"\ud83d", r"x\ud800y"])
        if kind == "surrogate":
            raw = put(lone.encode())
        else:
            raw = raw.replace(quoted, json.dumps(original).encode())
            raw = raw[:1] + b'"' + lone.encode() + b'": 1, ' + raw[1:]
        return Case(i, "utf8", f"{kind} {lone}", _chat(env, raw), _only(400, "invalid_json"))
    if kind == "pair":  # a surrogate pair is one character: taken
        node[step] = original + " \U0001f600"
        raw = put(json.dumps(original + " \U0001f600")[1:-1].encode())
        raw = _chat(env, raw)
        return Case(i, "utf8", "a surrogate pair", raw, _only(200), answer=answer_key(body, video))
    if kind == "bom":
        raw = b"\xef\xbb\xbf" + put(json.dumps(original)[1:-1].encode())
        return Case(i, "utf8", "a UTF-8 BOM", _chat(env, raw), _only(400, "invalid_json"))
    if kind == "utf16":
        text = put(json.dumps(original)[1:-1].encode()).decode()
        raw = text.encode(rng.choice(["utf-16", "utf-16-le", "utf-32"]))
        return Case(i, "utf8", "UTF-16/32", _chat(env, raw), _only(400, "invalid_json"))
    if kind == "control":  # a raw control character inside a JSON string
        raw = put(original.encode() + bytes([rng.choice([0, 1, 9, 10, 27, 31])]))
        return Case(i, "utf8", "raw control character", _chat(env, raw), _only(400, "invalid_json"))
    node[step] = original + "\x00"  # escaped: a character like any other
    raw = _chat(env, put(json.dumps(original + "\x00")[1:-1].encode()))
    return Case(i, "utf8", "escaped NUL", raw, _only(200), answer=answer_key(body, video))


# -- bodies cut short


def gen_cut(env: Env, rng: random.Random, i: int) -> Case:
    video = rng.choice(VIDEOS)
    fields = chat_body(env, rng, video=video)
    body = dumps(fields)
    kind = rng.choice(
        [
            "close",
            "close",
            "half close",
            "wait",
            "truncated json",
            "shorter length",
            "chunked cut",
            "chunked",
            "bad length",
        ]
    )
    keep = rng.randint(0, len(body) - 1)
    if kind in ("close", "half close", "wait"):
        raw = _chat(env, body)
        cut = len(raw) - len(body) + keep
        if kind == "close":
            return Case(
                i,
                "cut",
                f"{keep} of {len(body)} bytes, then close",
                raw,
                {NO_ANSWER: None, 400: frozenset({None})},
                action="abandon",
                cut=cut,
                reset=rng.random() < 0.3,
            )
        if kind == "half close":  # the server sees the close: its 400 goes nowhere
            return Case(
                i,
                "cut",
                f"{keep} of {len(body)} bytes, then half-close",
                raw,
                {NO_ANSWER: None},
                action="half_close",
                cut=cut,
                close_within=CLOSE_WITHIN_S,
            )
        return Case(
            i,
            "cut",
            f"{keep} of {len(body)} bytes, then silence",
            raw,
            _only(408, "request_timeout"),
            action="stall",
            cut=cut,
        )
    if kind == "truncated json":
        raw = _chat(env, body[:keep])
        return Case(i, "cut", f"JSON cut at {keep}", raw, _only(400, "invalid_json"))
    if kind == "shorter length":  # the server reads what was declared
        raw = _chat(env, body, length=keep)
        return Case(
            i, "cut", f"Content-Length {keep} of {len(body)}", raw, _only(400, "invalid_json")
        )
    if kind in ("chunked", "chunked cut"):
        size = rng.randint(1, 64)
        chunks = b"".join(
            f"{len(body[k : k + size]):x}\r\n".encode() + body[k : k + size] + b"\r\n"
            for k in range(0, len(body), size)
        )
        headers = [("Transfer-Encoding", "chunked")]
        head = env.request("POST", "/v1/chat/completions", None, headers=headers)
        if kind == "chunked":
            return Case(
                i,
                "cut",
                f"chunked by {size}",
                head + chunks + b"0\r\n\r\n",
                _only(200),
                answer=answer_key(fields, video),
            )
        cut = len(head) + rng.randint(0, len(chunks))
        return Case(
            i,
            "cut",
            f"chunked, cut at {cut - len(head)}",
            head + chunks,
            {NO_ANSWER: None, 400: frozenset({None})},
            action="abandon",
            cut=cut,
        )
    value = rng.choice(["-1", "abc", "1e3", "0x10", "", "1, 2", "99999999999999999999999"])
    head = env.request("POST", "/v1/chat/completions", None, headers=[("Content-Length", value)])
    expect: Expect = {400: frozenset({PLAIN})}  # not HTTP: h11 refuses it
    if value.isdigit():  # over the body limit, where h11 takes the number
        expect = {400: frozenset({PLAIN}), 413: frozenset({"request_too_large"})}
    return Case(i, "cut", f"Content-Length {value!r}", head + body, expect)


# -- slow senders


def gen_slow(env: Env, rng: random.Random, i: int) -> Case:
    body = dumps(chat_body(env, rng))
    kind = rng.choice(["drip", "drip", "stall", "stall head", "slow head", "silent"])
    if kind == "drip":  # a few bytes at a time: behind 64 KiB/s once the grace is over
        raw = _chat(env, body + b" " * 200_000)  # long enough to outlast the grace
        cut = len(raw) - len(body) - 200_000 + rng.randint(0, 40)
        return Case(
            i,
            "slow",
            f"drip from byte {cut}",
            raw,
            _only(408, "request_timeout"),
            action="drip",
            cut=cut,
        )
    if kind == "stall":
        raw = _chat(env, body)
        cut = len(raw) - len(body) + rng.randint(0, len(body) - 1)
        return Case(
            i, "slow", "body stalls", raw, _only(408, "request_timeout"), action="stall", cut=cut
        )
    raw = _chat(env, body)
    head = len(raw) - len(body)
    if kind == "stall head":  # the head never ends: the connection is closed
        return Case(
            i,
            "slow",
            "head stalls",
            raw,
            {NO_ANSWER: None},
            action="stall",
            cut=rng.randint(0, head - 3),
            close_within=CLOSE_WITHIN_S,
        )
    if kind == "slow head":
        return Case(
            i,
            "slow",
            "head dripped",
            raw,
            {NO_ANSWER: None},
            action="slow_head",
            cut=rng.randint(0, 20),
            close_within=CLOSE_WITHIN_S,
        )
    return Case(
        i,
        "slow",
        "connects, sends nothing",
        raw,
        {NO_ANSWER: None},
        action="stall",
        cut=0,
        close_within=CLOSE_WITHIN_S,
    )


# -- disconnects


def gen_disconnect(env: Env, rng: random.Random, i: int) -> Case:
    kind = rng.choice(["mid body", "after body", "mid stream", "mid stream", "after head"])
    video = rng.choice(VIDEOS)
    body = chat_body(
        env, rng, video=video, stream=kind == "mid stream", max_tokens=rng.randint(2, 8)
    )
    raw = _chat(env, body)
    if kind == "mid stream":  # the first event, then gone: the generation stops
        return Case(
            i,
            "disconnect",
            "after the first event of a stream",
            raw,
            _only(200),
            action="first_event",
            stream=True,
        )
    cut = {
        "mid body": len(raw) - rng.randint(1, len(dumps(body))),
        "after body": len(raw),
        "after head": len(raw) - len(dumps(body)),
    }[kind]
    return Case(
        i,
        "disconnect",
        f"leaves {kind}",
        raw,
        {NO_ANSWER: None},
        action="abandon",
        cut=cut,
        reset=rng.random() < 0.5,
    )


# -- the API key


def gen_auth(env: Env, rng: random.Random, i: int) -> Case:
    key = env.key
    wrong = [
        None,
        key[:-1],
        key + "x",
        key.upper(),
        " " * 3,
        "",
        key[1:],
        key[::-1],
        "x" * 8000,
        key + "\x7f",
        "\u00e9" + key,
        key + " x",
    ]
    kind = rng.randrange(6)
    if kind == 0:
        value = rng.choice(wrong)
        headers = [] if value is None else [("Authorization", f"Bearer {value}")]
    elif kind == 1:
        scheme = rng.choice(["Basic", "Token", "Bearer:", "Bearerx", "", "Digest"])
        headers = [("Authorization", f"{scheme} {key}".strip())]
    elif kind == 2:  # two headers, even both right, are refused
        other = rng.choice([key, key + "x"])
        headers = [("Authorization", f"Bearer {key}"), ("Authorization", f"Bearer {other}")]
    elif kind == 3:
        headers = [("Authorization", b"Bearer " + key.encode() + rng.choice([b"\xe9", b"\xff"]))]
    elif kind == 4:  # taken: the scheme in any case, spaces around the key
        scheme = rng.choice(["bearer", "BEARER", "BeArEr"])
        headers = [("Authorization", f"{scheme}  {key} ")]
    else:
        headers = [("X-Api-Key", key)]
    route = rng.choice(["/v1/chat/completions", "/v1/video/tokens", "/v1/models"])
    video = rng.choice(VIDEOS)
    if route == "/v1/models":
        raw = env.request("GET", route, key=False, headers=headers)
        method = "GET"
    else:
        body = chat_body(env, rng, video=video)
        if route == "/v1/video/tokens":
            body = {"video_url": {"url": env.file_url(video)}}
        if rng.random() < 0.3 and kind != 4:
            body = {"not": "checked before the key"}
        raw = env.request("POST", route, dumps(body), key=False, headers=headers)
        method = "POST"
    what = f"{route}: {[(n, repr(v)[:40]) for n, v in headers]}"
    if kind != 4:
        return Case(i, "auth", what, raw, _only(401, "invalid_api_key"), method=method)
    answer = {"/v1/models": ("models",), "/v1/video/tokens": ("tokens", video)}.get(route)
    if route == "/v1/chat/completions":
        answer = answer_key(body, video)
    return Case(i, "auth", what, raw, _only(200), answer=answer, method=method)


# -- Host


def gen_host(env: Env, rng: random.Random, i: int) -> Case:
    kind = rng.randrange(4)
    if kind == 0:  # with the key, any Host is served
        value = rng.choice(
            [
                "evil.example",
                "localhost",
                "[::1]:80",
                "127.0.0.1:1",
                "a" * 300,
                "x:y:z",
                "",
                "evil.example:notaport",
            ]
        )
        raw = env.request("GET", "/v1/models", host=False, headers=[("Host", value)])
        return Case(
            i, "host", f"Host {value[:30]!r}", raw, _only(200), answer=("models",), method="GET"
        )
    if kind == 1:  # HTTP/1.1 needs one Host: h11 answers in plain text
        headers = [] if rng.random() < 0.5 else [("Host", "a"), ("Host", "b")]
        raw = env.request("GET", "/v1/models", host=False, headers=headers)
        what = "no Host" if not headers else "two Hosts"
        return Case(i, "host", what, raw, {400: frozenset({PLAIN})}, method="GET")
    if kind == 2:  # HTTP/1.0 needs none
        raw = env.request("GET", "/v1/models", host=False, version="HTTP/1.0")
        return Case(
            i, "host", "HTTP/1.0, no Host", raw, _only(200), answer=("models",), method="GET"
        )
    raw = env.request(
        "GET",
        "/health",
        host=False,
        key=False,
        headers=[("Host", rng.choice(["evil.example", "0.0.0.0", "[::]"]))],
    )
    return Case(
        i, "host", "/health, another Host", raw, _only(200), answer=("health",), method="GET"
    )


# -- routes and methods


def gen_routes(env: Env, rng: random.Random, i: int) -> Case:
    known = {
        "/v1/chat/completions": "POST",
        "/v1/video/tokens": "POST",
        "/v1/models": "GET",
        "/health": "GET",
    }
    kind = rng.randrange(4)
    if kind == 0:
        path = rng.choice(
            [
                "/",
                "/v1",
                "/v1/",
                "/v1/completions",
                "/v1/embeddings",
                "/docs",
                "/openapi.json",
                "/redoc",
                "/v1/chat/completions/x",
                "/V1/models",
                "/v1//models",
                "/v1/models/../x",
                "/%2e%2e/etc/passwd",
                "/health/x",
                "/" + "a" * 2000,
                "/v1/models%00",
                "/v1/chat/completions/",
                "/v1/models/",
                "/health/",
                "/v1/video/tokens/",
            ]
        )
        method = rng.choice(["GET", "POST"])
        body = dumps(chat_body(env, rng)) if method == "POST" else None
        raw = env.request(method, path, body)
        return Case(i, "routes", f"{method} {path[:40]}", raw, _only(404, None), method=method)
    if kind == 1:
        path = rng.choice(list(known))
        method = rng.choice(["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO", "GET", "POST"])
        if method == known[path] or (path == "/health" and method == "POST"):
            method = "DELETE"
        body = dumps(chat_body(env, rng)) if method in ("PUT", "PATCH") else None
        raw = env.request(method, path, body)
        return Case(i, "routes", f"{method} {path}", raw, _only(405, None), method=method)
    if kind == 2:  # HEAD of a GET route: the route's status, no body
        path = rng.choice(["/v1/models", "/health", "/nowhere"])
        raw = env.request("HEAD", path)
        status = {"/v1/models": 405, "/health": 200, "/nowhere": 404}[path]
        expect = _only(status) if status == 200 else _only(status, None)
        return Case(i, "routes", f"HEAD {path}", raw, expect, method="HEAD")
    # odd request targets: h11 takes each; only a path (a query and a fragment after it)
    # names a route, so the absolute form is a 404 too
    target = rng.choice(["*", "http://127.0.0.1/health", "health", "//health", "/health?x=1#y"])
    raw = env.request("GET", target, key=False)
    if target == "/health?x=1#y":
        return Case(i, "routes", f"GET {target}", raw, _only(200), answer=("health",), method="GET")
    return Case(i, "routes", f"GET {target}", raw, _only(404, None), method="GET")


# -- URLs


def gen_urls(env: Env, rng: random.Random, i: int) -> Case:
    kind = rng.randrange(10)
    route = rng.choice(["chat", "chat", "tokens"])

    def with_url(url: str) -> bytes:
        if route == "tokens":
            return env.request("POST", "/v1/video/tokens", dumps({"video_url": {"url": url}}))
        body = chat_body(env, rng)
        body["messages"][0]["content"][_video_index(body)]["video_url"]["url"] = url
        return _chat(env, body)

    param = "video_url.url" if route == "tokens" else None

    def case(what: str, url: str, expect: Expect, field: bool = False) -> Case:
        p = param
        if route == "chat" and field:
            p = "__video__"
        return Case(i, "urls", f"{route}: {what}", with_url(url), expect, param=p)

    media = env.media
    if kind == 0:  # outside the media dir: 403 whether or not it exists
        path = rng.choice(
            [
                "/etc/passwd",
                "/etc/shadow",
                "/proc/self/environ",
                "/nonexistent/x.mp4",
                f"{media}/../outside/secret.mp4",
                f"{media}/../../etc/passwd",
                f"{media}/link.mp4",
                f"{media}/%2e%2e/outside/secret.mp4",
                f"{media}x/a.mp4",
                "/",
                f"{env.outside}",
                f"{media}/sub/../../outside/secret.mp4",
                "//etc/passwd",
            ]
        )
        return case(path, f"file://{path}", _only(403, "outside_media_dir"))
    if kind == 1:  # no such file: a path under a regular file, or a name too long, neither
        name = rng.choice(
            ["missing.mp4", "sub/missing.mp4", "A.MP4", "a.mp4.", "%61.mp5", "a.mp4/x"]
            + ["a.mp4/", "notes.txt/a.mp4", "x" * 5000, "sub/" + "y" * 300]
        )
        return case(name[:40], env.file_url(name), _only(404, "file_not_found"))
    if kind == 2:
        name = rng.choice(["", "sub", "fifo", "sub/", "."])
        return case(f"{name!r}", env.file_url(name), _only(400, "not_a_file"))
    if kind == 3:
        url = rng.choice(
            [
                "http://127.0.0.1/a.mp4",
                "https://example.com/v.mp4",
                "ftp://x/y",
                "gopher://x",
                "s3://bucket/key",
                "javascript:alert(1)",
                "a.mp4",
                "/etc/passwd",
                "C:\\x.mp4",
                "blob:x",
                "rtsp://127.0.0.1/x",
                "\u0000",
                "x" * 5000,
                "FTP://X",
                ":",
            ]
        )
        return case(url[:30], url, _only(400, "unsupported_url"), field=True)
    if kind == 4:  # valid base64 of bytes that are not a video
        junk = rng.choice(
            [
                b"hello",
                bytes(rng.randrange(256) for _ in range(2000)),
                b"\x00" * 64,
                b"RIFF\x00\x00\x00\x00AVI LIST",
                b"\x00\x00\x00\x18ftypmp42",
            ]
        )
        url = "data:video/mp4;base64," + base64.b64encode(junk).decode()
        return case(
            "data: URL of junk", url, _only(400, "invalid_video", "unsupported_format"), field=True
        )
    if kind == 5:  # not base64, or not a video's data: URL
        url = rng.choice(
            [
                "data:video/mp4;base64,@@@@",
                "data:video/mp4;base64,",
                "data:video/mp4,abcd",
                "data:image/png;base64,AAAA",
                "data:;base64,AAAA",
                "data:video/mp4;base64,AAA",
                "data:video/mp4;base64,A===",
                "data:",
                "data:video/mp4;base64,AA==AA==",
            ]
        )
        return case(url, url, _only(400, None), field=True)
    if kind == 6:  # files in the media dir that are not videos we take
        name, expect = rng.choice(
            [
                ("notes.txt", _only(400, "invalid_video", "unsupported_format")),
                ("list.m3u8", _only(400, "unsupported_format", "invalid_video")),
                ("empty.mp4", _only(400, None, "invalid_video")),
            ]
        )
        if name == "empty.mp4":
            return case(name, env.file_url(name), expect, field=True)
        return case(name, env.file_url(name), expect, field=True)
    if kind == 7:  # a file:// URL of the wrong shape (a host, a malformed one)
        url = rng.choice(
            [
                *_MALFORMED_HOSTS,
                "file://evil.example/etc/passwd",
                "file:relative.mp4",
                "file:a.mp4",
                "file:",
                f"file://{media}/a.mp4%00.txt",
                f"file://{media}/%ff.mp4",
            ]
        )
        return case(url, url, _only(400, None), field=True)
    if kind == 9:  # over --max-video-mb, within the body limit
        if rng.random() < 0.5:
            return case("big.mp4", env.file_url("big.mp4"), _only(413, "video_too_large"), True)
        data = rng.randbytes((MAX_VIDEO_MB << 20) + 3000)
        url = "data:video/mp4;base64," + base64.b64encode(data).decode()
        # a body over 1 MiB takes one of --max-uploads slots: 503 when both are taken
        expect = {413: frozenset({"video_too_large"}), 503: frozenset({"uploads_busy"})}
        return case("data: URL over --max-video-mb", url, expect, field=True)
    if env.root:  # root reads a file of mode 000
        return case(
            "unreadable (as root)",
            env.file_url("unreadable.mp4"),
            _only(400, "invalid_video", "unsupported_format"),
            field=True,
        )
    return case("unreadable", env.file_url("unreadable.mp4"), _only(403, "unreadable"))


#: file:// URLs whose host urllib cannot parse (it raised ValueError: a 500, once)
_MALFORMED_HOSTS = ["file://[::1/a.mp4", "file://a]b/x", "file://[zz]/a.mp4", "file://[/a"]


# -- random bytes


def gen_random(env: Env, rng: random.Random, i: int) -> Case:
    kind = rng.randrange(3)
    size = rng.choice([1, 16, 300, 5000])
    noise = bytes(rng.randrange(256) for _ in range(size))
    if kind == 0:
        return Case(
            i,
            "random",
            f"{size} random bytes as a body",
            _chat(env, noise),
            _only(400, "invalid_json"),
        )
    if kind == 1:
        text = "".join(rng.choice('{}[]":,0123456789.eE-truefalsenull \\u') for _ in range(size))
        return Case(
            i,
            "random",
            f"{size} JSON-ish characters",
            _chat(env, text.encode()),
            _only(400, "invalid_json"),
        )
    if rng.random() < 0.5:
        noise = (
            rng.choice(
                [
                    b"GET",
                    b"POST / HTTP/9.9\r\n\r\n",
                    b"\x16\x03\x01\x02\x00\x01",
                    b"GET /health HTTP/1.1\r\nHost: x\r\nX: \x00\r\n\r\n",
                    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                ]
            )
            + noise
        )
    # mostly not HTTP (uvicorn's plain 400, or the connection closed); where h11 finds a
    # request in the noise, the service answers it as any other
    # (a head it cannot finish is closed after --read-timeout-s: no 120 s wait)
    expect: Expect = {status: None for status in (200, 401, 404, 405, 408, 415)}
    expect[400], expect[NO_ANSWER] = frozenset({PLAIN}), None
    raw = noise + b"\r\n\r\n"
    return Case(
        i,
        "random",
        f"{size} random bytes as a request",
        raw,
        expect,
        method="GET",
        close_within=CLOSE_WITHIN_S,
        timeout=CLOSE_WITHIN_S + 2,
    )


# -- mutations of a valid request


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, 1, -1, 2**31, 2**63, 10**19, rng.randint(-1000, 1000)])
    if kind == 3:
        return rng.choice([0.0, 0.5, -0.5, 1e-9, 1e300, rng.uniform(-3, 3)])
    if kind in (4, 5):
        return rng.choice(
            [
                "",
                "user",
                "text",
                "video_url",
                "x" * rng.randint(1, 100),
                "file:///etc/passwd",
                rng.choice(_MALFORMED_HOSTS),
                rng.choice(_UNPRINTABLE),
                MODEL_ID,
                "\u2603",
            ]
        )
    if kind in (6, 7):
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {_random_name(rng)[:10]: _random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _containers(value: Any, path: tuple = ()) -> list[tuple]:
    out = [path] if isinstance(value, (dict, list)) else []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for k, v in items:
        out += _containers(v, (*path, k))
    return out


def gen_mutation(env: Env, rng: random.Random, i: int) -> Case:
    body = chat_body(env, rng, stream=rng.random() < 0.2)
    body.update({k: v for k, v in [("model", MODEL_ID), ("temperature", 0)] if rng.random() < 0.5})
    done = []
    if rng.random() < 0.2:  # a video URL the service must refuse cleanly
        url = rng.choice(
            [*_MALFORMED_HOSTS, env.file_url("a.mp4/x"), env.file_url("big.mp4"), "file:"]
        )
        body["messages"][0]["content"][_video_index(body)]["video_url"]["url"] = url
        done.append(f"url = {url[-30:]}")
    for _ in range(rng.randint(1, 4)):
        path = rng.choice(_containers(body))
        node = body
        for step in path:
            node = node[step]
        op = rng.randrange(5)
        if isinstance(node, dict) and node and op == 0:
            key = rng.choice(sorted(node))
            del node[key]
            done.append(f"del {_param((*path, key))}")
        elif isinstance(node, dict) and node and op in (1, 2):
            key = rng.choice(sorted(node))
            node[key] = _random_value(rng)
            done.append(f"set {_param((*path, key))}")
        elif isinstance(node, dict) and op == 3:
            key = _random_name(rng)[:20]
            node[key] = _random_value(rng)
            done.append(f"add {_param((*path, key))}")
        elif isinstance(node, list) and node and op in (0, 1):
            k = rng.randrange(len(node))
            del node[k]
            done.append(f"del {_param((*path, k))}")
        elif isinstance(node, list):
            node.insert(rng.randint(0, len(node)), _random_value(rng))
            done.append(f"insert into {_param(path) or 'body'}")
    # a bounded cost: never the default of 256 tokens, nor a long generation
    tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if tokens is None or (isinstance(tokens, int) and 8 < tokens < 4096):
        body["max_tokens" if "max_completion_tokens" not in body else "max_completion_tokens"] = 3
        done.append("max_tokens = 3")
    stream = body.get("stream") is True
    expect: Expect = {200: None, 400: None, 403: None, 404: None, 413: None}
    what = "; ".join(done)
    return Case(i, "mutation", what, _chat(env, body), expect, stream=stream)


# -- a server without a key: the Host check (DNS rebinding)


def gen_keyless(env: Env, rng: random.Random, i: int) -> Case:
    """A request to the second server, which has no key: a ``Host`` that names its bind
    address or localhost is served, any other is refused (403 ``host_not_allowed``),
    ``/health`` included."""
    port = env.port
    allowed = ["127.0.0.1", f"127.0.0.1:{port}", "localhost", f"LOCALHOST:{port}", "[::1]:1"]
    refused = [
        "evil.example",
        f"evil.example:{port}",
        "127.0.0.1.evil.example",
        "localhost.evil.example:80",
        "0.0.0.0",
        "[::]",
        "",
        "127.0.0.2",
        "[::1]evil.example",
        "localhost:evil",
    ]
    ok = rng.random() < 0.4
    host = rng.choice(allowed if ok else refused)
    route = rng.choice(["/v1/models", "/health", "/v1/chat/completions", "/v1/video/tokens"])
    video = rng.choice(VIDEOS)
    method, body, answer = "GET", None, ("models",)
    if route == "/health":
        answer = ("health",)
    elif route == "/v1/chat/completions":
        fields = chat_body(env, rng, video=video)
        method, body, answer = "POST", dumps(fields), answer_key(fields, video)
    elif route == "/v1/video/tokens":
        method, answer = "POST", ("tokens", video)
        body = dumps({"video_url": {"url": env.file_url(video)}})
    raw = env.request(method, route, body, key=False, host=False, headers=[("Host", host)])
    what = f"{method} {route}, Host {host!r}"
    if ok:
        return Case(i, "keyless", what, raw, _only(200), answer=answer, method=method)
    return Case(i, "keyless", what, raw, _only(403, "host_not_allowed"), method=method)


GENERATORS: dict[str, Callable[[Env, random.Random, int], Case]] = {
    "valid": gen_valid,
    "types": gen_types,
    "missing": gen_missing,
    "unknown": gen_unknown,
    "numbers": gen_numbers,
    "nesting": gen_nesting,
    "values": gen_values,
    "content_type": gen_content_type,
    "utf8": gen_utf8,
    "cut": gen_cut,
    "slow": gen_slow,
    "disconnect": gen_disconnect,
    "auth": gen_auth,
    "host": gen_host,
    "routes": gen_routes,
    "urls": gen_urls,
    "random": gen_random,
    "mutation": gen_mutation,
    "keyless": gen_keyless,
}


def make_case(env: Env, seed: int, index: int, family: str | None = None) -> Case:
    """Request ``index`` of the run seeded ``seed`` (of ``family``, else the schedule's)."""
    family = family or SCHEDULE[index % len(SCHEDULE)]
    case = GENERATORS[family](env, random.Random(f"{seed}:{family}:{index}"), index)
    if case.param == "__video__":  # the chat body's video field, wherever its part sits
        parts = json.loads(case.request.split(b"\r\n\r\n", 1)[1])["messages"][0]["content"]
        case.param = f"messages[0].content[{_video_index({'messages': [{'content': parts}]})}]"
        case.param += ".video_url.url"
    return case


# ----------------------------------------------------------------------- the exchanges


def _read(sock: socket.socket, method: str, timeout: float) -> Outcome:
    sock.settimeout(timeout)
    response = http.client.HTTPResponse(sock, method=method)
    try:
        response.begin()
    except http.client.RemoteDisconnected:
        return Outcome(error="closed")
    except ConnectionResetError:
        return Outcome(error="reset")
    except TimeoutError:
        return Outcome(error="timeout")
    except (http.client.HTTPException, OSError) as exc:
        return Outcome(error=f"bad response ({type(exc).__name__})")
    out = Outcome(status=response.status, headers={k.lower(): v for k, v in response.getheaders()})
    try:
        out.body = response.read()
    except http.client.IncompleteRead as exc:
        out.body, out.error = exc.partial, "incomplete"
    except ConnectionResetError:
        out.error = "reset"
    except TimeoutError:
        out.error = "timeout"
    return out


def exchange(case: Case, port: int, timeout: float | None = None) -> Outcome:
    """Sends ``case`` as its action says and reads what comes back (waiting at most
    ``timeout``, else the case's own)."""
    timeout = case.timeout if timeout is None else timeout
    start = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        out = _act(case, sock, timeout)
    finally:
        sock.close()
    out.seconds = time.perf_counter() - start
    return out


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
        return True
    except OSError:  # the server closed (an answer may wait to be read)
        return False


def _act(case: Case, sock: socket.socket, timeout: float) -> Outcome:
    raw, cut = case.request, case.cut if case.cut is not None else len(case.request)
    method = case.method
    if case.action == "send":
        _send(sock, raw)
        return _read(sock, method, timeout)
    if case.action == "abandon":
        _send(sock, raw[:cut])
        if case.reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return Outcome(error="abandoned")
    if case.action == "half_close":
        _send(sock, raw[:cut])
        sock.shutdown(socket.SHUT_WR)
        return _read(sock, method, READ_TIMEOUT_S * 4 + 10)
    if case.action == "stall":
        _send(sock, raw[:cut])
        return _read(sock, method, READ_TIMEOUT_S * 4 + 10)
    if case.action in ("drip", "slow_head"):
        _send(sock, raw[:cut])
        step, pause = (3, 0.2) if case.action == "drip" else (1, 0.3)
        deadline = time.monotonic() + READ_TIMEOUT_S * 6 + 10
        at = cut
        while at < len(raw) and time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], pause)
            if readable or not _send(sock, raw[at : at + step]):
                break
            at += step
        return _read(sock, method, READ_TIMEOUT_S * 4 + 10)
    if case.action == "first_event":
        _send(sock, raw)
        sock.settimeout(timeout)
        response = http.client.HTTPResponse(sock, method=method)
        try:
            response.begin()
            out = Outcome(response.status, {k.lower(): v for k, v in response.getheaders()})
            if response.status == 200:
                while not out.body.endswith(b"\n\n"):
                    line = response.readline()
                    if not line:
                        break
                    out.body += line
            else:
                out.body = response.read()
        except (http.client.HTTPException, OSError) as exc:
            return Outcome(error=f"closed ({type(exc).__name__})")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return out
    raise ValueError(f"unknown action {case.action}")


# ------------------------------------------------------------------------- the checks

_LEAKS = ("Traceback", 'File "', ".py", "site-packages", "/proc/", "sfllava-serve-", "\n  ")


def _error_of(body: bytes) -> tuple[dict | None, str | None]:
    """An OpenAI-style error body's ``error`` object, or why the body is not one."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, "the body is not JSON"
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict) or set(data) != {"error"}:
        return None, "the body is not {'error': {...}}"
    if not isinstance(error.get("message"), str) or not error["message"]:
        return None, "error.message is not a string"
    if not isinstance(error.get("type"), str):
        return None, "error.type is not a string"
    for key in ("param", "code"):
        if key not in error or not isinstance(error[key], (str, type(None))):
            return None, f"error.{key} is missing or not a string or null"
    return error, None


def _sse_events(body: bytes) -> list[str]:
    return [e[len("data: ") :] for e in body.decode().split("\n\n") if e.startswith("data: ")]


def _route(case: Case) -> str | None:
    """The route a request names (its request line's path), or None where its bytes
    hold no request line."""
    match = re.match(rb"([A-Z]+) (\S+) HTTP/1\.[01]\r\n", case.request)
    if match is None:
        return None
    return match.group(2).decode("latin-1").split("?", 1)[0].split("#", 1)[0]


def _narrowed(case: Case, answers: dict[tuple, Any] | None) -> Expect:
    """The statuses allowed, where the reference decides between them: a prompt past
    the context is refused (``context_length_exceeded``), one within it is answered."""
    if case.answer is None or answers is None or case.answer not in answers:
        return case.expect
    refusal = answers[case.answer].get("refused") if case.answer[0] == "chat" else None
    if refusal is not None:
        return {400: frozenset({refusal})}
    if case.expect.get(400) == frozenset({"context_length_exceeded"}):
        return {s: c for s, c in case.expect.items() if s != 400}
    return case.expect


def check(
    case: Case,
    out: Outcome,
    documented: dict[int, set],
    answers: dict[tuple, Any] | None = None,
    forbidden: tuple[str, ...] = (),
) -> list[str]:
    """Why ``out`` is a violation for ``case`` (an empty list: it is not)."""
    problems: list[str] = []
    expect = _narrowed(case, answers)
    if out.status is None:
        if NO_ANSWER not in expect:
            problems.append(f"no answer where one was due ({out.error})")
        elif out.error not in NO_ANSWER_ERRORS or (
            out.error == "abandoned" and case.action != "abandon"
        ):
            problems.append(f"no answer, and not a close ({out.error})")
        elif case.close_within is not None and out.seconds > case.close_within:
            problems.append(f"closed after {out.seconds:.1f} s, not within {case.close_within} s")
        return problems
    if out.error is not None and case.action != "first_event":
        problems.append(f"the answer was cut short ({out.error})")
    status = out.status
    if status >= 500 and status != 503:
        problems.append(f"status {status}")
    if status not in expect:
        allowed = sorted(s for s in expect if s is not None)
        problems.append(f"status {status}, not one of {allowed}")
    if status not in documented:
        problems.append(f"status {status} is not in docs/security.md")
    if case.method == "HEAD":  # no body to check
        return problems
    if status >= 300:
        error, shape = _error_of(out.body)
        code: Any
        if error is None:  # uvicorn's plain text only where the case names it
            if PLAIN not in (expect.get(status) or ()) or out.body.startswith(b"{"):
                problems.append(shape or "not an OpenAI error")
                return problems
            code = PLAIN
        else:
            code = error["code"]
            message = error["message"]
            if len(message) > MESSAGE_LIMIT:
                problems.append(f"a message of {len(message)} characters")
            for leak in (*_LEAKS, *forbidden):
                if leak and leak in message:
                    problems.append(f"the message holds {leak!r}")
        allowed_codes = expect.get(status)
        if code not in documented.get(status, ()):
            problems.append(f"({status}, {code}) is not in docs/security.md")
        elif allowed_codes is not None and code not in allowed_codes:
            problems.append(f"code {code!r}, not one of {sorted(map(str, allowed_codes))}")
        if error is not None and status == 400 and code is None:
            if error["param"] is None:
                problems.append("a field's error names no param")
            elif case.param is not None and error["param"] != case.param:
                problems.append(f"param {error['param']!r}, not {case.param!r}")
        return problems
    if status == 200:
        problems += _check_200(case, out, documented, answers)
    return problems


def _check_200(
    case: Case, out: Outcome, documented: dict[int, set], answers: dict | None
) -> list[str]:
    """A 200's shape for its route, and where the case has a reference, its content."""
    route = _route(case)
    streamed = out.headers.get("content-type", "").startswith("text/event-stream")
    if route == "/v1/chat/completions" and case.method == "POST":
        if case.stream != streamed and case.family != "random":
            return ["a stream where a whole answer was due" if streamed else "no stream"]
        if streamed:
            return _check_stream(case, out, documented, answers)
    ref = None
    if case.answer is not None and answers is not None:
        ref = answers.get(case.answer)
    try:
        if route == "/v1/chat/completions" and case.method == "POST":
            return _check_completion(json.loads(out.body), ref)
        if route == "/v1/video/tokens" and case.method == "POST":
            return _check_tokens(out, ref)
        if route == "/v1/models":
            ids = [m["id"] for m in json.loads(out.body)["data"]]
            return [] if ids == [MODEL_ID] else [f"models {ids}"]
        if route == "/health" and case.method == "GET":
            return [] if json.loads(out.body).get("status") == "ok" else ["health not ok"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return [f"an answer of another shape ({type(exc).__name__})"]
    if route is None:
        return []
    return [f"a 200 from {route[:40]!r}, which is no route"]


def _check_completion(data: dict, ref: dict | None) -> list[str]:
    """OpenAI's ``chat.completion``, and its text, finish and usage against ``ref``."""
    choice = data["choices"][0]
    message, usage = choice["message"], data["usage"]
    if (
        data["object"] != "chat.completion"
        or data["model"] != MODEL_ID
        or len(data["choices"]) != 1
        or message["role"] != "assistant"
        or not isinstance(message["content"], str)
        or choice["finish_reason"] not in ("stop", "length")
        or usage["total_tokens"] != usage["prompt_tokens"] + usage["completion_tokens"]
    ):
        return [f"not a chat.completion: {json.dumps(data)[:200]}"]
    got = {
        "text": message["content"],
        "finish_reason": choice["finish_reason"],
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
    }
    return _compare(got, ref)


def _compare(got: dict, ref: dict | None) -> list[str]:
    """What of an answer differs from the in-process reference (a sampled answer: its
    prompt, and no more tokens than asked for)."""
    if ref is None:
        return []
    if "refused" in ref:
        return [f"answered, in-process refused ({ref['refused']})"]
    if ref.get("sampled"):
        problems = []
        if got["prompt_tokens"] != ref["prompt_tokens"]:
            problems.append(
                f"prompt_tokens {got['prompt_tokens']}, in-process {ref['prompt_tokens']}"
            )
        if not 1 <= got["completion_tokens"] <= ref["max_tokens"]:
            problems.append(f"completion_tokens {got['completion_tokens']} past max_tokens")
        return problems
    problems = []
    if got["text"] != ref["text"]:
        problems.append(f"answered {got['text']!r}, in-process {ref['text']!r}")
    for key in ("finish_reason", "prompt_tokens", "completion_tokens"):
        if key in got and got[key] != ref[key]:
            problems.append(f"{key} {got[key]!r}, in-process {ref[key]!r}")
    return problems


def _check_tokens(out: Outcome, ref: Any) -> list[str]:
    from safetensors.torch import load

    got = load(out.body)["tokens"]
    sha = out.headers.get("x-video-sha256", "")
    if not re.fullmatch(r"[0-9a-f]{64}", sha) or got.ndim != 2:
        return [f"not visual tokens: {tuple(got.shape)}, X-Video-SHA256 {sha[:70]!r}"]
    if ref is None:
        return []
    want_sha, want_tokens = ref
    if sha != want_sha:
        return ["another X-Video-SHA256"]
    same = got.shape == want_tokens.shape and bool((got == want_tokens).all())
    return [] if same else ["other visual tokens than in-process"]


def _check_stream(
    case: Case, out: Outcome, documented: dict[int, set], answers: dict | None
) -> list[str]:
    try:
        events = _sse_events(out.body)
    except UnicodeDecodeError:
        return ["a stream that is not UTF-8"]
    if case.action == "first_event":
        return [] if events else ["no first event"]
    if not events or events[-1] != "[DONE]":
        return ["a stream that does not end with [DONE]"]
    codes = set().union(*documented.values()) - {None, PLAIN, "internal_error"}
    ref = answers.get(case.answer) if case.answer is not None and answers else None
    text, usage, finish, failed = "", None, None, None
    for event in events[:-1]:
        data = json.loads(event)
        if "error" in data:  # after the first event: in the stream, then [DONE]
            error, shape = _error_of(event.encode())
            if shape is not None:
                return [f"an error event of another shape: {shape}"]
            if error["code"] not in codes:
                return [f"an error event whose code {error['code']!r} is not in the table"]
            failed = error
            continue
        if data.get("object") != "chat.completion.chunk" or data.get("model") != MODEL_ID:
            return [f"not a chat.completion.chunk: {event[:200]}"]
        for choice in data["choices"]:
            text += choice.get("delta", {}).get("content") or ""
            finish = choice.get("finish_reason") or finish
        usage = data.get("usage", usage)
    if ref is None:
        return []
    if failed is not None:  # a request the reference answers
        return [f"an error event: {failed}"]
    body = json.loads(case.request.partition(b"\r\n\r\n")[2] or b"{}")
    got: dict[str, Any] = {"text": text, "finish_reason": finish}
    if (body.get("stream_options") or {}).get("include_usage"):
        if not usage:
            return ["no usage chunk"]
        got.update(
            prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"]
        )
    elif usage is not None:
        return ["a usage chunk nobody asked for"]
    if "refused" not in ref and ref.get("sampled"):
        got.setdefault("prompt_tokens", ref["prompt_tokens"])
        got.setdefault("completion_tokens", 1)
    return _compare(got, ref)


# --------------------------------------------------------------------------- the run


def write_media(media: Path, outside: Path) -> bool:
    """The media dir's files; True when this process runs as root (it reads mode 000)."""
    from sfllava_ext.video.synthetic import write_synthetic_video

    for k, name in enumerate(VIDEOS):
        write_synthetic_video(media / name, width=64, height=48, seconds=1, fps=12, variant=k)
    (media / "sub").mkdir()
    os.mkfifo(media / "fifo")
    (media / "notes.txt").write_text("not a video\n" * 20)
    (media / "list.m3u8").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n" + str(outside / "segment.ts") + "\n"
    )
    (media / "empty.mp4").write_bytes(b"")
    write_synthetic_video(outside / "secret.mp4", width=64, height=48, seconds=1, fps=12)
    shutil.copyfile(outside / "secret.mp4", outside / "segment.ts")
    os.symlink(outside / "secret.mp4", media / "link.mp4")
    (media / "big.mp4").write_bytes(os.urandom((MAX_VIDEO_MB << 20) + 1))  # over the limit
    unreadable = media / "unreadable.mp4"
    unreadable.write_bytes(os.urandom(1000))
    unreadable.chmod(0)
    return os.geteuid() == 0


def reference_answers(cases: list[Case], media: str, threads: int) -> dict[tuple, Any]:
    """The references of the requests that have one, from the same demo model in this
    process, as the service computes them: for a chat request the prompt's length (the
    video's tokens and the question's), then, within the context, a greedy answer's text,
    finish reason and tokens (a sampled one's length only), else the refusal; for a
    tokens request the video's SHA-256 and visual tokens. torch's thread count is
    restored after."""
    import torch

    from sfllava_ext.llm.runtime import context_length
    from sfllava_ext.models.spec import ModelSpec

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        sf = ModelSpec(device="cpu", dtype="float32", num_frames=NUM_FRAMES).build()
        context = context_length(sf.config.text_config)
        sessions = {name: sf.session(os.path.join(media, name)) for name in VIDEOS}
        answers: dict[tuple, Any] = {}
        for case in cases:
            key = case.answer
            if key is None or key in answers:
                continue
            if key[0] == "chat":
                _, video, question, tokens, decoding = key
                session = sessions[video]
                asked = session.tokenize(question)
                if asked.positions + tokens > context:
                    answers[key] = {"refused": "context_length_exceeded"}
                elif decoding == "sampled":
                    answers[key] = {
                        "sampled": True,
                        "prompt_tokens": asked.positions,
                        "max_tokens": tokens,
                    }
                else:
                    ids = session.generate(asked, max_new_tokens=tokens, do_sample=False)
                    answers[key] = {
                        "text": sf.llm.decode(ids),
                        "finish_reason": sf.llm.finish_reason(ids, tokens),
                        "prompt_tokens": asked.positions,
                        "completion_tokens": len(ids),
                    }
            elif key[0] == "tokens":
                data = Path(media, key[1]).read_bytes()
                answers[key] = (hashlib.sha256(data).hexdigest(), sessions[key[1]].tokens.cpu())
        return answers
    finally:
        torch.set_num_threads(before)


def answer_spread(answers: dict[tuple, Any]) -> dict[str, int]:
    """How much the greedy references depend on the request: distinct texts, and the
    questions answered otherwise for one video than for the other (at one max_tokens)."""
    greedy = {k: v for k, v in answers.items() if k[0] == "chat" and "text" in v}
    by_video = sum(
        1
        for (_, video, question, tokens, _), ref in greedy.items()
        if video == VIDEOS[0]
        and (other := greedy.get(("chat", VIDEOS[1], question, tokens, "greedy"))) is not None
        and other["text"] != ref["text"]
    )
    return {
        "greedy_references": len(greedy),
        "distinct_texts": len({v["text"] for v in greedy.values()}),
        "distinct_prompt_lengths": len({v["prompt_tokens"] for v in greedy.values()}),
        "differ_by_video": by_video,
    }


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def health(port: int) -> tuple[bool, float]:
    """Whether ``/health`` answers 200 within :data:`HEALTH_LIMIT_S`, and its seconds."""
    start = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HEALTH_LIMIT_S)
        conn.request("GET", "/health")
        ok = conn.getresponse().status == 200
        conn.close()
    except (OSError, http.client.HTTPException):
        ok = False
    seconds = time.perf_counter() - start
    return ok and seconds <= HEALTH_LIMIT_S, seconds


def package_root() -> str:
    import sfllava_ext

    return os.path.dirname(os.path.dirname(os.path.abspath(sfllava_ext.__file__)))


def server_argv(port: int | str, media: str) -> list[str]:
    argv = [sys.executable, "-m", "sfllava_ext.cli", "serve", "--demo", "--port", str(port)]
    argv += ["--media-dir", media, "--dtype", "float32", "--device", "cpu"]
    argv += ["--num-frames", str(NUM_FRAMES), "--max-video-mb", str(MAX_VIDEO_MB)]
    argv += ["--read-timeout-s", f"{READ_TIMEOUT_S:g}", "--job-timeout-s", "60"]
    return [*argv, "--log-level", "warning"]


def start_server(
    port: int, media: str, key: str | None, threads: int, folder: Path, name: str = "server"
) -> tuple[subprocess.Popen, Path]:
    """``sfllava serve --demo`` on ``port`` (the key in ``$SFLLAVA_API_KEY``; None: no
    key), in ``folder`` (not the checkout), its log in ``folder/<name>.log``."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "TMPDIR": str(folder),
        "PYTHONPATH": os.pathsep.join(
            p for p in (package_root(), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    env.pop("SFLLAVA_API_KEY", None)
    if key is not None:
        env["SFLLAVA_API_KEY"] = key
    log = folder / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            server_argv(port, media),
            env=env,
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if health(port)[0]:
            return proc, log
        time.sleep(0.3)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"fuzz_serve: the server did not start: {log.read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None
    return proc.returncode


def final_case(env: Env, seed: int) -> Case:
    """The valid request sent after the last batch: the server still answers right."""
    video = VIDEOS[0]
    body = chat_body(
        env, random.Random(f"{seed}:final"), video=video, question=QUESTIONS[-1], max_tokens=4
    )
    raw = _chat(env, body)
    return Case(
        -1, "valid", "after the last batch", raw, _only(200), answer=answer_key(body, video)
    )


class Tally:
    """What the requests of a run found: per family and status, the violations, the
    references compared, the ``(status, code)`` pairs seen, the longest message."""

    def __init__(self, documented: dict[int, set], answers: dict, forbidden: tuple) -> None:
        self.documented, self.answers, self.forbidden = documented, answers, forbidden
        self.families = {
            f: {"requests": 0, "statuses": Counter(), "violations": 0} for f in FAMILIES
        }
        self.statuses: Counter = Counter()
        self.codes: Counter = Counter()
        self.violations: list[dict[str, Any]] = []
        self.compared = {
            "valid": {"compared": 0, "equal": 0},
            "others": {"compared": 0, "equal": 0},
        }
        self.longest_message = 0
        self.lock = threading.Lock()

    def one(self, case: Case, port: int) -> list[str]:
        try:
            out = exchange(case, port)
        except OSError as exc:  # the connection itself failed
            out = Outcome(error=f"connect failed ({type(exc).__name__})")
        try:
            problems = check(case, out, self.documented, self.answers, self.forbidden)
        except Exception as exc:  # an answer the checks cannot even read
            problems = [f"unreadable answer ({type(exc).__name__}: {exc})"[:200]]
        self.count(case, out, problems)
        return problems

    def count(self, case: Case, out: Outcome, problems: list[str]) -> None:
        label = str(out.status) if out.status is not None else f"no answer ({out.error})"
        error = None
        if out.status is not None and out.status >= 300 and case.method != "HEAD":
            error = _error_of(out.body)[0]
        with self.lock:
            fam = self.families[case.family]
            fam["requests"] += 1
            fam["statuses"][label] += 1
            self.statuses[label] += 1
            if out.status is not None and out.status >= 300:
                code = error["code"] if error else PLAIN if case.method != "HEAD" else "(HEAD)"
                self.codes[f"{out.status} {code}"] += 1
                if error:
                    self.longest_message = max(self.longest_message, len(error["message"]))
            if case.answer is not None and case.answer[0] in ("chat", "tokens"):
                if out.status is not None and case.action == "send":
                    side = self.compared["valid" if case.family == "valid" else "others"]
                    side["compared"] += 1
                    side["equal"] += not problems
            if problems:
                fam["violations"] += 1
                self.violations.append(
                    {
                        "index": case.index,
                        "family": case.family,
                        "what": case.what[:200],
                        "status": out.status,
                        "error": out.error,
                        "seconds": round(out.seconds, 2),
                        "problems": problems,
                        "body": out.body[:300].decode("utf-8", "replace"),
                    }
                )


class HealthPoller:
    """``GET /health`` every :data:`HEALTH_POLL_S` on a thread while the batches run: how
    many, how many failed (not 200 within :data:`HEALTH_LIMIT_S`), the slowest."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.polls = self.failed = 0
        self.max_s = 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, name="health-poller", daemon=True)

    def _poll(self) -> None:
        while not self.stop.is_set():
            ok, seconds = health(self.port)
            self.polls += 1
            self.failed += not ok
            self.max_s = max(self.max_s, seconds)
            self.stop.wait(HEALTH_POLL_S)

    def __enter__(self) -> HealthPoller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def server_counters(port: int, settle_s: float = 10.0) -> dict[str, Any]:
    """``/health``'s counters once nothing waits or runs (at most ``settle_s`` later: a
    job whose client left may still be ending)."""
    deadline = time.monotonic() + settle_s
    counters: dict[str, Any] = {}
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            counters = json.loads(conn.getresponse().read())
            conn.close()
        except (OSError, http.client.HTTPException, ValueError):
            counters = {}
        idle = counters.get("waiting") == 0 and counters.get("running") == 0
        if idle or time.monotonic() > deadline:
            return {k: v for k, v in counters.items() if k != "model"}
        time.sleep(0.2)


def fuzz(
    count: int = 2000,
    seed: int = 0,
    time_limit_s: float = 1200.0,
    concurrency: int = 8,
    threads: int = 2,
    progress: bool = False,
) -> dict[str, Any]:
    """A run of ``count`` requests (fewer when ``time_limit_s`` passes first, counted
    from the first request: the model's build and the server's start are not in it;
    each batch of :data:`BATCH` runs to its end), one valid request after the last
    batch, then the keyless phase against a second server: the counts, the
    violations, the health checks."""
    started = time.perf_counter()
    documented = documented_statuses()
    folder = Path(tempfile.mkdtemp(prefix="fuzz-serve-"))
    try:
        media, outside = folder / "media", folder / "outside"
        media.mkdir()
        outside.mkdir()
        root = write_media(media, outside)
        port, keyless_port = free_port(), free_port()
        key = "fz-" + secrets.token_hex(16)
        env = Env(port, key, str(media), str(outside), root)
        keyless_env = Env(keyless_port, "", str(media), str(outside), root)
        cases = [make_case(env, seed, i) for i in range(count)]
        keyless = [
            make_case(keyless_env, seed, i, "keyless") for i in range(max(KEYLESS_MIN, count // 50))
        ]
        final = final_case(env, seed)
        answers = reference_answers([*cases, *keyless, final], str(media), threads)
        tally = Tally(documented, answers, (str(folder), str(ROOT), package_root(), key))
        proc, log = start_server(port, str(media), key, threads, folder)
        try:
            result = _run(cases, final, env, proc, log, tally, time_limit_s, concurrency, progress)
        finally:
            exit_status = stop_server(proc)
        result["server_exit_status"] = exit_status  # SIGTERM ends it cleanly: 0
        # the second phase: a server without a key, where the Host check applies
        keyless_started = time.perf_counter()
        proc, keyless_log = start_server(keyless_port, str(media), None, threads, folder, "keyless")
        try:
            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(lambda case: tally.one(case, keyless_port), keyless))
            keyless_alive = proc.poll() is None
        finally:
            keyless_exit = stop_server(proc)
        keyless_traces = keyless_log.read_text(errors="replace").count("Traceback")
        result["keyless"] = {
            "requests": len(keyless),
            "alive_at_end": keyless_alive,
            "exit_status": keyless_exit,
            "log_tracebacks": keyless_traces,
            "wall_s": round(time.perf_counter() - keyless_started, 1),
        }
        result.update(tally_result(tally, documented))
        result["reference_answers"] = answer_spread(answers)
        result["seed"] = seed
        result["wall_s"] = round(time.perf_counter() - started, 1)
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def tally_result(tally: Tally, documented: dict[int, set]) -> dict[str, Any]:
    """The tally's part of the result, and the table's rows no request reached."""
    listed = {f"{s} {c}" for s, codes in documented.items() for c in codes}
    return {
        "families": {
            f: {**v, "statuses": dict(sorted(v["statuses"].items())), "about": FAMILIES[f]}
            for f, v in tally.families.items()
        },
        "statuses": dict(sorted(tally.statuses.items())),
        "codes": dict(sorted(tally.codes.items())),
        "unexercised": sorted(listed - set(tally.codes) - {"200 None"}),
        "violations": len(tally.violations),
        "findings": tally.violations[:50],
        "valid_answers": tally.compared,
        "longest_message": tally.longest_message,
        "message_limit": MESSAGE_LIMIT,
    }


def _run(
    cases: list[Case],
    final: Case,
    env: Env,
    proc: subprocess.Popen,
    log: Path,
    tally: Tally,
    time_limit_s: float,
    concurrency: int,
    progress: bool,
) -> dict[str, Any]:
    port = env.port
    rss_start = rss_mb(proc.pid)
    checks = {"count": 0, "failed": 0, "max_s": 0.0}
    rss_max = rss_start or 0.0
    sent = 0
    first = time.perf_counter()
    stopped_early = False
    with ThreadPoolExecutor(concurrency) as pool, HealthPoller(port) as poller:
        for at in range(0, len(cases), BATCH):
            if time.perf_counter() - first > time_limit_s:
                stopped_early = True
                break
            batch = cases[at : at + BATCH]
            list(pool.map(lambda case: tally.one(case, port), batch))
            sent += len(batch)
            ok, seconds = health(port)
            alive = proc.poll() is None
            checks["count"] += 1
            checks["failed"] += not (ok and alive)
            checks["max_s"] = max(checks["max_s"], seconds)
            rss_max = max(rss_max, rss_mb(proc.pid) or 0.0)
            if progress:
                bad = len(tally.violations)
                print(
                    f"{sent:>5} requests, {bad} violations, health {'ok' if ok else 'FAILED'} "
                    f"({seconds * 1e3:.0f} ms; polled {poller.polls}, slowest "
                    f"{poller.max_s * 1e3:.0f} ms), {time.perf_counter() - first:.0f} s",
                    flush=True,
                )
            if not alive:
                break
    time.sleep(1.0)
    final_problems = tally.one(final, port) if proc.poll() is None else ["the server is dead"]
    ok, seconds = health(port)
    alive = proc.poll() is None
    rss_end = rss_mb(proc.pid)
    counters = server_counters(port) if alive else {}
    log_text = log.read_text(errors="replace")
    return {
        "count": len(cases),
        "sent": sent,
        "stopped_early": stopped_early,
        "concurrency": concurrency,
        "server": " ".join(server_argv("PORT", "MEDIA")[3:]),
        "settings": {
            "num_frames": NUM_FRAMES,
            "max_tokens": f"1-{MAX_TOKENS} (valid), at most 8 (others)",
            "read_timeout_s": READ_TIMEOUT_S,
            "max_video_mb": MAX_VIDEO_MB,
            "dtype": "float32",
        },
        "final_request": {"problems": final_problems},
        "health": {
            "checks": checks["count"] + 1,
            "failed": checks["failed"] + (not (ok and alive)),
            "max_ms": round(max(checks["max_s"], seconds) * 1e3, 1),
            "polls": poller.polls,
            "polls_failed": poller.failed,
            "polls_max_ms": round(poller.max_s * 1e3, 1),
            "alive_at_end": alive,
            "server_counters": counters,
        },
        "rss_mb": {
            "start": round(rss_start or 0, 1),
            "end": round(rss_end or 0, 1),
            "max": round(max(rss_max, rss_end or 0), 1),
        },
        "log_tracebacks": log_text.count("Traceback"),
        "documented": {str(k): sorted(map(str, v)) for k, v in sorted(tally.documented.items())},
        "requests_s": round(time.perf_counter() - first, 1),
    }


def passed(result: dict[str, Any]) -> bool:
    """The targets: no violation, the server healthy to the end (polled throughout, and
    nothing waiting or running once the requests end), the request after the last batch
    answered right, no traceback logged, every reference compared equal, and the
    keyless phase's server alive and clean."""
    h, keyless = result["health"], result["keyless"]
    counters = h["server_counters"]
    compared = result["valid_answers"]
    return (
        result["violations"] == 0
        and h["failed"] == 0
        and h["polls_failed"] == 0
        and h["alive_at_end"]
        and counters.get("waiting") == 0
        and counters.get("running") == 0
        and result["final_request"]["problems"] == []
        and result["log_tracebacks"] == 0
        and compared["valid"]["compared"] > 0
        and all(side["equal"] == side["compared"] for side in compared.values())
        and result.get("server_exit_status", 0) == 0
        and keyless["alive_at_end"]
        and keyless["exit_status"] == 0
        and keyless["log_tracebacks"] == 0
    )


# ------------------------------------------------------------------------- presentation
# What report.py collects from this module: ``render``, its section of docs/benchmarks.md.


def render(result: dict) -> list[str]:
    """The section of docs/benchmarks.md (markdown lines, heading included)."""
    out = ['<a id="fuzz-serve"></a>', "## Fuzzed requests: `sfllava serve`", ""]
    out += provenance(result)
    h, rss, keyless = result["health"], result["rss_mb"], result["keyless"]
    valid, others = result["valid_answers"]["valid"], result["valid_answers"]["others"]
    spread, counters = result["reference_answers"], h["server_counters"]
    total = result["sent"] + keyless["requests"]
    out += [
        f"{total:,} requests (seed {result['seed']}), {result['concurrency']} at a time: "
        f"{result['sent']:,} against `sfllava {result['server']}` with an API key from "
        f"`$SFLLAVA_API_KEY`, then {keyless['requests']} (the `keyless` family) against a "
        "second server started the same way without a key, where the `Host` check "
        "applies. Each request carries the statuses (and codes, and `param`) that "
        "[docs/security.md](security.md#every-status-the-service-returns) lists for it; "
        "a *violation* is another status, a `(status, code)` the table does not list, an "
        "error body that is not OpenAI's shape, a message naming a server path or holding "
        f"a traceback or longer than {result['message_limit']} characters (the fixed text, "
        "and the 64 characters a client's value may be quoted to), a 200 whose body is "
        "not its route's shape (`chat.completion`, its chunks, visual tokens, the model "
        "list), a streamed error event whose code the table does not list or that is "
        "`internal_error`, an answer that differs from the in-process reference, or a "
        "request without an answer where one was due: a timeout is a violation, and a "
        "request whose client does not wait passes only if it left on purpose or the "
        "server closed the connection (a stalled request head within "
        f"{CLOSE_WITHIN_S:g} s). The checker counts every 5xx but 503 as a violation, "
        "stricter than the docs, which list 500 `internal_error` (a fault of the "
        "server's own) and 504 `job_timeout`. Target: no violation, the server healthy "
        "throughout.",
        "",
        f"Result: {result['violations']} violations. References compared: {valid['equal']} "
        f"of {valid['compared']} answers of the `valid` family equal to in-process ones, "
        f"and {others['equal']} of {others['compared']} answers of other families with a "
        "known video, question and `max_tokens` (text, `finish_reason`, `prompt_tokens` "
        "and `completion_tokens` for a greedy chat answer; the prompt's length and the "
        "answer's bound for a sampled one; a refusal where the prompt passes the context; "
        "the visual tokens, exactly, and `X-Video-SHA256` for the tokens route). The demo "
        "model's random weights answer most questions alike "
        f"({spread['distinct_texts']} distinct texts among {spread['greedy_references']} "
        "greedy references): the question reaches the prompt, as "
        f"{spread['distinct_prompt_lengths']} distinct prompt lengths show, and one "
        "question is answered otherwise for each video "
        f"({spread['differ_by_video']} references differ by video alone), so an answer "
        "about the wrong video or question does not compare equal; the visual tokens "
        "depend on the video throughout.",
        "",
        f"`/health` answered 200 within {HEALTH_LIMIT_S:g} s at {h['polls'] - h['polls_failed']}"
        f" of {h['polls']} polls every {HEALTH_POLL_S:g} s during the batches (slowest "
        f"{h['polls_max_ms']:.0f} ms) and at {h['checks'] - h['failed']} of {h['checks']} "
        f"checks between them (slowest {h['max_ms']:.0f} ms); a valid request after the "
        f"last batch was answered {'right' if not result['final_request']['problems'] else 'WRONG'}"
        f"; the server was {'alive' if h['alive_at_end'] else 'DEAD'} at the end with "
        f"{counters.get('waiting')} jobs waiting and {counters.get('running')} running, "
        f"{result['log_tracebacks']} tracebacks in its log (the keyless server's: "
        f"{keyless['log_tracebacks']}); RSS {rss['start']:.0f} MB at the start, "
        f"{rss['end']:.0f} MB at the end (at most {rss['max']:.0f} MB). Its counters: "
        f"{counters.get('completed')} jobs completed, {counters.get('failed')} failed (a "
        "job that raised: a video refused while decoded, a prompt past the context, and "
        "the jobs skipped because their client had left), "
        f"{counters.get('cancelled')} cancelled (a client that left while its job waited or "
        "while it streamed). The longest error message was "
        f"{result['longest_message']} characters. The run took {result['wall_s']:.0f} s "
        f"({result['requests_s']:.0f} s of requests in the first phase).",
        "",
    ]
    if result["unexercised"]:
        out += [
            "Rows of the table no request reached: "
            + ", ".join(f"`{row}`" for row in result["unexercised"])
            + ". The 503s (queue, uploads, bodies, connections, shutdown) and 504 "
            "`job_timeout` need load or a slow model that this run does not make, 500 "
            "`internal_error` a fault of the server's own, the 400s of the video limits "
            "(pixels, duration, decode budget) hostile videos (`benchmarks/"
            "fuzz_videos.py`), and 403 `unreadable` a run as another user than root (root "
            "reads a file of mode 000); `python_tests/serve/` reaches most of them "
            "directly (the queue's and the uploads' 503, the 504, the decode budget).",
            "",
        ]
    rows = []
    for name, fam in result["families"].items():
        seen = ", ".join(f"{s}: {n}" for s, n in fam["statuses"].items())
        rows.append([f"`{name}`", fam["about"], str(fam["requests"]), seen, str(fam["violations"])])
    total_seen = ", ".join(f"{s}: {n}" for s, n in result["statuses"].items())
    rows.append(["**all**", "", str(total), total_seen, str(result["violations"])])
    out += table(["family", "what", "requests", "statuses seen", "violations"], rows)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="the run's seed")
    parser.add_argument("--count", type=int, default=2000, help="requests")
    parser.add_argument(
        "--time-limit-s", type=float, default=1200.0, help="no batch starts after this"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="requests at once")
    parser.add_argument("--threads", type=int, default=2, help="torch threads, each side")
    parser.add_argument("--out", default=str(RESULTS / f"{RESULT}.json"), help="the JSON to write")
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args()
    result = {
        "benchmark": "sfllava serve under fuzzed requests",
        "machine": machine_info(),
        **fuzz(args.count, args.seed, args.time_limit_s, args.concurrency, args.threads, True),
    }
    print(f"wrote {write_json(args.out, result)}")
    header = f"{'family':<14} {'sent':>5} {'violations':>10}  statuses"
    print(header)
    for name, fam in result["families"].items():
        seen = ", ".join(f"{s}: {n}" for s, n in fam["statuses"].items())
        print(f"{name:<14} {fam['requests']:>5} {fam['violations']:>10}  {seen}")
    for finding in result["findings"][:20]:
        print("VIOLATION", json.dumps(finding)[:600])
    print("compared:", result["valid_answers"], "references:", result["reference_answers"])
    print("health:", result["health"], "final request:", result["final_request"])
    print("keyless:", result["keyless"], "longest message:", result["longest_message"])
    print("unexercised:", result["unexercised"])
    print("rss MB:", result["rss_mb"], "log tracebacks:", result["log_tracebacks"])
    return 0 if passed(result) else 1


if __name__ == "__main__":
    sys.exit(main())
