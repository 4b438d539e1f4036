// Element-wise sigmoid and tanh over arrays for the CPU GRU kernel.
//
// float: a branch-free exp (Cephes-style polynomial, ~1 ulp) with AVX (8) or
// AVX-512 (16) lanes where the build has them; sigmoid(x) = 1 / (1 + exp(-x)); tanh(x) = sign(x) (1 - e) /
// (1 + e) with e = exp(-2|x|) for |x| >= 0.3, an odd Taylor polynomial below
// (no cancellation near 0). NaN propagates (it is never converted to an
// integer). double: std::exp / std::tanh (the accuracy path).
#ifndef DEEPCTR_OPS_CC_KERNELS_GRU_ACTIVATIONS_H_
#define DEEPCTR_OPS_CC_KERNELS_GRU_ACTIVATIONS_H_

#include <cmath>
#include <cstdint>
#include <cstring>

#include "cc/kernels/gru_isa.h"

#if DEEPCTR_OPS_GRU_HAS_AVX
#include <immintrin.h>
#endif

namespace deepctr_ops {
namespace kernels {
// Internal linkage on purpose: the GRU kernel compiles this header once per
// instruction set (dynamic_gru_cpu_impl.inc), and the copies must not merge.
namespace {
namespace gru_math {

constexpr float kExpLo = -87.33654f;  // exp(kExpLo) is the smallest normal float.
constexpr float kExpHi = 88.0f;  // exp(kExpHi) < FLT_MAX; n <= 127 below.
constexpr float kTanhSmall = 0.3f;

// exp(x) for any float x: 0 below kExpLo, exp(kExpHi) above kExpHi, NaN for NaN.
inline float ExpF(float x) {
  if (x != x) return x;
  const bool underflow = x < kExpLo;
  x = x < kExpLo ? kExpLo : (x > kExpHi ? kExpHi : x);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  // n is in [-126, 127]: the scale 2^n is a normal float.
  const int32_t bits = static_cast<int32_t>((n + 127.0f) * 8388608.0f);
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return underflow ? 0.0f : y * scale;
}

inline float SigmoidF(float x) { return 1.0f / (1.0f + ExpF(-x)); }

// Odd Taylor series of tanh through x^15 (|x| < 0.3: error < 1e-10).
inline float TanhSmallF(float x) {
  const float x2 = x * x;
  float p = -929569.0f / 638512875.0f;
  p = p * x2 + 21844.0f / 6081075.0f;
  p = p * x2 - 1382.0f / 155925.0f;
  p = p * x2 + 62.0f / 2835.0f;
  p = p * x2 - 17.0f / 315.0f;
  p = p * x2 + 2.0f / 15.0f;
  p = p * x2 - 1.0f / 3.0f;
  return x + x * x2 * p;
}

inline float TanhF(float x) {
  if (x != x) return x;
  const float ax = std::fabs(x);
  if (ax < kTanhSmall) return TanhSmallF(x);
  const float e = ExpF(-2.0f * ax);
  const float t = (1.0f - e) / (1.0f + e);
  return x < 0.0f ? -t : t;
}

#if DEEPCTR_OPS_GRU_HAS_AVX
// ExpF on 8 lanes (same arithmetic, no FMA).
inline __m256 Exp8(__m256 x) {
  const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  const __m256 lo = _mm256_set1_ps(kExpLo);
  const __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  // min/max return the second operand for NaN lanes: clamped, fixed below.
  __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(kExpHi));
  const __m256 n = _mm256_floor_ps(_mm256_add_ps(
      _mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_sub_ps(xc, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f)));
  r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(-2.12194440e-4f)));
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(5.0000001201e-1f));
  const __m256 y = _mm256_add_ps(
      _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(p, r), r), r), _mm256_set1_ps(1.0f));
  const __m256 scale = _mm256_castsi256_ps(_mm256_cvttps_epi32(_mm256_mul_ps(
      _mm256_add_ps(n, _mm256_set1_ps(127.0f)), _mm256_set1_ps(8388608.0f))));
  const __m256 result = _mm256_andnot_ps(underflow, _mm256_mul_ps(y, scale));
  return _mm256_blendv_ps(result, x, nan);
}

inline __m256 Sigmoid8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 e = Exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
  return _mm256_div_ps(one, _mm256_add_ps(one, e));
}

