"""Per-stage wall-clock timing of the pipeline (decode, normalise, vision tower,
projector, pooling, prefill, generation)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import torch

STAGES = (
    "decode",
    "normalise",
    "vision tower",
    "resampler",
    "projector",
    "pooling",
    "prefill",
    "generation",
)


class StageTimer:
    """Accumulates seconds per stage. On CUDA it synchronises at stage edges so
    the times are real; keep it disabled in production to avoid that."""

    def __init__(self, device: torch.device | str | None = None, enabled: bool = True):
        self.enabled = enabled
        self.cuda = torch.device(device).type == "cuda" if device is not None else False
        self.seconds: OrderedDict[str, float] = OrderedDict()

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.add(stage, time.perf_counter() - start)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def table(self, title: str = "latency per stage") -> str:
        stages = [s for s in STAGES if s in self.seconds] + [
            s for s in self.seconds if s not in STAGES
        ]
        total = sum(self.seconds.values())
        lines = [title, f"{'stage':<14}{'ms':>10}{'share':>8}"]
        for stage in stages:
            ms = self.seconds[stage] * 1e3
            lines.append(f"{stage:<14}{ms:>10.1f}{ms / max(total * 1e3, 1e-9):>8.0%}")
        lines.append(f"{'total':<14}{total * 1e3:>10.1f}")
        return "\n".join(lines)


def null_timer() -> StageTimer:
    return StageTimer(enabled=False)
