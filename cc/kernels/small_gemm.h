// A small register-blocked GEMM for the CPU kernels' per-step and per-row
// matrix products (a few dozen rows, N and K up to a few hundred):
//   C[m, n] += sum_k A(m, k) * B[k, n]
// with A(m, k) = a[m * a_row + k * a_col] (so A or its transpose can be read
// in place), B row-major with leading dimension ldb, C with ldc. Blocks of
// 4 rows are accumulated in vector registers: float32 with AVX-512 takes 64,
// then 32 columns per block, AVX 16 (64 bytes of T in the generic loop);
// edges take a plain loop. The sum over k runs in increasing k for every
// element (deterministic; within one build every block width gives the same
// bits).
#ifndef DEEPCTR_OPS_CC_KERNELS_SMALL_GEMM_H_
#define DEEPCTR_OPS_CC_KERNELS_SMALL_GEMM_H_

#include <cstdint>
#include <type_traits>

#include "cc/kernels/gru_isa.h"

#if DEEPCTR_OPS_GRU_HAS_AVX
#include <immintrin.h>
#endif

namespace deepctr_ops {
namespace kernels {
// Internal linkage on purpose: the GRU kernel compiles this header once per
// instruction set (dynamic_gru_cpu_impl.inc), and the copies must not merge.
namespace {

#if DEEPCTR_OPS_GRU_HAS_AVX
inline __m256 MulAdd(__m256 a, __m256 b, __m256 c) {
#if DEEPCTR_OPS_GRU_HAS_FMA
  return _mm256_fmadd_ps(a, b, c);
#else
  return _mm256_add_ps(_mm256_mul_ps(a, b), c);
#endif
}

// C[4, 16] += A(4, k) B[k, 16] with the 8 accumulators in registers.
inline void Block4x16(int64_t k, const float* a, int64_t a_row, int64_t a_col, const float* b,
                      int64_t ldb, float* c, int64_t ldc) {
  float* c0 = c;
  float* c1 = c + ldc;
  float* c2 = c + 2 * ldc;
  float* c3 = c + 3 * ldc;
  __m256 s00 = _mm256_loadu_ps(c0), s01 = _mm256_loadu_ps(c0 + 8);
  __m256 s10 = _mm256_loadu_ps(c1), s11 = _mm256_loadu_ps(c1 + 8);
  __m256 s20 = _mm256_loadu_ps(c2), s21 = _mm256_loadu_ps(c2 + 8);
  __m256 s30 = _mm256_loadu_ps(c3), s31 = _mm256_loadu_ps(c3 + 8);
  const float* a0 = a;
  const float* a1 = a + a_row;
  const float* a2 = a + 2 * a_row;
  const float* a3 = a + 3 * a_row;
  for (int64_t kk = 0; kk < k; ++kk) {
    const __m256 b0 = _mm256_loadu_ps(b + kk * ldb);
    const __m256 b1 = _mm256_loadu_ps(b + kk * ldb + 8);
    const int64_t ak = kk * a_col;
    __m256 v = _mm256_broadcast_ss(a0 + ak);
    s00 = MulAdd(v, b0, s00);
    s01 = MulAdd(v, b1, s01);
    v = _mm256_broadcast_ss(a1 + ak);
    s10 = MulAdd(v, b0, s10);
    s11 = MulAdd(v, b1, s11);
    v = _mm256_broadcast_ss(a2 + ak);
    s20 = MulAdd(v, b0, s20);
    s21 = MulAdd(v, b1, s21);
    v = _mm256_broadcast_ss(a3 + ak);
    s30 = MulAdd(v, b0, s30);
    s31 = MulAdd(v, b1, s31);
  }
  _mm256_storeu_ps(c0, s00);
  _mm256_storeu_ps(c0 + 8, s01);
  _mm256_storeu_ps(c1, s10);
  _mm256_storeu_ps(c1 + 8, s11);
  _mm256_storeu_ps(c2, s20);
  _mm256_storeu_ps(c2 + 8, s21);
  _mm256_storeu_ps(c3, s30);
  _mm256_storeu_ps(c3 + 8, s31);
}
#endif

#if DEEPCTR_OPS_GRU_HAS_AVX512
// C[4, 64] += A(4, k) B[k, 64] with 16 accumulators in zmm registers: four
// loads of B and four broadcasts per 16 FMAs, and twice as many independent
// accumulators as the FMA latency needs (Block4x32's 8 just cover it). On AMD
// Zen 5 the GRU's per-step shapes ran 218-229 GF/s in 4x32 blocks and 232-247
// in 4x64 (one core, peak 266).
inline void Block4x64(int64_t k, const float* a, int64_t a_row, int64_t a_col, const float* b,
                      int64_t ldb, float* c, int64_t ldc) {
  const float* a0 = a;
  const float* a1 = a + a_row;
  const float* a2 = a + 2 * a_row;
  const float* a3 = a + 3 * a_row;
  float* c0 = c;
  float* c1 = c + ldc;
  float* c2 = c + 2 * ldc;
  float* c3 = c + 3 * ldc;
#define DEEPCTR_OPS_LOAD4(r) \
  __m512 s##r##0 = _mm512_loadu_ps(c##r), s##r##1 = _mm512_loadu_ps(c##r + 16), \
         s##r##2 = _mm512_loadu_ps(c##r + 32), s##r##3 = _mm512_loadu_ps(c##r + 48)
  DEEPCTR_OPS_LOAD4(0);
  DEEPCTR_OPS_LOAD4(1);
  DEEPCTR_OPS_LOAD4(2);
  DEEPCTR_OPS_LOAD4(3);
#undef DEEPCTR_OPS_LOAD4
  for (int64_t kk = 0; kk < k; ++kk) {
    const float* bk = b + kk * ldb;
    const __m512 b0 = _mm512_loadu_ps(bk), b1 = _mm512_loadu_ps(bk + 16);
    const __m512 b2 = _mm512_loadu_ps(bk + 32), b3 = _mm512_loadu_ps(bk + 48);
    const int64_t ak = kk * a_col;
#define DEEPCTR_OPS_FMA4(r)                         \
  {                                                 \
    const __m512 v = _mm512_set1_ps(a##r[ak]);      \
    s##r##0 = _mm512_fmadd_ps(v, b0, s##r##0);      \
    s##r##1 = _mm512_fmadd_ps(v, b1, s##r##1);      \
    s##r##2 = _mm512_fmadd_ps(v, b2, s##r##2);      \
    s##r##3 = _mm512_fmadd_ps(v, b3, s##r##3);      \
  }
    DEEPCTR_OPS_FMA4(0)
    DEEPCTR_OPS_FMA4(1)
    DEEPCTR_OPS_FMA4(2)
    DEEPCTR_OPS_FMA4(3)
#undef DEEPCTR_OPS_FMA4
  }
#define DEEPCTR_OPS_STORE4(r)              \
  _mm512_storeu_ps(c##r, s##r##0);         \
  _mm512_storeu_ps(c##r + 16, s##r##1);    \
  _mm512_storeu_ps(c##r + 32, s##r##2);    \
  _mm512_storeu_ps(c##r + 48, s##r##3)
  DEEPCTR_OPS_STORE4(0);
  DEEPCTR_OPS_STORE4(1);
  DEEPCTR_OPS_STORE4(2);
  DEEPCTR_OPS_STORE4(3);
#undef DEEPCTR_OPS_STORE4
}

// C[4, 32] += A(4, k) B[k, 32] with the 8 accumulators in zmm registers.
inline void Block4x32(int64_t k, const float* a, int64_t a_row, int64_t a_col, const float* b,
                      int64_t ldb, float* c, int64_t ldc) {
  float* c0 = c;
  float* c1 = c + ldc;
  float* c2 = c + 2 * ldc;
  float* c3 = c + 3 * ldc;
  __m512 s00 = _mm512_loadu_ps(c0), s01 = _mm512_loadu_ps(c0 + 16);
  __m512 s10 = _mm512_loadu_ps(c1), s11 = _mm512_loadu_ps(c1 + 16);
  __m512 s20 = _mm512_loadu_ps(c2), s21 = _mm512_loadu_ps(c2 + 16);
  __m512 s30 = _mm512_loadu_ps(c3), s31 = _mm512_loadu_ps(c3 + 16);
  const float* a0 = a;
  const float* a1 = a + a_row;
  const float* a2 = a + 2 * a_row;
  const float* a3 = a + 3 * a_row;
  for (int64_t kk = 0; kk < k; ++kk) {
    const __m512 b0 = _mm512_loadu_ps(b + kk * ldb);
    const __m512 b1 = _mm512_loadu_ps(b + kk * ldb + 16);
    const int64_t ak = kk * a_col;
    __m512 v = _mm512_set1_ps(a0[ak]);
    s00 = _mm512_fmadd_ps(v, b0, s00);
    s01 = _mm512_fmadd_ps(v, b1, s01);
    v = _mm512_set1_ps(a1[ak]);
    s10 = _mm512_fmadd_ps(v, b0, s10);
    s11 = _mm512_fmadd_ps(v, b1, s11);
    v = _mm512_set1_ps(a2[ak]);
    s20 = _mm512_fmadd_ps(v, b0, s20);
    s21 = _mm512_fmadd_ps(v, b1, s21);
    v = _mm512_set1_ps(a3[ak]);
    s30 = _mm512_fmadd_ps(v, b0, s30);
    s31 = _mm512_fmadd_ps(v, b1, s31);
  }
  _mm512_storeu_ps(c0, s00);
  _mm512_storeu_ps(c0 + 16, s01);
  _mm512_storeu_ps(c1, s10);
  _mm512_storeu_ps(c1 + 16, s11);
  _mm512_storeu_ps(c2, s20);
  _mm512_storeu_ps(c2 + 16, s21);
  _mm512_storeu_ps(c3, s30);
  _mm512_storeu_ps(c3 + 16, s31);
}
#endif

template <typename T>
void GemmAccumulate(int64_t m, int64_t n, int64_t k, const T* a, int64_t a_row, int64_t a_col,
                    const T* b, int64_t ldb, T* c, int64_t ldc) {
  constexpr int64_t kRows = 4;
  constexpr int64_t kCols = 64 / static_cast<int64_t>(sizeof(T));
  for (int64_t i0 = 0; i0 < m; i0 += kRows) {
    const int64_t rows = m - i0 < kRows ? m - i0 : kRows;
    int64_t j0 = 0;
    if (rows == kRows) {
#if DEEPCTR_OPS_GRU_HAS_AVX512
      if constexpr (std::is_same_v<T, float>) {
        for (; j0 + 64 <= n; j0 += 64) {
          Block4x64(k, a + i0 * a_row, a_row, a_col, b + j0, ldb, c + i0 * ldc + j0, ldc);
        }
        for (; j0 + 32 <= n; j0 += 32) {
          Block4x32(k, a + i0 * a_row, a_row, a_col, b + j0, ldb, c + i0 * ldc + j0, ldc);
        }
      }
#endif
      for (; j0 + kCols <= n; j0 += kCols) {
#if DEEPCTR_OPS_GRU_HAS_AVX
        if constexpr (std::is_same_v<T, float>) {
          Block4x16(k, a + i0 * a_row, a_row, a_col, b + j0, ldb, c + i0 * ldc + j0, ldc);
          continue;
        }
#endif
        T acc[kRows][kCols];
        for (int64_t i = 0; i < kRows; ++i) {
          for (int64_t j = 0; j < kCols; ++j) acc[i][j] = c[(i0 + i) * ldc + j0 + j];
        }
        const T* a0 = a + (i0 + 0) * a_row;
        const T* a1 = a + (i0 + 1) * a_row;
        const T* a2 = a + (i0 + 2) * a_row;
        const T* a3 = a + (i0 + 3) * a_row;
        for (int64_t kk = 0; kk < k; ++kk) {
          const T* brow = b + kk * ldb + j0;
          const T v0 = a0[kk * a_col];
          const T v1 = a1[kk * a_col];
          const T v2 = a2[kk * a_col];
          const T v3 = a3[kk * a_col];
          for (int64_t j = 0; j < kCols; ++j) {
            const T bv = brow[j];
            acc[0][j] += v0 * bv;
            acc[1][j] += v1 * bv;
            acc[2][j] += v2 * bv;
            acc[3][j] += v3 * bv;
          }
        }
        for (int64_t i = 0; i < kRows; ++i) {
          for (int64_t j = 0; j < kCols; ++j) c[(i0 + i) * ldc + j0 + j] = acc[i][j];
        }
      }
    }
    // Edges: fewer than 4 rows, or the last columns.
    for (int64_t i = i0; i < i0 + rows; ++i) {
      const int64_t j_begin = rows == kRows ? j0 : 0;
      if (j_begin >= n) continue;
      T* crow = c + i * ldc;
      for (int64_t kk = 0; kk < k; ++kk) {
        const T v = a[i * a_row + kk * a_col];
        const T* brow = b + kk * ldb;
        for (int64_t j = j_begin; j < n; ++j) crow[j] += v * brow[j];
      }
    }
  }
}

}  // namespace
}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_SMALL_GEMM_H_
