// CPU implementation of the masked attention softmax. See attention_softmax.h.
//
// One work unit is one (row, query) line of time_k logits: it is read once and
// written once, in cache. float: the exp is a branch-free Cephes-style
// polynomial (about 1 ulp) and the reductions use 8 partial lanes, so the loops
// vectorize. double: a plain loop with std::exp (the accuracy path).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "cc/kernels/attention_softmax.h"

namespace deepctr_ops {
namespace kernels {
namespace {

constexpr int kLanes = 8;  // Partial reductions in 8 lanes, so the loops vectorize.
constexpr float kPaddingLogit = AttentionPaddingLogit<float>();
static_assert(kPaddingLogit == -4294967296.0f, "the float padding logit the op always used");

// exp(x) for x <= 0 (x - row max), accurate to ~1 ulp down to -87.3; 0 below;
// NaN for NaN (a NaN or +inf logit makes its row NaN, as TF's softmax does).
// 2^n is built as the float whose bits are (n + 127) * 2^23: no integer shifts.
inline float ExpNonPositive(float x) {
  const float lo = -87.33654f;  // exp(lo) is the smallest normal float.
  const bool underflow = x < lo;
  const bool nan = x != x;
  x = nan ? 0.0f : std::min(std::max(x, lo), 0.0f);  // No NaN reaches the int cast.
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);  // x = n ln2 + r
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int32_t bits = static_cast<int32_t>((n + 127.0f) * 8388608.0f);
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return nan ? std::numeric_limits<float>::quiet_NaN() : (underflow ? 0.0f : y * scale);
}

inline bool Eligible(const bool* key_valid_row, int64_t q, int64_t k, bool blinding) {
  return static_cast<bool>(static_cast<int>(key_valid_row[k]) &
                           static_cast<int>(!blinding || q != k));
}

#if defined(__AVX__)
// The same arithmetic as ExpNonPositive, 8 lanes at a time (no FMA, same order).
// NaN lanes: max_ps/min_ps return their second operand when either is NaN, so
// the clamp keeps a NaN, the integer conversion turns it into bits whose float
// is finite, and y (NaN) * scale stays NaN.
inline __m256 Exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.33654f);
  const __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_setzero_ps(), _mm256_max_ps(lo, x));
  const __m256 n = _mm256_floor_ps(_mm256_add_ps(
      _mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f)));
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
  return _mm256_andnot_ps(underflow, _mm256_mul_ps(y, scale));
}

// All-ones lanes where keys k .. k+7 are eligible for query q.
inline __m256 Eligible8(const bool* valid, int64_t k, int64_t q, bool blinding) {
  int64_t raw;
  std::memcpy(&raw, valid + k, sizeof(raw));
  const __m128i bytes = _mm_cvtsi64_si128(raw);
  const __m128i low = _mm_cvtepu8_epi32(bytes);
  const __m128i high = _mm_cvtepu8_epi32(_mm_srli_si128(bytes, 4));
  const __m256 flags = _mm256_cvtepi32_ps(
      _mm256_insertf128_si256(_mm256_castsi128_si256(low), high, 1));
  __m256 mask = _mm256_cmp_ps(flags, _mm256_setzero_ps(), _CMP_NEQ_OQ);
  if (blinding && q >= k && q < k + 8) {
    const __m256 index = _mm256_set_ps(7, 6, 5, 4, 3, 2, 1, 0);
    const __m256 diagonal = _mm256_cmp_ps(index, _mm256_set1_ps(static_cast<float>(q - k)),
                                          _CMP_EQ_OQ);
    mask = _mm256_andnot_ps(diagonal, mask);
  }
  return mask;
}

inline float HorizontalMax(__m256 v) {
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, v);
  float m = lanes[0];
  for (int l = 1; l < 8; ++l) m = lanes[l] > m ? lanes[l] : m;
  return m;
}

inline float HorizontalSum(__m256 v) {
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, v);
  float sum = 0.0f;
  for (int l = 0; l < 8; ++l) sum += lanes[l];
  return sum;
}

