"""``sfllava embed``'s output folder holds what its index says, whatever the inputs and
however runs end: output names have one canonical form and two inputs never share one
(finding 6), one run at a time holds the folder (7), a killed run leaves no process and
no shared memory behind (8), and SIGTERM writes the index before it exits.

The attacks run against real ``sfllava embed`` processes; the fault hook
(``support.faults``) holds a decode worker on a chosen video, so that each run is
stopped at a known point rather than after a guessed delay."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unicodedata

import psutil
import pytest
from support import PYTHONPATH, faults
from support.embed_outputs import jsonl, outputs
from support.videos import write_test_video

from sfllava_ext.embed import (
    FolderLock,
    OutputCollisionError,
    OutputFolderLocked,
    OutputNameError,
    collect_inputs,
    output_name,
)
from sfllava_ext.embed.store import Store

FRAMES = 4
SHM = "/dev/shm"


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Small videos a0..a3 and b0..b2, and one large one (its frames need a new
    shared-memory block in a worker that holds only small ones)."""
    root = tmp_path_factory.mktemp("integrity")
    for name in ("a0", "a1", "a2", "a3", "b0", "b1", "b2"):
        write_test_video(root / f"{name}.mp4", 64, 48, 12)
    write_test_video(root / "big.mp4", 320, 240, 12)
    return root


class _Run:
    """``sfllava embed ARGS`` in its own session, its output in files (a pipe would
    stay open while an orphaned worker holds it)."""

    def __init__(self, args, env=None) -> None:
        env = {**os.environ, "PYTHONPATH": PYTHONPATH, "PYTHONUNBUFFERED": "1", **(env or {})}
        cmd = [sys.executable, "-m", "sfllava_ext.cli", "embed", *map(str, args), "--quiet",
               "--demo", "--dtype", "float32", "--num-frames", str(FRAMES)]  # fmt: skip
        self.out = tempfile.TemporaryFile("w+")
        self.err = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.out, stderr=self.err, text=True,
                                     start_new_session=True, cwd=tempfile.gettempdir())  # fmt: skip
        self.pid = self.proc.pid
        _RUN_PIDS.add(self.pid)

    def poll(self):
        return self.proc.poll()

    def finish(self, timeout=120) -> tuple[int, str, str]:
        """Waits for the run: its exit status, stdout and stderr."""
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.out.seek(0)
        self.err.seek(0)
        return code, self.out.read(), self.err.read()


