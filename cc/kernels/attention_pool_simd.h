// CPU building blocks of the fused attention pooling: 64-byte vectors (GCC
// vector extensions, lowered to whatever the target ISA has), a small
// register-blocked matrix product, and the activations with their
// derivatives, each specialised per instruction set (Isa). Everything has
// internal linkage: a translation unit compiled for another ISA includes its
// own copy.
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
#include "cc/kernels/cpu_isa.h"

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

// W: the register vector of kBytes (64: AVX-512; 32: AVX and AVX2, on which
// GCC would split 64-byte vectors poorly, through the stack), element-aligned.
// A macro, not a template: GCC drops a vector type's attributes (aligned)
// when it is a template argument.
#define DEEPCTR_OPS_ATTENTION_REGISTER(kBytes) \
  typedef Acc W __attribute__((vector_size(kBytes), aligned(sizeof(Acc))))

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

// The instruction sets the CPU code is compiled for, each a copy of the shard
// loops with everything they call inlined or specialised for it: the
// baseline (AVX, no FMA), AVX2 with FMA, and AVX-512 with FMA.
using Isa = CpuIsa;

#if defined(__x86_64__) && defined(__GNUC__)
#define DEEPCTR_OPS_ATTENTION_X86 1
#define DEEPCTR_OPS_ATTENTION_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define DEEPCTR_OPS_ATTENTION_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512vl,avx2,fma")))
#else
#define DEEPCTR_OPS_ATTENTION_X86 0
#endif

// How a product starts: C += A B, C = A B, or C = (bias row) + A B.
enum class GemmInit : int { kAdd, kSet, kBias };

// C[r, :] (+)= sum_k A(r, k) * B[k, :] for r < R, over CB register vectors W
// of columns. A(r, k) = a[r * a_row + k * a_k]; B and C rows are ldb / ldc
// W apart; `bias`: CB W, read with GemmInit::kBias. Each element is summed
// over k in increasing order whatever the block shape, so the blocking never
// changes a result. The body is a macro so that it is compiled once per
// instruction set (W: 64 bytes with AVX-512, 32 with AVX2 and AVX).
#define DEEPCTR_OPS_ATTENTION_MICRO_KERNEL_BODY                             \
  DEEPCTR_OPS_ATTENTION_REGISTER(kBytes);                                    \
  const W* b = reinterpret_cast<const W*>(b_in);                             \
  W* c = reinterpret_cast<W*>(c_in);                                         \
  const W* bias = reinterpret_cast<const W*>(bias_in);                       \
  W acc[R][CB];                                                              \
  if (init == GemmInit::kAdd) {                                              \
    for (int r = 0; r < R; ++r) {                                            \
      for (int j = 0; j < CB; ++j) acc[r][j] = c[r * ldc + j];               \
    }                                                                        \
  } else if (init == GemmInit::kBias) {                                      \
    for (int r = 0; r < R; ++r) {                                            \
      for (int j = 0; j < CB; ++j) acc[r][j] = bias[j];                      \
    }                                                                        \
  } else {                                                                   \
    for (int r = 0; r < R; ++r) {                                            \
      for (int j = 0; j < CB; ++j) acc[r][j] = W{};                          \
    }                                                                        \
  }                                                                          \
  for (int64_t k = 0; k < depth; ++k) {                                      \
    const W* brow = b + k * ldb;                                             \
    W bv[CB];                                                                \
    for (int j = 0; j < CB; ++j) bv[j] = brow[j];                            \
    for (int r = 0; r < R; ++r) {                                            \
      /* x - 0 is x for every x (x + 0 is not, for -0), so this folds to */  \
      /* a broadcast load. */                                                \
      const W s = a[r * a_row + k * a_k] - W{};                              \
      for (int j = 0; j < CB; ++j) acc[r][j] += s * bv[j];                   \
    }                                                                        \
  }                                                                          \
  for (int r = 0; r < R; ++r) {                                              \
    for (int j = 0; j < CB; ++j) c[r * ldc + j] = acc[r][j];                 \
  }

#define DEEPCTR_OPS_ATTENTION_MICRO_KERNEL_W_ARGS                                       \
  int64_t depth, const Acc *a, int64_t a_row, int64_t a_k, const Acc *b_in, int64_t ldb, \
      Acc *c_in, int64_t ldc, GemmInit init, const Acc *bias_in

