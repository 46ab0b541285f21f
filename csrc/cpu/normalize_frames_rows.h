// Row primitives of the normalize_frames CPU kernel: Pillow's two bicubic
// passes on rows of bytes, with Pillow's integer arithmetic (22-bit weights,
// int32 sums), so that every version below (scalar, AVX2, AVX-512, AVX-512
// VBMI+VNNI) computes the very same bytes; the fastest one the CPU supports is
// picked at run time.
//
//   HorizontalPass: one row of interleaved RGB bytes (starting at canvas
//     column src_col0) -> the needed resized columns, as three planes of bytes.
//   vertical_pass_row: clip8(bias + sum_y rows[y][q] * w[y]) for a whole row.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../common/bicubic.h"
#include "cpu_features.h"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define SFLLAVA_X86_SIMD 1
#include <immintrin.h>
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own
// _mm512_undefined_* placeholders; the warning says nothing about this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define SFLLAVA_AVX2 __attribute__((target("avx2")))
#define SFLLAVA_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define SFLLAVA_AVX512_VNNI \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni")))
#else
#define SFLLAVA_X86_SIMD 0
#endif

namespace sfllava {
namespace cpu_rows {

// ---- de-interleaving ----

// n RGB pixels -> three planes.
inline void deinterleave_rgb_scalar(const uint8_t* src, int64_t x0, int64_t n, uint8_t* r,
                                    uint8_t* g, uint8_t* b) {
  for (int64_t x = x0; x < n; ++x) {
    r[x] = src[3 * x];
    g[x] = src[3 * x + 1];
    b[x] = src[3 * x + 2];
  }
}

#if SFLLAVA_X86_SIMD
// Byte permutations that de-interleave 64 RGB pixels (192 bytes): plane c's
// byte i is input byte 3i + c, from the first two registers (idx_a) or, where
// 3i + c >= 128, from the third (idx_b under mask_b).
struct DeinterleaveTables {
  alignas(64) uint8_t idx_a[3][64] = {};
  alignas(64) uint8_t idx_b[3][64] = {};
  uint64_t mask_b[3] = {0, 0, 0};
  DeinterleaveTables() {
    for (int c = 0; c < 3; ++c) {
      for (int i = 0; i < 64; ++i) {
        const int s = 3 * i + c;
        idx_a[c][i] = static_cast<uint8_t>(s < 128 ? s : 0);
        idx_b[c][i] = static_cast<uint8_t>(s >= 128 ? s - 128 : 0);
        if (s >= 128) mask_b[c] |= uint64_t{1} << i;
      }
    }
  }
};

inline const DeinterleaveTables& deinterleave_tables() {
  static const DeinterleaveTables tables;
  return tables;
}

SFLLAVA_AVX512_VNNI inline void deinterleave_rgb_vbmi(const uint8_t* src, int64_t n, uint8_t* r,
                                                      uint8_t* g, uint8_t* b) {
  const DeinterleaveTables& t = deinterleave_tables();
  const __m512i a0 = _mm512_load_si512(t.idx_a[0]);
  const __m512i a1 = _mm512_load_si512(t.idx_a[1]);
  const __m512i a2 = _mm512_load_si512(t.idx_a[2]);
  const __m512i b0 = _mm512_load_si512(t.idx_b[0]);
  const __m512i b1 = _mm512_load_si512(t.idx_b[1]);
  const __m512i b2 = _mm512_load_si512(t.idx_b[2]);
  int64_t x = 0;
  for (; x + 64 <= n; x += 64) {
    const uint8_t* p = src + 3 * x;
    const __m512i in0 = _mm512_loadu_si512(p);
    const __m512i in1 = _mm512_loadu_si512(p + 64);
    const __m512i in2 = _mm512_loadu_si512(p + 128);
    _mm512_storeu_si512(r + x, _mm512_mask_permutexvar_epi8(_mm512_permutex2var_epi8(in0, a0, in1),
                                                            t.mask_b[0], b0, in2));
    _mm512_storeu_si512(g + x, _mm512_mask_permutexvar_epi8(_mm512_permutex2var_epi8(in0, a1, in1),
                                                            t.mask_b[1], b1, in2));
    _mm512_storeu_si512(b + x, _mm512_mask_permutexvar_epi8(_mm512_permutex2var_epi8(in0, a2, in1),
                                                            t.mask_b[2], b2, in2));
  }
  deinterleave_rgb_scalar(src, x, n, r, g, b);
}
#endif

inline void deinterleave_rgb(const CpuFeatures& f, const uint8_t* src, int64_t n, uint8_t* r,
                             uint8_t* g, uint8_t* b) {
#if SFLLAVA_X86_SIMD
  if (f.vbmi_vnni) {
    deinterleave_rgb_vbmi(src, n, r, g, b);
    return;
  }
#endif
  (void)f;
  deinterleave_rgb_scalar(src, 0, n, r, g, b);
}

// ---- horizontal pass, per output pixel (portable, AVX2, AVX-512) ----
//
// One vector holds 5 RGB taps (15 bytes, one int32 lane each; lane 15 has
// weight 0) of one output pixel; a column's taps take nv = ceil(ksize / 5)
// vectors at row + offset[k] + 15 v, multiplied by weights repacked per lane.
// The lanes of each channel (c, c+3, ..., c+12) are summed at the end.

constexpr int kLanes = 16;
constexpr int kTapsPerVec = 5;

inline void hpass_pixels_scalar(const uint8_t* __restrict row, const int32_t* __restrict offset,
                                const int32_t* __restrict weights, int64_t nv, int64_t cols,
                                uint8_t* __restrict out_r, uint8_t* __restrict out_g,
                                uint8_t* __restrict out_b) {
  for (int64_t k = 0; k < cols; ++k) {
    const uint8_t* p = row + offset[k];
    const int32_t* w = weights + k * nv * kLanes;
    // uint32 lanes: exact modulo 2^32, and the true sums fit in int32.
    uint32_t acc[kLanes] = {};
    for (int64_t v = 0; v < nv; ++v) {
      for (int l = 0; l < kLanes; ++l) {
        acc[l] += static_cast<uint32_t>(p[v * 3 * kTapsPerVec + l]) *
                  static_cast<uint32_t>(w[v * kLanes + l]);
      }
    }
    const auto bias = static_cast<uint32_t>(kPilRoundingBias);
    out_r[k] = pil_clip8(static_cast<int32_t>(bias + acc[0] + acc[3] + acc[6] + acc[9] + acc[12]));
    out_g[k] = pil_clip8(static_cast<int32_t>(bias + acc[1] + acc[4] + acc[7] + acc[10] + acc[13]));
    out_b[k] = pil_clip8(static_cast<int32_t>(bias + acc[2] + acc[5] + acc[8] + acc[11] + acc[14]));
  }
}

#if SFLLAVA_X86_SIMD
// AVX-512: one zmm per vector of taps; the channel lanes are summed by shifting
// the accumulator down by 3, 6 and 12 lanes, leaving R, G, B in lanes 0..2.
template <int NV>
SFLLAVA_AVX512 void hpass_pixels_avx512(const uint8_t* __restrict row,
                                        const int32_t* __restrict offset,
                                        const int32_t* __restrict weights, int64_t nv_runtime,
                                        int64_t cols, uint8_t* __restrict out_r,
                                        uint8_t* __restrict out_g, uint8_t* __restrict out_b) {
  const int64_t nv = NV > 0 ? NV : nv_runtime;
  const __m512i zero = _mm512_setzero_si512();
  const __m128i bias = _mm_set1_epi32(kPilRoundingBias);
  for (int64_t k = 0; k < cols; ++k) {
    const uint8_t* p = row + offset[k];
    const int32_t* w = weights + k * nv * kLanes;
    __m512i acc = zero;
    for (int64_t v = 0; v < nv; ++v) {
      const __m512i px = _mm512_cvtepu8_epi32(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + v * 3 * kTapsPerVec)));
      acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(px, _mm512_loadu_si512(w + v * kLanes)));
    }
    const __m512i s3 = _mm512_add_epi32(acc, _mm512_alignr_epi32(zero, acc, 3));
    const __m512i s9 = _mm512_add_epi32(s3, _mm512_alignr_epi32(zero, s3, 6));
    const __m512i s = _mm512_add_epi32(s9, _mm512_alignr_epi32(zero, acc, 12));
    // (bias + sum) >> 22, clipped to 0..255 by the saturating packs
    const __m128i v32 =
        _mm_srai_epi32(_mm_add_epi32(_mm512_castsi512_si128(s), bias), kPilPrecisionBits);
    const __m128i v16 = _mm_packs_epi32(v32, v32);
    const auto rgb = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_packus_epi16(v16, v16)));
    out_r[k] = static_cast<uint8_t>(rgb);
    out_g[k] = static_cast<uint8_t>(rgb >> 8);
    out_b[k] = static_cast<uint8_t>(rgb >> 16);
  }
}

