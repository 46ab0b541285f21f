// normalize_frames: the published frame preprocessing (docs/method.md#preprocessing)
// fused into
// one op: Pillow's bicubic resize (bit-exact), the CLIP processor's centre crop,
// rescale and normalisation, the NHWC -> NCHW layout change and the cast.
//
// This header is the C++ API (for users of the CMake build) and the host-side
// preparation shared by the CPU and CUDA kernels.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <optional>

#include "../common/normalize_geometry.h"

namespace sfllava {

// ---- C++ API: calls through the dispatcher, like torch.ops.sfllava.* ----

// frames: uint8 (T, H, W, 3) RGB, any strides, CPU or CUDA.
// size: {h, w} of the result.
// resize_mode: squash | crop | pad (see normalize_geometry.h).
// shortest_edge: crop / pad: the resized shortest edge (default min(size));
//                squash: stretch to a square of this side, then centre crop.
// mean, std: 3 values each (std nonzero); rescale_factor: usually 1 / 255.
// pass_order: pillow13 (Pillow >= 13: vertical pass first when the height
//             shrinks by more than twice as many pixels as the width) or
//             pillow12 (Pillow <= 12: always horizontal first).
// dtype: float32, float16 or bfloat16.
// Returns (T, 3, h, w) contiguous, in dtype, on the frames' device.
at::Tensor normalize_frames(const at::Tensor& frames, at::IntArrayRef size,
                            c10::string_view resize_mode, std::optional<int64_t> shortest_edge,
                            at::ArrayRef<double> mean, at::ArrayRef<double> std,
                            double rescale_factor, c10::string_view pass_order,
                            at::ScalarType dtype);

// Same, written into `out` ((T, 3, h, w), contiguous, dtype); returns `out`.
at::Tensor normalize_frames_out(const at::Tensor& frames, at::IntArrayRef size,
                                c10::string_view resize_mode,
                                std::optional<int64_t> shortest_edge, at::ArrayRef<double> mean,
                                at::ArrayRef<double> std, double rescale_factor,
                                c10::string_view pass_order, at::ScalarType dtype,
                                const at::Tensor& out);

// ---- host-side preparation shared by the backends ----

// The validated problem: geometry, normalisation constants and Pillow's
// fixed-point weights for the needed columns and rows (int32, CPU, contiguous;
// layout in NormalizeGeometry).
struct NormalizeProblem {
  NormalizeGeometry geometry;
  NormalizeParams params;
  at::ScalarType dtype = at::kFloat;
  at::Tensor coeffs;
};

ResizeMode parse_resize_mode(c10::string_view name);

// true for pillow13, false for pillow12.
bool parse_pass_order(c10::string_view name);

// Checks every argument (typed errors that name it) and builds the problem.
NormalizeProblem prepare_normalize_frames(const at::Tensor& frames, at::IntArrayRef size,
                                          c10::string_view resize_mode,
                                          std::optional<int64_t> shortest_edge,
                                          at::ArrayRef<double> mean, at::ArrayRef<double> std,
                                          double rescale_factor, c10::string_view pass_order,
                            at::ScalarType dtype);

// The problem of T frames of H x W whose pixels sit at `strides` (elements):
// every check of the arguments but those of the pixels themselves, which the
// caller (`op`, named in the errors) has made.
NormalizeProblem prepare_normalize_problem(const char* op, int64_t T, int64_t H, int64_t W,
                                           FrameStrides strides, at::IntArrayRef size,
                                           c10::string_view resize_mode,
                                           std::optional<int64_t> shortest_edge,
                                           at::ArrayRef<double> mean, at::ArrayRef<double> std,
                                           double rescale_factor, c10::string_view pass_order,
                                           at::ScalarType dtype);

// out's device (that of `input`), dtype, shape and layout.
void check_normalize_out(const char* op, const at::Tensor& out, const NormalizeProblem& problem,
                         const at::Tensor& input, const char* input_name);

// Checks a caller's output buffer against the problem.
void check_normalize_frames_out(const at::Tensor& out, const at::Tensor& frames,
                                const NormalizeProblem& problem);

// A new (T, 3, h, w) result for the problem, on the frames' device.
at::Tensor empty_normalize_frames_out(const at::Tensor& frames, const NormalizeProblem& problem);

// A backend's kernel launcher: writes the problem's pixels into `out`.
using NormalizeRun = void (*)(const at::Tensor& frames, const NormalizeProblem& problem,
                              const at::Tensor& out);

// The backends' entry points, given their launcher: checks, allocation, run.
at::Tensor normalize_frames_with(NormalizeRun run, const at::Tensor& frames, at::IntArrayRef size,
                                 c10::string_view resize_mode,
                                 std::optional<int64_t> shortest_edge, at::ArrayRef<double> mean,
                                 at::ArrayRef<double> std, double rescale_factor,
                                 c10::string_view pass_order, at::ScalarType dtype);
void normalize_frames_out_with(NormalizeRun run, const at::Tensor& frames, at::IntArrayRef size,
                               c10::string_view resize_mode,
                               std::optional<int64_t> shortest_edge, at::ArrayRef<double> mean,
                               at::ArrayRef<double> std, double rescale_factor,
                               c10::string_view pass_order, at::ScalarType dtype,
                               const at::Tensor& out);

}  // namespace sfllava
