// CPU kernel of yuv420_to_rgb: swscale's fixed-point YUV -> RGB24 (the math is in
// csrc/common/yuv_to_rgb.h) on the calling thread: with AVX-512 VBMI, the two
// rows that share a chroma row together, 32 pixels per step; AVX2 on 16-pixel
// steps of one row; the scalar reference for the rest (and SFLLAVA_CPU_ISA caps
// the choice, as for the other CPU kernels).
// The same row converters serve normalize_yuv420_frames (csrc/cpu/yuv_to_rgb_rows.h):
// one row into interleaved RGB, or into separate R, G and B planes.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own
// _mm512_undefined_* placeholders; the warning says nothing about this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "../common/yuv_to_rgb.h"
#include "../ops/yuv_to_rgb.h"
#include "cpu_features.h"
#include "yuv_to_rgb_rows.h"

namespace sfllava {

namespace {

// Pixel x of a row -> its three RGB bytes at rgb, scalar.
inline void convert_pixel_scalar(const uint8_t* y, const uint8_t* u, const uint8_t* v,
                                 int64_t x, const YuvCoeffs& k, uint8_t* rgb) {
  const int64_t c = x / 2;
  const int32_t uu = static_cast<int32_t>(u[c]) * 8 - 1024;
  const int32_t vv = static_cast<int32_t>(v[c]) * 8 - 1024;
  yuv_pixel(yuv_luma(y[x], k), (vv * k.cvr) >> 16,
            sat16(((uu * k.cug) >> 16) + ((vv * k.cvg) >> 16)), (uu * k.cub) >> 16, rgb);
}

// Pixels [first, width) of one row, scalar.
void convert_row_scalar(const uint8_t* y, const uint8_t* u, const uint8_t* v, uint8_t* rgb,
                        int64_t first, int64_t width, const YuvCoeffs& k) {
  for (int64_t x = first; x < width; ++x) convert_pixel_scalar(y, u, v, x, k, rgb + 3 * x);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SFLLAVA_YUV_SIMD 1

// Byte shuffles that interleave 16 R, 16 G and 16 B bytes into 48 RGB bytes:
// output byte j of the block is channel j % 3 of pixel j / 3 (-1 writes zero).
struct InterleaveMasks {
  alignas(16) int8_t bytes[3][3][16];
};

const InterleaveMasks& interleave_masks() {
  static const InterleaveMasks masks = [] {
    InterleaveMasks m{};
    for (int block = 0; block < 3; ++block)
      for (int ch = 0; ch < 3; ++ch)
        for (int j = 0; j < 16; ++j) {
          const int byte = 16 * block + j;
          m.bytes[block][ch][j] = static_cast<int8_t>(byte % 3 == ch ? byte / 3 : -1);
        }
    return m;
  }();
  return masks;
}

// 16 pixels per step on 16-bit lanes, the very instructions swscale uses
// (psllw/psubw, psubsw, pmulhw, paddsw, packuswb), then three byte shuffles
// interleave R, G and B into 48 bytes. Returns the pixels done (a multiple of 16).
__attribute__((target("avx2"))) int64_t convert_row_avx2(const uint8_t* y, const uint8_t* u,
                                                         const uint8_t* v, uint8_t* rgb,
                                                         int64_t width, const YuvCoeffs& k) {
  const __m256i cy = _mm256_set1_epi16(static_cast<int16_t>(k.cy));
  const __m256i y_offset = _mm256_set1_epi16(static_cast<int16_t>(k.y_offset));
  const __m256i uv_offset = _mm256_set1_epi16(1024);
  const __m256i cub = _mm256_set1_epi16(static_cast<int16_t>(k.cub));
  const __m256i cug = _mm256_set1_epi16(static_cast<int16_t>(k.cug));
  const __m256i cvg = _mm256_set1_epi16(static_cast<int16_t>(k.cvg));
  const __m256i cvr = _mm256_set1_epi16(static_cast<int16_t>(k.cvr));
  const auto& shuffle = interleave_masks();
  __m128i m[3][3];
  for (int block = 0; block < 3; ++block)
    for (int ch = 0; ch < 3; ++ch)
      m[block][ch] = _mm_load_si128(reinterpret_cast<const __m128i*>(shuffle.bytes[block][ch]));

  const int64_t done = width / 16 * 16;
  for (int64_t x = 0; x < done; x += 16) {
    const __m256i yy = _mm256_sub_epi16(
        _mm256_slli_epi16(
            _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y + x))), 3),
        y_offset);
    const __m128i u8 = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(u + x / 2)));
    const __m128i v8 = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(v + x / 2)));
    // Each chroma sample twice, for its two pixels, in pixel order.
    const __m256i uu = _mm256_subs_epi16(
        _mm256_slli_epi16(_mm256_set_m128i(_mm_unpackhi_epi16(u8, u8), _mm_unpacklo_epi16(u8, u8)), 3),
        uv_offset);
    const __m256i vv = _mm256_subs_epi16(
        _mm256_slli_epi16(_mm256_set_m128i(_mm_unpackhi_epi16(v8, v8), _mm_unpacklo_epi16(v8, v8)), 3),
        uv_offset);
    const __m256i luma = _mm256_mulhi_epi16(yy, cy);
    const __m256i red = _mm256_adds_epi16(luma, _mm256_mulhi_epi16(vv, cvr));
    const __m256i green = _mm256_adds_epi16(
        luma, _mm256_adds_epi16(_mm256_mulhi_epi16(uu, cug), _mm256_mulhi_epi16(vv, cvg)));
    const __m256i blue = _mm256_adds_epi16(luma, _mm256_mulhi_epi16(uu, cub));
    const __m128i r8 = _mm_packus_epi16(_mm256_castsi256_si128(red), _mm256_extracti128_si256(red, 1));
    const __m128i g8 =
        _mm_packus_epi16(_mm256_castsi256_si128(green), _mm256_extracti128_si256(green, 1));
    const __m128i b8 =
        _mm_packus_epi16(_mm256_castsi256_si128(blue), _mm256_extracti128_si256(blue, 1));
    uint8_t* o = rgb + 3 * x;
    for (int block = 0; block < 3; ++block) {
      const __m128i bytes = _mm_or_si128(
          _mm_or_si128(_mm_shuffle_epi8(r8, m[block][0]), _mm_shuffle_epi8(g8, m[block][1])),
          _mm_shuffle_epi8(b8, m[block][2]));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 16 * block), bytes);
    }
  }
  return done;
}

