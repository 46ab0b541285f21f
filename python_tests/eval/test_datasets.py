"""Question files (:mod:`sfllava_ext.eval.datasets`): the layouts the official SF-LLaVA
evaluation reads, both the IG-VLM CSV files and the JSON files that its
``scripts/data/prepare_*_qa_file.py`` (github.com/apple/ml-slowfast-llava) make from them,
each written here by the test in that layout; and our own JSONL / CSV layout.

The prepared files are built the way each prepare script builds them (cited per
builder), and each layout's items are checked against literals: ids, the video file the
official inference would open (in a folder holding files named as it looks for them),
questions, answers, the answer's index, options and categories.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from sfllava_ext.eval.datasets import FORMATS, DatasetError, EvalItem, load_items, resolve_video

# ------------------------------------------------------------------ official layouts

# The header each prepare script's comment gives and its row unpacking expects
# (scripts/data/prepare_nextqa_qa_file.py:15-19, prepare_egoschema_qa_file.py:15-19,
# prepare_intentqa_qa_file.py:15-19; prepare_{msvd,msrvtt,tgif,activitynet}_qa_file.py
# :16-20; prepare_vcgbench_qa_file.py:17-21 and :37-41).
MC_HEADERS = {
    "nextqa": ["", "video_name", "frame_count", "width", "height", "question", "answer_number",
               "question_id", "question_type", "a0", "a1", "a2", "a3", "a4", "answer"],
    "egoschema": ["", "video_name", "question_id", "question", "answer",
                  "a0", "a1", "a2", "a3", "a4"],
    "intentqa": ["", "video_name", "question", "question_id", "answer", "video_id",
                 "question_type", "a0", "a1", "a2", "a3", "a4"],
}  # fmt: skip
OPEN_HEADER = ["", "video_id", "answer", "question", "video_name", "question_id", "question_type"]
VCG_HEADER = ["", "video_name", "question", "question_id", "answer", "question_type"]

DOG = ["it swam", "it rained", "bath time", "sprinkler", "sweat"]
COOK = ["to clean", "to cook", "to read", "to cook", "to sleep"]  # "to cook" twice
KNIFE = ["a knife", "a fork", "a spoon", "a pan", "a cup"]
BABY = ["to feed her", "to comfort her", "to play", "to dance", "to leave"]
GIRL = ["cried", "laughed", "stood up", "ran", "sat"]
CUP = ["stand up", "wave", "pick up the cup", "laugh", "run away"]

MC_ROWS = {
    "nextqa": [
        ["0", "1000", "369", "640", "480", 'what does the man, in "red", do after he sits down',
         "2", "10001", "TN", *CUP, "pick up the cup"],
        ["1", "1001", "2697", "640", "360", "why is the dog wet", "0", "10012", "CW", *DOG,
         "it swam"],
    ],
    "egoschema": [
        ["0", "0074f737-aaaa", "q-ego-1", "Taking into account all the actions, what is c's goal?",
         "to cook", *COOK],
        ["1", "11aa-bbbb", "q-ego-2", "What tool does c use most?", "a knife", *KNIFE],
    ],
    "intentqa": [
        ["0", "4010069381", "why did the man pick up the baby", "4010069381_3", "to comfort her",
         "4010069381", "CW", *BABY],
        ["1", "5882821564", "what did the girl do after falling", "5882821564_1", "stood up",
         "5882821564", "TN", *GIRL],
    ],
}  # fmt: skip
MC_TASK_NAMES = {"nextqa": "NExTQA", "egoschema": "EgoSchema", "intentqa": "IntentQA"}

# (id, video file, question, answer, answer_number, options, category in the CSV); the
# prepared JSON keeps no question_type, so its items have no category
MC_EXPECTED = {
    "nextqa": [
        ("10001", "1000.mp4", 'what does the man, in "red", do after he sits down',
         "pick up the cup", 2, CUP, "TN"),
        ("10012", "1001.mp4", "why is the dog wet", "it swam", 0, DOG, "CW"),
    ],
    "egoschema": [
        # candidates.index(answer): the first of equal options (prepare_egoschema_qa_file.py:27)
        ("q-ego-1", "0074f737-aaaa.mp4", "Taking into account all the actions, what is c's goal?",
         "to cook", 1, COOK, None),
        ("q-ego-2", "11aa-bbbb.mp4", "What tool does c use most?", "a knife", 0, KNIFE, None),
    ],
    "intentqa": [
        ("4010069381_3", "4010069381.mp4", "why did the man pick up the baby", "to comfort her",
         1, BABY, "CW"),
        ("5882821564_1", "5882821564.mp4", "what did the girl do after falling", "stood up", 2,
         GIRL, "TN"),
    ],
}  # fmt: skip


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data, indent=4), encoding="utf-8")
    return path


def prepared_mc(fmt: str, rows: list[list[str]]) -> list[dict]:
    """What prepare_{nextqa,egoschema,intentqa}_qa_file.py write (:19-30 of each): the
    video name with ".mp4", the answer's index (NExT-QA's own column, else the first
    candidate equal to the answer), the five candidates and the answer text."""
    out = []
    for row in rows:
        values = dict(zip(MC_HEADERS[fmt], row, strict=True))
        candidates = [values[f"a{i}"] for i in range(5)]
        number = (int(values["answer_number"]) if fmt == "nextqa"
                  else candidates.index(values["answer"]))  # fmt: skip
        out.append({
            "task_name": MC_TASK_NAMES[fmt], "video_name": f"{values['video_name']}.mp4",
            "question_id": values["question_id"], "question": values["question"],
            "answer_number": number, "candidates": candidates, "answer": values["answer"],
        })  # fmt: skip
    return out


def videos(folder: Path, *names: str) -> Path:
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


@pytest.mark.parametrize("fmt", ["nextqa", "egoschema", "intentqa"])
def test_multiple_choice_layouts_csv_and_prepared(tmp_path, fmt):
    rows = MC_ROWS[fmt]
    source = write_csv(tmp_path / f"{fmt}.csv", MC_HEADERS[fmt], rows)
    prepared = write_json(tmp_path / "val_qa.json", prepared_mc(fmt, rows))
    # run_inference_multiple_choice_qa.py:123 opens video_dir/video_name as it is
    root = videos(tmp_path / "videos", *(e[1] for e in MC_EXPECTED[fmt]))
    from_csv = load_items(source, fmt=fmt)
    from_json = load_items(prepared, task="mc", fmt=fmt)
    for items, from_source in ((from_csv, True), (from_json, False)):
        assert len(items) == len(MC_EXPECTED[fmt])
        for item, (qid, video, question, answer, number, options, category) in zip(
            items, MC_EXPECTED[fmt], strict=True
        ):
            assert (item.id, item.question, item.answer) == (qid, question, answer)
            assert (item.answer_number, item.options) == (number, tuple(options))
            assert item.task == MC_TASK_NAMES[fmt]  # the official scorer's task_name
            assert item.category == (category if from_source else None)
            assert resolve_video(item.video, root) == root / video
            assert item.question2 is None and item.criteria == ()


# open-ended: (rows of the CSV, video file the inference opens, category)
OPEN_ROWS = {
    "msvd": [
        ["0", "1", "guitar", 'what is the man, in "red", playing?', "-4wsuPCjDBc_5_15", "0", "1"],
        ["1", "2", "cat", "what animal is running?", "-7KMZQEsJW4_205_208", "1", "0"],
    ],
    "msrvtt": [
        ["0", "7010", "cooking", "what is the woman doing?", "video7010", "0", "2"],
        ["1", "7011", "two", "how many people dance?", "video7011", "1", "4"],
    ],
    "tgif": [
        ["0", "3", "black", "what is the color of the dog?", "tumblr_nk172bbdPI1u1lr18o1_250",
         "3", "2"],
        ["1", "4", "jumps", "what does the cat do?", "tumblr_abc", "4", "0"],
    ],
    "activitynet": [
        ["1", "v_1QIUV7WYKXg", "no", "is the athlete wearing trousers", "v_1QIUV7WYKXg",
         "v_1QIUV7WYKXg_3", "3"],
        ["2", "v_-crpjVnFv0U", "day", "is it day or night in the video", "v_-crpjVnFv0U",
         "v_-crpjVnFv0U_8", "8"],
    ],
}  # fmt: skip
# the file the official open-ended inference finds: name + the first of .mp4, .avi, .mov,
# .mkv that exists (run_inference_video_qa.py:25, :120-125), ActivityNet's with "v_"
# put back in front of the prepared name (:122)
OPEN_VIDEOS = {
    "msvd": ["-4wsuPCjDBc_5_15.avi", "-7KMZQEsJW4_205_208.avi"],
    "msrvtt": ["video7010.mp4", "video7011.mp4"],
    "tgif": ["tumblr_nk172bbdPI1u1lr18o1_250.mp4", "tumblr_abc.mp4"],
    "activitynet": ["v_1QIUV7WYKXg.mp4", "v_-crpjVnFv0U.mp4"],
}
OPEN_FILES = {"msvd": "val", "msrvtt": "val", "tgif": "val", "activitynet": "test"}


def prepared_open(fmt: str, rows: list[list[str]]) -> tuple[list[dict], list[dict]]:
    """What prepare_{msvd,msrvtt,tgif,activitynet}_qa_file.py write (:20-30 of each): a
    questions file and an answers file, paired by position; ActivityNet's video names
    lose their "v_" (prepare_activitynet_qa_file.py:22); the type becomes an int."""
    questions, answers = [], []
    for row in rows:
        _, _, answer, question, video, qid, kind = row
        questions.append({"video_name": video[2:] if fmt == "activitynet" else video,
                          "question_id": qid, "question": question})  # fmt: skip
        answers.append({"answer": answer, "type": int(kind), "question_id": qid})
    return questions, answers


@pytest.mark.parametrize("fmt", ["msvd", "msrvtt", "tgif", "activitynet"])
def test_open_ended_layouts_csv_and_prepared(tmp_path, fmt):
    rows = OPEN_ROWS[fmt]
    source = write_csv(tmp_path / f"{fmt}.csv", OPEN_HEADER, rows)
    questions, answers = prepared_open(fmt, rows)
    stem = OPEN_FILES[fmt]
    prepared = write_json(tmp_path / f"{stem}_q.json", questions)
    write_json(tmp_path / f"{stem}_a.json", answers)
    root = videos(tmp_path / "videos", *OPEN_VIDEOS[fmt])
    for items in (load_items(source, fmt=fmt), load_items(prepared, task="open", fmt=fmt)):
        assert [i.id for i in items] == [r[5] for r in rows]
        assert [i.question for i in items] == [r[3] for r in rows]
        assert [i.answer for i in items] == [r[2] for r in rows]
        assert [i.category for i in items] == [r[6] for r in rows]
        assert [resolve_video(i.video, root) for i in items] == [root / v for v in OPEN_VIDEOS[fmt]]
        assert all(i.options is None and i.answer_number is None for i in items)
        assert all(i.task == "default" and i.criteria == () for i in items)


def test_resolve_video_tries_the_official_extensions_in_order(tmp_path):
    root = videos(tmp_path / "videos", "clip.avi", "clip.mkv", "clip.mp4", "v_anet.mov")
    assert resolve_video("clip", root) == root / "clip.mp4"  # .mp4 first (:25)
    (root / "clip.mp4").unlink()
    assert resolve_video("clip", root) == root / "clip.avi"
    assert resolve_video("anet", root) == root / "v_anet.mov"
    assert resolve_video("v_anet", root) == root / "v_anet.mov"
    assert resolve_video("missing", root) is None
    assert resolve_video(str(root / "clip.avi"), tmp_path / "elsewhere") == root / "clip.avi"


# VCGBench: the IG-VLM folder (text_generation_benchmark) and what
# prepare_vcgbench_qa_file.py makes of it
VCG_ROWS = {
    "Generic_QA": [
        ["0", "v_p1QGn0IzfW0", "What is happening in the video?", "1", "A man rides a bike, fast.",
         "generic"],
        ["1", "v_k_ZXmr8pmrs", "Describe the setting.", "2", "A beach at sunset.", "generic"],
    ],
    "Temporal_QA": [
        ["0", "v_k_ZXmr8pmrs", "What happens after the man jumps?", "1", "He lands in the water.",
         "temporal"],
    ],
    "Consistency_QA1": [
        ["0", "v_7Pd0bV5YSmw", "What is the woman holding?", "1", "A red umbrella.", "consistency"],
    ],
    "Consistency_QA2": [
        ["0", "v_7Pd0bV5YSmw", "Which object does the woman carry?", "1", "A red umbrella.",
         "consistency"],
    ],
}  # fmt: skip
VCG_JSON = {
    "Generic_QA": "Video-ChatGPT-generic_val_qa.json",
    "Temporal_QA": "Video-ChatGPT-temporal_understanding_val_qa.json",
    "Consistency_QA": "Video-ChatGPT-consistency_val_qa.json",
}  # prepare_vcgbench_qa_file.py:52-56
GENERIC = ("correctness", "detailed_orientation", "context")
# (id, video file, question, question2, answer, category, criteria); the generic set is
# judged on three criteria (scripts/run_eval_generic.sh:73, :85, :97), the temporal set
# on one (run_eval_temporal.sh:73), the paired set on consistency (run_eval_consistency.sh:73)
VCG_EXPECTED = [
    ("generic/1", "v_p1QGn0IzfW0.mp4", "What is happening in the video?", None,
     "A man rides a bike, fast.", "generic", GENERIC),
    ("generic/2", "v_k_ZXmr8pmrs.mp4", "Describe the setting.", None, "A beach at sunset.",
     "generic", GENERIC),
    ("temporal/1", "v_k_ZXmr8pmrs.mp4", "What happens after the man jumps?", None,
     "He lands in the water.", "temporal", ("temporal",)),
    ("consistency/1", "v_7Pd0bV5YSmw.mp4", "What is the woman holding?",
     "Which object does the woman carry?", "A red umbrella.", "consistency", ("consistency",)),
]  # fmt: skip


def prepared_vcgbench(folder: Path) -> Path:
    """What prepare_vcgbench_qa_file.py writes: per set, the video name without its
    "v_" (:25, :43), the question id, the question (a pair for consistency, from the two
    files row by row, :18-29) and the answer (the first file's, :28)."""
    folder.mkdir()
    for name in ("Generic_QA", "Temporal_QA"):
        write_json(folder / VCG_JSON[name], [
            {"video_name": r[1][2:], "question_id": r[3], "question": r[2], "answer": r[4]}
            for r in VCG_ROWS[name]
        ])  # fmt: skip
    pairs = zip(VCG_ROWS["Consistency_QA1"], VCG_ROWS["Consistency_QA2"], strict=True)
    write_json(folder / VCG_JSON["Consistency_QA"], [
        {"video_name": one[1][2:], "question_id": one[3], "question": [one[2], two[2]],
         "answer": one[4]}
        for one, two in pairs
    ])  # fmt: skip
    return folder


def source_vcgbench(folder: Path) -> Path:
    folder.mkdir()
    for name, rows in VCG_ROWS.items():
        write_csv(folder / f"{name}.csv", VCG_HEADER, rows)
    return folder


def check_vcg(items: list[EvalItem], expected: list[tuple], root: Path) -> None:
    assert len(items) == len(expected)
    for item, (qid, video, question, question2, answer, category, criteria) in zip(
        items, expected, strict=True
    ):
        assert (item.id, item.question, item.question2, item.answer) == (
            qid, question, question2, answer,
        )  # fmt: skip
        assert (item.category, item.criteria) == (category, criteria)
        # the videos are ActivityNet's (scripts/run_eval_generic.sh:29), found with "v_"
        # in front (run_inference_generative_qa.py:129-132)
        assert resolve_video(item.video, root) == root / video


def test_vcgbench_folder_csv_and_prepared(tmp_path):
    root = videos(tmp_path / "videos", *{e[1] for e in VCG_EXPECTED})
    check_vcg(load_items(source_vcgbench(tmp_path / "source"), fmt="vcgbench"), VCG_EXPECTED, root)
    prepared = prepared_vcgbench(tmp_path / "prepared")
    check_vcg(load_items(prepared, task="generative", fmt="vcgbench"), VCG_EXPECTED, root)
    # one prepared file alone: that set's items
    alone = load_items(prepared / VCG_JSON["Consistency_QA"], fmt="vcgbench")
    check_vcg(alone, VCG_EXPECTED[3:], root)


def test_vcgbench_refusals(tmp_path):
    source = source_vcgbench(tmp_path / "source")
    write_csv(source / "Consistency_QA2.csv", VCG_HEADER, [["0", "v_x", "q", "9", "a", "c"]])
    # prepare_vcgbench_qa_file.py:23 asserts the paired rows share the question id
    with pytest.raises(DatasetError, match=r"Consistency_QA1\.csv:2.*question_id"):
        load_items(source, fmt="vcgbench")
    (source / "Temporal_QA.csv").unlink()
    with pytest.raises(DatasetError, match="Temporal_QA.csv"):
        load_items(source, fmt="vcgbench")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no VCGBench files"):
        load_items(tmp_path / "empty", fmt="vcgbench")
    one = [{"video_name": "x", "question_id": "1", "question": "one", "answer": "a"}]
    single = write_json(tmp_path / "Video-ChatGPT-consistency_val_qa.json", one)
    with pytest.raises(DatasetError, match="list of two"):
        load_items(single, fmt="vcgbench")
    other = write_json(tmp_path / "questions.json", [])
    with pytest.raises(DatasetError, match="VCGBench file"):
        load_items(other, fmt="vcgbench")


def test_official_csv_with_another_header_is_refused(tmp_path):
    header = list(MC_HEADERS["egoschema"])
    header[3], header[4] = header[4], header[3]  # answer before question
    path = write_csv(tmp_path / "EgoSchema.csv", header, MC_ROWS["egoschema"])
    with pytest.raises(DatasetError, match="EgoSchema.csv: expected the columns"):
        load_items(path, fmt="egoschema")
    rows = [r[:-1] for r in OPEN_ROWS["msvd"]]
    path = write_csv(tmp_path / "MSVD_QA.csv", OPEN_HEADER[:-1], rows)
    with pytest.raises(DatasetError, match="MSVD_QA.csv"):
        load_items(path, fmt="msvd")


def test_official_csv_with_a_short_row_names_the_line(tmp_path):
    rows = [MC_ROWS["nextqa"][0], MC_ROWS["nextqa"][1][:-1]]
    path = write_csv(tmp_path / "NExT_QA.csv", MC_HEADERS["nextqa"], rows)
    with pytest.raises(DatasetError, match=r"NExT_QA\.csv:3: expected 15 columns, got 14"):
        load_items(path, fmt="nextqa")


def test_official_mc_answer_not_among_the_options(tmp_path):
    # prepare_egoschema_qa_file.py:21 asserts answer in candidates
    row = ["0", "v", "q1", "question?", "a hat", *KNIFE]
    path = write_csv(tmp_path / "EgoSchema.csv", MC_HEADERS["egoschema"], [row])
    with pytest.raises(DatasetError, match=r"EgoSchema\.csv:2.*'a hat'"):
        load_items(path, fmt="egoschema")
    data = prepared_mc("egoschema", MC_ROWS["egoschema"])
    data[1]["answer_number"] = 5
    path = write_json(tmp_path / "val_qa.json", data)
    with pytest.raises(DatasetError, match=r"val_qa\.json\[1\].*answer"):
        load_items(path, fmt="egoschema")
    del data[1]["candidates"]
    write_json(path, data)
    with pytest.raises(DatasetError, match=r"val_qa\.json\[1\].*'candidates' is missing"):
        load_items(path, fmt="egoschema")


def test_prepared_open_ended_pairs(tmp_path):
    questions, answers = prepared_open("msvd", OPEN_ROWS["msvd"])
    path = write_json(tmp_path / "val_q.json", questions)
    with pytest.raises(DatasetError, match="val_a.json is not beside it"):
        load_items(path, fmt="msvd")
    write_json(tmp_path / "val_a.json", answers[:1])
    with pytest.raises(DatasetError, match="2 questions but val_a.json has 1 answers"):
        load_items(path, fmt="msvd")
    answers[1]["question_id"] = "99"
    write_json(tmp_path / "val_a.json", answers)
    with pytest.raises(DatasetError, match=r"val_q\.json\[1\].*question_id"):
        load_items(path, fmt="msvd")
    (tmp_path / "val_a.json").write_text("[{]")
    with pytest.raises(DatasetError, match="val_a.json: not JSON"):
        load_items(path, fmt="msvd")
    write_json(tmp_path / "val_a.json", {"answer": "x"})
    with pytest.raises(DatasetError, match="a JSON list of objects"):
        load_items(path, fmt="msvd")


# ------------------------------------------------------------------ format, task, path


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "ours"])
def test_a_format_refuses_another_task(tmp_path, fmt):
    other = "open" if FORMATS[fmt] != "open" else "mc"
    path = write_json(tmp_path / "x.json", [])
    with pytest.raises(ValueError, match=fmt):
        load_items(path, task=other, fmt=fmt)


