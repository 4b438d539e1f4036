// AVX vectors of float or double for the CPU kernels' compare-and-select loops
// (max, argmax), which GCC does not vectorize by itself: it keeps them scalar
// and branchy. Lanes<T>::kSize == 0: no vector path (no AVX, or a 16-bit T),
// the caller's scalar loop does all columns.
#ifndef DEEPCTR_OPS_CC_KERNELS_AVX_LANES_H_
#define DEEPCTR_OPS_CC_KERNELS_AVX_LANES_H_

#include <cstdint>

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace deepctr_ops {
namespace kernels {
namespace simd {

template <typename T>
struct Lanes {
  static constexpr int64_t kSize = 0;
};

#if defined(__AVX__)

template <>
struct Lanes<float> {
  using V = __m256;
  static constexpr int64_t kSize = 8;
  static V Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static void Stream(float* p, V v) { _mm256_stream_ps(p, v); }  // p 32-byte aligned.
  static V Set(float v) { return _mm256_set1_ps(v); }
  static V Sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V Add(V a, V b) { return _mm256_add_ps(a, b); }
  static V Mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V And(V a, V b) { return _mm256_and_ps(a, b); }
  static V Or(V a, V b) { return _mm256_or_ps(a, b); }
  static V Eq(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }  // C++ ==.
  static V Lt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }  // C++ <.
  static V IsNan(V a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  // And/or, not blendv: GCC folds blendv of a compare into a generic select
  // that it lowers to scalar code without AVX2.
  static V Select(V mask, V a, V b) {
    return _mm256_or_ps(_mm256_and_ps(mask, a), _mm256_andnot_ps(mask, b));
  }
  // max(a, b) is b when either is NaN: Max(v, m) ignores a NaN v.
  static V Max(V a, V b) { return _mm256_max_ps(a, b); }
};

template <>
struct Lanes<double> {
  using V = __m256d;
  static constexpr int64_t kSize = 4;
  static V Load(const double* p) { return _mm256_loadu_pd(p); }
  static void Store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static void Stream(double* p, V v) { _mm256_stream_pd(p, v); }  // p 32-byte aligned.
  static V Set(double v) { return _mm256_set1_pd(v); }
  static V Sub(V a, V b) { return _mm256_sub_pd(a, b); }
  static V Add(V a, V b) { return _mm256_add_pd(a, b); }
  static V Mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static V And(V a, V b) { return _mm256_and_pd(a, b); }
  static V Or(V a, V b) { return _mm256_or_pd(a, b); }
  static V Eq(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_EQ_OQ); }
  static V Lt(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
  static V IsNan(V a) { return _mm256_cmp_pd(a, a, _CMP_UNORD_Q); }
  static V Select(V mask, V a, V b) {
    return _mm256_or_pd(_mm256_and_pd(mask, a), _mm256_andnot_pd(mask, b));
  }
  static V Max(V a, V b) { return _mm256_max_pd(a, b); }
};
#endif

}  // namespace simd
}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_AVX_LANES_H_