// AVX2: the same 16 lanes as two ymm halves, summed per channel in scalar code.
SFLLAVA_AVX2 inline void hpass_pixels_avx2(const uint8_t* __restrict row,
                                           const int32_t* __restrict offset,
                                           const int32_t* __restrict weights, int64_t nv,
                                           int64_t cols, uint8_t* __restrict out_r,
                                           uint8_t* __restrict out_g, uint8_t* __restrict out_b) {
  alignas(32) int32_t lanes[kLanes];
  for (int64_t k = 0; k < cols; ++k) {
    const uint8_t* p = row + offset[k];
    const int32_t* w = weights + k * nv * kLanes;
    __m256i lo = _mm256_setzero_si256();
    __m256i hi = _mm256_setzero_si256();
    for (int64_t v = 0; v < nv; ++v) {
      const __m128i b =
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + v * 3 * kTapsPerVec));
      const __m256i wlo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + v * kLanes));
      const __m256i whi =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + v * kLanes + 8));
      lo = _mm256_add_epi32(lo, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(b), wlo));
      hi = _mm256_add_epi32(hi,
                            _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8)), whi));
    }
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), lo);
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + 8), hi);
    const auto u = [&](int l) { return static_cast<uint32_t>(lanes[l]); };
    const auto bias = static_cast<uint32_t>(kPilRoundingBias);
    out_r[k] = pil_clip8(static_cast<int32_t>(bias + u(0) + u(3) + u(6) + u(9) + u(12)));
    out_g[k] = pil_clip8(static_cast<int32_t>(bias + u(1) + u(4) + u(7) + u(10) + u(13)));
    out_b[k] = pil_clip8(static_cast<int32_t>(bias + u(2) + u(5) + u(8) + u(11) + u(14)));
  }
}
#endif  // SFLLAVA_X86_SIMD

