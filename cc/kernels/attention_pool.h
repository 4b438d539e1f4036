// DIN attention pooling (DeepCTR AttentionSequencePoolingLayer with its
// LocalActivationUnit), TF-free.
//
// Contract shared by the CPU and CUDA implementations:
// * query is [B, E], keys [B, T, E] row-major; which steps of row b are valid
//   is described by PoolRows (kLengths: t < clamp(lengths[b], 0, T);
//   kMask: mask[b, t]; kRagged is not supported).
// * The attention MLP is DeepCTR's: the input of step t is
//   u = [q, k_t, q - k_t, q * k_t] (4E), hidden layer i is
//   a_i = act(a_{i-1} @ kernel_i + bias_i) for units[0..H), and the score is
//   s_t = a_H @ kernel_H + bias_H (linear, kernel_H [units[H-1] or 4E, 1]).
//   [B, T, 4E] is never built: the first layer is linear in u, so per row it
//   is K M_b + c_b with M_b = W_k - W_d + diag(q) W_p and
//   c_b = q (W_q + W_d) + bias_0 (W_q, W_k, W_d, W_p: the four E-row blocks
//   of kernel_0).
// * Pooling: w_t = valid ? s_t : (normalize ? -2**32 + 1 : 0); with
//   `normalize`, w = softmax over all T steps of w. Output is w ([B, T],
//   return_score) or sum_t w_t k_t ([B, E]). Only valid steps are read and
//   scored, except that with `normalize` the padded steps' common weight
//   exp(-2**32 + 1 - max) is computed and, when it is not 0 (a row without a
//   valid step is then uniform over all T keys, DeepCTR's behaviour), the
//   padded keys are read too.
// * Backward: the gradients of query, keys (every element written once) and
//   every kernel/bias, for the upstream gradient of the output. On the CPU
//   the weight gradients are summed per fixed shard of batch rows, then over
//   shards in order: the result does not depend on the number of threads
//   (the CUDA kernel adds them with atomics). The CPU forward can save the
//   valid steps' MLP activations for the CPU backward, which otherwise
//   recomputes them.
// * T is float or double, accumulating in its own type. (The Python wrapper
//   runs float16/bfloat16 inputs through the float kernels.)
#ifndef DEEPCTR_OPS_CC_KERNELS_ATTENTION_POOL_H_
#define DEEPCTR_OPS_CC_KERNELS_ATTENTION_POOL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "cc/kernels/parallel_for.h"
#include "cc/kernels/sequence_pool.h"
#include "cc/kernels/status.h"

namespace deepctr_ops {
namespace kernels {

enum class AttentionActivation : int32_t { kSigmoid = 0, kRelu = 1, kTanh = 2, kLinear = 3 };

// The hidden layers the CUDA kernel supports (the CPU has no limit, but
// validation applies the same one so that both devices accept the same ops).
constexpr int kMaxAttentionHiddenLayers = 8;

// Parses "sigmoid" | "relu" | "tanh" | "linear".
Status ParseAttentionActivation(const std::string& name, AttentionActivation* activation);

struct AttentionPoolSpec {
  int64_t depth = 0;           // E.
  std::vector<int64_t> units;  // Hidden units, possibly empty.
  AttentionActivation activation = AttentionActivation::kSigmoid;
  bool normalize = false;      // weight_normalization.
  bool return_score = false;