template <typename Acc, int kBytes, int R, int CB>
inline void MicroKernel(DEEPCTR_OPS_ATTENTION_MICRO_KERNEL_W_ARGS) {
  DEEPCTR_OPS_ATTENTION_MICRO_KERNEL_BODY
}

#if DEEPCTR_OPS_ATTENTION_X86
template <typename Acc, int kBytes, int R, int CB>
DEEPCTR_OPS_ATTENTION_TARGET_AVX2 __attribute__((noinline)) void MicroKernelAvx2(
    DEEPCTR_OPS_ATTENTION_MICRO_KERNEL_W_ARGS) {
  DEEPCTR_OPS_ATTENTION_MICRO_KERNEL_BODY
}

template <typename Acc, int kBytes, int R, int CB>
DEEPCTR_OPS_ATTENTION_TARGET_AVX512 __attribute__((noinline)) void MicroKernelAvx512(
    DEEPCTR_OPS_ATTENTION_MICRO_KERNEL_W_ARGS) {
  DEEPCTR_OPS_ATTENTION_MICRO_KERNEL_BODY
}
#endif
#undef DEEPCTR_OPS_ATTENTION_MICRO_KERNEL_W_ARGS

// Arguments in 64-byte vectors (Simd<Acc>::V), as the callers keep them.
#define DEEPCTR_OPS_ATTENTION_MICRO_KERNEL_ARGS                                             \
  int64_t depth, const Acc *a, int64_t a_row, int64_t a_k, const typename Simd<Acc>::V *b, \
      int64_t ldb, typename Simd<Acc>::V *c, int64_t ldc, GemmInit init,                    \
      const typename Simd<Acc>::V *bias
#undef DEEPCTR_OPS_ATTENTION_MICRO_KERNEL_BODY

// Register blocks per instruction set: at most kMaxCols vectors of columns,
// and RowsFor(cols) rows, so that the accumulators, one row of B and a
// broadcast fit in the registers (AVX-512: 32 zmm, with at least 8
// accumulators in flight to hide the FMA latency; AVX2: 16 ymm, the classic
// 6 x 16-float block; baseline: 2 x 3 vectors, as 16 ymm allow without FMA).
template <Isa kIsa>
struct Blocking;

template <>
struct Blocking<Isa::kAvx512> {
  static constexpr int kMaxCols = 6;
  static constexpr int RowsFor(int cols) { return cols <= 3 ? 8 : cols == 4 ? 6 : 4; }
};

template <>
struct Blocking<Isa::kAvx2Fma> {
  static constexpr int kMaxCols = 1;
  static constexpr int RowsFor(int) { return 6; }
};

template <>
struct Blocking<Isa::kBaseline> {
  static constexpr int kMaxCols = 3;
  static constexpr int RowsFor(int) { return 2; }
};

template <typename Acc, Isa kIsa, int R, int CB>
inline void Block(DEEPCTR_OPS_ATTENTION_MICRO_KERNEL_ARGS) {
  const Acc* bs = reinterpret_cast<const Acc*>(b);
  Acc* cs = reinterpret_cast<Acc*>(c);
  const Acc* biass = reinterpret_cast<const Acc*>(bias);
#if DEEPCTR_OPS_ATTENTION_X86
  if constexpr (kIsa == Isa::kAvx512) {
    MicroKernelAvx512<Acc, 64, R, CB>(depth, a, a_row, a_k, bs, ldb, cs, ldc, init, biass);
    return;
  }
  // Each 64-byte vector as two 32-byte registers.
  if constexpr (kIsa == Isa::kAvx2Fma) {
    MicroKernelAvx2<Acc, 32, R, 2 * CB>(depth, a, a_row, a_k, bs, 2 * ldb, cs, 2 * ldc, init,
                                        biass);
    return;
  }
#endif
  MicroKernel<Acc, 32, R, 2 * CB>(depth, a, a_row, a_k, bs, 2 * ldb, cs, 2 * ldc, init, biass);
}

// The last `rows` (< R) rows of a column chunk, as one block of that height.
template <typename Acc, Isa kIsa, int R, int CB>
inline void TailBlock(int64_t rows, DEEPCTR_OPS_ATTENTION_MICRO_KERNEL_ARGS) {
  if constexpr (R > 1) {
    if (rows == R - 1) {
      Block<Acc, kIsa, R - 1, CB>(depth, a, a_row, a_k, b, ldb, c, ldc, init, bias);
    } else {
      TailBlock<Acc, kIsa, R - 1, CB>(rows, depth, a, a_row, a_k, b, ldb, c, ldc, init, bias);
    }
  }
}

