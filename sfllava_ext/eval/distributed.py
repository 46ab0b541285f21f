"""``sfllava eval run --ray``: the generation sharded over a Ray cluster, as a Ray Data
pipeline with the actors ``sfllava embed --ray`` uses (:func:`~sfllava_ext.embed.
distributed.actor_plan`: one model actor per GPU where there are GPUs):

    (video, its items) groups (driver) --from_items, one block per video-->
    map_batches(_Answerer): an actor pool holding the model; one session per video,
    one generation per item --> (item, prediction fields) back to the driver

The driver keeps everything else: the output folder's lock, the judge, and the
predictions file, appended to as results arrive (so a rerun resumes as a local run
does). Videos and the question file must be paths every node reads alike.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..embed.distributed import actor_plan, require_ray
from ..models.spec import ModelSpec
from .datasets import EvalItem
from .generation import generate_group, generation_settings

__all__ = ["RayGeneration"]


class RayGeneration:
    """The ``generate`` of :func:`~sfllava_ext.eval.runner.run_eval` on a Ray cluster.

    Args:
        spec: the model each actor builds.
        task: ``mc``, ``open`` or ``generative``.
        max_new_tokens: per generation.
        address: the cluster (as ``sfllava embed --ray``); None: ``$RAY_ADDRESS`` or a
            local one.
        actors: model actors; default one per GPU, else 1.

    Raises:
        ImportError: Ray Data is missing (names the ``pip install`` line).
    """

    def __init__(
        self,
        spec: ModelSpec,
        task: str,
        max_new_tokens: int,
        *,
        address: str | None = None,
        actors: int | None = None,
    ) -> None:
        if actors is not None and actors < 1:
            raise ValueError(f"actors must be >= 1, got {actors}")
        self.ray = require_ray()
        self.spec, self.actors, self.resources = actor_plan(self.ray, spec, address, actors)
        self.task = task
        self.max_new_tokens = max_new_tokens
        self._settings: dict[str, Any] | None = None

    def settings(self) -> dict[str, Any]:
        """The generation settings of the actors' model, as the first result brought
        them (no model is built for them alone).

        Raises:
            RuntimeError: no result has come back yet.
        """
        if self._settings is None:
            raise RuntimeError("RayGeneration: no result has come back yet")
        return self._settings

    def __call__(
        self, groups: list[tuple[Path | None, list[EvalItem]]]
    ) -> Iterator[tuple[EvalItem, dict]]:
        ray = self.ray
        rows = [
            {
                "index": i,
                "path": "" if path is None else str(path),
                "items": json.dumps([dataclasses.asdict(item) for item in group]),
            }
            for i, (path, group) in enumerate(groups)
        ]
        if not rows:
            return
        context = ray.data.DataContext.get_current()
        saved = context.enable_progress_bars
        context.enable_progress_bars = False  # the run's bar counts items
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
                dataset = dataset.map_batches(
                    _Answerer,
                    fn_constructor_kwargs={
                        "spec": self.spec,
                        "task": self.task,
                        "max_new_tokens": self.max_new_tokens,
                    },
                    batch_size=1,
                    batch_format="pandas",
                    compute=ray.data.ActorPoolStrategy(
                        size=self.actors, max_tasks_in_flight_per_actor=1
                    ),
                    max_restarts=-1,
                    max_task_retries=1,
                    **self.resources,
                )
            for row in dataset.iter_rows():
                self._settings = json.loads(row["settings"])
                group = groups[int(row["index"])][1]
                yield from zip(group, json.loads(row["results"]), strict=True)
        finally:
            context.enable_progress_bars = saved


class _Answerer:
    """An actor of the pool: holds the model; per call, one video's session and its
    items' predictions (JSON), as a local run makes them."""

    def __init__(self, spec: ModelSpec, task: str, max_new_tokens: int) -> None:
        self.model = spec.build()
        self.task = task
        self.max_new_tokens = max_new_tokens
        self.settings = json.dumps(generation_settings(self.model, max_new_tokens))

    def __call__(self, batch):
        import pandas as pd

        out = []
        for row in batch.to_dict("records"):
            items = [
                EvalItem(
                    **{
                        **d,
                        "options": None if d["options"] is None else tuple(d["options"]),
                        "criteria": tuple(d["criteria"]),
                    }
                )
                for d in json.loads(row["items"])
            ]
            path = Path(row["path"]) if row["path"] else None
            results = [
                fields
                for _, fields in generate_group(
                    path, items, self.model, self.task, self.max_new_tokens
                )
            ]
            out.append({"index": row["index"], "results": json.dumps(results),
                        "settings": self.settings})  # fmt: skip
        return pd.DataFrame(out, columns=["index", "results", "settings"])


def _item(fields: dict[str, Any]) -> EvalItem:
    """An item back from its JSON form (tuples came back as lists)."""
    options = fields["options"]
    return EvalItem(**{**fields, "options": None if options is None else tuple(options),
                       "criteria": tuple(fields["criteria"])})  # fmt: skip
