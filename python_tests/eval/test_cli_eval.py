"""``sfllava eval run`` in every format and ``sfllava eval score`` on official prediction
files, through the command itself; ``--ray`` on a real local Ray cluster equals the
local run."""

from __future__ import annotations

import csv
import json
import os

import pytest
from support.judge_server import by_answer, judge_server
from support.videos import write_test_video

from sfllava_ext.cli import main

FRAMES = 8
TOKENS = 4
MODEL = ["--demo", "--dtype", "float32", "--device", "cpu", "--num-frames", str(FRAMES),
         "--max-new-tokens", str(TOKENS), "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Videos named as each benchmark's files name them."""
    root = tmp_path_factory.mktemp("eval-cli")
    for name in ["vid1.mp4", "vid2.mp4", "msvd_a.avi", "msvd_b.avi", "v_anet1.mp4", "v_anet2.mkv"]:
        write_test_video(
            root / name, 96, 64, 20, codec="mpeg4" if name.endswith(".avi") else "libx264"
        )
    return root


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i, row in enumerate(rows):
            writer.writerow([i, *row])
    return path


def run_cli(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def summary_of(out_dir):
    return json.loads((out_dir / "summary.json").read_text())


def predictions_of(out_dir):
    return [json.loads(x) for x in (out_dir / "predictions.jsonl").read_text().splitlines()]


def mc_csv(fmt, path):
    """Two questions in the IG-VLM CSV layout of ``fmt`` (the columns its official
    prepare script unpacks)."""
    opts = ["run", "jump", "sit", "swim", "fly"]
    if fmt == "nextqa":
        header = ["", "video_name", "frame_count", "width", "height", "question", "answer_number",
                  "question_id", "question_type", "a0", "a1", "a2", "a3", "a4", "answer"]  # fmt: skip
        rows = [["vid1", 20, 96, 64, "what does it do?", 1, "n1", "CW", *opts, "jump"],
                ["vid2", 20, 96, 64, "what next?", 4, "n2", "TN", *opts, "fly"]]  # fmt: skip
    elif fmt == "egoschema":
        header = [
            "",
            "video_name",
            "question_id",
            "question",
            "answer",
            "a0",
            "a1",
            "a2",
            "a3",
            "a4",
        ]
        rows = [
            ["vid1", "e1", "what does c do?", "sit", *opts],
            ["vid2", "e2", "why?", "run", *opts],
        ]
    else:
        header = ["", "video_name", "question", "question_id", "answer", "video_id", "question_type",
                  "a0", "a1", "a2", "a3", "a4"]  # fmt: skip
        rows = [
            ["vid1", "why run?", "i1", "swim", 7, "CW", *opts],
            ["vid2", "how?", "i2", "run", 8, "TP", *opts],
        ]
    return write_csv(path, header, rows)


@pytest.mark.parametrize("fmt", ["nextqa", "egoschema", "intentqa"])
def test_run_reads_each_multiple_choice_format(fmt, root, tmp_path, capsys):
    data = mc_csv(fmt, tmp_path / f"{fmt}.csv")
    out = tmp_path / "out"
    printed = run_cli(["eval", "run", str(data), "--format", fmt, "-o", str(out),
                       "--video-root", str(root), *MODEL], capsys)  # fmt: skip
    summary = summary_of(out)
    assert summary["task"] == "mc" and summary["format"] == fmt
    assert (summary["scored"], summary["failed"], summary["total"]) == (2, 0, 2)
    lines = predictions_of(out)
    assert [line["id"] for line in lines] == [f"{fmt[0]}1", f"{fmt[0]}2"]
    assert all(isinstance(line["correct"], bool) and line["prediction"] for line in lines)
    assert summary["accuracy"] == sum(line["correct"] for line in lines) / 2
    assert "mc: accuracy" in printed and "summary.json" in printed


OPEN_HEADER = ["", "video_id", "answer", "question", "video_name", "question_id", "question_type"]


@pytest.mark.parametrize("fmt,names", [("msvd", ["msvd_a", "msvd_b"]), ("msrvtt", ["vid1", "vid2"]),
                                       ("tgif", ["vid1", "vid2"]), ("activitynet", ["v_anet1", "v_anet2"])])  # fmt: skip
def test_run_reads_each_open_ended_format(fmt, names, root, tmp_path, capsys):
    rows = [[1, "a box", "what is it?", names[0], f"{fmt}-1", 0],
            [2, "nothing", "what happens?", names[1], f"{fmt}-2", 3]]  # fmt: skip
    data = write_csv(tmp_path / f"{fmt}.csv", OPEN_HEADER, rows)
    out = tmp_path / "out"
    with judge_server(by_answer) as server:
        run_cli(["eval", "run", str(data), "--format", fmt, "-o", str(out), "--video-root", str(root),
                 "--judge-url", server.url, *MODEL], capsys)  # fmt: skip
        asked = len(server.requests)
    summary = summary_of(out)
    assert asked == 2 and summary["scored"] == 2 and summary["failed"] == 0
    assert set(summary["categories"]) == {"0", "3"}
    assert summary["judge"]["url"] == server.url
    # by_answer: yes/4 where the reference is in the prediction, else no/1
    lines = predictions_of(out)
    yes = sum(row[1] in line["prediction"] for row, line in zip(rows, lines, strict=True))
    assert summary["accuracy"] == yes / 2 and summary["score"] == (4 * yes + (2 - yes)) / 2


def test_run_reads_the_vcgbench_folder(root, tmp_path, capsys):
    folder = tmp_path / "vcg"
    folder.mkdir()
    header = ["", "video_name", "question", "question_id", "answer", "question_type"]
    write_csv(
        folder / "Generic_QA.csv", header, [["v_anet1", "describe it", "g1", "a square", "generic"]]
    )
    write_csv(
        folder / "Temporal_QA.csv",
        header,
        [["v_anet2", "what first?", "t1", "it moves", "temporal"]],
    )
    write_csv(
        folder / "Consistency_QA1.csv", header, [["v_anet1", "what moves?", "c1", "a square", "c"]]
    )
    write_csv(
        folder / "Consistency_QA2.csv",
        header,
        [["v_anet1", "which thing moves?", "c1", "a square", "c"]],
    )
    out = tmp_path / "out"
    printed = run_cli(["eval", "run", str(folder), "--format", "vcgbench", "-o", str(out),
                       "--video-root", str(root), "--judge", "exact", *MODEL], capsys)  # fmt: skip
    summary = summary_of(out)
    assert set(summary["criteria"]) == {"correctness", "detailed_orientation", "context",
                                        "temporal", "consistency"}  # fmt: skip
    scores = [c["score"] for c in summary["criteria"].values()]
    assert summary["score"] == pytest.approx(sum(scores) / 5)
    lines = {line["id"]: line for line in predictions_of(out)}
    assert set(lines) == {"generic/g1", "temporal/t1", "consistency/c1"}
    assert (
        set(lines["consistency/c1"]["replies"]) == {"consistency"}
        and lines["consistency/c1"]["prediction2"]
    )
    assert "consistency" in printed


def test_run_reads_prepared_files_like_their_csv(root, tmp_path, capsys):
    """The prepared val_q.json / val_a.json pair gives the run the CSV gives."""
    rows = [
        [1, "a box", "what is it?", "msvd_a", "m1", 0],
        [2, "nothing", "what?", "msvd_b", "m2", 1],
    ]
    data = write_csv(tmp_path / "MSVD_QA.csv", OPEN_HEADER, rows)
    (tmp_path / "val_q.json").write_text(json.dumps(
        [{"video_name": r[3], "question_id": r[4], "question": r[2]} for r in rows]))  # fmt: skip
    (tmp_path / "val_a.json").write_text(json.dumps(
        [{"answer": r[1], "type": r[5], "question_id": r[4]} for r in rows]))  # fmt: skip
    outs = []
    for name, source in [("csv", data), ("json", tmp_path / "val_q.json")]:
        outs.append(tmp_path / name)
        run_cli(["eval", "run", str(source), "--format", "msvd", "-o", str(outs[-1]),
                 "--video-root", str(root), "--judge", "exact", *MODEL], capsys)  # fmt: skip
    assert predictions_of(outs[0]) == predictions_of(outs[1])


def test_score_reads_official_multiple_choice_lines(tmp_path, capsys):
    """Lines as the official inference writes them, one as JSON and one as a Python
    literal (which their scorer's eval accepts): two tasks, averaged as they average."""
    lines = [
        {"task_name": "T1", "question": "q", "id": "1", "answer_number": 0, "candidates": ["a", "b"], "answer": "a", "pred": "A) a"},
        {"task_name": "T1", "question": "q", "id": "2", "answer_number": 1, "candidates": ["a", "b"], "answer": "b", "pred": "A) a"},
        {"task_name": "T2", "question": "q", "id": "3", "answer_number": 1, "candidates": ["a", "b"], "answer": "b", "pred": "B"},
    ]  # fmt: skip
    path = tmp_path / "merge.jsonl"
    path.write_text(json.dumps(lines[0]) + "\n" + repr(lines[1]) + "\n" + repr(lines[2]) + "\n")
    printed = run_cli(["eval", "score", str(path), "--task", "mc"], capsys)
    summary = summary_of(tmp_path)
    # T1: 1 of 2, T2: 1 of 1 -> mean over tasks (eval_multiple_choice_qa.py:72-83)
    assert summary["accuracy"] == 0.75 and summary["tasks"]["T1"]["accuracy"] == 0.5
    assert "0.75" not in printed and "75.0%" in printed


def test_score_judges_official_open_ended_lines_once(tmp_path, capsys, monkeypatch):
    lines = [{"question": "what?", "id": "v1", "answer": "dog", "pred": "a dog runs"},
             {"question": "who?", "id": "v2", "answer": "man", "pred": "a woman"}]  # fmt: skip
    path = tmp_path / "merge.jsonl"
    path.write_text("".join(repr(line) + "\n" for line in lines))
    out = tmp_path / "scored"
    with judge_server(by_answer) as server:
        run_cli(
            [
                "eval",
                "score",
                str(path),
                "--task",
                "open",
                "--judge-url",
                server.url,
                "-o",
                str(out),
            ],
            capsys,
        )
        # a second score reuses the judged lines
        run_cli(
            [
                "eval",
                "score",
                str(path),
                "--task",
                "open",
                "--judge-url",
                server.url,
                "-o",
                str(out),
            ],
            capsys,
        )
        asked = len(server.requests)
    assert asked == 2
    summary = summary_of(out)
    # "man" is in "a woman" as text, so by_answer says yes to both
    assert summary["accuracy"] == 1.0 and summary["score"] == 4.0
    # our own predictions file carries its replies: no judge (and no key) needed
    monkeypatch.delenv("SFLLAVA_JUDGE_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    run_cli(
        [
            "eval",
            "score",
            str(out / "judged.jsonl"),
            "--task",
            "open",
            "-o",
            str(tmp_path / "again"),
        ],
        capsys,
    )
    assert summary_of(tmp_path / "again")["accuracy"] == 1.0


def test_score_reads_official_consistency_lines(tmp_path, capsys):
    line = {"question": ["what moves?", "which thing moves?"], "id": "c1", "answer": "a square",
            "pred1": "a square moves", "pred2": "the square"}  # fmt: skip
    path = tmp_path / "merge.jsonl"
    path.write_text(json.dumps(line) + "\n")
    run_cli(["eval", "score", str(path), "--task", "generative", "--judge", "exact"], capsys)
    summary = summary_of(tmp_path)
    assert list(summary["criteria"]) == ["consistency"]
    assert summary["criteria"]["consistency"]["score"] == 0  # "the square" lacks "a square"


def test_errors_are_one_line(tmp_path, capsys, monkeypatch):
    data = tmp_path / "items.jsonl"
    data.write_text(json.dumps({"video": "x.mp4", "question": "q?", "answer": "a"}) + "\n")
    assert main(["eval", "run", str(data), "-o", str(tmp_path / "o"), *MODEL]) == 1
    assert "task is required" in capsys.readouterr().err
    monkeypatch.delenv("SFLLAVA_JUDGE_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert (
        main(["eval", "run", str(data), "--task", "open", "-o", str(tmp_path / "o"), *MODEL]) == 1
    )
    assert "SFLLAVA_JUDGE_API_KEY" in capsys.readouterr().err
    assert (
        main(
            [
                "eval",
                "run",
                str(data),
                "--format",
                "nextqa",
                "--task",
                "open",
                "-o",
                str(tmp_path / "o"),
                *MODEL,
            ]
        )
        == 1
    )
    assert "holds mc questions" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    assert main(["eval", "score", str(bad), "--task", "mc"]) == 1
    assert "bad.jsonl:1" in capsys.readouterr().err


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    ray = pytest.importorskip("ray")
    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("ray-cwd"))  # not the checkout: workers import from here
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        os.chdir(here)


def test_ray_run_equals_the_local_run(cluster, root, tmp_path, capsys):
    data = mc_csv("nextqa", tmp_path / "nextqa.csv")
    outs = {}
    for name, extra in [("local", []), ("ray", ["--ray"])]:
        outs[name] = tmp_path / name
        run_cli(["eval", "run", str(data), "--format", "nextqa", "-o", str(outs[name]),
                 "--video-root", str(root), *extra, *MODEL], capsys)  # fmt: skip
    assert predictions_of(outs["ray"]) == predictions_of(outs["local"])
    local, ray_summary = summary_of(outs["local"]), summary_of(outs["ray"])
    assert ray_summary["accuracy"] == local["accuracy"]
    assert ray_summary["generation"] == local["generation"]


def test_score_counts_a_repeated_id_once_as_the_official_scorer(tmp_path, capsys):
    # eval/eval_video_qa.py:117-124 keys the predictions by str(id): of ids "1", 1 and
    # "2" only the last "1" and the "2" are judged and counted
    lines = [{"question": "q", "id": "1", "answer": "dog", "pred": "a dog"},
             {"question": "q", "id": 1, "answer": "dog", "pred": "a cat"},
             {"question": "q", "id": "2", "answer": "man", "pred": "a man"}]  # fmt: skip
    path = tmp_path / "merge.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    for _ in range(2):  # a rerun reuses every judged line, the repeated id's too
        run_cli(["eval", "score", str(path), "--task", "open", "--judge", "exact"], capsys)
    summary = summary_of(tmp_path)
    assert summary["accuracy"] == 0.5 and summary["score"] == 2.5
    assert summary["strict_accuracy"] == pytest.approx(2 / 3)
    assert len((tmp_path / "judged.jsonl").read_text().splitlines()) == 3


def test_score_judges_again_for_other_criteria_or_another_judge(tmp_path, capsys):
    line = {
        "question": "describe",
        "id": "g1",
        "answer": "a square moves",
        "pred": "a square moves",
    }
    path = tmp_path / "merge.jsonl"
    path.write_text(json.dumps(line) + "\n")
    with judge_server(by_answer) as server:
        for criteria in ("correctness", "temporal", "temporal"):
            run_cli(["eval", "score", str(path), "--task", "generative", "--criteria", criteria,
                     "--judge-url", server.url], capsys)  # fmt: skip
            assert list(summary_of(tmp_path)["criteria"]) == [criteria]
        assert len(server.requests) == 2  # the second temporal scoring reused the first
    run_cli(["eval", "score", str(path), "--task", "generative", "--criteria", "temporal",
             "--judge", "exact"], capsys)  # fmt: skip
    assert summary_of(tmp_path)["criteria"]["temporal"]["score"] == 5  # exact's, not by_answer's 4


def test_unreadable_inputs_are_one_line_errors(tmp_path, capsys):
    deep = tmp_path / "deep.jsonl"
    deep.write_text(
        '{"id": "1", "pred": "A", "answer_number": 0, "task_name": "t"}\n\n' + "[" * 100000 + "\n"
    )
    assert main(["eval", "score", str(deep), "--task", "mc"]) == 1
    assert "deep.jsonl:3: nested too deeply" in capsys.readouterr().err
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b'{"id": "1"}\n\xff\xfe\n')
    assert main(["eval", "score", str(binary), "--task", "mc"]) == 1
    assert "not UTF-8" in capsys.readouterr().err
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    assert main(["eval", "run", str(fifo), "--task", "mc", "-o", str(tmp_path / "o"), *MODEL]) == 1
    assert "not a regular file" in capsys.readouterr().err
    assert main(["eval", "run", str(fifo), "--task", "mc", "--criteria", "temporal",
                 "-o", str(tmp_path / "o"), *MODEL]) == 1  # fmt: skip
    assert capsys.readouterr().err.count("\n") == 1
