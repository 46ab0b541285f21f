// SFLLAVA_CPU_CLONES: compile a plain loop for AVX-512 (x86-64-v4), AVX2
// (x86-64-v3) and the baseline, and pick one at load time (GCC on x86-64
// Linux). The default target is SSE2, where fp16/bf16 conversions and wide
// integer math would otherwise bound the kernels rather than memory.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SFLLAVA_CPU_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SFLLAVA_CPU_CLONES
#endif
