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

One run at a time: a run holds :class:`FolderLock` (``flock`` on ``.sfllava-embed.lock``
in the folder) from before it reads the index until it has written it for the last
time; a second run is refused (:class:`OutputFolderLocked`). The kernel drops the lock
with the process that held it, however it ended.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import socket
import threading
import time

from ..session.info import VideoInfo
from ..utils.paths import is_inside
from .inputs import SUFFIX, OutputNameError, output_name

__all__ = [
    "INDEX",
    "ERRORS",
    "LOCK",
    "FolderLock",
    "Journal",
    "OutputFolderLocked",
    "Store",
    "atomic_write",
    "file_sha256",
    "index_record",
    "session_info",
]

INDEX = "index.jsonl"
ERRORS = "errors.jsonl"
LOCK = ".sfllava-embed.lock"
_TMP = ".tmp-"


class OutputFolderLocked(RuntimeError):
    """Another run holds the output folder: ``folder``, and ``holder`` (what the lock
    file says of it: ``pid``, ``host``, ``started``; empty when unreadable);
    ``around``: the folder that run writes into, when it is one around ``folder``."""

    def __init__(
        self, folder: str, holder: dict, around: str | None = None, command: str = "embed"
    ) -> None:
        who = ", ".join(f"{k} {holder[k]}" for k in ("pid", "host", "started") if k in holder)
        real = os.path.realpath(folder)
        also = f" (that is '{real}')" if real != folder else ""
        if around is not None:
            what = f"is inside '{around}', which another run is writing into"
        elif who:
            what = "is in use by another run"
        else:  # the shared locks of runs into folders inside it name no holder
            what = "is in use by another run, or by a run into a folder inside it"
        super().__init__(
            f"{command}: the output folder '{folder}'{also} {what}"
            f"{f' ({who})' if who else ''}; wait for it to end, or write elsewhere"
        )
        self.folder = folder
        self.holder = holder
        self.around = around


class FolderLock:
    """An exclusive ``flock`` on ``<folder>/.sfllava-embed.lock``, held from
    :meth:`acquire` (or ``with``) to :meth:`release`: one run per output folder. The
    lock belongs to the open file, which no child process inherits (close-on-exec), so
    it ends with this process, however it ends; the file stays (removing it would let
    two runs lock two files). What it holds (``pid``, ``host``, ``started``) only names
    the holder in the second run's error.

    Nested output folders: the run also takes a shared ``flock`` on the lock file of
    every folder around its own that has one (that has been an output folder), so that
    a run into ``out/sub`` and a run into ``out`` exclude each other whenever ``out``
    has been an output folder before; a run into ``out``, never used before, does not
    look for runs inside it."""

    def __init__(self, folder: str | os.PathLike, command: str = "embed") -> None:
        self.folder = os.path.abspath(os.fspath(folder))
        self.command = command  # what the errors name: the command that writes here
        self.path = os.path.join(self.folder, LOCK)
        self._fd: int | None = None
        self._around: list[int] = []

    def acquire(self) -> FolderLock:
        """Takes the lock, making the folder if missing.

        Raises:
            OutputFolderLocked: another process holds it (never waits).
            NotADirectoryError: the folder is a file.
            OSError: the lock file cannot be opened (a symbolic link, no permission).
        """
        import fcntl

        if self._fd is not None:
            raise RuntimeError(f"{self.command}: the lock of '{self.folder}' is already held here")
        if os.path.exists(self.folder) and not os.path.isdir(self.folder):
            raise NotADirectoryError(
                f"{self.command}: the output folder '{self.folder}' is a file, not a folder"
            )
        os.makedirs(self.folder, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in _BUSY:
                raise OutputFolderLocked(
                    self.folder, _holder(self.path), command=self.command
                ) from None
            raise
        try:
            self._lock_around()
        except BaseException:
            os.close(fd)
            raise
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self._fd = fd
        return self

    def _lock_around(self) -> None:
        """Shared locks on the lock files of the folders around this one."""
        import fcntl

        folder = os.path.realpath(self.folder)
        while (parent := os.path.dirname(folder)) != folder:
            folder = parent
            path = os.path.join(folder, LOCK)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue  # none (the usual case), or not ours to read
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in _BUSY:
                    continue
                for held in self._around:
                    os.close(held)
                self._around.clear()
                raise OutputFolderLocked(self.folder, _holder(path), folder, self.command) from None
            self._around.append(fd)

    def release(self) -> None:
        """Drops the lock (a no-op when not held)."""
        for fd in self._around:
            os.close(fd)
        self._around.clear()
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.ftruncate(fd, 0)  # no stale holder named; the lock is the flock
            except OSError:
                pass
            os.close(fd)  # closing the last descriptor of the file drops the flock

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


def _holder(path: str) -> dict:
    try:
        with open(path) as f:
            holder = json.loads(f.read() or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


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

    def inside(self, output: str) -> bool:
        """Whether ``output``'s folder, symbolic links followed, is inside the output
        folder (a link planted in the folder could lead elsewhere)."""
        folder = os.path.realpath(os.path.dirname(self.path(output)))
        return is_inside(folder, os.path.realpath(self.root))

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
        """``data`` to ``output`` (atomically).

        Raises:
            OSError: the disk refused it, or the output's folder leads out of the
                output folder through a symbolic link.
        """
        if not self.inside(output):
            raise OSError(
                errno.EXDEV, f"'{output}' leads out of the output folder (a symbolic link)"
            )
        atomic_write(self.path(output), data)

    def read_index(self) -> dict[str, dict]:
        """The records of ``index.jsonl`` whose output still exists, by output, each
        output under its canonical name (a record under another spelling of it, from
        an older version, counts once); records whose output is no valid name are
        dropped."""
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
            if not isinstance(output, str) or not output.endswith(SUFFIX):
                continue
            try:
                output = output_name(output[: -len(SUFFIX)]) + SUFFIX
            except OutputNameError:
                continue
            if os.path.isfile(self.path(output)) and self.inside(output):
                records[output] = {**record, "output": output}
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