// Byte permutations that interleave 32 R, 32 G (one zmm: R in bytes 0..31, G in
// 32..63) and 32 B bytes (another zmm) into 96 RGB bytes: output byte j is
// channel j % 3 of pixel j / 3; index p picks R, 32 + p G, 64 + p B.
struct InterleaveIndex {
  alignas(64) uint8_t bytes[2][64];  // output bytes 0..63 and 64..127 (96..127 unused)
  alignas(64) int16_t chroma_pairs[32];  // word lane i takes chroma sample i / 2
};

const InterleaveIndex& interleave_index() {
  static const InterleaveIndex index = [] {
    InterleaveIndex ix{};
    for (int j = 0; j < 128; ++j) {
      const int pixel = (j % 96) / 3;
      ix.bytes[j / 64][j % 64] = static_cast<uint8_t>(32 * (j % 3) + pixel);
    }
    for (int i = 0; i < 32; ++i) ix.chroma_pairs[i] = static_cast<int16_t>(i / 2);
    return ix;
  }();
  return index;
}

#define SFLLAVA_YUV_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi")))

// 32 int16 lanes -> 32 bytes clamped to [0, 255] as packuswb does: negatives to
// 0 (max), then unsigned saturation.
SFLLAVA_YUV_AVX512 inline __m256i bytes32(__m512i lanes) {
  return _mm512_cvtusepi16_epi8(_mm512_max_epi16(lanes, _mm512_setzero_si512()));
}

// One row's R, G and B int16 lanes -> 96 interleaved bytes at o.
SFLLAVA_YUV_AVX512 inline void store_rgb32(__m512i red, __m512i green, __m512i blue,
                                           const __m512i (&index)[2], uint8_t* o) {
  const __m256i r8 = bytes32(red);
  const __m256i g8 = bytes32(green);
  const __m256i b8 = bytes32(blue);
  const __m512i rg = _mm512_inserti64x4(_mm512_castsi256_si512(r8), g8, 1);
  const __m512i bb = _mm512_castsi256_si512(b8);
  _mm512_storeu_si512(o, _mm512_permutex2var_epi8(rg, index[0], bb));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 64),
                      _mm512_castsi512_si256(_mm512_permutex2var_epi8(rg, index[1], bb)));
}

// 16 chroma samples, each twice (for its two pixels): 8 * c - 1024, saturated.
SFLLAVA_YUV_AVX512 inline __m512i chroma32(const uint8_t* c, __m512i dup, __m512i uv_offset) {
  const __m256i c16 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)));
  const __m512i twice = _mm512_permutexvar_epi16(dup, _mm512_castsi256_si512(c16));
  return _mm512_subs_epi16(_mm512_slli_epi16(twice, 3), uv_offset);
}

// 32 luma samples: mulhi(8 * y - y_offset, cy).
SFLLAVA_YUV_AVX512 inline __m512i luma32(const uint8_t* y, __m512i y_offset, __m512i cy) {
  const __m512i y16 = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y)));
  return _mm512_mulhi_epi16(_mm512_sub_epi16(_mm512_slli_epi16(y16, 3), y_offset), cy);
}

