"""The one-shot GPU check: everything that needs a GPU, in one go, within a deadline.

    bash benchmarks/gpu_check.sh              # on a machine with a CUDA GPU
    bash benchmarks/gpu_check.sh --dry-run    # anywhere: checks the plan, runs nothing

Steps, in order, each with its own time limit inside an overall deadline (8 minutes
by default); a step that cannot run is skipped and says why, and the rest go on:

  env         the card, its compute capability, the cores, the tools (nvcc,
              compute-sanitizer) and the Python packages there; wheels/*.whl, when
              that folder exists, are installed first (no network needed)
  build       the CUDA extension in place: TORCH_CUDA_ARCH_LIST for the card found,
              MAX_JOBS = the cores
  tests       the CUDA tests (pytest -m cuda) of the test files whose imports are
              all there
  vllm        the vLLM plugin's tests (python_tests/vllm_plugin), where vLLM is
              already importable there (the machine has no network, and the CUDA
              vllm wheel does not fit the 64 MiB it carries): else skipped, saying why
  bench_pool  benchmarks/bench_slowfast_pool.py --device cuda: against the device
              copy bandwidth and plain PyTorch on the same GPU (target >= 60%)
  bench_normalize  benchmarks/bench_normalize_frames.py --device cuda (target >= 50%)
  sanitizer   compute-sanitizer memcheck and racecheck on a short CUDA test subset
              (last: it takes what time is left)

Each step writes gpu_check_<CARD>_<step>.json and the summary gpu_check_<CARD>.json
into --out (benchmarks/results by default), and the summary is printed as a table last.
The steps' logs go into one archive, gpu_check_<CARD>_logs.tar.gz, in --logs ($OUT when
that is set, else a temporary folder). README.md ("The GPU check") says how to run it on
a lent machine and how to read the report.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WHEELS = ROOT / "wheels"
DEADLINE_S = 480

# Test files with CUDA tests (pytest -m cuda picks the tests inside them).
CUDA_TEST_FILES = [
    "python_tests/ops/test_slowfast_pool.py",
    "python_tests/ops/test_slowfast_pool_autograd_compile.py",
    "python_tests/ops/test_normalize_frames.py",
    "python_tests/ops/test_normalize_yuv420.py",
]
# A short subset for compute-sanitizer: both pooling kernels' layouts (1-D max, 2-D
# average in bf16), the backward, both normalisation passes (pad, the host upload).
SANITIZER_TESTS = [
    "python_tests/ops/test_slowfast_pool.py::test_cuda_equals_cpu[spatial_1d_max_pool-torch.float32]",
    "python_tests/ops/test_slowfast_pool.py::test_cuda_equals_cpu[spatial_2d_avg_pool-torch.bfloat16]",
    "python_tests/ops/test_slowfast_pool_autograd_compile.py::"
    "test_backward_matches_reference_autograd[cuda-spatial_1d_max_pool-torch.float32]",
    "python_tests/ops/test_normalize_frames.py::test_cuda_matches_cpu[hw4-size4-pad-None-pillow13]",
    "python_tests/ops/test_normalize_frames.py::test_cuda_from_host_frames_and_out",
]
SANITIZER_TOOLS = ["memcheck", "racecheck"]
BENCHMARKS = {
    "bench_pool": (
        ["benchmarks/bench_slowfast_pool.py", "--device", "cuda", "--json"],
        "at_least_60pct_of_copy_bandwidth",
    ),
    "bench_normalize": (
        ["benchmarks/bench_normalize_frames.py", "--device", "cuda", "--output"],
        "at_least_50pct_of_copy_bandwidth",
    ),
}
# (step, seconds it may take at most)
# The benchmarks run before the sanitizer, which takes what time is left.
LIMITS = {
    "build": 240,
    "tests": 120,
    "vllm": 150,
    "bench_pool": 90,
    "bench_normalize": 90,
    "sanitizer": 200,
}
# Python packages the steps need, beyond the standard library.
# (sfllava_ext itself imports torch, numpy and tqdm.)
NEEDS = {
    "build": ["torch", "setuptools", "numpy", "tqdm"],
    "tests": ["pytest"],
    "bench_pool": ["einops"],
    "bench_normalize": [],
}
LOCAL_MODULES = {"support", "conftest", "sfllava_ext"}  # the tests' own, and the package
# the environment probe (``--probe``, in a child process): at most this long
PROBE_S = 120


# ------------------------------------------------------------------------ helpers


def have_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def imports_of(path: Path, seen: set[Path] | None = None, tests: Path | None = None) -> set[str]:
    """Top-level modules a test file imports, following the tests' own helper modules
    (``tests``/support/, by default python_tests/support/) but not sfllava_ext, whose
    needs the build step covers."""
    tests = tests if tests is not None else ROOT / "python_tests"
    seen = seen if seen is not None else set()
    if path in seen or not path.exists():
        return set()
    seen.add(path)
    found: set[str] = set()
    for node in _top_level(ast.parse(path.read_text()).body):
        dotted = []
        if isinstance(node, ast.Import):
            dotted = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            dotted = [node.module]
        for module in dotted:
            name = module.split(".")[0]
            if name == "support":  # python_tests/support/<module>.py, or its __init__
                parts = module.split(".")
                helper = tests / Path(*parts)
                found |= imports_of(helper.with_suffix(".py"), seen, tests)
                found |= imports_of(helper / "__init__.py", seen, tests)
            elif name not in LOCAL_MODULES:
                found.add(name)
    return {n for n in found if n not in sys.stdlib_module_names and n != "__future__"}


def _top_level(body: list[ast.stmt]):
    """The module-level statements, into top-level ``if`` and ``try`` blocks (imports
    inside functions are the tests' own business: they skip when they lack them)."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            yield from _top_level(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            yield from _top_level(node.body)


def card_name(name: str) -> str:
    """'H200' for 'NVIDIA H200', 'H100' for 'NVIDIA H100 80GB HBM3': letters and digits."""
    match = re.search(r"\b([A-Z]{1,2}\d{2,4}[A-Z]?)\b", name)
    return match.group(1) if match else re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def find_tool(name: str) -> str | None:
    """The path of the executable ``name`` (PATH, then /usr/local/cuda/bin), or None."""
    for candidate in (shutil.which(name), f"/usr/local/cuda/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def probe(modules: list[str], with_torch: bool) -> dict[str, Any]:
    """What the steps' Python finds, seen from inside it: which of ``modules`` it has and,
    ``with_torch``, torch's version, its CUDA and the card. Run as ``gpu_check.py --probe``
    in a child process under the steps' environment (:meth:`Check.probe`), so that the
    wheels' folder on its ``PYTHONPATH`` counts and torch is imported there, not here.
    A torch that does not import is said in ``error``."""
    found: dict[str, Any] = {"modules": {m: have_module(m) for m in modules}}
    if not with_torch:
        return found
    try:
        import torch
    except Exception as exc:  # a broken or missing torch: the env step says so
        return {**found, "error": f"import torch: {exc!r}"}

    found.update(torch=torch.__version__, torch_cuda=torch.version.cuda)
    found["cuda"] = torch.cuda.is_available()
    if found["cuda"]:
        props = torch.cuda.get_device_properties(0)
        name = torch.cuda.get_device_name(0)
        found.update(
            gpu=name,
            card=card_name(name),
            capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
            memory_gib=round(props.total_memory / 2**30, 1),
        )
    return found


class Check:
    """Runs the steps, keeps their reports and the deadline."""

    def __init__(self, out: Path, deadline_s: float, dry_run: bool) -> None:
        self.out = out
        self.start = time.monotonic()
        self.deadline = self.start + deadline_s
        self.dry_run = dry_run
        self.card = "no-GPU"
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), self.env.get("PYTHONPATH", "")) if p
        )
        self.reports: dict[str, dict] = {}
        self.modules: dict[str, bool] = {}  # what the steps' Python has (probe)

    def left(self) -> float:
        """Seconds left before the deadline."""
        return self.deadline - time.monotonic()

    def probe(self, modules: list[str], with_torch: bool = False) -> dict[str, Any]:
        """:func:`probe` in a child process under the steps' environment (``self.env``,
        the wheels' folder on its PYTHONPATH): what it found, or ``{"error": ...}``."""
        argv = [sys.executable, str(Path(__file__).resolve()), "--probe", *modules]
        argv += ["--probe-torch"] * with_torch
        try:
            out = subprocess.run(
                argv,
                cwd=ROOT,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=max(1.0, min(PROBE_S, self.left())),
            )
        except subprocess.TimeoutExpired:
            return {"error": f"the environment probe took over {PROBE_S} s"}
        if out.returncode != 0:
            return {"error": out.stderr[-2000:]}
        found = json.loads(out.stdout.strip().splitlines()[-1])
        self.modules.update(found["modules"])
        return found

    def have(self, module: str) -> bool:
        """Whether the steps' Python has ``module``: what the env step found, else a probe."""
        if module not in self.modules:
            self.probe([module])
        return self.modules.get(module, False)

    def run(self, argv: list[str], limit: float, log: Path, env: dict | None = None) -> dict:
        """``argv`` with a time limit (within the deadline); its output goes to ``log``."""
        timeout = max(1.0, min(limit, self.left()))
        started = time.monotonic()
        with open(log, "w") as f:
            f.write("$ " + shlex.join(argv) + "\n")
            f.flush()
            # its own process group, so that a timeout also ends the processes it
            # started (compute-sanitizer's python, pytest's)
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env or self.env,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                rc = "timeout"
        return {
            "command": shlex.join(argv),
            "returncode": rc,
            "seconds": round(time.monotonic() - started, 1),
            "log": log.name,
        }

    def report(self, step: str, data: dict) -> dict:
        """Keeps ``data`` as ``step``'s report and writes it (not in a dry run)."""
        data = {"step": step, "card": self.card, **data}
        self.reports[step] = data
        if not self.dry_run:
            path = self.out / f"gpu_check_{self.card}_{step}.json"
            path.write_text(json.dumps(data, indent=2) + "\n")
        return data

    def skip(self, step: str, why: str) -> dict:
        """Reports ``step`` as skipped, and why."""
        return self.report(step, {"status": "skipped", "reason": why})


