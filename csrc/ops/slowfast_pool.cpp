// Host-side checks and preparation for slowfast_pool, and its C++ API.
#include "slowfast_pool.h"

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>

#include "../common/checks.h"

namespace sfllava {

namespace {
constexpr const char* kOp = "slowfast_pool";
}  // namespace

SlowPool parse_slow_pool(c10::string_view name) {
  if (name == "concat") return SlowPool::kConcat;
  if (name == "spatial_1d_max_pool") return SlowPool::kMax1d;
  if (name == "spatial_1d_avg_pool") return SlowPool::kAvg1d;
  if (name == "spatial_2d_max_pool") return SlowPool::kMax2d;
  if (name == "spatial_2d_avg_pool") return SlowPool::kAvg2d;
  SFLLAVA_CHECK_VALUE(kOp, false,
                      "slow_pool must be one of concat, spatial_1d_max_pool, "
                      "spatial_1d_avg_pool, spatial_2d_max_pool, spatial_2d_avg_pool, got '",
                      std::string(name), "'");
  return SlowPool::kConcat;  // unreachable
}

FeatureStrides feature_strides(const at::Tensor& features, int64_t W) {
  FeatureStrides s;
  s.t = features.stride(0);
  s.d = features.stride(-1);
  if (features.dim() == 4) {
    s.h = features.stride(1);
    s.w = features.stride(2);
  } else {
    s.h = W * features.stride(1);
    s.w = features.stride(1);
  }
  return s;
}

SlowFastProblem prepare_slowfast(const at::Tensor& features, int64_t slow_frames,
                                 c10::string_view slow_pool, at::IntArrayRef fast_size,
                                 at::IntArrayRef grid) {
  SFLLAVA_CHECK_VALUE(kOp, features.dim() == 3 || features.dim() == 4,
                      "features must be (T, N, D) or (T, H, W, D), got ", features.sizes());
  SFLLAVA_CHECK_FLOATING(kOp, features, "features");
  const int64_t T = features.size(0);
  const int64_t D = features.size(-1);
  SFLLAVA_CHECK_VALUE(kOp, T > 0,
                      "features has T = 0 frames (shape ", features.sizes(),
                      "); at least one frame is needed to form visual tokens");

  int64_t H = 0, W = 0;
  if (features.dim() == 4) {
    H = features.size(1);
    W = features.size(2);
    SFLLAVA_CHECK_VALUE(kOp, grid.empty() || (grid.size() == 2 && grid[0] == H && grid[1] == W),
                        "grid ", grid, " does not match features of shape ", features.sizes());
  } else {
    const int64_t N = features.size(1);
    if (grid.empty()) {
      const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(N))));
      SFLLAVA_CHECK_VALUE(kOp, side * side == N,
                          "features has N = ", N,
                          " tokens per frame, which is not a square grid; pass grid=(H, W)");
      H = W = side;
    } else {
      SFLLAVA_CHECK_VALUE(kOp, grid.size() == 2 && grid[0] > 0 && grid[1] > 0,
                          "grid must be (H, W) with H, W >= 1, got ", grid);
      SFLLAVA_CHECK_VALUE(kOp, grid[0] * grid[1] == N, "grid ", grid, " has ",
                          grid[0] * grid[1], " tokens but features has N = ", N,
                          " (shape ", features.sizes(), ")");
      H = grid[0];
      W = grid[1];
    }
  }
  SFLLAVA_CHECK_VALUE(kOp, H > 0 && W > 0,
                      "features has no tokens per frame (shape ", features.sizes(), ")");
  SFLLAVA_CHECK_VALUE(kOp, slow_frames >= 1, "slow_frames must be >= 1, got ", slow_frames);

  const SlowPool pool = parse_slow_pool(slow_pool);
  if (pool == SlowPool::kMax1d || pool == SlowPool::kAvg1d) {
    SFLLAVA_CHECK_VALUE(kOp, H * W >= 2, "slow_pool ", std::string(slow_pool),
                        " needs at least 2 tokens per frame, grid is ", H, "x", W);
  } else if (pool == SlowPool::kMax2d || pool == SlowPool::kAvg2d) {
    SFLLAVA_CHECK_VALUE(kOp, H >= 2 && W >= 2, "slow_pool ", std::string(slow_pool),
                        " needs a grid of at least 2x2, got ", H, "x", W);
  }

  int64_t fh = 0, fw = 0;
  if (!fast_size.empty()) {
    SFLLAVA_CHECK_VALUE(kOp, fast_size.size() == 2 && fast_size[0] >= 1 && fast_size[1] >= 1,
                        "fast_size must be (h, w) with h, w >= 1, got ", fast_size);
    SFLLAVA_CHECK_VALUE(kOp, fast_size[0] <= H && fast_size[1] <= W, "fast_size ", fast_size,
                        " is larger than the token grid (", H, ", ", W, ")");
    fh = fast_size[0];
    fw = fast_size[1];
  }

  SlowFastProblem p;
  p.geometry = make_geometry(T, H, W, D, slow_frames, pool, fh, fw);
  p.strides = feature_strides(features, W);
  // As published (docs/method.md#slow-pathway): torch.linspace(0, T, Ns + 1).to(int32)[:-1].
  p.picks = at::linspace(0, static_cast<double>(T), slow_frames + 1,
                         at::TensorOptions().dtype(at::kFloat))
                .to(at::kInt)
                .slice(0, 0, slow_frames)
                .contiguous();
  return p;
}

