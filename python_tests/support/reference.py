"""Plain-PyTorch float64 references of the published method, written from
docs/method.md independently of the kernels (no code shared with sfllava_ext)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def slow_frame_picks(num_frames: int, slow_frames: int) -> list[int]:
    """docs/method.md#slow-pathway, verbatim from the published code."""
    picks = torch.linspace(0, num_frames, slow_frames + 1).to(torch.int32).tolist()
    return picks[:-1]


def _slow_tokens(frame: torch.Tensor, pool: str) -> torch.Tensor:
    """frame: (H, W, D) -> (tokens, D), as the published temporal_aggregation."""
    h, w, d = frame.shape
    if pool == "concat":
        return frame.reshape(h * w, d)
    if pool in ("spatial_1d_max_pool", "spatial_1d_avg_pool"):
        seq = frame.reshape(1, h * w, d).transpose(1, 2)  # (1, D, N)
        fn = F.max_pool1d if "max" in pool else F.avg_pool1d
        return fn(seq, kernel_size=2, stride=2)[0].transpose(0, 1)
    grid = frame.permute(2, 0, 1)  # (D, H, W)
    fn = F.max_pool2d if "max" in pool else F.avg_pool2d
    return fn(grid, kernel_size=2, stride=2).permute(1, 2, 0).reshape(-1, d)


def slowfast_reference(
    features: torch.Tensor,
    slow_frames: int,
    slow_pool: str,
    fast_size: tuple[int, int] | None,
    grid: tuple[int, int] | None = None,
) -> torch.Tensor:
    """docs/method.md#pathways on (T, N, D) or (T, H, W, D); computed in the input's dtype
    (pass float64 for the reference, a low-precision dtype for PyTorch's own error)."""
    if features.dim() == 3:
        t, n, d = features.shape
        h, w = grid if grid is not None else (int(n**0.5), int(n**0.5))
        features = features.reshape(t, h, w, d)
    t, h, w, d = features.shape
    slow = [_slow_tokens(features[p], slow_pool) for p in slow_frame_picks(t, slow_frames)]
    parts = slow
    if fast_size is not None:
        fast = F.adaptive_avg_pool2d(features.permute(0, 3, 1, 2), fast_size)  # (T, D, h, w)
        parts = slow + [fast.permute(0, 2, 3, 1).reshape(-1, d)]
    return torch.cat(parts, dim=0)


def single_pathway_reference(features: torch.Tensor, name: str) -> torch.Tensor:
    """The published single-pathway aggregations on (T, N, D), square grid."""
    t, n, d = features.shape
    side = int(n**0.5)
    if name == "concat":
        return features.reshape(t * n, d)
    if name == "temporal_global_pool":
        return features.mean(dim=0)
    if name == "spatial_temporal_pool":
        grid = features.reshape(t, side, side, d).permute(3, 0, 1, 2)  # (D, T, H, W)
        pooled = F.adaptive_avg_pool3d(grid, (16, 12, 12))
        return pooled.permute(1, 2, 3, 0).reshape(-1, d)
    frames = features.reshape(t, side, side, d)
    return torch.cat([_slow_tokens(frames[i], name) for i in range(t)], dim=0)
