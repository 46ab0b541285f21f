// CUDA kernels of slowfast_pool: thin __global__ wrappers around the bodies
// in csrc/common/slowfast_pool_simt.h (which the CPU tests run too).
//
// Forward launch: grid (num_tokens, ceil(D / VEC / 128)), 128 threads; block x
// is an output token, each thread reduces VEC consecutive channels over that
// token's window, so a warp reads 32 * VEC * sizeof(T) contiguous bytes of each
// input token (16-byte loads when rows are aligned). The slow frame picks are
// computed on the host with torch.linspace and travel to the device through
// pinned memory on the current stream: no host synchronisation.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../common/slowfast_pool_simt.h"
#include "../ops/slowfast_pool.h"

namespace sfllava {
namespace {

constexpr int kThreads = 128;

template <typename scalar_t, int VEC>
__global__ void slowfast_pool_forward_kernel(SlowFastGeometry g, const int32_t* picks,
                                             const scalar_t* in, FeatureStrides s,
                                             scalar_t* out, int64_t out_row_stride) {
  slowfast_pool_forward_thread<scalar_t, VEC>(blockIdx.x, blockIdx.y, threadIdx.x, blockDim.x,
                                              g, picks, in, s, out, out_row_stride);
}

template <typename scalar_t>
__global__ void slowfast_pool_backward_kernel(SlowFastGeometry g, const int32_t* picks,
                                              const scalar_t* grad_out, const scalar_t* in,
                                              FeatureStrides s, scalar_t* grad_in) {
  slowfast_pool_backward_thread<scalar_t>(blockIdx.x, blockIdx.y, threadIdx.x, blockDim.x, g,
                                          picks, grad_out, in, s, grad_in);
}

at::Tensor picks_on_device(const SlowFastProblem& problem, const at::Device& device) {
  return problem.picks.pin_memory().to(device, /*non_blocking=*/true);
}

bool aligned(const void* p, int64_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

// Widest channel vector (up to 16 bytes) every row start is aligned to.
template <typename scalar_t>
int pick_vec(const at::Tensor& features, const FeatureStrides& s, const at::Tensor& out,
             int64_t D) {
  for (int vec = 16 / static_cast<int>(sizeof(scalar_t)); vec > 1; vec /= 2) {
    const int64_t bytes = vec * sizeof(scalar_t);
    if (s.d == 1 && D % vec == 0 && s.t % vec == 0 && s.h % vec == 0 && s.w % vec == 0 &&
        out.stride(0) % vec == 0 && aligned(features.const_data_ptr(), bytes) &&
        aligned(out.const_data_ptr(), bytes)) {
      return vec;
    }
  }
  return 1;
}

template <typename scalar_t, int VEC>
void launch_forward(const SlowFastProblem& problem, const int32_t* picks,
                    const at::Tensor& features, const at::Tensor& out) {
  const SlowFastGeometry& g = problem.geometry;
  const int64_t groups = (g.D + VEC - 1) / VEC;
  const dim3 grid(static_cast<unsigned>(g.num_tokens),
                  static_cast<unsigned>((groups + kThreads - 1) / kThreads));
  slowfast_pool_forward_kernel<scalar_t, VEC>
      <<<grid, kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
          g, picks, features.const_data_ptr<scalar_t>(), problem.strides,
          out.mutable_data_ptr<scalar_t>(), out.stride(0));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void run_forward(const at::Tensor& features, const SlowFastProblem& problem, const at::Tensor& out) {
  const SlowFastGeometry& g = problem.geometry;
  if (g.D == 0 || g.num_tokens == 0) return;
  TORCH_CHECK_VALUE(g.num_tokens < (int64_t{1} << 31),
                    "slowfast_pool: too many output tokens for one launch (", g.num_tokens, ")");
  const c10::cuda::CUDAGuard guard(features.device());
  const at::Tensor picks = picks_on_device(problem, features.device());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, features.scalar_type(),
                                  "slowfast_pool_cuda", [&] {
    const int32_t* p = picks.const_data_ptr<int32_t>();
    switch (pick_vec<scalar_t>(features, problem.strides, out, g.D)) {
      case 8:
        launch_forward<scalar_t, 8>(problem, p, features, out);
        break;
      case 4:
        launch_forward<scalar_t, 4>(problem, p, features, out);
        break;
      case 2:
        launch_forward<scalar_t, 2>(problem, p, features, out);
        break;
      default:
        launch_forward<scalar_t, 1>(problem, p, features, out);
        break;
    }
  });
}

at::Tensor slowfast_pool_cuda(const at::Tensor& features, int64_t slow_frames,
                              c10::string_view slow_pool, at::IntArrayRef fast_size,
                              at::IntArrayRef grid) {
  return slowfast_pool_with(run_forward, features, slow_frames, slow_pool, fast_size, grid);
}

void slowfast_pool_out_cuda(const at::Tensor& features, int64_t slow_frames,
                            c10::string_view slow_pool, at::IntArrayRef fast_size,
                            at::IntArrayRef grid, const at::Tensor& out) {
  slowfast_pool_out_with(run_forward, features, slow_frames, slow_pool, fast_size, grid, out);
}

at::Tensor slowfast_pool_backward_cuda(const at::Tensor& grad_in, const at::Tensor& features,
                                       int64_t slow_frames, c10::string_view slow_pool,
                                       at::IntArrayRef fast_size, at::IntArrayRef grid) {
  const SlowFastProblem problem =
      prepare_slowfast(features, slow_frames, slow_pool, fast_size, grid);
  check_slowfast_grad(grad_in, features, problem);
  const SlowFastGeometry& g = problem.geometry;
  const c10::cuda::CUDAGuard guard(features.device());
  const at::Tensor grad = grad_in.contiguous();
  at::Tensor grad_features = at::empty(features.sizes(), features.options().memory_format(
                                                             at::MemoryFormat::Contiguous));
  const int64_t tokens = g.T * g.H * g.W;
  if (g.D == 0 || tokens == 0) return grad_features;
  TORCH_CHECK_VALUE(tokens < (int64_t{1} << 31),
                    "slowfast_pool_backward: too many input tokens for one launch (", tokens, ")");
  const at::Tensor picks = picks_on_device(problem, features.device());
  // Block x = one input token, a thread per channel.
  const dim3 launch_grid(static_cast<unsigned>(tokens),
                         static_cast<unsigned>((g.D + kThreads - 1) / kThreads));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, features.scalar_type(),
                                  "slowfast_pool_backward_cuda", [&] {
    slowfast_pool_backward_kernel<scalar_t>
        <<<launch_grid, kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
            g, picks.const_data_ptr<int32_t>(), grad.const_data_ptr<scalar_t>(),
            features.const_data_ptr<scalar_t>(), problem.strides,
            grad_features.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_features;
}

}  // namespace

TORCH_LIBRARY_IMPL(sfllava, CUDA, m) {
  m.impl("slowfast_pool", &slowfast_pool_cuda);
  m.impl("slowfast_pool.out", &slowfast_pool_out_cuda);
  m.impl("slowfast_pool_backward", &slowfast_pool_backward_cuda);
}

}  // namespace sfllava