  int num_layers() const { return static_cast<int>(units.size()) + 1; }
  // Input width of layer i (4E for i == 0) and its output width (1 for the last).
  int64_t layer_in(int i) const { return i == 0 ? 4 * depth : units[i - 1]; }
  int64_t layer_out(int i) const {
    return i < static_cast<int>(units.size()) ? units[i] : 1;
  }
};

// kernels[i] is [layer_in(i), layer_out(i)], biases[i] [layer_out(i)], for
// i < num_layers(): kernel0..kernel{H-1}, then DeepCTR's final `kernel`.
template <typename T>
struct AttentionWeights {
  const T* kernels[kMaxAttentionHiddenLayers + 1] = {};
  const T* biases[kMaxAttentionHiddenLayers + 1] = {};
};

template <typename T>
struct AttentionWeightGrads {
  T* kernels[kMaxAttentionHiddenLayers + 1] = {};
  T* biases[kMaxAttentionHiddenLayers + 1] = {};
};

// Rejects negative sizes, units < 1, too many layers and the ragged layout.
// Inline: the CPU and CUDA libraries both use it.
template <typename Index>
inline Status ValidateAttentionPool(const AttentionPoolSpec& spec, const PoolRows<Index>& rows) {
  if (rows.layout == RowLayout::kRagged) {
    return Status::InvalidArgument("attention pooling takes lengths or a mask, not row_splits");
  }
  if (rows.batch < 0 || rows.max_time < 0 || spec.depth < 0) {
    return Status::InvalidArgument("attention pooling sizes must be non-negative");
  }
  if (static_cast<int>(spec.units.size()) > kMaxAttentionHiddenLayers) {
    return Status::InvalidArgument("att_hidden_units has " + std::to_string(spec.units.size()) +
                                   " layers; at most " +
                                   std::to_string(kMaxAttentionHiddenLayers) + " are supported");
  }
  for (int64_t u : spec.units) {
    if (u < 1) {
      return Status::InvalidArgument("att_hidden_units must be positive, got " +
                                     std::to_string(u));
    }
  }
  return Status::Ok();
}


// Output elements per batch row: T with return_score, else E.
template <typename Index>
int64_t AttentionPoolOutputWidth(const AttentionPoolSpec& spec, const PoolRows<Index>& rows) {
  return spec.return_score ? rows.max_time : spec.depth;
}

// Elements per step of the CPU forward's saved activations: the hidden
// layers' outputs (the score layer's for H == 0), each padded to whole
// 64-byte vectors. An opaque layout, only for the CPU backward.
template <typename T>
int64_t AttentionPoolActivationSlot(const AttentionPoolSpec& spec) {
  const int64_t lanes = 64 / static_cast<int64_t>(sizeof(T));
  int64_t slot = 0;
  const int layers = spec.units.empty() ? 1 : static_cast<int>(spec.units.size());
  for (int i = 0; i < layers; ++i) slot += (spec.layer_out(i) + lanes - 1) / lanes * lanes;
  return slot;
}

// CPU; host pointers. query [B, E], keys [B, T, E], output [B, width].
// activations: null, or B * T * AttentionPoolActivationSlot<T>(spec)
// elements where the forward saves what the backward would recompute (only
// the valid steps' slots are written).
template <typename T, typename Index>
Status AttentionPoolForwardCpu(const AttentionPoolSpec& spec, const PoolRows<Index>& rows,
                               const T* query, const T* keys, const AttentionWeights<T>& weights,
                               T* output, T* activations, const ParallelFor& parallel_for);

// grad_output [B, width]; writes grad_query [B, E], grad_keys [B, T, E] and
// every weight gradient (each the shape of its weight). activations: the
// forward's saved activations for the same inputs, or null (recomputed).
template <typename T, typename Index>
Status AttentionPoolBackwardCpu(const AttentionPoolSpec& spec, const PoolRows<Index>& rows,
                                const T* query, const T* keys, const AttentionWeights<T>& weights,
                                const T* activations, const T* grad_output, T* grad_query,
                                T* grad_keys, const AttentionWeightGrads<T>& weight_grads,
                                const ParallelFor& parallel_for);

// Tests only: which CPU build the two functions above use: "auto" (the best
// the CPU supports, the default), "baseline" (AVX), "avx2" (AVX2+FMA) or
// "avx512". False (and no change) for an unknown name or one the CPU lacks.
bool SetAttentionPoolCpuIsa(const std::string& name);

// CUDA, asynchronous on `stream`; device pointers (the weight pointer arrays
// themselves are host structs passed by value). T is float or double.
// `workspace` is device memory of AttentionPoolGpuWorkspaceBytes bytes.
template <typename T, typename Index>
int64_t AttentionPoolGpuWorkspaceBytes(const AttentionPoolSpec& spec, const PoolRows<Index>& rows);

template <typename T, typename Index>
Status LaunchAttentionPoolForward(const AttentionPoolSpec& spec, const PoolRows<Index>& rows,
                                  const T* query, const T* keys,
                                  const AttentionWeights<T>& weights, T* output, void* workspace,
                                  void* stream);

template <typename T, typename Index>
Status LaunchAttentionPoolBackward(const AttentionPoolSpec& spec, const PoolRows<Index>& rows,
                                   const T* query, const T* keys,
                                   const AttentionWeights<T>& weights, const T* grad_output,
                                   T* grad_query, T* grad_keys,
                                   const AttentionWeightGrads<T>& weight_grads, void* workspace,
                                   void* stream);

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_ATTENTION_POOL_H_
