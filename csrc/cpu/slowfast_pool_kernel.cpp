// CPU kernels of slowfast_pool.
//
// Forward: one pass over the output rows. Each row reduces its token window
// channel-wise into a small accumulator (fp32 for fp16/bf16, fp64 for fp32/fp64) and is written
// once, straight into the output buffer (which may be a slice of an LLM's input
// embeddings). The fast pathway reads every frame once; the slow pathway reads
// only the picked frames. Rows are split between threads by their cost (tokens
// read), since a fast row reads ~36 tokens and a slow row 2.
//
// Backward and the test-only SIMT entry point run the CUDA kernels' bodies
// (csrc/common/slowfast_pool_simt.h) in plain loops.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../common/slowfast_pool_simt.h"
#include "../ops/slowfast_pool.h"
#include "target_clones.h"

// Row primitives are plain loops that the compiler vectorises, per ISA.

namespace sfllava {
namespace {

// ---- row primitives ----

template <typename scalar_t, typename acc_t>
SFLLAVA_CPU_CLONES void load_row(acc_t* __restrict acc, const scalar_t* __restrict src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] = static_cast<acc_t>(src[i]);
}

template <typename scalar_t, typename acc_t>
SFLLAVA_CPU_CLONES void add_row(acc_t* __restrict acc, const scalar_t* __restrict src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += static_cast<acc_t>(src[i]);
}

// acc (+)= a + b + c + d: four tokens per pass over the accumulators.
template <typename scalar_t, typename acc_t>
SFLLAVA_CPU_CLONES void add4_row(acc_t* __restrict acc, const scalar_t* __restrict a,
                                 const scalar_t* __restrict b, const scalar_t* __restrict c,
                                 const scalar_t* __restrict d, bool init, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const acc_t sum = (static_cast<acc_t>(a[i]) + static_cast<acc_t>(b[i])) +
                      (static_cast<acc_t>(c[i]) + static_cast<acc_t>(d[i]));
    acc[i] = init ? sum : acc[i] + sum;
  }
}

template <typename scalar_t, typename acc_t>
SFLLAVA_CPU_CLONES void max_row(acc_t* __restrict acc, const scalar_t* __restrict src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const acc_t v = static_cast<acc_t>(src[i]);
    acc[i] = max_pool_takes(v, acc[i]) ? v : acc[i];
  }
}

template <typename scalar_t, typename acc_t>
SFLLAVA_CPU_CLONES void store_row(scalar_t* __restrict dst, const acc_t* __restrict acc, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<scalar_t>(acc[i]);
}

template <typename scalar_t, typename acc_t>
SFLLAVA_CPU_CLONES void store_mean_row(scalar_t* __restrict dst, const acc_t* __restrict acc, acc_t count,
                    int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<scalar_t>(acc[i] / count);
}

// The published default: max of two tokens, straight to the output.
template <typename scalar_t, typename acc_t>
SFLLAVA_CPU_CLONES void max2_row(scalar_t* __restrict dst, const scalar_t* __restrict a,
              const scalar_t* __restrict b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const acc_t x = static_cast<acc_t>(a[i]);
    const acc_t y = static_cast<acc_t>(b[i]);
    dst[i] = static_cast<scalar_t>(max_pool_takes(y, x) ? y : x);
  }
}

// Splits rows [0, num_tokens) into `parts` contiguous ranges of about equal cost
// (tokens read + 1 for the write). Returns parts + 1 boundaries.
std::vector<int64_t> balance_rows(const SlowFastGeometry& g, const int32_t* picks,
                                  int64_t parts) {
  std::vector<int64_t> prefix(g.num_tokens + 1, 0);
  for (int64_t r = 0; r < g.num_tokens; ++r) {
    prefix[r + 1] = prefix[r] + window_of_row(r, g, picks).count() + 1;
  }
  std::vector<int64_t> bounds(parts + 1, g.num_tokens);
  bounds[0] = 0;
  for (int64_t p = 1; p < parts; ++p) {
    const int64_t target = prefix.back() * p / parts;
    bounds[p] = std::lower_bound(prefix.begin(), prefix.end(), target) - prefix.begin();
  }
  return bounds;
}

