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
    assert line["points"] == len(ops)
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
    kinds = [kind for kind, _ in plan]
    assert kinds.count("fresh") == 50 and kinds.count("evicted") >= 5
    fresh = [n for kind, n in plan if kind == "fresh"]
    assert fresh == list(range(50))  # each a video never sent before
    assert all(n < (i // 4) + 1 for i, (_, n) in enumerate(plan))  # sent before it is asked


def test_a_planted_leak_is_flagged_in_process_and_in_the_server(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    argv = [sys.executable, str(SCRIPT), "--only", "follow_up", "service"]
    argv += ["--follow-up", "60", "--service", "40", "--samples", "20"]
    argv += ["--plant-leak-kb", "100", "--package-root", PACKAGE_ROOT, "--json", str(out)]
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["plant_leak_kb"] == 100
    for name in ("follow_up", "service"):
        run = result["runs"][name]
        # 100 KB (102,400 bytes) per operation: 10.24 MB per 100 operations
        assert run["leak"], (name, run["slope_mb_per_100_ops"])
        assert 5 < run["slope_mb_per_100_ops"] < 20, name
        assert run["samples"]["ops"][-1] == run["operations"]
    served = result["runs"]["service"]["details"]
    assert served["health"]["completed"] == 40 and served["requests"]["fresh"] == 10
    section = "\n".join(soak.render(result))
    assert '<a id="soak"></a>' in section and "| follow-up | 60 |" in section
