// Function qualifiers for math written once for the CPU and the GPU: SFLLAVA_HD
// makes a function __host__ __device__ under nvcc (and plain inline elsewhere), so
// that the CPU tests run the very code the CUDA kernels run.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define SFLLAVA_HD __host__ __device__ __forceinline__
#define SFLLAVA_UNROLL _Pragma("unroll")
#else
#define SFLLAVA_HD inline
#define SFLLAVA_UNROLL
#endif
