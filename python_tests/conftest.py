"""Shared fixtures: devices (CUDA skipped cleanly without a GPU), seeded RNG, CPU ISA caps."""

from __future__ import annotations

import pytest
import torch

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

DEVICES = ["cpu", pytest.param("cuda", marks=[CUDA, pytest.mark.cuda])]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def clip_frames(tmp_path_factory) -> torch.Tensor:
    """16 frames decoded from a 640 x 360 H.264 test video: what the family parity
    tests feed the family's PIL processor and our normalisation alike."""
    from support.videos import write_test_video

    from sfllava_ext import load_video

    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_test_video(path, 640, 360, num_frames=48)
    return load_video(str(path), num_frames=16).frames


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


# Each CPU row-primitive version, capped with SFLLAVA_CPU_ISA ("avx2": the AVX2 rows;
# "avx512": AVX-512 without VBMI or VNNI; unset: this CPU's best, e.g. the AVX-512 VBMI
# paths).
ISA_CAPS = ["scalar", "avx2", "avx512", None]


@pytest.fixture(params=ISA_CAPS, ids=lambda isa: isa or "best")
def isa(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    if request.param is None:
        monkeypatch.delenv("SFLLAVA_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("SFLLAVA_CPU_ISA", request.param)
    return request.param