// All rows of one column chunk of CB vectors.
template <typename Acc, Isa kIsa, int CB>
inline void ColumnChunk(int64_t rows, DEEPCTR_OPS_ATTENTION_MICRO_KERNEL_ARGS) {
  constexpr int R = Blocking<kIsa>::RowsFor(CB);
  int64_t r = 0;
  for (; r + R <= rows; r += R) {
    Block<Acc, kIsa, R, CB>(depth, a + r * a_row, a_row, a_k, b, ldb, c + r * ldc, ldc, init,
                            bias);
  }
  if (r < rows) {
    TailBlock<Acc, kIsa, R, CB>(rows - r, depth, a + r * a_row, a_row, a_k, b, ldb,
                                c + r * ldc, ldc, init, bias);
  }
}

#undef DEEPCTR_OPS_ATTENTION_MICRO_KERNEL_ARGS

// C[rows, vecs] (+)= A(rows, depth) B[depth, vecs] as `init` says;
// A(r, k) = a[r * a_row + k * a_k]. B, C and `bias` (a row, for
// GemmInit::kBias) are padded matrices of whole vectors (ldb, ldc in vectors).
template <typename Acc, Isa kIsa>
inline void Gemm(int64_t rows, int64_t depth, const Acc* a, int64_t a_row, int64_t a_k,
                 const Acc* b, int64_t ldb, Acc* c, int64_t ldc, int64_t vecs,
                 GemmInit init = GemmInit::kAdd, const Acc* bias = nullptr) {
  using V = typename Simd<Acc>::V;
  constexpr int kMaxCols = Blocking<kIsa>::kMaxCols;
  const V* bv = reinterpret_cast<const V*>(b);
  V* cv = reinterpret_cast<V*>(c);
  const V* biasv = reinterpret_cast<const V*>(bias);
  // Column chunks of nearly equal width, each at most kMaxCols vectors.
  const int64_t chunks = (vecs + kMaxCols - 1) / kMaxCols;
  int64_t j0 = 0;
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t width = (vecs - j0) / (chunks - chunk);
    const V* bj = bv + j0;
    V* cj = cv + j0;
    const V* biasj = biasv != nullptr ? biasv + j0 : nullptr;
    switch (width) {
#define DEEPCTR_OPS_ATTENTION_CHUNK(CB)                                                   \
  case CB:                                                                               \
    if constexpr (CB <= kMaxCols) {                                                      \
      ColumnChunk<Acc, kIsa, CB>(rows, depth, a, a_row, a_k, bj, ldb, cj, ldc, init, biasj); \
    }                                                                                    \
    break;
      DEEPCTR_OPS_ATTENTION_CHUNK(1)
      DEEPCTR_OPS_ATTENTION_CHUNK(2)
      DEEPCTR_OPS_ATTENTION_CHUNK(3)
      DEEPCTR_OPS_ATTENTION_CHUNK(4)
      DEEPCTR_OPS_ATTENTION_CHUNK(5)
      DEEPCTR_OPS_ATTENTION_CHUNK(6)
#undef DEEPCTR_OPS_ATTENTION_CHUNK
      default:
        break;
    }
    j0 += width;
  }
}

// exp, lane by lane, of a float or double vector W (any width). float:
// Cephes-style polynomial, ~1 ulp; inputs clamped to the finite range; NaN
// stays NaN. double: std::exp.
template <typename Acc, typename W>
__attribute__((always_inline)) inline W Exp(W x) {
  if constexpr (std::is_same<Acc, float>::value) {
    typedef int32_t WI __attribute__((vector_size(sizeof(W)), aligned(4)));
    const W zero = {};
    const W nan_mask_src = x;
    x = x < -87.33654f ? zero - 87.33654f : x;
    x = x > 88.3762626647949f ? zero + 88.3762626647949f : x;
    // n = round(x / ln2) via the 1.5 * 2^23 trick (|x / ln2| < 2^22).
    const W shifter = zero + 12582912.0f;
    const W n = (x * 1.44269504088896341f + shifter) - shifter;
    W r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    W p = zero + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const W y = p * r * r + r + 1.0f;
    // 2^n in two halves, so that n = 128 (x near the top) does not overflow.
    const WI ni = __builtin_convertvector(n, WI);
    const WI half = ni >> 1;
    const WI bits1 = (half + 127) << 23;
    const WI bits2 = (ni - half + 127) << 23;
    W s1, s2;
    std::memcpy(&s1, &bits1, sizeof(s1));
    std::memcpy(&s2, &bits2, sizeof(s2));
    const W out = y * s1 * s2;
    return nan_mask_src != nan_mask_src ? nan_mask_src : out;
  } else {
    double lanes[sizeof(W) / sizeof(double)];
    std::memcpy(lanes, &x, sizeof(x));
    for (double& v : lanes) v = std::exp(v);
    std::memcpy(&x, lanes, sizeof(x));
    return x;
  }
}

