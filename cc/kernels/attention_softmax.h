// Masked attention softmax (DeepCTR Transformer's key mask + blinding + softmax), TF-free.
//
// Contract shared by the CPU and CUDA implementations (T = float or double):
// * `scores` and `probs` are row-major [rows, time_q, time_k] with
//   rows = heads * batch, head-major: row n is head n / batch of sample
//   b = n % batch (DeepCTR's concat(split(.., heads), axis=0) layout).
// * `key_valid` is [batch, time_k]. Key k is eligible for query q of row n iff
//   key_valid[b, k] and not (blinding and q == k).
// * Forward: logits = eligible ? scores / divisor : -2**32 + 1 (the value is
//   written into the logits, not added), then softmax over k:
//   exp(logit - row max) * (1 / row sum). A row with no eligible key is
//   therefore uniform, 1 / time_k over all keys, as in DeepCTR.
// * Backward: dscores = eligible ? ((grad - sum_k grad * probs) * probs) / divisor : 0,
//   i.e. TF's softmax gradient, zeroed where DeepCTR's tf.where/matrix_set_diag
//   cut the graph, then the division's gradient.
// * `divisor` is a float (the ops' attr); it is converted to T once. float
//   uses a ~1 ulp polynomial exp (AVX where available); double uses std::exp /
//   CUDA exp and accumulates in double.
#ifndef DEEPCTR_OPS_CC_KERNELS_ATTENTION_SOFTMAX_H_
#define DEEPCTR_OPS_CC_KERNELS_ATTENTION_SOFTMAX_H_

#include <cstdint>
#include <string>

#include "cc/kernels/host_device.h"
#include "cc/kernels/parallel_for.h"
#include "cc/kernels/status.h"

namespace deepctr_ops {
namespace kernels {

// -2**32 + 1 in T: exact in double, -4294967296.0f in float.
template <typename T>
DCTR_HOST_DEVICE constexpr T AttentionPaddingLogit() {
  return static_cast<T>(-4294967295.0);
}

struct AttentionSoftmaxShape {
  int64_t rows = 0;    // heads * batch
  int64_t batch = 0;   // B
  int64_t heads = 0;   // h; 0: rows / batch (graphs written before the op had the attr)
  int64_t time_q = 0;  // Tq
  int64_t time_k = 0;  // Tk
  float divisor = 1.0f;
  bool blinding = false;
};

// Rejects negative sizes, a zero or non-finite divisor, and rows other than
// heads * batch (any multiple of batch when heads is 0). Inline: the CPU and
// CUDA libraries both use it.
inline Status ValidateAttentionSoftmaxShape(const AttentionSoftmaxShape& s) {
  if (s.rows < 0 || s.batch < 0 || s.time_q < 0 || s.time_k < 0 || s.heads < 0) {
    return Status::InvalidArgument("attention softmax sizes must be non-negative");
  }
  if (s.heads > 0 && s.rows != s.heads * s.batch) {
    return Status::InvalidArgument(
        "scores.shape[0] (" + std::to_string(s.rows) + ") must be heads (" +
        std::to_string(s.heads) + ") * key_valid.shape[0] (" + std::to_string(s.batch) +
        "): scores is [heads*batch, Tq, Tk], key_valid [batch, Tk]");
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

// CPU; host pointers. Calls ValidateAttentionSoftmaxShape first. T is float
// or double (explicitly instantiated).
template <typename T>
Status AttentionSoftmaxForwardCpu(const AttentionSoftmaxShape& shape, const T* scores,
                                  const bool* key_valid, T* probs,
                                  const ParallelFor& parallel_for);

template <typename T>
Status AttentionSoftmaxBackwardCpu(const AttentionSoftmaxShape& shape, const T* grad,
                                   const T* probs, const bool* key_valid, T* grad_scores,
                                   const ParallelFor& parallel_for);

// CUDA, asynchronous on `stream` (a cudaStream_t; nullptr is the default
// stream); device pointers. T is float or double.
template <typename T>
Status LaunchAttentionSoftmaxForward(const AttentionSoftmaxShape& shape, const T* scores,
                                     const bool* key_valid, T* probs, void* stream);

template <typename T>
Status LaunchAttentionSoftmaxBackward(const AttentionSoftmaxShape& shape, const T* grad,
                                      const T* probs, const bool* key_valid, T* grad_scores,
                                      void* stream);

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_ATTENTION_SOFTMAX_H_
