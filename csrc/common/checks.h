// Argument-naming checks shared by every op.
//
// A user mistake must say which op, which argument, what was expected and what
// arrived, and must surface in Python as a typed exception:
//   SFLLAVA_CHECK_VALUE -> ValueError, SFLLAVA_CHECK_TYPE -> TypeError.
#pragma once

#include <c10/util/Exception.h>

#define SFLLAVA_CHECK_VALUE(op, cond, ...) \
  TORCH_CHECK_VALUE((cond), op, ": ", __VA_ARGS__)

#define SFLLAVA_CHECK_TYPE(op, cond, ...) \
  TORCH_CHECK_TYPE((cond), op, ": ", __VA_ARGS__)

// `arg` must be a floating tensor the op computes in (fp64 exists for gradcheck).
#define SFLLAVA_CHECK_FLOATING(op, tensor, arg)                                   \
  SFLLAVA_CHECK_TYPE(op,                                                          \
                     (tensor).scalar_type() == at::kFloat ||                      \
                         (tensor).scalar_type() == at::kHalf ||                   \
                         (tensor).scalar_type() == at::kBFloat16 ||               \
                         (tensor).scalar_type() == at::kDouble,                   \
                     arg " must be float32, float16, bfloat16 or float64, got ", \
                     (tensor).scalar_type())
