// Pillow's bicubic resampling weights (Image.resize(..., BICUBIC) on 8-bit
// images), reimplemented from the algorithm of libImaging/Resample.c so that
// our resize is bit-exact with the published PIL preprocessing
// (docs/method.md#pillow-bicubic).
//
// Per axis (in = source length, out = target length), for output index i:
//   scale   = in / out            filterscale = max(scale, 1)   (antialias when shrinking)
//   support = 2 * filterscale     ksize = 2 * ceil(support) + 1 (taps reserved per output)
//   center  = (i + 0.5) * scale
//   lo = max(int(center - support + 0.5), 0), hi = min(int(center + support + 0.5), in)
//   w(x) = cubic((x - center + 0.5) * (1 / filterscale)) for x in [lo, hi), divided by
//   their sum; each weight then becomes int(w * 2^22 +- 0.5) (sign of w).
// A pass stores clip((2^21 + sum(pixel * weight)) >> 22, 0, 255): integer sums,
// so any summation order (SIMD lanes, GPU threads) gives the same byte.
//
// The double-precision steps follow Pillow's evaluation order operation by
// operation. On the GPU every step uses an explicitly rounded intrinsic, since
// nvcc would otherwise fuse a*b+c into an FMA and change the last bit; host
// C++ is compiled in ISO mode (-std=c++17 / c++20), where GCC does not contract.
// In practice both backends take the weights computed once on the host (see
// csrc/ops/normalize_frames.cpp); the __device__ path keeps the function
// honest wherever it runs.
#pragma once

#include <cmath>
#include <cstdint>

#include "macros.h"

namespace sfllava {

constexpr int kPilPrecisionBits = 22;  // Pillow's PRECISION_BITS = 32 - 8 - 2
constexpr double kPilBicubicSupport = 2.0;

// Correctly rounded double arithmetic, never fused.
SFLLAVA_HD double pil_mul(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
SFLLAVA_HD double pil_add(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
SFLLAVA_HD double pil_sub(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
SFLLAVA_HD double pil_div(double a, double b) {
#ifdef __CUDA_ARCH__
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}

// Keys' cubic convolution kernel with a = -0.5, in Pillow's Horner order.
SFLLAVA_HD double pil_bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) {
    // ((a + 2) * x - (a + 3)) * x * x + 1
    return pil_add(pil_mul(pil_mul(pil_sub(pil_mul(a + 2.0, x), a + 3.0), x), x), 1.0);
  }
  if (x < 2.0) {
    // (((x - 5) * x + 8) * x - 4) * a
    return pil_mul(pil_sub(pil_mul(pil_add(pil_mul(pil_sub(x, 5.0), x), 8.0), x), 4.0), a);
  }
  return 0.0;
}

// One resampling axis: `in` source samples to `out` target samples.
struct PilAxis {
  int64_t in = 0, out = 0;
  double scale = 1.0;        // in / out
  double filterscale = 1.0;  // max(scale, 1)
  double support = 2.0;      // bicubic support * filterscale
  int64_t ksize = 5;         // taps reserved per output sample

  // Pillow skips a pass entirely when its axis keeps its size.
  SFLLAVA_HD bool identity() const { return in == out; }
};

SFLLAVA_HD PilAxis make_pil_axis(int64_t in, int64_t out) {
  PilAxis a;
  a.in = in;
  a.out = out;
  // Pillow: (double)(box1 - box0) / outSize with a float box; exact for in < 2^24.
  a.scale = pil_div(static_cast<double>(in), static_cast<double>(out));
  a.filterscale = a.scale < 1.0 ? 1.0 : a.scale;
  a.support = pil_mul(kPilBicubicSupport, a.filterscale);
  a.ksize = static_cast<int64_t>(ceil(a.support)) * 2 + 1;
  return a;
}

// Source window [*lo, *lo + *count) of output sample i, clipped to [0, in).
SFLLAVA_HD void pil_taps(const PilAxis& a, int64_t i, int64_t* lo, int64_t* count) {
  const double center = pil_add(0.0, pil_mul(static_cast<double>(i) + 0.5, a.scale));
  int64_t xmin = static_cast<int64_t>(static_cast<int>(pil_add(pil_sub(center, a.support), 0.5)));
  if (xmin < 0) xmin = 0;
  int64_t xmax = static_cast<int64_t>(static_cast<int>(pil_add(pil_add(center, a.support), 0.5)));
  if (xmax > a.in) xmax = a.in;
  *lo = xmin;
  *count = xmax > xmin ? xmax - xmin : 0;
}

// Fixed-point weights of output sample i: writes `count` int32 weights (the
// taps of pil_taps) and zeros up to `a.ksize`; returns count. `scratch` holds
// a.ksize doubles.
SFLLAVA_HD int64_t pil_fixed_weights(const PilAxis& a, int64_t i, int32_t* weights,
                                     double* scratch, int64_t* lo_out) {
  int64_t lo, count;
  pil_taps(a, i, &lo, &count);
  const double center = pil_add(0.0, pil_mul(static_cast<double>(i) + 0.5, a.scale));
  const double ss = pil_div(1.0, a.filterscale);
  double sum = 0.0;
  for (int64_t x = 0; x < count; ++x) {
    // (x + xmin - center + 0.5) * ss, with x + xmin an int as in Pillow
    const double t =
        pil_mul(pil_add(pil_sub(static_cast<double>(x + lo), center), 0.5), ss);
    const double w = pil_bicubic_filter(t);
    scratch[x] = w;
    sum = pil_add(sum, w);
  }
  constexpr double one = static_cast<double>(1 << kPilPrecisionBits);
  for (int64_t x = 0; x < a.ksize; ++x) {
    if (x >= count) {
      weights[x] = 0;
      continue;
    }
    const double w = sum != 0.0 ? pil_div(scratch[x], sum) : scratch[x];
    // Pillow rounds half away from zero by adding +-0.5 and truncating.
    weights[x] = w < 0 ? static_cast<int32_t>(pil_add(-0.5, pil_mul(w, one)))
                       : static_cast<int32_t>(pil_add(0.5, pil_mul(w, one)));
  }
  *lo_out = lo;
  return count;
}

// Pillow's clip8 of a finished accumulator (which started at 2^21).
SFLLAVA_HD uint8_t pil_clip8(int32_t acc) {
  const int32_t v = acc >> kPilPrecisionBits;  // arithmetic shift: floor
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

constexpr int32_t kPilRoundingBias = int32_t{1} << (kPilPrecisionBits - 1);

// The CLIP processor's arithmetic for one 8-bit level of channel c: float32
// of (double level * rescale_factor), then float32 (v - mean) / std
// (transformers' rescale casts the float64 product to float32; normalize
// works in float32).
SFLLAVA_HD float normalize_level(int32_t level, double rescale, float mean, float std_) {
#ifdef __CUDA_ARCH__
  const float v = __double2float_rn(__dmul_rn(static_cast<double>(level), rescale));
  return __fdiv_rn(__fsub_rn(v, mean), std_);
#else
  const float v = static_cast<float>(static_cast<double>(level) * rescale);
  return (v - mean) / std_;
#endif
}

}  // namespace sfllava
