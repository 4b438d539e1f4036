// Fused embedding lookup + sequence pooling (Keras Embedding followed by
// DeepCTR's SequencePoolingLayer), TF-free. It never builds [B, T, E].
//
// Contract shared by the CPU and CUDA implementations:
// * `table` is [vocab, depth] row-major. `ids` has one id per step: dense
//   layouts store batch row b's steps at [b*max_time, (b+1)*max_time), the
//   ragged layout at [row_splits[b], row_splits[b+1]) (see PoolRows, whose
//   `depth` is E and `num_steps` the number of ids).
// * A step is valid when its layout says so (PoolRows: t < clamp(length),
//   mask[b,t], or any step of a ragged row) and, with `mask_zero`, its id is
//   not 0. Its value is x = table[id] * w, w = weights[step] when weights is
//   not null (else 1), computed in the accumulation type.
// * Output [batch, depth] (sum / mean / max), exactly SequencePool's rules
//   applied to those values (sequence_pool.h), with two extensions:
//     mean divides by (count of valid steps + 1e-8) when mask_zero, else by
//       SequencePool's length (raw length, mask count, ragged row length);
//     max of a dense row with no valid step competes every step of the row
//       shifted by -1e9 (DeepCTR's mask mode); a ragged row with no valid step
//       pools like an empty ragged row (-1e9, no step).
//   argmax [batch, depth] (max only, may be null) is SequencePool's argmax.
// * Only the ids of steps that are read are checked and read: the valid
//   steps, and every step of a dense max row with none. CPU: an id outside
//   [0, vocab) is an InvalidArgument naming it, its step and vocab. CUDA
//   (cannot report without a sync): such a row reads as zeros, as TF's GPU
//   gather does.
// * The backward is in two calls because its size depends on the data.
//   EmbeddingPoolGradRows writes offsets [batch + 1]: offsets[b] is the first
//   gradient row of batch row b, offsets[batch] the total. Row b owns one
//   gradient row per step the forward pooled: its valid steps (sum, mean,
//   max), or every step of a dense max row with none, in step order.
//   EmbeddingPoolBackward then writes, for each such step s of row b, at k:
//     grad_table_indices[k] = ids[s] (unchecked, as tf.gather's gradient);
//     grad_table_values[k]  = w_s * g_s, where g_s is d out[b] / d x_s times
//       grad[b]: grad[b] (sum), grad[b] / divisor (mean), or max's share
//       (SequencePool's rule: grad at the argmax step, split over ties, NaN at
//       every competing step of a NaN max);
//     grad_weights[s] = <g_s, table[ids[s]]> when grad_weights is not null,
//       and 0 at every step that has no gradient row.
//   Sum and mean read no table row; max reads the rows of a row's competing
//   steps only for columns whose argmax is not a single step, and the
//   weights' gradient reads each gradient row's table row.
// * 16-bit types accumulate in float; float and double in their own type.
#ifndef DEEPCTR_OPS_CC_KERNELS_EMBEDDING_POOL_H_
#define DEEPCTR_OPS_CC_KERNELS_EMBEDDING_POOL_H_

#include <cstdint>

#include "cc/kernels/parallel_for.h"
#include "cc/kernels/sequence_pool.h"
#include "cc/kernels/status.h"

namespace deepctr_ops {
namespace kernels {

template <typename Index, typename Id>
struct EmbeddingRows {
  PoolRows<Index> rows;   // Layout and sizes; rows.depth == E.
  const Id* ids = nullptr;  // [rows.num_steps].
  int64_t vocab = 0;
  bool mask_zero = false;
};

// CPU. Host pointers; T is float, double, Half or BFloat16; Index and Id are
// int32_t or int64_t. `weights` may be null.
template <typename T, typename Index, typename Id>
Status EmbeddingPoolForwardCpu(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                               const T* table, const T* weights, T* output,
                               int32_t* argmax, const ParallelFor& parallel_for);

template <typename Index, typename Id>
Status EmbeddingPoolGradRowsCpu(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                int64_t* offsets, const ParallelFor& parallel_for);

// `offsets` is what EmbeddingPoolGradRowsCpu wrote; grad_weights may be null.
template <typename T, typename Index, typename Id>
Status EmbeddingPoolBackwardCpu(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                const T* table, const T* weights, const int32_t* argmax,
                                const T* grad_output, const int64_t* offsets,
                                T* grad_table_values, Id* grad_table_indices,
                                T* grad_weights, const ParallelFor& parallel_for);

// CUDA, asynchronous on `stream`; device pointers. Ragged row_splits must be
// LaunchMonotoneRowSplits' (sequence_pool.h). EmbeddingPoolGradRows' offsets
// are on the device: the caller copies offsets[batch] to the host to size the
// gradient.
template <typename T, typename Index, typename Id>
Status LaunchEmbeddingPoolForward(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                  const T* table, const T* weights, T* output,
                                  int32_t* argmax, void* stream);

template <typename Index, typename Id>
Status LaunchEmbeddingPoolGradRows(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                   int64_t* offsets, void* stream);

template <typename T, typename Index, typename Id>
Status LaunchEmbeddingPoolBackward(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                   const T* table, const T* weights, const int32_t* argmax,
                                   const T* grad_output, const int64_t* offsets,
                                   T* grad_table_values, Id* grad_table_indices,
                                   T* grad_weights, void* stream);

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_EMBEDDING_POOL_H_
