// CUDA kernels of normalize_frames: thin __global__ wrappers around the bodies
// in csrc/common/normalize_frames_simt.h (which the CPU tests run too).
//
// Two launches on the current stream per chunk of frames:
//   pass1: grid (frames * inter_h, ceil(inter_w / 128)), 128 threads; block x
//          is one intermediate row of one frame, each thread one intermediate
//          pixel (three channels) of Pillow's first pass into the 8-bit
//          intermediate (T, 3, inter_h, inter_w);
//   pass2: grid (frames * out_h, ceil(out_w / 128)), 128 threads; block x is
//          one output row of one frame, each thread one output pixel: the taps
//          of Pillow's second pass, clip to 8 bits, the CLIP normalisation, the
//          cast, three NCHW plane writes.
// Pillow's weights are computed once on the host (the same integers the CPU
// kernel uses) and travel through pinned memory with a non-blocking copy; the
// intermediate comes from the caching allocator. Nothing synchronises the host.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>

#include "../common/normalize_frames_simt.h"
#include "../ops/normalize_frames.h"

namespace sfllava {
namespace {

constexpr int kThreads = 128;
// Bytes of intermediate per launch pair (frames are processed in chunks).
constexpr int64_t kInterBudget = int64_t{64} << 20;
constexpr int64_t kMaxGridY = 65535;

__global__ void normalize_frames_pass1_kernel(NormalizeGeometry g, const int32_t* coeffs,
                                              const uint8_t* frames, uint8_t* inter) {
  normalize_frames_pass1_thread(blockIdx.x, blockIdx.y, threadIdx.x, blockDim.x, g, coeffs,
                                frames, inter);
}

template <typename scalar_t>
__global__ void normalize_frames_pass2_kernel(NormalizeGeometry g, NormalizeParams p,
                                              const int32_t* coeffs, const uint8_t* inter,
                                              scalar_t* out) {
  normalize_frames_pass2_thread<scalar_t>(blockIdx.x, blockIdx.y, threadIdx.x, blockDim.x, g, p,
                                          coeffs, inter, out);
}

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

void run_normalize(const at::Tensor& frames, const NormalizeProblem& problem, const at::Tensor& out) {
  const NormalizeGeometry& g = problem.geometry;
  if (g.T == 0) return;
  const c10::cuda::CUDAGuard guard(frames.device());
  TORCH_CHECK_VALUE((g.inter_w + kThreads - 1) / kThreads <= kMaxGridY &&
                        (g.out_w + kThreads - 1) / kThreads <= kMaxGridY,
                    "normalize_frames: output too wide for one launch (", g.out_w, " columns)");
  // Frames per launch pair: the intermediate stays within kInterBudget and
  // block x (frames * rows) within the grid's 2^31 - 1.
  const int64_t tallest = std::max<int64_t>(1, std::max(g.inter_h, g.out_h));
  const int64_t chunk_frames = std::min(
      {g.T, std::max<int64_t>(1, kInterBudget / std::max<int64_t>(1, g.inter_frame())),
       ((int64_t{1} << 31) - 1) / tallest});
  const at::Tensor coeffs =
      problem.coeffs.pin_memory().to(frames.device(), /*non_blocking=*/true);
  at::Tensor inter = at::empty({chunk_frames * g.inter_frame()}, frames.options());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const int64_t frame_out = 3 * g.out_h * g.out_w;

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, problem.dtype,
                                  "normalize_frames_cuda", [&] {
    for (int64_t t0 = 0; t0 < g.T; t0 += chunk_frames) {
      NormalizeGeometry gc = g;  // this chunk's frames only
      gc.T = std::min(chunk_frames, g.T - t0);
      const uint8_t* f = frames.const_data_ptr<uint8_t>() + t0 * g.s.t;
      scalar_t* o = out.mutable_data_ptr<scalar_t>() + t0 * frame_out;
      const dim3 grid1(static_cast<unsigned>(gc.T * gc.inter_h), blocks_for(gc.inter_w));
      normalize_frames_pass1_kernel<<<grid1, kThreads, 0, stream>>>(
          gc, coeffs.const_data_ptr<int32_t>(), f, inter.mutable_data_ptr<uint8_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      const dim3 grid2(static_cast<unsigned>(gc.T * gc.out_h), blocks_for(gc.out_w));
      normalize_frames_pass2_kernel<scalar_t><<<grid2, kThreads, 0, stream>>>(
          gc, problem.params, coeffs.const_data_ptr<int32_t>(), inter.const_data_ptr<uint8_t>(),
          o);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
}

at::Tensor normalize_frames_cuda(const at::Tensor& frames, at::IntArrayRef size,
                                c10::string_view resize_mode, std::optional<int64_t> shortest_edge,
                                at::ArrayRef<double> mean, at::ArrayRef<double> std,
                                double rescale_factor, c10::string_view pass_order,
                                at::ScalarType dtype) {
  return normalize_frames_with(run_normalize, frames, size, resize_mode, shortest_edge, mean, std,
                               rescale_factor, pass_order, dtype);
}

void normalize_frames_out_cuda(const at::Tensor& frames, at::IntArrayRef size,
                              c10::string_view resize_mode, std::optional<int64_t> shortest_edge,
                              at::ArrayRef<double> mean, at::ArrayRef<double> std,
                              double rescale_factor, c10::string_view pass_order,
                              at::ScalarType dtype, const at::Tensor& out) {
  normalize_frames_out_with(run_normalize, frames, size, resize_mode, shortest_edge, mean, std,
                            rescale_factor, pass_order, dtype, out);
}

}  // namespace

TORCH_LIBRARY_IMPL(sfllava, CUDA, m) {
  m.impl("normalize_frames", &normalize_frames_cuda);
  m.impl("normalize_frames.out", &normalize_frames_out_cuda);
}

}  // namespace sfllava
