// Where every slow/fast output token comes from: the index math that the CPU
// kernel, the CUDA kernel and the backward all share (docs/method.md#pathways).
//
// Written once as __host__ __device__ inline functions so that the CPU tests
// exercise exactly the math the GPU runs.
//
// Output layout (docs/method.md#token-order): the slow tokens of every picked frame
// (frame-major, then row-major), then the fast tokens of every frame
// (frame-major, then row-major).
#pragma once

#include <cstdint>

#include "macros.h"

namespace sfllava {

// The published slow-pathway poolings. Values are part of no ABI: the op takes
// the name as a string and parses it on the host.
enum class SlowPool : int32_t {
  kConcat = 0,  // every token of the picked frame, unpooled
  kMax1d = 1,   // kernel 2, stride 2 over the row-major flattened token axis
  kAvg1d = 2,
  kMax2d = 3,   // 2x2, stride 2 on the (H, W) grid, floor mode
  kAvg2d = 4,
};

SFLLAVA_HD bool slow_pool_is_max(SlowPool p) {
  return p == SlowPool::kMax1d || p == SlowPool::kMax2d;
}

// PyTorch's adaptive pooling windows: [floor(i*in/out), ceil((i+1)*in/out)).
SFLLAVA_HD int64_t adaptive_start(int64_t i, int64_t in, int64_t out) {
  return (i * in) / out;
}
SFLLAVA_HD int64_t adaptive_end(int64_t i, int64_t in, int64_t out) {
  return ((i + 1) * in + out - 1) / out;
}

SFLLAVA_HD int64_t slow_tokens_per_frame(SlowPool p, int64_t H, int64_t W) {
  switch (p) {
    case SlowPool::kConcat:
      return H * W;
    case SlowPool::kMax1d:
    case SlowPool::kAvg1d:
      return (H * W) / 2;  // MaxPool1d(2, 2) drops an odd last token
    default:
      return (H / 2) * (W / 2);
  }
}

// Everything a kernel needs to know about the shapes; plain data, passed by
// value to CUDA kernels.
struct SlowFastGeometry {
  int64_t T = 0, H = 0, W = 0, D = 0;
  int64_t slow_frames = 0;  // Ns: number of picked frames (0 = no slow pathway)
  SlowPool slow_pool = SlowPool::kMax1d;
  int64_t fast_h = 0, fast_w = 0;  // 0 x 0 = no fast pathway
  int64_t slow_per_frame = 0;
  int64_t num_slow_tokens = 0;
  int64_t num_tokens = 0;
};

SFLLAVA_HD SlowFastGeometry make_geometry(int64_t T, int64_t H, int64_t W, int64_t D,
                                          int64_t slow_frames, SlowPool pool,
                                          int64_t fast_h, int64_t fast_w) {
  SlowFastGeometry g;
  g.T = T;
  g.H = H;
  g.W = W;
  g.D = D;
  g.slow_frames = slow_frames;
  g.slow_pool = pool;
  g.fast_h = fast_h;
  g.fast_w = fast_w;
  g.slow_per_frame = slow_tokens_per_frame(pool, H, W);
  g.num_slow_tokens = slow_frames * g.slow_per_frame;
  g.num_tokens = g.num_slow_tokens + T * fast_h * fast_w;
  return g;
}

// The input tokens one output token reduces over. Slow 1-D windows live on the
// flattened token axis (a pair may straddle two grid rows when W is odd);
// every other window is a rectangle on the grid.
struct TokenWindow {
  int64_t frame = 0;
  bool flat = false;
  bool is_max = false;
  int64_t n0 = 0, n1 = 0;  // flat: tokens [n0, n1) of the row-major axis
  int64_t h0 = 0, h1 = 0;  // rectangle: rows [h0, h1), columns [w0, w1)
  int64_t w0 = 0, w1 = 0;

  SFLLAVA_HD int64_t count() const { return flat ? n1 - n0 : (h1 - h0) * (w1 - w0); }

  // The k-th token of the window, in the scan order PyTorch's pools use
  // (flat order, or row by row); k in [0, count()).
  SFLLAVA_HD void token(int64_t k, int64_t W, int64_t* h, int64_t* w) const {
    if (flat) {
      const int64_t n = n0 + k;
      *h = n / W;
      *w = n - (n / W) * W;
    } else {
      const int64_t ww = w1 - w0;
      *h = h0 + k / ww;
      *w = w0 + k % ww;
    }
  }
};

// Window of output token `row`. `picks` holds the Ns slow frame indices.
SFLLAVA_HD TokenWindow window_of_row(int64_t row, const SlowFastGeometry& g,
                                     const int32_t* picks) {
  TokenWindow win;
  if (row < g.num_slow_tokens) {
    const int64_t s = row / g.slow_per_frame;
    const int64_t j = row - s * g.slow_per_frame;
    win.frame = picks[s];
    win.is_max = slow_pool_is_max(g.slow_pool);
    switch (g.slow_pool) {
      case SlowPool::kConcat:
        win.flat = true;
        win.n0 = j;
        win.n1 = j + 1;
        break;
      case SlowPool::kMax1d:
      case SlowPool::kAvg1d:
        win.flat = true;
        win.n0 = 2 * j;
        win.n1 = 2 * j + 2;
        break;
      default: {
        const int64_t pw = g.W / 2;
        const int64_t i = j / pw;
        const int64_t k = j - i * pw;
        win.h0 = 2 * i;
        win.h1 = 2 * i + 2;
        win.w0 = 2 * k;
        win.w1 = 2 * k + 2;
        break;
      }
    }
  } else {
    const int64_t cells = g.fast_h * g.fast_w;
    const int64_t f = row - g.num_slow_tokens;
    const int64_t c = f % cells;
    const int64_t i = c / g.fast_w;
    const int64_t k = c - i * g.fast_w;
    win.frame = f / cells;
    win.h0 = adaptive_start(i, g.H, g.fast_h);
    win.h1 = adaptive_end(i, g.H, g.fast_h);
    win.w0 = adaptive_start(k, g.W, g.fast_w);
    win.w1 = adaptive_end(k, g.W, g.fast_w);
  }
  return win;
}

// Element strides of the features tensor, viewed as (T, H, W, D).
struct FeatureStrides {
  int64_t t = 0, h = 0, w = 0, d = 0;
  SFLLAVA_HD int64_t token(int64_t frame, int64_t h_, int64_t w_) const {
    return frame * t + h_ * h + w_ * w;
  }
};

// NaN-propagating max step, PyTorch's pooling rule: a NaN wins, ties keep the
// first value seen.
template <typename acc_t>
SFLLAVA_HD bool max_pool_takes(acc_t value, acc_t current) {
  return value > current || value != value;
}

}  // namespace sfllava
