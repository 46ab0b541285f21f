"""Frame preprocessing settings read from a Hugging Face image processor.

``frame_normalizer(image_processor)`` turns a CLIP- or SigLIP-style image
processor (or its ``preprocessor_config.json`` as a dict) into a
:class:`FrameNormalizer`: a small frozen dataclass holding the settings of
:func:`sfllava_ext.ops.normalize_frames` whose ``__call__`` maps uint8
``(T, H, W, 3)`` frames to normalised ``(T, 3, h, w)`` pixels, the same values
(bit for bit in float32) as the published per-frame path (docs/method.md,
"Preprocessing"):

* ``squash`` (SF-LLaVA's ``resize``, the published default):
  ``Image.resize((S, S), BICUBIC)`` with ``S = size["shortest_edge"]``, then the
  processor (its centre crop, rescale and normalisation);
* ``crop``: the processor alone (shortest edge ``S``, centre crop);
* ``pad``: LLaVA's ``expand2square`` with ``int(mean * 255)``, then the processor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..constants import CLIP_MEAN, CLIP_STD, DEFAULT_PASS_ORDER, DEFAULT_RESIZE_MODE
from ..ops.checks import check_pass_order, check_resize_mode
from ..ops.normalize_frames import normalize_frames

__all__ = ["FrameNormalizer", "frame_normalizer"]

_BICUBIC = 3  # PIL.Image.Resampling.BICUBIC


@dataclass(frozen=True)
class FrameNormalizer:
    """Settings of :func:`sfllava_ext.ops.normalize_frames`, callable on frames.

    Attributes:
        size: ``(height, width)`` of the result.
        resize_mode: ``squash``, ``crop`` or ``pad``.
        shortest_edge: the processor's shortest edge (see ``normalize_frames``).
        mean, std: per-channel normalisation (RGB).
        rescale_factor: the processor's rescale (``1/255``).
        pass_order: ``pillow13`` or ``pillow12`` (which Pillow to reproduce).
        dtype: output dtype (float32, float16 or bfloat16).
        device: where to normalise (CPU frames bound for CUDA travel as uint8
            through pinned memory); None keeps the frames' device.

    Raises:
        ValueError: an unknown resize_mode or pass_order.
    """

    size: tuple[int, int]
    resize_mode: str = DEFAULT_RESIZE_MODE
    shortest_edge: int | None = None
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    rescale_factor: float = 1 / 255
    pass_order: str = DEFAULT_PASS_ORDER
    dtype: torch.dtype = torch.float16
    device: torch.device | str | None = None

    def __post_init__(self) -> None:
        check_resize_mode("FrameNormalizer", self.resize_mode)
        check_pass_order("FrameNormalizer", self.pass_order)

    def settings(self) -> dict[str, Any]:
        """The fields, by name (what a model's fingerprint records)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __call__(self, frames: Any, *, out: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 ``(T, H, W, 3)`` RGB frames (tensor or numpy array), or CPU
        :class:`~sfllava_ext.ops.yuv420_frames.Yuv420Frames` -> ``(T, 3, h, w)`` contiguous
        pixels in ``dtype`` (written into ``out`` when given).

        Raises:
            TypeError, ValueError: as :func:`~sfllava_ext.ops.normalize_frames`.
        """
        return normalize_frames(
            frames,
            self.size,
            resize_mode=self.resize_mode,
            shortest_edge=self.shortest_edge,
            mean=self.mean,
            std=self.std,
            rescale_factor=self.rescale_factor,
            pass_order=self.pass_order,
            dtype=self.dtype,
            out=out,
            device=self.device,
        )


def _config(image_processor: Any) -> dict[str, Any]:
    """The processor's settings as plain values (dicts for sizes)."""
    if isinstance(image_processor, Mapping):
        return dict(image_processor)
    to_dict = getattr(image_processor, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    return {k: v for k, v in vars(image_processor).items() if not k.startswith("_")}


def _size_dict(value: Any, name: str) -> dict[str, int]:
    """A processor size (dict, SizeDict, int or (h, w)) as a dict of its set keys."""
    if value is None:
        return {}
    if isinstance(value, int):
        return {"shortest_edge": value}
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        return {"height": int(value[0]), "width": int(value[1])}
    if not isinstance(value, Mapping):
        value = {
            k: getattr(value, k, None) for k in ("shortest_edge", "longest_edge", "height", "width")
        }
    out = {k: int(v) for k, v in value.items() if v is not None}
    if not out:
        raise ValueError(f"frame_normalizer: the processor's {name} is empty: {value!r}")
    return out


def _triple(value: Any, name: str) -> tuple[float, float, float]:
    if isinstance(value, (int, float)):
        return (float(value),) * 3
    values = tuple(float(v) for v in value)
    if len(values) != 3:
        raise ValueError(f"frame_normalizer: {name} must have 3 values, got {values}")
    return values  # type: ignore[return-value]


def frame_normalizer(
    image_processor: Any,
    *,
    resize_mode: str = DEFAULT_RESIZE_MODE,
    dtype: torch.dtype = torch.float16,
    device: torch.device | str | None = None,
    pass_order: str = DEFAULT_PASS_ORDER,
) -> FrameNormalizer:
    """Reads size, shortest edge, crop size, mean, std and rescale factor from a
    Hugging Face image processor (CLIP-style ``{"shortest_edge": S}`` with a
    centre crop, or SigLIP-style ``{"height": h, "width": w}``) or its config
    dict, and returns the :class:`FrameNormalizer` that reproduces it.

    Args:
        image_processor: e.g. ``CLIPImageProcessor`` / ``CLIPImageProcessorPil``
            / ``SiglipImageProcessor``, or a ``preprocessor_config.json`` dict.
        resize_mode: SF-LLaVA's aspect mode: ``squash`` (its ``resize``),
            ``crop`` (the processor alone) or ``pad`` (``expand2square``).
        dtype: output dtype; device: where to normalise.
        pass_order: ``pillow13`` or ``pillow12`` (see ``normalize_frames``).

    Raises:
        ValueError: a processor that does not resize with bicubic, a size
            without a shortest edge or height/width, settings the fused op cannot
            reproduce (a crop without a fixed output size, ``pad`` to a
            non-square height/width size), an unknown resize_mode.
    """
    check_resize_mode("frame_normalizer", resize_mode)
    cfg = _config(image_processor)
    if not cfg.get("do_resize", True):
        raise ValueError("frame_normalizer: processors with do_resize=False are not supported")
    resample = cfg.get("resample", _BICUBIC)
    if resample is not None and int(resample) != _BICUBIC:
        raise ValueError(
            f"frame_normalizer: only bicubic resampling (3) is reproduced, the processor "
            f"uses {resample!r}"
        )
    size = _size_dict(cfg.get("size"), "size")
    crop = _size_dict(cfg.get("crop_size"), "crop_size") if cfg.get("do_center_crop") else {}
    if crop and ("height" not in crop or "width" not in crop):
        raise ValueError(f"frame_normalizer: crop_size must have height and width, got {crop}")
    crop_hw = (crop["height"], crop["width"]) if crop else None

    mean = _triple(cfg.get("image_mean", CLIP_MEAN), "image_mean")
    std = _triple(cfg.get("image_std", CLIP_STD), "image_std")
    if not cfg.get("do_normalize", True):
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    rescale = float(cfg.get("rescale_factor", 1 / 255)) if cfg.get("do_rescale", True) else 1.0

    edge: int | None
    if "shortest_edge" in size:
        side = size["shortest_edge"]
        if crop_hw is None:
            if resize_mode == "crop":
                raise ValueError(
                    "frame_normalizer: resize_mode 'crop' without the processor's centre crop "
                    "gives frames of varying size; the fused op needs a fixed output size"
                )
            out_hw, edge = (side, side), None
        else:
            out_hw, edge = crop_hw, side
            if resize_mode == "squash" and crop_hw == (side, side):
                edge = None  # the crop of the SxS square is the square itself
    elif "height" in size and "width" in size:
        # The processor resizes straight to (height, width): 'crop' is a squash.
        hw = (size["height"], size["width"])
        if resize_mode == "crop":
            resize_mode = "squash"
        if resize_mode == "pad" and hw[0] != hw[1]:
            raise ValueError(
                f"frame_normalizer: resize_mode 'pad' to a non-square size {hw} is not "
                "supported (the padded square would be stretched)"
            )
        if crop_hw is None or crop_hw == hw:
            out_hw, edge = hw, (hw[0] if resize_mode == "pad" else None)
        elif hw[0] == hw[1]:
            out_hw, edge = crop_hw, hw[0]
        else:
            raise ValueError(
                f"frame_normalizer: a resize to {hw} followed by a centre crop to {crop_hw} "
                "is not supported"
            )
    else:
        raise ValueError(
            f"frame_normalizer: the processor's size must have shortest_edge or height and "
            f"width, got {size}"
        )
    return FrameNormalizer(
        size=out_hw,
        resize_mode=resize_mode,
        shortest_edge=edge,
        mean=mean,
        std=std,
        rescale_factor=rescale,
        pass_order=pass_order,
        dtype=dtype,
        device=device,
    )