// The coefficients, offsets and permutation indices of the AVX-512 paths, in lanes.
struct Lanes512 {
  __m512i cy, y_offset, uv_offset, cub, cug, cvg, cvr, dup;
  __m512i index[2];
};

SFLLAVA_YUV_AVX512 inline Lanes512 lanes512(const YuvCoeffs& k) {
  const InterleaveIndex& ix = interleave_index();
  Lanes512 l;
  l.cy = _mm512_set1_epi16(static_cast<int16_t>(k.cy));
  l.y_offset = _mm512_set1_epi16(static_cast<int16_t>(k.y_offset));
  l.uv_offset = _mm512_set1_epi16(1024);
  l.cub = _mm512_set1_epi16(static_cast<int16_t>(k.cub));
  l.cug = _mm512_set1_epi16(static_cast<int16_t>(k.cug));
  l.cvg = _mm512_set1_epi16(static_cast<int16_t>(k.cvg));
  l.cvr = _mm512_set1_epi16(static_cast<int16_t>(k.cvr));
  l.dup = _mm512_load_si512(ix.chroma_pairs);
  l.index[0] = _mm512_load_si512(ix.bytes[0]);
  l.index[1] = _mm512_load_si512(ix.bytes[1]);
  return l;
}

// The chroma terms of 32 pixels (the same instructions as convert_row_avx2, on
// the same values): R's, G's and B's.
struct Chroma32 {
  __m512i red, green, blue;
};

SFLLAVA_YUV_AVX512 inline Chroma32 chroma_terms32(const uint8_t* u, const uint8_t* v,
                                                  const Lanes512& l) {
  const __m512i uu = chroma32(u, l.dup, l.uv_offset);
  const __m512i vv = chroma32(v, l.dup, l.uv_offset);
  return {_mm512_mulhi_epi16(vv, l.cvr),
          _mm512_adds_epi16(_mm512_mulhi_epi16(uu, l.cug), _mm512_mulhi_epi16(vv, l.cvg)),
          _mm512_mulhi_epi16(uu, l.cub)};
}

// 32 pixels of a row with their chroma terms -> 96 RGB bytes at o.
SFLLAVA_YUV_AVX512 inline void convert32(const uint8_t* y, const Chroma32& c, const Lanes512& l,
                                         uint8_t* o) {
  const __m512i luma = luma32(y, l.y_offset, l.cy);
  store_rgb32(_mm512_adds_epi16(luma, c.red), _mm512_adds_epi16(luma, c.green),
              _mm512_adds_epi16(luma, c.blue), l.index, o);
}

// Rows 2r and 2r + 1, which share chroma row r: the chroma terms are computed
// once per 32 pixels for both rows. Returns the pixels done in each row (a
// multiple of 32).
SFLLAVA_YUV_AVX512 int64_t convert_row_pair_avx512(const uint8_t* y0, const uint8_t* y1,
                                                   const uint8_t* u, const uint8_t* v,
                                                   uint8_t* rgb0, uint8_t* rgb1, int64_t width,
                                                   const YuvCoeffs& k) {
  const Lanes512 l = lanes512(k);
  const int64_t done = width / 32 * 32;
  for (int64_t x = 0; x < done; x += 32) {
    const Chroma32 c = chroma_terms32(u + x / 2, v + x / 2, l);
    convert32(y0 + x, c, l, rgb0 + 3 * x);
    convert32(y1 + x, c, l, rgb1 + 3 * x);
  }
  return done;
}

// 32 int16 lanes -> 32 clamped bytes at o.
SFLLAVA_YUV_AVX512 inline void store_bytes32(__m512i lanes, uint8_t* o) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), bytes32(lanes));
}

// One row into R, G and B planes, 32 pixels per step. Returns the pixels done
// (a multiple of 32).
SFLLAVA_YUV_AVX512 int64_t convert_row_planes_avx512(const uint8_t* y, const uint8_t* u,
                                                     const uint8_t* v, uint8_t* r, uint8_t* g,
                                                     uint8_t* b, int64_t width,
                                                     const YuvCoeffs& k) {
  const Lanes512 l = lanes512(k);
  const int64_t done = width / 32 * 32;
  for (int64_t x = 0; x < done; x += 32) {
    const Chroma32 c = chroma_terms32(u + x / 2, v + x / 2, l);
    const __m512i luma = luma32(y + x, l.y_offset, l.cy);
    store_bytes32(_mm512_adds_epi16(luma, c.red), r + x);
    store_bytes32(_mm512_adds_epi16(luma, c.green), g + x);
    store_bytes32(_mm512_adds_epi16(luma, c.blue), b + x);
  }
  return done;
}

