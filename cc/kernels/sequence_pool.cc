// CPU implementation of sequence pooling. See sequence_pool.h for the contract.
//
// Work is split into units of (batch row, block of up to kDepthBlock columns)
// so that a single long row with a wide embedding still uses every thread. In
// a unit the step loop is outermost and the column loop innermost, so each
// inner loop reads one contiguous run of memory and vectorizes.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "cc/kernels/float_types.h"
#include "cc/kernels/sequence_pool.h"
#include "cc/kernels/sequence_pool_rows.h"

namespace deepctr_ops {
namespace kernels {
namespace {

constexpr int64_t kDepthBlock = 64;

struct Unit {
  int64_t batch_row;
  int64_t col_begin;
  int64_t cols;
};

Unit UnitAt(int64_t unit, int64_t depth) {
  const int64_t blocks = (depth + kDepthBlock - 1) / kDepthBlock;
  Unit u;
  u.batch_row = unit / blocks;
  u.col_begin = (unit % blocks) * kDepthBlock;
  u.cols = std::min(kDepthBlock, depth - u.col_begin);
  return u;
}

template <typename Index>
int64_t NumUnits(const PoolRows<Index>& rows) {
  if (rows.depth == 0) return 0;
  return rows.batch * ((rows.depth + kDepthBlock - 1) / kDepthBlock);
}

template <typename Index>
int64_t StepsPerRow(const PoolRows<Index>& rows) {
  if (rows.layout != RowLayout::kRagged) return rows.max_time;
  return rows.batch > 0 ? rows.num_steps / rows.batch + 1 : 1;
}

// Calls fn(t) for every valid step of the row, in order.
template <typename Fn>
void ForEachValidStep(const RowPlan& plan, Fn fn) {
  if (plan.mask != nullptr) {
    for (int64_t t = 0; t < plan.extent; ++t) {
      if (plan.mask[t]) fn(t);
    }
  } else {
    for (int64_t t = 0; t < plan.valid_end; ++t) fn(t);
  }
}

// Max of the unit's columns over the row, DeepCTR style; fills `max`.
// Returns false when the row has no step at all (max = EmptyRowMax).
template <typename T, typename Acc>
bool RowMax(const RowPlan& plan, const T* base, int64_t stride, int64_t cols,
            Acc* max) {
  const Acc neg_inf = -static_cast<Acc>(INFINITY);
  if (plan.valid_count > 0) {
    std::fill(max, max + cols, neg_inf);
    ForEachValidStep(plan, [&](int64_t t) {
      const T* x = base + t * stride;
      for (int64_t i = 0; i < cols; ++i) {
        const Acc v = ToAccumulator(x[i]);
        max[i] = v > max[i] ? v : max[i];
      }
    });
    return true;
  }
  if (plan.padded && plan.extent > 0) {
    const Acc shift = static_cast<Acc>(kMaxPoolMaskShift);
    std::fill(max, max + cols, neg_inf);
    for (int64_t t = 0; t < plan.extent; ++t) {
      const T* x = base + t * stride;
      for (int64_t i = 0; i < cols; ++i) {
        const Acc v = ToAccumulator(x[i]) - shift;
        max[i] = v > max[i] ? v : max[i];
      }
    }
    return true;
  }
  std::fill(max, max + cols, EmptyRowMax<Acc>(plan));
  return false;
}

template <typename T, typename Index>
void ForwardUnit(const PoolRows<Index>& rows, PoolMode mode, const T* values,
                 T* output, const Unit& u) {
  using Acc = typename AccumulatorOf<T>::Type;
  const RowPlan plan = PlanRow(rows, u.batch_row);
  const int64_t stride = rows.depth;
  const T* base = values + plan.begin * stride + u.col_begin;
  Acc acc[kDepthBlock];
  if (mode == PoolMode::kMax) {
    RowMax(plan, base, stride, u.cols, acc);
  } else {
    std::fill(acc, acc + u.cols, Acc(0));
    ForEachValidStep(plan, [&](int64_t t) {
      const T* x = base + t * stride;
      for (int64_t i = 0; i < u.cols; ++i) acc[i] += ToAccumulator(x[i]);
    });
    if (mode == PoolMode::kMean) {
      const Acc divisor = MeanDivisor<Acc>(plan);
      for (int64_t i = 0; i < u.cols; ++i) acc[i] /= divisor;
    }
  }
  T* out = output + u.batch_row * stride + u.col_begin;
  for (int64_t i = 0; i < u.cols; ++i) out[i] = FromAccumulator<T>(acc[i]);
}

// Sum and mean: the (scaled) output gradient at valid steps, 0 elsewhere.
template <typename T, typename Acc>
void BroadcastGradient(const RowPlan& plan, const T* grad_row, T* base,
                       int64_t stride, int64_t cols, Acc divisor) {
  T scaled[kDepthBlock];
  for (int64_t i = 0; i < cols; ++i) {
    scaled[i] = FromAccumulator<T>(ToAccumulator(grad_row[i]) / divisor);
  }
  const T zero = FromAccumulator<T>(Acc(0));
  for (int64_t t = 0; t < plan.extent; ++t) {
    T* g = base + t * stride;
    if (StepIsValid(plan, t)) {
      std::memcpy(g, scaled, sizeof(T) * cols);
    } else {
      std::fill(g, g + cols, zero);
    }
  }
}

// Max: TF's reduce_max gradient, (1 / ties) * grad at every tied step.
template <typename T, typename Acc>
void MaxGradient(const RowPlan& plan, const T* x_base, const T* grad_row,
                 T* base, int64_t stride, int64_t cols) {
  Acc max[kDepthBlock];
  if (!RowMax(plan, x_base, stride, cols, max)) return;  // No step: no write.
  const bool shifted = plan.valid_count == 0;
  const Acc shift = shifted ? static_cast<Acc>(kMaxPoolMaskShift) : Acc(0);
  auto competes = [&](int64_t t) { return shifted || StepIsValid(plan, t); };
  Acc ties[kDepthBlock];
  std::fill(ties, ties + cols, Acc(0));
  for (int64_t t = 0; t < plan.extent; ++t) {
    if (!competes(t)) continue;
    const T* x = x_base + t * stride;
    for (int64_t i = 0; i < cols; ++i) {
      ties[i] += (ToAccumulator(x[i]) - shift == max[i]) ? Acc(1) : Acc(0);
    }
  }
  Acc share[kDepthBlock];
  for (int64_t i = 0; i < cols; ++i) {
    share[i] = (Acc(1) / ties[i]) * ToAccumulator(grad_row[i]);
  }
  const T zero = FromAccumulator<T>(Acc(0));
  for (int64_t t = 0; t < plan.extent; ++t) {
    T* g = base + t * stride;
    if (!competes(t)) {
      std::fill(g, g + cols, zero);
      continue;
    }
    const T* x = x_base + t * stride;
    for (int64_t i = 0; i < cols; ++i) {
      g[i] = ToAccumulator(x[i]) - shift == max[i] ? FromAccumulator<T>(share[i])
                                                   : zero;
    }
  }
}

template <typename T, typename Index>
void BackwardUnit(const PoolRows<Index>& rows, PoolMode mode, const T* values,
                  const T* grad_output, T* grad_values, const Unit& u) {
  using Acc = typename AccumulatorOf<T>::Type;
  const RowPlan plan = PlanRow(rows, u.batch_row);
  const int64_t stride = rows.depth;
  const int64_t offset = plan.begin * stride + u.col_begin;
  const T* grad_row = grad_output + u.batch_row * stride + u.col_begin;
  if (mode == PoolMode::kMax) {
    MaxGradient<T, Acc>(plan, values + offset, grad_row, grad_values + offset,
                        stride, u.cols);
  } else {
    const Acc divisor = mode == PoolMode::kMean ? MeanDivisor<Acc>(plan) : Acc(1);
    BroadcastGradient<T, Acc>(plan, grad_row, grad_values + offset, stride,
                              u.cols, divisor);
  }
}

}  // namespace

Status ParsePoolMode(const char* name, PoolMode* mode) {
  const std::string s(name == nullptr ? "" : name);
  if (s == "sum") {
    *mode = PoolMode::kSum;
  } else if (s == "mean") {
    *mode = PoolMode::kMean;
  } else if (s == "max") {
    *mode = PoolMode::kMax;
  } else {
    return Status::InvalidArgument("mode must be one of 'sum', 'mean', 'max', got '" +
                                   s + "'");
  }
  return Status::Ok();
}

template <typename Index>
Status ValidatePoolRows(const PoolRows<Index>& rows) {
  if (rows.batch < 0 || rows.max_time < 0 || rows.depth < 0 || rows.num_steps < 0) {
    return Status::InvalidArgument("pooling sizes must be non-negative");
  }
  if (rows.layout != RowLayout::kRagged) return Status::Ok();
  const Index* splits = rows.row_splits;
  if (splits[0] != 0) {
    return Status::InvalidArgument("row_splits[0] must be 0, got " +
                                   std::to_string(splits[0]));
  }
  for (int64_t b = 0; b < rows.batch; ++b) {
    if (splits[b + 1] < splits[b]) {
      return Status::InvalidArgument(
          "row_splits must be non-decreasing, but row_splits[" +
          std::to_string(b + 1) + "] = " + std::to_string(splits[b + 1]) +
          " < row_splits[" + std::to_string(b) + "] = " + std::to_string(splits[b]));
    }
  }
  if (static_cast<int64_t>(splits[rows.batch]) != rows.num_steps) {
    return Status::InvalidArgument(
        "row_splits[-1] must equal the number of values rows (" +
        std::to_string(rows.num_steps) + "), got " +
        std::to_string(splits[rows.batch]));
  }
  return Status::Ok();
}

template <typename T, typename Index>
Status SequencePoolForwardCpu(const PoolRows<Index>& rows, PoolMode mode,
                              const T* values, T* output,
                              const ParallelFor& parallel_for) {
  Status status = ValidatePoolRows(rows);
  if (!status.ok()) return status;
  const int64_t cost = StepsPerRow(rows) * kDepthBlock * 2;
  parallel_for(NumUnits(rows), cost, [&](int64_t begin, int64_t end) {
    for (int64_t unit = begin; unit < end; ++unit) {
      ForwardUnit(rows, mode, values, output, UnitAt(unit, rows.depth));
    }
  });
  return Status::Ok();
}

template <typename T, typename Index>
Status SequencePoolBackwardCpu(const PoolRows<Index>& rows, PoolMode mode,
                               const T* values, const T* grad_output,
                               T* grad_values, const ParallelFor& parallel_for) {
  Status status = ValidatePoolRows(rows);
  if (!status.ok()) return status;
  const int64_t cost = StepsPerRow(rows) * kDepthBlock * (mode == PoolMode::kMax ? 6 : 2);
  parallel_for(NumUnits(rows), cost, [&](int64_t begin, int64_t end) {
    for (int64_t unit = begin; unit < end; ++unit) {
      BackwardUnit(rows, mode, values, grad_output, grad_values,
                   UnitAt(unit, rows.depth));
    }
  });
  return Status::Ok();
}

#define DEEPCTR_OPS_INSTANTIATE_POOL(T, Index)                                 \
  template Status SequencePoolForwardCpu<T, Index>(                            \
      const PoolRows<Index>&, PoolMode, const T*, T*, const ParallelFor&);     \
  template Status SequencePoolBackwardCpu<T, Index>(                           \
      const PoolRows<Index>&, PoolMode, const T*, const T*, T*,                \
      const ParallelFor&);

#define DEEPCTR_OPS_INSTANTIATE_POOL_INDEX(Index)  \
  template Status ValidatePoolRows<Index>(const PoolRows<Index>&); \
  DEEPCTR_OPS_INSTANTIATE_POOL(float, Index)      \
  DEEPCTR_OPS_INSTANTIATE_POOL(double, Index)     \
  DEEPCTR_OPS_INSTANTIATE_POOL(Half, Index)       \
  DEEPCTR_OPS_INSTANTIATE_POOL(BFloat16, Index)

DEEPCTR_OPS_INSTANTIATE_POOL_INDEX(int32_t)
DEEPCTR_OPS_INSTANTIATE_POOL_INDEX(int64_t)

#undef DEEPCTR_OPS_INSTANTIATE_POOL_INDEX
#undef DEEPCTR_OPS_INSTANTIATE_POOL

}  // namespace kernels
}  // namespace deepctr_ops
