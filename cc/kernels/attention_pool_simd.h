// CPU building blocks of the fused attention pooling: 64-byte vectors (GCC
// vector extensions, lowered to whatever the target ISA has), a small
// register-blocked matrix product, and the activations with their
// derivatives. Everything has internal linkage: a translation unit compiled
// for another ISA includes its own copy.
#ifndef DEEPCTR_OPS_CC_KERNELS_ATTENTION_POOL_SIMD_H_
#define DEEPCTR_OPS_CC_KERNELS_ATTENTION_POOL_SIMD_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "cc/kernels/attention_pool.h"

// 64-byte vectors passed by value between inlined helpers: no ABI concern.
#pragma GCC diagnostic ignored "-Wpsabi"

// Helpers that take or return 64-byte vectors, or that must be compiled into
// their AVX-512 callers, are always inlined: a call between code compiled for
// different ISAs passes such vectors differently.
#define DCTR_ALWAYS_INLINE __attribute__((always_inline)) inline

namespace deepctr_ops {
namespace kernels {
namespace {

template <typename Acc>
struct Simd;

// Element-aligned (aligned(4) / aligned(8)): buffers need not be 64-byte
// aligned, and the compiler emits unaligned loads, as fast on aligned data.
template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(64), aligned(4)));
  typedef int32_t VI __attribute__((vector_size(64), aligned(4)));
  static constexpr int kLanes = 16;
};

template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(64), aligned(8)));
  static constexpr int kLanes = 8;
};

// Elements rounded up to whole vectors.
template <typename Acc>
inline int64_t Padded(int64_t n) {
  constexpr int64_t lanes = Simd<Acc>::kLanes;
  return (n + lanes - 1) / lanes * lanes;
}

template <typename Acc>
__attribute__((always_inline)) inline typename Simd<Acc>::V Splat(Acc s) {
  typename Simd<Acc>::V v = {};
  return v + s;
}

// Sum of the lanes, by halving (vector adds, then a few scalar ones).
template <typename Acc>
__attribute__((always_inline)) inline Acc HorizontalSum(typename Simd<Acc>::V v) {
  typedef Acc Half __attribute__((vector_size(32), aligned(sizeof(Acc))));
  typedef Acc Quarter __attribute__((vector_size(16), aligned(sizeof(Acc))));
  Half lo, hi;
  std::memcpy(&lo, &v, sizeof(lo));
  std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(lo), sizeof(hi));
  const Half h = lo + hi;
  Quarter qlo, qhi;
  std::memcpy(&qlo, &h, sizeof(qlo));
  std::memcpy(&qhi, reinterpret_cast<const char*>(&h) + sizeof(qlo), sizeof(qhi));
  const Quarter q = qlo + qhi;
  Acc lanes[16 / sizeof(Acc)];
  std::memcpy(lanes, &q, sizeof(q));
  Acc sum = 0;
  for (size_t l = 0; l < 16 / sizeof(Acc); ++l) sum += lanes[l];
  return sum;
}

// C[r, :] += sum_k A(r, k) * B[k, :] for r < R, over CB vectors of columns.
// A(r, k) = a[r * a_row + k * a_k]; B and C rows are ldb / ldc vectors apart.
// The body is a macro so that it is compiled twice: for the baseline (AVX)
// and, called only where the CPU has them, for AVX-512 with FMA, where the
// 64-byte vectors are single registers and larger blocks fit.
#define DEEPCTR_OPS_ATTENTION_MICRO_KERNEL_BODY                             \
  using V = typename Simd<Acc>::V;                                           \
  V acc[R][CB];                                                              \
  for (int r = 0; r < R; ++r) {                                              \
    for (int j = 0; j < CB; ++j) acc[r][j] = c[r * ldc + j];                 \
  }                                                                          \
  for (int64_t k = 0; k < depth; ++k) {                                      \
    const V* brow = b + k * ldb;                                             \
    V bv[CB];                                                                \
    for (int j = 0; j < CB; ++j) bv[j] = brow[j];                            \
    for (int r = 0; r < R; ++r) {                                            \
      V s = {};                                                              \
      s += a[r * a_row + k * a_k];                                           \
      for (int j = 0; j < CB; ++j) acc[r][j] += s * bv[j];                   \
    }                                                                        \
  }                                                                          \
  for (int r = 0; r < R; ++r) {                                              \
    for (int j = 0; j < CB; ++j) c[r * ldc + j] = acc[r][j];                 \
  }