inline __m256 Tanh8(__m256 x) {
  const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  const __m256 ax = _mm256_andnot_ps(sign_mask, x);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 e = Exp8(_mm256_mul_ps(ax, _mm256_set1_ps(-2.0f)));
  __m256 big = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
  big = _mm256_or_ps(big, _mm256_and_ps(sign_mask, x));
  const __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(-929569.0f / 638512875.0f);
  p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(21844.0f / 6081075.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(-1382.0f / 155925.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(62.0f / 2835.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(-17.0f / 315.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(2.0f / 15.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(-1.0f / 3.0f));
  const __m256 small = _mm256_add_ps(x, _mm256_mul_ps(_mm256_mul_ps(x, x2), p));
  const __m256 is_small = _mm256_cmp_ps(ax, _mm256_set1_ps(kTanhSmall), _CMP_LT_OQ);
  const __m256 result = _mm256_blendv_ps(big, small, is_small);
  return _mm256_blendv_ps(result, x, nan);
}
#endif

#if DEEPCTR_OPS_GRU_HAS_AVX512
// Exp8 / Sigmoid8 / Tanh8 on 16 lanes (same arithmetic; masks for the selects).
inline __m512 Exp16(__m512 x) {
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  const __m512 lo = _mm512_set1_ps(kExpLo);
  const __mmask16 underflow = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
  const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, lo), _mm512_set1_ps(kExpHi));
  const __m512 n = _mm512_roundscale_ps(
      _mm512_add_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                    _mm512_set1_ps(0.5f)),
      _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_sub_ps(xc, _mm512_mul_ps(n, _mm512_set1_ps(0.693359375f)));
  r = _mm512_sub_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(-2.12194440e-4f)));
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(5.0000001201e-1f));
  const __m512 y = _mm512_add_ps(
      _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(p, r), r), r), _mm512_set1_ps(1.0f));
  const __m512 scale = _mm512_castsi512_ps(_mm512_cvttps_epi32(_mm512_mul_ps(
      _mm512_add_ps(n, _mm512_set1_ps(127.0f)), _mm512_set1_ps(8388608.0f))));
  const __m512 result =
      _mm512_mask_blend_ps(underflow, _mm512_mul_ps(y, scale), _mm512_setzero_ps());
  return _mm512_mask_blend_ps(nan, result, x);
}

inline __m512 Sigmoid16(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 e = Exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
  return _mm512_div_ps(one, _mm512_add_ps(one, e));
}

inline __m512 Tanh16(__m512 x) {
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  const __m512i sign_bit = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  const __m512i xi = _mm512_castps_si512(x);
  const __m512 ax = _mm512_castsi512_ps(_mm512_andnot_si512(sign_bit, xi));
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 e = Exp16(_mm512_mul_ps(ax, _mm512_set1_ps(-2.0f)));
  __m512 big = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
  big = _mm512_castsi512_ps(
      _mm512_or_si512(_mm512_castps_si512(big), _mm512_and_si512(sign_bit, xi)));
  const __m512 x2 = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(-929569.0f / 638512875.0f);
  p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(21844.0f / 6081075.0f));
  p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(-1382.0f / 155925.0f));
  p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(62.0f / 2835.0f));
  p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(-17.0f / 315.0f));
  p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(2.0f / 15.0f));
  p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(-1.0f / 3.0f));
  const __m512 small = _mm512_add_ps(x, _mm512_mul_ps(_mm512_mul_ps(x, x2), p));
  const __mmask16 is_small = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(kTanhSmall), _CMP_LT_OQ);
  const __m512 result = _mm512_mask_blend_ps(is_small, big, small);
  return _mm512_mask_blend_ps(nan, result, x);
}
#endif

// out[i] = sigmoid(in[i]) (in == out allowed).
inline void SigmoidArray(const float* in, float* out, int64_t n) {
  int64_t i = 0;
#if DEEPCTR_OPS_GRU_HAS_AVX512
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, Sigmoid16(_mm512_loadu_ps(in + i)));
#endif
#if DEEPCTR_OPS_GRU_HAS_AVX
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, Sigmoid8(_mm256_loadu_ps(in + i)));
#endif
  for (; i < n; ++i) out[i] = SigmoidF(in[i]);
}

inline void TanhArray(const float* in, float* out, int64_t n) {
  int64_t i = 0;
#if DEEPCTR_OPS_GRU_HAS_AVX512
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, Tanh16(_mm512_loadu_ps(in + i)));
#endif
#if DEEPCTR_OPS_GRU_HAS_AVX
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, Tanh8(_mm256_loadu_ps(in + i)));
#endif
  for (; i < n; ++i) out[i] = TanhF(in[i]);
}

inline void SigmoidArray(const double* in, double* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = 1.0 / (1.0 + std::exp(-in[i]));
}

inline void TanhArray(const double* in, double* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = std::tanh(in[i]);
}

}  // namespace gru_math
}  // namespace
}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_GRU_ACTIVATIONS_H_
