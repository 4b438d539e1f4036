// Masked attention softmax (DeepCTR Transformer's key mask + blinding + softmax), TF-free.
//
// Contract shared by the CPU and CUDA implementations (float32 only):
// * `scores` and `probs` are row-major [rows, time_q, time_k] with
//   rows = heads * batch, head-major: row n is head n / batch of sample
//   b = n % batch (DeepCTR's concat(split(.., heads), axis=0) layout).
// * `key_valid` is [batch, time_k]. Key k is eligible for query q of row n iff
//   key_valid[b, k] and not (blinding and q == k).
// * Forward: logits = eligible ? scores / divisor : kPaddingLogit (the value is
//   written into the logits, not added), then softmax over k:
//   exp(logit - row max) * (1 / row sum). A row with no eligible key is
//   therefore uniform, 1 / time_k over all keys, as in DeepCTR.
// * Backward: dscores = eligible ? ((grad - sum_k grad * probs) * probs) / divisor : 0,
//   i.e. TF's softmax gradient, zeroed where DeepCTR's tf.where/matrix_set_diag
//   cut the graph, then the division's gradient.
#ifndef DEEPCTR_OPS_CC_KERNELS_ATTENTION_SOFTMAX_H_
#define DEEPCTR_OPS_CC_KERNELS_ATTENTION_SOFTMAX_H_

#include <cstdint>
#include <string>

#include "cc/kernels/parallel_for.h"
#include "cc/kernels/status.h"

namespace deepctr_ops {
namespace kernels {

// -2**32 + 1 in float32 (= -4294967296.0f).
constexpr float kPaddingLogit = -4294967295.0f;

struct AttentionSoftmaxShape {
  int64_t rows = 0;    // heads * batch
  int64_t batch = 0;   // B
  int64_t time_q = 0;  // Tq
  int64_t time_k = 0;  // Tk
  float divisor = 1.0f;
  bool blinding = false;
};

// Rejects negative sizes, a zero or non-finite divisor, and rows that are not a
// multiple of batch. Inline: the CPU and CUDA libraries both use it.
inline Status ValidateAttentionSoftmaxShape(const AttentionSoftmaxShape& s) {
  if (s.rows < 0 || s.batch < 0 || s.time_q < 0 || s.time_k < 0) {
    return Status::InvalidArgument("attention softmax sizes must be non-negative");
  }
  if (s.batch == 0 ? s.rows != 0 : s.rows % s.batch != 0) {
    return Status::InvalidArgument(
        "scores.shape[0] (heads * batch = " + std::to_string(s.rows) +
        ") must be a multiple of key_valid.shape[0] (batch = " + std::to_string(s.batch) + ")");
  }
  if (!(s.divisor != 0.0f) || !(s.divisor - s.divisor == 0.0f)) {
    return Status::InvalidArgument("divisor must be finite and non-zero");
  }
  return Status::Ok();
}

// CPU; host pointers. Calls ValidateAttentionSoftmaxShape first.
Status AttentionSoftmaxForwardCpu(const AttentionSoftmaxShape& shape, const float* scores,
                                  const bool* key_valid, float* probs,
                                  const ParallelFor& parallel_for);

Status AttentionSoftmaxBackwardCpu(const AttentionSoftmaxShape& shape, const float* grad,
                                   const float* probs, const bool* key_valid,
                                   float* grad_scores, const ParallelFor& parallel_for);

// CUDA, asynchronous on `stream` (a cudaStream_t); device pointers.
Status LaunchAttentionSoftmaxForward(const AttentionSoftmaxShape& shape, const float* scores,
                                     const bool* key_valid, float* probs, void* stream);

Status LaunchAttentionSoftmaxBackward(const AttentionSoftmaxShape& shape, const float* grad,
                                      const float* probs, const bool* key_valid,
                                      float* grad_scores, void* stream);

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_ATTENTION_SOFTMAX_H_