// ---- horizontal pass, 16 output columns at a time (AVX-512 VBMI + VNNI) ----
//
// The row is first de-interleaved into planes. A group of up to 16 consecutive
// output columns whose taps all lie within 128 bytes of the plane takes that
// window in two zmm; per pair of taps, one two-source byte permutation gathers,
// for each column (one int32 lane), its two pixels as two int16 (the other
// bytes zeroed), and VNNI multiply-adds them with the two weights. Pillow's
// 23-bit weights do not fit int16, so each is split w = wh * 2^11 + wl with
// 0 <= wl < 2^11, the two halves accumulated apart and recombined as
// (sum_h << 11) + sum_l: the same int32 sum, exactly.

constexpr int kGroup = 16;
constexpr int kWindow = 128;

struct GatherPair {  // one pair of taps of one group: 192 bytes
  uint8_t idx[64];   // byte 4k: first tap of column k, byte 4k + 2: second tap
  int16_t wh[32];    // words 2k, 2k + 1: high weight halves of column k
  int16_t wl[32];    // low weight halves
};

struct GatherGroup {
  int64_t first = 0;  // first output column
  int64_t cols = 0;   // output columns (<= 16)
  int64_t base = 0;   // window start in the plane
  int64_t pairs = 0;
  int64_t data = 0;  // index of its first GatherPair
};

