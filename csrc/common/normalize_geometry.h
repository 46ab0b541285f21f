// normalize_frames: where every pixel comes from. The geometry of the published
// preprocessing (docs/method.md, "Preprocessing"), shared by the host-side
// preparation, the CPU kernels and the CUDA kernels.
//
// The frame op reproduces the published preprocessing in one
// pass over uint8 frames:
//   canvas   the frame itself, or (pad) a square of side max(H, W) filled with
//            int(mean * 255) with the frame pasted centred (LLaVA's expand2square);
//   resize   the canvas to (resized_h, resized_w) with Pillow's bicubic filter
//            (csrc/common/bicubic.h) in two passes through an 8-bit intermediate;
//            a pass is skipped when its axis keeps its size. Pillow <= 12 always
//            runs the horizontal pass first (over the canvas rows the vertical pass
//            reads); Pillow >= 13 runs the vertical pass first when the height
//            shrinks by more than twice as many pixels as the width (Pillow PR
//            #9549). The order changes the rounding of the intermediate, so it is
//            part of the problem (`vertical_first`);
//   crop     Hugging Face's centre crop to (out_h, out_w): output (i, j) is
//            resized (i + crop_top, j + crop_left), and 0 outside the resized image
//            (its zero padding when the image is smaller than the crop);
//   normalise float32(level * rescale) then (v - mean) / std, cast to the output
//            dtype, written NCHW.
// Only the resized columns [col0, col0 + cols) and rows [row0, row0 + rows) the
// crop keeps are computed, from canvas rows [src_row0, src_row0 + src_rows) and
// columns [src_col0, src_col0 + src_cols). The intermediate is planar,
// (T, 3, inter_h, inter_w) uint8:
//   horizontal first: canvas rows src_row0.. by resized columns col0..
//                     (inter_h = src_rows, inter_w = cols);
//   vertical first:   resized rows row0.. by canvas columns src_col0..
//                     (inter_h = rows, inter_w = src_cols).
//
#pragma once

#include <cstdint>

#include "bicubic.h"
#include "macros.h"

namespace sfllava {

enum class ResizeMode : int32_t {
  kSquash = 0,  // stretch (to a square of shortest_edge when given, then centre crop)
  kCrop = 1,    // CLIP processor: shortest edge, then centre crop
  kPad = 2,     // expand2square with the mean colour, then as kCrop
};

// Element (= byte) strides of the uint8 frames viewed as (T, H, W, 3).
struct FrameStrides {
  int64_t t = 0, h = 0, w = 0, c = 0;
};

// Layout of the int32 coefficient table (one tensor, built on the host):
//   at h_off, per needed resized column k: lo, count, ksize_h weights   (need_h only)
//   at v_off, per needed resized row r:    lo, count, ksize_v weights   (need_v only)
// lo is a canvas column / row; weights are Pillow's 22-bit fixed point.
struct NormalizeGeometry {
  int64_t T = 0, H = 0, W = 0;
  FrameStrides s;
  ResizeMode mode = ResizeMode::kSquash;
  int64_t canvas_h = 0, canvas_w = 0;
  int64_t pad_top = 0, pad_left = 0;  // frame origin on the canvas
  int32_t fill[3] = {0, 0, 0};        // canvas colour outside the frame (pad)
  int64_t resized_h = 0, resized_w = 0;
  int64_t out_h = 0, out_w = 0;
  int64_t crop_top = 0, crop_left = 0;  // resized coords of output (0, 0); may be < 0
  int64_t row0 = 0, rows = 0;           // resized rows the output needs
  int64_t col0 = 0, cols = 0;           // resized columns the output needs
  int64_t src_row0 = 0, src_rows = 0;   // canvas rows they read
  int64_t src_col0 = 0, src_cols = 0;   // canvas columns they read
  bool need_h = false, need_v = false;  // Pillow's passes
  bool vertical_first = false;          // Pillow >= 13's order (only with both passes)
  int64_t inter_h = 0, inter_w = 0;     // intermediate plane (see above)
  int64_t ksize_h = 0, ksize_v = 0;
  int64_t h_off = 0, v_off = 0, table_size = 0;

  SFLLAVA_HD int64_t h_stride() const { return 2 + ksize_h; }
  SFLLAVA_HD int64_t v_stride() const { return 2 + ksize_v; }
  SFLLAVA_HD int64_t inter_plane() const { return inter_h * inter_w; }
  SFLLAVA_HD int64_t inter_frame() const { return 3 * inter_h * inter_w; }
};

// The CLIP processor's rescale and normalisation constants.
struct NormalizeParams {
  double rescale = 1.0 / 255.0;
  float mean[3] = {0.f, 0.f, 0.f};
  float std_[3] = {1.f, 1.f, 1.f};
};

// Floor division by 2 (Python's //), for crop offsets that may be negative.
SFLLAVA_HD int64_t floor_half(int64_t a) { return a >= 0 ? a / 2 : -((1 - a) / 2); }

// Canvas pixel (y, x), channel c, of frame t: the frame where it lies, the fill
// colour elsewhere.
SFLLAVA_HD int32_t canvas_pixel(const NormalizeGeometry& g, const uint8_t* frames, int64_t t,
                                int64_t y, int64_t x, int c) {
  const int64_t fy = y - g.pad_top;
  const int64_t fx = x - g.pad_left;
  if (fy < 0 || fy >= g.H || fx < 0 || fx >= g.W) {
    return g.fill[c];
  }
  return frames[t * g.s.t + fy * g.s.h + fx * g.s.w + c * g.s.c];
}

}  // namespace sfllava
