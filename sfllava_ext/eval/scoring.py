"""``sfllava eval score``: a predictions file -> the summary, with no model.

lines (ours, or the official inference's: JSON, else a Python literal, read safely)
  -> records: each line as summary.py reads it (``pred`` -> ``prediction``, ...),
     repeated ids made unique (``id#2``), the file's kept in ``source_id``
  -> open-ended and generative lines without replies: judged now, into
     OUT/judged.jsonl (resumable; a line judged before is reused only if it is the
     same item, prediction and judge)
  -> OUT/summary.json and the table
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..embed.store import FolderLock
from .datasets import numbered_ids
from .judge import Judge
from .judging import JudgeUnavailable, JudgeWatch, judge_identity, judge_record
from .official import CRITERIA
from .predictions import PredictionLog, is_complete, read_prediction_lines
from .runner import progress_bar
from .summary import summarize, write_summary

__all__ = ["score_predictions"]

#: what a reused judged line must share with the line being scored
SAME_ITEM = ("question", "question2", "answer", "prediction", "prediction2", "criteria")
GENERIC = ("correctness", "detailed_orientation", "context")


def score_predictions(
    path: str | os.PathLike,
    task: str,
    *,
    judge: Judge | None = None,
    out_dir: str | os.PathLike | None = None,
    criteria: Sequence[str] | None = None,
    rejudge: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Scores a predictions file with no model: ours (the replies it holds are reused
    unless ``rejudge``), or the official inference's lines. Open-ended and generative
    lines with no reply are judged now; those judged records go to ``OUT/judged.jsonl``.
    Writes ``OUT/summary.json`` (``OUT``: ``out_dir``, else the file's folder) and
    returns it.

    ``criteria`` (generative) are those of lines that name none: default, consistency
    for a paired line, else correctness, detailed orientation and context.

    Raises:
        FileNotFoundError, PredictionsError: an unreadable file. ValueError: a line
            without what ``task`` needs (names the file and line), unknown criteria, or
            no judge where one is needed. JudgeUnavailable: as :func:`.run_eval`.
    """
    if criteria is not None and any(c not in CRITERIA for c in criteria):
        raise ValueError(f"criteria must be among {', '.join(CRITERIA)}, got {list(criteria)}")
    path = Path(path)
    out = Path(out_dir) if out_dir is not None else path.parent
    records = _unique(
        [_as_record(line, task, n, criteria, path) for n, line in read_prediction_lines(path)]
    )
    if rejudge:
        records = [{k: v for k, v in r.items() if k not in ("reply", "replies")} for r in records]
    needs_judge = task != "mc" and any(not _judged(r, task) for r in records)
    if needs_judge and judge is None:
        raise ValueError(
            "judge: these predictions have no judge replies: give --judge-url or --judge exact"
        )
    stopped = None
    if needs_judge:
        with FolderLock(out, "eval score"):
            stopped = _judge_all(
                records, task, judge, PredictionLog(out / "judged.jsonl"), progress
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
    summary = summarize(
        records,
        task,
        pending=sum(bool(r.get("retry")) for r in records),
        predictions=str(path),
        judge=judge.settings() if judge is not None and needs_judge else None,
    )
    write_summary(summary, out / "summary.json")
    if stopped is not None:
        raise stopped
    return summary


def _judge_all(records, task, judge, log, progress) -> JudgeUnavailable | None:
    """Judges the records that have no reply, in place, reusing the log's lines for the
    same item, prediction and judge; returns the stop, if the judge stopped answering."""
    done = log.load()
    identity = judge_identity(judge.settings())
    watch = JudgeWatch()
    bar = progress_bar(len(records), 0, progress, "score")
    try:
        for index, record in enumerate(records):
            previous = done.get(record["id"])
            if _judged(record, task):
                pass
            elif _reusable(previous, record, identity):
                records[index] = previous
            else:
                records[index] = judge_record(record, task, judge)
                log.append(records[index])
                watch.saw(records[index])
            bar.update(1)
    except JudgeUnavailable as exc:
        return exc
    finally:
        bar.close()
    return None


def _reusable(previous: Mapping[str, Any] | None, record: Mapping[str, Any], identity) -> bool:
    return (
        is_complete(previous)
        and previous.get("judged_by") == identity
        and all(previous.get(k) == record.get(k) for k in SAME_ITEM)
    )


def _judged(record: Mapping[str, Any], task: str) -> bool:
    if "error" in record and not record.get("retry"):
        return True
    return "reply" in record if task == "open" else "replies" in record


def _unique(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Repeated ids made unique (:func:`.datasets.numbered_ids`), the file's kept in
    ``source_id``: the summary keeps, as the official open-ended scorer does, only the
    last of them."""
    for record, new in zip(records, numbered_ids([r["id"] for r in records]), strict=True):
        if new != record["id"]:
            record["source_id"], record["id"] = record["id"], new
    return records


def _as_record(line: dict, task: str, number: int, criteria, path: Path) -> dict[str, Any]:
    """One line, ours or official, as a record :func:`.summarize` reads."""
    record = dict(line)
    record["id"] = str(line.get("id", number))
    if "pred" in line and "prediction" not in line:
        record["prediction"] = line["pred"]
    if "pred1" in line and "prediction" not in line:
        record["prediction"], record["prediction2"] = line["pred1"], line.get("pred2")
    if isinstance(line.get("question"), list) and len(line["question"]) == 2:
        record["question"], record["question2"] = line["question"]
    if "error" in record:
        return record
    where = f"{path}:{number}"
    if "prediction" not in record:
        raise ValueError(f"{where}: no 'prediction' or 'pred'")
    if task == "mc":
        number_ = record.get("answer_number")
        if not isinstance(number_, int) or isinstance(number_, bool):
            raise ValueError(f"{where}: 'answer_number' must be an int, got {number_!r}")
        record.setdefault("task_name", "default")
        return record
    for key in ("question", "answer"):
        if not isinstance(record.get(key), str):
            raise ValueError(f"{where}: {key!r} must be a string")
    if task == "generative":
        if "criteria" not in record:
            paired = ("consistency",) if "question2" in record else GENERIC
            record["criteria"] = list(criteria or paired)
        if "consistency" in record["criteria"] and "prediction2" not in record:
            raise ValueError(f"{where}: consistency needs 'pred2' (or 'prediction2')")
    return record