def test_unknown_format_task_and_missing_path(tmp_path):
    path = write_json(tmp_path / "x.jsonl", [])
    with pytest.raises(ValueError, match="format"):
        load_items(path, task="mc", fmt="nextqa-v2")
    with pytest.raises(ValueError, match="task"):
        load_items(path, task="caption")
    with pytest.raises(ValueError, match="task is required"):
        load_items(path)
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        load_items(tmp_path / "nowhere.jsonl", task="open")


# ------------------------------------------------------------------ our layout


def write_lines(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_ours_jsonl_multiple_choice(tmp_path):
    options = ["a cat", "a dog", "a bird"]
    path = write_lines(tmp_path / "items.jsonl", [
        {"id": "q1", "video": "a.mp4", "question": "Who?", "options": options, "answer": "B"},
        {"video": "b.mp4", "question": "Who?", "options": options, "answer": 2,
         "task_name": "birds", "category": "animals"},
        "",  # a blank line is skipped, and still counts in the line numbers
        {"video": "c.mp4", "question": "Who?", "options": options, "answer": "a"},
        {"video": "d.mp4", "question": "Who?", "options": options, "answer": "1"},
    ])  # fmt: skip
    items = load_items(path, task="mc")
    assert [i.id for i in items] == ["q1", "2", "4", "5"]  # the line number by default
    assert [i.answer_number for i in items] == [1, 2, 0, 1]
    assert [i.answer for i in items] == ["a dog", "a bird", "a cat", "a dog"]
    assert all(i.options == tuple(options) for i in items)
    assert [i.task for i in items] == ["default", "birds", "default", "default"]
    assert items[1].category == "animals"
    assert items[1].record() == {
        "id": "2", "video": "b.mp4", "question": "Who?", "answer": "a bird",
        "answer_number": 2, "category": "animals", "options": options, "task_name": "birds",
    }  # fmt: skip


def test_ours_csv_multiple_choice_with_options_or_numbered_columns(tmp_path):
    path = tmp_path / "items.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video", "question", "options", "answer"])
        writer.writerow(["a.mp4", "Who, then?", json.dumps(["cat", "dog"]), "B"])
        writer.writerow(["b.mp4", "Who?", json.dumps(["cat", "dog", "cow"]), "0"])
    items = load_items(path, task="mc")
    assert [(i.id, i.question, i.answer_number, i.options) for i in items] == [
        ("1", "Who, then?", 1, ("cat", "dog")),
        ("2", "Who?", 0, ("cat", "dog", "cow")),
    ]
    path = tmp_path / "numbered.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "video", "question", "a0", "a1", "a2", "answer"])
        writer.writerow(["x", "a.mp4", "Who?", "cat", "dog", "cow", "c"])
    [item] = load_items(path, task="mc")
    assert (item.id, item.options, item.answer_number, item.answer) == (
        "x", ("cat", "dog", "cow"), 2, "cow",
    )  # fmt: skip


