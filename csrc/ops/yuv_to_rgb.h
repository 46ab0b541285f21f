// yuv420_to_rgb: decoded YUV 4:2:0 planes -> RGB24, bit-identical to swscale's
// unscaled converter (csrc/common/yuv_to_rgb.h). CPU only: it runs where the
// video decoder runs, on the calling thread (the decode workers already use the
// cores). Host-side checks and the C++ API.
#pragma once

#include <ATen/core/Tensor.h>

#include "../common/yuv_to_rgb.h"

namespace sfllava {

// ---- C++ API: calls through the dispatcher, like torch.ops.sfllava.* ----

// y: uint8 (H, W); u, v: uint8 ((H + 1) / 2, (W + 1) / 2); rows may be strided
// (a decoder's line size), columns contiguous. coeffs: cy, y_offset, cub, cug,
// cvg, cvr. out: uint8 (H, W, 3), pixels contiguous within a row.
void yuv420_to_rgb_out(const at::Tensor& y, const at::Tensor& u, const at::Tensor& v,
                       at::IntArrayRef coeffs, const at::Tensor& out);

// ---- shared by the backends and by normalize_yuv420_frames ----

// y (H, W) and u, v ((H + 1) / 2, (W + 1) / 2) uint8 CPU planes with contiguous
// columns (with a leading frame dimension T when `batched`), and 6 int16 coeffs;
// errors name `op`.
void check_yuv420_planes(const char* op, const at::Tensor& y, const at::Tensor& u,
                         const at::Tensor& v, at::IntArrayRef coeffs, bool batched);

// The checked coeffs as the kernels take them.
YuvCoeffs yuv_coeffs(at::IntArrayRef coeffs);

void check_yuv420_to_rgb(const at::Tensor& y, const at::Tensor& u, const at::Tensor& v,
                         at::IntArrayRef coeffs, const at::Tensor& out);

}  // namespace sfllava
