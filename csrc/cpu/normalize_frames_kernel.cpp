// CPU kernel of normalize_frames.
//
// Pillow's integer arithmetic throughout (csrc/cpu/normalize_frames_rows.h),
// so the bytes equal Pillow's whatever the summation order (SIMD lanes,
// threads) and whichever row primitives this CPU runs.
// Horizontal first (Pillow <= 12, and Pillow 13 unless the height shrinks much
// more than the width): the horizontal pass over every canvas row the output
// needs into a small planar 8-bit intermediate (3, src_rows, cols), then per
// output row and plane the vertical pass, clip, and a 256-entry table (the CLIP
// processor's rescale and normalisation, in the output dtype) straight into the
// NCHW output.
// Vertical first (Pillow 13's order for tall shrinks): per output row, the
// vertical pass over the interleaved canvas rows, clip, then the horizontal
// pass and the table; no intermediate image at all.
// Frames are split between threads (each thread keeps its frame's intermediate
// in its cache); with few frames, the rows of each pass are split instead.
// normalize_yuv420_frames runs the same passes on decoded YUV 4:2:0 planes: each
// canvas row is converted (csrc/cpu/yuv_to_rgb_rows.h) just before the first
// pass reads it, straight into the horizontal pass's R, G, B planes where that
// pass works on planes; no RGB frame is ever stored.
//
// The test-only SIMT entry point runs the CUDA kernels' bodies
// (csrc/common/normalize_frames_simt.h) in plain loops over their grids.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include "../common/normalize_frames_simt.h"
#include "../ops/normalize_frames.h"
#include "../ops/normalize_yuv420_frames.h"
#include "../ops/yuv_to_rgb.h"
#include "normalize_frames_rows.h"
#include "target_clones.h"
#include "yuv_to_rgb_rows.h"

// The table lookup: word permutations for 16-bit outputs where the CPU has
// AVX-512 (cpu_rows::lookup_u16), else a plain loop compiled per ISA.

namespace sfllava {
namespace {

using cpu_rows::CpuFeatures;
using cpu_rows::HorizontalPass;

template <typename scalar_t>
SFLLAVA_CPU_CLONES void store_level_row(scalar_t* __restrict dst, const uint8_t* __restrict level,
                                        int64_t n, const scalar_t* __restrict table) {
  for (int64_t k = 0; k < n; ++k) dst[k] = table[level[k]];
}

// The same for a whole row, with the word-permutation lookup for 16-bit outputs
// where the CPU has it (the loop above for the rest).
template <typename scalar_t>
void store_levels(const CpuFeatures& f, scalar_t* dst, const uint8_t* level, int64_t n,
                  const scalar_t* table) {
  int64_t done = 0;
  if constexpr (sizeof(scalar_t) == 2) {
    done = cpu_rows::lookup_u16(f, reinterpret_cast<uint16_t*>(dst), level, n,
                                reinterpret_cast<const uint16_t*>(table));
  }
  store_level_row(dst + done, level + done, n - done, table);
}

// ---- the problem as the CPU kernel sees it ----

// Frames given as YUV 4:2:0 planes (normalize_yuv420_frames): element strides
// of frame and row per plane, and the conversion's coefficients.
struct YuvSource {
  const uint8_t* y = nullptr;
  const uint8_t* u = nullptr;
  const uint8_t* v = nullptr;
  int64_t y_t = 0, y_h = 0, u_t = 0, u_h = 0, v_t = 0, v_h = 0;
  YuvCoeffs k{};