#if SFLLAVA_X86_SIMD
SFLLAVA_AVX512_VNNI inline void hpass_gather_vnni(const uint8_t* const* planes,
                                                  const GatherGroup* groups, int64_t num_groups,
                                                  const GatherPair* data, uint8_t* const* out) {
  const __m512i bias = _mm512_set1_epi32(kPilRoundingBias);
  const __m512i zero = _mm512_setzero_si512();
  constexpr uint64_t kEvenBytes = 0x5555555555555555ull;  // low byte of every int16
  for (int64_t gi = 0; gi < num_groups; ++gi) {
    const GatherGroup& grp = groups[gi];
    const GatherPair* pairs = data + grp.data;
    const auto store_mask = static_cast<__mmask16>((1u << grp.cols) - 1u);
    // The three channels side by side: each pair's indices and weights are loaded
    // once, and six independent accumulator chains hide the multiply-add latency.
    __m512i lo[3], hi[3], acc_h[3], acc_l[3];
    for (int c = 0; c < 3; ++c) {
      lo[c] = _mm512_loadu_si512(planes[c] + grp.base);
      hi[c] = _mm512_loadu_si512(planes[c] + grp.base + 64);
      acc_h[c] = acc_l[c] = zero;
    }
    for (int64_t p = 0; p < grp.pairs; ++p) {
      const __m512i idx = _mm512_loadu_si512(pairs[p].idx);
      const __m512i wh = _mm512_loadu_si512(pairs[p].wh);
      const __m512i wl = _mm512_loadu_si512(pairs[p].wl);
      for (int c = 0; c < 3; ++c) {
        const __m512i px = _mm512_maskz_permutex2var_epi8(kEvenBytes, lo[c], idx, hi[c]);
        acc_h[c] = _mm512_dpwssd_epi32(acc_h[c], px, wh);
        acc_l[c] = _mm512_dpwssd_epi32(acc_l[c], px, wl);
      }
    }
    for (int c = 0; c < 3; ++c) {
      const __m512i sum =
          _mm512_add_epi32(_mm512_add_epi32(_mm512_slli_epi32(acc_h[c], 11), acc_l[c]), bias);
      const __m512i v = _mm512_max_epi32(_mm512_srai_epi32(sum, kPilPrecisionBits), zero);
      _mm_mask_storeu_epi8(out[c] + grp.first, store_mask, _mm512_cvtusepi32_epi8(v));
    }
  }
}
#endif

// The horizontal pass of one problem: Pillow's weights of the needed output
// columns, repacked for the fastest row primitive this CPU has.
class HorizontalPass {
 public:
  HorizontalPass() = default;

  // records: per output column, (lo, count, ksize weights) with lo a canvas
  // column >= src_col0; rows given to run() start at canvas column src_col0.
  HorizontalPass(const CpuFeatures& f, const int32_t* records, int64_t stride, int64_t cols,
                 int64_t ksize, int64_t src_col0, int64_t src_cols)
      : features_(f), cols_(cols), src_cols_(src_cols) {
    gather_ = f.vbmi_vnni && build_groups(records, stride, src_col0);
    if (!gather_) build_pixels(records, stride, ksize, src_col0);
  }

  // Bytes run() may read from its row.
  int64_t reach() const { return gather_ ? 3 * src_cols_ : max_read_; }
  // Bytes of each plane buffer run() needs (gather version).
  int64_t plane_bytes() const { return src_cols_ + kWindow + 64; }

  // Whether run_planes() is available: the gather version, which works on planes.
  bool takes_planes() const { return gather_; }

  // planes: R, G and B of the row from canvas column src_col0, plane_bytes()
  // readable each (the columns past src_cols carry zero weight). Writes `cols`
  // bytes to each of r, g, b. Only where takes_planes().
  void run_planes(const uint8_t* const* planes, uint8_t* r, uint8_t* g, uint8_t* b) const {
#if SFLLAVA_X86_SIMD
    uint8_t* out[3] = {r, g, b};
    hpass_gather_vnni(planes, groups_.data(), static_cast<int64_t>(groups_.size()),
                      pairs_.data(), out);
#else
    (void)planes, (void)r, (void)g, (void)b;
#endif
  }

