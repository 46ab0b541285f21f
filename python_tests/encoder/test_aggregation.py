"""SlowFastConfig, num_visual_tokens and aggregate() over every published string."""

from __future__ import annotations

import pytest
import torch
from support.reference import single_pathway_reference, slowfast_reference

import sfllava_ext
from sfllava_ext import SlowFastConfig, aggregate, num_visual_tokens

SINGLE = [
    "concat",
    "spatial_1d_max_pool",
    "spatial_1d_avg_pool",
    "spatial_2d_max_pool",
    "spatial_2d_avg_pool",
    "spatial_temporal_pool",
    "temporal_global_pool",
]


def test_parse_roundtrip_and_count():
    cfg = SlowFastConfig.parse("slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4")
    assert cfg == SlowFastConfig(10, "spatial_1d_max_pool", (4, 4))
    assert str(cfg) == "slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4"
    assert cfg.num_tokens(50, (24, 24)) == 3680  # docs/method.md#token-order
    assert num_visual_tokens(50) == 3680
    for text in [
        "slowfast-slow_8frms_spatial_2d_avg_pool-fast_3x5",
        "slowfast-slow_1frms_concat-fast_1x1",
        "slowfast-slow_64frms_spatial_1d_avg_pool-fast_27x27",
    ]:
        assert str(SlowFastConfig.parse(text)) == text


@pytest.mark.parametrize(
    "text, part",
    [
        ("slowfast-slow_10frms_spatial_3d_max_pool-fast_4x4", "spatial_3d_max_pool"),
        ("slowfast-slow_tenfrms_spatial_1d_max_pool-fast_4x4", "slow part"),
        ("slowfast-slow_10frms_spatial_1d_max_pool-fast_4by4", "fast part"),
        ("slowfast-slow_10frms_spatial_1d_max_pool", "not of the form"),
        ("fastslow-slow_10frms_spatial_1d_max_pool-fast_4x4", "not of the form"),
        ("slowfast-slow_0frms_spatial_1d_max_pool-fast_4x4", "slow_frames"),
        ("slowfast-slow_10frms_spatial_1d_max_pool-fast_0x4", "fast_size"),
    ],
)
def test_parse_errors_name_the_part(text, part):
    with pytest.raises(ValueError, match=part):
        SlowFastConfig.parse(text)


def test_unknown_aggregation():
    with pytest.raises(ValueError, match="unknown aggregation 'temporal_max_pool'"):
        aggregate(torch.zeros(2, 4, 3), "temporal_max_pool")
    with pytest.raises(TypeError, match="aggregation"):
        num_visual_tokens(4, (2, 2), 5)


@pytest.mark.parametrize("name", SINGLE)
def test_single_pathway_matches_published(name, gen):
    x = torch.randn(20, 576, 16, generator=gen, dtype=torch.float64)
    ours = aggregate(x, name)
    ref = single_pathway_reference(x, name)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    assert ours.shape[0] == num_visual_tokens(20, (24, 24), name)


@pytest.mark.parametrize(
    "text",
    [
        "slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4",
        "slowfast-slow_4frms_spatial_2d_avg_pool-fast_2x3",
        "slowfast-slow_30frms_concat-fast_6x6",
    ],
)
def test_slowfast_strings(text, gen):
    x = torch.randn(24, 576, 8, generator=gen, dtype=torch.float64)
    cfg = SlowFastConfig.parse(text)
    ours = aggregate(x, text)
    ref = slowfast_reference(x, cfg.slow_frames, cfg.slow_pool, cfg.fast_size)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    assert ours.shape[0] == num_visual_tokens(24, (24, 24), text) == cfg.num_tokens(24)
    assert torch.equal(aggregate(x, cfg), ours)


def test_exports():
    for name in ["SlowFastConfig", "aggregate", "num_visual_tokens", "build_info", "ops"]:
        assert hasattr(sfllava_ext, name)
