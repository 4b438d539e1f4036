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

#include "cc/kernels/attention_pool.h"

// 64-byte vectors passed by value between inlined helpers: no ABI concern.
#pragma GCC diagnostic ignored "-Wpsabi"

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
inline typename Simd<Acc>::V Splat(Acc s) {
  typename Simd<Acc>::V v = {};
  return v + s;
}

template <typename Acc>
inline Acc HorizontalSum(typename Simd<Acc>::V v) {
  Acc lanes[Simd<Acc>::kLanes];
  std::memcpy(lanes, &v, sizeof(v));
  Acc sum = 0;
  for (int l = 0; l < Simd<Acc>::kLanes; ++l) sum += lanes[l];
  return sum;
}

// C[r, :] += sum_k A(r, k) * B[k, :] for r < R, over CB vectors of columns.
// A(r, k) = a[r * a_row + k * a_k]; B and C rows are ldb / ldc vectors apart.
template <typename Acc, int R, int CB>
inline void MicroKernel(int64_t depth, const Acc* a, int64_t a_row, int64_t a_k,
                        const typename Simd<Acc>::V* b, int64_t ldb,
                        typename Simd<Acc>::V* c, int64_t ldc) {
  using V = typename Simd<Acc>::V;
  V acc[R][CB];
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < CB; ++j) acc[r][j] = c[r * ldc + j];
  }
  for (int64_t k = 0; k < depth; ++k) {
    const V* brow = b + k * ldb;
    V bv[CB];
    for (int j = 0; j < CB; ++j) bv[j] = brow[j];
    for (int r = 0; r < R; ++r) {
      const V s = Splat<Acc>(a[r * a_row + k * a_k]);
      for (int j = 0; j < CB; ++j) acc[r][j] += s * bv[j];
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < CB; ++j) c[r * ldc + j] = acc[r][j];
  }
}

// Register blocks: kRows rows times up to kCols vectors of accumulators.
constexpr int kRows = 4;
constexpr int kCols = 6;

template <typename Acc, int R>
inline void RowBlock(int64_t depth, const Acc* a, int64_t a_row, int64_t a_k,
                     const typename Simd<Acc>::V* b, int64_t ldb, typename Simd<Acc>::V* c,
                     int64_t ldc, int64_t vecs) {
  // Column chunks of nearly equal width, each at most kCols vectors.
  const int64_t chunks = (vecs + kCols - 1) / kCols;
  int64_t j0 = 0;
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t width = (vecs - j0) / (chunks - chunk);
    const auto* bj = b + j0;
    auto* cj = c + j0;
    switch (width) {
      case 1: MicroKernel<Acc, R, 1>(depth, a, a_row, a_k, bj, ldb, cj, ldc); break;
      case 2: MicroKernel<Acc, R, 2>(depth, a, a_row, a_k, bj, ldb, cj, ldc); break;
      case 3: MicroKernel<Acc, R, 3>(depth, a, a_row, a_k, bj, ldb, cj, ldc); break;
      case 4: MicroKernel<Acc, R, 4>(depth, a, a_row, a_k, bj, ldb, cj, ldc); break;
      case 5: MicroKernel<Acc, R, 5>(depth, a, a_row, a_k, bj, ldb, cj, ldc); break;
      default: MicroKernel<Acc, R, 6>(depth, a, a_row, a_k, bj, ldb, cj, ldc); break;
    }
    j0 += width;
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
  int64_t r = 0;
  for (; r + kRows <= rows; r += kRows) {
    RowBlock<Acc, kRows>(depth, a + r * a_row, a_row, a_k, bv, ldb, cv + r * ldc, ldc, vecs);
  }
  for (; r < rows; ++r) {
    RowBlock<Acc, 1>(depth, a + r * a_row, a_row, a_k, bv, ldb, cv + r * ldc, ldc, vecs);
  }
}

// exp for float vectors: Cephes-style polynomial, ~1 ulp; inputs clamped to
// the finite range; NaN stays NaN.
inline Simd<float>::V Exp(Simd<float>::V x) {
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

inline Simd<double>::V Exp(Simd<double>::V x) {
  double lanes[8];
  std::memcpy(lanes, &x, sizeof(x));
  for (double& v : lanes) v = std::exp(v);
  std::memcpy(&x, lanes, sizeof(x));
  return x;
}

// act(x), in place over `vecs` vectors. NaN propagates as in TF.
template <typename Acc>
inline void Activate(AttentionActivation act, Acc* data, int64_t vecs) {
  using V = typename Simd<Acc>::V;
  V* v = reinterpret_cast<V*>(data);
  const V one = Splat<Acc>(1);
  switch (act) {
    case AttentionActivation::kSigmoid:
      for (int64_t i = 0; i < vecs; ++i) v[i] = one / (one + Exp(-v[i]));
      break;
    case AttentionActivation::kTanh:
      // 1 - 2 / (exp(2x) + 1): exact limits +-1, abs error ~1e-7 near 0 (float).
      for (int64_t i = 0; i < vecs; ++i) {
        v[i] = one - Splat<Acc>(2) / (Exp(v[i] + v[i]) + one);
      }
      break;
    case AttentionActivation::kRelu:
      for (int64_t i = 0; i < vecs; ++i) v[i] = v[i] < Splat<Acc>(0) ? Splat<Acc>(0) : v[i];
      break;
    case AttentionActivation::kLinear:
      break;
  }
}

// grad *= act'(x), computed from the activation's output `out`.
template <typename Acc>
inline void ActivationGrad(AttentionActivation act, const Acc* out, Acc* grad, int64_t vecs) {
  using V = typename Simd<Acc>::V;
  const V* a = reinterpret_cast<const V*>(out);
  V* g = reinterpret_cast<V*>(grad);
  const V one = Splat<Acc>(1);
  switch (act) {
    case AttentionActivation::kSigmoid:
      for (int64_t i = 0; i < vecs; ++i) g[i] = g[i] * (a[i] * (one - a[i]));
      break;
    case AttentionActivation::kTanh:
      for (int64_t i = 0; i < vecs; ++i) g[i] = g[i] * (one - a[i] * a[i]);
      break;
    case AttentionActivation::kRelu:
      for (int64_t i = 0; i < vecs; ++i) g[i] = a[i] > Splat<Acc>(0) ? g[i] : Splat<Acc>(0);
      break;
    case AttentionActivation::kLinear:
      break;
  }
}

}  // namespace
}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_ATTENTION_POOL_SIMD_H_
