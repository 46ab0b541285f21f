"""The judges (:mod:`sfllava_ext.eval.judge`): :class:`ChatJudge` against a real local
HTTP stand-in for an OpenAI-compatible endpoint (support/judge_server.py), and the
offline :class:`ExactJudge`."""

from __future__ import annotations

import pytest
from support.judge_server import by_answer, judge_server, scripted
from support.servers import free_port

from sfllava_ext.eval.judge import ChatJudge, ExactJudge, JudgeError, judge_key
from sfllava_ext.eval.official import judge_messages, open_ended_figures, read_judge_reply

YES = "{'pred': 'yes', 'score': 5}"
ITEM = {"question": "What is the man doing?", "answer": "playing guitar",
        "prediction": "The man is playing guitar on a stage."}  # fmt: skip


@pytest.fixture(autouse=True)
def no_keys(monkeypatch):
    """No key from the machine running the tests reaches a judge unless a test sets one."""
    monkeypatch.delenv("SFLLAVA_JUDGE_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def make_judge(url: str, **kwargs) -> ChatJudge:
    kwargs.setdefault("backoff", 0.01)
    kwargs.setdefault("timeout", 10)
    return ChatJudge(url, "judge-model", **kwargs)


# ------------------------------------------------------------------ what is sent


@pytest.mark.parametrize("mode", ["default", "correctness", "temporal"])
def test_sends_the_model_and_the_official_messages_only(mode):
    with judge_server() as server:
        judge = make_judge(server.url)
        try:
            text = judge.reply(mode, **ITEM)
        finally:
            judge.close()
    assert text == "{'pred': 'yes', 'score': 4}"  # by_answer: the answer is in it
    [request] = server.requests
    assert request["method"] == "POST"
    assert request["path"] == "/v1/chat/completions"
    # the official call passes model and messages and nothing else, so no temperature
    # (eval/eval_generative_qa.py:90-92 of apple/ml-slowfast-llava)
    assert set(request["body"]) == {"model", "messages"}
    assert request["body"]["model"] == "judge-model"
    assert request["body"]["messages"] == judge_messages(mode, **ITEM)


def test_consistency_sends_both_questions_and_predictions():
    fields = {**ITEM, "question2": "What is he holding?", "prediction2": "playing guitar, yes"}
    with judge_server() as server:
        judge = make_judge(server.url)
        try:
            assert judge.reply("consistency", **fields) == "{'pred': 'yes', 'score': 4}"
            fields["prediction2"] = "A violin."
            assert judge.reply("consistency", **fields) == "{'pred': 'no', 'score': 1}"
        finally:
            judge.close()
    assert server.requests[1]["body"]["messages"] == judge_messages("consistency", **fields)


def test_a_base_url_with_a_trailing_slash_reaches_the_same_path():
    with judge_server() as server:
        judge = make_judge(server.url + "/")
        try:
            judge.reply("default", **ITEM)
        finally:
            judge.close()
    assert server.requests[0]["path"] == "/v1/chat/completions"


# ------------------------------------------------------------------ the key


def test_the_key_comes_from_sfllava_judge_api_key_first(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("SFLLAVA_JUDGE_API_KEY", "sk-sfllava")
    assert judge_key() == "sk-sfllava"
    with judge_server() as server:
        judge = make_judge(server.url)
        try:
            judge.reply("default", **ITEM)
            settings = judge.settings()
        finally:
            judge.close()
    assert server.requests[0]["headers"]["authorization"] == "Bearer sk-sfllava"
    assert "sk-sfllava" not in repr(settings)  # a run's summary never holds the key


def test_the_key_falls_back_to_openai_api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    assert judge_key() == "sk-openai"
    with judge_server() as server:
        judge = make_judge(server.url)
        try:
            judge.reply("default", **ITEM)
        finally:
            judge.close()
    assert server.requests[0]["headers"]["authorization"] == "Bearer sk-openai"


def test_an_explicit_key_wins_and_no_key_sends_no_header(monkeypatch):
    monkeypatch.setenv("SFLLAVA_JUDGE_API_KEY", "sk-sfllava")
    with judge_server() as server:
        judge = make_judge(server.url, api_key="sk-given")
        try:
            judge.reply("default", **ITEM)
        finally:
            judge.close()
        monkeypatch.delenv("SFLLAVA_JUDGE_API_KEY")
        assert judge_key() is None
        judge = make_judge(server.url)
        try:
            judge.reply("default", **ITEM)
        finally:
            judge.close()
    assert server.requests[0]["headers"]["authorization"] == "Bearer sk-given"
    assert "authorization" not in server.requests[1]["headers"]


# ------------------------------------------------------------------ retries


def test_a_503_is_retried_with_growing_backoff():
    with judge_server(scripted([(503, "busy"), (502, {"error": "gateway"}), YES])) as server:
        judge = make_judge(server.url, backoff=0.05)
        try:
            assert judge.reply("default", **ITEM) == YES
        finally:
            judge.close()
    assert len(server.requests) == 3
    first, second, third = (r["at"] for r in server.requests)
    assert second - first >= 0.05  # backoff
    assert third - second >= 0.1  # doubled


def test_a_429_waits_as_long_as_retry_after_says():
    replies = [(429, {"error": "slow down"}, {"Retry-After": "0.3"}), YES]
    with judge_server(scripted(replies)) as server:
        judge = make_judge(server.url, backoff=0.01)
        try:
            assert judge.reply("default", **ITEM) == YES
        finally:
            judge.close()
    assert len(server.requests) == 2
    assert server.requests[1]["at"] - server.requests[0]["at"] >= 0.3


def test_an_unreadable_reply_is_asked_again_then_returned_as_it_came():
    # the official scorer asks again for the items whose reply it could not read
    # (eval/eval_video_qa.py:130-157); after `attempts` the text is the run's to record
    with judge_server(scripted(["I'd say yes.", "Sure! yes", "{'pred': 'yes', 'score': 3}"])) as s:
        judge = make_judge(s.url, attempts=3)
        try:
            assert judge.reply("default", **ITEM) == "{'pred': 'yes', 'score': 3}"
        finally:
            judge.close()
    assert len(s.requests) == 3
    with judge_server(scripted(["I'd say yes."] * 3)) as s:
        judge = make_judge(s.url, attempts=3)
        try:
            text = judge.reply("default", **ITEM)
        finally:
            judge.close()
    assert text == "I'd say yes."  # returned, not raised
    assert read_judge_reply(text) is None
    assert len(s.requests) == 3


def test_a_body_that_is_not_a_chat_completion_is_unreadable():
    # the official call reads completion.choices[0].message.content
    # (eval/eval_video_qa.py:66); a body without it raises there, no reply file is
    # written (:71-75) and the item is asked again later (:130-157), never counted.
    # So such a body must not come back as a readable reply (a JSON body is also a
    # Python literal, which the arithmetic would count).
    replies = [(200, "not json"), (200, {"choices": []}), (200, {"error": "x"}), YES]
    with judge_server(scripted(replies)) as server:
        judge = make_judge(server.url, attempts=4)
        try:
            assert judge.reply("default", **ITEM) == YES
        finally:
            judge.close()
    assert len(server.requests) == 4


def test_the_literal_none_is_a_readable_reply():
    # literal_eval("None") gives None without raising (eval/eval_video_qa.py:67), so the
    # official scorer stores that reply (:68-72) and never asks again for it (:130-157)
    with judge_server(scripted(["None", YES])) as server:
        judge = make_judge(server.url, attempts=2)
        try:
            assert judge.reply("default", **ITEM) == "None"
        finally:
            judge.close()
    assert len(server.requests) == 1


def test_a_reply_with_null_content_is_never_counted():
    # literal_eval(None) raises (eval/eval_video_qa.py:67): no reply file, not counted
    null = {"choices": [{"message": {"role": "assistant", "content": None}}]}
    with judge_server(scripted([(200, null)] * 2)) as server:
        judge = make_judge(server.url, attempts=2)
        try:
            text = judge.reply("default", **ITEM)
        finally:
            judge.close()
    assert open_ended_figures([text])["count"] == 0


def test_a_401_raises_at_once():
    with judge_server(scripted([(401, {"error": {"message": "bad key"}}), YES])) as server:
        judge = make_judge(server.url, attempts=5)
        try:
            with pytest.raises(JudgeError, match="401"):
                judge.reply("default", **ITEM)
        finally:
            judge.close()
    assert len(server.requests) == 1


def test_an_unreachable_endpoint_raises_after_the_attempts():
    judge = make_judge(f"http://127.0.0.1:{free_port()}/v1", attempts=3, timeout=2)
    try:
        with pytest.raises(JudgeError, match="3 attempts"):
            judge.reply("default", **ITEM)
    finally:
        judge.close()


def test_a_redirect_is_not_followed():
    # a key is never sent to an address the user did not name
    with judge_server() as server:
        elsewhere = server.url + "/elsewhere/chat/completions"
        with judge_server(scripted([(307, "", {"Location": elsewhere})])) as redirecting:
            judge = make_judge(redirecting.url, api_key="sk-secret")
            try:
                with pytest.raises(JudgeError, match="307"):
                    judge.reply("default", **ITEM)
            finally:
                judge.close()
    assert len(redirecting.requests) == 1
    assert server.requests == []


def test_a_404_path_raises():
    with judge_server() as server:
        judge = make_judge(server.url.removesuffix("/v1") + "/v2")
        try:
            with pytest.raises(JudgeError, match="404"):
                judge.reply("default", **ITEM)
        finally:
            judge.close()


# ------------------------------------------------------------------ arguments


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"url": "ftp://127.0.0.1/v1"}, "url"),
        ({"url": "127.0.0.1:8000/v1"}, "url"),
        ({"url": "http://"}, "url"),
        ({"attempts": 0}, "attempts"),
        ({"attempts": 1.5}, "attempts"),
        ({"backoff": -1}, "backoff"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -5}, "timeout"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, name):
    kwargs = {"url": "http://127.0.0.1:1/v1", **kwargs}
    with pytest.raises(ValueError, match=name):
        ChatJudge(kwargs.pop("url"), "m", **kwargs)


