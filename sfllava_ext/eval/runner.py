"""``sfllava eval run`` and ``sfllava eval score``: items -> predictions -> the judge ->
the summary, read top to bottom.

    items (datasets.load_items)
      -> pending: the items whose ids are not complete in OUTDIR/predictions.jsonl
      -> grouped by video: one session per video (decoded and encoded once), one
         generation per question, as the official inference prompts and decodes
      -> the judge (open-ended, generative), item by item
      -> a line appended to predictions.jsonl per item, durable before the next
      -> summary.json and the table (summary.py)

The output folder is locked for the run (one writer). A failed item (no such video, a
video that does not decode, a judge that answered an error) is recorded with its reason
and the run goes on.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..embed.store import FolderLock
from .datasets import EvalItem, resolve_video
from .judge import Judge, JudgeError
from .official import item_verdict, option_letter, parse_option
from .predictions import PredictionLog, is_complete, read_prediction_lines
from .summary import summarize, write_summary

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "generate_for",
    "generate_group",
    "generation_settings",
    "judge_record",
    "run_eval",
    "score_predictions",
]

logger = logging.getLogger(__name__)

#: what the official inference scripts generate at most (greedy: temperature 0)
DEFAULT_MAX_NEW_TOKENS = 128
MC_PROMPT = "multiple_choice_allvideo_v4"
OPEN_PROMPT = "image_seq_v3"


def generation_settings(model: Any, max_new_tokens: int) -> dict[str, Any]:
    """What a run's predictions depend on besides the weights: recorded in the summary so
    that two runs can be compared."""
    text = getattr(model.config, "text_config", None) or model.config
    rope = getattr(text, "rope_scaling", None) or getattr(text, "rope_parameters", None)
    return {
        "model": model.name_or_path,
        "num_frames": model.num_frames,
        "slowfast": str(model.aggregation),
        "resize_mode": model.resize_mode,
        "rope_scaling": rope,
        "max_new_tokens": max_new_tokens,
        "decoding": "greedy",
        "dtype": str(model.dtype).replace("torch.", ""),
        "backend": model.backend,
        "prompts": {"mc": MC_PROMPT, "open": OPEN_PROMPT},
    }


def generate_for(session: Any, item: EvalItem, task: str, max_new_tokens: int) -> dict[str, Any]:
    """The prediction fields of one item from its video's session, generated as the
    official inference does: greedy, the published prompts, the raw text (multiple
    choice: with "In the image" replaced by "In the video", as their script does, and
    ``correct`` decided by the official parser on that text)."""
    if task == "mc":
        ids = session.generate(
            item.question,
            prompt=MC_PROMPT,
            options=list(item.options or ()),
            max_new_tokens=max_new_tokens,
        )
        text = session.model.llm.decode(ids).replace("In the image", "In the video")
        option = parse_option(text)
        return {
            "prediction": text,
            "option": option,
            "correct": option == option_letter(item.answer_number),
        }
    out = {"prediction": session.answer(item.question, max_new_tokens=max_new_tokens)}
    if item.question2 is not None and task == "generative":
        out["prediction2"] = session.answer(item.question2, max_new_tokens=max_new_tokens)
    return out


def judge_record(record: dict[str, Any], task: str, judge: Judge) -> dict[str, Any]:
    """``record`` with the judge's replies added (open: ``reply``, ``verdict``,
    ``score``; generative: ``replies`` and ``scores`` per criterion). A judge that
    cannot be asked leaves ``error`` and ``retry`` (the next run asks again)."""
    record = {k: v for k, v in record.items() if k not in ("error", "retry")}
    try:
        if task == "open":
            reply = judge.reply(
                "default",
                question=record["question"],
                answer=record["answer"],
                prediction=record["prediction"],
            )
            verdict = item_verdict(reply)
            record.update(reply=reply, verdict=verdict["verdict"], score=verdict["score"])
            if not verdict["counted"]:
                record["malformed"] = True
        else:
            replies, scores = {}, {}
            for criterion in record["criteria"]:
                fields = dict(
                    question=record["question"],
                    answer=record["answer"],
                    prediction=record["prediction"],
                )
                if criterion == "consistency":
                    fields.update(question2=record["question2"], prediction2=record["prediction2"])
                replies[criterion] = judge.reply(criterion, **fields)
                scores[criterion] = item_verdict(replies[criterion])["score"]
            record.update(replies=replies, scores=scores)
    except JudgeError as exc:
        record.update(error=f"JudgeError: {exc}", retry=True)
    return record


def _failure(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def run_eval(
    items: Sequence[EvalItem],
    model: Any,
    out_dir: str | os.PathLike,
    *,
    task: str,
    judge: Judge | None = None,
    video_root: str | os.PathLike = ".",
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    progress: bool = True,
    context: Mapping[str, Any] | None = None,
    generate: Callable[[list[tuple[Path | None, list[EvalItem]]]], Iterable[tuple[EvalItem, dict]]]
    | None = None,
    generation: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Runs ``items`` through ``model`` into ``out_dir`` (``predictions.jsonl``,
    ``summary.json``) and returns the summary. Items already complete there are skipped;
    an item whose prediction was made but whose judging failed is only judged again.

    ``generate`` replaces the in-process generation (``--ray`` passes the cluster's):
    it takes ``(video path or None, items)`` groups and yields ``(item, fields)``;
    ``generation`` then gives the generation settings for the summary (``model`` may be
    None).

    Raises:
        ValueError: a judge missing for open-ended or generative items, duplicate ids.
        OutputFolderLocked: another run holds ``out_dir``.
    """
    if task in ("open", "generative") and judge is None:
        raise ValueError(f"judge: a {task} run needs a judge (--judge-url, or --judge exact)")
    if len({item.id for item in items}) != len(items):
        raise ValueError("items: ids must be unique")
    out_dir = Path(out_dir)
    with FolderLock(out_dir):
        log = PredictionLog(out_dir / "predictions.jsonl")
        done = log.load()
        pending = [item for item in items if not is_complete(done.get(item.id))]
        to_judge = [item for item in pending if "prediction" in done.get(item.id, {})]
        to_generate = [item for item in pending if "prediction" not in done.get(item.id, {})]
        bar = _progress(len(items), len(items) - len(pending), progress)
        try:
            for item in to_judge:  # predictions kept from a run whose judge failed
                log.append(judge_record(done[item.id], task, judge))
                bar.update(1)
            groups = _by_video(to_generate, video_root)
            if generate is not None:
                produced = generate(groups)
            else:
                produced = itertools.chain.from_iterable(
                    generate_group(path, group, model, task, max_new_tokens)
                    for path, group in groups
                )
            for item, fields in produced:
                record = {**item.record(), **_task_fields(item, task), **fields}
                if "error" not in record and task != "mc":
                    record = judge_record(record, task, judge)
                log.append(record)
                bar.update(1)
        finally:
            bar.close()
        records = log.load()
        summary = summarize(
            [records[item.id] for item in items if item.id in records],
            task,
            pending=sum(not is_complete(records.get(item.id)) for item in items),
            **(context or {}),
            generation=generation or generation_settings(model, max_new_tokens),
            judge=judge.settings() if judge is not None else None,
        )
        write_summary(summary, out_dir / "summary.json")
    return summary


