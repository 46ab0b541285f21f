"""The output folder of ``sfllava embed``: one session file per video, ``index.jsonl``
and ``errors.jsonl``, every one written atomically (a temporary file in the same
folder, then a rename), so that a half-written file never exists under its name.

A video is **done** when its output exists and holds the SHA-256 of the video's bytes
and the job's **settings key** (:func:`sfllava_ext.session.file.settings_key`: the
digest of the model's fingerprint, that is the vision tower and projector and their
weights, the normalisation and resize mode, the aggregation, the number of frames, the
dtype, and the token-format version, which changes only when the tokens would).

``index.jsonl`` holds one line per video done (``source``, ``sha256``, ``output``,
``frame_indices``, ``tokens``), those of earlier runs into the same folder included
while their output is still there; ``errors.jsonl`` the failures of the latest run
(``source``, ``output``, ``reason``).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import threading
import time

from ..session.info import VideoInfo

__all__ = [
    "INDEX",
    "ERRORS",
    "Journal",
    "Store",
    "atomic_write",
    "file_sha256",
    "index_record",
    "session_info",
]

INDEX = "index.jsonl"
ERRORS = "errors.jsonl"
_TMP = ".tmp-"


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def session_info(clip, source: str, sha256: str) -> VideoInfo:
    """What a session file says of the video its tokens came from."""
    return VideoInfo.of_clip(clip, video=source, sha256=sha256)


def index_record(output: str, info: VideoInfo, tokens) -> dict:
    """The ``index.jsonl`` line of a video done (``info``: its :func:`session_info`)."""
    return {
        "source": info.video,
        "sha256": info.sha256,
        "output": output,
        "frame_indices": list(info.frame_indices),
        "tokens": int(tokens.shape[0]),
    }


def atomic_write(path: str, data: bytes) -> None:
    """``data`` to ``path``: a temporary file beside it, flushed, then renamed."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    name = f".{os.path.basename(path)}{_TMP}{os.getpid()}-{threading.get_ident()}"
    tmp = os.path.join(folder, name)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class Store:
    """The output folder of one job (``key``: its settings key)."""

    def __init__(self, out_dir: str | os.PathLike, key: str) -> None:
        self.root = os.path.abspath(os.fspath(out_dir))
        self.key = key
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise NotADirectoryError(f"embed: out_dir '{self.root}' is a file, not a folder")
        os.makedirs(self.root, exist_ok=True)

    def path(self, output: str) -> str:
        return os.path.join(self.root, output)

    def done(self, output: str, sha256: str) -> dict | None:
        """The index record of an output that is done for these bytes and settings,
        None otherwise (missing, other bytes, other settings, unreadable)."""
        from safetensors import SafetensorError, safe_open

        path = self.path(output)
        if not os.path.isfile(path):
            return None
        try:
            with safe_open(path, "pt") as f:
                meta = f.metadata() or {}
                count = f.get_slice("tokens").get_shape()[0]
        except (SafetensorError, OSError, KeyError, ValueError):
            return None
        if meta.get("sha256") != sha256 or meta.get("settings_key") != self.key:
            return None
        return {
            "source": meta.get("video") or "",
            "sha256": sha256,
            "output": output,
            "frame_indices": json.loads(meta.get("frame_indices", "[]")),
            "tokens": count,
        }

    def write_output(self, output: str, data: bytes) -> None:
        atomic_write(self.path(output), data)

    def read_index(self) -> dict[str, dict]:
        """The records of ``index.jsonl`` whose output still exists, by output."""
        records: dict[str, dict] = {}
        try:
            with open(os.path.join(self.root, INDEX)) as f:
                lines = f.readlines()
        except OSError:
            return records
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            output = record.get("output") if isinstance(record, dict) else None
            if isinstance(output, str) and os.path.isfile(self.path(output)):
                records[output] = record
        return records

    def write_jsonl(self, name: str, rows: list[dict]) -> str:
        path = os.path.join(self.root, name)
        atomic_write(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())
        return path

    def clean_stale_temps(self) -> int:
        """Removes the temporary files of runs that were killed while writing (those
        whose process is gone); returns how many."""
        removed = 0
        pattern = os.path.join(glob.escape(self.root), "**", f".*{_TMP}*")
        for path in glob.glob(pattern, recursive=True):
            pid = os.path.basename(path).rsplit(_TMP, 1)[1].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                try:
                    os.remove(path)
                    removed += 1
                except OSError:
                    pass
        return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Journal:
    """The records of one run, shared by the model's thread and the writer, flushed to
    ``index.jsonl`` and ``errors.jsonl`` every ``flush_s`` seconds and at the end;
    ``listener(kind, record)`` hears of each video as it is recorded (``"done"``,
    ``"skipped"`` or ``"failed"``), one at a time."""

    def __init__(self, store: Store, flush_s: float = 10.0, listener=None) -> None:
        self.store = store
        self.listener = listener
        self.records = store.read_index()
        self.failures: list[dict] = []
        self.done = self.skipped = 0
        self._lock = threading.Lock()
        self._flush_s = flush_s
        self._flushed = time.monotonic()

    def add(self, record: dict, *, skipped: bool) -> None:
        with self._lock:
            self.records[record["output"]] = record
            if skipped:
                self.skipped += 1
            else:
                self.done += 1
            if self.listener is not None:
                self.listener("skipped" if skipped else "done", record)

    def fail(self, source: str, output: str, reason: str) -> None:
        with self._lock:
            self.records.pop(output, None)
            failure = {"source": source, "output": output, "reason": reason}
            self.failures.append(failure)
            if self.listener is not None:
                self.listener("failed", failure)

    def maybe_flush(self) -> None:
        if time.monotonic() - self._flushed >= self._flush_s:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            records = sorted(self.records.values(), key=lambda r: r["output"])
            failures = list(self.failures)
            self._flushed = time.monotonic()
            self.store.write_jsonl(INDEX, records)
            self.store.write_jsonl(ERRORS, failures)
