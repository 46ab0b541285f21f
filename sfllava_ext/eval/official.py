"""The published evaluation arithmetic, as the official SF-LLaVA evaluation scripts do it.

Everything that decides a published figure lives here and only here: the
multiple-choice answer parser, accuracy per task and its mean over tasks, the judge's
prompts, how its reply is read, and how yes/no verdicts and scores become accuracy and
score. The rest of :mod:`sfllava_ext.eval` gathers predictions and replies and hands
them to these functions. docs/eval.md#arithmetic says the rules in prose; the quirks
that the official scripts have are reproduced, and each is named where it happens:

- an empty prediction: the official parser indexes ``pred[0]`` and raises, ending the
  whole run. We read it as "no option" (wrong), the figure their run gives once the
  line is filtered or the index guarded;
- accuracy is ``yes / (yes + no)``: a reply whose verdict is neither, or that has no
  score, leaves the accuracy's denominator; with no verdict at all it is undefined
  (their division raises), reported as None;
- the score is ``int()`` of the reply's score, so 4.8 counts 4 and "4.8" fails; its
  denominator is every reply that parsed as a Python literal, failed ones included;
- a reply that is not a Python literal is never counted (their scorer writes no file
  for it and moves on); the reply ``None`` is a literal, and counts, with score 0;
- a literal that JSON cannot hold (a set, bytes) leaves their scorer with a
  half-written file that ends the run with no figure; here it is left out, as if that
  file had been removed.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "CRITERIA",
    "JUDGE_MODES",
    "is_readable",
    "item_verdict",
    "judge_messages",
    "multiple_choice_figures",
    "open_ended_figures",
    "option_letter",
    "parse_option",
    "read_judge_reply",
    "score_figures",
    "vcgbench_average",
]

#: The five VCGBench criteria, in the paper's order, with the judge prompt each uses.
CRITERIA = ("correctness", "detailed_orientation", "context", "temporal", "consistency")
#: The judge prompts: ``default`` for open-ended QA, one per VCGBench criterion.
JUDGE_MODES = ("default",) + CRITERIA

_INTRO = "You are an intelligent chatbot designed for evaluating "
_HOW = " Here's how you can accomplish the task:------##INSTRUCTIONS: "
_SYSTEM = {
    "default": _INTRO + "the correctness of generative outputs for question-answer pairs. "
    "Your task is to compare the predicted answer with the correct answer and determine if "
    "they match meaningfully." + _HOW + "- Focus on the meaningful match between the "
    "predicted answer and the correct answer.\n- Consider synonyms or paraphrases as valid "
    "matches.\n- Evaluate the correctness of the prediction compared to the answer.",
    "consistency": _INTRO + "the consistency of generative outputs for similar video-based "
    "question-answer pairs. You will be given two very similar questions, a common answer "
    "common to both the questions and predicted answers for the two questions .Your task is "
    "to compare the predicted answers for two very similar question, with a common correct "
    "answer and determine if they are consistent." + _HOW + "- Focus on the consistency "
    "between the two predicted answers and the correct answer. Both predicted answers should "
    "correspond to the correct answer and to each other, and should not contain any "
    "contradictions or significant differences in the conveyed information.\n- Both "
    "predicted answers must be consistent with each other and the correct answer, in terms "
    "of the information they provide about the video content.\n- Consider synonyms or "
    "paraphrases as valid matches, but only if they maintain the consistency in the conveyed "
    "information.\n- Evaluate the consistency of the two predicted answers compared to the "
    "correct answer.",
    "correctness": _INTRO + "the factual accuracy of generative outputs for video-based "
    "question-answer pairs. Your task is to compare the predicted answer with the correct "
    "answer and determine if they are factually consistent." + _HOW + "- Focus on the "
    "factual consistency between the predicted answer and the correct answer. The predicted "
    "answer should not contain any misinterpretations or misinformation.\n- The predicted "
    "answer must be factually accurate and align with the video content.\n- Consider "
    "synonyms or paraphrases as valid matches.\n- Evaluate the factual accuracy of the "
    "prediction compared to the answer.",
    "detailed_orientation": _INTRO + "the detail orientation of generative outputs for "
    "video-based question-answer pairs. Your task is to compare the predicted answer with "
    "the correct answer and determine its level of detail, considering both completeness "
    "and specificity." + _HOW + "- Check if the predicted answer covers all major points "
    "from the video. The response should not leave out any key aspects.\n- Evaluate whether "
    "the predicted answer includes specific details rather than just generic points. It "
    "should provide comprehensive information that is tied to specific elements of the "
    "video.\n- Consider synonyms or paraphrases as valid matches.\n- Provide a single "
    "evaluation score that reflects the level of detail orientation of the prediction, "
    "considering both completeness and specificity.",
    "context": _INTRO + "the contextual understanding of generative outputs for video-based "
    "question-answer pairs. Your task is to compare the predicted answer with the correct "
    "answer and determine if the generated response aligns with the overall context of the "
    "video content." + _HOW + "- Evaluate whether the predicted answer aligns with the "
    "overall context of the video content. It should not provide information that is out of "
    "context or misaligned.\n- The predicted answer must capture the main themes and "
    "sentiments of the video.\n- Consider synonyms or paraphrases as valid matches.\n- "
    "Provide your evaluation of the contextual understanding of the prediction compared to "
    "the answer.",
    "temporal": _INTRO + "the temporal understanding of generative outputs for video-based "
    "question-answer pairs. Your task is to compare the predicted answer with the correct "
    "answer and determine if they correctly reflect the temporal sequence of events in the "
    "video content." + _HOW + "- Focus on the temporal consistency between the predicted "
    "answer and the correct answer. The predicted answer should correctly reflect the "
    "sequence of events or details as they are presented in the video content.\n- Consider "
    "synonyms or paraphrases as valid matches, but only if the temporal order is "
    "maintained.\n- Evaluate the temporal accuracy of the prediction compared to the answer.",
}

_ASK = "Please evaluate the following video-based question-answer pair:\n\n"
_ONLY = (
    "DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only provide the Python "
    "dictionary string. For example, your response should look like this: "
)
_PAIR = "Question: {q}\nCorrect Answer: {a}\nPredicted Answer: {p}\n\n"
# name of the score in each criterion's request: "... only as a {name} score where the
# {name} score is an integer value between 0 and 5, with 5 indicating the highest {top}"
_SCORED = {
    "correctness": ("factual accuracy", "level of factual consistency"),
    "detailed_orientation": ("detail orientation", "level of detail orientation"),
    "context": ("contextual understanding", "level of contextual understanding"),
    "temporal": ("temporal accuracy", "level of temporal consistency"),
    "consistency": ("consistency", "level of consistency"),
}


def _user_template(mode: str) -> str:
    if mode == "default":
        return (
            _ASK + _PAIR + "Provide your evaluation only as a yes/no and score where the score "
            "is an integer value between 0 and 5, with 5 indicating the highest meaningful "
            "match. Please generate the response in the form of a Python dictionary string "
            "with keys 'pred' and 'score', where value of 'pred' is  a string of 'yes' or "
            "'no' and value of 'score' is in INTEGER, not STRING."
            + _ONLY
            + "{{'pred': 'yes', 'score': 4.8}}."
        )
    name, top = _SCORED[mode]
    # the official text says "its value is contextual understanding score" (no "the")
    # for the context criterion only
    value = f"{name} score" if mode == "context" else f"the {name} score"
    pair = (
        "Question 1: {q}\nQuestion 2: {q2}\nCorrect Answer: {a}\n"
        "Predicted Answer to Question 1: {p}\nPredicted Answer to Question 2: {p2}\n\n"
        if mode == "consistency"
        else _PAIR
    )
    return (
        _ASK + pair + f"Provide your evaluation only as a {name} score where the {name} score "
        f"is an integer value between 0 and 5, with 5 indicating the highest {top}. Please "
        "generate the response in the form of a Python dictionary string with keys 'score', "
        f"where its value is {value} in INTEGER, not STRING." + _ONLY + "{{''score': 4.8}}."
    )


def judge_messages(
    mode: str,
    question: str,
    answer: str,
    prediction: str,
    *,
    question2: str | None = None,
    prediction2: str | None = None,
) -> list[dict[str, str]]:
    """The chat messages (system, user) the official scorer sends its judge for one item.

    ``mode`` is ``default`` (open-ended QA: a yes/no verdict and a score) or a VCGBench
    criterion (a score only); ``consistency`` also takes the paired question and its
    prediction. The texts are the official ones, typos included, so that a judge's
    replies are comparable with the paper's.

    Raises:
        ValueError: an unknown mode; ``consistency`` without ``question2`` and
            ``prediction2``.
    """
    if mode not in JUDGE_MODES:
        raise ValueError(
            f"judge_messages: mode must be one of {', '.join(JUDGE_MODES)}, got {mode!r}"
        )
    if mode == "consistency" and (question2 is None or prediction2 is None):
        raise ValueError("judge_messages: consistency needs question2 and prediction2")
    user = _user_template(mode).format(
        q=question, a=answer, p=prediction, q2=question2, p2=prediction2
    )
    return [{"role": "system", "content": _SYSTEM[mode]}, {"role": "user", "content": user}]


# ------------------------------------------------------------------ multiple choice


def parse_option(prediction: Any) -> str:
    """The option a generated text names, read as the official parser reads it: ``"a"``
    to ``"e"``, or ``"none"``.

    The first character counts when it is a letter a-e (either case); after that, the text
    from "answer is" on (when "answer is " occurs) is searched for ``"A:"``/``"A)"``, then
    ``B``, ... ``E`` in that order, the first found winning over the first character. A
    non-str is ``"none"``; so is an empty text (the official parser raises there).
    """
    if not isinstance(prediction, str) or not prediction:
        return "none"
    option = prediction[0].lower() if prediction[0] in "abcdeABCDE" else "none"
    if "answer is " in prediction:
        prediction = prediction[prediction.index("answer is") :]
    for letter in "ABCDE":
        if f"{letter}:" in prediction or f"{letter})" in prediction:
            return letter.lower()
    return option


def option_letter(answer_number: int) -> str:
    """The lower-case letter of a 0-based option index (0 -> ``"a"``), as the official
    scorer computes it (``chr(ord("a") + n)``): an index outside a-e gives a character no
    parsed option equals, so its item counts wrong; one below ``-97`` gives ``""``
    (there, ``chr`` raises).

    Raises:
        ValueError: ``answer_number`` is not an int.
    """
    if isinstance(answer_number, bool) or not isinstance(answer_number, int):
        raise ValueError(f"answer_number must be an int, got {answer_number!r}")
    code = ord("a") + answer_number
    return chr(code) if 0 <= code < 0x110000 else ""


def multiple_choice_figures(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Accuracy as the official multiple-choice scorer computes it.

    ``rows`` hold ``task_name``, ``pred`` (the raw generated text) and
    ``answer_number`` (0-based). A row is correct when :func:`parse_option` of its
    ``pred`` is the answer's letter. Accuracy is computed per task (yes / (yes + no)),
    and the reported figure is the plain mean of the tasks' accuracies (each task
    weighs the same, whatever its size; ``numpy.mean``, bit for bit theirs). Every row
    counts, a repeated id too. Returns ``{"accuracy": float | None, "tasks":
    {name: {"yes", "no", "accuracy"}}}`` (None with no rows).
    """
    tasks: dict[str, dict[str, Any]] = {}
    for row in rows:
        counts = tasks.setdefault(str(row["task_name"]), {"yes": 0, "no": 0})
        correct = parse_option(row["pred"]) == option_letter(row["answer_number"])
        counts["yes" if correct else "no"] += 1
    for counts in tasks.values():
        counts["accuracy"] = counts["yes"] / (counts["yes"] + counts["no"])
    accuracies = [counts["accuracy"] for counts in tasks.values()]
    # numpy's mean, as theirs: its pairwise sum can differ from sum() in the last digit
    mean = float(np.mean(accuracies)) if accuracies else None
    return {"accuracy": mean, "tasks": tasks}