# -------------------------------------------------------------------------- steps


def step_env(check: Check, logs: Path) -> None:
    """The card, the cores, the tools and the packages, wheels/*.whl installed first."""
    installed = []
    if WHEELS.is_dir() and any(WHEELS.glob("*.whl")):
        site = Path(tempfile.mkdtemp(prefix="sfllava-site-"))
        wheels = sorted(str(w) for w in WHEELS.glob("*.whl"))
        argv = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
        argv += ["--no-compile", "--target", str(site), *wheels]
        result = check.run(argv, 120, logs / "wheels.log")
        if result["returncode"] == 0:
            # every step, this one's probe included, runs in a child process that sees it
            check.env["PYTHONPATH"] += os.pathsep + str(site)
            installed = [Path(w).name for w in wheels]
    modules = sorted(
        {m for needs in NEEDS.values() for m in needs}
        | {m for f in CUDA_TEST_FILES for m in imports_of(ROOT / f)}
        | {"av", "decord", "transformers"}
    )
    found = check.probe(modules, with_torch=True)
    data = {
        "status": "ok" if found.get("cuda") else "failed",
        "python": sys.version.split()[0],
        "torch": found.get("torch"),
        "torch_cuda": found.get("torch_cuda"),
        "cores": os.cpu_count(),
        "nvcc": find_tool("nvcc"),
        "compute_sanitizer": find_tool("compute-sanitizer"),
        "modules": found.get("modules", {}),
        "wheels_installed": installed,
    }
    if found.get("cuda"):
        check.card = found["card"]
        data.update({k: found[k] for k in ("gpu", "capability", "multiprocessors", "memory_gib")})
        nvsmi = find_tool("nvidia-smi")
        if nvsmi:
            q = "name,driver_version,clocks.sm,clocks.mem,clocks.max.sm,power.draw,temperature.gpu"
            out = subprocess.run(
                [nvsmi, f"--query-gpu={q}", "--format=csv"], capture_output=True, text=True
            )
            data["nvidia_smi"] = out.stdout.strip()
    elif "error" in found:
        data["reason"] = "the environment probe failed: " + found["error"]
    else:
        data["reason"] = "torch sees no CUDA device"
    check.report("env", data)