  // row: interleaved RGB from canvas column src_col0, reach() bytes readable.
  // planes: 3 * plane_bytes() scratch. Writes `cols` bytes to each of r, g, b.
  void run(const uint8_t* row, uint8_t* planes, uint8_t* r, uint8_t* g, uint8_t* b) const {
#if SFLLAVA_X86_SIMD
    if (gather_) {
      const int64_t pb = plane_bytes();
      uint8_t* p[3] = {planes, planes + pb, planes + 2 * pb};
      deinterleave_rgb_vbmi(row, src_cols_, p[0], p[1], p[2]);
      run_planes(p, r, g, b);
      return;
    }
    if (features_.avx512) {
      switch (nv_) {
        case 1: return hpass_pixels_avx512<1>(row, off(), wts(), nv_, cols_, r, g, b);
        case 2: return hpass_pixels_avx512<2>(row, off(), wts(), nv_, cols_, r, g, b);
        case 3: return hpass_pixels_avx512<3>(row, off(), wts(), nv_, cols_, r, g, b);
        case 4: return hpass_pixels_avx512<4>(row, off(), wts(), nv_, cols_, r, g, b);
        case 5: return hpass_pixels_avx512<5>(row, off(), wts(), nv_, cols_, r, g, b);
        case 6: return hpass_pixels_avx512<6>(row, off(), wts(), nv_, cols_, r, g, b);
        case 8: return hpass_pixels_avx512<8>(row, off(), wts(), nv_, cols_, r, g, b);
        default: return hpass_pixels_avx512<0>(row, off(), wts(), nv_, cols_, r, g, b);
      }
    }
    if (features_.avx2) return hpass_pixels_avx2(row, off(), wts(), nv_, cols_, r, g, b);
#endif
    (void)planes;
    hpass_pixels_scalar(row, off(), wts(), nv_, cols_, r, g, b);
  }

 private:
  const int32_t* off() const { return offset_.data(); }
  const int32_t* wts() const { return weights_.data(); }

  void build_pixels(const int32_t* records, int64_t stride, int64_t ksize, int64_t src_col0) {
    nv_ = (ksize + kTapsPerVec - 1) / kTapsPerVec;
    offset_.resize(cols_);
    weights_.assign(cols_ * nv_ * kLanes, 0);
    for (int64_t k = 0; k < cols_; ++k) {
      const int32_t* e = records + k * stride;
      offset_[k] = static_cast<int32_t>(3 * (e[0] - src_col0));
      for (int64_t v = 0; v < nv_; ++v) {
        for (int l = 0; l < 3 * kTapsPerVec; ++l) {
          const int64_t tap = v * kTapsPerVec + l / 3;
          weights_[(k * nv_ + v) * kLanes + l] = tap < e[1] ? e[2 + tap] : 0;
        }
      }
      max_read_ = std::max<int64_t>(max_read_, offset_[k] + 3 * kTapsPerVec * (nv_ - 1) + kLanes);
    }
  }

  // Groups of consecutive columns whose taps fit one 128-byte window; false
  // when a single column's taps do not (a shrink by more than ~32x).
  bool build_groups(const int32_t* records, int64_t stride, int64_t src_col0) {
    auto lo = [&](int64_t k) { return records[k * stride] - src_col0; };
    auto count = [&](int64_t k) { return static_cast<int64_t>(records[k * stride + 1]); };
    for (int64_t k0 = 0; k0 < cols_;) {
      if (count(k0) > kWindow) return false;
      GatherGroup grp;
      grp.first = k0;
      grp.base = lo(k0);
      grp.cols = 1;
      while (grp.cols < kGroup && k0 + grp.cols < cols_ &&
             lo(k0 + grp.cols) + count(k0 + grp.cols) - grp.base <= kWindow) {
        ++grp.cols;
      }
      int64_t taps = 0;
      for (int64_t k = k0; k < k0 + grp.cols; ++k) taps = std::max(taps, count(k));
      grp.pairs = (taps + 1) / 2;
      grp.data = static_cast<int64_t>(pairs_.size());
      for (int64_t p = 0; p < grp.pairs; ++p) {
        GatherPair pair;
        std::memset(&pair, 0, sizeof(pair));
        for (int64_t k = 0; k < grp.cols; ++k) {
          const int32_t* e = records + (k0 + k) * stride;
          for (int64_t half = 0; half < 2; ++half) {
            const int64_t tap = 2 * p + half;
            if (tap >= e[1]) continue;  // index 0, weight 0
            const int32_t w = e[2 + tap];
            const int32_t wh = w >> 11;  // arithmetic: floor
            pair.idx[4 * k + 2 * half] = static_cast<uint8_t>(lo(k0 + k) + tap - grp.base);
            pair.wh[2 * k + half] = static_cast<int16_t>(wh);
            pair.wl[2 * k + half] = static_cast<int16_t>(w - wh * 2048);
          }
        }
        pairs_.push_back(pair);
      }
      groups_.push_back(grp);
      k0 += grp.cols;
    }
    return true;
  }

