// normalize_frames: the two CUDA kernel bodies as functions of (block index,
// thread index), over the geometry of normalize_geometry.h.
//
// The CUDA kernels are thin __global__ wrappers around the bodies below; the
// test-only CPU entry point `_normalize_frames_simt` runs the very same bodies
// in plain loops over the whole grid (docs/development.md#gpu-truth).
//
// First-pass thread map: block x = one intermediate row of one frame
// (t * inter_h + r), block y * blockDim.x + thread x = one intermediate column
// k; the thread computes the three channels of that intermediate pixel.
// Second-pass thread map: block x = one output row of one frame (t * out_h + i),
// block y * blockDim.x + thread x = output column j; the thread computes the
// three channels of that output pixel and writes them to the three planes.
// Consecutive threads touch consecutive columns, so the intermediate and output
// writes (and the vertical taps' reads) are coalesced.
#pragma once

#include <cstdint>

#include "bicubic.h"
#include "normalize_geometry.h"

namespace sfllava {

// First pass: intermediate pixel (r, k) of frame t, three channels.
SFLLAVA_HD void normalize_frames_pass1_thread(int64_t block_x, int64_t block_y, int64_t thread_x,
                                              int64_t block_dim_x, const NormalizeGeometry& g,
                                              const int32_t* coeffs, const uint8_t* frames,
                                              uint8_t* inter) {
  const int64_t k = block_y * block_dim_x + thread_x;
  if (block_x >= g.T * g.inter_h || k >= g.inter_w) {
    return;
  }
  const int64_t t = block_x / g.inter_h;
  const int64_t r = block_x - t * g.inter_h;
  uint8_t* dst = inter + t * g.inter_frame() + r * g.inter_w + k;
  int32_t acc[3] = {kPilRoundingBias, kPilRoundingBias, kPilRoundingBias};
  if (g.vertical_first) {  // resized row row0 + r, canvas column src_col0 + k
    const int32_t* e = coeffs + g.v_off + r * g.v_stride();
    const int32_t* w = e + 2;
    for (int64_t y = 0; y < e[1]; ++y) {
      for (int c = 0; c < 3; ++c) {
        acc[c] += canvas_pixel(g, frames, t, e[0] + y, g.src_col0 + k, c) * w[y];
      }
    }
  } else {  // canvas row src_row0 + r, resized column col0 + k
    const int64_t y = g.src_row0 + r;
    if (!g.need_h) {  // width kept: the resized column is the canvas column
      for (int c = 0; c < 3; ++c) {
        dst[c * g.inter_plane()] =
            static_cast<uint8_t>(canvas_pixel(g, frames, t, y, g.col0 + k, c));
      }
      return;
    }
    const int32_t* e = coeffs + g.h_off + k * g.h_stride();
    const int32_t* w = e + 2;
    for (int64_t x = 0; x < e[1]; ++x) {
      for (int c = 0; c < 3; ++c) {
        acc[c] += canvas_pixel(g, frames, t, y, e[0] + x, c) * w[x];
      }
    }
  }
  for (int c = 0; c < 3; ++c) {
    dst[c * g.inter_plane()] = pil_clip8(acc[c]);
  }
}

// Second pass, normalisation and NCHW write: output pixel (i, j) of frame t.
template <typename scalar_t>
SFLLAVA_HD void normalize_frames_pass2_thread(int64_t block_x, int64_t block_y, int64_t thread_x,
                                              int64_t block_dim_x, const NormalizeGeometry& g,
                                              const NormalizeParams& p, const int32_t* coeffs,
                                              const uint8_t* inter, scalar_t* out) {
  const int64_t j = block_y * block_dim_x + thread_x;
  if (block_x >= g.T * g.out_h || j >= g.out_w) {
    return;
  }
  const int64_t t = block_x / g.out_h;
  const int64_t i = block_x - t * g.out_h;
  const int64_t ri = i + g.crop_top;
  const int64_t rj = j + g.crop_left;
  int32_t level[3] = {0, 0, 0};  // Hugging Face pads a too-small image with zeros
  if (ri >= 0 && ri < g.resized_h && rj >= 0 && rj < g.resized_w) {
    const uint8_t* src = inter + t * g.inter_frame();
    if (g.vertical_first) {  // horizontal taps along intermediate row ri - row0
      const int32_t* e = coeffs + g.h_off + (rj - g.col0) * g.h_stride();
      const int32_t* w = e + 2;
      const uint8_t* row = src + (ri - g.row0) * g.inter_w + (e[0] - g.src_col0);
      for (int c = 0; c < 3; ++c) {
        int32_t acc = kPilRoundingBias;
        for (int64_t x = 0; x < e[1]; ++x) {
          acc += static_cast<int32_t>(row[c * g.inter_plane() + x]) * w[x];
        }
        level[c] = pil_clip8(acc);
      }
    } else if (g.need_v) {  // vertical taps down intermediate column rj - col0
      const int32_t* e = coeffs + g.v_off + (ri - g.row0) * g.v_stride();
      const int32_t* w = e + 2;
      const uint8_t* col = src + (e[0] - g.src_row0) * g.inter_w + (rj - g.col0);
      for (int c = 0; c < 3; ++c) {
        int32_t acc = kPilRoundingBias;
        for (int64_t y = 0; y < e[1]; ++y) {
          acc += static_cast<int32_t>(col[c * g.inter_plane() + y * g.inter_w]) * w[y];
        }
        level[c] = pil_clip8(acc);
      }
    } else {  // height kept: the resized row is the canvas row
      for (int c = 0; c < 3; ++c) {
        level[c] = src[c * g.inter_plane() + (ri - g.src_row0) * g.inter_w + (rj - g.col0)];
      }
    }
  }
  const int64_t plane = g.out_h * g.out_w;
  scalar_t* dst = out + t * 3 * plane + i * g.out_w + j;
  for (int c = 0; c < 3; ++c) {
    dst[c * plane] =
        static_cast<scalar_t>(normalize_level(level[c], p.rescale, p.mean[c], p.std_[c]));
  }
}

}  // namespace sfllava