  // Row fy of frame t from pixel x0 (even): its luma samples and its chroma row's.
  struct Row {
    const uint8_t *y, *u, *v;
  };
  Row row(int64_t t, int64_t fy, int64_t x0) const {
    const int64_t cy = fy / 2;
    return {y + t * y_t + fy * y_h + x0, u + t * u_t + cy * u_h + x0 / 2,
            v + t * v_t + cy * v_h + x0 / 2};
  }
};

struct CpuPlan {
  const NormalizeGeometry* g = nullptr;
  const int32_t* coeffs = nullptr;
  const uint8_t* frames = nullptr;       // RGB frames, or nullptr for `yuv`
  const uint8_t* storage_end = nullptr;  // one past the last byte of frames
  std::optional<YuvSource> yuv;
  // yuv rows converted straight into the horizontal pass's R, G, B planes (its
  // gather version, no padding columns, an even first column)
  bool yuv_planes = false;
  CpuFeatures features;
  HorizontalPass hpass;  // need_h only; rows start at canvas column src_col0
  int64_t reach = 0;     // bytes a horizontal-pass row must have readable
  int64_t row_bytes = 0;
  // canvas rows read in place: RGB-contiguous pixels and the columns read all
  // inside the frame (no pad fill beside them)
  bool direct_rows = false;
  std::vector<uint8_t> fill_row;    // a fill-only canvas row, interleaved (pad)
  std::vector<uint8_t> fill_inter;  // its first pass, (3, cols) (pad, horizontal first)
};

// Canvas row y of frame t, columns [0, canvas_w), as interleaved RGB bytes in `buf`.
void build_row(const CpuPlan& plan, int64_t t, int64_t y, uint8_t* buf) {
  const NormalizeGeometry& g = *plan.g;
  const int64_t fy = y - g.pad_top;
  const bool in_frame = fy >= 0 && fy < g.H;
  // Fill colour on canvas columns [0, x0) and [x1, canvas_w); the frame between.
  const int64_t x0 = in_frame ? g.pad_left : g.canvas_w;
  const int64_t x1 = in_frame ? g.pad_left + g.W : g.canvas_w;
  auto fill = [&](int64_t a, int64_t b) {
    for (int64_t x = a; x < b; ++x) {
      buf[3 * x + 0] = static_cast<uint8_t>(g.fill[0]);
      buf[3 * x + 1] = static_cast<uint8_t>(g.fill[1]);
      buf[3 * x + 2] = static_cast<uint8_t>(g.fill[2]);
    }
  };
  fill(0, x0);
  fill(x1, g.canvas_w);
  if (!in_frame) return;
  uint8_t* dst = buf + 3 * g.pad_left;
  if (plan.yuv) {  // the frame row made here, in cache
    const YuvSource::Row r = plan.yuv->row(t, fy, 0);
    cpu_rows::yuv420_row_to_rgb(plan.features, r.y, r.u, r.v, dst, g.W, plan.yuv->k);
    return;
  }
  const uint8_t* src = plan.frames + t * g.s.t + fy * g.s.h;
  if (g.s.c == 1 && g.s.w == 3) {
    std::memcpy(dst, src, 3 * g.W);
  } else {
    for (int64_t x = 0; x < g.W; ++x) {
      const uint8_t* px = src + x * g.s.w;
      dst[3 * x + 0] = px[0];
      dst[3 * x + 1] = px[g.s.c];
      dst[3 * x + 2] = px[2 * g.s.c];
    }
  }
}

// Per-thread buffers.
struct Scratch {
  std::vector<uint8_t> row;     // a canvas row (row_bytes)
  std::vector<uint8_t> vrow;    // a vertical-pass result row, interleaved (vertical first)
  std::vector<uint8_t> planes;  // the horizontal pass's de-interleaved row
  std::vector<uint8_t> levels;  // (3, cols) levels of one output row
  std::vector<const uint8_t*> taps;
  explicit Scratch(const CpuPlan& plan) {
    const NormalizeGeometry& g = *plan.g;
    row.assign(plan.row_bytes, 0);
    vrow.assign(std::max<int64_t>(3 * g.src_cols, plan.reach) + 64, 0);
    planes.assign(g.need_h ? 3 * plan.hpass.plane_bytes() : 1, 0);
    levels.resize(std::max<int64_t>(3 * g.cols, 1));
    taps.resize(std::max<int64_t>(std::max(g.ksize_v, g.ksize_h), 1));
  }
};

// The horizontal pass (or, width kept, the de-interleaved copy) of one row of
// interleaved RGB starting at canvas column src_col0, into three planes.
void first_pass_row(const CpuPlan& plan, const uint8_t* row, Scratch& s, uint8_t* r, uint8_t* g,
                    uint8_t* b) {
  if (plan.g->need_h) {
    plan.hpass.run(row, s.planes.data(), r, g, b);
  } else {
    cpu_rows::deinterleave_rgb(plan.features, row, plan.g->src_cols, r, g, b);
  }
}

// The plan for frames read from `frames` (RGB, any strides) or, when `yuv` is
// given, converted from its planes row by row.
CpuPlan make_plan(const NormalizeProblem& problem, const at::Tensor* frames,
                  std::optional<YuvSource> yuv) {
  const NormalizeGeometry& g = problem.geometry;
  CpuPlan plan;
  plan.g = &g;
  plan.coeffs = problem.coeffs.const_data_ptr<int32_t>();
  plan.yuv = yuv;
  if (frames != nullptr) {
    plan.frames = frames->const_data_ptr<uint8_t>();
    int64_t last = 0;
    for (int64_t d = 0; d < 4; ++d) last += (frames->size(d) - 1) * frames->stride(d);
    plan.storage_end = plan.frames + last + 1;
  }
  plan.features = cpu_rows::cpu_features();
  plan.reach = 3 * g.src_cols;
  if (g.need_h) {
    plan.hpass = HorizontalPass(plan.features, plan.coeffs + g.h_off, g.h_stride(), g.cols,
                                g.ksize_h, g.src_col0, g.src_cols);
    plan.reach = plan.hpass.reach();
  }
  plan.row_bytes = 3 * g.canvas_w + plan.reach + 64;
  plan.yuv_planes = yuv.has_value() && g.need_h && plan.hpass.takes_planes() &&
                    g.pad_left == 0 && g.canvas_w == g.W && g.src_col0 % 2 == 0;
  plan.direct_rows = frames != nullptr && g.s.c == 1 && g.s.w == 3 &&
                     g.src_col0 >= g.pad_left && g.src_col0 + g.src_cols <= g.pad_left + g.W;
  if (g.canvas_h != g.H) {  // pad: canvas rows above and below the frame are all fill
    plan.fill_row.assign(plan.row_bytes, 0);
    build_row(plan, 0, g.pad_top - 1, plan.fill_row.data());
    if (!g.vertical_first) {
      plan.fill_inter.resize(3 * g.cols);
      uint8_t* f = plan.fill_inter.data();
      Scratch s(plan);
      first_pass_row(plan, plan.fill_row.data() + 3 * g.src_col0, s, f, f + g.cols,
                     f + 2 * g.cols);
    }
  }
  return plan;
}

// Output columns [j0, j1) come from resized columns [col0, col0 + cols); the
// rest of a row is Hugging Face's zero padding (level 0).
template <typename scalar_t>
void store_output_row(const CpuPlan& plan, const scalar_t* table, const uint8_t* levels,
                      int64_t level_stride, scalar_t* out_row) {
  const NormalizeGeometry& g = *plan.g;
  const int64_t out_plane = g.out_h * g.out_w;
  const int64_t j0 = g.col0 - g.crop_left;
  const int64_t j1 = j0 + g.cols;
  for (int c = 0; c < 3; ++c) {
    const scalar_t* tc = table + 256 * c;
    scalar_t* dst = out_row + c * out_plane;
    std::fill(dst, dst + j0, tc[0]);
    std::fill(dst + j1, dst + g.out_w, tc[0]);
    store_levels(plan.features, dst + j0, levels + c * level_stride, g.cols, tc);
  }
}

template <typename scalar_t>
void store_padding_row(const NormalizeGeometry& g, const scalar_t* table, scalar_t* out_row) {
  for (int c = 0; c < 3; ++c) {
    scalar_t* dst = out_row + c * g.out_h * g.out_w;
    std::fill(dst, dst + g.out_w, table[256 * c]);
  }
}

// ---- horizontal first ----

// First pass of intermediate rows [r0, r1) of frame t into `inter` (3, src_rows, cols).
void hpass_rows(const CpuPlan& plan, int64_t t, int64_t r0, int64_t r1, Scratch& s,
                uint8_t* inter) {
  const NormalizeGeometry& g = *plan.g;
  const int64_t plane = g.inter_plane();
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t y = g.src_row0 + r;
    const int64_t fy = y - g.pad_top;
    uint8_t* dst = inter + r * g.inter_w;
    if (fy < 0 || fy >= g.H) {
      for (int c = 0; c < 3; ++c) {
        std::memcpy(dst + c * plane, plan.fill_inter.data() + c * g.cols, g.cols);
      }
      continue;
    }
    if (plan.yuv_planes) {
      const int64_t pb = plan.hpass.plane_bytes();
      uint8_t* planes[3] = {s.planes.data(), s.planes.data() + pb, s.planes.data() + 2 * pb};
      const YuvSource::Row r = plan.yuv->row(t, fy, g.src_col0);
      cpu_rows::yuv420_row_to_planes(plan.features, r.y, r.u, r.v, planes[0], planes[1],
                                     planes[2], g.src_cols, plan.yuv->k);
      plan.hpass.run_planes(planes, dst, dst + plane, dst + 2 * plane);
      continue;
    }
    // In place when the pixels are RGB-contiguous and the pass's reads (which
    // may run past the row's end) stay inside the frames' storage.
    const uint8_t* row = nullptr;
    if (plan.direct_rows) {
      row = plan.frames + t * g.s.t + fy * g.s.h + 3 * (g.src_col0 - g.pad_left);
      if (row + plan.reach > plan.storage_end) row = nullptr;
    }
    if (row == nullptr) {
      build_row(plan, t, y, s.row.data());
      row = s.row.data() + 3 * g.src_col0;
    }
    first_pass_row(plan, row, s, dst, dst + plane, dst + 2 * plane);
  }
}

// Vertical pass, normalisation and NCHW write of output rows [i0, i1) of frame t.
template <typename scalar_t>
void vpass_rows(const CpuPlan& plan, const scalar_t* table, int64_t i0, int64_t i1,
                const uint8_t* inter, Scratch& s, scalar_t* out) {
  const NormalizeGeometry& g = *plan.g;
  const int64_t plane = g.inter_plane();
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t ri = i + g.crop_top;
    scalar_t* out_row = out + i * g.out_w;
    if (ri < 0 || ri >= g.resized_h) {
      store_padding_row(g, table, out_row);
      continue;
    }
    if (!g.need_v) {  // height kept: the intermediate row is the level row
      store_output_row(plan, table, inter + (ri - g.src_row0) * g.inter_w, plane, out_row);
      continue;
    }
    const int32_t* e = plan.coeffs + g.v_off + (ri - g.row0) * g.v_stride();
    for (int c = 0; c < 3; ++c) {
      for (int64_t y = 0; y < e[1]; ++y) {
        s.taps[y] = inter + c * plane + (e[0] - g.src_row0 + y) * g.inter_w;
      }
      cpu_rows::vertical_pass_row(plan.features, s.taps.data(), e + 2, e[1], g.cols,
                                  s.levels.data() + c * g.cols);
    }
    store_output_row(plan, table, s.levels.data(), g.cols, out_row);
  }
}