def step_build(check: Check, logs: Path) -> None:
    """The CUDA extension in place, for the card found."""
    env = check.reports["env"]
    if env["status"] != "ok":
        check.skip("build", "no CUDA device")
        return
    if not env["nvcc"]:
        check.skip("build", "nvcc not found (PATH, /usr/local/cuda/bin)")
        return
    missing = [m for m in NEEDS["build"] if not check.have(m)]
    if missing:
        check.skip("build", "needs " + ", ".join(missing) + " (carry wheels in wheels/)")
        return
    build_env = dict(check.env)
    build_env.update(
        TORCH_CUDA_ARCH_LIST=env["capability"],
        MAX_JOBS=str(env["cores"] or 1),
        FORCE_CUDA="1",
        CUDA_HOME=str(Path(env["nvcc"]).resolve().parents[1]),
    )
    argv = [sys.executable, "setup.py", "build_ext", "--inplace"]
    result = check.run(argv, LIMITS["build"], logs / "build.log", build_env)
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sfllava_ext; print(json.dumps(sfllava_ext.build_info()))",
        ],
        cwd=ROOT,
        env=check.env,
        capture_output=True,
        text=True,
    )
    info = json.loads(probe.stdout) if probe.returncode == 0 else None
    ok = result["returncode"] == 0 and bool(info and info.get("cuda"))
    check.report(
        "build",
        {
            "status": "ok" if ok else "failed",
            "arch_list": build_env["TORCH_CUDA_ARCH_LIST"],
            "max_jobs": int(build_env["MAX_JOBS"]),
            "build_info": info,
            "import_error": None if probe.returncode == 0 else probe.stderr[-2000:],
            **result,
        },
    )