# ------------------------------------------------------------------ the judge's replies


def read_judge_reply(text: Any) -> Any:
    """A judge's reply as the official scorer reads it: the text parsed as a Python
    literal (``ast.literal_eval``, never ``eval``). Returns the parsed value, any
    literal (a dict when the judge followed the prompt), or None when the text is not a
    literal: such a reply is not counted at all (:func:`open_ended_figures`). The reply
    ``"None"`` also gives None here, but it *is* a literal and counts (with score 0):
    :func:`is_readable` tells the two apart.

    The official scorer stores each parsed reply as JSON and scores what it reads back, so
    the value is returned as that round trip leaves it (tuples become lists, int keys
    strings). A literal JSON cannot hold (a set, bytes, a tuple key) gives None: there,
    its file is left half-written and the run then fails reading it back, with no figure
    at all; we leave the reply out, the figure their run gives once that file is
    removed."""
    readable, value = _parse(text)
    return value if readable else None


def is_readable(text: Any) -> bool:
    """Whether a reply text counts at all: a Python literal that JSON can hold
    (:func:`read_judge_reply`), ``"None"`` included."""
    return _parse(text)[0]


def _parse(text: Any) -> tuple[bool, Any]:
    if not isinstance(text, str):  # no content: literal_eval raises there too
        return False, None
    try:
        return True, json.loads(json.dumps(ast.literal_eval(text)))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def item_verdict(text: Any) -> dict[str, Any]:
    """What one reply text adds to the figures: ``counted`` (it parsed, so it is in the
    score's denominator), ``score`` (``int()`` of its score; None when that fails, which
    counts 0) and ``verdict`` ("yes", "no" or None: in neither accuracy count)."""
    readable, reply = _parse(text)
    if not readable:
        return {"counted": False, "score": None, "verdict": None}
    score, verdict = _verdict(reply)
    return {"counted": True, "score": score, "verdict": verdict}


