"""docs/benchmarks.md, its plots (docs/plots/*.png) and README.md's summary are generated
from the committed results (benchmarks/results/*.json) and current: no figure is typed
or drawn by hand."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys

from PIL import Image
from support import REPO

PLOTS = REPO / "docs" / "plots"

#: a matplotlibrc that changes every figure, were the plot style to let it through
HOSTILE_RC = """\
font.family: serif
font.size: 17
lines.linewidth: 4
axes.prop_cycle: cycler('color', ['red', 'green'])
figure.dpi: 50
axes.grid: False
"""


def test_benchmark_tables_and_plots_are_current(tmp_path):
    """Run ``python benchmarks/report.py`` after committing new results. The check draws
    every plot again from the JSON and compares the PNG bytes with the committed files,
    here under a matplotlibrc that would change every figure if the style leaked; a plot
    drawn differently is left in ``tmp_path`` to compare."""
    (tmp_path / "matplotlibrc").write_text(HOSTILE_RC)
    env = {**os.environ, "MATPLOTLIBRC": str(tmp_path / "matplotlibrc"), "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "report.py"), "--check"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_result_names_its_machine_and_command():
    results = sorted((REPO / "benchmarks" / "results").glob("*.json"))
    assert results
    for path in results:
        data = json.loads(path.read_text())
        assert data["command"].startswith("python benchmarks/"), path.name
        assert {"cpu", "cores", "torch"} <= set(data["machine"]), path.name


def png_chunks(data: bytes) -> list[bytes]:
    """The chunk types of the PNG ``data``, in order."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    kinds, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kinds.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return kinds


def test_plots_hold_the_pixels_only():
    """No software, date or resolution chunk: nothing but the image decides the bytes."""
    plots = sorted(PLOTS.glob("*.png"))
    assert plots
    for path in plots:
        assert png_chunks(path.read_bytes()) == [b"IHDR", b"IDAT", b"IEND"], path.name
        with Image.open(path) as image:
            image.load()  # a valid PNG, every row decodes
            assert image.mode == "RGB" and image.size[0] > 0, path.name


def test_every_plot_is_shown_and_every_shown_plot_exists():
    shown = set(
        re.findall(r"\]\(plots/([^)]+\.png)\)", (REPO / "docs" / "benchmarks.md").read_text())
    )
    readme = set(re.findall(r"\]\(docs/plots/([^)]+\.png)\)", (REPO / "README.md").read_text()))
    assert readme, "README.md shows no overview figure"
    assert shown | readme == {path.name for path in PLOTS.glob("*.png")}