def runnable_test_files(check: Check) -> tuple[list[str], dict[str, str]]:
    """The CUDA test files whose imports are all there, and why the others are not."""
    files, left_out = [], {}
    for name in CUDA_TEST_FILES:
        missing = sorted(m for m in imports_of(ROOT / name) if not check.have(m))
        if missing:
            left_out[name] = "needs " + ", ".join(missing) + " (carry wheels in wheels/)"
        else:
            files.append(name)
    return files, left_out


def junit_counts(path: Path) -> dict:
    """Tests, failures, errors, skipped and passed in pytest's JUnit XML, and the failed."""
    if not path.exists():
        return {}
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed = []
    for suite in suites:
        for key in counts:
            counts[key] += int(suite.get(key, 0))
        for case in suite.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed.append(f"{case.get('classname')}::{case.get('name')}")
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    counts["failed_tests"] = failed[:50]
    return counts


def step_tests(check: Check, logs: Path) -> None:
    """The CUDA tests of the test files whose imports are all there."""
    if check.reports.get("build", {}).get("status") != "ok":
        check.skip("tests", "the CUDA build did not succeed")
        return
    if not check.have("pytest"):
        check.skip("tests", "needs pytest (carry wheels in wheels/)")
        return
    files, left_out = runnable_test_files(check)
    if not files:
        check.report("tests", {"status": "skipped", "reason": "no runnable file", **left_out})
        return
    xml = logs / "tests.xml"
    argv = [sys.executable, "-m", "pytest", *files, "-m", "cuda", "-q", "-p", "no:cacheprovider"]
    argv += [f"--junitxml={xml}"]
    result = check.run(argv, LIMITS["tests"], logs / "tests.log")
    counts = junit_counts(xml)
    ok = result["returncode"] == 0 and counts.get("passed", 0) > 0
    status = "ok" if ok else "failed"
    check.report(
        "tests", {"status": status, "files": files, "left_out": left_out, **counts, **result}
    )


def step_vllm(check: Check, logs: Path) -> None:
    """The vLLM plugin's tests, unchanged, with the CUDA vllm package where it is there;
    a skipped test fails the step (SFLLAVA_REQUIRE_VLLM=1)."""
    if check.reports.get("build", {}).get("status") != "ok":
        check.skip("vllm", "the CUDA build did not succeed")
        return
    missing = [m for m in ("vllm", "pytest", "av") if not check.have(m)]
    if missing:
        check.skip(
            "vllm",
            "needs " + ", ".join(missing) + " importable here: the machine has no network and "
            "the CUDA vllm wheel is over the 64 MiB a run carries (docs/vllm.md#on-a-gpu)",
        )
        return
    xml = logs / "vllm.xml"
    argv = [sys.executable, "-m", "pytest", "python_tests/vllm_plugin", "-q", "-rs"]
    argv += ["-p", "no:cacheprovider", f"--junitxml={xml}"]
    env = {**check.env, "SFLLAVA_REQUIRE_VLLM": "1"}
    result = check.run(argv, LIMITS["vllm"], logs / "vllm.log", env=env)
    counts = junit_counts(xml)
    ok = result["returncode"] == 0 and counts.get("passed", 0) > 0 and not counts.get("skipped")
    check.report("vllm", {"status": "ok" if ok else "failed", **counts, **result})