def test_ours_open_ended_jsonl_and_csv(tmp_path):
    path = write_lines(tmp_path / "items.jsonl", [
        {"id": 7, "video": "a.mp4", "question": "What?", "answer": "a dog", "category": 3},
        {"video": "b.mp4", "question": "Where?", "answer": "a park"},
    ])  # fmt: skip
    items = load_items(path, task="open")
    assert [(i.id, i.answer, i.category) for i in items] == [
        ("7", "a dog", "3"),
        ("2", "a park", None),
    ]
    path = tmp_path / "items.csv"
    path.write_text("video,question,answer\na.mp4,What?,a dog\n")
    [item] = load_items(path, task="open")
    assert (item.id, item.video, item.question, item.answer) == ("1", "a.mp4", "What?", "a dog")


def test_ours_generative_criteria(tmp_path):
    path = write_lines(tmp_path / "items.jsonl", [
        {"video": "a.mp4", "question": "Describe it.", "answer": "A man rides."},
        {"video": "a.mp4", "question": "What comes next?", "answer": "He falls.",
         "category": "temporal"},
        {"video": "a.mp4", "question": "What is he on?", "question2": "What does he ride?",
         "answer": "A bike."},
        {"video": "a.mp4", "question": "Q", "answer": "A", "criteria": "correctness, context"},
        {"video": "a.mp4", "question": "Q", "answer": "A", "criteria": ["temporal"]},
    ])  # fmt: skip
    items = load_items(path, task="generative")
    assert [i.criteria for i in items] == [
        ("correctness", "detailed_orientation", "context"),
        ("temporal",),
        ("consistency",),
        ("correctness", "context"),
        ("temporal",),
    ]
    assert items[2].question2 == "What does he ride?"