// One row, 32 pixels per step. Returns the pixels done (a multiple of 32).
SFLLAVA_YUV_AVX512 int64_t convert_row_avx512(const uint8_t* y, const uint8_t* u,
                                              const uint8_t* v, uint8_t* rgb, int64_t width,
                                              const YuvCoeffs& k) {
  const Lanes512 l = lanes512(k);
  const int64_t done = width / 32 * 32;
  for (int64_t x = 0; x < done; x += 32) {
    convert32(y + x, chroma_terms32(u + x / 2, v + x / 2, l), l, rgb + 3 * x);
  }
  return done;
}
#endif

// Pixels [0, width) of one row: AVX-512 VBMI steps, AVX2 steps, then scalar.
// Every step starts at an even pixel, so its chroma stays aligned.
void convert_row(const cpu_rows::CpuFeatures& f, const uint8_t* y, const uint8_t* u,
                 const uint8_t* v, uint8_t* rgb, int64_t width, const YuvCoeffs& k) {
  int64_t done = 0;
#ifdef SFLLAVA_YUV_SIMD
  if (f.vbmi) done = convert_row_avx512(y, u, v, rgb, width, k);
  if (f.avx2) {
    const int64_t c = done / 2;
    done += convert_row_avx2(y + done, u + c, v + c, rgb + 3 * done, width - done, k);
  }
#endif
  (void)f;
  convert_row_scalar(y, u, v, rgb, done, width, k);
}

// Rows r (and r + 1 when `pair`, which shares r's chroma row), from pixel 0.
void convert_rows(const cpu_rows::CpuFeatures& f, const uint8_t* y0, const uint8_t* y1,
                  const uint8_t* u, const uint8_t* v, uint8_t* rgb0, uint8_t* rgb1, bool pair,
                  int64_t width, const YuvCoeffs& k) {
  int64_t done = 0;
#ifdef SFLLAVA_YUV_SIMD
  if (pair && f.vbmi) done = convert_row_pair_avx512(y0, y1, u, v, rgb0, rgb1, width, k);
#endif
  // the rest of each row; done is even, so the chroma samples stay aligned
  const int64_t c = done / 2;
  convert_row(f, y0 + done, u + c, v + c, rgb0 + 3 * done, width - done, k);
  if (pair) convert_row(f, y1 + done, u + c, v + c, rgb1 + 3 * done, width - done, k);
}

void yuv420_to_rgb_cpu(const at::Tensor& y, const at::Tensor& u, const at::Tensor& v,
                       at::IntArrayRef coeffs, const at::Tensor& out) {
  check_yuv420_to_rgb(y, u, v, coeffs, out);
  const YuvCoeffs k = yuv_coeffs(coeffs);
  const int64_t h = y.size(0);
  const int64_t w = y.size(1);
  const uint8_t* py = y.const_data_ptr<uint8_t>();
  const uint8_t* pu = u.const_data_ptr<uint8_t>();
  const uint8_t* pv = v.const_data_ptr<uint8_t>();
  uint8_t* po = out.mutable_data_ptr<uint8_t>();
  const cpu_rows::CpuFeatures features = cpu_rows::cpu_features();
  for (int64_t r = 0; r < h; r += 2) {
    const bool pair = r + 1 < h;
    const int64_t r1 = pair ? r + 1 : r;
    convert_rows(features, py + r * y.stride(0), py + r1 * y.stride(0),
                 pu + (r / 2) * u.stride(0), pv + (r / 2) * v.stride(0), po + r * out.stride(0),
                 po + r1 * out.stride(0), pair, w, k);
  }
}

}  // namespace

void cpu_rows::yuv420_row_to_rgb(const CpuFeatures& f, const uint8_t* y, const uint8_t* u,
                                 const uint8_t* v, uint8_t* rgb, int64_t width,
                                 const YuvCoeffs& k) {
  convert_row(f, y, u, v, rgb, width, k);
}

void cpu_rows::yuv420_row_to_planes(const CpuFeatures& f, const uint8_t* y, const uint8_t* u,
                                    const uint8_t* v, uint8_t* r, uint8_t* g, uint8_t* b,
                                    int64_t width, const YuvCoeffs& k) {
  int64_t done = 0;
#ifdef SFLLAVA_YUV_SIMD
  if (f.vbmi) done = convert_row_planes_avx512(y, u, v, r, g, b, width, k);
#endif
  (void)f;
  for (int64_t x = done; x < width; ++x) {
    uint8_t rgb[3];
    convert_pixel_scalar(y, u, v, x, k, rgb);
    r[x] = rgb[0];
    g[x] = rgb[1];
    b[x] = rgb[2];
  }
}

TORCH_LIBRARY_IMPL(sfllava, CPU, m) { m.impl("yuv420_to_rgb", &yuv420_to_rgb_cpu); }

}  // namespace sfllava