def step_sanitizer(check: Check, logs: Path) -> None:
    """compute-sanitizer's memcheck and racecheck on the short CUDA test subset."""
    tool = check.reports["env"].get("compute_sanitizer")
    if check.reports.get("build", {}).get("status") != "ok":
        check.skip("sanitizer", "the CUDA build did not succeed")
        return
    if not tool:
        check.skip("sanitizer", "compute-sanitizer not found (PATH, /usr/local/cuda/bin)")
        return
    files, _ = runnable_test_files(check)
    tests = [t for t in SANITIZER_TESTS if t.split("::")[0] in files]
    if not tests:
        check.skip("sanitizer", "none of its tests can run here (missing packages)")
        return
    runs = {}
    for name in SANITIZER_TOOLS:
        log = logs / f"sanitizer_{name}.log"
        argv = [tool, "--tool", name, "--error-exitcode", "99", "--target-processes", "all"]
        argv += [sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider"]
        share = min(LIMITS["sanitizer"], check.left()) / (len(SANITIZER_TOOLS) - len(runs))
        result = check.run(argv, share, log)
        text = log.read_text(errors="replace")
        summary = re.findall(r"ERROR SUMMARY: (\d+) error", text)
        unsupported = re.search(r"Device not supported|not supported on this|error 999", text)
        if unsupported and not summary:
            runs[name] = {"status": "skipped", "reason": unsupported.group(0), **result}
            continue
        errors = sum(int(n) for n in summary) if summary else None
        ok = result["returncode"] == 0 and errors == 0
        runs[name] = {"status": "ok" if ok else "failed", "errors": errors, **result}
    statuses = {r["status"] for r in runs.values()}
    status = "failed" if "failed" in statuses else "ok" if "ok" in statuses else "skipped"
    check.report("sanitizer", {"status": status, "tests": tests, "tools": runs})


def step_bench(check: Check, logs: Path, step: str) -> None:
    """One benchmark on the GPU (:data:`BENCHMARKS`); its result goes into the report."""
    if check.reports.get("build", {}).get("status") != "ok":
        check.skip(step, "the CUDA build did not succeed")
        return
    missing = [m for m in NEEDS[step] if not check.have(m)]
    if missing:
        check.skip(step, "needs " + ", ".join(missing) + " (carry wheels in wheels/)")
        return
    script, target = BENCHMARKS[step]
    result_path = logs / f"{step}.json"
    result = check.run(
        [sys.executable, *script, str(result_path)], LIMITS[step], logs / f"{step}.log"
    )
    data = json.loads(result_path.read_text()) if result_path.exists() else {}
    met = data.get("targets", {}).get(target)
    status = "ok" if result["returncode"] == 0 and data else "failed"
    check.report(
        step, {"status": status, "target": target, "target_met": met, **result, "result": data}
    )


# ---------------------------------------------------------------------------- summary


def key_figures(step: str, data: dict) -> str:
    """A step's report in a few words, for the summary."""
    if data.get("status") == "skipped":
        return data.get("reason", "")
    if step == "env" and data.get("status") != "ok":
        return data.get("reason", "")
    if step == "env":
        return (
            f"{data.get('gpu', '?')} (sm {data.get('capability', '?')}), {data.get('cores')} cores"
        )
    if step == "build":
        return f"arch {data.get('arch_list')}, {data.get('seconds')} s"
    if step == "vllm":
        failed = data.get("failures", 0) + data.get("errors", 0)
        return f"{data.get('passed', 0)} passed, {failed} failed, {data.get('skipped', 0)} skipped"
    if step == "tests":
        left = f"; left out: {', '.join(data['left_out'])}" if data.get("left_out") else ""
        failed = data.get("failures", 0) + data.get("errors", 0)
        return f"{data.get('passed', 0)} passed, {failed} failed{left}"
    if step == "sanitizer":
        return "; ".join(
            f"{k} {v['status']}"
            + (f" ({v['errors']} errors)" if v.get("errors") is not None else "")
            for k, v in data.get("tools", {}).items()
        )
    if step == "bench_pool":
        rows = data.get("result", {}).get("rows", [])
        fractions = [r["fraction_of_copy_bandwidth"] for r in rows]
        if not fractions:
            return "no result"
        bw = data["result"]["copy_bandwidth_GBps"]
        return f"{min(fractions):.0%}-{max(fractions):.0%} of {bw:.0f} GB/s copy (target 60%)"
    if step == "bench_normalize":
        res = data.get("result", {})
        rows = res.get("results", {})
        fractions = [r["ratios"]["floor_fraction_of_copy_bandwidth"] for r in rows.values()]
        if not fractions:
            return "no result"
        bw = res["copy_bandwidth"]["gb_per_s"]
        return f"{min(fractions):.0%}-{max(fractions):.0%} of {bw:.0f} GB/s copy (target 50%)"
    return ""


def summarise(check: Check) -> dict:
    """The summary of every step's report, printed as a table; returns it."""
    summary = {
        "card": check.card,
        "seconds": round(time.monotonic() - check.start, 1),
        "steps": {
            step: {
                "status": data["status"],
                "figures": key_figures(step, data),
                **({"target_met": data["target_met"]} if "target_met" in data else {}),
            }
            for step, data in check.reports.items()
        },
    }
    width = max(len(s) for s in summary["steps"]) + 2
    print(f"\nGPU check on {check.card}, {summary['seconds']} s")
    print(f"{'step':<{width}}{'status':<10}figures")
    for step, row in summary["steps"].items():
        print(f"{step:<{width}}{row['status']:<10}{row['figures']}")
    return summary


# ---------------------------------------------------------------------------- dry run


def dry_run() -> int:
    """Checks the plan on any machine: the commands exist, the scripts parse and take
    their arguments, and every test the plan names is collected by pytest."""
    problems, notes = [], []
    for tool in ("nvcc", "compute-sanitizer", "nvidia-smi"):
        where = find_tool(tool) or "not found here (its step is skipped where it is missing)"
        notes.append(f"{tool}: {where}")
    for script in [
        "setup.py",
        "benchmarks/bench_slowfast_pool.py",
        "benchmarks/bench_normalize_frames.py",
    ]:
        try:
            ast.parse((ROOT / script).read_text())
        except SyntaxError as exc:
            problems.append(f"{script} does not parse: {exc}")
    for step, (script, _) in BENCHMARKS.items():
        out = subprocess.run(
            [sys.executable, script[0], "--help"], cwd=ROOT, capture_output=True, text=True
        )
        flags = {a for a in script[1:] if a.startswith("--")}
        missing = [f for f in flags if f not in out.stdout]
        if out.returncode != 0 or missing:
            problems.append(
                f"{step}: {script[0]} --help failed or lacks {missing}: {out.stderr[-500:]}"
            )
    found = Check(RESULTS, DEADLINE_S, dry_run=True).probe(["pytest"], with_torch=True)
    if "error" in found:
        problems.append(f"the environment probe fails: {found['error'][-500:]}")
    else:
        notes.append(f"the environment probe runs: torch {found['torch']}")
    shell = subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu_check.sh")])
    if shell.returncode != 0:
        problems.append("benchmarks/gpu_check.sh does not parse (bash -n)")
    for name in CUDA_TEST_FILES:
        if not (ROOT / name).exists():
            problems.append(f"test file {name} does not exist")
    collect = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        + SANITIZER_TESTS
        + [f for f in CUDA_TEST_FILES if (ROOT / f).exists()]
        + ["-m", "cuda"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        # the installed package, not the unbuilt checkout that `-m` would put first
        env=dict(os.environ, PYTHONSAFEPATH="1"),
    )
    collected = set(re.findall(r"^(python_tests/\S+::.+)$", collect.stdout, re.M))
    for test in SANITIZER_TESTS:
        if test not in collected:
            problems.append(f"the sanitizer test {test} is not collected")
    cuda_tests = [t for t in collected if t.split("::")[0] in CUDA_TEST_FILES]
    if not cuda_tests:
        problems.append(
            f"pytest -m cuda collects nothing in {CUDA_TEST_FILES}: {collect.stdout[-500:]}"
        )
    notes.append(
        f"pytest collects {len(cuda_tests)} CUDA tests and the "
        f"{len(SANITIZER_TESTS)} sanitizer tests"
    )
    for line in notes:
        print("dry run:", line)
    for line in problems:
        print("dry run: PROBLEM:", line)
    print("dry run:", "the plan holds" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


# ---------------------------------------------------------------------- presentation
# What report.py collects from this module: ``collect``, the committed checks, and
# ``render``, the GPU section of docs/benchmarks.md (its plots, later, go here too).


def collect(results: Path) -> dict[str, Any]:
    """The committed GPU checks in ``results``: per card its summary, its env report and
    each benchmark step's result (None where the step has none), by step."""
    cards = []
    summaries = sorted(p for p in results.glob("gpu_check_*.json") if p.stem.count("_") == 2)
    for path in summaries:
        summary = json.loads(path.read_text())
        card = summary["card"]
        env = json.loads((results / f"gpu_check_{card}_env.json").read_text())
        steps = {}
        for step in BENCHMARKS:
            step_path = results / f"gpu_check_{card}_{step}.json"
            steps[step] = (
                json.loads(step_path.read_text()).get("result") if step_path.exists() else None
            )
        cards.append({"summary": summary, "env": env, "steps": steps})
    return {"cards": cards}


def render(
    result: dict, renderers: Mapping[str, Callable[[dict], list[str]]] | None = None
) -> list[str]:
    """The GPU section of docs/benchmarks.md (markdown lines, heading included): one
    summary per card (``result`` is what :func:`collect` returns) and, one heading level
    down, each benchmark's GPU run as that benchmark renders it: ``renderers`` maps a
    benchmark module's name (bench_slowfast_pool) to its ``render``, as report.py passes
    them; a benchmark without one is left out."""
    from _common import table  # here, not at the top: the tests load this script alone

    renderers = renderers or {}
    out = ['<a id="gpu"></a>', "## GPU", ""]
    if not result["cards"]:
        return [
            *out,
            "No GPU run is committed yet: every GPU figure is **unverified**. Targets: "
            "pooling at 60% or more of the device copy bandwidth, normalisation at 50% or "
            "more. `bash benchmarks/gpu_check.sh` measures both (README.md, *The GPU check*).",
            "",
        ]
    for entry in result["cards"]:
        summary, env = entry["summary"], entry["env"]
        card = summary["card"]
        out += [
            f"### {env.get('gpu', card)}",
            "",
            f"`bash benchmarks/gpu_check.sh` in {summary['seconds']:.0f} s: torch "
            f"{env.get('torch')}, CUDA {env.get('torch_cuda')}, compute capability "
            f"{env.get('capability')}, {env.get('cores')} cores.",
            "",
        ]
        rows = [[step, r["status"], r["figures"]] for step, r in summary["steps"].items()]
        out += table(["step", "status", "figures"], rows)
        for step, data in entry["steps"].items():
            section = renderers.get(Path(BENCHMARKS[step][0][0]).stem)
            if data and section:
                body = section(data)
                out += ["#" + body[1], *body[2:]]  # one heading level down
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="check the plan; run nothing")
    parser.add_argument("--deadline-s", type=float, default=DEADLINE_S)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON reports go")
    parser.add_argument("--logs", type=Path, default=None, help="where the log archive goes")
    parser.add_argument("--probe", nargs="*", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--probe-torch", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe is not None:  # the steps' environment, seen from inside (Check.probe)
        print(json.dumps(probe(args.probe, args.probe_torch)))
        return 0
    if args.dry_run:
        return dry_run()
    args.out.mkdir(parents=True, exist_ok=True)
    check = Check(args.out, args.deadline_s, dry_run=False)
    logs = Path(tempfile.mkdtemp(prefix="gpu-check-logs-"))
    step_env(check, logs)
    step_build(check, logs)
    step_tests(check, logs)
    step_vllm(check, logs)
    for step in BENCHMARKS:
        if check.left() < 20:
            check.skip(step, "out of time")
            continue
        step_bench(check, logs, step)
    if check.left() < 30:
        check.skip("sanitizer", "out of time")
    else:
        step_sanitizer(check, logs)
    summary = summarise(check)
    path = args.out / f"gpu_check_{check.card}.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    archive_dir = args.logs or Path(os.environ.get("OUT") or logs.parent)
    archive_dir.mkdir(parents=True, exist_ok=True)
    archive = archive_dir / f"gpu_check_{check.card}_logs.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(logs, arcname=f"gpu_check_{check.card}_logs")
    print(f"wrote {path}; logs in {archive}")
    failed = [s for s, row in summary["steps"].items() if row["status"] == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
