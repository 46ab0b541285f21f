"""``predictions.jsonl``: one JSON line per item, appended as the item completes, so that
a run killed at any moment loses at most the item it was on, and a rerun continues with
the items not yet complete.

Reading it back takes, for each id, its last line (a rerun that re-judges an item appends
a newer line for it). A last line cut short by a kill is dropped, and the file is cut
back to the end of the last whole line before anything is appended. A line is
*complete* unless it says ``"retry": true`` (a judge that could not be reached: the
prediction is kept and only the judging is done again).

Also reads the prediction lines the official inference scripts write (``pred``,
``answer_number``, ``task_name``, ``question``, ``answer``, ``id``; ``pred1`` and
``pred2`` for VCGBench's consistency): JSON first, then a Python literal
(``ast.literal_eval``, never ``eval``), which is what their scorers accept.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["PredictionLog", "PredictionsError", "is_complete", "read_prediction_lines"]


class PredictionsError(ValueError):
    """A predictions file that cannot be read: names the file and the line."""


class PredictionLog:
    """The append-only log of one run's predictions (``path``), for one writer (the run
    holds the output folder's lock)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, dict[str, Any]]:
        """The latest line of each id, after cutting off a partial last line.

        Raises:
            PredictionsError: a whole line that is not a JSON object with an ``id``.
        """
        if not self.path.exists():
            return {}
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a line cut short by a kill: never completed
            with open(self.path, "r+b") as f:
                f.truncate(end)
        latest: dict[str, dict[str, Any]] = {}
        for number, line in enumerate(data[:end].splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PredictionsError(
                    f"{self.path}:{number}: not a JSON line ({exc.msg})"
                ) from None
            if not isinstance(record, dict) or "id" not in record:
                raise PredictionsError(f"{self.path}:{number}: a line must be an object with an id")
            latest[str(record["id"])] = record
        return latest

    def append(self, record: dict[str, Any]) -> None:
        """Writes one line and makes it durable (flushed and fsynced) before returning."""
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def is_complete(record: dict[str, Any] | None) -> bool:
    """Whether an item's latest line ends its work (an error included), or it is to be
    done (again)."""
    return record is not None and not record.get("retry", False)


def read_prediction_lines(path: str | os.PathLike) -> list[tuple[int, dict[str, Any]]]:
    """The records of a predictions file, ours or the official inference's, in file
    order, each with its line number. Each line is read as JSON, else as a Python literal
    (safely); it must be an object (a dict).

    Raises:
        FileNotFoundError: no such file. PredictionsError: not a regular file, not UTF-8,
            or a line that is neither JSON nor a literal, or not an object (names the
            file and line).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"predictions: {path} does not exist")
    if not path.is_file():
        raise PredictionsError(f"predictions: {path} is not a regular file")
    records = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                text = line.strip()
                if text:
                    records.append((number, _record(text, f"{path}:{number}")))
    except UnicodeDecodeError as exc:
        raise PredictionsError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    return records


def _record(text: str, where: str) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        try:
            record = ast.literal_eval(text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise PredictionsError(f"{where}: neither JSON nor a Python literal") from None
    except RecursionError:
        raise PredictionsError(f"{where}: nested too deeply") from None
    if not isinstance(record, dict):
        raise PredictionsError(f"{where}: a line must be an object")
    return record
