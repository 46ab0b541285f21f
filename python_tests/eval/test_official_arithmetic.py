"""Golden tests of the published arithmetic (:mod:`sfllava_ext.eval.official`).

Every expected value below is a literal worked out from the official evaluation scripts
of SF-LLaVA (github.com/apple/ml-slowfast-llava), never computed with our code. Each
cites the file and lines of that repository it comes from, e.g.
``eval/eval_video_qa.py:187-205``. Where the official run has no figure to give (it
raises), the test says so and checks the figure the quirk's documented handling gives.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from sfllava_ext.eval.datasets import load_items
from sfllava_ext.eval.official import (
    CRITERIA,
    JUDGE_MODES,
    judge_messages,
    multiple_choice_figures,
    open_ended_figures,
    option_letter,
    parse_option,
    read_judge_reply,
    score_figures,
    vcgbench_average,
)

# ------------------------------------------------------------------ the option parser

# map_prediction_to_option, eval/eval_multiple_choice_qa.py:13-31:
#   :16-18  the first character counts when it is one of "abcdeABCDE", lower-cased;
#   :19-20  when "answer is " (with its space) occurs, the text is cut from the first
#           "answer is" (without the space) on;
#   :21-30  then "A:"/"A)", "B:"/"B)", ... "E:"/"E)" are looked for, in that order, in
#           what is left; the first found wins over the first character;
#   :14-15  a non-str is "none".
PARSE_CASES = [
    # the first character (:16-18)
    ("B", "b"),
    ("e.", "e"),
    ("D.", "d"),
    ("Banana", "b"),  # any text that starts with a letter a-e names it
    ("abc", "a"),
    ("f", "none"),
    ("F: none", "none"),  # F is no option, and "F:" is not looked for
    (" A", "none"),  # a leading space hides the letter
    ("I think B", "none"),
    ("Option B", "none"),
    ("the answer is  b", "none"),  # lower-case letters are never looked for (:21-30)
    # upper-case letter + ":" or ")", in the order A..E (:21-30)
    ("b) the dog", "b"),
    ("(C) the cat", "c"),
    ("C: but also A)", "a"),  # A is looked for before C
    ("DA)", "a"),
    ("E:A:", "a"),
    ("A:B)", "a"),
    ("a)", "a"),  # the first character; "a)" itself is not looked for
    ("c:", "c"),
    ("answer is c)", "a"),  # the "a" of "answer"; "c)" is lower-case
    ("answer is (d)", "a"),
    ("answer is E)", "e"),  # "E)" wins over the first character
    ("X answer is B:", "b"),
    # "answer is " cuts the text (:19-20)
    ("The answer is D: running", "d"),
    ("A: yes. The answer is B) no", "b"),  # "A:" is cut away with the text before
    ("A) first, and the answer is C", "a"),  # nothing found after the cut: first character
    ("The answer is C:", "c"),
    # the cut starts at the first "answer is", even one not followed by a space: here
    # "answer isn't", so "A:" stays in and wins over "C)"
    ("The answer isn't A: hmm, the answer is C) x", "a"),
    ("answer isA)", "a"),  # no "answer is " at all: no cut
    ("answer is", "a"),  # no cut either (no space after it): the first character
    ("The answer is\nB)", "b"),
    # not a str (:14-15)
    (None, "none"),
    (3, "none"),
    (["A"], "none"),
]


@pytest.mark.parametrize("text, expected", PARSE_CASES)
def test_parse_option_reads_as_the_official_parser(text, expected):
    assert parse_option(text) == expected


def test_parse_option_of_an_empty_prediction_is_no_option():
    # quirk: eval/eval_multiple_choice_qa.py:16 indexes pred[0], which raises IndexError
    # on "" and ends the whole official run (no figure at all). We read it as no option,
    # counted wrong (:39-40), the figure their run gives once the line is guarded.
    assert parse_option("") == "none"


# -1 gives "`" and 5 gives "f": the official scorer does not stop there, the item just
# never matches a parsed option (check_ans, eval/eval_multiple_choice_qa.py:34-44)
@pytest.mark.parametrize("number, letter", [(0, "a"), (1, "b"), (4, "e"), (5, "f"), (-1, "`")])
def test_option_letter_is_the_official_ground_truth_letter(number, letter):
    # gt = chr(ord("a") + answer_number), eval/eval_multiple_choice_qa.py:63
    assert option_letter(number) == letter


@pytest.mark.parametrize("bad", [True, 1.0, "1", None])
def test_option_letter_refuses_what_is_not_an_index(bad):
    with pytest.raises(ValueError, match="answer_number"):
        option_letter(bad)


# ------------------------------------------------------------------ multiple-choice accuracy


def test_accuracy_is_the_mean_of_the_tasks_accuracies_not_pooled():
    # eval/eval_multiple_choice_qa.py:54-70 counts yes/no per task_name, :72-77 takes
    # yes / (yes + no) per task, :82-83 prints np.mean of those accuracies: a task of 4
    # rows and a task of 2 weigh the same.
    rows = [
        {"task_name": "NExTQA", "pred": "A) roll the handle", "answer_number": 0},  # yes
        {"task_name": "NExTQA", "pred": "B", "answer_number": 1},  # yes
        {"task_name": "NExTQA", "pred": "(C) unwrap it", "answer_number": 2},  # yes
        {"task_name": "NExTQA", "pred": "E", "answer_number": 3},  # no
        {"task_name": "EgoSchema", "pred": "", "answer_number": 0},  # no (empty quirk)
        {"task_name": "EgoSchema", "pred": "none of them", "answer_number": 4},  # no
    ]
    figures = multiple_choice_figures(rows)
    assert figures["tasks"] == {
        "NExTQA": {"yes": 3, "no": 1, "accuracy": 0.75},
        "EgoSchema": {"yes": 0, "no": 2, "accuracy": 0.0},
    }
    assert figures["accuracy"] == 0.375  # (0.75 + 0.0) / 2; pooled would be 3 / 6 = 0.5


def test_accuracy_of_three_tasks():
    # accuracies 1/3, 1/2 and 1 (:72-77); their np.mean (:83) is 0.611111111111111
    rows = [{"task_name": "t1", "pred": p, "answer_number": 0} for p in ("A", "B", "C")]
    rows += [{"task_name": "t2", "pred": p, "answer_number": 1} for p in ("B:", "a")]
    rows += [{"task_name": "t3", "pred": "The answer is E)", "answer_number": 4}]
    figures = multiple_choice_figures(rows)
    assert [t["accuracy"] for t in figures["tasks"].values()] == [1 / 3, 0.5, 1.0]
    assert figures["accuracy"] == 0.611111111111111


def test_accuracy_of_one_task_and_of_none():
    # one task: the task's own accuracy (:78-81; :82 prints no mean for one task)
    one = multiple_choice_figures([{"task_name": "IntentQA", "pred": "D", "answer_number": 3}])
    assert one == {"accuracy": 1.0, "tasks": {"IntentQA": {"yes": 1, "no": 0, "accuracy": 1.0}}}
    # no rows: the official loop prints nothing (:72-83); we report None
    assert multiple_choice_figures([]) == {"accuracy": None, "tasks": {}}


def test_multiple_choice_end_to_end_decides_on_the_raw_text(tmp_path):
    """A prepared NExT-QA file read by load_items, the model's texts as generated: the
    decision is the parser's, on the text as it came (the official scorer reads the
    stored "pred", run_inference_multiple_choice_qa.py:149, with map_prediction_to_option,
    eval/eval_multiple_choice_qa.py:37)."""
    rows = [
        {"task_name": "NExTQA", "video_name": f"v{i}.mp4", "question_id": f"q{i}",
         "question": "what happens", "answer_number": number,
         "candidates": ["c0", "c1", "c2", "c3", "c4"], "answer": f"c{number}"}
        for i, number in enumerate([1, 2, 0, 3])
    ]  # fmt: skip
    path = tmp_path / "val_qa.json"
    path.write_text(json.dumps(rows, indent=4))
    items = load_items(path, fmt="nextqa")
    generated = [
        "B) c1",  # yes: "B)"
        "The answer isn't A: it must be, the answer is C) c2",  # no: "A:" is kept (:19-20)
        "a cat walks in",  # yes: the first character "a" is option A (:16-18)
        "the answer is D",  # no: "t" is no option and a bare "D" is not looked for
    ]
    figures = multiple_choice_figures(
        {"task_name": item.task, "pred": text, "answer_number": item.answer_number}
        for item, text in zip(items, generated, strict=True)
    )
    assert figures["tasks"] == {"NExTQA": {"yes": 2, "no": 2, "accuracy": 0.5}}
    assert figures["accuracy"] == 0.5


# ------------------------------------------------------------------ the judge's prompts

# Placeholders with "%" and braces, so that neither "%"-formatting nor str.format of the
# template can re-read them: the official fills eval/eval_prompt.py's templates with
# "user_prompt % (question, answer, pred)" (eval/eval_generative_qa.py:75-85) and
# "% (question1, question2, answer, pred1, pred2)" for consistency (:57-70).
QUESTION, ANSWER, PREDICTION = "What is 50% of {x}?", "Half: 'x/2'.", 'It is "x/2"\n%s {}'
QUESTION2, PREDICTION2 = "And 50% of {y}?", "y/2 %d"

# sha256 of the system text and of the filled user text, from the official strings:
# eval/eval_prompt.py:5-53 (system) and :54-105 (user) per mode; "default" is also what
# eval/eval_video_qa.py:39-63 inlines (same digests).
PROMPT_DIGESTS = {
    "default": (  # eval_prompt.py:6-12, :55-62
        "12b9e42d120081bf1e7f1999bb09db2db250add544abd3c183d61a2f938c6510",
        "947ebf04975f0cc02fe8356e45507ccdc016d786e7da7d2a67969c34e1e64767",
    ),
    "correctness": (  # eval_prompt.py:22-29, :73-80
        "d3e95c91b75d55f1697314779ea99483cf497e4dc5c801829086fb6da23b94a5",
        "39bc3b67dce3dc5fe4a7a206606422615df42749bb0fa36f328f411694a1826d",
    ),
    "detailed_orientation": (  # eval_prompt.py:30-37, :81-88
        "692afe543175215e773d22d66e479e9eba30ce2d8076d92d89c6f96fcc716d5d",
        "f4ecc0b7b2fa004516ced32ab270634d4546999bf2179fc63fc1cf0a893135f3",
    ),
    "context": (  # eval_prompt.py:38-45, :89-96
        "ab6063175e1a35daec0b07fc8071bf1f6ae6ddcf65f4f82daee873de96e089c1",
        "3d23022c793a50142e42b8a78df717d33bfcc926f8a6e005d802e715e6b611de",
    ),
    "temporal": (  # eval_prompt.py:46-52, :97-104
        "2a0b0335b04144b933618382d211453e05d331ca52f0a75fe7606477356b34d0",
        "1b89136f6dbfbc8545e639931f6b0267ea7ba3701c1c08d9d3eade2fc2423a52",
    ),
    "consistency": (  # eval_prompt.py:13-21, :63-72
        "15f01dba1f255e7f676dc0e88eabea23dec7c1bfa102695dc21ceecacf5b204d",
        "ef2ed3acb13ff8a322a01367ea798c4518aa9ea45e42518b938a01a194abb3b2",
    ),
}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_the_modes_are_the_official_prompt_modes():
    # eval/eval_prompt.py:3; the paper's VCGBench order: CI, DO, CU, TU, CO
    assert set(JUDGE_MODES) == set(PROMPT_DIGESTS)
    assert CRITERIA == ("correctness", "detailed_orientation", "context", "temporal", "consistency")


@pytest.mark.parametrize("mode", list(PROMPT_DIGESTS))
def test_judge_messages_are_the_official_texts(mode):
    extra = {"question2": QUESTION2, "prediction2": PREDICTION2} if mode == "consistency" else {}
    messages = judge_messages(mode, QUESTION, ANSWER, PREDICTION, **extra)
    assert [m["role"] for m in messages] == ["system", "user"]  # eval_generative_qa.py:57-86
    system, user = PROMPT_DIGESTS[mode]
    assert _sha256(messages[0]["content"]) == system
    assert _sha256(messages[1]["content"]) == user


def test_judge_messages_refuse_an_unknown_mode_and_a_half_pair():
    with pytest.raises(ValueError, match="mode"):
        judge_messages("accuracy", "q", "a", "p")
    with pytest.raises(ValueError, match="question2"):
        judge_messages("consistency", "q", "a", "p", question2="q2")


# ------------------------------------------------------------------ reading the judge's reply

# The reply is ast.literal_eval'ed (eval/eval_video_qa.py:66-67), json.dump'ed with the
# item to <id>.json (:68-72), and the scores are read back with json.load (:170-175).
READ_CASES = [
    ("{'pred': 'yes', 'score': 4.8}", {"pred": "yes", "score": 4.8}),
    ('{"pred": "no", "score": 0}', {"pred": "no", "score": 0}),
    ("  {'score': 3}", {"score": 3}),  # literal_eval strips leading spaces
    ("[1, (2, 3)]", [1, [2, 3]]),  # a list literal; the tuple comes back a list (:72, :174)
    ("{1: 'a'}", {"1": "a"}),  # int keys come back strings
    ("'yes'", "yes"),
    ("1e999", float("inf")),  # json writes Infinity and reads it back
    # not a literal: literal_eval raises, no file is written, never counted (:74-75)
    ("garbage", None),
    ("Sure! {'pred': 'yes', 'score': 5}", None),
    ("{''score': 4.8}", None),  # the criteria prompts' own example (eval_prompt.py:72)
    (None, None),  # literal_eval(None) raises too
    # a literal that JSON cannot hold: json.dump raises at :72 after writing part of the
    # file, and the official run then crashes reading it back (:174), with no figure.
    # We count it as no reply (the run's figure once that file is removed)
    ("{'pred': 'yes', 'score': {4}}", None),
    ("{4}", None),
    ("{'pred': 'yes', 'score': b'4'}", None),
    ("{'pred': 'yes', 'score': 5, (1, 2): 3}", None),
]


@pytest.mark.parametrize("text, expected", READ_CASES)
def test_read_judge_reply_reads_as_the_official_scorer(text, expected):
    assert read_judge_reply(text) == expected


# ------------------------------------------------------------------ open-ended accuracy and score

# eval/eval_video_qa.py:187-202, per stored reply: count += 1 (:190), then
# score = int(reply['score']) (:191-193), then "yes" in pred.lower() -> yes (:196-198),
# elif "no" in it -> no (:199-200); any exception stops that reply's remaining steps
# (:201). Accuracy yes / (yes + no) (:205), score score_sum / count (:204).
# Each case: one reply -> (count, score_sum, yes, no).
ONE_REPLY_CASES = [
    ("{'pred': 'yes', 'score': 4.8}", (1, 4, 1, 0)),  # int(4.8) == 4: truncated
    ("{'pred': 'yes', 'score': '4'}", (1, 4, 1, 0)),  # int("4") == 4
    ("{'pred': 'yes', 'score': '4.8'}", (1, 0, 0, 0)),  # int("4.8") raises: counted, no verdict
    ("{'pred': 'yes'}", (1, 0, 0, 0)),  # no score: counted, no verdict
    ("{'score': 3}", (1, 3, 0, 0)),  # no pred: the score counts, no verdict
    ("{'pred': 'not sure', 'score': 2}", (1, 2, 0, 1)),  # "no" is in "not sure"
    ("{'pred': 'yes, not no', 'score': 5}", (1, 5, 1, 0)),  # "yes" is tested first
    ("{'pred': 'YES', 'score': 3}", (1, 3, 1, 0)),  # lower-cased
    ("{'pred': 'No.', 'score': 0}", (1, 0, 0, 1)),
    ("{'pred': 'maybe', 'score': 1}", (1, 1, 0, 0)),  # neither
    ("{'pred': 'no', 'score': -1.5}", (1, -1, 0, 1)),  # int() truncates toward zero
    ("{'pred': 'yes', 'score': True}", (1, 1, 1, 0)),  # int(True) == 1
    ("{'pred': 'yes', 'score': None}", (1, 0, 0, 0)),
    ("{'pred': 'yes', 'score': 1e999}", (1, 0, 0, 0)),  # int(inf) raises OverflowError
    ("{'pred': True, 'score': 4}", (1, 4, 0, 0)),  # True.lower() raises after the score
    ("['yes', 4]", (1, 0, 0, 0)),  # a list: ['yes', 4]['score'] raises
    ("'yes'", (1, 0, 0, 0)),  # a str: 'yes'['score'] raises
    ("garbage", (0, 0, 0, 0)),  # not a literal: no file, not counted (:74-75)
]


@pytest.mark.parametrize("reply, expected", ONE_REPLY_CASES)
def test_each_reply_counts_as_the_official_scorer_counts_it(reply, expected):
    count, score_sum, yes, no = expected
    figures = open_ended_figures([reply, "{'pred': 'yes', 'score': 2}"])
    assert (figures["count"], figures["score_sum"], figures["yes"], figures["no"]) == (
        count + 1,
        score_sum + 2,
        yes + 1,
        no,
    )


def test_open_ended_figures_of_a_mixed_run():
    # 11 literal replies (not "garbage") scoring 4+4+0+0+3+2+5+1+0+3+0 = 22, yes 4
    # (yes, '4', 'yes, not no', YES), no 2 (not sure, No.); eval/eval_video_qa.py:187-205
    # prints "Accuracy: 0.6666666666666666" and "Average score: 2.0" for them.
    replies = [
        "{'pred': 'yes', 'score': 4.8}",
        "{'pred': 'yes', 'score': '4'}",
        "{'pred': 'yes', 'score': '4.8'}",
        "{'pred': 'yes'}",
        "{'score': 3}",
        "{'pred': 'not sure', 'score': 2}",
        "{'pred': 'yes, not no', 'score': 5}",
        "garbage",
        "{'pred': 'maybe', 'score': 1}",
        "['yes', 4]",
        "{'pred': 'YES', 'score': 3}",
        "{'pred': 'No.', 'score': 0}",
    ]
    assert open_ended_figures(replies) == {
        "accuracy": 0.6666666666666666,
        "score": 2.0,
        "yes": 4,
        "no": 2,
        "count": 11,
        "score_sum": 22,
    }


def test_open_ended_figures_of_non_str_verdicts():
    # eval_video_qa.py:190-200: both scores count, neither verdict: 7 / 3
    replies = [
        "{'pred': True, 'score': 4}",
        "{'pred': ['yes'], 'score': 2}",
        "{'pred': 'yes', 'score': 1}",
    ]
    figures = open_ended_figures(replies)
    assert figures["score"] == 2.3333333333333335
    assert figures["accuracy"] == 1.0
    assert (figures["yes"], figures["no"], figures["count"]) == (1, 0, 3)


def test_zero_denominators_are_none():
    # the official divisions raise ZeroDivisionError (eval_video_qa.py:204 with no reply
    # file, :205 with no yes/no verdict): no figure; we report None
    assert open_ended_figures(["garbage", "Sure!"]) == {
        "accuracy": None, "score": None, "yes": 0, "no": 0, "count": 0, "score_sum": 0,
    }  # fmt: skip
    no_verdict = open_ended_figures(["{'score': 3}"])
    assert no_verdict["accuracy"] is None
    assert no_verdict["score"] == 3.0
    assert open_ended_figures([]) == open_ended_figures(["garbage"])


def test_a_reply_that_is_the_literal_none_is_counted():
    # "None" is a Python literal: literal_eval gives None without raising
    # (eval_video_qa.py:67), [None, qa_set] is stored (:68-72), and the loop counts it
    # (:190) before None['score'] raises (:191): count 2, score (0 + 4) / 2 = 2.0, yes 1.
    figures = open_ended_figures(["None", "{'pred': 'yes', 'score': 4}"])
    assert (figures["count"], figures["score_sum"], figures["score"]) == (2, 4, 2.0)
    assert (figures["yes"], figures["no"], figures["accuracy"]) == (1, 0, 1.0)


def test_a_set_reply_is_not_counted():
    # quirk: the official run crashes on it (see READ_CASES); we leave it out
    figures = open_ended_figures(["{'pred': 'yes', 'score': {4}}", "{'pred': 'yes', 'score': 5}"])
    assert (figures["count"], figures["score"], figures["accuracy"]) == (1, 5.0, 1.0)


# ------------------------------------------------------------------ VCGBench


def test_score_figures_are_the_generative_scorers():
    # eval/eval_generative_qa.py:94-100 stores literal replies, :232-242 counts each
    # (:235) and adds int(score) (:236-238): 4 + 3 + 0 over 3 ("{''score': 4.8}", the
    # prompt's own example, and "nope" are no literals, :102-103)
    replies = ["{'score': 4.8}", "{''score': 4.8}", "{'score': '3'}", "nope", "{'pred': 'no'}"]
    assert score_figures(replies) == {"score": 2.3333333333333335, "count": 3, "score_sum": 7}
    # no literal reply: :242 raises ZeroDivisionError; we report None
    assert score_figures(["nope"]) == {"score": None, "count": 0, "score_sum": 0}


def test_the_literal_none_counts_in_a_criterions_score():
    # as in open-ended QA: stored (eval_generative_qa.py:95-100), counted (:235) before
    # None['score'] raises (:236): (0 + 4) / 2
    assert score_figures(["None", "{'score': 4}"]) == {"score": 2.0, "count": 2, "score_sum": 4}


def test_vcgbench_average_is_the_mean_of_the_five_criteria():
    # each criterion is its own run of eval_generative_qa.py (scripts/run_eval_generic.sh
    # :73, :85, :97; run_eval_temporal.sh:73; run_eval_consistency.sh:73), each printing
    # its "Average score" (eval_generative_qa.py:242-243); the paper's VCGBench average
    # is their plain mean: (3.0 + 2.5 + 3.5 + 2.0 + 2.5) / 5
    scores = {"correctness": 3.0, "detailed_orientation": 2.5, "context": 3.5,
              "temporal": 2.0, "consistency": 2.5}  # fmt: skip
    assert vcgbench_average(scores) == 2.7
    assert vcgbench_average({**scores, "temporal": None}) is None
    del scores["consistency"]
    assert vcgbench_average(scores) is None
