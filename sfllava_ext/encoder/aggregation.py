"""SF-LLaVA's aggregation strings: parsing, token counts, and running them.

``slowfast-slow_{Ns}frms_{pool}-fast_{h}x{w}`` is the published two-pathway
aggregation; ``concat``, the four ``spatial_*_pool`` names,
``spatial_temporal_pool`` and ``temporal_global_pool`` are the published
single-pathway ones (docs/method.md, "Slow and fast pathways").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..constants import DEFAULT_SLOWFAST, SLOW_POOLS
from ..ops.checks import check_pooling, slowfast_geometry
from ..ops.slowfast_pool import slowfast_pool

__all__ = [
    "SlowFastConfig",
    "DEFAULT_SLOWFAST",
    "NATIVE_POOLS",
    "PRE_PROJECTOR_POOLS",
    "SINGLE_PATHWAY",
    "aggregate",
    "num_visual_tokens",
    "parse_aggregation",
    "writes_out",
]

SINGLE_PATHWAY = SLOW_POOLS + ("spatial_temporal_pool", "temporal_global_pool")
#: The families' own video poolings, for comparison (docs/method.md#native-poolings).
NATIVE_POOLS = ("onevision_video_pool", "next_video_pool")
#: Native poolings that run before the projector, with the model's own module
#: (:meth:`sfllava_ext.models.families.Family.pre_projector`); here they only count tokens.
PRE_PROJECTOR_POOLS = ("next_video_pool",)
NEXT_VIDEO_POOL_STRIDE = 2  # the published LLaVA-NeXT-Video vision_resampler's stride
SPATIAL_TEMPORAL_SIZE = (16, 12, 12)  # published AdaptiveAvgPool3d output (T, H, W)

_SLOW_PART = re.compile(r"^slow_(\d+)frms_(\w+)$")
_FAST_PART = re.compile(r"^fast_(\d+)x(\d+)$")


@dataclass(frozen=True)
class SlowFastConfig:
    """The two-pathway aggregation: ``slow_frames`` frames pooled with
    ``slow_pool``, every frame average-pooled to ``fast_size`` (h, w)
    (docs/method.md#pathways). ``str(config)`` is its published string.

    Raises:
        ValueError: slow_frames < 1, an unknown slow_pool, fast_size not (h, w) >= 1.
        TypeError: fast_size not a pair.
    """

    slow_frames: int = 10
    slow_pool: str = "spatial_1d_max_pool"
    fast_size: tuple[int, int] = (4, 4)

    def __post_init__(self) -> None:
        if not isinstance(self.fast_size, (tuple, list)):
            raise TypeError(
                f"SlowFastConfig: fast_size must be (h, w), got {type(self.fast_size).__name__}"
            )
        check_pooling("SlowFastConfig", self.slow_frames, self.slow_pool, self.fast_size)
        if len(self.fast_size) != 2:  # empty: check_pooling's "no fast pathway"
            raise ValueError(
                f"SlowFastConfig: fast_size must be (h, w) with h, w >= 1, got {self.fast_size}"
            )
        object.__setattr__(self, "fast_size", (int(self.fast_size[0]), int(self.fast_size[1])))

    @classmethod
    def parse(cls, text: str) -> SlowFastConfig:
        """Parses ``slowfast-slow_{Ns}frms_{pool}-fast_{h}x{w}``.

        Raises:
            TypeError: ``text`` is not a str.
            ValueError: the text is not of that form; the message names the part
                that is wrong.
        """
        if not isinstance(text, str):
            raise TypeError(f"SlowFastConfig.parse: expected a str, got {type(text)}")
        parts = text.split("-")
        if len(parts) != 3 or parts[0] != "slowfast":
            raise ValueError(
                f"SlowFastConfig.parse: '{text}' is not of the form "
                "'slowfast-slow_{Ns}frms_{pool}-fast_{h}x{w}'"
            )
        slow = _SLOW_PART.match(parts[1])
        if slow is None:
            raise ValueError(
                f"SlowFastConfig.parse: slow part '{parts[1]}' of '{text}' is not "
                "'slow_{Ns}frms_{pool}'"
            )
        if slow.group(2) not in SLOW_POOLS:
            raise ValueError(
                f"SlowFastConfig.parse: unknown slow pooling '{slow.group(2)}' in '{text}'; "
                f"expected one of {', '.join(SLOW_POOLS)}"
            )
        fast = _FAST_PART.match(parts[2])
        if fast is None:
            raise ValueError(
                f"SlowFastConfig.parse: fast part '{parts[2]}' of '{text}' is not "
                "'fast_{h}x{w}'"
            )
        return cls(int(slow.group(1)), slow.group(2), (int(fast.group(1)), int(fast.group(2))))

    def __str__(self) -> str:
        h, w = self.fast_size
        return f"slowfast-slow_{self.slow_frames}frms_{self.slow_pool}-fast_{h}x{w}"

    def num_tokens(self, num_frames: int, grid: Sequence[int] = (24, 24)) -> int:
        """Visual tokens for ``num_frames`` frames of an (H, W) token grid.

        Raises:
            ValueError: num_frames < 1, a grid too small for the pooling.
        """
        h, w = grid
        return slowfast_geometry(
            (num_frames, h, w, 1), self.slow_frames, self.slow_pool, list(self.fast_size), []
        )[4]


def parse_aggregation(name: str | SlowFastConfig) -> str | SlowFastConfig:
    """A SlowFastConfig for ``slowfast-...`` strings, else the validated
    single-pathway name (docs/method.md#single-pathway).

    Raises:
        TypeError: neither a str nor a SlowFastConfig.
        ValueError: an unknown aggregation.
    """
    if isinstance(name, SlowFastConfig):
        return name
    if not isinstance(name, str):
        raise TypeError(f"aggregation must be a str or SlowFastConfig, got {type(name)}")
    if name.startswith("slowfast"):
        return SlowFastConfig.parse(name)
    if name not in SINGLE_PATHWAY + NATIVE_POOLS:
        raise ValueError(
            f"unknown aggregation '{name}'; expected a 'slowfast-...' string or one of "
            f"{', '.join(SINGLE_PATHWAY + NATIVE_POOLS)}"
        )
    return name


def num_visual_tokens(
    num_frames: int,
    grid: Sequence[int] = (24, 24),
    aggregation: str | SlowFastConfig = DEFAULT_SLOWFAST,
    *,
    pool_stride: int = NEXT_VIDEO_POOL_STRIDE,
) -> int:
    """How many visual tokens ``aggregation`` makes from ``num_frames`` frames
    of an (H, W) token grid, without computing anything. ``pool_stride`` is the
    ``spatial_pool_stride`` of a LLaVA-NeXT-Video checkpoint, for ``next_video_pool``
    (the published 2).

    >>> num_visual_tokens(50)  # the published default: 10 * 288 + 50 * 16
    3680

    Raises:
        TypeError, ValueError: an unknown aggregation, num_frames < 1, a grid too
            small for the pooling, a pool_stride below 1.
    """
    agg = parse_aggregation(aggregation)
    if num_frames < 1:
        raise ValueError(f"num_visual_tokens: num_frames must be >= 1, got {num_frames}")
    h, w = int(grid[0]), int(grid[1])
    if isinstance(agg, SlowFastConfig):
        return agg.num_tokens(num_frames, (h, w))
    if agg == "spatial_temporal_pool":
        t, ph, pw = SPATIAL_TEMPORAL_SIZE
        return t * ph * pw
    if agg == "temporal_global_pool":
        return h * w
    if agg == "onevision_video_pool":
        return num_frames * -(-h // 2) * -(-w // 2)
    if agg == "next_video_pool":  # a stride x stride pool without padding, every frame
        if not isinstance(pool_stride, int) or pool_stride < 1:
            raise ValueError(f"num_visual_tokens: pool_stride must be >= 1, got {pool_stride!r}")
        return num_frames * (h // pool_stride) * (w // pool_stride)
    return slowfast_geometry((num_frames, h, w, 1), num_frames, agg, [], [])[4]


def writes_out(name: str | SlowFastConfig) -> bool:
    """Whether :func:`aggregate` takes ``out=`` for this aggregation (the kernel-backed
    ones); the others return a new tensor."""
    agg = parse_aggregation(name)
    return isinstance(agg, SlowFastConfig) or (agg in SLOW_POOLS and agg != "concat")


def aggregate(
    features: torch.Tensor,
    name: str | SlowFastConfig = DEFAULT_SLOWFAST,
    *,
    grid: Sequence[int] | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Runs any published aggregation on ``(T, N, D)`` or ``(T, H, W, D)``
    features and returns ``(num_tokens, D)``.

    Two-pathway strings and the four ``spatial_*_pool`` names (which pool every
    frame) run the fused kernel; ``concat`` is a reshape; the published
    ``spatial_temporal_pool`` (adaptive 3-D average to (16, 12, 12)),
    ``temporal_global_pool`` (mean over frames) and OneVision's own
    ``onevision_video_pool`` (bilinear to half the grid, rounded up) use PyTorch ops.
    ``out`` is supported by the kernel-backed aggregations (:func:`writes_out`). The
    result has the features' dtype and device. ``next_video_pool`` runs before the
    projector, inside :class:`~sfllava_ext.SlowFastLlava`, and is refused here.

    Raises:
        TypeError: features not a tensor (or not floating point, for the kernel).
        ValueError: an unknown aggregation, a bad shape or grid, ``out=`` with an
            aggregation that does not support it, a pre-projector pooling.
    """
    agg = parse_aggregation(name)
    if agg in PRE_PROJECTOR_POOLS:
        raise ValueError(
            f"aggregate: '{agg}' pools the tower's features before the projector, with the "
            f"model's own module; use SlowFastLlava(model, slowfast='{agg}')"
        )
    if isinstance(agg, SlowFastConfig):
        return slowfast_pool(
            features,
            slow_frames=agg.slow_frames,
            slow_pool=agg.slow_pool,
            fast_size=agg.fast_size,
            grid=grid,
            out=out,
        )
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"aggregate: features must be a torch.Tensor, got {type(features)}")
    # Validates the shape and resolves the grid like the op does.
    t, h, w, d, _ = slowfast_geometry(
        features.shape, 1, "concat", [], [] if grid is None else list(grid)
    )
    if agg in SLOW_POOLS and agg != "concat":
        # Every frame through the slow pathway: linspace(0, T, T + 1) picks 0..T-1.
        return slowfast_pool(
            features, slow_frames=t, slow_pool=agg, fast_size=None, grid=grid, out=out
        )
    if out is not None:
        raise ValueError(f"aggregate: out= is not supported for '{agg}'")
    grid_features = features.reshape(t, h, w, d)
    if agg == "concat":
        return grid_features.reshape(t * h * w, d)
    if agg == "temporal_global_pool":
        return grid_features.mean(dim=0).reshape(h * w, d)
    if agg == "onevision_video_pool":  # bilinear to ceil(H / 2) x ceil(W / 2), every frame
        size = (-(-h // 2), -(-w // 2))
        pooled = F.interpolate(grid_features.permute(0, 3, 1, 2), size=size, mode="bilinear")
        return pooled.permute(0, 2, 3, 1).reshape(-1, d)
    pooled = F.adaptive_avg_pool3d(grid_features.permute(3, 0, 1, 2), SPATIAL_TEMPORAL_SIZE)
    return pooled.permute(1, 2, 3, 0).reshape(-1, d)
