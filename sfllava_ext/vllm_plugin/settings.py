"""The plugin's settings: the aggregation, the frames sampled and the resize mode, read
from the ``sfllava`` entry of the model's config (vLLM's ``--hf-overrides``), with the
family's defaults; and the SlowFast architecture of each family.

    --hf-overrides '{"architectures": ["SlowFastLlavaNextForConditionalGeneration"],
                     "sfllava": {"slowfast": "slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4",
                                 "num_frames": 50, "resize_mode": "squash"}}'

Every key of ``sfllava`` is optional; an unknown one is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..constants import DEFAULT_NUM_FRAMES, DEFAULT_RESIZE_MODE, RESIZE_MODES
from ..encoder.aggregation import PRE_PROJECTOR_POOLS, parse_aggregation
from ..models.families import family_of

__all__ = [
    "ARCHITECTURES",
    "CONFIG_KEY",
    "PLACEHOLDERS",
    "PluginSettings",
    "grid_of",
    "settings_of",
]

#: config.model_type -> the architecture name the plugin registers for that family
ARCHITECTURES = {
    "llava_next": "SlowFastLlavaNextForConditionalGeneration",
    "llava_next_video": "SlowFastLlavaNextVideoForConditionalGeneration",
    "llava_onevision": "SlowFastLlavaOnevisionForConditionalGeneration",
}
#: config.model_type -> the prompt's placeholder for the video (LLaVA-NeXT has no
#: video token: its video takes the place of ``<image>``)
PLACEHOLDERS = {
    "llava_next": "<image>",
    "llava_next_video": "<video>",
    "llava_onevision": "<video>",
}
#: the config entry (``--hf-overrides``) that holds the settings
CONFIG_KEY = "sfllava"


@dataclass(frozen=True)
class PluginSettings:
    """SF-LLaVA's settings for one served model.

    Attributes:
        slowfast: the aggregation string (default: the family's).
        num_frames: frames sampled from a video (default: the published 50).
        resize_mode: ``squash`` (the published resize), ``crop`` or ``pad``.
    """

    slowfast: str
    num_frames: int = DEFAULT_NUM_FRAMES
    resize_mode: str = DEFAULT_RESIZE_MODE

    def as_override(self) -> dict[str, Any]:
        """The ``sfllava`` entry of ``--hf-overrides`` that gives these settings."""
        return {
            "slowfast": self.slowfast,
            "num_frames": self.num_frames,
            "resize_mode": self.resize_mode,
        }


def settings_of(hf_config: Any) -> PluginSettings:
    """The settings in ``hf_config``'s ``sfllava`` entry, the family's defaults for the
    keys it lacks.

    Raises:
        UnsupportedModelError: not a LLaVA-NeXT, NeXT-Video or OneVision config.
        ValueError: an unknown key, an unknown aggregation or one that runs before the
            projector (``next_video_pool``: vLLM's own NeXT-Video path has it), a
            ``num_frames`` that is not an int >= 1, an unknown ``resize_mode``; each
            named in the message.
    """
    family = family_of(hf_config, "the served checkpoint")
    raw = getattr(hf_config, CONFIG_KEY, None) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"hf_overrides '{CONFIG_KEY}' must be an object, got {raw!r}")
    unknown = set(raw) - {"slowfast", "num_frames", "resize_mode"}
    if unknown:
        raise ValueError(
            f"hf_overrides '{CONFIG_KEY}' has unknown keys {sorted(unknown)}; "
            "expected slowfast, num_frames, resize_mode"
        )
    slowfast = raw.get("slowfast") or family.default_slowfast
    parse_aggregation(slowfast)
    if slowfast in PRE_PROJECTOR_POOLS:
        raise ValueError(
            f"{CONFIG_KEY}.slowfast '{slowfast}' pools before the projector; serve it "
            "with vLLM's own LlavaNextVideoForConditionalGeneration"
        )
    num_frames = raw.get("num_frames", DEFAULT_NUM_FRAMES)
    if not isinstance(num_frames, int) or isinstance(num_frames, bool) or num_frames < 1:
        raise ValueError(f"{CONFIG_KEY}.num_frames must be an int >= 1, got {num_frames!r}")
    resize_mode = raw.get("resize_mode", DEFAULT_RESIZE_MODE)
    if resize_mode not in RESIZE_MODES:
        raise ValueError(
            f"{CONFIG_KEY}.resize_mode must be one of {', '.join(RESIZE_MODES)}, "
            f"got {resize_mode!r}"
        )
    return PluginSettings(str(slowfast), num_frames, resize_mode)


def grid_of(hf_config: Any) -> tuple[int, int]:
    """The vision tower's token grid (H, W) of one frame."""
    vc = hf_config.vision_config
    side = vc.image_size // vc.patch_size
    return side, side
