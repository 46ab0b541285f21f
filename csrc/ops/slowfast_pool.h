// slowfast_pool: SF-LLaVA's dual-stride pooling fused with the token
// concatenation (docs/method.md#pathways).
//
// This header is the C++ API (for users of the CMake build) and the host-side
// preparation shared by the CPU and CUDA kernels.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <vector>

#include "../common/slowfast_geometry.h"

namespace sfllava {

// ---- C++ API: calls through the dispatcher, like torch.ops.sfllava.* ----

// features: (T, N, D) or (T, H, W, D), fp32/fp16/bf16/fp64, any strides.
// slow_pool: concat | spatial_1d_max_pool | spatial_1d_avg_pool |
//            spatial_2d_max_pool | spatial_2d_avg_pool.
// fast_size: {h, w}, or {} for no fast pathway.
// grid: {H, W}, or {} to take it from a 4-D input or a square N.
// Returns (num_slow_tokens + T * h * w, D) in the dtype of features.
at::Tensor slowfast_pool(const at::Tensor& features, int64_t slow_frames,
                         c10::string_view slow_pool, at::IntArrayRef fast_size,
                         at::IntArrayRef grid);

// Same, written into `out` ((num_tokens, D), rows contiguous); returns `out`.
at::Tensor slowfast_pool_out(const at::Tensor& features, int64_t slow_frames,
                             c10::string_view slow_pool, at::IntArrayRef fast_size,
                             at::IntArrayRef grid, const at::Tensor& out);

// ---- host-side preparation shared by the backends ----

// The validated problem: geometry, strides of features viewed as (T, H, W, D)
// and the slow frame picks, computed on the host with torch.linspace exactly
// as the published code does (docs/method.md#slow-pathway).
struct SlowFastProblem {
  SlowFastGeometry geometry;
  FeatureStrides strides;
  at::Tensor picks;  // int32 (Ns,), CPU, contiguous
};

SlowPool parse_slow_pool(c10::string_view name);

// Element strides of `features` ((T, N, D) or (T, H, W, D)) seen as (T, H, W, D).
FeatureStrides feature_strides(const at::Tensor& features, int64_t W);

// Checks every argument (typed errors that name it) and builds the problem.
SlowFastProblem prepare_slowfast(const at::Tensor& features, int64_t slow_frames,
                                 c10::string_view slow_pool, at::IntArrayRef fast_size,
                                 at::IntArrayRef grid);

// Checks a caller's output buffer against the problem.
void check_slowfast_out(const at::Tensor& out, const at::Tensor& features,
                        const SlowFastProblem& problem);

// A backend's kernel launcher: writes the problem's tokens into `out`.
using SlowFastRun = void (*)(const at::Tensor& features, const SlowFastProblem& problem,
                             const at::Tensor& out);

// The backends' entry points, given their launcher: checks, allocation, run.
at::Tensor slowfast_pool_with(SlowFastRun run, const at::Tensor& features, int64_t slow_frames,
                              c10::string_view slow_pool, at::IntArrayRef fast_size,
                              at::IntArrayRef grid);
void slowfast_pool_out_with(SlowFastRun run, const at::Tensor& features, int64_t slow_frames,
                            c10::string_view slow_pool, at::IntArrayRef fast_size,
                            at::IntArrayRef grid, const at::Tensor& out);

// Checks the incoming gradient of the backward op.
void check_slowfast_grad(const at::Tensor& grad, const at::Tensor& features,
                         const SlowFastProblem& problem);

}  // namespace sfllava
