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
#include <type_traits>

#if defined(__AVX__)
#include <immintrin.h>
#endif

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

// Calls fn(width) with the unit width as a compile-time constant for the
// common embedding sizes (0 = only known at run time). A constant width lets
// the compiler unroll the column loop and keep accumulators in registers.
template <typename Fn>
void DispatchWidth(int64_t cols, Fn fn) {
  switch (cols) {
    case 64: fn(std::integral_constant<int64_t, 64>()); break;
    case 32: fn(std::integral_constant<int64_t, 32>()); break;
    case 16: fn(std::integral_constant<int64_t, 16>()); break;
    case 8: fn(std::integral_constant<int64_t, 8>()); break;
    default: fn(std::integral_constant<int64_t, 0>()); break;
  }
}

// Which steps compete for the max of a row: the valid ones, or, in a row with
// none, every padded step shifted down by 1e9 (DeepCTR's empty-row result).
template <typename Acc>
struct MaxScope {
  bool has_steps;  // False: no step at all, the result is EmptyRowMax.
  bool shifted;
  Acc shift;
};

template <typename Acc>
MaxScope<Acc> MaxScopeOf(const RowPlan& plan) {
  MaxScope<Acc> scope;
  scope.shifted = plan.valid_count == 0;
  scope.has_steps = !scope.shifted || (plan.padded && plan.extent > 0);
  scope.shift = scope.shifted ? static_cast<Acc>(kMaxPoolMaskShift) : Acc(0);
  return scope;
}

template <typename Acc, typename Fn>
void ForEachCompetingStep(const RowPlan& plan, const MaxScope<Acc>& scope, Fn fn) {
  if (scope.shifted) {
    for (int64_t t = 0; t < plan.extent; ++t) fn(t);
  } else {
    ForEachValidStep(plan, fn);
  }
}

// Max over the competing steps.
template <int64_t kWidth, typename T, typename Acc>
void MaxSteps(const RowPlan& plan, const MaxScope<Acc>& scope, const T* base,
              int64_t stride, int64_t cols, Acc* max) {
  const int64_t n = kWidth > 0 ? kWidth : cols;
  if (!scope.has_steps) {
    std::fill(max, max + n, EmptyRowMax<Acc>(plan));
    return;
  }
  Acc m[kDepthBlock];
  for (int64_t i = 0; i < n; ++i) m[i] = -static_cast<Acc>(INFINITY);
  const Acc shift = scope.shift;
  ForEachCompetingStep(plan, scope, [&](int64_t t) {
    const T* x = base + t * stride;
    for (int64_t i = 0; i < n; ++i) {
      const Acc v = ToAccumulator(x[i]) - shift;
      m[i] = v > m[i] ? v : m[i];
    }
  });
  for (int64_t i = 0; i < n; ++i) max[i] = m[i];
}

template <int64_t kWidth, typename T, typename Acc>
void SumSteps(const RowPlan& plan, const T* base, int64_t stride, int64_t cols, Acc* sum) {
  const int64_t n = kWidth > 0 ? kWidth : cols;
  Acc acc[kDepthBlock];
  for (int64_t i = 0; i < n; ++i) acc[i] = Acc(0);
  ForEachValidStep(plan, [&](int64_t t) {
    const T* x = base + t * stride;
    for (int64_t i = 0; i < n; ++i) acc[i] += ToAccumulator(x[i]);
  });
  for (int64_t i = 0; i < n; ++i) sum[i] = acc[i];
}

template <typename T, typename Index>
void ForwardUnit(const PoolRows<Index>& rows, PoolMode mode, const T* values,
                 T* output, const Unit& u) {
  using Acc = typename AccumulatorOf<T>::Type;
  const RowPlan plan = PlanRow(rows, u.batch_row);
  const int64_t stride = rows.depth;
  const T* base = values + plan.begin * stride + u.col_begin;
  Acc acc[kDepthBlock];
  DispatchWidth(u.cols, [&](auto width) {
    constexpr int64_t kWidth = decltype(width)::value;
    if (mode == PoolMode::kMax) {
      MaxSteps<kWidth, T, Acc>(plan, MaxScopeOf<Acc>(plan), base, stride, u.cols, acc);
    } else {
      SumSteps<kWidth, T, Acc>(plan, base, stride, u.cols, acc);
    }
  });
  if (mode == PoolMode::kMean) {
    const Acc divisor = MeanDivisor<Acc>(plan);
    for (int64_t i = 0; i < u.cols; ++i) acc[i] /= divisor;
  }
  T* out = output + u.batch_row * stride + u.col_begin;
  for (int64_t i = 0; i < u.cols; ++i) out[i] = FromAccumulator<T>(acc[i]);
}

// Gradients at least this large are written with non-temporal stores: they
// do not fit the caches anyway, are written exactly once, and streaming skips
// the read-for-ownership of every line. Smaller ones stay in cache for the
// op that consumes them next.
constexpr int64_t kStreamingStoreBytes = int64_t{8} << 20;

// Copies one gradient row, streaming aligned float/double rows if `stream`.
template <typename T>
void StoreRow(T* dst, const T* src, int64_t cols, bool /*stream*/) {
  std::memcpy(dst, src, sizeof(T) * cols);
}

#if defined(__AVX__)
template <>
void StoreRow<float>(float* dst, const float* src, int64_t cols, bool stream) {
  if (!stream || (reinterpret_cast<uintptr_t>(dst) & 31) != 0 || cols % 8 != 0) {
    std::memcpy(dst, src, sizeof(float) * cols);
    return;
  }
  for (int64_t i = 0; i < cols; i += 8) {
    _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
  }
}

