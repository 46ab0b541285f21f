"""A picklable description of a :class:`~sfllava_ext.SlowFastLlava` to build: what a
process that cannot be handed the model itself (a Ray actor, a service) builds it
from. ``model="demo"`` is the built-in random demo model (no download); anything else
is a checkpoint folder or hub id for :meth:`SlowFastLlava.from_pretrained`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .constants import DEFAULT_BACKEND, DEFAULT_NUM_FRAMES, DEFAULT_RESIZE_MODE, DEFAULT_SLOWFAST

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
    slowfast: str = DEFAULT_SLOWFAST
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

        from .loading import default_device, default_dtype
        from .model import SlowFastLlava

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
        from .demo import demo_model, demo_tokenizer

        device = default_device() if self.device is None else torch.device(self.device)
        tokenizer = demo_tokenizer()
        model = demo_model(tokenizer, dtype=dtype or default_dtype(device)).to(device)
        sf = SlowFastLlava(model, tokenizer, **settings)
        sf.name_or_path = "sfllava-demo"
        return sf
