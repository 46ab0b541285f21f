"""A local stand-in for an OpenAI-compatible judge: a real HTTP server on a free
127.0.0.1 port, in a thread of the test's process, answering
``POST /v1/chat/completions`` with the OpenAI response shape.

    with judge_server(by_answer) as server:
        judge = ChatJudge(server.url, "judge-model")    # server.url: http://127.0.0.1:PORT/v1
        ...
        server.requests[0]["body"]["messages"]          # what the judge was sent

``respond(body)`` gets the request's JSON body (a dict) and returns either

- a ``str``: the reply text, sent as ``{"choices": [{"message": {"role": "assistant",
  "content": text}}], ...}`` with status 200 (:func:`openai_response`), or
- a tuple ``(status, body)`` or ``(status, body, headers)``: sent as it is, a ``dict``
  body as JSON and a ``str`` body as plain text, with the extra response ``headers``
  (``{"Retry-After": "0.05"}``, ``{"Location": ...}``). This scripts 503s, 429s, 401s
  and malformed bodies (``(200, "not json")``, ``(200, {"choices": []})``).

A body that is not JSON is answered 400 without asking ``respond``; another path is
answered 404; a ``respond`` that raises is answered 500 with the exception's text. Every
request, whatever its path and answer, is recorded in ``server.requests`` as a dict:
``{"method", "path", "headers" (names lower-cased), "body" (the parsed JSON, or None),
"at" (``time.monotonic()`` when it arrived)}``, so a test can check the waits between
retries.

Responders: :func:`scripted` (given replies in order), :func:`by_answer` (yes/4 when the
reference answer is in the prediction, else no/1).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "CHAT_PATH",
    "JudgeServer",
    "Responder",
    "by_answer",
    "judge_server",
    "openai_response",
    "scripted",
]

#: the one path the stand-in answers
CHAT_PATH = "/v1/chat/completions"
#: what ``respond`` returns: a reply text, or (status, body) / (status, body, headers)
Reply = str | tuple[int, str | dict] | tuple[int, str | dict, dict[str, str]]
Responder = Callable[[dict], Reply]


@dataclass
class JudgeServer:
    """The running stand-in: ``url`` is the API's base URL (``http://127.0.0.1:PORT/v1``,
    what :class:`ChatJudge` takes), ``requests`` every request received, in order."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)


def openai_response(text: str, model: str = "judge-stand-in") -> dict[str, Any]:
    """The body an OpenAI-compatible endpoint answers a chat completion with."""
    return {
        "id": "chatcmpl-stand-in",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def scripted(replies: Sequence[Reply]) -> Responder:
    """A responder that serves ``replies`` in order, one per request (each what a
    responder returns: a text or a ``(status, body[, headers])`` tuple). Once they are
    used up it answers 500 ``{"error": "scripted: no reply left"}``."""
    left = list(replies)
    lock = threading.Lock()

    def respond(body: dict) -> Reply:
        with lock:
            if not left:
                return 500, {"error": "scripted: no reply left"}
            return left.pop(0)

    return respond


_DEFAULT = re.compile(r"\nCorrect Answer: (.*?)\nPredicted Answer: (.*?)\n\n", re.S)
_PAIRED = re.compile(
    r"\nCorrect Answer: (.*?)\nPredicted Answer to Question 1: (.*?)\n"
    r"Predicted Answer to Question 2: (.*?)\n\n",
    re.S,
)


def by_answer(body: dict) -> Reply:
    """A judge that reads the official prompt: ``"{'pred': 'yes', 'score': 4}"`` when
    the ``Correct Answer: ...`` line's text occurs in the ``Predicted Answer: ...``
    (both of them, for the consistency prompt), ignoring case and surrounding spaces;
    else ``"{'pred': 'no', 'score': 1}"``. A request whose user message has neither
    form is answered 400."""
    try:
        user = next(m["content"] for m in body["messages"] if m.get("role") == "user")
    except (KeyError, TypeError, StopIteration):
        return 400, {"error": {"message": "by_answer: no user message"}}
    paired = _PAIRED.search(user)
    if paired:
        answer, predictions = paired.group(1), paired.group(2, 3)
    else:
        single = _DEFAULT.search(user)
        if not single:
            return 400, {"error": {"message": "by_answer: no 'Correct Answer:' line"}}
        answer, predictions = single.group(1), (single.group(2),)
    needle = answer.strip().lower()
    if needle and all(needle in p.lower() for p in predictions):
        return "{'pred': 'yes', 'score': 4}"
    return "{'pred': 'no', 'score': 1}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self._record(None)
        self._send(404, {"error": {"message": f"no such path: GET {self.path}"}})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        self._record(body)
        if self.path != CHAT_PATH:
            self._send(404, {"error": {"message": f"no such path: POST {self.path}"}})
            return
        if not isinstance(body, dict):
            self._send(400, {"error": {"message": "the body is not a JSON object"}})
            return
        try:
            reply = self.server.respond(body)
        except Exception as exc:  # a broken responder is the test's bug: say so in the answer
            self._send(500, {"error": {"message": f"respond raised {exc!r}"}})
            return
        if isinstance(reply, str):
            self._send(200, openai_response(reply, str(body.get("model", "judge-stand-in"))))
        else:
            self._send(*reply)

    def _record(self, body: Any) -> None:
        self.server.record.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
                "at": self._arrived,
            }
        )

    def parse_request(self) -> bool:
        self._arrived = time.monotonic()
        return super().parse_request()

    def _send(self, status: int, body: str | dict, headers: dict[str, str] | None = None) -> None:
        if isinstance(body, str):
            data, kind = body.encode(), "text/plain; charset=utf-8"
        else:
            data, kind = json.dumps(body).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, respond: Responder, record: list) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.respond = respond
        self.record = record


@contextmanager
def judge_server(respond: Responder = by_answer) -> Iterator[JudgeServer]:
    """A running stand-in judge that answers with ``respond`` (default :func:`by_answer`);
    stopped, its port closed, when the block ends."""
    requests: list[dict[str, Any]] = []
    server = _Server(respond, requests)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="judge-stand-in", daemon=True)  # fmt: skip
    thread.start()
    try:
        yield JudgeServer(url=f"http://127.0.0.1:{port}/v1", requests=requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