  CpuFeatures features_;
  int64_t cols_ = 0, src_cols_ = 0;
  bool gather_ = false;
  // per-pixel version
  int64_t nv_ = 0, max_read_ = 0;
  std::vector<int32_t> offset_, weights_;
  // gather version
  std::vector<GatherGroup> groups_;
  std::vector<GatherPair> pairs_;
};

// ---- vertical pass ----

// out[q] = clip8(bias + sum_y rows[y][q] * w[y]) for q in [q0, n). Portable.
inline void vpass_row_scalar(const uint8_t* const* __restrict rows, const int32_t* __restrict w,
                             int64_t count, int64_t q0, int64_t n, uint8_t* __restrict out) {
  for (int64_t q = q0; q < n; ++q) {
    int32_t acc = kPilRoundingBias;
    for (int64_t y = 0; y < count; ++y) acc += static_cast<int32_t>(rows[y][q]) * w[y];
    out[q] = pil_clip8(acc);
  }
}

#if SFLLAVA_X86_SIMD
// 16 bytes as 16 int32 lanes.
SFLLAVA_AVX512 inline __m512i load_u8x16(const uint8_t* p) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// 16 finished accumulators -> (acc >> 22) clipped to 0..255 (max with 0, then
// unsigned saturation to bytes).
SFLLAVA_AVX512 inline void store_clip8x16(uint8_t* dst, __m512i acc) {
  const __m512i v =
      _mm512_max_epi32(_mm512_srai_epi32(acc, kPilPrecisionBits), _mm512_setzero_si512());
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm512_cvtusepi32_epi8(v));
}

// AVX-512: blocks of 64 bytes keep four zmm accumulators across the taps.
SFLLAVA_AVX512 inline void vpass_row_avx512(const uint8_t* const* __restrict rows,
                                            const int32_t* __restrict w, int64_t count,
                                            int64_t n, uint8_t* __restrict out) {
  const __m512i bias = _mm512_set1_epi32(kPilRoundingBias);
  int64_t q = 0;
  for (; q + 64 <= n; q += 64) {
    __m512i a0 = bias, a1 = bias, a2 = bias, a3 = bias;
    for (int64_t y = 0; y < count; ++y) {
      const uint8_t* r = rows[y] + q;
      const __m512i wy = _mm512_set1_epi32(w[y]);
      a0 = _mm512_add_epi32(a0, _mm512_mullo_epi32(load_u8x16(r), wy));
      a1 = _mm512_add_epi32(a1, _mm512_mullo_epi32(load_u8x16(r + 16), wy));
      a2 = _mm512_add_epi32(a2, _mm512_mullo_epi32(load_u8x16(r + 32), wy));
      a3 = _mm512_add_epi32(a3, _mm512_mullo_epi32(load_u8x16(r + 48), wy));
    }
    store_clip8x16(out + q, a0);
    store_clip8x16(out + q + 16, a1);
    store_clip8x16(out + q + 32, a2);
    store_clip8x16(out + q + 48, a3);
  }
  for (; q + 16 <= n; q += 16) {
    __m512i a = bias;
    for (int64_t y = 0; y < count; ++y) {
      a = _mm512_add_epi32(a, _mm512_mullo_epi32(load_u8x16(rows[y] + q), _mm512_set1_epi32(w[y])));
    }
    store_clip8x16(out + q, a);
  }
  vpass_row_scalar(rows, w, count, q, n, out);
}