void ForwardLine(const AttentionSoftmaxShape& s, const float* scores, const bool* valid,
                 int64_t q, float* out) {
  const int64_t tk = s.time_k;
  const int64_t main = tk - tk % 8;
  const __m256 divisor = _mm256_set1_ps(s.divisor);
  const __m256 padding = _mm256_set1_ps(kPaddingLogit);
  __m256 vmax = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t k = 0; k < main; k += 8) {
    const __m256 scaled = _mm256_div_ps(_mm256_loadu_ps(scores + k), divisor);
    const __m256 v = _mm256_blendv_ps(padding, scaled, Eligible8(valid, k, q, s.blinding));
    _mm256_storeu_ps(out + k, v);
    // Operands in this order skip a NaN v, like the scalar `v > max` below:
    // the row max never holds a NaN, whatever its lane; exp then makes the row NaN.
    vmax = _mm256_max_ps(v, vmax);
  }
  float max = HorizontalMax(vmax);
  for (int64_t k = main; k < tk; ++k) {
    const float v = Eligible(valid, q, k, s.blinding) ? scores[k] / s.divisor : kPaddingLogit;
    out[k] = v;
    max = v > max ? v : max;
  }
  const __m256 vmax_all = _mm256_set1_ps(max);
  __m256 vsum = _mm256_setzero_ps();
  for (int64_t k = 0; k < main; k += 8) {
    const __m256 e = Exp8(_mm256_sub_ps(_mm256_loadu_ps(out + k), vmax_all));
    _mm256_storeu_ps(out + k, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  float sum = HorizontalSum(vsum);
  for (int64_t k = main; k < tk; ++k) {
    const float e = ExpNonPositive(out[k] - max);
    out[k] = e;
    sum += e;
  }
  const float inv = 1.0f / sum;
  const __m256 vinv = _mm256_set1_ps(inv);
  for (int64_t k = 0; k < main; k += 8) {
    _mm256_storeu_ps(out + k, _mm256_mul_ps(_mm256_loadu_ps(out + k), vinv));
  }
  for (int64_t k = main; k < tk; ++k) out[k] *= inv;
}

void BackwardLine(const AttentionSoftmaxShape& s, const float* grad, const float* probs,
                  const bool* valid, int64_t q, float* out) {
  const int64_t tk = s.time_k;
  const int64_t main = tk - tk % 8;
  __m256 vdot = _mm256_setzero_ps();
  for (int64_t k = 0; k < main; k += 8) {
    vdot = _mm256_add_ps(vdot, _mm256_mul_ps(_mm256_loadu_ps(grad + k),
                                             _mm256_loadu_ps(probs + k)));
  }
  float dot = HorizontalSum(vdot);
  for (int64_t k = main; k < tk; ++k) dot += grad[k] * probs[k];
  const __m256 vdot_all = _mm256_set1_ps(dot);
  const __m256 divisor = _mm256_set1_ps(s.divisor);
  for (int64_t k = 0; k < main; k += 8) {
    const __m256 g = _mm256_div_ps(
        _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(grad + k), vdot_all),
                      _mm256_loadu_ps(probs + k)), divisor);
    _mm256_storeu_ps(out + k, _mm256_and_ps(g, Eligible8(valid, k, q, s.blinding)));
  }
  for (int64_t k = main; k < tk; ++k) {
    const float g = ((grad[k] - dot) * probs[k]) / s.divisor;
    out[k] = Eligible(valid, q, k, s.blinding) ? g : 0.0f;
  }
}
#else
void ForwardLine(const AttentionSoftmaxShape& s, const float* scores, const bool* valid,
                 int64_t q, float* out) {
  const int64_t tk = s.time_k;
  const float divisor = s.divisor;
  float lane_max[kLanes];
  for (int l = 0; l < kLanes; ++l) lane_max[l] = -std::numeric_limits<float>::infinity();
  int64_t k = 0;
  for (; k + kLanes <= tk; k += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float scaled = scores[k + l] / divisor;
      const float v = Eligible(valid, q, k + l, s.blinding) ? scaled : kPaddingLogit;
      out[k + l] = v;
      lane_max[l] = v > lane_max[l] ? v : lane_max[l];
    }
  }
  for (; k < tk; ++k) {
    const float scaled = scores[k] / divisor;
    const float v = Eligible(valid, q, k, s.blinding) ? scaled : kPaddingLogit;
    out[k] = v;
    lane_max[0] = v > lane_max[0] ? v : lane_max[0];
  }
  float max = lane_max[0];
  for (int l = 1; l < kLanes; ++l) max = lane_max[l] > max ? lane_max[l] : max;

  float lane_sum[kLanes] = {};
  for (k = 0; k + kLanes <= tk; k += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float e = ExpNonPositive(out[k + l] - max);
      out[k + l] = e;
      lane_sum[l] += e;
    }
  }
  for (; k < tk; ++k) {
    const float e = ExpNonPositive(out[k] - max);
    out[k] = e;
    lane_sum[0] += e;
  }
  float sum = 0.0f;
  for (int l = 0; l < kLanes; ++l) sum += lane_sum[l];
  const float inv = 1.0f / sum;
  for (k = 0; k < tk; ++k) out[k] *= inv;
}