def _task_fields(item: EvalItem, task: str) -> dict[str, Any]:
    return {"criteria": list(item.criteria)} if task == "generative" else {}


def _by_video(items: Sequence[EvalItem], root) -> list[tuple[Path | None, list[EvalItem]]]:
    """Items grouped by the file their video resolves to, in first-seen order."""
    groups: dict[Any, tuple[Path | None, list[EvalItem]]] = {}
    for item in items:
        path = resolve_video(item.video, root)
        key = path if path is not None else ("missing", item.video)
        groups.setdefault(key, (path, []))[1].append(item)
    return list(groups.values())


def generate_group(
    path: Path | None, items: Sequence[EvalItem], model: Any, task: str, max_new_tokens: int
) -> Iterator[tuple[EvalItem, dict[str, Any]]]:
    """(item, prediction fields) of each item about one video (``path``; None: it was not
    found): one session, so the video is decoded and encoded once. A video that fails
    gives each of its items the error; so does a generation that fails, for its item."""
    if path is None:
        for item in items:
            yield (
                item,
                {"error": f"FileNotFoundError: no video {item.video!r} under the video root"},
            )
        return
    try:
        session = model.session(path)
    except Exception as exc:  # any failure of this video is its items' record
        logger.warning("eval: %s: %s", path, _failure(exc))
        for item in items:
            yield item, {"error": _failure(exc)}
        return
    for item in items:
        try:
            yield item, generate_for(session, item, task, max_new_tokens)
        except Exception as exc:
            yield item, {"error": _failure(exc)}


