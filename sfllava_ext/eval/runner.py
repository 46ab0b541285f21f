"""``sfllava eval run``: items -> predictions -> the judge -> the summary, read top to
bottom.

    items (datasets.load_items)
      -> OUTDIR locked; its predictions.jsonl read back; records checked against the
         items and OUTDIR/run.json against this run's settings (another run's work is
         never mixed in)
      -> pending: the items whose ids are not complete
      -> grouped by video: one session per video (generation.py), or the Ray actors'
      -> the judge (open-ended, generative), item by item (judging.py)
      -> a line appended to predictions.jsonl per item, durable before the next
      -> summary.json and the table (summary.py)

A failed item (no such video, a video that does not decode, a judge that answered an
error) is recorded with its reason and the run goes on.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..embed.store import FolderLock
from ..models.spec import ModelSpec
from .datasets import EvalItem
from .generation import (
    DEFAULT_MAX_NEW_TOKENS,
    IDENTITY,
    by_video,
    generate_group,
    generation_settings,
)
from .judge import Judge
from .judging import JudgeUnavailable, JudgeWatch, judge_identity, judge_record
from .predictions import PredictionLog, is_complete
from .summary import summarize, write_summary

__all__ = ["RUN_FILE", "RunMismatchError", "progress_bar", "run_eval"]

#: the settings of the run whose work an output folder holds
RUN_FILE = "run.json"
#: the item's fields a record repeats, which must agree for the record to be the item's
ITEM_FIELDS = ("video", "question", "question2", "answer", "answer_number", "options", "criteria")

Groups = list[tuple[Path | None, list[EvalItem]]]


class RunMismatchError(ValueError):
    """The output folder holds another run's work (other questions under the same ids,
    other settings, another task or judge): names what differs."""


def progress_bar(total: int, initial: int, enabled: bool, desc: str = "eval"):
    """The tqdm bar of a run or a scoring, in items."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="item", desc=desc)


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
    generate: Callable[[Groups], Iterable[tuple[EvalItem, dict]]] | None = None,
    settings: Callable[[], Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Runs ``items`` through ``model`` into ``out_dir`` (``predictions.jsonl``,
    ``run.json``, ``summary.json``) and returns the summary. Items already complete there
    are skipped; an item whose prediction was made but whose judging failed is only
    judged again.

    ``model`` is a :class:`~sfllava_ext.SlowFastLlava`, or a
    :class:`~sfllava_ext.ModelSpec` built only once the folder is locked and something
    is left to generate. ``generate`` replaces the in-process generation (``--ray``
    passes the cluster's): it takes ``(video path or None, items)`` groups and yields
    ``(item, fields)``; ``settings`` then gives the generation settings once the first
    item is back.

    Raises:
        ValueError: a judge missing for open-ended or generative items, duplicate ids.
        RunMismatchError: ``out_dir`` holds another run's work.
        OutputFolderLocked: another run holds ``out_dir``.
        JudgeUnavailable: the judge failed for several items in a row (what was done
            is kept and summarised first; a rerun continues).
    """
    if task in ("open", "generative") and judge is None:
        raise ValueError(f"judge: a {task} run needs a judge (--judge-url, or --judge exact)")
    if len({item.id for item in items}) != len(items):
        raise ValueError("items: ids must be unique")
    out_dir = Path(out_dir)
    with FolderLock(out_dir, "eval"):
        log = PredictionLog(out_dir / "predictions.jsonl")
        done = log.load()
        _check_records(done, items, out_dir)
        header = _Header(out_dir / RUN_FILE, task, judge)
        pending = [item for item in items if not is_complete(done.get(item.id))]
        to_judge = [item for item in pending if "prediction" in done.get(item.id, {})]
        to_generate = [item for item in pending if "prediction" not in done.get(item.id, {})]
        bar = progress_bar(len(items), len(items) - len(pending), progress)
        stopped = None
        try:
            watch = JudgeWatch()
            for item in to_judge:  # predictions kept from a run whose judge failed
                record = judge_record(done[item.id], task, judge)
                log.append(record)
                bar.update(1)
                watch.saw(record)
            produced = _produce(to_generate, model, task, max_new_tokens, video_root, generate)
            if settings is None:
                settings = lambda: generation_settings(produced.model, max_new_tokens)  # noqa: E731
            for item, fields in produced.results:
                header.settle(settings)
                record = {**item.record(), **_task_fields(item, task), **fields}
                if "error" not in record and task != "mc":
                    record = judge_record(record, task, judge)
                log.append(record)
                bar.update(1)
                if task != "mc":
                    watch.saw(record)
        except JudgeUnavailable as exc:
            stopped = exc
        finally:
            bar.close()
        records = log.load()
        summary = summarize(
            [records[item.id] for item in items if item.id in records],
            task,
            pending=sum(not is_complete(records.get(item.id)) for item in items),
            **(context or {}),
            generation=header.generation,
            judge=judge.settings() if judge is not None else None,
        )
        write_summary(summary, out_dir / "summary.json")
    if stopped is not None:
        raise stopped
    return summary


@dataclasses.dataclass(frozen=True)
class _Produced:
    """The (item, fields) of the items to generate, and the model that made them (built
    from a spec only when there is something to generate)."""

    results: Iterable[tuple[EvalItem, dict]]
    model: Any


def _produce(items, model, task, max_new_tokens, root, generate) -> _Produced:
    groups = by_video(items, root)
    if generate is not None:
        return _Produced(generate(groups) if groups else (), None)
    if not groups:
        return _Produced((), model)
    if isinstance(model, ModelSpec):
        model = model.build()
    results = itertools.chain.from_iterable(
        generate_group(path, group, model, task, max_new_tokens) for path, group in groups
    )
    return _Produced(results, model)


def _task_fields(item: EvalItem, task: str) -> dict[str, Any]:
    return {"criteria": list(item.criteria)} if task == "generative" else {}


def _check_records(done: Mapping[str, dict], items: Sequence[EvalItem], out_dir: Path) -> None:
    """Every record kept under an item's id must be that item's (same video, question,
    answer, options, criteria): a folder written for another question file is refused."""
    for item in items:
        record = done.get(item.id)
        if record is None:
            continue
        expected = {**item.record(), "criteria": list(item.criteria) or None}
        for name in ITEM_FIELDS:
            if record.get(name) != expected.get(name):
                raise RunMismatchError(
                    f"{out_dir}: its predictions.jsonl holds id {item.id!r} for another item "
                    f"({name} {record.get(name)!r}, not {expected.get(name)!r}): write this "
                    "run elsewhere"
                )


class _Header:
    """OUTDIR/run.json: the task, the generation settings and the judge of the run whose
    work the folder holds. A run that would add work under other settings is refused."""

    def __init__(self, path: Path, task: str, judge: Judge | None) -> None:
        self.path = path
        self.saved = json.loads(path.read_text()) if path.exists() else None
        self.generation = (self.saved or {}).get("generation")
        self.judge = judge.settings() if judge is not None else None
        saved = self.saved or {}
        if self.saved is not None and saved.get("task") != task:
            raise RunMismatchError(
                f"{path.parent}: holds a {saved.get('task')} run, not {task}: write elsewhere"
            )
        theirs, ours = judge_identity(saved.get("judge")), judge_identity(self.judge)
        if theirs is not None and ours is not None and theirs != ours:
            raise RunMismatchError(
                f"{path.parent}: was judged by {theirs}, this run's judge is {ours}: "
                "write elsewhere, so that one figure has one judge"
            )
        self.task = task
        self._settled = False

    def settle(self, settings: Callable[[], Mapping[str, Any]]) -> None:
        """Checks this run's generation settings against the folder's (once), and saves
        them with the task and judge."""
        if self._settled:
            return
        current = dict(settings())
        if self.generation is not None:
            differ = [k for k in IDENTITY if self.generation.get(k) != current.get(k)]
            if differ:
                detail = ", ".join(
                    f"{k} {self.generation.get(k)!r} there, {current.get(k)!r} here" for k in differ
                )
                raise RunMismatchError(
                    f"{self.path.parent}: its predictions were made with other settings "
                    f"({detail}): write this run elsewhere"
                )
        self.generation = current
        judge = self.judge if self.judge is not None else (self.saved or {}).get("judge")
        header = {"task": self.task, "generation": current, "judge": judge}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(header, indent=2) + "\n")
        os.replace(tmp, self.path)
        self._settled = True