void BackwardLine(const AttentionSoftmaxShape& s, const float* grad, const float* probs,
                  const bool* valid, int64_t q, float* out) {
  const int64_t tk = s.time_k;
  float lane_dot[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= tk; k += kLanes) {
    for (int l = 0; l < kLanes; ++l) lane_dot[l] += grad[k + l] * probs[k + l];
  }
  for (; k < tk; ++k) lane_dot[0] += grad[k] * probs[k];
  float dot = 0.0f;
  for (int l = 0; l < kLanes; ++l) dot += lane_dot[l];
  const float divisor = s.divisor;
  for (k = 0; k < tk; ++k) {
    const float g = ((grad[k] - dot) * probs[k]) / divisor;
    out[k] = Eligible(valid, q, k, s.blinding) ? g : 0.0f;
  }
}

#endif  // __AVX__

void ForwardLine(const AttentionSoftmaxShape& s, const double* scores, const bool* valid,
                 int64_t q, double* out) {
  const int64_t tk = s.time_k;
  const double divisor = s.divisor;
  const double padding = AttentionPaddingLogit<double>();
  double max = -std::numeric_limits<double>::infinity();
  for (int64_t k = 0; k < tk; ++k) {
    const double v = Eligible(valid, q, k, s.blinding) ? scores[k] / divisor : padding;
    out[k] = v;
    max = v > max ? v : max;
  }
  double sum = 0.0;
  for (int64_t k = 0; k < tk; ++k) {
    const double e = std::exp(out[k] - max);
    out[k] = e;
    sum += e;
  }
  const double inv = 1.0 / sum;
  for (int64_t k = 0; k < tk; ++k) out[k] *= inv;
}

void BackwardLine(const AttentionSoftmaxShape& s, const double* grad, const double* probs,
                  const bool* valid, int64_t q, double* out) {
  const int64_t tk = s.time_k;
  const double divisor = s.divisor;
  double dot = 0.0;
  for (int64_t k = 0; k < tk; ++k) dot += grad[k] * probs[k];
  for (int64_t k = 0; k < tk; ++k) {
    out[k] = Eligible(valid, q, k, s.blinding) ? ((grad[k] - dot) * probs[k]) / divisor : 0.0;
  }
}

template <typename Fn>
void ForEachLine(const AttentionSoftmaxShape& s, const ParallelFor& parallel_for, Fn fn) {
  const int64_t lines = s.rows * s.time_q;
  parallel_for(lines, 8 * s.time_k + 16, [&](int64_t begin, int64_t end) {
    for (int64_t line = begin; line < end; ++line) {
      const int64_t n = line / s.time_q;
      const int64_t q = line - n * s.time_q;
      fn(line * s.time_k, n % s.batch, q);
    }
  });
}

}  // namespace

template <typename T>
Status AttentionSoftmaxForwardCpu(const AttentionSoftmaxShape& s, const T* scores,
                                  const bool* key_valid, T* probs,
                                  const ParallelFor& parallel_for) {
  Status status = ValidateAttentionSoftmaxShape(s);
  if (!status.ok() || s.time_k == 0) return status;
  ForEachLine(s, parallel_for, [&](int64_t offset, int64_t b, int64_t q) {
    ForwardLine(s, scores + offset, key_valid + b * s.time_k, q, probs + offset);
  });
  return Status::Ok();
}

template <typename T>
Status AttentionSoftmaxBackwardCpu(const AttentionSoftmaxShape& s, const T* grad,
                                   const T* probs, const bool* key_valid, T* grad_scores,
                                   const ParallelFor& parallel_for) {
  Status status = ValidateAttentionSoftmaxShape(s);
  if (!status.ok() || s.time_k == 0) return status;
  ForEachLine(s, parallel_for, [&](int64_t offset, int64_t b, int64_t q) {
    BackwardLine(s, grad + offset, probs + offset, key_valid + b * s.time_k, q,
                 grad_scores + offset);
  });
  return Status::Ok();
}

#define DEEPCTR_OPS_INSTANTIATE_ATTENTION_CPU(T)                                          \
  template Status AttentionSoftmaxForwardCpu<T>(const AttentionSoftmaxShape&, const T*,   \
                                                const bool*, T*, const ParallelFor&);     \
  template Status AttentionSoftmaxBackwardCpu<T>(const AttentionSoftmaxShape&, const T*,  \
                                                 const T*, const bool*, T*,               \
                                                 const ParallelFor&);
DEEPCTR_OPS_INSTANTIATE_ATTENTION_CPU(float)
DEEPCTR_OPS_INSTANTIATE_ATTENTION_CPU(double)
#undef DEEPCTR_OPS_INSTANTIATE_ATTENTION_CPU

}  // namespace kernels
}  // namespace deepctr_ops