// act(x), in place over `vecs` vectors of each of `rows` rows `stride`
// elements apart. NaN propagates as in TF.
#define DEEPCTR_OPS_ATTENTION_ACTIVATE_BODY                                          \
  const W zero = {};                                                                  \
  const W one = zero + Acc(1);                                                        \
  const int64_t ws = vecs * static_cast<int64_t>(sizeof(typename Simd<Acc>::V) / sizeof(W)); \
  for (int64_t row = 0; row < rows; ++row) {                                          \
    W* v = reinterpret_cast<W*>(data + row * stride);                                 \
    switch (act) {                                                                    \
      case AttentionActivation::kSigmoid:                                             \
        for (int64_t i = 0; i < ws; ++i) v[i] = one / (one + Exp<Acc>(-v[i]));        \
        break;                                                                        \
      case AttentionActivation::kTanh: /* 1 - 2 / (exp(2x) + 1): abs error ~1e-7 */   \
        for (int64_t i = 0; i < ws; ++i) {                                            \
          v[i] = one - (one + one) / (Exp<Acc>(v[i] + v[i]) + one);                   \
        }                                                                             \
        break;                                                                        \
      case AttentionActivation::kRelu:                                                \
        for (int64_t i = 0; i < ws; ++i) v[i] = v[i] < zero ? zero : v[i];            \
        break;                                                                        \
      case AttentionActivation::kLinear:                                              \
        break;                                                                        \
    }                                                                                 \
  }

// grad *= act'(x), computed from the activation's output `out`; rows of
// `out` are out_stride apart, rows of `grad` grad_stride.
#define DEEPCTR_OPS_ATTENTION_ACTIVATION_GRAD_BODY                                   \
  const W zero = {};                                                                  \
  const W one = zero + Acc(1);                                                        \
  const int64_t ws = vecs * static_cast<int64_t>(sizeof(typename Simd<Acc>::V) / sizeof(W)); \
  for (int64_t row = 0; row < rows; ++row) {                                          \
    const W* a = reinterpret_cast<const W*>(out + row * out_stride);                  \
    W* g = reinterpret_cast<W*>(grad + row * grad_stride);                            \
    switch (act) {                                                                    \
      case AttentionActivation::kSigmoid:                                             \
        for (int64_t i = 0; i < ws; ++i) g[i] = g[i] * (a[i] * (one - a[i]));         \
        break;                                                                        \
      case AttentionActivation::kTanh:                                                \
        for (int64_t i = 0; i < ws; ++i) g[i] = g[i] * (one - a[i] * a[i]);           \
        break;                                                                        \
      case AttentionActivation::kRelu:                                                \
        for (int64_t i = 0; i < ws; ++i) g[i] = a[i] > zero ? g[i] : zero;            \
        break;                                                                        \
      case AttentionActivation::kLinear:                                              \
        break;                                                                        \
    }                                                                                 \
  }

#define DEEPCTR_OPS_ATTENTION_ACTIVATE_ARGS \
  AttentionActivation act, Acc *data, int64_t stride, int64_t rows, int64_t vecs
#define DEEPCTR_OPS_ATTENTION_ACTIVATION_GRAD_ARGS                                     \
  AttentionActivation act, const Acc *out, int64_t out_stride, Acc *grad,               \
      int64_t grad_stride, int64_t rows, int64_t vecs

template <typename Acc>
inline void ActivateBaseline(DEEPCTR_OPS_ATTENTION_ACTIVATE_ARGS) {
  DEEPCTR_OPS_ATTENTION_REGISTER(32);
  DEEPCTR_OPS_ATTENTION_ACTIVATE_BODY
}

template <typename Acc>
inline void ActivationGradBaseline(DEEPCTR_OPS_ATTENTION_ACTIVATION_GRAD_ARGS) {
  DEEPCTR_OPS_ATTENTION_REGISTER(32);
  DEEPCTR_OPS_ATTENTION_ACTIVATION_GRAD_BODY
}