def test_settings_describe_the_judge():
    judge = ChatJudge(
        "http://127.0.0.1:1/v1/", "gpt-x", api_key="k", attempts=2, backoff=0.5, timeout=7
    )
    try:
        assert judge.settings() == {
            "judge": "chat", "url": "http://127.0.0.1:1/v1", "model": "gpt-x",
            "attempts": 2, "backoff_s": 0.5, "timeout_s": 7,
        }  # fmt: skip
    finally:
        judge.close()


# ------------------------------------------------------------------ the offline judge


@pytest.mark.parametrize(
    "answer, prediction, verdict",
    [
        ("playing guitar", "The man is Playing Guitar, on a stage.", "yes"),
        ("a cat", "It is A cat.", "yes"),
        ("cat", "a category of things", "no"),  # words, not letters
        ("red car", "a car, red", "no"),  # in order
        ("red car", "a red big car", "no"),  # and together
        ("3", "there are 3 dogs", "yes"),
        ("", "anything", "no"),  # no words to find
        ("...", "...", "no"),
    ],
)
def test_exact_judge_matches_the_answers_words(answer, prediction, verdict):
    text = ExactJudge().reply("default", question="q", answer=answer, prediction=prediction)
    expected = {"pred": verdict, "score": 5 if verdict == "yes" else 0}
    assert read_judge_reply(text) == expected


