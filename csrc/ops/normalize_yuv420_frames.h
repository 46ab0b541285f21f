// normalize_yuv420_frames: decoded YUV 4:2:0 frames -> normalised pixels, the
// bytes of normalize_frames(yuv420_to_rgb(frame)) for every frame, with each
// RGB row made in cache just before the resize reads it (no RGB frame is ever
// stored). CPU only: it serves the CPU path from a video file, where the
// decoder's planes are at hand. Host-side checks and the C++ API.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <optional>

#include "normalize_frames.h"

namespace sfllava {

// ---- C++ API: calls through the dispatcher, like torch.ops.sfllava.* ----

// y: uint8 (T, H, W); u, v: uint8 (T, (H + 1) / 2, (W + 1) / 2), rows may be
// strided, columns contiguous; coeffs: yuv420_to_rgb's six. The other
// arguments and the result are normalize_frames'.
at::Tensor normalize_yuv420_frames(const at::Tensor& y, const at::Tensor& u, const at::Tensor& v,
                                   at::IntArrayRef coeffs, at::IntArrayRef size,
                                   c10::string_view resize_mode,
                                   std::optional<int64_t> shortest_edge,
                                   at::ArrayRef<double> mean, at::ArrayRef<double> std,
                                   double rescale_factor, c10::string_view pass_order,
                                   at::ScalarType dtype);

at::Tensor normalize_yuv420_frames_out(const at::Tensor& y, const at::Tensor& u,
                                       const at::Tensor& v, at::IntArrayRef coeffs,
                                       at::IntArrayRef size, c10::string_view resize_mode,
                                       std::optional<int64_t> shortest_edge,
                                       at::ArrayRef<double> mean, at::ArrayRef<double> std,
                                       double rescale_factor, c10::string_view pass_order,
                                       at::ScalarType dtype, const at::Tensor& out);

// ---- shared by the backend ----

// Checks the planes and every other argument; the problem of their frames.
NormalizeProblem prepare_normalize_yuv420_frames(
    const at::Tensor& y, const at::Tensor& u, const at::Tensor& v, at::IntArrayRef coeffs,
    at::IntArrayRef size, c10::string_view resize_mode, std::optional<int64_t> shortest_edge,
    at::ArrayRef<double> mean, at::ArrayRef<double> std, double rescale_factor,
    c10::string_view pass_order, at::ScalarType dtype);

// out's dtype, shape, layout and device, and that it overlaps no plane.
void check_normalize_yuv420_frames_out(const at::Tensor& out, const at::Tensor& y,
                                       const at::Tensor& u, const at::Tensor& v,
                                       const NormalizeProblem& problem);

}  // namespace sfllava
