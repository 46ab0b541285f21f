"""``run_eval`` / ``sfllava eval run`` with the demo model: predictions equal the model's
own answers made without sessions, one session per video, failures recorded and the run
going on, the judge asked with the official prompt through a local stand-in, a run
killed mid-way resumed with no duplicates, and the summary's figures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from support import PYTHONPATH
from support.judge_server import by_answer, judge_server
from support.videos import write_test_video

from sfllava_ext.eval import ExactJudge, RunMismatchError, load_items, run_eval
from sfllava_ext.eval.official import judge_messages
from sfllava_ext.llm.prompts import build_prompt
from sfllava_ext.models.spec import ModelSpec

FRAMES = 8
TOKENS = 6
SPEC = ModelSpec(dtype="float32", num_frames=FRAMES, device="cpu")


@pytest.fixture(scope="module")
def model():
    return SPEC.build()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-videos")
    write_test_video(root / "a.mp4", 96, 64, 24)
    write_test_video(root / "b.avi", 96, 64, 30, codec="mpeg4")
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(2000))
    return root


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


MC_ROWS = [
    {"id": "q1", "video": "a.mp4", "question": "What moves?", "options": ["a box", "a cat", "nothing"], "answer": "A"},
    {"id": "q2", "video": "a.mp4", "question": "Which colour?", "options": ["red", "blue"], "answer": 1, "category": "colour"},
    {"id": "q3", "video": "b", "question": "How many?", "options": ["one", "two", "three", "four"], "answer": "c", "category": "count"},
    {"id": "q4", "video": "broken.mp4", "question": "What?", "options": ["x", "y"], "answer": "B"},
    {"id": "q5", "video": "missing.mp4", "question": "Where?", "options": ["x", "y"], "answer": 0},
]  # fmt: skip
OPEN_ROWS = [
    {"video": "a.mp4", "question": "What is shown?", "answer": "a moving square", "category": "what"},
    {"video": "b", "question": "What happens?", "answer": "nothing", "category": "what"},
    {"video": "a.mp4", "question": "Is it night?", "answer": "no"},
    {"video": "broken.mp4", "question": "Colour?", "answer": "red"},
]  # fmt: skip


def reference_text(model, video, text, tokens=TOKENS):
    """The model's generation for a whole prompt text, without a session (the facade's
    batch path)."""
    embeds, mask = model.build_inputs([video], [text])
    settings = model.llm.generation_kwargs(tokens, {})
    ids = model.llm.generate(embeds, settings, mask=mask)
    return model.llm.decode(ids[0])


def count_sessions(model, monkeypatch):
    calls = []
    original = type(model).session

    def session(self, video):
        calls.append(str(video))
        return original(self, video)

    monkeypatch.setattr(type(model), "session", session)
    return calls


def test_mc_run_equals_the_models_own_answers(model, videos, tmp_path, monkeypatch):
    items = load_items(write_jsonl(tmp_path / "mc.jsonl", MC_ROWS), "mc")
    calls = count_sessions(model, monkeypatch)
    summary = run_eval(items, model, tmp_path / "out", task="mc", video_root=videos,
                       max_new_tokens=TOKENS, progress=False)  # fmt: skip
    # one session per readable video (a.mp4 holds two questions), one try for the broken
    assert sorted(os.path.basename(c) for c in calls) == ["a.mp4", "b.avi", "broken.mp4"]
    lines = [
        json.loads(x) for x in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
    ]
    by_id = {line["id"]: line for line in lines}
    assert sorted(by_id) == ["q1", "q2", "q3", "q4", "q5"] and len(lines) == 5
    assert by_id["q4"]["error"].startswith("VideoDecodeError")
    assert by_id["q5"]["error"].startswith("FileNotFoundError")
    template = model.prompt_template("multiple_choice_allvideo_v4")
    correct = 0
    for row in MC_ROWS[:3]:
        line = by_id[row["id"]]
        video = videos / ("b.avi" if row["video"] == "b" else row["video"])
        expected = reference_text(
            model, video, build_prompt(template, row["question"], row["options"])
        )
        assert line["prediction"] == expected.replace("In the image", "In the video")
        # the official parser on the raw text, written out here for these texts: the
        # first character a-e, unless "X:" / "X)" occurs (eval_multiple_choice_qa.py:13-31)
        letter = (
            {"A": 0, "B": 1, "C": 2}[row["answer"].upper()]
            if isinstance(row["answer"], str)
            else row["answer"]
        )
        first = expected[:1].lower() if expected[:1] in "abcdeABCDE" else "none"
        marked = [c.lower() for c in "ABCDE" if f"{c}:" in expected or f"{c})" in expected]
        chosen = marked[0] if marked else first
        assert line["correct"] == (chosen == "abcde"[letter])
        correct += line["correct"]
    assert summary["scored"] == 3 and summary["failed"] == 2 and summary["total"] == 5
    assert summary["accuracy"] == pytest.approx(correct / 3)
    assert summary["strict_accuracy"] == pytest.approx(correct / 5)
    assert set(summary["categories"]) == {"colour", "count"}
    assert summary["generation"]["num_frames"] == FRAMES
    assert summary["generation"]["max_new_tokens"] == TOKENS
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["accuracy"] == summary["accuracy"]


def test_open_run_asks_the_judge_the_official_prompt(model, videos, tmp_path):
    items = load_items(write_jsonl(tmp_path / "open.jsonl", OPEN_ROWS), "open")
    replies = iter(["{'pred': 'yes', 'score': 4.8}", "not a dict", "not a dict again",
                    "{'pred': 'no', 'score': 2}"])  # fmt: skip
    from sfllava_ext.eval import ChatJudge

    with judge_server(lambda body: next(replies)) as server:
        judge = ChatJudge(server.url, attempts=2, backoff=0.01)
        summary = run_eval(items, model, tmp_path / "out", task="open", judge=judge,
                           video_root=videos, max_new_tokens=TOKENS, progress=False)  # fmt: skip
        bodies = [r["body"] for r in server.requests]
    by_id = {
        json.loads(x)["id"]: json.loads(x)
        for x in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
    }
    assert by_id["4"]["error"].startswith("VideoDecodeError")
    for number, row in enumerate(OPEN_ROWS[:3], 1):
        video = videos / ("b.avi" if row["video"] == "b" else row["video"])
        assert by_id[str(number)]["prediction"] == model.answer(
            video, row["question"], max_new_tokens=TOKENS
        )
    # item 1 judged first, item 3 (same video) twice (its reply unreadable), then item 2
    asked = [(0, "1"), (2, "3"), (2, "3"), (1, "2")]
    assert [b["messages"] for b in bodies] == [
        judge_messages("default", OPEN_ROWS[row]["question"], OPEN_ROWS[row]["answer"], by_id[i]["prediction"])
        for row, i in asked
    ]  # fmt: skip
    assert bodies[0]["model"] == "gpt-3.5-turbo"
    assert by_id["1"]["verdict"] == "yes" and by_id["1"]["score"] == 4
    assert by_id["2"]["verdict"] == "no" and by_id["2"]["score"] == 2
    assert by_id["3"]["reply"] == "not a dict again" and by_id["3"]["malformed"]
    # counted: items 1 and 2 (one yes, one no); 4.8 truncates to 4 (eval_video_qa.py:191-199)
    assert summary["accuracy"] == 0.5 and summary["score"] == 3.0
    assert summary["strict_accuracy"] == 0.25 and summary["strict_score"] == 1.5
    assert (summary["scored"], summary["failed"]) == (2, 2)
    assert summary["judge"]["model"] == "gpt-3.5-turbo" and summary["judge"]["url"] == server.url


def test_a_judge_that_fails_is_asked_again_on_the_rerun(model, videos, tmp_path, monkeypatch):
    items = load_items(write_jsonl(tmp_path / "open.jsonl", OPEN_ROWS[:2]), "open")
    from sfllava_ext.eval import ChatJudge

    with judge_server(lambda body: (503, "down")) as server:
        summary = run_eval(items, model, tmp_path / "out", task="open",
                           judge=ChatJudge(server.url, attempts=2, backoff=0.01),
                           video_root=videos, max_new_tokens=TOKENS, progress=False)  # fmt: skip
    assert summary["pending"] == 2 and summary["scored"] == 0
    first = (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
    assert all(json.loads(x)["retry"] for x in first)
    calls = count_sessions(model, monkeypatch)
    with judge_server(by_answer) as server:  # the same judge, back (at another address)
        summary = run_eval(items, model, tmp_path / "out", task="open",
                           judge=ChatJudge(server.url, attempts=2, backoff=0.01),
                           video_root=videos, max_new_tokens=TOKENS, progress=False)  # fmt: skip
        assert len(server.requests) == 2
    assert calls == []  # the predictions were kept: only the judging was done again
    assert summary["pending"] == 0 and summary["scored"] == 2
    # another judge's verdicts are not mixed into the same figures
    with pytest.raises(RunMismatchError, match="judged by"):
        run_eval(items, model, tmp_path / "out", task="open", judge=ExactJudge(),
                 video_root=videos, max_new_tokens=TOKENS, progress=False)  # fmt: skip


def test_a_judge_that_stays_down_stops_the_run(model, videos, tmp_path):
    rows = [{"video": "a.mp4", "question": f"Question {n}?", "answer": "x"} for n in range(5)]
    items = load_items(write_jsonl(tmp_path / "open.jsonl", rows), "open")
    from sfllava_ext.eval import ChatJudge, JudgeUnavailable

    with judge_server(lambda body: (503, "down")) as server:
        with pytest.raises(JudgeUnavailable, match="3 items in a row"):
            run_eval(items, model, tmp_path / "out", task="open",
                     judge=ChatJudge(server.url, attempts=2, backoff=0.01),
                     video_root=videos, max_new_tokens=TOKENS, progress=False)  # fmt: skip
        assert len(server.requests) == 3 * 2  # three items, two attempts each, then stopped
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["pending"] == 5 and summary["total"] == 3


def test_a_folder_holding_another_runs_work_is_refused(model, videos, tmp_path):
    out = tmp_path / "out"
    items = load_items(write_jsonl(tmp_path / "mc.jsonl", MC_ROWS[:2]), "mc")
    run_eval(items, model, out, task="mc", video_root=videos, max_new_tokens=TOKENS, progress=False)
    # other questions under the same ids
    other = [{**row, "question": row["question"] + " really?"} for row in MC_ROWS[:2]]
    with pytest.raises(RunMismatchError, match="holds id 'q1' for another item"):
        run_eval(load_items(write_jsonl(tmp_path / "other.jsonl", other), "mc"), model, out,
                 task="mc", video_root=videos, max_new_tokens=TOKENS, progress=False)  # fmt: skip
    # the same questions and more, under other settings
    more = load_items(write_jsonl(tmp_path / "more.jsonl", MC_ROWS[:3]), "mc")
    with pytest.raises(RunMismatchError, match="max_new_tokens 6 there, 9 here"):
        run_eval(more, model, out, task="mc", video_root=videos, max_new_tokens=9, progress=False)
    with pytest.raises(RunMismatchError, match="holds a mc run"):
        run_eval(load_items(write_jsonl(tmp_path / "o.jsonl", OPEN_ROWS[:1]), "open"), model, out,
                 task="open", judge=ExactJudge(), video_root=videos, progress=False)  # fmt: skip
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 2  # nothing was added by the refused runs


def test_a_killed_run_resumes_without_duplicates(videos, tmp_path):
    rows = [{"id": f"i{n}", "video": "a.mp4" if n % 2 else "b", "question": f"Question {n}?",
             "options": ["one", "two", "three"], "answer": n % 3} for n in range(8)]  # fmt: skip
    data = write_jsonl(tmp_path / "mc.jsonl", rows)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "sfllava_ext.cli", "eval", "run", str(data), "--task", "mc",
            "-o", str(out), "--demo", "--dtype", "float32", "--device", "cpu",
            "--num-frames", str(FRAMES), "--max-new-tokens", str(TOKENS),
            "--video-root", str(videos), "--quiet"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    # from outside the checkout: `python -m` puts the current folder first on sys.path,
    # where the sources are not built when the package is installed (as in CI)
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    predictions = out / "predictions.jsonl"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if predictions.exists() and len(predictions.read_text().splitlines()) >= 2:
            break
        if proc.poll() is not None:
            pytest.fail(
                f"the run ended before it was killed: {proc.stderr.read().decode()[-2000:]}"
            )
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = predictions.read_text().splitlines()
    assert 2 <= len(before) < len(rows)
    with open(predictions, "a") as f:  # a line cut short, as a kill mid-write leaves it
        f.write('{"id": "i7", "predic')
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    after = [json.loads(x) for x in predictions.read_text().splitlines()]
    assert sorted(line["id"] for line in after) == sorted(row["id"] for row in rows)
    assert [json.loads(x) for x in before] == after[: len(before)]
    # the resumed predictions equal a run that was never killed
    whole = tmp_path / "whole"
    subprocess.run([*argv[:argv.index("-o") + 1], str(whole), *argv[argv.index("-o") + 2 :]],
                   env=env, cwd=tmp_path, check=True, capture_output=True, timeout=300)  # fmt: skip
    expected = {
        json.loads(x)["id"]: json.loads(x)
        for x in (whole / "predictions.jsonl").read_text().splitlines()
    }
    assert {line["id"]: line for line in after} == expected
    assert "mc: accuracy" in done.stdout


def test_judge_is_required_for_open_questions(model, tmp_path):
    items = load_items(write_jsonl(tmp_path / "open.jsonl", OPEN_ROWS[:1]), "open")
    with pytest.raises(ValueError, match="judge"):
        run_eval(items, model, tmp_path / "out", task="open", progress=False)
