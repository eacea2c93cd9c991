#include "mscomm/reduce.hpp"

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "mscomm/errors.hpp"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MSCOMM_MULTIVERSION __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define MSCOMM_MULTIVERSION
#endif
#define MSCOMM_INLINE __attribute__((always_inline)) inline

namespace mscomm {

namespace {

struct BFloat16 {
  uint16_t bits;
};

// Storage type -> the type arithmetic happens in.
template <class T> struct AccumOf { using type = T; };
template <> struct AccumOf<_Float16> { using type = float; };
template <> struct AccumOf<BFloat16> { using type = float; };

template <class T> MSCOMM_INLINE typename AccumOf<T>::type load(T v) { return static_cast<typename AccumOf<T>::type>(v); }
template <> MSCOMM_INLINE float load<BFloat16>(BFloat16 v) {
  uint32_t u = static_cast<uint32_t>(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

template <class T> MSCOMM_INLINE T store(typename AccumOf<T>::type v) { return static_cast<T>(v); }
template <> MSCOMM_INLINE BFloat16 store<BFloat16>(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t nan = (u & 0x7fffffffu) > 0x7f800000u;
  uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;  // round to nearest even
  return BFloat16{static_cast<uint16_t>(nan ? ((u >> 16) | 0x40u) : rounded)};
}

// Integer sums and products wrap modulo 2^bits, as numpy's do; computed unsigned to stay defined.
template <class A> MSCOMM_INLINE A add(A a, A b) {
  if constexpr (std::is_integral_v<A>) {
    using U = std::make_unsigned_t<A>;
    return static_cast<A>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
  } else {
    return a + b;
  }
}
template <class A> MSCOMM_INLINE A mul(A a, A b) {
  if constexpr (std::is_integral_v<A>) {
    using U = std::conditional_t<(sizeof(A) < sizeof(unsigned)), unsigned, std::make_unsigned_t<A>>;
    return static_cast<A>(static_cast<U>(static_cast<U>(a) * static_cast<U>(b)));
  } else {
    return a * b;
  }
}

struct Sum { template <class A> MSCOMM_INLINE A operator()(A a, A b) const { return add(a, b); } };
struct Prod { template <class A> MSCOMM_INLINE A operator()(A a, A b) const { return mul(a, b); } };
struct Min { template <class A> MSCOMM_INLINE A operator()(A a, A b) const { return b < a ? b : a; } };
struct Max { template <class A> MSCOMM_INLINE A operator()(A a, A b) const { return a < b ? b : a; } };

constexpr size_t kTile = 256;

// out[i] = op(a[i], b[i]) (then / divisor), in one pass that stays in vector registers.
template <class T, class Op>
MSCOMM_INLINE void combine(T* out, const T* a, const T* b, size_t count, Op op, int divisor) {
  using A = typename AccumOf<T>::type;
  if (divisor > 1) {
    const A d = static_cast<A>(divisor);
    for (size_t i = 0; i < count; ++i) out[i] = store<T>(op(load(a[i]), load(b[i])) / d);
  } else {
    for (size_t i = 0; i < count; ++i) out[i] = store<T>(op(load(a[i]), load(b[i])));
  }
}

// Where arithmetic happens in the storage type, combining pairwise in rank order gives exactly
// the sequential result: ((s0 op s1) op s2) ...
template <class T, class Op>
MSCOMM_INLINE void reduce_pairwise(T* dst, const T* const* srcs, int n, size_t count, Op op, int divisor) {
  // dst may be one of the sources (in place); the first pass overwrites it, so a source from the
  // third on that dst aliases is read from a copy of its chunk, keeping the order of the sum.
  int aliased = -1;
  for (int k = 2; k < n; ++k)
    if (srcs[k] == dst) aliased = k;
  T saved[16 * kTile];  // 32 KiB at most, untouched unless aliased
  for (size_t base = 0; base < count; base += 16 * kTile) {  // chunks stay in L1 across passes
    const size_t m = count - base < 16 * kTile ? count - base : 16 * kTile;
    T* out = dst + base;
    if (n == 1) {
      combine(out, srcs[0] + base, srcs[0] + base, m, [](auto a, auto) { return a; }, divisor);
      continue;
    }
    if (aliased >= 0) std::memcpy(saved, out, m * sizeof(T));
    combine(out, srcs[0] + base, srcs[1] + base, m, op, n == 2 ? divisor : 1);
    for (int k = 2; k < n; ++k)
      combine(out, out, k == aliased ? saved : srcs[k] + base, m, op, k == n - 1 ? divisor : 1);
  }
}

// float16/bfloat16 from more than two ranks: accumulate a tile in float32, round once.
template <class T, class Op>
MSCOMM_INLINE void reduce_tiles(T* dst, const T* const* srcs, int n, size_t count, Op op, int divisor) {
  float acc[kTile];
  for (size_t base = 0; base < count; base += kTile) {
    const size_t m = count - base < kTile ? count - base : kTile;
    const T* s0 = srcs[0] + base;
    for (size_t i = 0; i < m; ++i) acc[i] = load(s0[i]);
    for (int k = 1; k < n; ++k) {
      const T* s = srcs[k] + base;
      for (size_t i = 0; i < m; ++i) acc[i] = op(acc[i], load(s[i]));
    }
    T* out = dst + base;
    if (divisor > 1)
      for (size_t i = 0; i < m; ++i) out[i] = store<T>(acc[i] / static_cast<float>(divisor));
    else
      for (size_t i = 0; i < m; ++i) out[i] = store<T>(acc[i]);
  }
}

template <class T, class Op>
MSCOMM_INLINE void reduce_with(T* dst, T* also, const T* const* srcs, int n, size_t count, Op op, int divisor) {
  if constexpr (std::is_same_v<T, typename AccumOf<T>::type>) {
    reduce_pairwise(dst, srcs, n, count, op, divisor);
  } else {
    if (n <= 2) reduce_pairwise(dst, srcs, n, count, op, divisor);
    else reduce_tiles(dst, srcs, n, count, op, divisor);
  }
  if (also) std::memcpy(also, dst, count * sizeof(T));
}

template <class T>
MSCOMM_INLINE void reduce_typed(void* dst, void* also, const void* const* srcs, int n, size_t count, ReduceOp op) {
  T* d = static_cast<T*>(dst);
  T* a = static_cast<T*>(also);
  const T* const* s = reinterpret_cast<const T* const*>(srcs);
  switch (op) {
    case ReduceOp::Sum: return reduce_with(d, a, s, n, count, Sum{}, 1);
    case ReduceOp::Avg: return reduce_with(d, a, s, n, count, Sum{}, n);
    case ReduceOp::Prod: return reduce_with(d, a, s, n, count, Prod{}, 1);
    case ReduceOp::Min: return reduce_with(d, a, s, n, count, Min{}, 1);
    case ReduceOp::Max: return reduce_with(d, a, s, n, count, Max{}, 1);
  }
}

template <class T>
MSCOMM_INLINE void divide_typed(void* data, size_t count, int divisor) {
  T* p = static_cast<T*>(data);
  using A = typename AccumOf<T>::type;
  const A d = static_cast<A>(divisor);
  for (size_t i = 0; i < count; ++i) p[i] = store<T>(load(p[i]) / d);
}

#define MSCOMM_DEFINE_KERNELS(NAME, T)                                                                       \
  MSCOMM_MULTIVERSION void reduce_##NAME(void* dst, void* also, const void* const* srcs, int n, size_t count,  \
                                         ReduceOp op) {                                                      \
    reduce_typed<T>(dst, also, srcs, n, count, op);                                                          \
  }                                                                                                          \
  MSCOMM_MULTIVERSION void divide_##NAME(void* data, size_t count, int divisor) { divide_typed<T>(data, count, divisor); }

MSCOMM_DEFINE_KERNELS(i8, int8_t)
MSCOMM_DEFINE_KERNELS(u8, uint8_t)
MSCOMM_DEFINE_KERNELS(i32, int32_t)
MSCOMM_DEFINE_KERNELS(i64, int64_t)
MSCOMM_DEFINE_KERNELS(f16, _Float16)
MSCOMM_DEFINE_KERNELS(bf16, BFloat16)
MSCOMM_DEFINE_KERNELS(f32, float)
MSCOMM_DEFINE_KERNELS(f64, double)
#undef MSCOMM_DEFINE_KERNELS

}  // namespace

void reduce(void* dst, const void* const* srcs, int n, size_t count, DataType dtype, ReduceOp op, void* also) {
  switch (dtype) {
    case DataType::Int8: return reduce_i8(dst, also, srcs, n, count, op);
    case DataType::Uint8: return reduce_u8(dst, also, srcs, n, count, op);
    case DataType::Int32: return reduce_i32(dst, also, srcs, n, count, op);
    case DataType::Int64: return reduce_i64(dst, also, srcs, n, count, op);
    case DataType::Float16: return reduce_f16(dst, also, srcs, n, count, op);
    case DataType::BFloat16: return reduce_bf16(dst, also, srcs, n, count, op);
    case DataType::Float32: return reduce_f32(dst, also, srcs, n, count, op);
    case DataType::Float64: return reduce_f64(dst, also, srcs, n, count, op);
  }
  throw InternalError("reduce: unknown dtype");
}

void divide(void* data, size_t count, DataType dtype, int divisor) {
  switch (dtype) {
    case DataType::Int8: return divide_i8(data, count, divisor);
    case DataType::Uint8: return divide_u8(data, count, divisor);
    case DataType::Int32: return divide_i32(data, count, divisor);
    case DataType::Int64: return divide_i64(data, count, divisor);
    case DataType::Float16: return divide_f16(data, count, divisor);
    case DataType::BFloat16: return divide_bf16(data, count, divisor);
    case DataType::Float32: return divide_f32(data, count, divisor);
    case DataType::Float64: return divide_f64(data, count, divisor);
  }
  throw InternalError("divide: unknown dtype");
}

}  // namespace mscomm