def _progress(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="item", desc="eval")


# ------------------------------------------------------------------ scoring a file


def score_predictions(
    path: str | os.PathLike,
    task: str,
    *,
    judge: Judge | None = None,
    out_dir: str | os.PathLike | None = None,
    criteria: Sequence[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Scores a predictions file with no model: ours (its stored replies are reused), or
    the official inference's lines (read safely: JSON, then a Python literal). Open-ended
    and generative lines with no stored reply are judged now; those judged records go to
    ``OUT/judged.jsonl`` (resumable as a run's predictions are). Writes
    ``OUT/summary.json`` (``OUT``: ``out_dir``, else the file's folder) and returns it.

    ``criteria`` (generative) are those of lines that name none: default, consistency
    for a paired line, else correctness, detailed orientation and context.

    Raises:
        FileNotFoundError, PredictionsError: an unreadable file. ValueError: a line
            without what ``task`` needs (names the line), or no judge where one is needed.
    """
    from .official import CRITERIA

    path = Path(path)
    out = Path(out_dir) if out_dir is not None else path.parent
    records = [
        _as_record(line, task, number, criteria)
        for number, line in enumerate(read_prediction_lines(path), 1)
    ]
    if criteria is not None and any(c not in CRITERIA for c in criteria):
        raise ValueError(f"criteria must be among {', '.join(CRITERIA)}, got {list(criteria)}")
    needs_judge = task != "mc" and any(not _judged(r, task) for r in records)
    if needs_judge and judge is None:
        raise ValueError(
            "judge: these predictions have no judge replies: give --judge-url or --judge exact"
        )
    out.mkdir(parents=True, exist_ok=True)
    if needs_judge:
        with FolderLock(out):
            log = PredictionLog(out / "judged.jsonl")
            done = log.load()
            bar = _progress(len(records), 0, progress)
            try:
                for record in records:
                    previous = done.get(record["id"])
                    if _judged(record, task):
                        pass
                    elif (
                        is_complete(previous) and previous.get("prediction") == record["prediction"]
                    ):
                        record.update(previous)
                    else:
                        record.update(judge_record(record, task, judge))
                        log.append(record)
                    bar.update(1)
            finally:
                bar.close()
    summary = summarize(
        records,
        task,
        predictions=str(path),
        judge=judge.settings() if judge is not None and needs_judge else None,
    )
    write_summary(summary, out / "summary.json")
    return summary


def _judged(record: Mapping[str, Any], task: str) -> bool:
    if "error" in record and not record.get("retry"):
        return True
    return "reply" in record if task == "open" else "replies" in record


def _as_record(line: dict, task: str, number: int, criteria) -> dict[str, Any]:
    """One line, ours or official, as a record :func:`summarize` reads."""
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
    where = f"line {number}"
    if "prediction" not in record:
        raise ValueError(f"predictions {where}: no 'prediction' or 'pred'")
    if task == "mc":
        if not isinstance(record.get("answer_number"), int) or isinstance(
            record["answer_number"], bool
        ):
            raise ValueError(f"predictions {where}: 'answer_number' must be an int")
        record.setdefault("task_name", "default")
        return record
    for key in ("question", "answer"):
        if not isinstance(record.get(key), str):
            raise ValueError(f"predictions {where}: {key!r} must be a string")
    if task == "generative":
        if "criteria" not in record:
            record["criteria"] = list(
                criteria
                or (
                    ("consistency",)
                    if "question2" in record
                    else ("correctness", "detailed_orientation", "context")
                )
            )
        if "consistency" in record["criteria"] and "prediction2" not in record:
            raise ValueError(f"predictions {where}: consistency needs 'pred2' (or 'prediction2')")
    return record