template <typename Acc, int R, int CB>
inline void MicroKernel(int64_t depth, const Acc* a, int64_t a_row, int64_t a_k,
                        const typename Simd<Acc>::V* b, int64_t ldb,
                        typename Simd<Acc>::V* c, int64_t ldc) {
  DEEPCTR_OPS_ATTENTION_MICRO_KERNEL_BODY
}

#if defined(__x86_64__) && defined(__GNUC__)
#define DEEPCTR_OPS_ATTENTION_AVX512 1
template <typename Acc, int R, int CB>
__attribute__((target("avx512f,avx512vl,avx2,fma"), noinline)) void MicroKernelAvx512(
    int64_t depth, const Acc* a, int64_t a_row, int64_t a_k, const typename Simd<Acc>::V* b,
    int64_t ldb, typename Simd<Acc>::V* c, int64_t ldc) {
  DEEPCTR_OPS_ATTENTION_MICRO_KERNEL_BODY
}

inline bool CpuHasAvx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  return has;
}
#else
#define DEEPCTR_OPS_ATTENTION_AVX512 0
#endif
#undef DEEPCTR_OPS_ATTENTION_MICRO_KERNEL_BODY

// Register blocks: R rows times up to C vectors of accumulators (AVX-512:
// 4 x 6 of 32 zmm registers; baseline: 2 x 3 vectors, 12 of 16 ymm).
template <typename Acc, int R, int C, bool kWide>
inline void RowBlock(int64_t depth, const Acc* a, int64_t a_row, int64_t a_k,
                     const typename Simd<Acc>::V* b, int64_t ldb, typename Simd<Acc>::V* c,
                     int64_t ldc, int64_t vecs) {
  // Column chunks of nearly equal width, each at most C vectors.
  const int64_t chunks = (vecs + C - 1) / C;
  int64_t j0 = 0;
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t width = (vecs - j0) / (chunks - chunk);
    const auto* bj = b + j0;
    auto* cj = c + j0;
#if DEEPCTR_OPS_ATTENTION_AVX512
    if (kWide) {
      switch (width) {
        case 1: MicroKernelAvx512<Acc, R, 1>(depth, a, a_row, a_k, bj, ldb, cj, ldc); break;
        case 2: MicroKernelAvx512<Acc, R, 2>(depth, a, a_row, a_k, bj, ldb, cj, ldc); break;
        case 3: MicroKernelAvx512<Acc, R, 3>(depth, a, a_row, a_k, bj, ldb, cj, ldc); break;
        case 4: MicroKernelAvx512<Acc, R, 4>(depth, a, a_row, a_k, bj, ldb, cj, ldc); break;
        case 5: MicroKernelAvx512<Acc, R, 5>(depth, a, a_row, a_k, bj, ldb, cj, ldc); break;
        default: MicroKernelAvx512<Acc, R, 6>(depth, a, a_row, a_k, bj, ldb, cj, ldc); break;
      }
      j0 += width;
      continue;
    }
#endif
    switch (width) {
      case 1: MicroKernel<Acc, R, 1>(depth, a, a_row, a_k, bj, ldb, cj, ldc); break;
      case 2: MicroKernel<Acc, R, 2>(depth, a, a_row, a_k, bj, ldb, cj, ldc); break;
      default: MicroKernel<Acc, R, 3>(depth, a, a_row, a_k, bj, ldb, cj, ldc); break;
    }
    j0 += width;
  }
}

