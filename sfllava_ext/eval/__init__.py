"""Evaluation: the paper's benchmarks with the official arithmetic (``sfllava eval``).

    datasets.py     question files -> EvalItem: our layout and the official ones
    official.py     the published arithmetic: the option parser, the judge's prompts
                    and how its replies become accuracy and score
    judge.py        the judge: an OpenAI-compatible endpoint, or offline exact match
    predictions.py  predictions.jsonl: appended item by item, resumable; official lines
    generation.py   items -> predictions: one session per video, the published prompts
    judging.py      predictions -> the judge's replies; stops when the judge is gone
    runner.py       run: items -> predictions -> judge -> summary, in an output folder
    scoring.py      score: a predictions file -> the summary, with no model
    summary.py      records -> summary.json and the table
    distributed.py  --ray: the generation on a Ray cluster
    lmms_model.py   SF-LLaVA as an lmms-eval model (imports lmms-eval; not imported here)

docs/eval.md says how to reproduce the paper's table.
"""

from .datasets import FORMATS, TASKS, DatasetError, EvalItem, load_items, resolve_video
from .judge import ChatJudge, ExactJudge, JudgeError
from .judging import JudgeUnavailable
from .predictions import PredictionsError, read_prediction_lines
from .runner import RunMismatchError, run_eval
from .scoring import score_predictions
from .summary import format_table, summarize

__all__ = [
    "FORMATS",
    "TASKS",
    "ChatJudge",
    "DatasetError",
    "EvalItem",
    "ExactJudge",
    "JudgeError",
    "JudgeUnavailable",
    "PredictionsError",
    "RunMismatchError",
    "format_table",
    "load_items",
    "read_prediction_lines",
    "resolve_video",
    "run_eval",
    "score_predictions",
    "summarize",
]
