"""A picklable description of a :class:`~sfllava_ext.SlowFastLlava` to build: what a
process that cannot be handed the model itself (a Ray actor, a service) builds it
from. ``model="demo"`` is the built-in random demo model (no download); anything else
is a checkpoint folder or hub id for :meth:`SlowFastLlava.from_pretrained`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..constants import DEFAULT_BACKEND, DEFAULT_NUM_FRAMES, DEFAULT_RESIZE_MODE

__all__ = ["DEMO", "ModelSpec"]

DEMO = "demo"


@dataclass(frozen=True)
class ModelSpec:
    """``model``: ``"demo"`` or a checkpoint; ``dtype`` a torch dtype's name
    (``"float32"``) or None for the device's default; the rest as
    :class:`~sfllava_ext.SlowFastLlava` takes them."""

    model: str = DEMO
    device: str | None = None
    dtype: str | None = None
    slowfast: str | None = None  # None: the family's default
    family: str = "next"  # the demo's family (sfllava_ext.models.demo_parts)
    num_frames: int = DEFAULT_NUM_FRAMES
    resize_mode: str = DEFAULT_RESIZE_MODE
    backend: str = DEFAULT_BACKEND

    @property
    def is_demo(self) -> bool:
        return self.model == DEMO

    def with_device(self, device: str | None) -> ModelSpec:
        return ModelSpec(**{**asdict(self), "device": device})

    def build(self) -> Any:
        """The model (loads the checkpoint, or builds the seeded demo model)."""
        import torch

        from ..model import SlowFastLlava
        from .loading import default_device, default_dtype

        dtype = None if self.dtype is None else getattr(torch, self.dtype)
        settings = {
            "slowfast": self.slowfast,
            "num_frames": self.num_frames,
            "resize_mode": self.resize_mode,
            "backend": self.backend,
        }
        if not self.is_demo:
            return SlowFastLlava.from_pretrained(
                self.model, device=self.device, dtype=dtype, **settings
            )
        from .demo import demo_parts

        device = default_device() if self.device is None else torch.device(self.device)
        model, tokenizer, processor = demo_parts(self.family, dtype=dtype or default_dtype(device))
        sf = SlowFastLlava(model.to(device), tokenizer, processor, **settings)
        sf.name_or_path = "sfllava-demo" if self.family == "next" else f"sfllava-demo-{self.family}"
        return sf
