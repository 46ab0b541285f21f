// CPU kernel of yuv420_to_rgb: swscale's fixed-point YUV -> RGB24 (the math is in
// csrc/common/yuv_to_rgb.h), one row at a time on the calling thread: AVX2 on
// 16-pixel steps where the CPU has it, the scalar reference for the rest.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "../common/yuv_to_rgb.h"
#include "../ops/yuv_to_rgb.h"

namespace sfllava {

namespace {

// Pixels [first, width) of one row, scalar.
void convert_row_scalar(const uint8_t* y, const uint8_t* u, const uint8_t* v, uint8_t* rgb,
                        int64_t first, int64_t width, const YuvCoeffs& k) {
  for (int64_t x = first; x < width; ++x) {
    const int64_t c = x / 2;
    const int32_t uu = static_cast<int32_t>(u[c]) * 8 - 1024;
    const int32_t vv = static_cast<int32_t>(v[c]) * 8 - 1024;
    yuv_pixel(yuv_luma(y[x], k), (vv * k.cvr) >> 16,
              sat16(((uu * k.cug) >> 16) + ((vv * k.cvg) >> 16)), (uu * k.cub) >> 16,
              rgb + 3 * x);
  }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SFLLAVA_YUV_AVX2 1

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

bool have_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
#endif

void convert_row(const uint8_t* y, const uint8_t* u, const uint8_t* v, uint8_t* rgb,
                 int64_t width, const YuvCoeffs& k) {
  int64_t done = 0;
#ifdef SFLLAVA_YUV_AVX2
  if (have_avx2()) done = convert_row_avx2(y, u, v, rgb, width, k);
#endif
  convert_row_scalar(y, u, v, rgb, done, width, k);
}

void yuv420_to_rgb_cpu(const at::Tensor& y, const at::Tensor& u, const at::Tensor& v,
                       at::IntArrayRef coeffs, const at::Tensor& out) {
  check_yuv420_to_rgb(y, u, v, coeffs, out);
  const YuvCoeffs k{static_cast<int32_t>(coeffs[0]), static_cast<int32_t>(coeffs[1]),
                    static_cast<int32_t>(coeffs[2]), static_cast<int32_t>(coeffs[3]),
                    static_cast<int32_t>(coeffs[4]), static_cast<int32_t>(coeffs[5])};
  const int64_t h = y.size(0);
  const int64_t w = y.size(1);
  const uint8_t* py = y.const_data_ptr<uint8_t>();
  const uint8_t* pu = u.const_data_ptr<uint8_t>();
  const uint8_t* pv = v.const_data_ptr<uint8_t>();
  uint8_t* po = out.mutable_data_ptr<uint8_t>();
  for (int64_t r = 0; r < h; ++r) {
    convert_row(py + r * y.stride(0), pu + (r / 2) * u.stride(0), pv + (r / 2) * v.stride(0),
                po + r * out.stride(0), w, k);
  }
}

}  // namespace

TORCH_LIBRARY_IMPL(sfllava, CPU, m) { m.impl("yuv420_to_rgb", &yuv420_to_rgb_cpu); }

}  // namespace sfllava
