// Length-aware sequence pooling (DeepCTR SequencePoolingLayer), TF-free.
//
// Contract shared by the CPU and CUDA implementations:
// * `values` is a row-major matrix [num_steps, depth]. Dense layouts store
//   batch row b at steps [b*max_time, (b+1)*max_time); the ragged layout at
//   steps [row_splits[b], row_splits[b+1]).
// * Which steps of a batch row are valid:
//     kLengths: t < clamp(lengths[b], 0, max_time), as tf.sequence_mask does;
//     kMask:    mask[b*max_time + t] is true (any pattern);
//     kRagged:  every step of the row.
// * Output is [batch, depth]:
//     sum:  sum of the valid steps (0 for an empty row);
//     mean: that sum / (length + 1e-8). `length` is the raw, unclamped
//           lengths[b] (DeepCTR divides by it), the mask count, or the ragged
//           row length;
//     max:  max of the valid steps; NaN if one of them is NaN, as
//           tf.reduce_max gives. A dense row with no valid step returns
//           max_t(x[t] - 1e9) over all its padded steps (-inf when max_time is
//           0); an empty ragged row returns -1e9, what zero padding would give.
//   The forward reads only valid steps, except for that empty-row case. So,
//   unlike DeepCTR, padded steps never compete (shifted by 1e9) in a row that
//   has a valid step; that differs only when a padded value exceeds every
//   valid one of its row by more than 1e9.
// * Max also records, per (batch row, column), where its max is: argmax is
//   [batch, depth] int32 holding the step index t of the max relative to the
//   row's first step when exactly one competing step equals it,
//   kArgmaxTied when that is not a single step (two or more tie, as all
//   padded steps of an empty dense row usually do, or none equals it: NaN),
//   and kArgmaxNoStep when the row has no step at all (dense max_time 0, an
//   empty ragged row). Ties are decided by comparing in the accumulation
//   type after the shift, exactly as the backward splits the gradient.
// * The backward writes every element of grad_values exactly once: the
//   pooled gradient (sum), divided by the mean's divisor (mean), or split
//   evenly over the tied maxima as TF's reduce_max gradient does (max; a NaN
//   max ties no step, and TF's 0 / 0 * grad puts NaN at every competing
//   step), and 0 everywhere else. Max takes the forward's argmax and reads no values for
//   a column with argmax >= 0 (grad at that step, (1/1)*grad == grad); only
//   for a column with a negative code (or every column when argmax is null)
//   does it re-read the competing steps to find and count the ties. An
//   argmax >= 0 that is not a competing step of its row gets no gradient.
// * 16-bit types accumulate in float; float and double in their own type.
#ifndef DEEPCTR_OPS_CC_KERNELS_SEQUENCE_POOL_H_
#define DEEPCTR_OPS_CC_KERNELS_SEQUENCE_POOL_H_

#include <cstdint>

#include "cc/kernels/parallel_for.h"
#include "cc/kernels/status.h"

namespace deepctr_ops {
namespace kernels {

enum class PoolMode : int32_t { kSum = 0, kMean = 1, kMax = 2 };
enum class RowLayout : int32_t { kLengths = 0, kMask = 1, kRagged = 2 };

// Negative argmax codes of max pooling (see the contract above).
constexpr int32_t kArgmaxTied = -1;
constexpr int32_t kArgmaxNoStep = -2;

// Parses "sum" | "mean" | "max".
Status ParsePoolMode(const char* name, PoolMode* mode);

// Where each batch row's steps live. Pointers may be device pointers for the
// CUDA launchers; only the one the layout names is read.
template <typename Index>
struct PoolRows {
  RowLayout layout = RowLayout::kLengths;
  int64_t batch = 0;
  int64_t max_time = 0;   // Dense layouts: T. Unused for kRagged.
  int64_t depth = 0;      // E.
  int64_t num_steps = 0;  // Rows of `values`: batch*max_time, or N (ragged).
  const Index* lengths = nullptr;     // kLengths: [batch].
  const bool* mask = nullptr;         // kMask: [batch, max_time].
  const Index* row_splits = nullptr;  // kRagged: [batch + 1].
};

// Rejects ragged row_splits that do not start at 0, decrease, or do not end at
// num_steps (host memory only). Other layouts always pass: lengths are clamped.
template <typename Index>
Status ValidatePoolRows(const PoolRows<Index>& rows);

// CPU. `values`, `output`, ... are host pointers. T is float, double, Half or
// BFloat16; Index is int32_t or int64_t. Calls ValidatePoolRows first.
// `argmax` ([batch, depth]) is written by the max forward when not null and
// read by the max backward (null: every column is treated as tied); other
// modes ignore it.
template <typename T, typename Index>
Status SequencePoolForwardCpu(const PoolRows<Index>& rows, PoolMode mode,
                              const T* values, T* output, int32_t* argmax,
                              const ParallelFor& parallel_for);

template <typename T, typename Index>
Status SequencePoolBackwardCpu(const PoolRows<Index>& rows, PoolMode mode,
                               const T* values, const int32_t* argmax,
                               const T* grad_output, T* grad_values,
                               const ParallelFor& parallel_for);

// CUDA, asynchronous on `stream` (a cudaStream_t; nullptr is the default
// stream). All pointers are device pointers. Ragged row_splits cannot be
// checked without a device-to-host copy, so on the GPU they are made valid
// instead: LaunchMonotoneRowSplits writes
//   monotone[b] = max(clamp(row_splits[j], 0, num_steps) for j <= b),
// and the ragged launchers must be given those splits. A split that is out of
// range is clamped, a split that decreases gives an empty row; rows never
// overlap, every result is defined and deterministic, and the backward gives
// the value rows outside [monotone[0], monotone[batch]) a zero gradient.
// (PlanRow clamps again, so even unprepared splits are never read out of
// bounds.)
template <typename Index>
Status LaunchMonotoneRowSplits(const Index* row_splits, int64_t batch, int64_t num_steps,
                               Index* monotone, void* stream);

template <typename T, typename Index>
Status LaunchSequencePoolForward(const PoolRows<Index>& rows, PoolMode mode,
                                 const T* values, T* output, int32_t* argmax,
                                 void* stream);

template <typename T, typename Index>
Status LaunchSequencePoolBackward(const PoolRows<Index>& rows, PoolMode mode,
                                  const T* values, const int32_t* argmax,
                                  const T* grad_output, T* grad_values,
                                  void* stream);

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_SEQUENCE_POOL_H_
