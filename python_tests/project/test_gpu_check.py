"""benchmarks/gpu_check.py without a GPU: its dry run holds, it finds what each CUDA
test file needs, parses pytest's report, and on a machine with no GPU every step
after env is skipped with its reason instead of failing obscurely."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from support import REPO, load_script

gpu_check = load_script(REPO / "benchmarks" / "gpu_check.py")


def test_the_dry_run_holds():
    result = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin:/usr/local/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the plan holds" in result.stdout


def test_it_reads_what_a_test_file_needs(tmp_path):
    (tmp_path / "support").mkdir()
    (tmp_path / "support" / "__init__.py").write_text("import json\n")
    (tmp_path / "support" / "videos.py").write_text("import av\nimport numpy\n")
    test = tmp_path / "ops" / "test_x.py"
    test.parent.mkdir()
    test.write_text(
        "import os\nimport pytest\nfrom support.videos import write\ntry:\n    import decord\n"
        "except ImportError:\n    pass\n\ndef f():\n    import transformers\n"
    )
    assert gpu_check.imports_of(test, tests=tmp_path) == {"pytest", "av", "numpy", "decord"}
    normalize = REPO / "python_tests" / "ops" / "test_normalize_frames.py"
    assert normalize.exists() and "av" not in gpu_check.imports_of(normalize)


def test_junit_counts(tmp_path):
    xml = tmp_path / "r.xml"
    xml.write_text(
        '<testsuites><testsuite tests="4" failures="1" errors="0" skipped="1">'
        '<testcase classname="a" name="t1"/><testcase classname="a" name="t2">'
        '<failure message="x"/></testcase><testcase classname="a" name="t3"><skipped/>'
        '</testcase><testcase classname="a" name="t4"/></testsuite></testsuites>'
    )
    counts = gpu_check.junit_counts(xml)
    assert (counts["passed"], counts["failures"], counts["skipped"]) == (2, 1, 1)
    assert counts["failed_tests"] == ["a::t2"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="about a machine without a GPU")
def test_without_a_gpu_every_step_says_why(tmp_path):
    script = str(REPO / "benchmarks" / "gpu_check.py")
    result = subprocess.run(
        [sys.executable, script, "--out", str(tmp_path), "--logs", str(tmp_path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1  # env failed: no device
    summary = json.loads((tmp_path / "gpu_check_no-GPU.json").read_text())
    steps = summary["steps"]
    assert steps["env"]["status"] == "failed"
    assert all(steps[s]["status"] == "skipped" for s in ("build", "tests", "sanitizer"))
    assert steps["build"]["figures"] == "no CUDA device"
    assert (tmp_path / "gpu_check_no-GPU_logs.tar.gz").exists()


def test_the_steps_python_is_probed_in_a_child_process(tmp_path):
    """What the steps can import is asked of a child process under their environment
    (the wheels' folder on its PYTHONPATH), not of this process's sys.path."""
    (tmp_path / "sfllava_probe_only_there.py").write_text("")
    check = gpu_check.Check(tmp_path, deadline_s=60, dry_run=True)
    check.env["PYTHONPATH"] += os.pathsep + str(tmp_path)
    before = list(sys.path)
    assert check.have("sfllava_probe_only_there")
    assert not gpu_check.have_module("sfllava_probe_only_there")
    assert sys.path == before
