"""``embed_dataset`` on a real local Ray cluster: the same files as the single-process
job, errors named, an encoder actor that dies retried once, and the CLI's ``--ray``."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import ray
import torch
from safetensors.torch import load_file
from support import PACKAGE_ROOT, PYTHONPATH, faults
from support.embed_outputs import jsonl, outputs
from support.videos import write_test_video

from sfllava_ext import embed_videos
from sfllava_ext.models.spec import ModelSpec
from sfllava_ext.utils.faults import ENV as FAULT_HOOK

FRAMES = 8
SPEC = ModelSpec(dtype="float32", num_frames=FRAMES, device="cpu")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Six videos, one of them corrupt; one named to kill its actor once, one always."""
    root = tmp_path_factory.mktemp("ray-videos")
    for i, frames in enumerate([20, 27, 33, 24]):
        write_test_video(root / f"v{i}.mp4", 96, 64, frames)
    os.makedirs(root / "sub")
    write_test_video(root / "sub" / "v0.mp4", 96, 64, 30)
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(3000))
    return root


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray cluster (2 CPUs), stopped at the end; its workers inherit the fault
    hook (and the PYTHONPATH that finds it) and its rules: the actor that takes v2.mp4
    dies the first time, the one that takes poison.mp4 every time."""
    markers = tmp_path_factory.mktemp("markers")
    rules = {"embed.encode": {"v2.mp4": "kill-once", "poison.mp4": "kill"}}
    added = {**faults.environment(markers, **rules), "PYTHONPATH": PYTHONPATH}
    saved = {name: os.environ.get(name) for name in added}
    os.environ.update(added)
    # started outside the checkout: Ray's workers import from the driver's directory,
    # where the sources are not built when the package is installed (as in CI)
    here = os.getcwd()
    os.chdir(markers)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield markers
    finally:
        ray.shutdown()
        os.chdir(here)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def reference(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    saved = os.environ.pop(FAULT_HOOK, None)  # not in this process's workers
    try:
        summary = embed_videos([str(videos)], out, model=SPEC.build(), progress=False)
    finally:
        if saved is not None:
            os.environ[FAULT_HOOK] = saved
    assert (summary.done, summary.failed) == (5, 1)
    return out


def test_ray_job_equals_the_single_process_job(cluster, videos, reference, tmp_path):
    from sfllava_ext.embed.distributed import embed_dataset

    out = tmp_path / "ray"
    start = time.monotonic()
    summary = embed_dataset([str(videos)], out, SPEC, progress=False)
    assert time.monotonic() - start < 300
    assert (summary.done, summary.skipped, summary.failed) == (5, 0, 1)
    assert os.path.exists(cluster / "died-on-v2.mp4")  # an actor really died on v2.mp4
    assert outputs(out) == outputs(reference)
    for output in outputs(out):
        ours, theirs = load_file(out / output), load_file(reference / output)
        assert torch.equal(ours["tokens"], theirs["tokens"]), output
    index = sorted(jsonl(out / "index.jsonl"), key=lambda r: r["output"])
    assert index == sorted(jsonl(reference / "index.jsonl"), key=lambda r: r["output"])
    (failure,) = jsonl(out / "errors.jsonl")
    assert failure["source"] == str(videos / "corrupt.mp4")
    assert "VideoDecodeError" in failure["reason"]

    again = embed_dataset([str(videos)], out, SPEC, progress=False)
    assert (again.done, again.skipped, again.failed) == (0, 5, 1)


def test_an_actor_that_dies_twice_costs_only_its_video(cluster, videos, tmp_path):
    from sfllava_ext.embed.distributed import embed_dataset

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("v0.mp4", "v1.mp4"):
        os.symlink(videos / name, folder / name)
    os.symlink(videos / "v3.mp4", folder / "poison.mp4")
    start = time.monotonic()
    summary = embed_dataset([str(folder)], tmp_path / "out", SPEC, progress=False)
    assert time.monotonic() - start < 300  # no hang
    assert (summary.done, summary.failed) == (2, 1)
    (failure,) = summary.failures
    assert failure["source"] == str(folder / "poison.mp4")
    assert failure["reason"] == "the encoder actor died on it twice"
    assert jsonl(tmp_path / "out" / "errors.jsonl") == [failure]


def test_cli_ray_joins_a_running_cluster(cluster, videos, reference, tmp_path):
    address = ray.get_runtime_context().gcs_address
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT}
    env.pop(FAULT_HOOK)
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "sfllava_ext.cli", "embed", str(videos / "v0.mp4"),
         str(videos / "v1.mp4"), "-o", str(out), "--demo", "--ray", address, "--quiet",
         "--dtype", "float32", "--num-frames", str(FRAMES), "--device", "cpu"],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "embed: 2 done, 0 skipped, 0 failed" in proc.stdout
    for output in ("v0.mp4.safetensors", "v1.mp4.safetensors"):
        assert torch.equal(
            load_file(out / output)["tokens"], load_file(reference / output)["tokens"]
        )


def test_without_ray_the_error_names_the_install_line(monkeypatch):
    from sfllava_ext.embed import distributed

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r'pip install "sfllava_ext\[ray\]"'):
        distributed.require_ray()
