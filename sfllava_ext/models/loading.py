"""Loading a checkpoint of a supported family (:mod:`sfllava_ext.models.families`) for
SF-LLaVA: device and dtype defaults, the memory check before loading, dynamic RoPE
scaling where the family's context calls for it, and the model check.

:meth:`sfllava_ext.SlowFastLlava.from_pretrained` is the public entry point; it calls
:func:`load_pretrained` and wraps what it returns.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from torch import nn

from .families import Family, UnsupportedModelError, family_of

logger = logging.getLogger(__name__)

__all__ = [
    "NotLlavaNextError",
    "UnsupportedModelError",
    "apply_rope_scaling",
    "as_llava_next",
    "available_memory",
    "check_fits",
    "default_device",
    "default_dtype",
    "load_image_processor",
    "load_pretrained",
]


# the name of earlier releases, when LLaVA-NeXT was the one family
NotLlavaNextError = UnsupportedModelError


def load_pretrained(
    name_or_path: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    rope_scaling_factor: float | None = None,
    **model_kwargs: Any,
) -> tuple[nn.Module, Any, Any]:
    """Model, tokenizer and image processor (None when the folder has none) of a
    local folder (or a hub id where a network exists), loaded with its family's class.

    Dynamic RoPE scaling is set on the config before the model is built: with
    ``rope_scaling_factor=None`` (the default) factor 2 where the language model has a
    4k context (:meth:`~sfllava_ext.models.families.Family.wants_dynamic_rope`) and none
    elsewhere; an explicit factor applies to any model (1 turns it off).

    Defaults: CUDA when available, fp16 there and bf16 on the CPU
    (:func:`default_dtype`).

    Raises:
        UnsupportedModelError: the checkpoint's ``model_type`` has no family (the
            message lists the supported ones).
        MemoryError: the weights alone would not fit the device's free memory
            (checked before anything is loaded).
    """
    from transformers import AutoConfig, AutoTokenizer

    device = torch.device(device) if device is not None else default_device()
    dtype = dtype or default_dtype(device)
    config = AutoConfig.from_pretrained(name_or_path)
    family = family_of(config, str(name_or_path))
    if rope_scaling_factor is None:
        rope_scaling_factor = 2 if family.wants_dynamic_rope(config.text_config) else None
    apply_rope_scaling(config.text_config, rope_scaling_factor)
    check_fits(config, dtype, device, family)
    model = family.load_class().from_pretrained(
        name_or_path, config=config, dtype=dtype, **model_kwargs
    )
    model = model.to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    return model, tokenizer, load_image_processor(name_or_path)


def load_image_processor(name_or_path: str | os.PathLike) -> Any:
    """The checkpoint's image processor; its settings as a dict where this release's
    default processor class needs torchvision (frame_normalizer reads either); None
    when the checkpoint has none."""
    from transformers import AutoImageProcessor
    from transformers.image_processing_utils import ImageProcessingMixin

    try:
        try:
            return AutoImageProcessor.from_pretrained(name_or_path)
        except ImportError:
            return ImageProcessingMixin.get_image_processor_dict(name_or_path)[0]
    except (OSError, ValueError) as exc:
        logger.warning("no image processor in %s (%s); using the vision config", name_or_path, exc)
        return None


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """fp16 on CUDA as published; bf16 on the CPU (a 7B model in fp32 does not
    fit a 24 GiB machine, and CPUs have fast bf16 matmuls)."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def apply_rope_scaling(text_config: Any, factor: float | None) -> None:
    """Dynamic NTK RoPE scaling on a config before the model is built: factor 2
    takes the 4,096-position context to 8,192 (docs/method.md, "RoPE scaling").
    ``None`` or a factor <= 1 leaves the config as it is."""
    if factor is None or factor <= 1:
        return
    params = dict(getattr(text_config, "rope_parameters", None) or {})
    if params.get("rope_type", "default") not in ("default", "dynamic"):
        logger.warning(
            "the checkpoint's %r RoPE scaling is replaced by dynamic scaling, factor %s",
            params["rope_type"], factor,
        )  # fmt: skip
    theta = params.get("rope_theta", getattr(text_config, "rope_theta", 10000.0))
    params.update({"rope_type": "dynamic", "factor": float(factor), "rope_theta": theta})
    text_config.rope_parameters = params


def check_fits(
    config: Any, dtype: torch.dtype, device: torch.device, family: Family | None = None
) -> None:
    """MemoryError before loading when the weights alone exceed free memory
    (counted on a meta-device skeleton of the model)."""
    family = family or family_of(config)
    with torch.device("meta"):
        skeleton = family.load_class()._from_config(config)
    itemsize = torch.empty((), dtype=dtype).element_size()
    needed = sum(p.numel() for p in skeleton.parameters()) * itemsize
    free = available_memory(device)
    if needed > free:
        raise MemoryError(
            f"the model needs {needed / 2**30:.1f} GiB for its weights in {dtype} but only "
            f"{free / 2**30:.1f} GiB is free on {device}; use a smaller dtype or another device"
        )


def available_memory(device: torch.device) -> int:
    """Bytes free for weights on ``device``."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil

    return psutil.virtual_memory().available


def as_llava_next(model: Any) -> nn.Module:
    """``model`` itself when it is of a supported family and has the LLaVA parts
    (``model.vision_tower``, ``.multi_modal_projector``, ``.language_model`` and
    ``lm_head``).

    Raises:
        UnsupportedModelError: otherwise.
    """
    inner = getattr(model, "model", None)
    parts = ("vision_tower", "multi_modal_projector", "language_model")
    if (
        not isinstance(model, nn.Module)
        or inner is None
        or not all(hasattr(inner, p) for p in parts)
        or not hasattr(model, "lm_head")
    ):
        raise UnsupportedModelError(
            "model must be a LLaVA-style model (with model.vision_tower, "
            f".multi_modal_projector, .language_model and lm_head), got {type(model).__name__}"
        )
    family_of(model, type(model).__name__)
    return model