template <typename Acc, int R, int C, bool kWide>
inline void GemmBlocks(int64_t rows, int64_t depth, const Acc* a, int64_t a_row, int64_t a_k,
                       const typename Simd<Acc>::V* bv, int64_t ldb, typename Simd<Acc>::V* cv,
                       int64_t ldc, int64_t vecs) {
  int64_t r = 0;
  for (; r + R <= rows; r += R) {
    RowBlock<Acc, R, C, kWide>(depth, a + r * a_row, a_row, a_k, bv, ldb, cv + r * ldc, ldc,
                               vecs);
  }
  for (; r < rows; ++r) {
    RowBlock<Acc, 1, C, kWide>(depth, a + r * a_row, a_row, a_k, bv, ldb, cv + r * ldc, ldc,
                               vecs);
  }
}

// C[rows, vecs] += A(rows, depth) B[depth, vecs]; A(r, k) = a[r * a_row + k * a_k].
// B and C are padded matrices of whole vectors (ldb, ldc in vectors).
template <typename Acc>
inline void Gemm(int64_t rows, int64_t depth, const Acc* a, int64_t a_row, int64_t a_k,
                 const Acc* b, int64_t ldb, Acc* c, int64_t ldc, int64_t vecs) {
  using V = typename Simd<Acc>::V;
  const V* bv = reinterpret_cast<const V*>(b);
  V* cv = reinterpret_cast<V*>(c);
#if DEEPCTR_OPS_ATTENTION_AVX512
  if (CpuHasAvx512()) {
    GemmBlocks<Acc, 4, 6, true>(rows, depth, a, a_row, a_k, bv, ldb, cv, ldc, vecs);
    return;
  }
#endif
  GemmBlocks<Acc, 2, 3, false>(rows, depth, a, a_row, a_k, bv, ldb, cv, ldc, vecs);
}

// exp for float vectors: Cephes-style polynomial, ~1 ulp; inputs clamped to
// the finite range; NaN stays NaN.
__attribute__((always_inline)) inline Simd<float>::V Exp(Simd<float>::V x) {
  using V = Simd<float>::V;
  using VI = Simd<float>::VI;
  const V nan_mask_src = x;
  x = x < -87.33654f ? Splat<float>(-87.33654f) : x;
  x = x > 88.3762626647949f ? Splat<float>(88.3762626647949f) : x;
  // n = round(x / ln2) via the 1.5 * 2^23 trick (|x / ln2| < 2^22).
  const V shifter = Splat<float>(12582912.0f);
  const V n = (x * 1.44269504088896341f + shifter) - shifter;
  V r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V p = Splat<float>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const V y = p * r * r + r + 1.0f;
  // 2^n in two halves, so that n = 128 (x near the top) does not overflow.
  const VI ni = __builtin_convertvector(n, VI);
  const VI half = ni >> 1;
  const VI bits1 = (half + 127) << 23;
  const VI bits2 = (ni - half + 127) << 23;
  V s1, s2;
  std::memcpy(&s1, &bits1, sizeof(s1));
  std::memcpy(&s2, &bits2, sizeof(s2));
  const V out = y * s1 * s2;
  return nan_mask_src != nan_mask_src ? nan_mask_src : out;
}

__attribute__((always_inline)) inline Simd<double>::V Exp(Simd<double>::V x) {
  double lanes[8];
  std::memcpy(lanes, &x, sizeof(x));
  for (double& v : lanes) v = std::exp(v);
  std::memcpy(&x, lanes, sizeof(x));
  return x;
}

// act(x), in place over `vecs` vectors. NaN propagates as in TF.
#define DEEPCTR_OPS_ATTENTION_ACTIVATE_BODY                                          \
  using V = typename Simd<Acc>::V;                                                    \
  V* v = reinterpret_cast<V*>(data);                                                  \
  const V one = Splat<Acc>(1);                                                        \
  switch (act) {                                                                      \
    case AttentionActivation::kSigmoid:                                               \
      for (int64_t i = 0; i < vecs; ++i) v[i] = one / (one + Exp(-v[i]));             \
      break;                                                                          \
    case AttentionActivation::kTanh: /* 1 - 2 / (exp(2x) + 1): abs error ~1e-7 */     \
      for (int64_t i = 0; i < vecs; ++i) {                                            \
        v[i] = one - Splat<Acc>(2) / (Exp(v[i] + v[i]) + one);                        \
      }                                                                               \
      break;                                                                          \
    case AttentionActivation::kRelu:                                                  \
      for (int64_t i = 0; i < vecs; ++i) v[i] = v[i] < Splat<Acc>(0) ? Splat<Acc>(0) : v[i]; \
      break;                                                                          \
    case AttentionActivation::kLinear:                                                \
      break;                                                                          \
  }

