"""benchmarks/fuzz_serve.py, small: a bounded run against a real ``sfllava serve`` in a
child process (every family of requests, no violation, the server healthy, the valid
answers equal to in-process ones), its classifier (planted faults are violations), its
reading of docs/security.md's table, and a code check that the API key is compared in
constant time and nowhere with ``==``."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from support import PACKAGE_ROOT, load_benchmark

import sfllava_ext

fuzz_serve = load_benchmark("fuzz_serve")
PACKAGE = Path(sfllava_ext.__file__).resolve().parent


@pytest.fixture
def child_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The server imports the package under test, and keeps its files under tmp_path."""
    monkeypatch.setenv("PYTHONPATH", PACKAGE_ROOT)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(fuzz_serve.tempfile, "tempdir", None)  # TMPDIR read again


def test_a_bounded_run_finds_nothing(child_env: None, tmp_path: Path) -> None:
    count = 2 * len(fuzz_serve.SCHEDULE) * 5  # 190: every family 10 times, the valid 30
    # the time limit counts from the first request (not the model's build or the
    # server's start), and is generous for a loaded machine: the run takes about 40 s
    result = fuzz_serve.fuzz(count, seed=3, time_limit_s=900, concurrency=6)
    assert result["sent"] == count and not result["stopped_early"]
    for name, family in result["families"].items():
        assert family["requests"] >= 9, name
    assert result["violations"] == 0, json.dumps(result["findings"], indent=1)[:4000]
    valid, others = result["valid_answers"]["valid"], result["valid_answers"]["others"]
    assert valid["compared"] >= 20 and valid["equal"] == valid["compared"], valid
    assert others["compared"] >= 10 and others["equal"] == others["compared"], others
    health = result["health"]
    assert health["failed"] == 0 and health["alive_at_end"], health
    assert health["checks"] == -(-count // fuzz_serve.BATCH) + 1
    assert health["polls"] >= 5 and health["polls_failed"] == 0, health
    counters = health["server_counters"]
    assert counters["waiting"] == 0 and counters["running"] == 0, counters
    assert result["final_request"]["problems"] == []
    assert result["longest_message"] <= fuzz_serve.MESSAGE_LIMIT
    keyless = result["keyless"]
    assert keyless["alive_at_end"] and keyless["exit_status"] == 0, keyless
    assert keyless["log_tracebacks"] == 0
    assert result["codes"].get("403 host_not_allowed"), result["codes"]
    assert result["log_tracebacks"] == 0
    assert result["server_exit_status"] == 0  # SIGTERM: a clean stop
    assert fuzz_serve.passed(result)
    # errors of every kind came back, and clients that left got no answer
    seen = {int(s) for s in result["statuses"] if s.isdigit()}
    assert {200, 400, 401, 403, 404, 405, 408, 413, 415} <= seen, seen
    assert any(s.startswith("no answer") for s in result["statuses"])
    assert not list(tmp_path.glob("fuzz-serve-*")), "the run's folder is removed"
    result.update(machine=fuzz_serve.machine_info(), command="python benchmarks/fuzz_serve.py")
    section = "\n".join(fuzz_serve.render(result))
    assert '<a id="fuzz-serve"></a>' in section and "## Fuzzed requests" in section
    assert f"| **all** |  | {count + keyless['requests']} |" in section
    assert "| `slow` |" in section and "| `keyless` |" in section and "0 violations" in section
    assert "504 `job_timeout`" in section and "a timeout is a violation" in section


def test_requests_are_made_again_from_the_seed(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "outside").mkdir()
    fuzz_serve.write_media(tmp_path / "media", tmp_path / "outside")
    env = fuzz_serve.Env(8000, "k", str(tmp_path / "media"), str(tmp_path / "outside"), False)
    for index in range(len(fuzz_serve.SCHEDULE)):
        a, b = fuzz_serve.make_case(env, 5, index), fuzz_serve.make_case(env, 5, index)
        assert a == b and a.family == fuzz_serve.SCHEDULE[index]
        assert a.expect, a
    other = [fuzz_serve.make_case(env, 6, index) for index in range(20)]
    assert [fuzz_serve.make_case(env, 5, index) for index in range(20)] != other


# ------------------------------------------------------------------ the classifier

DOCUMENTED = fuzz_serve.documented_statuses()


def _case(**kw) -> object:
    fields = dict(index=0, family="types", what="planted", request=b"", expect={400: None})
    return fuzz_serve.Case(**{**fields, **kw})


def _error(message="bad", code="invalid_json", param=None, type_="invalid_request_error"):
    error = {"message": message, "type": type_, "param": param, "code": code}
    return json.dumps({"error": error}).encode()


def _outcome(status, body=b"", **kw) -> object:
    return fuzz_serve.Outcome(status=status, body=body, **kw)


def test_the_table_is_read_from_the_docs() -> None:
    assert DOCUMENTED[400] >= {"invalid_json", "unsupported_url", "invalid_video", None}
    assert DOCUMENTED[401] == {"invalid_api_key"}
    assert DOCUMENTED[404] >= {"file_not_found", "model_not_found", None}
    assert DOCUMENTED[405] == {None}
    assert fuzz_serve.PLAIN in DOCUMENTED[400] and fuzz_serve.PLAIN in DOCUMENTED[503]
    assert 307 not in DOCUMENTED and 422 not in DOCUMENTED


def test_a_right_answer_passes() -> None:
    check = fuzz_serve.check
    assert check(_case(), _outcome(400, _error()), DOCUMENTED) == []
    field = _case(expect={400: frozenset({None})}, param="top_p")
    assert check(field, _outcome(400, _error(code=None, param="top_p")), DOCUMENTED) == []
    plain = _case(expect={400: frozenset({fuzz_serve.PLAIN})})
    assert check(plain, _outcome(400, b"Invalid HTTP request received."), DOCUMENTED) == []
    # plain text only where the request is not HTTP: elsewhere a violation
    assert check(_case(), _outcome(400, b"Invalid HTTP request received."), DOCUMENTED)
    gone = _case(expect={fuzz_serve.NO_ANSWER: None})
    assert check(gone, fuzz_serve.Outcome(error="closed"), DOCUMENTED) == []


@pytest.mark.parametrize(
    "planted, outcome, reason",
    [
        ("a wrong status", _outcome(200, b"{}"), "status 200, not one of [400]"),
        ("a 500", _outcome(500, _error(code="internal_error")), "status 500"),
        ("FastAPI's own body", _outcome(400, b'{"detail": "bad"}'), "not {'error'"),
        ("an error string", _outcome(400, b'{"error": "bad"}'), "not {'error'"),
        ("no code key", _outcome(400, b'{"error": {"message": "m", "type": "t", "param": null}}'),
         "error.code is missing"),
        ("plain text", _outcome(400, b"Bad Request"), "not JSON"),
        ("a traceback", _outcome(400, _error('Traceback (most recent call last):\n  File "a.py"')),
         "the message holds 'Traceback'"),
        ("an undocumented code", _outcome(400, _error(code="made_up")), "(400, made_up) is not"),
        ("an undocumented status", _outcome(422, _error()), "422 is not in docs/security.md"),
        ("a field error without param", _outcome(400, _error(code=None)), "names no param"),
        ("a long echo", _outcome(400, _error("x" * 5000)), "a message of 5000 characters"),
        ("no answer", fuzz_serve.Outcome(error="reset"), "no answer where one was due (reset)"),
        ("a cut answer", _outcome(400, _error(), error="incomplete"), "cut short"),
    ],
)  # fmt: skip
def test_planted_faults_are_violations(planted: str, outcome: object, reason: str) -> None:
    problems = fuzz_serve.check(_case(), outcome, DOCUMENTED)
    assert any(reason in p for p in problems), (planted, problems)


def test_a_server_path_or_the_key_in_a_message_is_a_violation() -> None:
    forbidden = ("/tmp/fuzz-serve-abc", "fz-secret")
    for message in ("cannot read /tmp/fuzz-serve-abc/media/a.mp4", "wrong key fz-secret"):
        outcome = _outcome(400, _error(message))
        problems = fuzz_serve.check(_case(), outcome, DOCUMENTED, forbidden=forbidden)
        assert any("the message holds" in p for p in problems), message


CHAT = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n"


def _completion(text="a cat", finish="length", prompt=3003, completion=2, **over) -> bytes:
    body = {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 0,
        "model": fuzz_serve.MODEL_ID,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
        **over,
    }
    return json.dumps(body).encode()


def _chunk(delta=None, finish=None, usage=None) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    data = {"object": "chat.completion.chunk", "model": fuzz_serve.MODEL_ID, "choices": choices}
    if usage is not None:
        data["usage"] = usage
    return b"data: " + json.dumps(data).encode() + b"\n\n"


REF = {"text": "a cat", "finish_reason": "length", "prompt_tokens": 3003, "completion_tokens": 2}
KEY = ("chat", "a.mp4", "What moves?", 2, "greedy")


def test_a_valid_answer_that_differs_is_a_violation() -> None:
    case = _case(family="valid", expect={200: None}, answer=KEY, request=CHAT)
    outcome = _outcome(200, _completion())
    assert fuzz_serve.check(case, outcome, DOCUMENTED, {KEY: REF}) == []
    problems = fuzz_serve.check(case, outcome, DOCUMENTED, {KEY: {**REF, "text": "a dog"}})
    assert problems == ["answered 'a cat', in-process 'a dog'"]
    for field, value in [
        ("prompt_tokens", 3014),
        ("completion_tokens", 1),
        ("finish_reason", "stop"),
    ]:
        problems = fuzz_serve.check(case, outcome, DOCUMENTED, {KEY: {**REF, field: value}})
        assert problems and field in problems[0], (field, problems)
    stream = _case(family="valid", expect={200: None}, answer=KEY, stream=True, request=CHAT)
    events = _chunk({"role": "assistant", "content": ""}) + _chunk({"content": "a c"})
    events += _chunk({"content": "at"}) + _chunk({}, finish="length") + b"data: [DONE]\n\n"
    sse = _outcome(200, events, headers={"content-type": "text/event-stream"})
    assert fuzz_serve.check(stream, sse, DOCUMENTED, {KEY: REF}) == []
    assert fuzz_serve.check(stream, sse, DOCUMENTED, {KEY: {**REF, "text": "a dog"}})
    assert fuzz_serve.check(stream, sse, DOCUMENTED, {KEY: {**REF, "finish_reason": "stop"}})
    unfinished = _outcome(200, events[:-14], headers={"content-type": "text/event-stream"})
    assert fuzz_serve.check(stream, unfinished, DOCUMENTED, {KEY: REF})


def test_a_200_is_checked_without_a_reference() -> None:
    """Every 200 has its route's shape, and a stream's error events a listed code."""
    case = _case(family="mutation", expect={200: None}, request=CHAT)
    assert fuzz_serve.check(case, _outcome(200, _completion()), DOCUMENTED) == []
    for planted in (b"{}", _completion(object="list"), _completion(finish="done"), b"[1]"):
        assert fuzz_serve.check(case, _outcome(200, planted), DOCUMENTED), planted
    stream = _case(family="mutation", expect={200: None}, stream=True, request=CHAT)
    head = _chunk({"role": "assistant", "content": ""})
    for code, bad in [("job_timeout", False), ("internal_error", True), ("made_up", True)]:
        error = _error(code=code, type_="server_error")
        body = head + b"data: " + error + b"\n\ndata: [DONE]\n\n"
        sse = _outcome(200, body, headers={"content-type": "text/event-stream"})
        assert bool(fuzz_serve.check(stream, sse, DOCUMENTED)) is bad, code


def test_the_reference_decides_a_refusal_for_the_context() -> None:
    expect = {200: None, 400: frozenset({"context_length_exceeded"})}
    case = _case(family="values", expect=expect, answer=KEY, request=CHAT)
    refused = {KEY: {"refused": "context_length_exceeded"}}
    too_long = _outcome(400, _error(code="context_length_exceeded", param="max_tokens"))
    assert fuzz_serve.check(case, too_long, DOCUMENTED, refused) == []
    assert fuzz_serve.check(case, _outcome(200, _completion()), DOCUMENTED, refused)
    assert fuzz_serve.check(case, too_long, DOCUMENTED, {KEY: REF})


def test_no_answer_is_a_close_in_time() -> None:
    """Without an answer, only a client that left, or the server's close or reset (a
    stalled head's within 3 read timeouts and 2 s) pass; never a timeout."""
    gone = _case(expect={fuzz_serve.NO_ANSWER: None}, action="stall", close_within=5.0)
    check = fuzz_serve.check
    assert check(gone, fuzz_serve.Outcome(error="closed", seconds=1.2), DOCUMENTED) == []
    assert check(gone, fuzz_serve.Outcome(error="reset", seconds=1.2), DOCUMENTED) == []
    for error in ("timeout", "connect failed (ConnectionRefusedError)", "abandoned"):
        assert check(gone, fuzz_serve.Outcome(error=error, seconds=1.2), DOCUMENTED), error
    assert check(gone, fuzz_serve.Outcome(error="closed", seconds=9.0), DOCUMENTED)
    left = _case(expect={fuzz_serve.NO_ANSWER: None}, action="abandon")
    assert check(left, fuzz_serve.Outcome(error="abandoned"), DOCUMENTED) == []


def test_the_references_depend_on_the_video_and_the_question(tmp_path: Path) -> None:
    """The demo model answers most questions alike; the fuzz's last question is answered
    otherwise for each video, and every question has its own prompt length, so that a
    valid answer's comparison would see the wrong video or question. The reference
    leaves torch's thread count as it found it."""
    import torch

    (tmp_path / "media").mkdir()
    (tmp_path / "outside").mkdir()
    fuzz_serve.write_media(tmp_path / "media", tmp_path / "outside")
    cases = [
        _case(answer=("chat", video, question, 4, "greedy"))
        for video in fuzz_serve.VIDEOS
        for question in fuzz_serve.QUESTIONS
    ]
    before = torch.get_num_threads()
    answers = fuzz_serve.reference_answers(cases, str(tmp_path / "media"), threads=1)
    assert torch.get_num_threads() == before
    spread = fuzz_serve.answer_spread(answers)
    assert spread["differ_by_video"] >= 1, answers
    assert spread["distinct_prompt_lengths"] == len(fuzz_serve.QUESTIONS), answers


# ------------------------------------------------------- the key, in constant time

_KEYISH = ("key", "secret", "authorization", "bearer")  # ("tokens" are the model's)


def _names(node: ast.AST) -> set[str]:
    """The names and attributes an expression reads, lower case."""
    out = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            out.add(sub.id.lower())
        elif isinstance(sub, ast.Attribute):
            out.add(sub.attr.lower())
    return out


def key_comparisons(source: str) -> list[str]:
    """Comparisons with ``==``, ``!=``, ``in`` or ``not in`` (anything but ``is None``) of
    an expression that reads a key-like name, and ``startswith``/``endswith``/``find``
    calls on one: each a timing leak of the key."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            ops = {type(op) for op in node.ops}
            if ops <= {ast.Is, ast.IsNot}:
                continue
            names = set().union(*(_names(x) for x in [node.left, *node.comparators]))
            if any(k in name for name in names for k in _KEYISH):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("startswith", "endswith", "find", "index", "count"):
                read = set().union(_names(node.func.value), *(_names(a) for a in node.args))
                if any(k in n for n in read for k in _KEYISH):
                    found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_the_api_key_is_compared_in_constant_time() -> None:
    guards = (PACKAGE / "serve" / "guards.py").read_text()
    tree = ast.parse(guards)
    authorise = next(
        n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "authorise"
    )
    calls = [
        ast.unparse(n.func)
        for n in ast.walk(authorise)
        if isinstance(n, ast.Call) and isinstance(n.func, (ast.Attribute, ast.Name))
    ]
    assert "hmac.compare_digest" in calls, calls
    # the digest compares the key given with the service's key
    digest = next(
        n for n in ast.walk(authorise)
        if isinstance(n, ast.Call) and ast.unparse(n.func) == "hmac.compare_digest"
    )  # fmt: skip
    assert "api_key" in _names(digest) and "key" in _names(digest)
    assert key_comparisons(guards) == []


def test_the_vllm_guard_compares_no_key_itself() -> None:
    """The vLLM engine's middleware checks the key through ``serve.guards.authorise``
    (vLLM's own check, which it replaces on most paths, is vLLM's)."""
    guard = (PACKAGE / "vllm_plugin" / "guard.py").read_text()
    assert key_comparisons(guard) == []
    tree = ast.parse(guard)
    called = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert "authorise" in called


def test_no_module_of_the_service_compares_a_key_with_eq() -> None:
    for path in sorted((PACKAGE / "serve").rglob("*.py")):
        assert key_comparisons(path.read_text()) == [], path


def test_the_key_check_sees_a_planted_comparison() -> None:
    planted = [
        "def f(request, config):\n    return request.key == config.api_key\n",
        "def f(given, api_key):\n    if given != api_key:\n        raise E\n",
        "def f(token):\n    return token in KEYS\n",
        "def f(header, secret):\n    return header.startswith(secret)\n",
    ]
    for source in planted:
        assert key_comparisons(source), source
    assert key_comparisons("def f(config):\n    return config.api_key is None\n") == []
