// What the CPU kernels may use on this CPU: x86 SIMD levels detected at run
// time, capped by the environment variable SFLLAVA_CPU_ISA (scalar | avx2 |
// avx512; unset = everything) so that tests can run every version of a kernel
// on one machine and compare their bytes.
#pragma once

#include <c10/util/Exception.h>

#include <cstdlib>
#include <string>

namespace sfllava {
namespace cpu_rows {

struct CpuFeatures {
  bool avx2 = false;
  bool avx512 = false;     // F + BW + VL
  bool vbmi = false;       // AVX-512 VBMI (byte permutations)
  bool vbmi_vnni = false;  // AVX-512 VBMI and VNNI
};

// What the hardware has, detected once.
inline const CpuFeatures& cpu_hardware() {
  static const CpuFeatures hardware = [] {
    CpuFeatures f;
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    f.avx2 = __builtin_cpu_supports("avx2");
    f.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl");
    f.vbmi = f.avx512 && __builtin_cpu_supports("avx512vbmi");
    f.vbmi_vnni = f.vbmi && __builtin_cpu_supports("avx512vnni");
#endif
    return f;
  }();
  return hardware;
}

// The hardware's features under the SFLLAVA_CPU_ISA cap, read at each call (the
// tests change it between calls); an unknown cap is an error, not a silent no-op.
inline CpuFeatures cpu_features() {
  CpuFeatures f = cpu_hardware();
  const char* cap = std::getenv("SFLLAVA_CPU_ISA");
  if (cap == nullptr || *cap == '\0') return f;
  const std::string isa(cap);
  TORCH_CHECK_VALUE(isa == "scalar" || isa == "avx2" || isa == "avx512",
                    "SFLLAVA_CPU_ISA must be scalar, avx2 or avx512 (or unset), got '", isa, "'");
  if (isa == "scalar") f = CpuFeatures{};
  if (isa == "avx2") f.avx512 = f.vbmi = f.vbmi_vnni = false;
  if (isa == "avx512") f.vbmi = f.vbmi_vnni = false;
  return f;
}

}  // namespace cpu_rows
}  // namespace sfllava
