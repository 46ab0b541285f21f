"""``sfllava embed`` over many videos on one machine: inputs and output names, outputs
equal to ``encode(path)``, the index and errors files, resume after a rerun, a kill
or Ctrl-C, decode workers that die, and bounded memory."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import av
import psutil
import pytest
import torch
from safetensors.torch import load_file
from support import PACKAGE_ROOT, faults
from support.embed_outputs import jsonl, outputs
from support.videos import write_test_video

from sfllava_ext import VideoSession, embed_videos, sample_frame_indices
from sfllava_ext.embed import collect_inputs
from sfllava_ext.models.spec import ModelSpec

FRAMES = 8


@pytest.fixture(scope="module")
def sf():
    return ModelSpec(dtype="float32", num_frames=FRAMES).build()


def _video(path, num_frames=24, width=96, height=64, pattern="moving"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return write_test_video(path, width, height, num_frames, pattern=pattern)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Five videos in two folders (two of them named a.mp4), and a corrupt one."""
    root = tmp_path_factory.mktemp("library")
    _video(root / "one" / "a.mp4", 20)
    _video(root / "one" / "b.mp4", 31)
    _video(root / "two" / "a.mp4", 26, pattern="noise")
    _video(root / "two" / "deep" / "c.mkv", 18)
    _video(root / "d.mp4", 40)
    (root / "two" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    (root / "notes.txt").write_text("not a video")
    return root


def test_outputs_equal_encode_with_index_and_errors(sf, library, tmp_path):
    out = tmp_path / "out"
    seen = []
    summary = embed_videos(
        [str(library)], out, model=sf, decode_workers=2, progress=False,
        on_video=lambda kind, record: seen.append(kind),
    )  # fmt: skip
    assert (summary.done, summary.skipped, summary.failed) == (5, 0, 1)
    assert sorted(seen) == ["done"] * 5 + ["failed"]
    assert outputs(out) == [
        "d.mp4.safetensors",
        "one/a.mp4.safetensors",
        "one/b.mp4.safetensors",
        "two/a.mp4.safetensors",
        "two/deep/c.mkv.safetensors",
    ]
    index = {r["output"]: r for r in jsonl(out / "index.jsonl")}
    assert sorted(index) == outputs(out)
    for output, record in index.items():
        source = str(library / output[: -len(".safetensors")])
        assert record["source"] == source
        assert record["sha256"] == hashlib.sha256(open(source, "rb").read()).hexdigest()
        expected = sf.encode(source)  # the reference: one video, the plain call
        session = VideoSession.load(out / output, sf)
        assert torch.equal(session.tokens, expected), output
        assert record["tokens"] == expected.shape[0]
        assert record["frame_indices"] == session.info["frame_indices"]
        with av.open(source) as container:  # the frame count, read independently
            total = sum(1 for _ in container.decode(video=0))
        assert record["frame_indices"] == sample_frame_indices(total, FRAMES)
    (failure,) = jsonl(out / "errors.jsonl")
    assert failure["source"] == str(library / "two" / "broken.mp4")
    assert "VideoDecodeError" in failure["reason"]
    assert summary.failures == [failure]
    assert not glob.glob(str(out / "**" / ".*tmp-*"), recursive=True)


def test_in_process_decode_gives_the_same_files(sf, library, tmp_path):
    embed_videos([str(library)], tmp_path / "w", model=sf, decode_workers=2, progress=False)
    embed_videos([str(library)], tmp_path / "p", model=sf, decode_workers=0, progress=False)
    for output in outputs(tmp_path / "w"):
        assert torch.equal(
            load_file(tmp_path / "w" / output)["tokens"],
            load_file(tmp_path / "p" / output)["tokens"],
        )


def test_globs_and_manifests_name_outputs(sf, library, tmp_path):
    manifest = tmp_path / "list.jsonl"
    manifest.write_text(
        json.dumps({"video": str(library / "one" / "a.mp4"), "id": "clips/first"}) + "\n"
        + json.dumps({"video": str(library / "d.mp4")}) + "\n"
    )  # fmt: skip
    csv_file = library / "list.csv"
    csv_file.write_text("id,video\nsecond,one/b.mp4\n,two/a.mp4\n")
    try:
        items = collect_inputs(
            [str(manifest), str(csv_file), str(library / "two" / "**" / "*.mkv")]
        )
    finally:
        csv_file.unlink()
    assert [(os.path.relpath(i.source, library), i.output) for i in items] == [
        ("one/a.mp4", "clips/first.safetensors"),
        ("d.mp4", "d.mp4.safetensors"),
        ("one/b.mp4", "second.safetensors"),
        ("two/a.mp4", "two/a.mp4.safetensors"),
        ("two/deep/c.mkv", "deep/c.mkv.safetensors"),
    ]
    summary = embed_videos([str(manifest)], tmp_path / "out", model=sf, progress=False)
    assert summary.done == 2 and outputs(tmp_path / "out") == [
        "clips/first.safetensors",
        "d.mp4.safetensors",
    ]


@pytest.mark.parametrize(
    "rows, error, message",
    [
        (None, FileNotFoundError, "no such video, folder, glob or manifest"),
        ([{"id": "x"}], ValueError, "has no 'video'"),
        ([{"video": "one/a.mp4", "id": "../escape"}], ValueError, "leaves the output"),
        ([{"video": "one/a.mp4", "id": "/abs"}], ValueError, "leaves the output"),
        (
            [{"video": "one/a.mp4", "id": "x"}, {"video": "d.mp4", "id": "x"}],
            ValueError,
            "would both be written as 'x.safetensors'",
        ),  # fmt: skip
    ],
)
def test_bad_inputs_are_refused_before_any_work(library, tmp_path, rows, error, message):
    if rows is None:
        spec = str(tmp_path / "missing.mp4")
    else:
        spec = str(library / "bad.jsonl")
        with open(spec, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    try:
        with pytest.raises(error, match=message):
            collect_inputs([spec])
    finally:
        if rows is not None:
            os.remove(spec)


def test_rerun_skips_done_and_redoes_what_changed(sf, library, tmp_path):
    videos = tmp_path / "videos"
    shutil.copytree(library, videos)
    out = tmp_path / "out"
    first = embed_videos([str(videos)], out, model=sf, progress=False)
    assert (first.done, first.failed) == (5, 1)
    stamps = {o: os.stat(out / o).st_mtime_ns for o in outputs(out)}

    again = embed_videos([str(videos)], out, model=sf, progress=False)
    assert (again.done, again.skipped, again.failed) == (0, 5, 1)  # the failed one retried
    assert {o: os.stat(out / o).st_mtime_ns for o in outputs(out)} == stamps

    # a repaired video, a changed one, and a half-written output (not taken as done)
    _video(videos / "two" / "broken.mp4", 22)
    _video(videos / "one" / "b.mp4", 33)
    half = (out / "d.mp4.safetensors").read_bytes()
    (out / "d.mp4.safetensors").write_bytes(half[: len(half) // 2])
    (out / ".d.mp4.safetensors.tmp-999999999-1").write_bytes(b"left by a killed run")
    third = embed_videos([str(videos)], out, model=sf, progress=False)
    assert (third.done, third.skipped, third.failed) == (3, 3, 0)
    assert jsonl(out / "errors.jsonl") == []
    assert len(jsonl(out / "index.jsonl")) == 6
    assert not (out / ".d.mp4.safetensors.tmp-999999999-1").exists()
    for name in ("two/broken.mp4", "one/b.mp4", "d.mp4"):
        tokens = load_file(out / f"{name}.safetensors")["tokens"]
        assert torch.equal(tokens, sf.encode(str(videos / name)))

    # other settings: every video is done again
    sf.num_frames = FRAMES + 2
    try:
        other = embed_videos([str(videos)], out, model=sf, progress=False)
    finally:
        sf.num_frames = FRAMES
    assert (other.done, other.skipped) == (6, 0)


def test_a_clip_outlives_the_mapping_of_its_block():
    # a worker that dies while the model reads a clip it decoded: its blocks are closed
    # in the main process, and the clip's frames must stay readable (not a segfault)
    from multiprocessing.shared_memory import SharedMemory

    from sfllava_ext.embed.shared_memory import map_block
    from sfllava_ext.video import VideoClip

    data = torch.randint(
        0, 256, (4096,), dtype=torch.uint8, generator=torch.Generator().manual_seed(3)
    )
    made = SharedMemory(create=True, size=data.numel())
    try:
        made.buf[:] = data.numpy().tobytes()
        mapped = map_block(made.name)
        meta = {"coeffs": None, "indices": [0, 1], "total_frames": 2, "fps": 1.0,
                "duration": 2.0, "backend": "pyav", "path": "x.mp4"}  # fmt: skip
        clip = VideoClip.from_parts(mapped, [([2, 8, 8, 3], 100)], meta)
        del mapped  # the main process's own reference: the clip's arrays hold the rest
        made.close()
        made.unlink()
        made = None
        assert torch.equal(clip.frames.reshape(-1), data[100 : 100 + 384])
        del clip
    finally:
        if made is not None:
            made.close()
            made.unlink()


def test_a_decode_worker_killed_costs_only_its_video(sf, library, tmp_path, monkeypatch):
    # kill: SIGKILL on both attempts -> failed; kill-once: SIGKILL once -> retried, done
    rules = {"embed.decode": {"b.mp4": "kill", "c.mkv": "kill-once"}}
    for name, value in faults.environment(tmp_path, **rules).items():
        monkeypatch.setenv(name, value)
    before = set(os.listdir("/dev/shm"))
    start = time.monotonic()
    summary = embed_videos([str(library)], tmp_path / "out", model=sf, decode_workers=2,
                           progress=False)  # fmt: skip
    assert time.monotonic() - start < 120
    failed = {f["source"]: f["reason"] for f in summary.failures}
    assert failed[str(library / "one" / "b.mp4")] == (
        "the decode worker died twice on it (exit code -9)"
    )
    assert str(library / "two" / "deep" / "c.mkv") not in failed
    assert (summary.done, summary.failed) == (4, 2)  # b.mp4 and the corrupt one
    c = load_file(tmp_path / "out" / "two" / "deep" / "c.mkv.safetensors")["tokens"]
    assert torch.equal(c, sf.encode(str(library / "two" / "deep" / "c.mkv")))
    # this process's blocks (sfllava-<pidns>-<main pid>-...), not another run's
    mine = [n for n in set(os.listdir("/dev/shm")) - before
            if n.startswith("sfllava-") and n.split("-")[2:3] == [str(os.getpid())]]  # fmt: skip
    assert not mine


def _cli(args, **kwargs):
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "sfllava_ext.cli", "embed", *args,
           "--demo", "--dtype", "float32", "--num-frames", str(FRAMES)]  # fmt: skip
    # from outside the checkout, so that `-m` finds the installed package, not the sources
    kwargs.setdefault("cwd", tempfile.gettempdir())
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, **kwargs)  # fmt: skip


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    root = tmp_path_factory.mktemp("many")
    for i in range(24):
        _video(root / f"v{i:02d}.mp4", 16 + i)
    return root


def _wait_for_outputs(out, count, proc, timeout=180):
    deadline = time.monotonic() + timeout
    while len(outputs(out)) < count if out.exists() else True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_a_stopped_run_leaves_complete_outputs_and_resumes(sf, many, tmp_path, how):
    out = tmp_path / "out"
    proc = _cli([str(many), "-o", str(out), "--quiet"])
    _wait_for_outputs(out, 3, proc)
    os.killpg(proc.pid, getattr(signal, how))
    _, err = proc.communicate(timeout=60)
    if how == "SIGINT":  # Ctrl-C: a clean stop
        assert proc.returncode == 130, err
        assert "interrupted" in err
    else:
        assert proc.returncode == -9
    left = outputs(out)
    assert 3 <= len(left) < 24
    for output in left:  # only complete outputs: each one loads, equal to encode(path)
        tokens = VideoSession.load(out / output, sf).tokens
        assert torch.equal(tokens, sf.encode(str(many / output[: -len(".safetensors")])))
    stamps = {o: os.stat(out / o).st_mtime_ns for o in left}
    time.sleep(1)  # no leftover of the stopped run's decode workers writes after it
    rerun = _cli([str(many), "-o", str(out), "--quiet"])
    stdout, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"{24 - len(left)} done, {len(left)} skipped, 0 failed" in stdout
    assert {o: os.stat(out / o).st_mtime_ns for o in left} == stamps  # nothing redone
    assert len(outputs(out)) == 24 and len(jsonl(out / "index.jsonl")) == 24
    assert not glob.glob(str(out / "**" / ".*tmp-*"), recursive=True)


def test_cli_exit_status_and_summary(library, tmp_path):
    proc = _cli([str(library), "-o", str(tmp_path / "out"), "--quiet"])
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert "embed: 5 done, 0 skipped, 1 failed" in stdout
    assert "broken.mp4" in err and "errors.jsonl" in err
    proc = _cli([str(library / "one"), "-o", str(tmp_path / "ok")])
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "embed: 2 done, 0 skipped, 0 failed" in stdout
    assert "video/s" in err or "videos/s" in err or "2/2" in err  # the tqdm bar


def test_a_script_without_a_main_guard_gets_a_clear_error(library, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(f"""
        from sfllava_ext import embed_videos
        from sfllava_ext import ModelSpec
        embed_videos([{str(library / "one")!r}], {str(tmp_path / "out")!r},
                     model=ModelSpec(dtype="float32", num_frames=4).build(), progress=False)
    """)
    )
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=300, cwd=tmp_path)  # fmt: skip
    assert proc.returncode != 0
    assert "if __name__ == '__main__':" in proc.stderr
    # the same code read from stdin has no file to re-import: it runs
    proc = subprocess.run([sys.executable, "-"], input=script.read_text(), capture_output=True,
                          text=True, env=env, timeout=300, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert len(outputs(tmp_path / "out")) == 2


def test_memory_stays_flat_over_200_videos(sf, tmp_path):
    folder = tmp_path / "videos"
    for i in range(200):
        _video(folder / f"v{i:03d}.mp4", 12 + i % 17, width=64, height=48)
    rss = {}
    me = psutil.Process()

    def measure(kind, record):
        count = len(rss.setdefault("seen", [])) + 1
        rss["seen"].append(kind)
        if count in (20, 200):
            rss[count] = me.memory_info().rss

    summary = embed_videos([str(folder)], tmp_path / "out", model=sf, progress=False,
                           on_video=measure)  # fmt: skip
    assert summary.done == 200
    growth_mb = (rss[200] - rss[20]) / 2**20
    print(f"resident memory growth from video 20 to 200: {growth_mb:.1f} MB")
    assert growth_mb < 50