// 8 bytes as 8 int32 lanes.
SFLLAVA_AVX2 inline __m256i load_u8x8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// AVX2: blocks of 32 bytes in four ymm accumulators, clipped by saturating packs.
SFLLAVA_AVX2 inline void vpass_row_avx2(const uint8_t* const* __restrict rows,
                                        const int32_t* __restrict w, int64_t count, int64_t n,
                                        uint8_t* __restrict out) {
  const __m256i bias = _mm256_set1_epi32(kPilRoundingBias);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  int64_t q = 0;
  for (; q + 32 <= n; q += 32) {
    __m256i a0 = bias, a1 = bias, a2 = bias, a3 = bias;
    for (int64_t y = 0; y < count; ++y) {
      const uint8_t* r = rows[y] + q;
      const __m256i wy = _mm256_set1_epi32(w[y]);
      a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(load_u8x8(r), wy));
      a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(load_u8x8(r + 8), wy));
      a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(load_u8x8(r + 16), wy));
      a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(load_u8x8(r + 24), wy));
    }
    const __m256i s01 = _mm256_packs_epi32(_mm256_srai_epi32(a0, kPilPrecisionBits),
                                           _mm256_srai_epi32(a1, kPilPrecisionBits));
    const __m256i s23 = _mm256_packs_epi32(_mm256_srai_epi32(a2, kPilPrecisionBits),
                                           _mm256_srai_epi32(a3, kPilPrecisionBits));
    // the packs interleave 128-bit lanes; the permutation restores byte order
    const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(s01, s23), order);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + q), bytes);
  }
  vpass_row_scalar(rows, w, count, q, n, out);
}
#endif  // SFLLAVA_X86_SIMD

// ---- the level table ----

#if SFLLAVA_X86_SIMD
// dst[k] = table[level[k]] for a 256-entry table of 16-bit values (fp16 / bf16
// bit patterns), 32 outputs per step: four two-register word permutations
// cover table entries 0..63, 64..127, 128..191 and 192..255, and bits 6 and 7
// of each level pick among them. Returns the outputs done (a multiple of 32).
SFLLAVA_AVX512 inline int64_t lookup_u16_avx512(uint16_t* __restrict dst,
                                                const uint8_t* __restrict level, int64_t n,
                                                const uint16_t* __restrict table) {
  __m512i t[8];
  for (int i = 0; i < 8; ++i) t[i] = _mm512_loadu_si512(table + 32 * i);
  const __m512i bit6 = _mm512_set1_epi16(64);
  const __m512i bit7 = _mm512_set1_epi16(128);
  int64_t k = 0;
  for (; k + 32 <= n; k += 32) {
    const __m512i lv =
        _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(level + k)));
    const __m512i q0 = _mm512_permutex2var_epi16(t[0], lv, t[1]);
    const __m512i q1 = _mm512_permutex2var_epi16(t[2], lv, t[3]);
    const __m512i q2 = _mm512_permutex2var_epi16(t[4], lv, t[5]);
    const __m512i q3 = _mm512_permutex2var_epi16(t[6], lv, t[7]);
    const __mmask32 m6 = _mm512_test_epi16_mask(lv, bit6);
    const __mmask32 m7 = _mm512_test_epi16_mask(lv, bit7);
    const __m512i low = _mm512_mask_blend_epi16(m6, q0, q1);
    const __m512i high = _mm512_mask_blend_epi16(m6, q2, q3);
    _mm512_storeu_si512(dst + k, _mm512_mask_blend_epi16(m7, low, high));
  }
  return k;
}
#endif

inline int64_t lookup_u16(const CpuFeatures& f, uint16_t* dst, const uint8_t* level, int64_t n,
                          const uint16_t* table) {
#if SFLLAVA_X86_SIMD
  if (f.avx512) return lookup_u16_avx512(dst, level, n, table);
#endif
  (void)f, (void)dst, (void)level, (void)n, (void)table;
  return 0;
}

inline void vertical_pass_row(const CpuFeatures& f, const uint8_t* const* rows, const int32_t* w,
                              int64_t count, int64_t n, uint8_t* out) {
#if SFLLAVA_X86_SIMD
  if (f.avx512) return vpass_row_avx512(rows, w, count, n, out);
  if (f.avx2) return vpass_row_avx2(rows, w, count, n, out);
#endif
  (void)f;
  vpass_row_scalar(rows, w, count, 0, n, out);
}

}  // namespace cpu_rows
}  // namespace sfllava