// ---- vertical first ----

// Interleaved bytes of canvas row y, columns [src_col0, src_col0 + src_cols),
// of frame t: in place when possible, else from `region` (the frame's needed
// canvas rows and columns, built by build_region).
const uint8_t* canvas_row_span(const CpuPlan& plan, int64_t t, int64_t y,
                               const uint8_t* region) {
  const NormalizeGeometry& g = *plan.g;
  const int64_t fy = y - g.pad_top;
  if (fy < 0 || fy >= g.H) return plan.fill_row.data() + 3 * g.src_col0;
  if (plan.direct_rows) {
    return plan.frames + t * g.s.t + fy * g.s.h + 3 * (g.src_col0 - g.pad_left);
  }
  return region + (y - g.src_row0) * 3 * g.src_cols;
}

void build_region(const CpuPlan& plan, int64_t t, int64_t r0, int64_t r1, Scratch& s,
                  uint8_t* region) {
  const NormalizeGeometry& g = *plan.g;
  for (int64_t r = r0; r < r1; ++r) {
    build_row(plan, t, g.src_row0 + r, s.row.data());
    std::memcpy(region + r * 3 * g.src_cols, s.row.data() + 3 * g.src_col0, 3 * g.src_cols);
  }
}

template <typename scalar_t>
void vfirst_rows(const CpuPlan& plan, const scalar_t* table, int64_t t, int64_t i0, int64_t i1,
                 const uint8_t* region, Scratch& s, scalar_t* out) {
  const NormalizeGeometry& g = *plan.g;
  uint8_t* lv = s.levels.data();
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t ri = i + g.crop_top;
    scalar_t* out_row = out + i * g.out_w;
    if (ri < 0 || ri >= g.resized_h) {
      store_padding_row(g, table, out_row);
      continue;
    }
    const int32_t* e = plan.coeffs + g.v_off + (ri - g.row0) * g.v_stride();
    for (int64_t y = 0; y < e[1]; ++y) s.taps[y] = canvas_row_span(plan, t, e[0] + y, region);
    cpu_rows::vertical_pass_row(plan.features, s.taps.data(), e + 2, e[1], 3 * g.src_cols,
                                s.vrow.data());
    plan.hpass.run(s.vrow.data(), s.planes.data(), lv, lv + g.cols, lv + 2 * g.cols);
    store_output_row(plan, table, lv, g.cols, out_row);
  }
}

