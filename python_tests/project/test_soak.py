"""benchmarks/soak.py, small: its slope fit on synthetic samples (a known slope comes
back, a flat noisy series and a warm-up's growth stay under the target), and a bounded
run with a planted leak of 100 KB per operation that the script flags on an in-process
workload (follow-up questions) and on the service (planted in the server process).
Whether the package leaks is the full run's to say (benchmarks/results/soak.json): a
run this short could not tell 1 MB per 100 operations from noise reliably."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from support import PACKAGE_ROOT, PYTHONPATH, REPO, load_benchmark

SCRIPT = REPO / "benchmarks" / "soak.py"


soak = load_benchmark("soak")


def test_the_fit_recovers_a_known_slope() -> None:
    rng = random.Random(1)
    ops = list(range(0, 1001, 20))
    rss = [400 + 0.05 * op + rng.uniform(-0.5, 0.5) for op in ops]  # 5 MB per 100 ops
    assert soak.slope_per_100(ops, rss, 200) == pytest.approx(5.0, abs=0.1)
    line = soak.fit(ops, [3 - 2 * op for op in ops])
    assert line["slope"] == pytest.approx(-2) and line["intercept"] == pytest.approx(3)
    assert soak.leaks(soak.slope_per_100(ops, rss, 200))


def test_a_flat_noisy_series_is_under_the_target() -> None:
    rng = random.Random(2)
    ops = list(range(0, 1001, 20))
    # the allocator's noise: +-3 MB, and a pool that comes and goes every 7th sample
    rss = [500 + rng.uniform(-3, 3) + 8 * (k % 7 == 3) for k, _ in enumerate(ops)]
    slope = soak.slope_per_100(ops, rss, 200)
    assert abs(slope) < soak.TARGET_MB_PER_100 / 2 and not soak.leaks(slope)


def test_the_warm_up_is_not_fitted() -> None:
    ops = list(range(0, 1001, 20))
    rss = [300 + min(op, 150) for op in ops]  # 150 MB while caches fill, then flat
    assert soak.slope_per_100(ops, rss, 200) == pytest.approx(0.0, abs=1e-9)
    assert soak.leaks(soak.slope_per_100(ops, rss, 0))
    with pytest.raises(ValueError, match="past the warm-up"):
        soak.fit(ops, rss, 2000)


def test_the_service_plan_churns_the_cache() -> None:
    plan = soak.service_plan(200)
    kinds = [kind for kind, _, _ in plan]
    assert kinds.count("fresh") == 50 and kinds.count("evicted") >= 5
    fresh = [n for kind, n, _ in plan if kind == "fresh"]
    assert fresh == list(range(50))  # each a video never sent before
    asked = [(i, n) for i, (kind, n, _) in enumerate(plan) if kind in ("fresh", "follow_up")]
    assert all(n < (i // 4) + 1 for i, n in asked)  # sent before it is asked
    assert kinds.count("bad_data") == kinds.count("missing_file") == 5  # 5% errors
    modes = [mode for _, _, mode in plan]
    assert 20 <= modes.count("stream") <= 26  # 10-13% streamed
    assert modes.count("drop_sent") == 4 and modes.count("drop_stream") == 2
    # a drop is never the operation right before a sample at a multiple of 10
    assert all((i + 1) % 10 for i, mode in enumerate(modes) if mode.startswith("drop"))


def test_a_planted_leak_is_flagged_in_process_and_in_the_server(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    argv = [sys.executable, str(SCRIPT), "--only", "follow_up", "service"]
    argv += ["--follow-up", "60", "--service", "40", "--samples", "20"]
    # the server's session cache fills over its first 3 fresh videos (requests 0, 4 and
    # 8; 7.8 MB each): with 40 requests and a 20% warm-up the third would land in the
    # fitted window and could add up to ~30 MB per 100 operations to the plant's 10.24;
    # a 40% warm-up (16 requests) leaves it out
    argv += ["--warmup", "0.4"]
    argv += ["--plant-leak-kb", "100", "--package-root", PACKAGE_ROOT, "--json", str(out)]
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["plant_leak_kb"] == 100
    for name in ("follow_up", "service"):
        run = result["runs"][name]
        # 100 KB (102,400 bytes) per operation: 10.24 MB per 100 operations
        assert run["leak"] and run["leaks"]["rss"], (name, run["slope_mb_per_100_ops"])
        assert 5 < run["slope_mb_per_100_ops"] < 20, name
        assert run["samples"]["ops"][-1] == run["operations"]
        assert run["samples_taken"] == 21 and not run["sample_wait_timed_out"]
    served = result["runs"]["service"]
    # the plant is memory only: no file descriptor or temp file is left behind
    assert not served["leaks"]["fds"] and not served["leaks"]["temp_files"]
    assert served["temp_files_max"] == 0 and served["details"]["temp_files_after_stop"] == 0
    details = served["details"]
    assert details["requests"]["fresh"] == 10
    assert details["modes"]["drop_stream"] == details["modes"]["drop_sent"] == 1
    statuses = details["statuses"]
    assert statuses["400"] == statuses["404"] == 1 and statuses["dropped"] == 1
    assert statuses["200"] == 37  # the stream dropped after its first event included
    section = "\n".join(soak.render(result))
    assert '<a id="soak"></a>' in section and "| follow-up | 60 |" in section


def test_a_failed_workload_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A workload's process that fails (here: exit 1 and no result) is no leak: exit
    status 2, a message that says so, nothing written."""
    out = tmp_path / "soak.json"
    monkeypatch.setattr(
        soak.subprocess, "run", lambda argv, **kw: subprocess.CompletedProcess(argv, 1)
    )
    code = soak.main(["--only", "follow_up", "--follow-up", "10", "--json", str(out)])
    assert code == 2 and not out.exists()
    assert "the follow_up workload's process failed (exit 1" in capsys.readouterr().out
