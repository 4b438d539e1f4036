// Per-batch-row bookkeeping of the fused embedding pooling, shared by the CPU
// and CUDA implementations so that both decide validity and counts alike.
#ifndef DEEPCTR_OPS_CC_KERNELS_EMBEDDING_POOL_ROWS_H_
#define DEEPCTR_OPS_CC_KERNELS_EMBEDDING_POOL_ROWS_H_

#include <cstdint>

#include "cc/kernels/embedding_pool.h"
#include "cc/kernels/host_device.h"
#include "cc/kernels/sequence_pool_rows.h"

namespace deepctr_ops {
namespace kernels {

template <typename Id>
struct EmbeddingRowPlan {
  RowPlan plan;  // SequencePool's plan, valid_count/length adjusted for mask_zero.
  const Id* ids = nullptr;  // The row's first id.
  bool mask_zero = false;
};

template <typename Id>
DCTR_HOST_DEVICE inline bool EmbeddingStepIsValid(const EmbeddingRowPlan<Id>& row, int64_t t) {
  return StepIsValid(row.plan, t) && (!row.mask_zero || row.ids[t] != Id(0));
}

template <typename Index, typename Id>
DCTR_HOST_DEVICE inline EmbeddingRowPlan<Id> PlanEmbeddingRow(
    const EmbeddingRows<Index, Id>& rows, int64_t b) {
  EmbeddingRowPlan<Id> row;
  row.plan = PlanRow(rows.rows, b);
  row.ids = rows.ids + row.plan.begin;
  row.mask_zero = rows.mask_zero;
  if (rows.mask_zero) {
    // Only the valid steps count, and the mean divides by their number, as
    // DeepCTR's mask mode does with Embedding(mask_zero=True).
    int64_t count = 0;
    const int64_t end = row.plan.mask != nullptr ? row.plan.extent : row.plan.valid_end;
    for (int64_t t = 0; t < end; ++t) count += EmbeddingStepIsValid(row, t) ? 1 : 0;
    row.plan.valid_count = count;
    row.plan.length = static_cast<double>(count);
  }
  return row;
}

// Steps the forward pools for `mode`: the valid ones, or every step of a dense
// max row with none. The backward writes one gradient row for each.
template <typename Id>
DCTR_HOST_DEVICE inline int64_t PooledStepCount(const EmbeddingRowPlan<Id>& row,
                                                PoolMode mode) {
  if (mode == PoolMode::kMax && MaxShiftsPadding(row.plan)) {
    return row.plan.padded ? row.plan.extent : 0;
  }
  return row.plan.valid_count;
}

// Whether step t is one of PooledStepCount's steps.
template <typename Id>
DCTR_HOST_DEVICE inline bool StepIsPooled(const EmbeddingRowPlan<Id>& row, PoolMode mode,
                                          int64_t t) {
  if (mode == PoolMode::kMax && MaxShiftsPadding(row.plan)) return row.plan.padded;
  return EmbeddingStepIsValid(row, t);
}

// The last step that can be pooled, plus one.
template <typename Id>
DCTR_HOST_DEVICE inline int64_t PooledStepEnd(const EmbeddingRowPlan<Id>& row, PoolMode mode) {
  if (mode == PoolMode::kMax && MaxShiftsPadding(row.plan)) {
    return row.plan.padded ? row.plan.extent : 0;
  }
  return row.plan.mask != nullptr ? row.plan.extent : row.plan.valid_end;
}

// Whether the steps StepIsPooled accepts are exactly [0, PooledStepEnd): no
// mask, no id-0 padding to skip. The CPU loops test this once per row rather
// than every step.
template <typename Id>
DCTR_HOST_DEVICE inline bool PooledStepsArePrefix(const EmbeddingRowPlan<Id>& row,
                                                  PoolMode mode) {
  if (mode == PoolMode::kMax && MaxShiftsPadding(row.plan)) return true;
  return row.plan.mask == nullptr && !row.mask_zero;
}

// The size checks the CUDA launchers and their host emulation make (the CPU
// also validates ragged splits, which it can read).
template <typename Index, typename Id>
Status CheckEmbeddingSizes(const EmbeddingRows<Index, Id>& rows) {
  const PoolRows<Index>& r = rows.rows;
  if (r.batch < 0 || r.max_time < 0 || r.depth < 0 || r.num_steps < 0 || rows.vocab < 0) {
    return Status::InvalidArgument("embedding pooling sizes must be non-negative");
  }
  return Status::Ok();
}

template <typename Id>
DCTR_HOST_DEVICE inline bool IdInRange(Id id, int64_t vocab) {
  return id >= Id(0) && static_cast<int64_t>(id) < vocab;
}

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_EMBEDDING_POOL_ROWS_H_
