// Host-side checks and preparation for normalize_yuv420_frames, and its C++ API.
#include "normalize_yuv420_frames.h"

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include "../common/checks.h"
#include "yuv_to_rgb.h"

namespace sfllava {

namespace {
constexpr const char* kOp = "normalize_yuv420_frames";
}  // namespace

NormalizeProblem prepare_normalize_yuv420_frames(
    const at::Tensor& y, const at::Tensor& u, const at::Tensor& v, at::IntArrayRef coeffs,
    at::IntArrayRef size, c10::string_view resize_mode, std::optional<int64_t> shortest_edge,
    at::ArrayRef<double> mean, at::ArrayRef<double> std, double rescale_factor,
    c10::string_view pass_order, at::ScalarType dtype) {
  check_yuv420_planes(kOp, y, u, v, coeffs, true);
  SFLLAVA_CHECK_VALUE(kOp, y.size(1) > 0 && y.size(2) > 0, "y has zero-sized frames (shape ",
                      y.sizes(), ")");
  // The kernel reads the planes itself; the strides of an RGB frame mean nothing here.
  return prepare_normalize_problem(kOp, y.size(0), y.size(1), y.size(2), FrameStrides{},
                                   size, resize_mode, shortest_edge, mean, std, rescale_factor,
                                   pass_order, dtype);
}

void check_normalize_yuv420_frames_out(const at::Tensor& out, const at::Tensor& y,
                                       const at::Tensor& u, const at::Tensor& v,
                                       const NormalizeProblem& problem) {
  check_normalize_out(kOp, out, problem, y, "y");
  for (const at::Tensor* plane : {&y, &u, &v}) at::assert_no_overlap(out, *plane);
}

at::Tensor normalize_yuv420_frames(const at::Tensor& y, const at::Tensor& u, const at::Tensor& v,
                                   at::IntArrayRef coeffs, at::IntArrayRef size,
                                   c10::string_view resize_mode,
                                   std::optional<int64_t> shortest_edge,
                                   at::ArrayRef<double> mean, at::ArrayRef<double> std,
                                   double rescale_factor, c10::string_view pass_order,
                                   at::ScalarType dtype) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("sfllava::normalize_yuv420_frames", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                            at::IntArrayRef, at::IntArrayRef, c10::string_view,
                            std::optional<int64_t>, at::ArrayRef<double>, at::ArrayRef<double>,
                            double, c10::string_view, at::ScalarType)>();
  return op.call(y, u, v, coeffs, size, resize_mode, shortest_edge, mean, std, rescale_factor,
                 pass_order, dtype);
}

at::Tensor normalize_yuv420_frames_out(const at::Tensor& y, const at::Tensor& u,
                                       const at::Tensor& v, at::IntArrayRef coeffs,
                                       at::IntArrayRef size, c10::string_view resize_mode,
                                       std::optional<int64_t> shortest_edge,
                                       at::ArrayRef<double> mean, at::ArrayRef<double> std,
                                       double rescale_factor, c10::string_view pass_order,
                                       at::ScalarType dtype, const at::Tensor& out) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("sfllava::normalize_yuv420_frames", "out")
          .typed<void(const at::Tensor&, const at::Tensor&, const at::Tensor&, at::IntArrayRef,
                      at::IntArrayRef, c10::string_view, std::optional<int64_t>,
                      at::ArrayRef<double>, at::ArrayRef<double>, double, c10::string_view,
                      at::ScalarType, const at::Tensor&)>();
  op.call(y, u, v, coeffs, size, resize_mode, shortest_edge, mean, std, rescale_factor,
          pass_order, dtype, out);
  return out;
}

}  // namespace sfllava