// ---- driver ----

template <typename scalar_t>
std::vector<scalar_t> level_table(const NormalizeParams& p) {
  std::vector<scalar_t> table(3 * 256);
  for (int c = 0; c < 3; ++c) {
    for (int level = 0; level < 256; ++level) {
      table[256 * c + level] =
          static_cast<scalar_t>(normalize_level(level, p.rescale, p.mean[c], p.std_[c]));
    }
  }
  return table;
}

template <typename scalar_t>
void normalize_frames_impl(const CpuPlan& plan, const NormalizeProblem& problem, scalar_t* out) {
  const NormalizeGeometry& g = problem.geometry;
  const std::vector<scalar_t> table = level_table<scalar_t>(problem.params);
  const scalar_t* tab = table.data();
  const int64_t frame_out = 3 * g.out_h * g.out_w;
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  // Per frame: the horizontal-first intermediate, or the vertical-first region
  // copy when canvas rows cannot be read in place.
  const bool vfirst = g.vertical_first;
  const int64_t frame_buf =
      vfirst ? (plan.direct_rows ? 0 : g.src_rows * 3 * g.src_cols) : g.inter_frame();

  if (g.T % threads == 0 || g.T >= 4 * threads) {
    // Whole frames per thread (balanced enough): the intermediate stays in
    // this core's cache.
    at::parallel_for(0, g.T, 1, [&](int64_t begin, int64_t end) {
      Scratch s(plan);
      std::vector<uint8_t> buf(std::max<int64_t>(frame_buf, 1));
      for (int64_t t = begin; t < end; ++t) {
        scalar_t* o = out + t * frame_out;
        if (vfirst) {
          if (frame_buf > 0) build_region(plan, t, 0, g.src_rows, s, buf.data());
          vfirst_rows<scalar_t>(plan, tab, t, 0, g.out_h, buf.data(), s, o);
        } else {
          hpass_rows(plan, t, 0, g.src_rows, s, buf.data());
          vpass_rows<scalar_t>(plan, tab, 0, g.out_h, buf.data(), s, o);
        }
      }
    });
    return;
  }
  // Few frames: split each pass's rows between the threads.
  std::vector<uint8_t> buf(std::max<int64_t>(frame_buf, 1));
  for (int64_t t = 0; t < g.T; ++t) {
    scalar_t* o = out + t * frame_out;
    if (frame_buf > 0) {
      at::parallel_for(0, g.src_rows, 16, [&](int64_t begin, int64_t end) {
        Scratch s(plan);
        if (vfirst) {
          build_region(plan, t, begin, end, s, buf.data());
        } else {
          hpass_rows(plan, t, begin, end, s, buf.data());
        }
      });
    }
    at::parallel_for(0, g.out_h, 16, [&](int64_t begin, int64_t end) {
      Scratch s(plan);
      if (vfirst) {
        vfirst_rows<scalar_t>(plan, tab, t, begin, end, buf.data(), s, o);
      } else {
        vpass_rows<scalar_t>(plan, tab, begin, end, buf.data(), s, o);
      }
    });
  }
}