#if DEEPCTR_OPS_ATTENTION_X86
template <typename Acc>
DEEPCTR_OPS_ATTENTION_TARGET_AVX2 __attribute__((noinline)) void ActivateAvx2(
    DEEPCTR_OPS_ATTENTION_ACTIVATE_ARGS) {
  DEEPCTR_OPS_ATTENTION_REGISTER(32);
  DEEPCTR_OPS_ATTENTION_ACTIVATE_BODY
}

template <typename Acc>
DEEPCTR_OPS_ATTENTION_TARGET_AVX2 __attribute__((noinline)) void ActivationGradAvx2(
    DEEPCTR_OPS_ATTENTION_ACTIVATION_GRAD_ARGS) {
  DEEPCTR_OPS_ATTENTION_REGISTER(32);
  DEEPCTR_OPS_ATTENTION_ACTIVATION_GRAD_BODY
}

template <typename Acc>
DEEPCTR_OPS_ATTENTION_TARGET_AVX512 __attribute__((noinline)) void ActivateAvx512(
    DEEPCTR_OPS_ATTENTION_ACTIVATE_ARGS) {
  if constexpr (std::is_same<Acc, float>::value) {
    if (act == AttentionActivation::kSigmoid) {
      // 1 / (1 + e): a 14-bit reciprocal estimate and one Newton step (~1 ulp)
      // instead of a division, the slowest instruction here.
      using V = Simd<float>::V;
      const V one = Splat<float>(1), two = Splat<float>(2);
      for (int64_t row = 0; row < rows; ++row) {
        V* v = reinterpret_cast<V*>(data + row * stride);
        for (int64_t i = 0; i < vecs; ++i) {
          const V d = one + Exp<float>(-v[i]);
          __m512 dm;
          std::memcpy(&dm, &d, sizeof(dm));
          const __m512 rm = _mm512_rcp14_ps(dm);
          V r;
          std::memcpy(&r, &rm, sizeof(r));
          v[i] = r * (two - d * r);
        }
      }
      return;
    }
  }
  DEEPCTR_OPS_ATTENTION_REGISTER(64);
  DEEPCTR_OPS_ATTENTION_ACTIVATE_BODY
}

template <typename Acc>
DEEPCTR_OPS_ATTENTION_TARGET_AVX512 __attribute__((noinline)) void ActivationGradAvx512(
    DEEPCTR_OPS_ATTENTION_ACTIVATION_GRAD_ARGS) {
  DEEPCTR_OPS_ATTENTION_REGISTER(64);
  DEEPCTR_OPS_ATTENTION_ACTIVATION_GRAD_BODY
}
#endif

template <typename Acc, Isa kIsa>
inline void Activate(DEEPCTR_OPS_ATTENTION_ACTIVATE_ARGS) {
#if DEEPCTR_OPS_ATTENTION_X86
  if constexpr (kIsa == Isa::kAvx512) return ActivateAvx512(act, data, stride, rows, vecs);
  if constexpr (kIsa == Isa::kAvx2Fma) return ActivateAvx2(act, data, stride, rows, vecs);
#endif
  ActivateBaseline(act, data, stride, rows, vecs);
}

template <typename Acc, Isa kIsa>
inline void ActivationGrad(DEEPCTR_OPS_ATTENTION_ACTIVATION_GRAD_ARGS) {
#if DEEPCTR_OPS_ATTENTION_X86
  if constexpr (kIsa == Isa::kAvx512) {
    return ActivationGradAvx512(act, out, out_stride, grad, grad_stride, rows, vecs);
  }
  if constexpr (kIsa == Isa::kAvx2Fma) {
    return ActivationGradAvx2(act, out, out_stride, grad, grad_stride, rows, vecs);
  }
#endif
  ActivationGradBaseline(act, out, out_stride, grad, grad_stride, rows, vecs);
}
#undef DEEPCTR_OPS_ATTENTION_ACTIVATE_BODY
#undef DEEPCTR_OPS_ATTENTION_ACTIVATION_GRAD_BODY
#undef DEEPCTR_OPS_ATTENTION_ACTIVATE_ARGS
#undef DEEPCTR_OPS_ATTENTION_ACTIVATION_GRAD_ARGS

}  // namespace
}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_ATTENTION_POOL_SIMD_H_
