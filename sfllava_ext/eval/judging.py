"""Predictions -> the judge's replies, item by item, for a run and for a scored file.

A judge that could not be asked leaves the item's record with ``error`` and ``retry``
(the next run asks again, without generating again). When it fails for
:data:`STOP_AFTER` items in a row, the work stops (:class:`JudgeUnavailable`) rather than
wait out every item's retries: a rerun continues.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .judge import Judge, JudgeError
from .official import item_verdict

__all__ = ["STOP_AFTER", "JudgeUnavailable", "JudgeWatch", "judge_identity", "judge_record"]

#: consecutive items whose judging failed before the work stops
STOP_AFTER = 3


class JudgeUnavailable(JudgeError):
    """The judge failed for several items in a row: the work stopped, what was done is
    kept, a rerun continues."""


def judge_identity(settings: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What decides a judge's replies (its kind and model), from its settings: two runs
    whose judges differ here are not one run's figures."""
    if settings is None:
        return None
    return {"judge": settings.get("judge"), "model": settings.get("model")}


def judge_record(record: dict[str, Any], task: str, judge: Judge) -> dict[str, Any]:
    """``record`` with the judge's replies added (open: ``reply``, ``verdict``,
    ``score``, and ``malformed`` when the reply is not a literal; generative:
    ``replies`` and ``scores`` per criterion) and ``judged_by``. A judge that cannot be
    asked leaves ``error`` and ``retry`` instead."""
    record = {k: v for k, v in record.items() if k not in ("error", "retry", "malformed")}
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
    record["judged_by"] = judge_identity(judge.settings())
    return record


class JudgeWatch:
    """Counts the judge's failures in a row; :meth:`saw` raises
    :class:`JudgeUnavailable` at :data:`STOP_AFTER`."""

    def __init__(self, stop_after: int = STOP_AFTER) -> None:
        self.stop_after = stop_after
        self.in_a_row = 0

    def saw(self, record: Mapping[str, Any]) -> None:
        """Notes one judged record (call after it is saved)."""
        failed = bool(record.get("retry"))
        self.in_a_row = self.in_a_row + 1 if failed else 0
        if failed and self.in_a_row >= self.stop_after:
            raise JudgeUnavailable(
                f"the judge failed for {self.in_a_row} items in a row ({record['error']}); "
                "stopped: what was done is kept, rerun to continue"
            )