def test_ours_duplicate_ids_are_numbered(tmp_path):
    row = {"id": "q", "video": "a.mp4", "question": "What?", "answer": "x"}
    path = write_lines(tmp_path / "items.jsonl", [row, row, {**row, "id": "r"}, row])
    assert [i.id for i in load_items(path, task="open")] == ["q", "q#2", "r", "q#3"]


GOOD = {"video": "a.mp4", "question": "Who?", "options": ["cat", "dog"], "answer": "A"}


@pytest.mark.parametrize(
    "task, bad, message",
    [
        ("mc", "{not json", r"items\.jsonl:2: not a JSON line"),
        ("mc", "[1, 2]", r"items\.jsonl:2: a line must be a JSON object"),
        ("mc", {**GOOD, "question": None}, r"items\.jsonl:2: 'question' is missing"),
        ("mc", {k: v for k, v in GOOD.items() if k != "question"}, r"items\.jsonl:2: 'question'"),
        ("mc", {**GOOD, "question": "  "}, r"items\.jsonl:2: 'question' must be a non-empty"),
        ("mc", {**GOOD, "video": 3}, r"items\.jsonl:2: 'video'"),
        ("mc", {**GOOD, "options": "cat, dog"}, r"items\.jsonl:2: 'options' must be a list"),
        ("mc", {**GOOD, "options": ["cat"]}, r"items\.jsonl:2: 'options' must be a list"),
        ("mc", {**GOOD, "answer": "C"}, r"items\.jsonl:2: 'answer' must be.*'C'"),
        ("mc", {**GOOD, "answer": 2}, r"items\.jsonl:2: 'answer' must be.*2"),
        ("mc", {**GOOD, "answer": -1}, r"items\.jsonl:2: 'answer'"),
        ("mc", {**GOOD, "answer": True}, r"items\.jsonl:2: 'answer'"),
        ("mc", {**GOOD, "answer": "dog"}, r"items\.jsonl:2: 'answer'"),
        ("open", {"video": "a.mp4", "question": "Q"}, r"items\.jsonl:2: 'answer' is missing"),
        ("generative", {"video": "a.mp4", "question": "Q", "answer": "A", "criteria": "speed"},
         r"items\.jsonl:2: 'criteria'"),
        ("generative", {"video": "a.mp4", "question": "Q", "answer": "A",
                        "criteria": ["consistency"]}, r"items\.jsonl:2: .*question2"),
    ],
)  # fmt: skip
def test_ours_malformed_lines_name_file_and_line(tmp_path, task, bad, message):
    good = GOOD if task == "mc" else {"video": "a.mp4", "question": "Q", "answer": "A"}
    path = write_lines(tmp_path / "items.jsonl", [good, bad])
    with pytest.raises(DatasetError, match=message):
        load_items(path, task=task)


