"""Prediction records -> the figures of a run: ``summary.json`` and the table printed.

Two figures each: the published one (:mod:`.official`'s arithmetic, over the items it
counts) and the strict one, over every item, a failed one counting as wrong (score 0).

    accuracy         mc: mean over tasks of yes / (yes + no), failed items left out
                     open: yes / (yes + no) of the judge's verdicts
                     generative: None (VCGBench has scores only)
    strict_accuracy  mc: mean over tasks of correct / all items of the task
                     open: yes / all items
    score            open: score_sum / replies counted; generative: the mean of the
                     criteria's scores (the paper's average when all five are there)
    strict_score     the same over all items
    scored, failed   items in the published figure, and items that failed (an error,
                     an unreadable reply); ``superseded``: items the official scorers
                     drop because a later item has their id
    categories       the same figures per category (reported apart, never averaged)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .official import (
    CRITERIA,
    item_verdict,
    multiple_choice_figures,
    open_ended_figures,
    option_letter,
    parse_option,
    score_figures,
)

__all__ = ["format_table", "summarize", "write_summary"]


def summarize(records: Iterable[Mapping[str, Any]], task: str, **context: Any) -> dict[str, Any]:
    """The figures of ``records`` (one per item: its latest prediction line) for
    ``task``; ``context`` (dataset, format, settings...) is copied in as it is."""
    records = list(records)
    figures = _figures(records, task)
    categories: dict[str, list] = {}
    for record in records:
        if record.get("category") is not None:
            categories.setdefault(str(record["category"]), []).append(record)
    if categories:
        figures["categories"] = {
            name: _figures(rows, task) for name, rows in sorted(categories.items())
        }
    return {"task": task, **figures, **context}


def _figures(records: list[Mapping[str, Any]], task: str) -> dict[str, Any]:
    ok = [r for r in records if "error" not in r]
    total = len(records)
    if task == "mc":
        return _mc(records, ok)
    published = _last_of_each_id(ok)
    if task == "open":
        figures = open_ended_figures([r.get("reply") for r in published])
        every = open_ended_figures([r.get("reply") for r in ok])  # the strict ones: all items
        return {
            "accuracy": figures["accuracy"],
            "strict_accuracy": every["yes"] / total if total else None,
            "score": figures["score"],
            "strict_score": every["score_sum"] / total if total else None,
            "scored": figures["count"],
            "failed": total - figures["count"] - (len(ok) - len(published)),
            "total": total,
            "yes": figures["yes"],
            "no": figures["no"],
            **_superseded(ok, published),
        }
    return _generative(records, ok, published)


def _superseded(ok: list, published: list) -> dict[str, int]:
    """Items left out of the published figure because a later item has their id."""
    return {"superseded": len(ok) - len(published)} if len(ok) > len(published) else {}


def _last_of_each_id(records: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The records the official open-ended and generative scorers count: they key
    everything by id, so of a repeated id (``source_id``) only the last one is left."""
    last = {r.get("source_id", r["id"]): r for r in records}
    return [r for r in records if last[r.get("source_id", r["id"])] is r]


def _mc(records, ok) -> dict[str, Any]:
    rows = [
        {
            "task_name": r.get("task_name", "default"),
            "pred": r.get("prediction"),
            "answer_number": r["answer_number"],
        }
        for r in ok
    ]
    published = multiple_choice_figures(rows)
    strict: dict[str, list[int]] = {}
    for r in records:
        counts = strict.setdefault(str(r.get("task_name", "default")), [0, 0])
        counts[1] += 1
        letter = option_letter(r["answer_number"])
        if "error" not in r and parse_option(r.get("prediction")) == letter:
            counts[0] += 1
    strict_mean = [yes / n for yes, n in strict.values()]
    out = {
        "accuracy": published["accuracy"],
        "strict_accuracy": float(np.mean(strict_mean)) if strict_mean else None,
        "scored": len(ok),
        "failed": len(records) - len(ok),
        "total": len(records),
    }
    if len(published["tasks"]) > 1:
        out["tasks"] = published["tasks"]
    return out


def _generative(records, ok, published) -> dict[str, Any]:
    def replies(rows, name):
        return [r.get("replies", {}).get(name) for r in rows if name in r.get("criteria", ())]

    criteria: dict[str, dict[str, Any]] = {}
    for name in CRITERIA:
        asked = [r for r in records if name in r.get("criteria", ())]
        if not asked:
            continue
        figures = score_figures(replies(published, name))
        every = score_figures(replies(ok, name))
        criteria[name] = {
            "score": figures["score"],
            "strict_score": every["score_sum"] / len(asked),
            "scored": figures["count"],
            "total": len(asked),
        }
    scores = [c["score"] for c in criteria.values()]
    strict = [c["strict_score"] for c in criteria.values()]
    counted = sum(
        all(item_verdict(r.get("replies", {}).get(c))["counted"] for c in r.get("criteria", ()))
        for r in published
    )
    return {
        "accuracy": None,
        "strict_accuracy": None,
        "score": sum(scores) / len(scores) if scores and None not in scores else None,
        "strict_score": sum(strict) / len(strict) if strict else None,
        "scored": counted,
        "failed": len(records) - counted - (len(ok) - len(published)),
        **_superseded(ok, published),
        "total": len(records),
        "criteria": criteria,
    }


def write_summary(summary: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Writes ``summary`` as indented JSON, atomically (a temporary file renamed)."""
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_table(summary: Mapping[str, Any]) -> str:
    """The summary as a text table: one row for all items, then one per category (and,
    for generative, per criterion)."""
    rows = [("all", summary)]
    rows += [(f"  {name}", figures) for name, figures in summary.get("categories", {}).items()]
    names = [("accuracy", 9), ("strict", 7), ("score", 6), ("strict", 7)]
    names += [("scored", 7), ("failed", 7)]
    lines = [" ".join([" " * 24, *(f"{name:>{width}}" for name, width in names)])]
    for name, f in rows:
        lines.append(
            f"{name[:24]:24} {_pct(f.get('accuracy')):>9} {_pct(f.get('strict_accuracy')):>7} "
            f"{_num(f.get('score')):>6} {_num(f.get('strict_score')):>7} "
            f"{f.get('scored', 0):>7} {f.get('failed', 0):>7}"
        )
    for name, c in summary.get("criteria", {}).items():
        lines.append(
            f"{'  ' + name:24} {'':>9} {'':>7} {_num(c['score']):>6} {_num(c['strict_score']):>7} "
            f"{c['scored']:>7} {c['total'] - c['scored']:>7}"
        )
    for name, t in summary.get("tasks", {}).items():
        lines.append(f"{'  task ' + name:24} {_pct(t['accuracy']):>9}")
    return "\n".join(lines)
