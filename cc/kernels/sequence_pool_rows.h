// Per-batch-row bookkeeping of sequence pooling, shared by the CPU and CUDA
// implementations so that both clamp and count identically.
#ifndef DEEPCTR_OPS_CC_KERNELS_SEQUENCE_POOL_ROWS_H_
#define DEEPCTR_OPS_CC_KERNELS_SEQUENCE_POOL_ROWS_H_

#include <cmath>
#include <cstdint>

#include "cc/kernels/host_device.h"
#include "cc/kernels/sequence_pool.h"

namespace deepctr_ops {
namespace kernels {

// DeepCTR's max pooling shifts masked steps down by this much.
constexpr double kMaxPoolMaskShift = 1e9;
// DeepCTR's mean pooling adds this to the length before dividing.
constexpr double kMeanEpsilon = 1e-8;

struct RowPlan {
  int64_t begin = 0;      // First step of the row in `values`.
  int64_t extent = 0;     // Steps the row owns (T dense, its length ragged).
  int64_t valid_end = 0;  // Valid steps form the prefix [0, valid_end)...
  const bool* mask = nullptr;  // ...unless this is set: then mask[t] says.
  int64_t valid_count = 0;
  double length = 0;      // Mean divisor before the epsilon.
  bool padded = false;    // Dense: invalid steps exist and are shifted for max.
};

template <typename Index>
DCTR_HOST_DEVICE inline int64_t ClampIndex(Index v, int64_t lo, int64_t hi) {
  const int64_t x = static_cast<int64_t>(v);
  return x < lo ? lo : (x > hi ? hi : x);
}

template <typename Index>
DCTR_HOST_DEVICE inline RowPlan PlanRow(const PoolRows<Index>& rows,
                                        int64_t b) {
  RowPlan plan;
  switch (rows.layout) {
    case RowLayout::kLengths: {
      plan.begin = b * rows.max_time;
      plan.extent = rows.max_time;
      plan.valid_end = ClampIndex(rows.lengths[b], 0, rows.max_time);
      plan.valid_count = plan.valid_end;
      plan.length = static_cast<double>(rows.lengths[b]);
      plan.padded = true;
      break;
    }
    case RowLayout::kMask: {
      plan.begin = b * rows.max_time;
      plan.extent = rows.max_time;
      plan.valid_end = rows.max_time;
      plan.mask = rows.mask + b * rows.max_time;
      int64_t count = 0;
      for (int64_t t = 0; t < rows.max_time; ++t) count += plan.mask[t] ? 1 : 0;
      plan.valid_count = count;
      plan.length = static_cast<double>(count);
      plan.padded = true;
      break;
    }
    case RowLayout::kRagged: {
      const int64_t start = ClampIndex(rows.row_splits[b], 0, rows.num_steps);
      const int64_t end = ClampIndex(rows.row_splits[b + 1], start, rows.num_steps);
      plan.begin = start;
      plan.extent = end - start;
      plan.valid_end = plan.extent;
      plan.valid_count = plan.extent;
      plan.length = static_cast<double>(plan.extent);
      plan.padded = false;
      break;
    }
  }
  return plan;
}

DCTR_HOST_DEVICE inline bool StepIsValid(const RowPlan& plan, int64_t t) {
  return plan.mask != nullptr ? plan.mask[t] : t < plan.valid_end;
}

// Mean divisor in the accumulation type, rounded like DeepCTR's
// `cast(len, float32) + 1e-8`.
template <typename Acc>
DCTR_HOST_DEVICE inline Acc MeanDivisor(const RowPlan& plan) {
  return static_cast<Acc>(plan.length) + static_cast<Acc>(kMeanEpsilon);
}

// Which steps compete for the max of a row: the valid ones, or, in a row with
// none, every padded step shifted down by 1e9 (DeepCTR's empty-row result).
DCTR_HOST_DEVICE inline bool MaxShiftsPadding(const RowPlan& plan) {
  return plan.valid_count == 0;
}

template <typename Acc>
struct MaxScope {
  bool has_steps;  // False: no step at all, the result is EmptyRowMax.
  bool shifted;    // MaxShiftsPadding.
  Acc shift;       // Subtracted from every competing step.
};

template <typename Acc>
DCTR_HOST_DEVICE inline MaxScope<Acc> MaxScopeOf(const RowPlan& plan) {
  MaxScope<Acc> scope;
  scope.shifted = MaxShiftsPadding(plan);
  scope.has_steps = !scope.shifted || (plan.padded && plan.extent > 0);
  scope.shift = scope.shifted ? static_cast<Acc>(kMaxPoolMaskShift) : Acc(0);
  return scope;
}

// What max pooling returns for a row with no valid step and no step at all.
template <typename Acc>
DCTR_HOST_DEVICE inline Acc EmptyRowMax(const RowPlan& plan) {
  // Dense T == 0: reduce_max over nothing is -inf in TF. Ragged: -1e9, what a
  // zero-padded row gives in DeepCTR.
  return plan.padded ? -static_cast<Acc>(INFINITY)
                     : -static_cast<Acc>(kMaxPoolMaskShift);
}

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_SEQUENCE_POOL_ROWS_H_