// One output row, channels [0, n) of the window's tokens (pointers already
// offset to the first channel); `acc` holds at least n accumulators.
template <typename scalar_t, typename acc_t>
void reduce_window(const TokenWindow& win, const SlowFastGeometry& g, const FeatureStrides& s,
                   const scalar_t* in, scalar_t* dst, acc_t* acc, int64_t n) {
  const int64_t count = win.count();
  int64_t h, w;
  win.token(0, g.W, &h, &w);
  const scalar_t* first = in + s.token(win.frame, h, w);
  if (count == 1) {
    load_row(acc, first, n);
    store_row(dst, acc, n);
    return;
  }
  if (win.is_max && count == 2) {  // the published default, straight to the output
    win.token(1, g.W, &h, &w);
    max2_row<scalar_t, acc_t>(dst, first, in + s.token(win.frame, h, w), n);
    return;
  }
  const auto token = [&](int64_t k) {
    win.token(k, g.W, &h, &w);
    return in + s.token(win.frame, h, w);
  };
  int64_t k = 0;
  if (!win.is_max) {
    // Sums go four tokens at a time: a quarter of the accumulator traffic.
    for (; k + 4 <= count; k += 4) {
      add4_row(acc, token(k), token(k + 1), token(k + 2), token(k + 3), k == 0, n);
    }
  }
  if (k == 0) {
    load_row(acc, first, n);
    k = 1;
  }
  for (; k < count; ++k) {
    if (win.is_max) {
      max_row(acc, token(k), n);
    } else {
      add_row(acc, token(k), n);
    }
  }
  if (win.is_max) {
    store_row(dst, acc, n);
  } else {
    store_mean_row(dst, acc, static_cast<acc_t>(count), n);
  }
}

template <typename scalar_t>
void slowfast_pool_forward_impl(const scalar_t* in, const SlowFastGeometry& g,
                                const FeatureStrides& s, const int32_t* picks,
                                scalar_t* out, int64_t out_row_stride) {
  using acc_t = pool_acc_t<scalar_t>;
  // Channels are reduced in blocks whose accumulators stay in L1 next to the
  // streamed input rows (4096 fp64 accumulators would not).
  constexpr int64_t kBlock = 8192 / sizeof(acc_t);
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  // Few rows (one frame, tiny fast grid): split channels too, so every thread
  // has work; otherwise whole rows keep each write one contiguous run.
  const int64_t channel_parts =
      g.num_tokens >= 4 * threads ? 1 : std::min<int64_t>(threads, (g.D + 63) / 64);
  const int64_t row_parts = std::max<int64_t>(1, threads / channel_parts);
  const std::vector<int64_t> bounds = balance_rows(g, picks, row_parts);
  const int64_t chunk = (g.D + channel_parts - 1) / channel_parts;

  at::parallel_for(0, row_parts * channel_parts, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(std::min(chunk, kBlock));
    for (int64_t item = begin; item < end; ++item) {
      const int64_t c0 = (item % channel_parts) * chunk;
      const int64_t c1 = std::min(g.D, c0 + chunk);
      const int64_t r0 = bounds[item / channel_parts];
      const int64_t r1 = bounds[item / channel_parts + 1];
      for (int64_t row = r0; row < r1; ++row) {
        const TokenWindow win = window_of_row(row, g, picks);
        for (int64_t d = c0; d < c1; d += kBlock) {
          reduce_window(win, g, s, in + d, out + row * out_row_stride + d, acc.data(),
                        std::min(kBlock, c1 - d));
        }
      }
    }
  });
}

void run_forward(const at::Tensor& features_in, const SlowFastProblem& problem, const at::Tensor& out) {
  const SlowFastGeometry& g = problem.geometry;
  if (g.D == 0) return;
  // The row loops need unit channel stride; any other layout is made so once.
  const at::Tensor features = features_in.stride(-1) == 1 ? features_in
                                                          : features_in.contiguous();
  const FeatureStrides s = feature_strides(features, g.W);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, features.scalar_type(),
                                  "slowfast_pool_cpu", [&] {
    slowfast_pool_forward_impl<scalar_t>(features.const_data_ptr<scalar_t>(), g, s,
                                         problem.picks.const_data_ptr<int32_t>(),
                                         out.mutable_data_ptr<scalar_t>(), out.stride(0));
  });
}

at::Tensor slowfast_pool_cpu(const at::Tensor& features, int64_t slow_frames,
                              c10::string_view slow_pool, at::IntArrayRef fast_size,
                              at::IntArrayRef grid) {
  return slowfast_pool_with(run_forward, features, slow_frames, slow_pool, fast_size, grid);
}

void slowfast_pool_out_cpu(const at::Tensor& features, int64_t slow_frames,
                            c10::string_view slow_pool, at::IntArrayRef fast_size,
                            at::IntArrayRef grid, const at::Tensor& out) {
  slowfast_pool_out_with(run_forward, features, slow_frames, slow_pool, fast_size, grid, out);
}

