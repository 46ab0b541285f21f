// The Python extension module sfllava_ext._C. The ops themselves are reached
// through torch.ops.sfllava (registered by loading this library); the module
// only reports how it was built.
#include <torch/extension.h>

#ifndef SFLLAVA_TORCH_VERSION
#define SFLLAVA_TORCH_VERSION "unknown"
#endif
#ifndef SFLLAVA_CUDA_ARCHS
#define SFLLAVA_CUDA_ARCHS ""
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "sfllava_ext kernels (ops live in torch.ops.sfllava)";
  m.def(
      "build_info",
      []() {
        pybind11::dict info;
        info["torch_version"] = SFLLAVA_TORCH_VERSION;
#ifdef SFLLAVA_WITH_CUDA
        info["cuda"] = true;
        info["cuda_archs"] = SFLLAVA_CUDA_ARCHS;
#else
        info["cuda"] = false;
        info["cuda_archs"] = "";
#endif
#ifdef _OPENMP
        info["openmp"] = true;
#else
        info["openmp"] = false;
#endif
        return info;
      },
      "How this extension was built: torch_version (built against), cuda (CUDA kernels "
      "compiled in), cuda_archs, openmp.");
}
