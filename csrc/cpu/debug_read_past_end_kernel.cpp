// The sanitizer build's canary (setup.py, SFLLAVA_SANITIZE; compiled to nothing
// otherwise): a planted out-of-bounds read that AddressSanitizer must report.
//
// It copies x into a fresh tensor, whose storage comes from torch's CPU allocator
// (posix_memalign) exactly as a kernel's output does, and reads one element past
// its end. ASan's report proves that the runtime is loaded, that our code is
// instrumented, and that it watches the bounds of tensor storage allocated by the
// uninstrumented torch -- the buffers every kernel reads and writes.
#ifdef SFLLAVA_SANITIZE_TESTS

#include <ATen/ATen.h>
#include <torch/library.h>

#include "../common/checks.h"

namespace sfllava {
namespace {

at::Tensor debug_read_past_end_cpu(const at::Tensor& x) {
  SFLLAVA_CHECK_TYPE("_debug_read_past_end", x.scalar_type() == at::kFloat,
                     "x must be float32, got ", x.scalar_type());
  SFLLAVA_CHECK_VALUE("_debug_read_past_end", x.numel() > 0, "x must not be empty, got ",
                      x.sizes());
  const at::Tensor copy = x.contiguous().clone();
  const float* data = copy.const_data_ptr<float>();
  // volatile: the read stays, whatever the optimiser concludes about it.
  const volatile float* past_end = data + copy.numel();
  const float value = *past_end;  // the planted bug: one element out of bounds
  return at::full({}, value, x.options());
}

}  // namespace

TORCH_LIBRARY_IMPL(sfllava, CPU, m) {
  m.impl("_debug_read_past_end", &debug_read_past_end_cpu);
}

}  // namespace sfllava

#endif  // SFLLAVA_SANITIZE_TESTS
