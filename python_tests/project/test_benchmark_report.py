"""docs/benchmarks.md and README.md's summary table are generated from the committed
results (benchmarks/results/*.json) and current: no figure is typed by hand."""

from __future__ import annotations

import json
import subprocess
import sys

from support import REPO


def test_benchmark_tables_are_current():
    """Run ``python benchmarks/report.py`` after committing new results."""
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "report.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_result_names_its_machine_and_command():
    results = sorted((REPO / "benchmarks" / "results").glob("*.json"))
    assert results
    for path in results:
        data = json.loads(path.read_text())
        assert data["command"].startswith("python benchmarks/"), path.name
        assert {"cpu", "cores", "torch"} <= set(data["machine"]), path.name
