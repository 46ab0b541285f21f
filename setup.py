"""Builds sfllava_ext._C, the torch extension with the kernels in csrc/.

Install with the torch you will run, without build isolation (an isolated
build would fetch another torch and build against it):

    pip install torch==2.13.0 setuptools wheel ninja
    pip install --no-build-isolation .

Environment:
    USE_CUDA=0             CPU kernels only, even with a CUDA torch and toolkit.
    FORCE_CUDA=1           build the CUDA kernels even where no GPU or toolkit is seen.
    TORCH_CUDA_ARCH_LIST   GPU architectures (default "8.0;9.0+PTX").
    MAX_JOBS               parallel compile jobs (ninja).
    NVCC_THREADS           nvcc threads per .cu file (default 2).
    CUDA_HOME              the CUDA toolkit (default: /usr/local/cuda when nvcc's own
                           folder lacks the CUDA libraries).
    SFLLAVA_SANITIZE       "address,undefined" (or "1"): the CPU kernels with AddressSanitizer
                           and UndefinedBehaviorSanitizer, and the test-only canary op
                           sfllava::_debug_read_past_end; CPU only (USE_CUDA=0). Import it
                           with the ASan runtime preloaded (docs/development.md#sanitizers).
"""

from __future__ import annotations

import glob
import os
import shutil
import sys

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CUDA_ARCHS = "8.0;9.0+PTX"
# SFLLAVA_SANITIZE: the one set of sanitizers it builds with, and the flags. -O1, line
# tables (-g1: what a report's file:line needs, a third less compile time than -g) and
# frame pointers give reports with whole stacks; -fno-wrapv undoes Python's -fwrapv,
# which defines signed overflow and so hides it from UBSan (no kernel's index arithmetic
# may overflow); UB aborts at its first report, as ASan does, so that a finding cannot
# scroll by in a passing test run.
SANITIZERS = "address,undefined"
SANITIZE_CXX = [
    "-O1",
    "-g1",
    "-fno-omit-frame-pointer",
    "-fno-wrapv",
    f"-fsanitize={SANITIZERS}",
    "-fno-sanitize-recover=undefined",
]
SANITIZE_LINK = [f"-fsanitize={SANITIZERS}"]


def _env(name: str) -> str:
    return os.environ.get(name, "").strip().lower()


def _pick_cuda_home() -> None:
    """torch guesses CUDA_HOME from nvcc's folder; when that folder has no CUDA
    libraries (nvcc symlinked into /usr/local/bin, say) prefer /usr/local/cuda."""
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return
    nvcc = shutil.which("nvcc")
    guessed = os.path.dirname(os.path.dirname(os.path.realpath(nvcc))) if nvcc else None
    if guessed and os.path.isdir(os.path.join(guessed, "lib64")):
        return
    if os.path.isdir("/usr/local/cuda/lib64"):
        os.environ["CUDA_HOME"] = "/usr/local/cuda"


_pick_cuda_home()

import torch  # noqa: E402
from torch.utils.cpp_extension import (  # noqa: E402
    CUDA_HOME,
    BuildExtension,
    CppExtension,
    CUDAExtension,
)


def _want_cuda() -> bool:
    if _env("USE_CUDA") in ("0", "false", "no", "off"):
        return False
    if _env("FORCE_CUDA") in ("1", "true", "yes", "on"):
        return True
    return torch.version.cuda is not None and CUDA_HOME is not None


def _want_sanitize() -> bool:
    value = _env("SFLLAVA_SANITIZE").replace(" ", "")
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", SANITIZERS, "undefined,address"):
        return True
    sys.exit(f'SFLLAVA_SANITIZE must be "{SANITIZERS}" (or "1"), or unset; got "{value}"')


def _pip_cuda_includes() -> list[str]:
    """Headers that ATen's CUDA headers include (cuBLAS, cuSPARSE, ...) but a
    bare toolkit may lack; CUDA torch wheels ship them under nvidia/*/include."""
    found = []
    for site in sys.path:
        for inc in sorted(glob.glob(os.path.join(site, "nvidia", "*", "include"))):
            if os.path.isdir(inc) and inc not in found:
                found.append(inc)
    return found


def _sources(pattern: str) -> list[str]:
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))


class BuildExt(BuildExtension):
    """Also records the torch the extension was built against, so that an
    import under another torch says so instead of failing on a symbol."""

    def run(self) -> None:
        super().run()
        text = f'TORCH_VERSION = "{torch.__version__}"\n'
        targets = [os.path.join(self.build_lib, "sfllava_ext", "_built_with.py")]
        if self.inplace:
            targets = [os.path.join(ROOT, "sfllava_ext", "_built_with.py")]
        for target in targets:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w") as f:
                f.write(text)


def _extension():
    with_cuda = _want_cuda()
    sanitize = _want_sanitize()
    if sanitize and with_cuda:
        # nvcc and the CUDA runtime do not run under the host ASan; the CUDA kernels
        # are checked with compute-sanitizer on a GPU (benchmarks/gpu_check.sh).
        sys.exit(
            "SFLLAVA_SANITIZE builds the CPU kernels only: set USE_CUDA=0 and unset "
            "FORCE_CUDA (the CUDA kernels are checked by compute-sanitizer, "
            "benchmarks/gpu_check.sh)"
        )
    sources = _sources("csrc/ops/*.cpp") + _sources("csrc/cpu/*.cpp")
    macros = [("SFLLAVA_TORCH_VERSION", f'"{torch.__version__}"')]
    cxx = ["-O3"]
    link = []
    if sanitize:
        macros.append(("SFLLAVA_SANITIZE_TESTS", None))  # the canary op (csrc/cpu)
        cxx, link = list(SANITIZE_CXX), list(SANITIZE_LINK)
    if sys.platform.startswith("linux"):
        # at::parallel_for is an inline OpenMP loop: without -fopenmp it runs on
        # one thread. torch ships libgomp.so.1, which the loader then shares.
        cxx.append("-fopenmp")
        link.append("-fopenmp")
    if not with_cuda:
        return CppExtension(
            "sfllava_ext._C",
            sources,
            define_macros=macros,
            extra_compile_args={"cxx": cxx},
            extra_link_args=link,
        )
    archs = os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_CUDA_ARCHS)
    macros += [("SFLLAVA_WITH_CUDA", None), ("SFLLAVA_CUDA_ARCHS", f'"{archs}"')]
    nvcc = ["-O3", "--threads", os.environ.get("NVCC_THREADS", "2")]
    return CUDAExtension(
        "sfllava_ext._C",
        # csrc/cuda/*.cpp: CUDA-key registrations with no device code (host compiler)
        sources + _sources("csrc/cuda/*.cu") + _sources("csrc/cuda/*.cpp"),
        define_macros=macros,
        include_dirs=_pip_cuda_includes(),
        extra_compile_args={"cxx": cxx, "nvcc": nvcc},
        extra_link_args=link,
    )


setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExt},
)