// Callers return early for T == 0, before making the plan.
void run_plan(const CpuPlan& plan, const NormalizeProblem& problem, const at::Tensor& out) {
  switch (problem.dtype) {
    case at::kFloat:
      normalize_frames_impl<float>(plan, problem, out.mutable_data_ptr<float>());
      break;
    case at::kHalf:
      normalize_frames_impl<at::Half>(plan, problem, out.mutable_data_ptr<at::Half>());
      break;
    default:
      normalize_frames_impl<at::BFloat16>(plan, problem, out.mutable_data_ptr<at::BFloat16>());
      break;
  }
}

void run_normalize(const at::Tensor& frames, const NormalizeProblem& problem, const at::Tensor& out) {
  if (problem.geometry.T == 0) return;
  run_plan(make_plan(problem, &frames, std::nullopt), problem, out);
}

void run_normalize_yuv420(const at::Tensor& y, const at::Tensor& u, const at::Tensor& v,
                          at::IntArrayRef coeffs, const NormalizeProblem& problem,
                          const at::Tensor& out) {
  if (problem.geometry.T == 0) return;
  YuvSource p;
  p.y = y.const_data_ptr<uint8_t>();
  p.u = u.const_data_ptr<uint8_t>();
  p.v = v.const_data_ptr<uint8_t>();
  p.y_t = y.stride(0);
  p.y_h = y.stride(1);
  p.u_t = u.stride(0);
  p.u_h = u.stride(1);
  p.v_t = v.stride(0);
  p.v_h = v.stride(1);
  p.k = yuv_coeffs(coeffs);
  run_plan(make_plan(problem, nullptr, p), problem, out);
}

