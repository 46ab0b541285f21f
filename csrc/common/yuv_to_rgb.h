// YUV 4:2:0 -> RGB24 with swscale's fixed-point arithmetic, one pixel at a time:
// the scalar math of csrc/cpu/yuv_to_rgb_kernel.cpp, which its AVX2 and AVX-512
// paths repeat instruction for instruction.
//
// swscale's unscaled converter (libswscale/x86/yuv_2_rgb.asm, used for a
// same-size YUV420P -> RGB24 with an even height) works on 16-bit lanes:
//   y' = 8 * Y - y_offset            u' = 8 * U - 1024       v' = 8 * V - 1024
//   l  = mulhi(y', cy)               (mulhi(a, b) = (a * b) >> 16, floor)
//   R  = l + mulhi(v', cvr)
//   G  = l + sat16(mulhi(u', cug) + mulhi(v', cvg))
//   B  = l + mulhi(u', cub)
// each sum saturated to int16, then clamped to [0, 255]. Two horizontally
// adjacent pixels share one chroma sample; rows 2r and 2r + 1 share chroma row r.
// The coefficients come from the colour matrix and range (sfllava_ext/ops/yuv420_to_rgb.py).
#pragma once

#include <cstdint>

namespace sfllava {

struct YuvCoeffs {
  int32_t cy, y_offset, cub, cug, cvg, cvr;
};

inline int32_t sat16(int32_t x) { return x < -32768 ? -32768 : (x > 32767 ? 32767 : x); }
inline uint8_t clamp_u8(int32_t x) {
  return static_cast<uint8_t>(x < 0 ? 0 : (x > 255 ? 255 : x));
}

// One luma sample with its chroma terms -> three RGB bytes.
inline void yuv_pixel(int32_t luma, int32_t red, int32_t green, int32_t blue, uint8_t* rgb) {
  rgb[0] = clamp_u8(sat16(luma + red));
  rgb[1] = clamp_u8(sat16(luma + green));
  rgb[2] = clamp_u8(sat16(luma + blue));
}

inline int32_t yuv_luma(uint8_t y, const YuvCoeffs& k) {
  // psubw wraps; 8 * Y - y_offset stays within int16 for every offset swscale makes.
  const int32_t yy = static_cast<int16_t>(static_cast<int32_t>(y) * 8 - k.y_offset);
  return (yy * k.cy) >> 16;
}

}  // namespace sfllava
