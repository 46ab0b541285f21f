// The one schema block of the `sfllava` op namespace. Backends register their
// kernels with TORCH_LIBRARY_IMPL next to the kernels (csrc/cpu, csrc/cuda);
// fake kernels and autograd are registered from Python (sfllava_ext/ops.py).
#include <torch/library.h>

TORCH_LIBRARY(sfllava, m) {
  // docs/method.md#pathways: slow pathway over Ns picked frames, fast pathway over
  // all frames, concatenated into one (num_tokens, D) buffer.
  // Every .out overload writes a caller's buffer and returns nothing, so that
  // torch.compile can functionalise it (custom ops may not return aliases of
  // their inputs).
  m.def(
      "slowfast_pool(Tensor features, int slow_frames, str slow_pool, int[] fast_size, "
      "int[] grid) -> Tensor");
  m.def(
      "slowfast_pool.out(Tensor features, int slow_frames, str slow_pool, int[] fast_size, "
      "int[] grid, *, Tensor(a!) out) -> ()");
  m.def(
      "slowfast_pool_backward(Tensor grad, Tensor features, int slow_frames, str slow_pool, "
      "int[] fast_size, int[] grid) -> Tensor");
  // Test-only: the CUDA forward kernel's body run on the CPU over the whole
  // launch grid (see csrc/common/slowfast_pool_simt.h).
  m.def(
      "_slowfast_pool_simt(Tensor features, int slow_frames, str slow_pool, int[] fast_size, "
      "int[] grid, int vec) -> Tensor");

  // docs/method.md#preprocessing: uint8 (T, H, W, 3) frames -> normalised (T, 3, h, w) pixels:
  // Pillow's bicubic resize (bit-exact), the CLIP processor's centre crop,
  // rescale and normalisation, the layout change and the cast, in one pass.
  m.def(
      "normalize_frames(Tensor frames, int[] size, str resize_mode, int? shortest_edge, "
      "float[] mean, float[] std, float rescale_factor, str pass_order, ScalarType dtype) -> Tensor");
  m.def(
      "normalize_frames.out(Tensor frames, int[] size, str resize_mode, int? shortest_edge, "
      "float[] mean, float[] std, float rescale_factor, str pass_order, ScalarType dtype, *, Tensor(a!) out) "
      "-> ()");
  // Test-only: the CUDA kernels' bodies run on the CPU over the whole launch
  // grids (see csrc/common/normalize_frames_simt.h).
  m.def(
      "_normalize_frames_simt(Tensor frames, int[] size, str resize_mode, int? shortest_edge, "
      "float[] mean, float[] std, float rescale_factor, str pass_order, ScalarType dtype) -> Tensor");

  // The same straight from decoded YUV 4:2:0 planes (CPU): the bytes of
  // normalize_frames(yuv420_to_rgb(frame)) per frame, each RGB row made in
  // cache just before the resize reads it.
  m.def(
      "normalize_yuv420_frames(Tensor y, Tensor u, Tensor v, int[] coeffs, int[] size, "
      "str resize_mode, int? shortest_edge, float[] mean, float[] std, float rescale_factor, "
      "str pass_order, ScalarType dtype) -> Tensor");
  m.def(
      "normalize_yuv420_frames.out(Tensor y, Tensor u, Tensor v, int[] coeffs, int[] size, "
      "str resize_mode, int? shortest_edge, float[] mean, float[] std, float rescale_factor, "
      "str pass_order, ScalarType dtype, *, Tensor(a!) out) -> ()");

  // Video loading: decoded YUV 4:2:0 planes -> RGB24 bytes, bit-identical to
  // swscale's unscaled converter, written into a caller's (H, W, 3) buffer.
  m.def(
      "yuv420_to_rgb(Tensor y, Tensor u, Tensor v, int[] coeffs, *, Tensor(a!) out) -> ()");

#ifdef SFLLAVA_SANITIZE_TESTS
  // Test-only, in the sanitizer build alone (setup.py, SFLLAVA_SANITIZE): reads one
  // element past the end of a fresh copy of x, a planted bug that AddressSanitizer
  // must report (python_tests/ops/test_sanitizer_canary.py).
  m.def("_debug_read_past_end(Tensor x) -> Tensor");
#endif
}
