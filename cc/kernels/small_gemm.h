// A small register-blocked GEMM for the CPU kernels' per-step and per-row
// matrix products (a few dozen rows, N and K up to a few hundred):
//   C[m, n] += sum_k A(m, k) * B[k, n]
// with A(m, k) = a[m * a_row + k * a_col] (so A or its transpose can be read
// in place), B row-major with leading dimension ldb, C with ldc. Blocks of
// 4 rows x (64 bytes of T) columns are accumulated in local arrays the
// compiler keeps in vector registers; edges take a plain loop. The sum over k
// runs in increasing k for every element (deterministic).
#ifndef DEEPCTR_OPS_CC_KERNELS_SMALL_GEMM_H_
#define DEEPCTR_OPS_CC_KERNELS_SMALL_GEMM_H_

#include <cstdint>

namespace deepctr_ops {
namespace kernels {
// Internal linkage on purpose: the GRU kernel compiles this header once per
// instruction set (dynamic_gru_cpu_impl.inc), and the copies must not merge.
namespace {

template <typename T>
void GemmAccumulate(int64_t m, int64_t n, int64_t k, const T* a, int64_t a_row, int64_t a_col,
                    const T* b, int64_t ldb, T* c, int64_t ldc) {
  constexpr int64_t kRows = 4;
  constexpr int64_t kCols = 64 / static_cast<int64_t>(sizeof(T));
  for (int64_t i0 = 0; i0 < m; i0 += kRows) {
    const int64_t rows = m - i0 < kRows ? m - i0 : kRows;
    int64_t j0 = 0;
    if (rows == kRows) {
      for (; j0 + kCols <= n; j0 += kCols) {
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