template <>
void StoreRow<double>(double* dst, const double* src, int64_t cols, bool stream) {
  if (!stream || (reinterpret_cast<uintptr_t>(dst) & 31) != 0 || cols % 4 != 0) {
    std::memcpy(dst, src, sizeof(double) * cols);
    return;
  }
  for (int64_t i = 0; i < cols; i += 4) {
    _mm256_stream_pd(dst + i, _mm256_loadu_pd(src + i));
  }
}

// Orders the streaming stores before the op reports completion.
inline void FinishStores() { _mm_sfence(); }
#else
inline void FinishStores() {}
#endif

// Sum and mean: the (scaled) output gradient at valid steps, 0 elsewhere.
template <typename T, typename Acc>
void BroadcastGradient(const RowPlan& plan, const T* grad_row, T* base,
                       int64_t stride, int64_t cols, Acc divisor, bool stream) {
  T scaled[kDepthBlock];
  T zeros[kDepthBlock];
  const T zero = FromAccumulator<T>(Acc(0));
  for (int64_t i = 0; i < cols; ++i) {
    scaled[i] = FromAccumulator<T>(ToAccumulator(grad_row[i]) / divisor);
    zeros[i] = zero;
  }
  for (int64_t t = 0; t < plan.extent; ++t) {
    StoreRow(base + t * stride, StepIsValid(plan, t) ? scaled : zeros, cols, stream);
  }
}

// Max: TF's reduce_max gradient, (1 / ties) * grad at every tied step.
//
// Ties are rare, so the write pass assumes none ((1 / 1) * grad == grad
// exactly) and counts them on the way; only columns that did tie are then
// rewritten with their share. That saves a counting pass over the steps.
template <int64_t kWidth, typename T, typename Acc>
void MaxGradient(const RowPlan& plan, const T* x_base, const T* grad_row, T* base,
                 int64_t stride, int64_t cols, bool stream) {
  const int64_t n = kWidth > 0 ? kWidth : cols;
  const MaxScope<Acc> scope = MaxScopeOf<Acc>(plan);
  if (!scope.has_steps) return;  // No step: nothing to write.
  Acc max[kDepthBlock];
  MaxSteps<kWidth, T, Acc>(plan, scope, x_base, stride, cols, max);
  const T zero = FromAccumulator<T>(Acc(0));
  T zeros[kDepthBlock];
  Acc ties[kDepthBlock];
  for (int64_t i = 0; i < n; ++i) {
    zeros[i] = zero;
    ties[i] = Acc(0);
  }
  T row[kDepthBlock];
  for (int64_t t = 0; t < plan.extent; ++t) {
    if (!scope.shifted && !StepIsValid(plan, t)) {
      StoreRow(base + t * stride, zeros, n, stream);
      continue;
    }
    const T* x = x_base + t * stride;
    for (int64_t i = 0; i < n; ++i) {
      const bool hit = ToAccumulator(x[i]) - scope.shift == max[i];
      row[i] = hit ? grad_row[i] : zero;
      ties[i] += hit ? Acc(1) : Acc(0);
    }
    StoreRow(base + t * stride, row, n, stream);
  }
  bool any_tie = false;
  for (int64_t i = 0; i < n; ++i) any_tie |= ties[i] > Acc(1);
  if (!any_tie) return;
  FinishStores();  // The streamed rows land before they are patched.
  for (int64_t t = 0; t < plan.extent; ++t) {
    if (!scope.shifted && !StepIsValid(plan, t)) continue;
    const T* x = x_base + t * stride;
    T* g = base + t * stride;
    for (int64_t i = 0; i < n; ++i) {
      if (ties[i] > Acc(1) && ToAccumulator(x[i]) - scope.shift == max[i]) {
        g[i] = FromAccumulator<T>((Acc(1) / ties[i]) * ToAccumulator(grad_row[i]));
      }
    }
  }
}

template <typename T, typename Index>
void BackwardUnit(const PoolRows<Index>& rows, PoolMode mode, const T* values,
                  const T* grad_output, T* grad_values, const Unit& u, bool stream) {
  using Acc = typename AccumulatorOf<T>::Type;
  const RowPlan plan = PlanRow(rows, u.batch_row);
  const int64_t stride = rows.depth;
  const int64_t offset = plan.begin * stride + u.col_begin;
  const T* grad_row = grad_output + u.batch_row * stride + u.col_begin;
  if (mode == PoolMode::kMax) {
    DispatchWidth(u.cols, [&](auto width) {
      MaxGradient<decltype(width)::value, T, Acc>(plan, values + offset, grad_row,
                                                  grad_values + offset, stride, u.cols, stream);
    });
  } else {
    const Acc divisor = mode == PoolMode::kMean ? MeanDivisor<Acc>(plan) : Acc(1);
    BroadcastGradient<T, Acc>(plan, grad_row, grad_values + offset, stride, u.cols, divisor,
                              stream);
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
  const bool stream =
      rows.num_steps * rows.depth * static_cast<int64_t>(sizeof(T)) >= kStreamingStoreBytes;
  parallel_for(NumUnits(rows), cost, [&](int64_t begin, int64_t end) {
    for (int64_t unit = begin; unit < end; ++unit) {
      BackwardUnit(rows, mode, values, grad_output, grad_values, UnitAt(unit, rows.depth),
                   stream);
    }
    if (stream) FinishStores();
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