def test_ours_malformed_csv_and_empty_files(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text(
        'video,question,options,answer\na.mp4,Who?,"[""cat"", ""dog""]",A\nb.mp4,Who?,cat,A\n'
    )
    with pytest.raises(DatasetError, match=r"items\.csv:3: options must be a JSON list"):
        load_items(path, task="mc")
    path.write_text("video,prompt,answer\na.mp4,What?,x\n")  # no question column
    with pytest.raises(DatasetError, match=r"items\.csv:2: 'question' is missing"):
        load_items(path, task="open")
    empty = write_lines(tmp_path / "empty.jsonl", [""])
    with pytest.raises(DatasetError, match="no items"):
        load_items(empty, task="open")


@pytest.mark.parametrize("number", ["1", "two"])
def test_nextqa_answer_number_must_be_the_answers_position(tmp_path, number):
    # prepare_nextqa_qa_file.py:21 asserts int(answer_number) == candidates.index(answer)
    row = list(MC_ROWS["nextqa"][1])
    row[6] = number  # "it swam" is option 0
    path = write_csv(tmp_path / "NExT_QA.csv", MC_HEADERS["nextqa"], [row])
    with pytest.raises(DatasetError, match=r"NExT_QA\.csv:2: answer_number .* position \(0\)"):
        load_items(path, fmt="nextqa")