// grad *= act'(x), computed from the activation's output `out`.
#define DEEPCTR_OPS_ATTENTION_ACTIVATION_GRAD_BODY                                   \
  using V = typename Simd<Acc>::V;                                                    \
  const V* a = reinterpret_cast<const V*>(out);                                       \
  V* g = reinterpret_cast<V*>(grad);                                                  \
  const V one = Splat<Acc>(1);                                                        \
  switch (act) {                                                                      \
    case AttentionActivation::kSigmoid:                                               \
      for (int64_t i = 0; i < vecs; ++i) g[i] = g[i] * (a[i] * (one - a[i]));         \
      break;                                                                          \
    case AttentionActivation::kTanh:                                                  \
      for (int64_t i = 0; i < vecs; ++i) g[i] = g[i] * (one - a[i] * a[i]);           \
      break;                                                                          \
    case AttentionActivation::kRelu:                                                  \
      for (int64_t i = 0; i < vecs; ++i) g[i] = a[i] > Splat<Acc>(0) ? g[i] : Splat<Acc>(0); \
      break;                                                                          \
    case AttentionActivation::kLinear:                                                \
      break;                                                                          \
  }

#if DEEPCTR_OPS_ATTENTION_AVX512
template <typename Acc>
__attribute__((target("avx512f,avx512vl,avx2,fma"), noinline)) void ActivateAvx512(
    AttentionActivation act, Acc* data, int64_t vecs) {
  if constexpr (std::is_same<Acc, float>::value) {
    if (act == AttentionActivation::kSigmoid) {
      // 1 / (1 + e): a 14-bit reciprocal estimate and one Newton step (~1 ulp)
      // instead of a division, the slowest instruction here.
      using V = Simd<float>::V;
      V* v = reinterpret_cast<V*>(data);
      const V one = Splat<float>(1), two = Splat<float>(2);
      for (int64_t i = 0; i < vecs; ++i) {
        const V d = one + Exp(-v[i]);
        __m512 dm;
        std::memcpy(&dm, &d, sizeof(dm));
        const __m512 rm = _mm512_rcp14_ps(dm);
        V r;
        std::memcpy(&r, &rm, sizeof(r));
        v[i] = r * (two - d * r);
      }
      return;
    }
  }
  DEEPCTR_OPS_ATTENTION_ACTIVATE_BODY
}

template <typename Acc>
__attribute__((target("avx512f,avx512vl,avx2,fma"), noinline)) void ActivationGradAvx512(
    AttentionActivation act, const Acc* out, Acc* grad, int64_t vecs) {
  DEEPCTR_OPS_ATTENTION_ACTIVATION_GRAD_BODY
}
#endif

template <typename Acc>
inline void Activate(AttentionActivation act, Acc* data, int64_t vecs) {
#if DEEPCTR_OPS_ATTENTION_AVX512
  if (CpuHasAvx512()) return ActivateAvx512(act, data, vecs);
#endif
  DEEPCTR_OPS_ATTENTION_ACTIVATE_BODY
}

template <typename Acc>
inline void ActivationGrad(AttentionActivation act, const Acc* out, Acc* grad, int64_t vecs) {
#if DEEPCTR_OPS_ATTENTION_AVX512
  if (CpuHasAvx512()) return ActivationGradAvx512(act, out, grad, vecs);
#endif
  DEEPCTR_OPS_ATTENTION_ACTIVATION_GRAD_BODY
}
#undef DEEPCTR_OPS_ATTENTION_ACTIVATE_BODY
#undef DEEPCTR_OPS_ATTENTION_ACTIVATION_GRAD_BODY

}  // namespace
}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_ATTENTION_POOL_SIMD_H_