void check_slowfast_out(const at::Tensor& out, const at::Tensor& features,
                        const SlowFastProblem& problem) {
  const auto& g = problem.geometry;
  SFLLAVA_CHECK_VALUE(kOp, out.device() == features.device(), "out is on ", out.device(),
                      " but features is on ", features.device());
  SFLLAVA_CHECK_TYPE(kOp, out.scalar_type() == features.scalar_type(), "out has dtype ",
                     out.scalar_type(), " but features has dtype ", features.scalar_type());
  SFLLAVA_CHECK_VALUE(kOp, out.dim() == 2 && out.size(0) == g.num_tokens && out.size(1) == g.D,
                      "out must have shape (", g.num_tokens, ", ", g.D, "), got ", out.sizes());
  SFLLAVA_CHECK_VALUE(kOp, out.stride(1) == 1 || g.D <= 1,
                      "out must have contiguous rows (stride 1 along D), got strides ",
                      out.strides());
  SFLLAVA_CHECK_VALUE(kOp, out.stride(0) >= g.D || g.num_tokens <= 1,
                      "out rows overlap (row stride ", out.stride(0), " < D = ", g.D, ")");
  const at::MemOverlapStatus overlap = at::get_overlap_status(out, features);
  SFLLAVA_CHECK_VALUE(kOp,
                      overlap != at::MemOverlapStatus::Full &&
                          overlap != at::MemOverlapStatus::Partial,
                      "out shares memory with features; pass a separate buffer");
}

void check_slowfast_grad(const at::Tensor& grad, const at::Tensor& features,
                         const SlowFastProblem& problem) {
  const auto& g = problem.geometry;
  SFLLAVA_CHECK_VALUE("slowfast_pool_backward",
                      grad.dim() == 2 && grad.size(0) == g.num_tokens && grad.size(1) == g.D,
                      "grad must have shape (", g.num_tokens, ", ", g.D, "), got ",
                      grad.sizes());
  SFLLAVA_CHECK_TYPE("slowfast_pool_backward", grad.scalar_type() == features.scalar_type(),
                     "grad has dtype ", grad.scalar_type(), " but features has dtype ",
                     features.scalar_type());
  SFLLAVA_CHECK_VALUE("slowfast_pool_backward", grad.device() == features.device(),
                      "grad is on ", grad.device(), " but features is on ", features.device());
}

at::Tensor slowfast_pool_with(SlowFastRun run, const at::Tensor& features, int64_t slow_frames,
                              c10::string_view slow_pool, at::IntArrayRef fast_size,
                              at::IntArrayRef grid) {
  const SlowFastProblem problem =
      prepare_slowfast(features, slow_frames, slow_pool, fast_size, grid);
  at::Tensor out = at::empty({problem.geometry.num_tokens, problem.geometry.D},
                             features.options().memory_format(at::MemoryFormat::Contiguous));
  run(features, problem, out);
  return out;
}

void slowfast_pool_out_with(SlowFastRun run, const at::Tensor& features, int64_t slow_frames,
                            c10::string_view slow_pool, at::IntArrayRef fast_size,
                            at::IntArrayRef grid, const at::Tensor& out) {
  const SlowFastProblem problem =
      prepare_slowfast(features, slow_frames, slow_pool, fast_size, grid);
  check_slowfast_out(out, features, problem);
  run(features, problem, out);
}

at::Tensor slowfast_pool(const at::Tensor& features, int64_t slow_frames,
                         c10::string_view slow_pool, at::IntArrayRef fast_size,
                         at::IntArrayRef grid) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("sfllava::slowfast_pool", "")
                       .typed<at::Tensor(const at::Tensor&, int64_t, c10::string_view,
                                         at::IntArrayRef, at::IntArrayRef)>();
  return op.call(features, slow_frames, slow_pool, fast_size, grid);
}

at::Tensor slowfast_pool_out(const at::Tensor& features, int64_t slow_frames,
                             c10::string_view slow_pool, at::IntArrayRef fast_size,
                             at::IntArrayRef grid, const at::Tensor& out) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("sfllava::slowfast_pool", "out")
                       .typed<void(const at::Tensor&, int64_t, c10::string_view,
                                     at::IntArrayRef, at::IntArrayRef, const at::Tensor&)>();
  op.call(features, slow_frames, slow_pool, fast_size, grid, out);
  return out;
}

}  // namespace sfllava
