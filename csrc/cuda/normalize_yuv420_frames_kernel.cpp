// normalize_yuv420_frames on the CUDA dispatch key: the op is CPU-only (it serves
// the CPU path from a video file, where the decoder's planes are at hand), so
// there is no kernel here, only a clear refusal. Registering it keeps a typed
// error that names the argument instead of the dispatcher's missing-kernel one:
// planes on a GPU get "y must be on the CPU" from the host-side checks, and an
// `out` on a GPU beside CPU planes gets "out is on cuda:0 but y is on cpu".
// No device code: a .cpp that setup.py compiles with the host compiler in CUDA
// builds only.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../common/checks.h"
#include "../ops/normalize_yuv420_frames.h"

namespace sfllava {
namespace {

constexpr const char* kOp = "normalize_yuv420_frames";

void refuse(const at::Tensor& y, const at::Tensor& u, const at::Tensor& v,
            at::IntArrayRef coeffs, at::IntArrayRef size, c10::string_view resize_mode,
            std::optional<int64_t> shortest_edge, at::ArrayRef<double> mean,
            at::ArrayRef<double> std, double rescale_factor, c10::string_view pass_order,
            at::ScalarType dtype, const at::Tensor* out) {
  const NormalizeProblem problem =
      prepare_normalize_yuv420_frames(y, u, v, coeffs, size, resize_mode, shortest_edge, mean,
                                      std, rescale_factor, pass_order, dtype);
  if (out != nullptr) check_normalize_yuv420_frames_out(*out, y, u, v, problem);
  SFLLAVA_CHECK_VALUE(kOp, false, "runs on the CPU only; pass CPU planes and a CPU out");
}

at::Tensor normalize_yuv420_frames_cuda(const at::Tensor& y, const at::Tensor& u,
                                        const at::Tensor& v, at::IntArrayRef coeffs,
                                        at::IntArrayRef size, c10::string_view resize_mode,
                                        std::optional<int64_t> shortest_edge,
                                        at::ArrayRef<double> mean, at::ArrayRef<double> std,
                                        double rescale_factor, c10::string_view pass_order,
                                        at::ScalarType dtype) {
  refuse(y, u, v, coeffs, size, resize_mode, shortest_edge, mean, std, rescale_factor,
         pass_order, dtype, nullptr);
  return at::Tensor();  // unreachable
}

void normalize_yuv420_frames_out_cuda(const at::Tensor& y, const at::Tensor& u,
                                      const at::Tensor& v, at::IntArrayRef coeffs,
                                      at::IntArrayRef size, c10::string_view resize_mode,
                                      std::optional<int64_t> shortest_edge,
                                      at::ArrayRef<double> mean, at::ArrayRef<double> std,
                                      double rescale_factor, c10::string_view pass_order,
                                      at::ScalarType dtype, const at::Tensor& out) {
  refuse(y, u, v, coeffs, size, resize_mode, shortest_edge, mean, std, rescale_factor,
         pass_order, dtype, &out);
}

}  // namespace

TORCH_LIBRARY_IMPL(sfllava, CUDA, m) {
  m.impl("normalize_yuv420_frames", &normalize_yuv420_frames_cuda);
  m.impl("normalize_yuv420_frames.out", &normalize_yuv420_frames_out_cuda);
}

}  // namespace sfllava
