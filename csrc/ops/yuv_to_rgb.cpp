// Host-side checks for yuv420_to_rgb, and its C++ API.
#include "yuv_to_rgb.h"

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <string>

#include "../common/checks.h"

namespace sfllava {

namespace {

constexpr const char* kOp = "yuv420_to_rgb";

// A plane of `frames` frames (frames < 0: a single 2-D plane) of rows x cols.
void check_plane(const char* op, const at::Tensor& t, const char* name, int64_t frames,
                 int64_t rows, int64_t cols) {
  const bool batched = frames >= 0;
  SFLLAVA_CHECK_TYPE(op, t.scalar_type() == at::kByte, name, " must be uint8, got ",
                     t.scalar_type());
  SFLLAVA_CHECK_VALUE(op, t.device().is_cpu(), name, " must be on the CPU, got ", t.device());
  SFLLAVA_CHECK_VALUE(op, t.dim() == (batched ? 3 : 2), name, " must be ",
                      batched ? "3-D (frames, rows, columns)" : "2-D (rows, columns)",
                      ", got shape ", t.sizes());
  const int64_t r = t.dim() - 2;
  SFLLAVA_CHECK_VALUE(op, (!batched || t.size(0) == frames) && t.size(r) == rows &&
                              t.size(r + 1) == cols,
                      name, " must be (", batched ? std::to_string(frames) + ", " : "", rows,
                      ", ", cols, ") for the luma plane's size, got ", t.sizes());
  SFLLAVA_CHECK_VALUE(op, t.stride(r + 1) == 1 || t.size(r + 1) <= 1, name,
                      " must have contiguous columns, got strides ", t.strides());
}

}  // namespace

void check_yuv420_planes(const char* op, const at::Tensor& y, const at::Tensor& u,
                         const at::Tensor& v, at::IntArrayRef coeffs, bool batched) {
  SFLLAVA_CHECK_VALUE(op, y.dim() == (batched ? 3 : 2), "y must be ",
                      batched ? "3-D (T, H, W)" : "2-D (H, W)", ", got shape ", y.sizes());
  const int64_t frames = batched ? y.size(0) : -1;
  const int64_t h = y.size(y.dim() - 2);
  const int64_t w = y.size(y.dim() - 1);
  check_plane(op, y, "y", frames, h, w);
  check_plane(op, u, "u", frames, (h + 1) / 2, (w + 1) / 2);
  check_plane(op, v, "v", frames, (h + 1) / 2, (w + 1) / 2);
  SFLLAVA_CHECK_VALUE(op, coeffs.size() == 6,
                      "coeffs must be 6 integers (cy, y_offset, cub, cug, cvg, cvr), got ",
                      coeffs.size());
  for (const int64_t c : coeffs) {
    SFLLAVA_CHECK_VALUE(op, c >= -32768 && c <= 32767,
                        "coeffs must be 16-bit signed integers, got ", coeffs);
  }
}

YuvCoeffs yuv_coeffs(at::IntArrayRef coeffs) {
  return YuvCoeffs{static_cast<int32_t>(coeffs[0]), static_cast<int32_t>(coeffs[1]),
                   static_cast<int32_t>(coeffs[2]), static_cast<int32_t>(coeffs[3]),
                   static_cast<int32_t>(coeffs[4]), static_cast<int32_t>(coeffs[5])};
}

void check_yuv420_to_rgb(const at::Tensor& y, const at::Tensor& u, const at::Tensor& v,
                         at::IntArrayRef coeffs, const at::Tensor& out) {
  check_yuv420_planes(kOp, y, u, v, coeffs, false);
  const int64_t h = y.size(0);
  const int64_t w = y.size(1);
  SFLLAVA_CHECK_TYPE(kOp, out.scalar_type() == at::kByte, "out must be uint8, got ",
                     out.scalar_type());
  SFLLAVA_CHECK_VALUE(kOp, out.device().is_cpu(), "out must be on the CPU, got ", out.device());
  SFLLAVA_CHECK_VALUE(kOp, out.dim() == 3 && out.size(0) == h && out.size(1) == w &&
                               out.size(2) == 3,
                      "out must be (", h, ", ", w, ", 3), got ", out.sizes());
  // The kernel writes each row's 3 * w bytes at once: the channels must be contiguous
  // even in a one-pixel-wide frame (only the pixel stride is free when w == 1).
  SFLLAVA_CHECK_VALUE(kOp, (out.stride(2) == 1 && (out.stride(1) == 3 || w == 1)) || h * w == 0,
                      "out must hold each row's pixels contiguously (strides (*, 3, 1)), got ",
                      out.strides());
  for (const at::Tensor* plane : {&y, &u, &v}) {
    const at::MemOverlapStatus overlap = at::get_overlap_status(out, *plane);
    SFLLAVA_CHECK_VALUE(kOp,
                        overlap != at::MemOverlapStatus::Full &&
                            overlap != at::MemOverlapStatus::Partial,
                        "out must not overlap the input planes");
  }
}

void yuv420_to_rgb_out(const at::Tensor& y, const at::Tensor& u, const at::Tensor& v,
                       at::IntArrayRef coeffs, const at::Tensor& out) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("sfllava::yuv420_to_rgb", "")
                       .typed<void(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                   at::IntArrayRef, const at::Tensor&)>();
  op.call(y, u, v, coeffs, out);
}

}  // namespace sfllava
