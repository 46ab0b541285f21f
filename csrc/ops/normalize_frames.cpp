// Host-side checks and preparation for normalize_frames, and its C++ API.
#include "normalize_frames.h"

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "../common/checks.h"

namespace sfllava {

namespace {

constexpr const char* kOp = "normalize_frames";
// Pillow resamples with a float box: sizes must stay exact in float32.
constexpr int64_t kMaxSide = int64_t{1} << 24;

// Hugging Face's get_resize_output_image_size(size=S, default_to_square=False):
// the shorter side becomes S, the longer int(S * long / short) (a Python true
// division, correctly rounded like an IEEE double division of exact integers).
void shortest_edge_size(int64_t h, int64_t w, int64_t s, int64_t* rh, int64_t* rw) {
  const int64_t shorter = std::min(h, w);
  const int64_t longer = std::max(h, w);
  const auto new_long = static_cast<int64_t>(static_cast<double>(s * longer) /
                                             static_cast<double>(shorter));
  if (w <= h) {
    *rh = new_long;
    *rw = s;
  } else {
    *rh = s;
    *rw = new_long;
  }
}

// Appends Pillow's fixed-point weights of outputs [first, first + n) of `axis`
// to `table` as (lo, count, ksize weights) records.
void append_axis_weights(const PilAxis& axis, int64_t first, int64_t n,
                         std::vector<int32_t>& table) {
  std::vector<double> scratch(axis.ksize);
  std::vector<int32_t> weights(axis.ksize);
  for (int64_t i = first; i < first + n; ++i) {
    int64_t lo = 0;
    const int64_t count = pil_fixed_weights(axis, i, weights.data(), scratch.data(), &lo);
    table.push_back(static_cast<int32_t>(lo));
    table.push_back(static_cast<int32_t>(count));
    table.insert(table.end(), weights.begin(), weights.end());
  }
}

}  // namespace

ResizeMode parse_resize_mode(c10::string_view name) {
  if (name == "squash") return ResizeMode::kSquash;
  if (name == "crop") return ResizeMode::kCrop;
  if (name == "pad") return ResizeMode::kPad;
  SFLLAVA_CHECK_VALUE(kOp, false, "resize_mode must be one of squash, crop, pad, got '",
                      std::string(name), "'");
  return ResizeMode::kSquash;  // unreachable
}

bool parse_pass_order(c10::string_view name) {
  if (name == "pillow13") return true;
  if (name == "pillow12") return false;
  SFLLAVA_CHECK_VALUE(kOp, false, "pass_order must be one of pillow13, pillow12, got '",
                      std::string(name), "'");
  return true;  // unreachable
}

NormalizeProblem prepare_normalize_frames(const at::Tensor& frames, at::IntArrayRef size,
                                          c10::string_view resize_mode,
                                          std::optional<int64_t> shortest_edge,
                                          at::ArrayRef<double> mean, at::ArrayRef<double> std,
                                          double rescale_factor, c10::string_view pass_order,
                                          at::ScalarType dtype) {
  SFLLAVA_CHECK_TYPE(kOp, frames.scalar_type() == at::kByte,
                     "frames must be uint8 (T, H, W, 3) RGB, got dtype ", frames.scalar_type());
  SFLLAVA_CHECK_VALUE(kOp, frames.dim() == 4 && frames.size(3) == 3,
                      "frames must be (T, H, W, 3) RGB, got shape ", frames.sizes());
  SFLLAVA_CHECK_VALUE(kOp, frames.size(1) > 0 && frames.size(2) > 0,
                      "frames has zero-sized frames (shape ", frames.sizes(), ")");
  return prepare_normalize_problem(
      kOp, frames.size(0), frames.size(1), frames.size(2),
      FrameStrides{frames.stride(0), frames.stride(1), frames.stride(2), frames.stride(3)}, size,
      resize_mode, shortest_edge, mean, std, rescale_factor, pass_order, dtype);
}

NormalizeProblem prepare_normalize_problem(const char* op, int64_t T, int64_t H, int64_t W,
                                           FrameStrides strides, at::IntArrayRef size,
                                           c10::string_view resize_mode,
                                           std::optional<int64_t> shortest_edge,
                                           at::ArrayRef<double> mean, at::ArrayRef<double> std,
                                           double rescale_factor, c10::string_view pass_order,
                                           at::ScalarType dtype) {
  SFLLAVA_CHECK_VALUE(op, H < kMaxSide && W < kMaxSide, "frames of ", H, "x", W,
                      " are too large (each side must be < ", kMaxSide, ")");
  SFLLAVA_CHECK_VALUE(op, size.size() == 2 && size[0] > 0 && size[1] > 0,
                      "size must be (height, width) with both >= 1, got ", size);
  SFLLAVA_CHECK_VALUE(op, size[0] < kMaxSide && size[1] < kMaxSide, "size ", size,
                      " is too large (each side must be < ", kMaxSide, ")");
  const ResizeMode mode = parse_resize_mode(resize_mode);
  if (shortest_edge.has_value()) {
    SFLLAVA_CHECK_VALUE(op, *shortest_edge > 0 && *shortest_edge < kMaxSide,
                        "shortest_edge must be None or in [1, ", kMaxSide, "), got ",
                        *shortest_edge);
  }
  SFLLAVA_CHECK_VALUE(op, mean.size() == 3, "mean must have 3 values (R, G, B), got ",
                      mean.size(), " values");
  SFLLAVA_CHECK_VALUE(op, std.size() == 3, "std must have 3 values (R, G, B), got ",
                      std.size(), " values");
  for (int c = 0; c < 3; ++c) {
    SFLLAVA_CHECK_VALUE(op, std::isfinite(mean[c]), "mean must be finite, got ", mean);
    SFLLAVA_CHECK_VALUE(op, std::isfinite(std[c]) && static_cast<float>(std[c]) != 0.f,
                        "std must be finite and nonzero, got ", std);
  }
  SFLLAVA_CHECK_VALUE(op, std::isfinite(rescale_factor), "rescale_factor must be finite, got ",
                      rescale_factor);
  const bool pillow13 = parse_pass_order(pass_order);
  SFLLAVA_CHECK_TYPE(op, dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16,
                     "dtype must be float32, float16 or bfloat16, got ", dtype);

  NormalizeProblem problem;
  problem.dtype = dtype;
  NormalizeParams& p = problem.params;
  p.rescale = rescale_factor;
  for (int c = 0; c < 3; ++c) {
    // transformers' normalize casts mean and std to the image's float32.
    p.mean[c] = static_cast<float>(mean[c]);
    p.std_[c] = static_cast<float>(std[c]);
  }

  NormalizeGeometry& g = problem.geometry;
  g.T = T;
  g.H = H;
  g.W = W;
  g.s = strides;
  g.mode = mode;
  g.out_h = size[0];
  g.out_w = size[1];
  g.canvas_h = H;
  g.canvas_w = W;
  if (mode == ResizeMode::kPad) {
    // expand2square: a square of the longer side, filled with
    // tuple(int(x * 255) for x in mean), the frame pasted at ((M - W) // 2, (M - H) // 2).
    const int64_t side = std::max(H, W);
    g.canvas_h = g.canvas_w = side;
    g.pad_top = (side - H) / 2;
    g.pad_left = (side - W) / 2;
    for (int c = 0; c < 3; ++c) {
      const double v = std::trunc(mean[c] * 255.0);
      g.fill[c] = static_cast<int32_t>(std::min(255.0, std::max(0.0, v)));
    }
  }
  if (mode == ResizeMode::kSquash) {
    if (shortest_edge.has_value()) {  // the published 'resize': a square, then the crop
      g.resized_h = g.resized_w = *shortest_edge;
    } else {
      g.resized_h = g.out_h;
      g.resized_w = g.out_w;
    }
  } else {
    const int64_t s = shortest_edge.value_or(std::min(g.out_h, g.out_w));
    shortest_edge_size(g.canvas_h, g.canvas_w, s, &g.resized_h, &g.resized_w);
    SFLLAVA_CHECK_VALUE(op, g.resized_h < kMaxSide && g.resized_w < kMaxSide,
                        "frames of ", H, "x", W, " resized to shortest edge ", s, " give ",
                        g.resized_h, "x", g.resized_w, ", too large (each side must be < ",
                        kMaxSide, ")");
  }
  // Hugging Face's center_crop: top = (resized - crop) // 2, which also places a
  // too-small image in the middle of its zero padding.
  g.crop_top = floor_half(g.resized_h - g.out_h);
  g.crop_left = floor_half(g.resized_w - g.out_w);
  g.row0 = std::max<int64_t>(g.crop_top, 0);
  g.rows = std::min(g.crop_top + g.out_h, g.resized_h) - g.row0;
  g.col0 = std::max<int64_t>(g.crop_left, 0);
  g.cols = std::min(g.crop_left + g.out_w, g.resized_w) - g.col0;

  const PilAxis hx = make_pil_axis(g.canvas_w, g.resized_w);
  const PilAxis vy = make_pil_axis(g.canvas_h, g.resized_h);
  g.need_h = !hx.identity();
  g.need_v = !vy.identity();
  g.ksize_h = g.need_h ? hx.ksize : 0;
  g.ksize_v = g.need_v ? vy.ksize : 0;
  // Pillow >= 13 (PR #9549): vertical first when the height shrinks by more than
  // twice as many pixels as the width. Only the order of two passes matters.
  const int64_t dh = g.canvas_h - g.resized_h;
  const int64_t dw = g.canvas_w - g.resized_w;
  g.vertical_first = pillow13 && g.need_h && g.need_v && dh > 0 && dh > 2 * dw;

  std::vector<int32_t> table;
  table.reserve(g.cols * (2 + g.ksize_h) + g.rows * (2 + g.ksize_v));
  g.h_off = 0;
  if (g.need_h) append_axis_weights(hx, g.col0, g.cols, table);
  g.v_off = static_cast<int64_t>(table.size());
  if (g.need_v) append_axis_weights(vy, g.row0, g.rows, table);
  // The canvas rows / columns the needed outputs read: Pillow's
  // [ybox_first, ybox_last) restricted to them (windows move monotonically).
  auto span = [&](bool needed, int64_t off, int64_t stride, int64_t n, int64_t first_out,
                  int64_t* first, int64_t* count) {
    if (!needed) {  // axis kept: the resized index is the canvas index
      *first = first_out;
      *count = n;
      return;
    }
    int64_t lo = std::numeric_limits<int64_t>::max(), hi = 0;
    for (int64_t r = 0; r < n; ++r) {
      const int32_t* e = table.data() + off + r * stride;
      if (e[1] > 0) {
        lo = std::min<int64_t>(lo, e[0]);
        hi = std::max<int64_t>(hi, e[0] + e[1]);
      }
    }
    *first = lo < hi ? lo : 0;
    *count = lo < hi ? hi - lo : 0;
  };
  span(g.need_v, g.v_off, g.v_stride(), g.rows, g.row0, &g.src_row0, &g.src_rows);
  span(g.need_h, g.h_off, g.h_stride(), g.cols, g.col0, &g.src_col0, &g.src_cols);
  if (g.vertical_first) {
    g.inter_h = g.rows;
    g.inter_w = g.src_cols;
  } else {
    g.inter_h = g.src_rows;
    g.inter_w = g.cols;
  }
  g.table_size = static_cast<int64_t>(table.size());
  problem.coeffs = at::empty({std::max<int64_t>(g.table_size, 1)},
                             at::TensorOptions().dtype(at::kInt));
  std::copy(table.begin(), table.end(), problem.coeffs.mutable_data_ptr<int32_t>());
  return problem;
}

void check_normalize_out(const char* op, const at::Tensor& out, const NormalizeProblem& problem,
                         const at::Tensor& input, const char* input_name) {
  const auto& g = problem.geometry;
  SFLLAVA_CHECK_VALUE(op, out.device() == input.device(), "out is on ", out.device(), " but ",
                      input_name, " is on ", input.device());
  SFLLAVA_CHECK_TYPE(op, out.scalar_type() == problem.dtype, "out has dtype ",
                     out.scalar_type(), " but dtype is ", problem.dtype);
  SFLLAVA_CHECK_VALUE(op,
                      out.dim() == 4 && out.size(0) == g.T && out.size(1) == 3 &&
                          out.size(2) == g.out_h && out.size(3) == g.out_w,
                      "out must have shape (", g.T, ", 3, ", g.out_h, ", ", g.out_w, "), got ",
                      out.sizes());
  SFLLAVA_CHECK_VALUE(op, out.is_contiguous(),
                      "out must be contiguous (NCHW), got strides ", out.strides());
}

void check_normalize_frames_out(const at::Tensor& out, const at::Tensor& frames,
                                const NormalizeProblem& problem) {
  check_normalize_out(kOp, out, problem, frames, "frames");
  at::assert_no_overlap(out, frames);
}

at::Tensor empty_normalize_frames_out(const at::Tensor& frames, const NormalizeProblem& problem) {
  const auto& g = problem.geometry;
  return at::empty({g.T, 3, g.out_h, g.out_w},
                   frames.options().dtype(problem.dtype).memory_format(at::MemoryFormat::Contiguous));
}

at::Tensor normalize_frames_with(NormalizeRun run, const at::Tensor& frames, at::IntArrayRef size,
                                 c10::string_view resize_mode,
                                 std::optional<int64_t> shortest_edge, at::ArrayRef<double> mean,
                                 at::ArrayRef<double> std, double rescale_factor,
                                 c10::string_view pass_order, at::ScalarType dtype) {
  const NormalizeProblem problem = prepare_normalize_frames(
      frames, size, resize_mode, shortest_edge, mean, std, rescale_factor, pass_order, dtype);
  at::Tensor out = empty_normalize_frames_out(frames, problem);
  run(frames, problem, out);
  return out;
}

void normalize_frames_out_with(NormalizeRun run, const at::Tensor& frames, at::IntArrayRef size,
                               c10::string_view resize_mode,
                               std::optional<int64_t> shortest_edge, at::ArrayRef<double> mean,
                               at::ArrayRef<double> std, double rescale_factor,
                               c10::string_view pass_order, at::ScalarType dtype,
                               const at::Tensor& out) {
  const NormalizeProblem problem = prepare_normalize_frames(
      frames, size, resize_mode, shortest_edge, mean, std, rescale_factor, pass_order, dtype);
  check_normalize_frames_out(out, frames, problem);
  run(frames, problem, out);
}

at::Tensor normalize_frames(const at::Tensor& frames, at::IntArrayRef size,
                            c10::string_view resize_mode, std::optional<int64_t> shortest_edge,
                            at::ArrayRef<double> mean, at::ArrayRef<double> std,
                            double rescale_factor, c10::string_view pass_order,
                            at::ScalarType dtype) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("sfllava::normalize_frames", "")
          .typed<at::Tensor(const at::Tensor&, at::IntArrayRef, c10::string_view,
                            std::optional<int64_t>, at::ArrayRef<double>, at::ArrayRef<double>,
                            double, c10::string_view, at::ScalarType)>();
  return op.call(frames, size, resize_mode, shortest_edge, mean, std, rescale_factor, pass_order,
                 dtype);
}

at::Tensor normalize_frames_out(const at::Tensor& frames, at::IntArrayRef size,
                                c10::string_view resize_mode,
                                std::optional<int64_t> shortest_edge, at::ArrayRef<double> mean,
                                at::ArrayRef<double> std, double rescale_factor,
                                c10::string_view pass_order, at::ScalarType dtype,
                                const at::Tensor& out) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("sfllava::normalize_frames", "out")
          .typed<void(const at::Tensor&, at::IntArrayRef, c10::string_view,
                      std::optional<int64_t>, at::ArrayRef<double>, at::ArrayRef<double>, double,
                      c10::string_view, at::ScalarType, const at::Tensor&)>();
  op.call(frames, size, resize_mode, shortest_edge, mean, std, rescale_factor, pass_order, dtype,
          out);
  return out;
}

}  // namespace sfllava
