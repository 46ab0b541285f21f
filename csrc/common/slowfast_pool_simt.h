// The slow/fast pooling kernels as functions of (block index, thread index).
//
// The CUDA kernels are thin __global__ wrappers around these bodies; the
// test-only CPU entry point `_slowfast_pool_simt` and the CPU backward run the
// very same bodies in plain loops over the whole grid, so the CPU tests cover
// the GPU's indexing and bounds checks, not only its math (docs/development.md#gpu-truth).
//
// Forward thread map: block x = one output token (row), block y * blockDim.x +
// thread x = one group of VEC consecutive channels. A thread reduces its
// channels over the token window of its row, accumulating in opmath (fp32 for
// fp16/bf16), and writes them once.
//
// Backward thread map: block x = one input token (frame, h, w), block y and
// thread x as above. Each input element gathers the gradient of every output
// token whose window holds it (no atomics, deterministic): max windows route
// to PyTorch's arg-max (first maximum, NaN wins), average windows spread evenly.
#pragma once

#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>

#include <limits>

#include "slowfast_geometry.h"

namespace sfllava {

// Accumulator of the pooling sums: fp32 for fp16/bf16 (opmath); fp64 for fp32,
// so that a 576-token fast window (T = 1, fast 1x1) keeps its mean to the last
// fp32 bit, at no cost to a kernel bound by memory.
template <typename scalar_t>
struct PoolAcc {
  using type = at::opmath_type<scalar_t>;
};
template <>
struct PoolAcc<float> {
  using type = double;
};
template <typename scalar_t>
using pool_acc_t = typename PoolAcc<scalar_t>::type;

template <typename scalar_t, int VEC>
struct alignas(sizeof(scalar_t) * VEC) Pack {
  scalar_t v[VEC];
};

// Index k (0 <= k < win.count()) of the window's arg-max at channel d.
template <typename scalar_t>
SFLLAVA_HD int64_t window_argmax(const TokenWindow& win, int64_t W, const scalar_t* in,
                                 const FeatureStrides& s, int64_t d) {
  using acc_t = pool_acc_t<scalar_t>;
  acc_t best = -std::numeric_limits<acc_t>::infinity();
  int64_t best_k = 0;
  for (int64_t k = 0; k < win.count(); ++k) {
    int64_t h, w;
    win.token(k, W, &h, &w);
    const acc_t v = static_cast<acc_t>(in[s.token(win.frame, h, w) + d * s.d]);
    if (max_pool_takes(v, best)) {
      best = v;
      best_k = k;
    }
  }
  return best_k;
}

template <typename scalar_t, int VEC>
SFLLAVA_HD void slowfast_pool_forward_thread(int64_t block_x, int64_t block_y,
                                             int64_t thread_x, int64_t block_dim_x,
                                             const SlowFastGeometry& g,
                                             const int32_t* picks, const scalar_t* in,
                                             const FeatureStrides& s, scalar_t* out,
                                             int64_t out_row_stride) {
  using acc_t = pool_acc_t<scalar_t>;
  const int64_t row = block_x;
  const int64_t d0 = (block_y * block_dim_x + thread_x) * VEC;
  if (row >= g.num_tokens || d0 >= g.D) {
    return;
  }
  const TokenWindow win = window_of_row(row, g, picks);
  const int64_t count = win.count();

  acc_t acc[VEC];
SFLLAVA_UNROLL
  for (int i = 0; i < VEC; ++i) {
    acc[i] = win.is_max ? -std::numeric_limits<acc_t>::infinity() : acc_t(0);
  }
  for (int64_t k = 0; k < count; ++k) {
    int64_t h, w;
    win.token(k, g.W, &h, &w);
    const scalar_t* src = in + s.token(win.frame, h, w) + d0 * s.d;
    Pack<scalar_t, VEC> p;
    if (VEC == 1) {
      p.v[0] = src[0];
    } else {  // the host picks VEC > 1 only for s.d == 1 and aligned rows
      p = *reinterpret_cast<const Pack<scalar_t, VEC>*>(src);
    }
SFLLAVA_UNROLL
    for (int i = 0; i < VEC; ++i) {
      const acc_t v = static_cast<acc_t>(p.v[i]);
      if (win.is_max) {
        acc[i] = max_pool_takes(v, acc[i]) ? v : acc[i];
      } else {
        acc[i] += v;
      }
    }
  }

  Pack<scalar_t, VEC> r;
SFLLAVA_UNROLL
  for (int i = 0; i < VEC; ++i) {
    r.v[i] = static_cast<scalar_t>(win.is_max ? acc[i] : acc[i] / static_cast<acc_t>(count));
  }
  scalar_t* dst = out + row * out_row_stride + d0;
  if (VEC == 1) {
    dst[0] = r.v[0];
  } else {
    *reinterpret_cast<Pack<scalar_t, VEC>*>(dst) = r;
  }
}

template <typename scalar_t>
SFLLAVA_HD void slowfast_pool_backward_thread(int64_t block_x, int64_t block_y,
                                              int64_t thread_x, int64_t block_dim_x,
                                              const SlowFastGeometry& g,
                                              const int32_t* picks,
                                              const scalar_t* grad_out,  // (num_tokens, D)
                                              const scalar_t* in,
                                              const FeatureStrides& s,
                                              scalar_t* grad_in) {  // (T, H, W, D)
  using acc_t = pool_acc_t<scalar_t>;
  const int64_t HW = g.H * g.W;
  const int64_t token = block_x;
  const int64_t d = block_y * block_dim_x + thread_x;
  if (token >= g.T * HW || d >= g.D) {
    return;
  }
  const int64_t t = token / HW;
  const int64_t n = token - t * HW;
  const int64_t h = n / g.W;
  const int64_t w = n - h * g.W;
  acc_t acc = 0;

  // Slow pathway: every pick of this frame (picks repeat when Ns > T).
  for (int64_t p = 0; p < g.slow_frames; ++p) {
    if (picks[p] != t) {
      continue;
    }
    const int64_t base = p * g.slow_per_frame;
    int64_t j = -1;  // slow token of this pick whose window holds (h, w)
    int64_t k = 0;   // position of (h, w) inside that window
    switch (g.slow_pool) {
      case SlowPool::kConcat:
        j = n;
        break;
      case SlowPool::kMax1d:
      case SlowPool::kAvg1d:
        if (n / 2 < g.slow_per_frame) {
          j = n / 2;
          k = n % 2;
        }
        break;
      default:
        if (h / 2 < g.H / 2 && w / 2 < g.W / 2) {
          j = (h / 2) * (g.W / 2) + w / 2;
          k = (h % 2) * 2 + w % 2;
        }
        break;
    }
    if (j < 0) {
      continue;
    }
    const TokenWindow win = window_of_row(base + j, g, picks);
    const acc_t go = static_cast<acc_t>(grad_out[(base + j) * g.D + d]);
    if (win.is_max) {
      if (window_argmax(win, g.W, in, s, d) == k) {
        acc += go;
      }
    } else {
      acc += go / static_cast<acc_t>(win.count());
    }
  }

  // Fast pathway: the adaptive windows holding row h and column w (at most
  // two each while the fast size is no larger than the grid).
  if (g.fast_h > 0) {
    const int64_t cells = g.fast_h * g.fast_w;
    for (int64_t i = (h * g.fast_h) / g.H;
         i < g.fast_h && adaptive_start(i, g.H, g.fast_h) <= h; ++i) {
      const int64_t kh = adaptive_end(i, g.H, g.fast_h) - adaptive_start(i, g.H, g.fast_h);
      for (int64_t c = (w * g.fast_w) / g.W;
           c < g.fast_w && adaptive_start(c, g.W, g.fast_w) <= w; ++c) {
        const int64_t kw = adaptive_end(c, g.W, g.fast_w) - adaptive_start(c, g.W, g.fast_w);
        const int64_t row = g.num_slow_tokens + t * cells + i * g.fast_w + c;
        acc += static_cast<acc_t>(grad_out[row * g.D + d]) / static_cast<acc_t>(kh * kw);
      }
    }
  }
  grad_in[token * g.D + d] = static_cast<scalar_t>(acc);
}

}  // namespace sfllava