def _wait(condition, run, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        if run.poll() is not None:
            pytest.fail(f"the run ended before {what}: {run.finish()}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _manifest(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _index_outputs(out):
    path = out / "index.jsonl"
    return sorted(r["output"] for r in jsonl(path)) if path.exists() else []


_RUN_PIDS: set[int] = set()  # every `sfllava embed` this module started


def _blocks(before):
    """Shared-memory blocks of this test's runs (named ``sfllava-<pidns>-<main pid>-...``)
    made since ``before`` (os.listdir); another run on the machine is not the test's."""
    ours = {str(pid) for pid in _RUN_PIDS} | {str(os.getpid())}
    return sorted(
        n
        for n in set(os.listdir(SHM)) - before
        if n.startswith("sfllava-") and n.split("-")[2:3] and n.split("-")[2] in ours
    )


def _reap(processes):
    """Kills what is still alive of ``processes`` (the test's own), and says what was."""
    alive = []
    for p in processes:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{p.pid}: {' '.join(p.cmdline())[-60:]}")
                p.kill()
        except psutil.Error:  # gone
            pass
    return alive


# -- 6: names ---------------------------------------------------------------------------


@pytest.mark.parametrize("ident", ["x", "./x", "sub/../x", "x/", "x//", " x ", "./a/./../x/."])
def test_equivalent_ids_name_one_output(ident):
    assert output_name(ident) == "x"


@pytest.mark.parametrize(
    "ident, message",
    [
        ("../a", "leaves the output folder"),
        ("a/../../b", "leaves the output folder"),
        ("/etc/a", "absolute"),
        ("", "empty"),
        ("   ", "empty"),
        (".", "empty"),
        ("sub/..", "empty"),
        ("//", "absolute"),
        (".a", "hidden"),
        ("a/.b/c", "hidden"),
        ("..a", "hidden"),
        ("a\x00b", "unsafe character"),
        ("a\nb", "unsafe character"),
        ("a\\..\\b", "unsafe character"),
        ("a\u202eb", "unsafe character"),  # a right-to-left override
        ("a\u200bb", "unsafe character"),  # a zero-width space
        ("x" * 201, "over 200 bytes"),
        (True, "not a string"),
        ([1], "not a string"),
    ],
)
def test_unsafe_ids_are_refused_naming_the_line(videos, tmp_path, ident, message):
    manifest = _manifest(tmp_path / "m.jsonl", [
        {"video": str(videos / "a0.mp4"), "id": "fine"},
        {"video": str(videos / "a1.mp4"), "id": ident},
    ])  # fmt: skip
    with pytest.raises(OutputNameError, match=message) as caught:
        collect_inputs([str(manifest)])
    assert f"line 2 of '{manifest}'" in str(caught.value)


@pytest.mark.parametrize(
    "first, second, output",
    [
        ("x", "./x", "x.safetensors"),
        ("y", "sub/../y", "y.safetensors"),
        ("z", "z//", "z.safetensors"),
        ("Clip", "clip", "clip.safetensors"),  # one file on a case-insensitive system
        ("caf\u00e9", unicodedata.normalize("NFD", "caf\u00e9"), "caf\u00e9.safetensors"),
        ("a", "a.safetensors/b", "a.safetensors"),  # a file where a folder must be
        ("sub./x", "sub/x", "x.safetensors"),  # Windows drops trailing dots
        ("\uff41", "a", "a.safetensors"),  # a full-width letter (NFKC)
    ],
)
def test_colliding_inputs_are_refused_naming_both(videos, tmp_path, first, second, output):
    manifest = _manifest(tmp_path / "m.jsonl", [
        {"video": str(videos / "a0.mp4"), "id": first},
        {"video": str(videos / "a1.mp4"), "id": second},
    ])  # fmt: skip
    with pytest.raises(OutputCollisionError) as caught:
        collect_inputs([str(manifest)])
    text = str(caught.value)
    assert output in text
    for n, name in ((1, "a0.mp4"), (2, "a1.mp4")):
        assert str(videos / name) in text and f"line {n} of '{manifest}'" in text


def test_a_folder_and_a_manifest_that_collide_are_refused(videos, tmp_path):
    manifest = _manifest(tmp_path / "m.jsonl", [{"video": str(videos / "b0.mp4"),
                                                 "id": "./a0.mp4"}])  # fmt: skip
    with pytest.raises(OutputCollisionError, match="a0.mp4.safetensors") as caught:
        collect_inputs([str(videos), str(manifest)])
    assert f"the argument '{videos}'" in str(caught.value)
    # the same video under the same name twice (a folder given twice) is one video
    assert len(collect_inputs([str(videos), str(videos / "a0.mp4")])) == 8


def test_an_index_with_two_spellings_of_one_output_counts_once(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"")
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / ".safetensors").write_bytes(b"")  # what `y//` wrote before
    names = ("./x.safetensors", "x.safetensors", "y//.safetensors", "../x.safetensors")
    records = [{"output": o, "source": o} for o in names]
    _manifest(tmp_path / "index.jsonl", records)
    index = Store(tmp_path, "key").read_index()
    assert list(index) == ["x.safetensors"] and index["x.safetensors"]["source"] == "x.safetensors"


def test_a_write_through_a_planted_link_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    os.symlink(outside, tmp_path / "out" / "sub")
    store = Store(tmp_path / "out", "key")
    with pytest.raises(OSError, match="leads out of the output folder"):
        store.write_output("sub/x.safetensors", b"data")
    assert os.listdir(outside) == []
    store.write_output("fine/x.safetensors", b"data")


def test_cli_refuses_colliding_ids_before_any_work(videos, tmp_path):
    out = tmp_path / "out"
    manifest = _manifest(tmp_path / "m.jsonl", [
        {"video": str(videos / "a0.mp4"), "id": "x"},
        {"video": str(videos / "a1.mp4"), "id": "./x"},
    ])  # fmt: skip
    code, _, err = _Run([manifest, "-o", out]).finish()
    assert code == 1, err
    assert "OutputCollisionError" in err and "'x.safetensors'" in err, err
    assert "line 1 of" in err and "line 2 of" in err, err
    assert not out.exists() or (outputs(out), _index_outputs(out)) == ([], [])

    # names that were written elsewhere before (y// as a hidden y/.safetensors)
    manifest = _manifest(tmp_path / "n.jsonl", [
        {"video": str(videos / "a0.mp4"), "id": "y//"},
        {"video": str(videos / "a1.mp4"), "id": "sub/../z"},
    ])  # fmt: skip
    code, _, err = _Run([manifest, "-o", out]).finish()
    assert code == 0, err
    assert outputs(out) == _index_outputs(out) == ["y.safetensors", "z.safetensors"]


# -- 7: one run per folder ----------------------------------------------------------------


def test_the_lock_is_one_per_folder_within_a_process_too(tmp_path):
    with FolderLock(tmp_path / "out") as held:
        with pytest.raises(OutputFolderLocked, match=f"pid {os.getpid()}"):
            FolderLock(tmp_path / "out" / ".").acquire()
        assert json.loads(open(held.path).read())["pid"] == os.getpid()
    with FolderLock(tmp_path / "out"):  # released: free again
        pass


def test_nested_output_folders_exclude_each_other(tmp_path):
    with FolderLock(tmp_path / "out"):
        with pytest.raises(OutputFolderLocked, match="inside .* another run is writing into"):
            FolderLock(tmp_path / "out" / "sub").acquire()
    # out has been an output folder: a run into out/sub keeps a run into out away
    with FolderLock(tmp_path / "out" / "sub"):
        with pytest.raises(OutputFolderLocked, match="a run into a folder inside it"):
            FolderLock(tmp_path / "out").acquire()
        with FolderLock(tmp_path / "out" / "other"):  # siblings do not exclude
            pass
    with FolderLock(tmp_path / "out"):
        pass


def test_the_ray_driver_takes_the_lock_before_ray_starts(videos, tmp_path):
    ray = pytest.importorskip("ray")
    from sfllava_ext.embed import embed_dataset

    started = ray.is_initialized()
    with FolderLock(tmp_path / "out"):
        with pytest.raises(OutputFolderLocked):
            embed_dataset([str(videos / "a0.mp4")], tmp_path / "out", progress=False)
    assert ray.is_initialized() == started


def test_a_second_run_into_a_locked_folder_is_refused(videos, tmp_path):
    out = tmp_path / "out"
    os.symlink(out, tmp_path / "link", target_is_directory=True)  # the same folder
    first = tmp_path / "first"
    first.mkdir()
    for name in ("a0", "a1", "a2"):
        os.link(videos / f"{name}.mp4", first / f"{name}.mp4")
    markers = tmp_path / "markers"
    markers.mkdir()
    held = faults.environment(markers, **{"embed.decode": {"a1.mp4": "hold"}})
    a = _Run([first, "-o", out, "--decode-workers", "1"], env=held)
    try:
        _wait(lambda: outputs(out) == ["a0.mp4.safetensors"], a, "a's first output")
        # b: other videos, into the same folder by another path, while a holds it
        b = _Run([videos / f"{n}.mp4" for n in ("b0", "b1", "b2")] + ["-o", tmp_path / "link"])
        b_code, _, b_err = b.finish()
    finally:
        faults.release(markers)
        a_code, _, a_err = a.finish()
    assert a_code == 0, a_err
    # every file in the folder is in its index (before: b's records were lost)
    assert outputs(out) == _index_outputs(out), (outputs(out), _index_outputs(out))
    assert b_code == 1, b_err
    assert "OutputFolderLocked" in b_err and f"pid {a.pid}" in b_err, b_err
    assert f"'{tmp_path / 'link'}' (that is '{os.path.realpath(out)}')" in b_err, b_err
    assert outputs(out) == [f"a{i}.mp4.safetensors" for i in range(3)]


# -- 8 and SIGTERM: how a run ends --------------------------------------------------------


def _library(tmp_path, videos, names):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in names:
        os.link(videos / name, folder / name)
    return folder


def test_a_killed_run_leaves_no_process_and_no_shared_memory(videos, tmp_path):
    folder = _library(tmp_path, videos, ["a0.mp4", "a1.mp4", "a2.mp4", "big.mp4"])
    out = tmp_path / "out"
    markers = tmp_path / "markers"
    markers.mkdir()
    before = set(os.listdir(SHM))
    held = faults.environment(markers, **{"embed.decode": {"big.mp4": "hold"}})
    run = _Run([folder, "-o", out, "--decode-workers", "2"], env=held)
    children = []
    try:
        _wait(lambda: len(outputs(out)) == 3, run, "three outputs")
        children = psutil.Process(run.pid).children(recursive=True)  # workers, tracker
        # stopped, the main process maps nothing: the worker's new block keeps its name
        os.kill(run.pid, signal.SIGSTOP)
        faults.release(markers)
        _wait(lambda: _blocks(before), run, "a named block")
        os.kill(run.pid, signal.SIGKILL)
        run.finish(timeout=30)
        psutil.wait_procs(children, timeout=10)
    finally:
        if run.poll() is None:
            run.proc.kill()  # the test's own run, ended on a failure
        orphans = _reap(children)
        left = _blocks(before)
        for name in left:
            os.unlink(os.path.join(SHM, name))
    assert orphans == [], f"processes outlived the killed run: {orphans}"
    assert left == [], f"shared memory outlived the killed run: {left}"

    # a rerun (taking the lock the killed run held) resumes, and removes the blocks a
    # run killed with its workers left (its pid is gone); a live process's stay
    namespace = os.stat("/proc/self/ns/pid").st_ino
    stale = f"sfllava-{namespace}-{run.pid}-0123456789-0-0"
    live = f"sfllava-{namespace}-{os.getpid()}-0123456789-0-0"
    for name in (stale, live):
        with open(os.path.join(SHM, name), "wb") as f:
            f.write(b"\0" * 4096)
    try:
        code, stdout, err = _Run([folder, "-o", out, "--decode-workers", "2"]).finish()
        assert code == 0, err
        assert "1 done, 3 skipped, 0 failed" in stdout
        assert not os.path.exists(os.path.join(SHM, stale))
        assert os.path.exists(os.path.join(SHM, live))
    finally:
        for name in (stale, live):
            if os.path.exists(os.path.join(SHM, name)):
                os.unlink(os.path.join(SHM, name))
    assert outputs(out) == _index_outputs(out) and len(outputs(out)) == 4
    assert _blocks(before) == []


def test_a_signal_during_the_cleanup_waits_for_the_index():
    from sfllava_ext.embed.pipeline import deferred_signals

    class Stop(Exception):
        pass

    def stop(signum, frame):
        raise Stop(signum)

    steps = []
    saved = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(Stop):
            with deferred_signals():
                os.kill(os.getpid(), signal.SIGTERM)  # lands in the cleanup
                time.sleep(0.05)
                steps.append("index written")
        assert steps == ["index written"]
        assert signal.getsignal(signal.SIGTERM) is stop
        with pytest.raises(Stop):  # a second signal goes through at once
            with deferred_signals():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                steps.append("not reached")
        assert steps == ["index written"]
    finally:
        signal.signal(signal.SIGTERM, saved)


@pytest.mark.parametrize("to", ["group", "main"])
def test_sigterm_writes_the_index_and_a_rerun_resumes(videos, tmp_path, to):
    folder = _library(tmp_path, videos, ["a0.mp4", "a1.mp4", "a2.mp4", "a3.mp4"])
    out = tmp_path / "out"
    markers = tmp_path / "markers"
    markers.mkdir()
    before = set(os.listdir(SHM))
    held = faults.environment(markers, **{"embed.decode": {"a2.mp4": "hold"}})
    run = _Run([folder, "-o", out, "--decode-workers", "2"], env=held)
    children = []
    try:
        _wait(lambda: len(outputs(out)) == 2, run, "two outputs")
        children = psutil.Process(run.pid).children(recursive=True)
        if to == "group":  # as systemd or a terminal's job control sends it
            os.killpg(run.pid, signal.SIGTERM)
        else:  # as `kill PID` or a container's stop sends it
            os.kill(run.pid, signal.SIGTERM)
        code, _, err = run.finish(timeout=60)
        psutil.wait_procs(children, timeout=10)
    finally:
        if run.poll() is None:
            run.proc.kill()  # the test's own run, ended on a failure
        orphans = _reap(children)
    # every finished output is in the index, written before the exit
    assert outputs(out) == _index_outputs(out) == ["a0.mp4.safetensors", "a1.mp4.safetensors"]
    assert code == 143, err
    assert "terminated (SIGTERM)" in err
    assert orphans == [] and _blocks(before) == []
    if to == "main":
        return  # the rerun is the same as the group's

    code, stdout, err = _Run([folder, "-o", out]).finish()
    assert code == 0, err
    assert "2 done, 2 skipped, 0 failed" in stdout
    assert outputs(out) == _index_outputs(out) and len(outputs(out)) == 4