def test_exact_judge_needs_both_predictions_for_consistency():
    judge = ExactJudge()
    both = judge.reply("consistency", question="q", answer="a dog", prediction="a dog runs",
                       question2="q2", prediction2="it is a dog")  # fmt: skip
    one = judge.reply("consistency", question="q", answer="a dog", prediction="a dog runs",
                      question2="q2", prediction2="a cat")  # fmt: skip
    assert read_judge_reply(both) == {"pred": "yes", "score": 5}
    assert read_judge_reply(one) == {"pred": "no", "score": 0}
    assert judge.settings() == {"judge": "exact"}
    judge.close()


def test_exact_judge_replies_feed_the_official_arithmetic():
    judge = ExactJudge()
    replies = [
        judge.reply("default", question="q", answer=a, prediction=p)
        for a, p in [("yes", "Yes."), ("two", "three"), ("blue", "it is blue")]
    ]
    figures = open_ended_figures(replies)
    assert (figures["yes"], figures["no"], figures["count"], figures["score_sum"]) == (2, 1, 3, 10)


def test_by_answer_stand_in_reads_the_official_prompt():
    # the stand-in itself: it must find the answer in the very text judge_messages makes
    body = {"messages": judge_messages("default", "q", "Playing Guitar ", "he is playing guitar")}
    assert by_answer(body) == "{'pred': 'yes', 'score': 4}"
    body = {"messages": judge_messages("default", "q", "violin", "he is playing guitar")}
    assert by_answer(body) == "{'pred': 'no', 'score': 1}"
    assert by_answer({"messages": [{"role": "user", "content": "hello"}]})[0] == 400