at::Tensor slowfast_pool_backward_cpu(const at::Tensor& grad_in, const at::Tensor& features,
                                      int64_t slow_frames, c10::string_view slow_pool,
                                      at::IntArrayRef fast_size, at::IntArrayRef grid) {
  const SlowFastProblem problem =
      prepare_slowfast(features, slow_frames, slow_pool, fast_size, grid);
  check_slowfast_grad(grad_in, features, problem);
  const SlowFastGeometry& g = problem.geometry;
  const at::Tensor grad = grad_in.contiguous();
  at::Tensor grad_features = at::empty(features.sizes(), features.options().memory_format(
                                                             at::MemoryFormat::Contiguous));
  if (g.D == 0) return grad_features;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, features.scalar_type(),
                                  "slowfast_pool_backward_cpu", [&] {
    const scalar_t* go = grad.const_data_ptr<scalar_t>();
    const scalar_t* in = features.const_data_ptr<scalar_t>();
    scalar_t* gi = grad_features.mutable_data_ptr<scalar_t>();
    const int32_t* picks = problem.picks.const_data_ptr<int32_t>();
    // One "block" per input token and one "thread" per channel, as on the GPU.
    at::parallel_for(0, g.T * g.H * g.W, 16, [&](int64_t begin, int64_t end) {
      for (int64_t token = begin; token < end; ++token) {
        for (int64_t d = 0; d < g.D; ++d) {
          slowfast_pool_backward_thread<scalar_t>(token, 0, d, g.D, g, picks, go, in,
                                                  problem.strides, gi);
        }
      }
    });
  });
  return grad_features;
}

// Runs the CUDA forward kernel's body for every (block, thread) of its grid.
template <typename scalar_t, int VEC>
void run_simt_grid(const SlowFastProblem& problem, const scalar_t* in, scalar_t* out) {
  constexpr int64_t kBlock = 32;  // a small block exercises the bounds checks
  const SlowFastGeometry& g = problem.geometry;
  const int32_t* picks = problem.picks.const_data_ptr<int32_t>();
  const int64_t blocks_y = ((g.D + VEC - 1) / VEC + kBlock - 1) / kBlock;
  for (int64_t bx = 0; bx < g.num_tokens; ++bx) {
    for (int64_t by = 0; by < blocks_y; ++by) {
      for (int64_t tx = 0; tx < kBlock; ++tx) {
        slowfast_pool_forward_thread<scalar_t, VEC>(bx, by, tx, kBlock, g, picks, in,
                                                    problem.strides, out, g.D);
      }
    }
  }
}

// Test-only: the CUDA forward kernel, block by block and thread by thread.
at::Tensor slowfast_pool_simt_cpu(const at::Tensor& features, int64_t slow_frames,
                                  c10::string_view slow_pool, at::IntArrayRef fast_size,
                                  at::IntArrayRef grid, int64_t vec) {
  const SlowFastProblem problem =
      prepare_slowfast(features, slow_frames, slow_pool, fast_size, grid);
  const SlowFastGeometry& g = problem.geometry;
  TORCH_CHECK_VALUE(vec == 1 || vec == 2 || vec == 4 || vec == 8,
                    "_slowfast_pool_simt: vec must be 1, 2, 4 or 8, got ", vec);
  TORCH_CHECK_VALUE(vec == 1 || (features.stride(-1) == 1 && g.D % vec == 0),
                    "_slowfast_pool_simt: vec ", vec, " needs unit channel stride and D % vec == 0");
  at::Tensor out = at::empty({g.num_tokens, g.D}, features.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, features.scalar_type(),
                                  "slowfast_pool_simt_cpu", [&] {
    const scalar_t* in = features.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    if (vec == 8) run_simt_grid<scalar_t, 8>(problem, in, o);
    if (vec == 4) run_simt_grid<scalar_t, 4>(problem, in, o);
    if (vec == 2) run_simt_grid<scalar_t, 2>(problem, in, o);
    if (vec == 1) run_simt_grid<scalar_t, 1>(problem, in, o);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(sfllava, CPU, m) {
  m.impl("slowfast_pool", &slowfast_pool_cpu);
  m.impl("slowfast_pool.out", &slowfast_pool_out_cpu);
  m.impl("slowfast_pool_backward", &slowfast_pool_backward_cpu);
  m.impl("_slowfast_pool_simt", &slowfast_pool_simt_cpu);
}

}  // namespace sfllava