at::Tensor normalize_frames_cpu(const at::Tensor& frames, at::IntArrayRef size,
                                c10::string_view resize_mode, std::optional<int64_t> shortest_edge,
                                at::ArrayRef<double> mean, at::ArrayRef<double> std,
                                double rescale_factor, c10::string_view pass_order,
                                at::ScalarType dtype) {
  return normalize_frames_with(run_normalize, frames, size, resize_mode, shortest_edge, mean, std,
                               rescale_factor, pass_order, dtype);
}

void normalize_frames_out_cpu(const at::Tensor& frames, at::IntArrayRef size,
                              c10::string_view resize_mode, std::optional<int64_t> shortest_edge,
                              at::ArrayRef<double> mean, at::ArrayRef<double> std,
                              double rescale_factor, c10::string_view pass_order,
                              at::ScalarType dtype, const at::Tensor& out) {
  normalize_frames_out_with(run_normalize, frames, size, resize_mode, shortest_edge, mean, std,
                            rescale_factor, pass_order, dtype, out);
}

at::Tensor normalize_yuv420_frames_cpu(const at::Tensor& y, const at::Tensor& u,
                                       const at::Tensor& v, at::IntArrayRef coeffs,
                                       at::IntArrayRef size, c10::string_view resize_mode,
                                       std::optional<int64_t> shortest_edge,
                                       at::ArrayRef<double> mean, at::ArrayRef<double> std,
                                       double rescale_factor, c10::string_view pass_order,
                                       at::ScalarType dtype) {
  const NormalizeProblem problem =
      prepare_normalize_yuv420_frames(y, u, v, coeffs, size, resize_mode, shortest_edge, mean,
                                      std, rescale_factor, pass_order, dtype);
  at::Tensor out = empty_normalize_frames_out(y, problem);
  run_normalize_yuv420(y, u, v, coeffs, problem, out);
  return out;
}

