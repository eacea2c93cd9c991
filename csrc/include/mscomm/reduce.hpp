// Element-wise reductions used by every reducing collective. Compiled for several x86-64 levels
// and chosen at run time (a wheel built on one machine runs on another); float16 and bfloat16
// are accumulated in float32 and rounded once.
#pragma once
#include <cstddef>

#include "mscomm/dtype.hpp"

namespace mscomm {

// dst[i] = op(srcs[0][i], ..., srcs[n-1][i]), combining in the order given, so every rank that
// reduces the same inputs gets bit-identical results. Avg sums and divides by n. dst may alias
// any source. When `also` is given the result is stored there too (saves a second pass).
void reduce(void* dst, const void* const* srcs, int n, size_t count, DataType dtype, ReduceOp op,
            void* also = nullptr);

// data[i] /= divisor (finishes an Avg that was reduced as a Sum in several steps). Integers
// divide with truncation toward zero.
void divide(void* data, size_t count, DataType dtype, int divisor);

// memcpy with streaming (non-temporal) stores, for large data nobody reads again soon; ordered
// before anything the caller does next (copy.cpp).
void stream_copy(void* dst, const void* src, size_t bytes);

}  // namespace mscomm
