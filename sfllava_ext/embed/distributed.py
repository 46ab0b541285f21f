"""``sfllava embed`` on a Ray cluster, as a Ray Data pipeline (the ``[ray]`` extra):

    items (driver: collect_inputs) --from_items, one block per video-->
    _check_and_decode (CPU tasks): sha256, done? else the frames, as bytes
    --map_batches(_Encoder), an actor pool that holds the model-->
    the session file written by the actor, a record back to the driver
    --driver--> index.jsonl, errors.jsonl, the summary

The driver holds the output folder's lock (:class:`.store.FolderLock`) for the whole
job and alone writes the index; the actors write the session files themselves (each
atomically), under the lock their driver holds.

The same files as :func:`sfllava_ext.embed_videos`, equal tensor for tensor. Inputs and
``out_dir`` must be paths that every node reads and writes alike: a shared file system
(NFS, or object storage mounted with s3fs / gcsfuse), and ``sfllava_ext`` installed on
every node.

Fault tolerance (Ray's settings, as set here): an encoder actor that dies is restarted
(``max_restarts=-1``) and the video it held is tried once more (``max_task_retries=1``);
a video whose actor dies twice is recorded as failed (``DataContext.max_errored_blocks``
lets the job go on). A decode task whose worker dies is retried once (``max_retries=1``);
a video that does not decode is an error row, not an exception, and is never retried.
The tests kill an actor through the fault hook (:mod:`sfllava_ext.utils.faults`, point
``embed.encode``); decode tasks get their decoder threads as an argument.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable

from ..models.spec import ModelSpec
from ..utils import faults
from ..video.frames import VideoClip
from .decoding import decode_settings, failure_reason, prepare
from .inputs import collect_inputs
from .pipeline import EmbedSummary, deferred_signals
from .store import FolderLock, Journal, Store, index_record, session_info

__all__ = ["actor_plan", "embed_dataset", "require_ray"]

RAY_INSTALL = 'pip install "sfllava_ext[ray]"'


def require_ray():
    """The ``ray`` module with Ray Data.

    Raises:
        ImportError: naming the package and the ``pip install`` line that fixes it.
    """
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "--ray (sfllava embed, sfllava eval) needs Ray Data (the 'ray[data]' package, "
            f"{exc.name} is missing): {RAY_INSTALL}"
        ) from exc
    return ray


def embed_dataset(
    inputs: str | os.PathLike | list,
    out_dir: str | os.PathLike,
    model: ModelSpec | str = "demo",
    *,
    address: str | None = None,
    actors: int | None = None,
    decode_cpus: float = 1.0,
    progress: bool = True,
    on_video: Callable[[str, dict], None] | None = None,
) -> EmbedSummary:
    """:func:`sfllava_ext.embed_videos` on a Ray cluster.

    Args:
        inputs, out_dir: as :func:`~sfllava_ext.embed_videos` (paths every node sees).
        model: a :class:`~sfllava_ext.ModelSpec` (or its ``model``: a
            checkpoint, or ``"demo"``); each actor builds it.
        address: the cluster (``ray.init(address=...)``); None joins the one
            ``$RAY_ADDRESS`` names, or starts a local one. Ray already initialised in
            this process is used as it is.
        actors: encoder actors; default one per GPU of the cluster, else 1. Each takes
            one GPU where the cluster has GPUs, else half a CPU, so that decoding tasks
            still get scheduled beside it.
        decode_cpus: CPUs each decode task asks for (and the decoder threads it uses).
        progress: a tqdm bar on the driver.
        on_video: as :func:`~sfllava_ext.embed_videos`'s, on the driver.

    Returns:
        The :class:`~sfllava_ext.embed.EmbedSummary`, as :func:`embed_videos`'s.

    Raises:
        ImportError: Ray Data is not installed (names ``pip install "sfllava_ext[ray]"``).
        ValueError: ``actors`` below 1; ``inputs`` as :func:`embed_videos` raises
            (its ``OutputNameError`` and ``OutputCollisionError`` are ValueErrors).
        OutputFolderLocked: another run is writing into ``out_dir`` (before Ray starts;
            this driver holds the lock for the whole job, the actors do not take it).
    """
    if actors is not None and actors < 1:
        raise ValueError(f"actors must be >= 1, got {actors}")
    ray = require_ray()
    started = time.perf_counter()
    spec = model if isinstance(model, ModelSpec) else ModelSpec(model=os.fspath(model))
    items = collect_inputs(inputs)
    with FolderLock(out_dir):  # the driver's, for the whole job (before Ray starts)
        journal = _run(ray, items, out_dir, spec, address, actors, decode_cpus, progress,
                       on_video)  # fmt: skip
    return EmbedSummary.of(journal, started)


def actor_plan(ray, spec: ModelSpec, address: str | None, actors: int | None):
    """Joins the cluster (``address``, else ``$RAY_ADDRESS``, else a local one; Ray
    already initialised is used as it is) and plans the model actors: ``(spec, actors,
    resources)``, one actor per GPU where the cluster has GPUs (each taking one), else
    ``actors`` or 1, each taking half a CPU so that other tasks still get scheduled;
    on a CPU-only cluster the spec's device becomes ``cpu``. ``sfllava eval --ray``
    plans its actors the same way."""
    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or None, log_to_driver=False)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = actors or max(1, gpus)
    if spec.device is None and not gpus:
        spec = spec.with_device("cpu")
    resources = {"num_gpus": 1} if gpus else {"num_cpus": 0.5}
    return spec, actors, resources


def _run(ray, items, out_dir, spec, address, actors, decode_cpus, progress, on_video):
    from tqdm.auto import tqdm

    spec, actors, resources = actor_plan(ray, spec, address, actors)

    key = ray.get(ray.remote(**resources)(_settings_key).remote(spec))
    store = Store(out_dir, key)
    store.clean_stale_temps()
    journal = Journal(store, listener=on_video)
    # the actors' device: the spec's, else a GPU (a CPU-only cluster set "cpu" above)
    on_device = spec if spec.device else spec.with_device("cuda")
    settings = decode_settings(on_device, store, 1, threads=max(1, int(round(decode_cpus))))
    rows = [{"index": i, "source": it.source, "output": it.output} for i, it in enumerate(items)]
    context = ray.data.DataContext.get_current()
    saved = (context.max_errored_blocks, context.enable_progress_bars)
    context.max_errored_blocks = len(rows)  # a video that fails twice does not end the job
    context.enable_progress_bars = False  # the driver's bar below says it in videos
    try:
        with warnings.catch_warnings():
            # Ray 2.60 takes the retry settings only as ray_remote_args, which it marks
            # as deprecated without a named replacement yet
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
            dataset = dataset.map(
                _check_and_decode,
                fn_kwargs={"settings": settings},
                num_cpus=decode_cpus,
                max_retries=1,
            )
            dataset = dataset.map_batches(
                _Encoder,
                fn_constructor_kwargs={"spec": spec, "root": store.root, "key": key},
                batch_size=1,
                batch_format="pandas",
                # one video at a time per actor: an actor that dies costs only the
                # video it holds (each retried once), never a healthy one queued beside it
                compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1),
                max_restarts=-1,
                max_task_retries=1,
                **resources,
            )
        seen = set()
        bar = tqdm(total=len(rows), unit="video", desc="embed (ray)", disable=not progress)
        try:
            for row in dataset.iter_rows():
                seen.add(int(row["index"]))
                if row["status"] == "error":
                    journal.fail(row["source"], row["output"], row["reason"])
                else:
                    journal.add(json.loads(row["record"]), skipped=row["status"] == "skipped")
                bar.update(1)
                bar.set_postfix(
                    done=journal.done, skipped=journal.skipped, failed=len(journal.failures)
                )
                journal.maybe_flush()
        finally:
            bar.close()
        for item_index in sorted(set(range(len(rows))) - seen):
            item = items[item_index]
            journal.fail(item.source, item.output, "the encoder actor died on it twice")
    finally:  # also on Ctrl-C or SIGTERM: the records that reached the driver
        with deferred_signals():
            context.max_errored_blocks, context.enable_progress_bars = saved
            journal.flush()
    return journal


def _settings_key(spec: ModelSpec) -> str:
    from ..session.file import settings_key

    return settings_key(spec.build())


def _check_and_decode(row: dict, settings: dict) -> dict:
    """A Ray task: the video's SHA-256, then ``skipped`` (its record) or its frames as
    bytes (planes one after another, with their layout), or ``error`` and why."""
    out = {**row, "status": "error", "reason": "", "record": "", "sha256": "",
           "data": b"", "layout": "", "meta": ""}  # fmt: skip
    try:
        kind, value, sha = prepare(
            row["source"], row["output"], settings, None, settings["threads"]
        )
    except Exception as exc:
        out["reason"] = failure_reason(exc)
        return out
    out["sha256"] = sha
    if kind == "skipped":
        out.update(status="skipped", record=json.dumps(value))
        return out
    parts = value.to_parts()
    out.update(
        status="decoded",
        data=b"".join(a.tobytes() for a in parts.arrays),
        layout=json.dumps(parts.layout),
        meta=json.dumps(parts.meta),
    )
    return out


class _Encoder:
    """An actor of the pool: holds the model, encodes one decoded video per call and
    writes its session file; returns the record (no tensors travel back)."""

    def __init__(self, spec: ModelSpec, root: str, key: str) -> None:
        from ..session.file import settings_key

        self.model = spec.build()
        self.store = Store(root, key)
        if settings_key(self.model) != key:
            raise RuntimeError("this actor's model has another settings key than the job's")

    def __call__(self, batch):
        import pandas as pd

        rows = [self._one(row) for row in batch.to_dict("records")]
        return pd.DataFrame(
            rows, columns=["index", "source", "output", "status", "reason", "record"]
        )

    def _one(self, row: dict) -> dict:
        from ..session.file import tokens_bytes

        out = {k: row[k] for k in ("index", "source", "output", "status", "reason", "record")}
        if row["status"] != "decoded":
            return out
        faults.point("embed.encode", source=row["source"])
        try:
            clip = VideoClip.from_parts(
                row["data"], json.loads(row["layout"]), json.loads(row["meta"])
            )
            tokens = self.model.encode(clip)
            info = session_info(clip, row["source"], row["sha256"])
            del clip
            self.store.write_output(row["output"], tokens_bytes(tokens, self.model, info))
        except Exception as exc:
            out.update(status="error", reason=failure_reason(exc))
            return out
        out.update(status="done", record=json.dumps(index_record(row["output"], info, tokens)))
        return out