def _verdict(reply: Any) -> tuple[int | None, str | None]:
    """(the score counted, "yes"/"no"/None) of one parsed reply, in the official order:
    the score first (``int()`` of it), then the verdict; a failure at either step leaves
    the rest uncounted."""
    try:
        score = int(reply["score"])
    except Exception:  # the official loop catches everything here too
        return None, None
    try:
        verdict = reply["pred"].lower()
    except Exception:
        return score, None
    if "yes" in verdict:
        return score, "yes"
    if "no" in verdict:
        return score, "no"
    return score, None


def open_ended_figures(replies: Sequence[Any]) -> dict[str, Any]:
    """Accuracy and score of open-ended QA from the judge's reply texts, as the official
    scorer computes them.

    Each reply text is read with :func:`read_judge_reply`; one that is not a literal is
    left out. Every other reply counts in the score's denominator (``count``); its score
    is ``int(reply['score'])`` (0 when that fails); its verdict counts as yes when "yes"
    is in ``reply['pred'].lower()``, else as no when "no" is. Accuracy is
    ``yes / (yes + no)``, the score ``score_sum / count``; each is None where its
    denominator is 0. Returns ``{"accuracy", "score", "yes", "no", "count",
    "score_sum"}``.
    """
    yes = no = count = score_sum = 0
    for text in replies:
        one = item_verdict(text)
        if not one["counted"]:
            continue
        count += 1
        score_sum += one["score"] or 0
        yes += one["verdict"] == "yes"
        no += one["verdict"] == "no"
    return {
        "accuracy": yes / (yes + no) if yes + no else None,
        "score": score_sum / count if count else None,
        "yes": yes,
        "no": no,
        "count": count,
        "score_sum": score_sum,
    }


def score_figures(replies: Sequence[Any]) -> dict[str, Any]:
    """One VCGBench criterion's average score from its reply texts, as the official
    generative scorer computes it: like :func:`open_ended_figures`'s score (literal
    replies count, ``int()`` of each score, 0 when that fails). Returns ``{"score",
    "count", "score_sum"}``."""
    figures = open_ended_figures(replies)
    return {key: figures[key] for key in ("score", "count", "score_sum")}


def vcgbench_average(scores: Mapping[str, float | None]) -> float | None:
    """The paper's VCGBench average: the plain mean of the five criteria's scores
    (None unless all five have one)."""
    values = [scores.get(name) for name in CRITERIA]
    if any(value is None for value in values):
        return None
    return sum(values) / len(values)
