// One row of YUV 4:2:0 -> RGB24 with swscale's fixed-point arithmetic
// (csrc/common/yuv_to_rgb.h): the row converter of the yuv420_to_rgb kernel
// (csrc/cpu/yuv_to_rgb_kernel.cpp), for kernels that convert each row in cache
// just before they use it (normalize_yuv420_frames).
#pragma once

#include <cstdint>

#include "../common/yuv_to_rgb.h"
#include "cpu_features.h"

namespace sfllava {
namespace cpu_rows {

// Pixels [0, width) of a row: y holds `width` luma samples, u and v its chroma
// row's (width + 1) / 2 samples; rgb receives 3 * width bytes.
void yuv420_row_to_rgb(const CpuFeatures& f, const uint8_t* y, const uint8_t* u,
                       const uint8_t* v, uint8_t* rgb, int64_t width, const YuvCoeffs& k);

// The same pixels as three planes: R, G and B bytes, `width` each.
void yuv420_row_to_planes(const CpuFeatures& f, const uint8_t* y, const uint8_t* u,
                          const uint8_t* v, uint8_t* r, uint8_t* g, uint8_t* b, int64_t width,
                          const YuvCoeffs& k);

}  // namespace cpu_rows
}  // namespace sfllava