void normalize_yuv420_frames_out_cpu(const at::Tensor& y, const at::Tensor& u,
                                     const at::Tensor& v, at::IntArrayRef coeffs,
                                     at::IntArrayRef size, c10::string_view resize_mode,
                                     std::optional<int64_t> shortest_edge,
                                     at::ArrayRef<double> mean, at::ArrayRef<double> std,
                                     double rescale_factor, c10::string_view pass_order,
                                     at::ScalarType dtype, const at::Tensor& out) {
  const NormalizeProblem problem =
      prepare_normalize_yuv420_frames(y, u, v, coeffs, size, resize_mode, shortest_edge, mean,
                                      std, rescale_factor, pass_order, dtype);
  check_normalize_yuv420_frames_out(out, y, u, v, problem);
  run_normalize_yuv420(y, u, v, coeffs, problem, out);
}

// Test-only: the CUDA kernels, block by block and thread by thread.
at::Tensor normalize_frames_simt_cpu(const at::Tensor& frames, at::IntArrayRef size,
                                     c10::string_view resize_mode,
                                     std::optional<int64_t> shortest_edge,
                                     at::ArrayRef<double> mean, at::ArrayRef<double> std,
                                     double rescale_factor, c10::string_view pass_order,
                                     at::ScalarType dtype) {
  const NormalizeProblem problem = prepare_normalize_frames(
      frames, size, resize_mode, shortest_edge, mean, std, rescale_factor, pass_order, dtype);
  const NormalizeGeometry& g = problem.geometry;
  at::Tensor out = empty_normalize_frames_out(frames, problem);
  if (g.T == 0) return out;
  at::Tensor inter = at::empty({g.T * g.inter_frame()}, frames.options());
  constexpr int64_t kBlock = 32;  // a small block exercises the bounds checks
  const int32_t* coeffs = problem.coeffs.const_data_ptr<int32_t>();
  const uint8_t* f = frames.const_data_ptr<uint8_t>();
  uint8_t* in = inter.mutable_data_ptr<uint8_t>();
  const int64_t blocks_y1 = (g.inter_w + kBlock - 1) / kBlock;
  for (int64_t bx = 0; bx < g.T * g.inter_h; ++bx) {
    for (int64_t by = 0; by < blocks_y1; ++by) {
      for (int64_t tx = 0; tx < kBlock; ++tx) {
        normalize_frames_pass1_thread(bx, by, tx, kBlock, g, coeffs, f, in);
      }
    }
  }
  const int64_t blocks_y2 = (g.out_w + kBlock - 1) / kBlock;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, problem.dtype,
                                  "normalize_frames_simt_cpu", [&] {
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    for (int64_t bx = 0; bx < g.T * g.out_h; ++bx) {
      for (int64_t by = 0; by < blocks_y2; ++by) {
        for (int64_t tx = 0; tx < kBlock; ++tx) {
          normalize_frames_pass2_thread<scalar_t>(bx, by, tx, kBlock, g, problem.params, coeffs,
                                                  in, o);
        }
      }
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(sfllava, CPU, m) {
  m.impl("normalize_frames", &normalize_frames_cpu);
  m.impl("normalize_frames.out", &normalize_frames_out_cpu);
  m.impl("_normalize_frames_simt", &normalize_frames_simt_cpu);
  m.impl("normalize_yuv420_frames", &normalize_yuv420_frames_cpu);
  m.impl("normalize_yuv420_frames.out", &normalize_yuv420_frames_out_cpu);
}

}  // namespace sfllava
