// CPU implementation of sequence pooling. See sequence_pool.h for the contract.
//
// Work is split into units of (batch row, block of up to kDepthBlock columns)
// so that a single long row with a wide embedding still uses every thread. In
// a unit the step loop is outermost and the column loop innermost, so each
// inner loop reads one contiguous run of memory and vectorizes.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "cc/kernels/avx_lanes.h"
#include "cc/kernels/float_types.h"
#include "cc/kernels/sequence_pool.h"
#include "cc/kernels/sequence_pool_prefetch.h"
#include "cc/kernels/sequence_pool_rows.h"

namespace deepctr_ops {
namespace kernels {
namespace {

using pool_cpu::BlocksPerRow;
using pool_cpu::DispatchWidth;
using pool_cpu::kStreamingStoreBytes;
using pool_cpu::MaxIndexableSteps;
using pool_cpu::kDepthBlock;
using pool_cpu::NoPrefetch;
using pool_cpu::StepPrefetcher;
using pool_cpu::Unit;
using pool_cpu::UnitAt;
using pool_cpu::WorthStepPrefetching;
using simd::Lanes;

template <typename Index>
int64_t NumUnits(const PoolRows<Index>& rows) {
  if (rows.depth == 0) return 0;
  return rows.batch * BlocksPerRow(rows.depth);
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

template <typename Acc, typename Fn>
void ForEachCompetingStep(const RowPlan& plan, const MaxScope<Acc>& scope, Fn fn) {
  if (scope.shifted) {
    for (int64_t t = 0; t < plan.extent; ++t) fn(t);
  } else {
    ForEachValidStep(plan, fn);
  }
}

// Max over the competing steps.
template <int64_t kWidth, typename T, typename Acc, typename Prefetcher>
void MaxSteps(const RowPlan& plan, const MaxScope<Acc>& scope, const T* base,
              int64_t stride, int64_t cols, Prefetcher& prefetcher, Acc* max) {
  const int64_t n = kWidth > 0 ? kWidth : cols;
  if (!scope.has_steps) {
    std::fill(max, max + n, EmptyRowMax<Acc>(plan));
    return;
  }
  // m ignores NaN (so the compare-and-select stays one vector max); `nan`
  // keeps the last NaN seen, which then wins: a NaN step makes the max NaN, as
  // tf.reduce_max does, whatever its position.
  Acc m[kDepthBlock];
  Acc nan[kDepthBlock];
  for (int64_t i = 0; i < n; ++i) m[i] = nan[i] = -static_cast<Acc>(INFINITY);
  const Acc shift = scope.shift;
  ForEachCompetingStep(plan, scope, [&](int64_t t) {
    const T* x = base + t * stride;
    prefetcher.Step();
    for (int64_t i = 0; i < n; ++i) {
      const Acc v = ToAccumulator(x[i]) - shift;
      m[i] = v > m[i] ? v : m[i];
      nan[i] = v != v ? v : nan[i];
    }
  });
  for (int64_t i = 0; i < n; ++i) max[i] = nan[i] != nan[i] ? nan[i] : m[i];
}

// A step tag K > every step of the row: the vector argmax pass adds K + t + 1
// for each step t equal to the max, so one sum says both how many there are
// (sum / K) and, for one, which (sum - K - 1). Every partial sum stays an
// integer below 1.5 * K * K < 2^digits, exact in Acc.
template <typename Acc>
constexpr int64_t StepTag() {
  return int64_t{1} << ((std::numeric_limits<Acc>::digits - 1) / 2);
}

// MaxIndex for columns [0, n) of a row shorter than StepTag, as whole AVX
// vectors when T has Lanes. Returns the columns it did (none otherwise).
template <typename T, typename Acc>
int64_t MaxIndexVectorized(const RowPlan& plan, const MaxScope<Acc>& scope, const T* base,
                           int64_t stride, int64_t n, const Acc* max, int32_t* argmax) {
  if constexpr (Lanes<T>::kSize > 0 && std::is_same_v<T, Acc>) {
    using L = Lanes<T>;
    if (plan.extent >= StepTag<Acc>()) return 0;
    const Acc tag = static_cast<Acc>(StepTag<Acc>());
    const typename L::V shift = L::Set(scope.shift);
    const typename L::V one = L::Set(Acc(1));
    auto columns = [&](auto shifted) {
      int64_t c = 0;
      for (; c + L::kSize <= n; c += L::kSize) {
        const typename L::V m = L::Load(max + c);
        typename L::V sum = L::Set(Acc(0));
        auto visit = [&](int64_t t, typename L::V tagged) {
          typename L::V v = L::Load(base + t * stride + c);
          // x - 0 == x bit for bit, so unshifted rows skip the subtraction.
          if constexpr (decltype(shifted)::value) v = L::Sub(v, shift);
          // hit & tagged is tagged where the step equals the max, else +0.0.
          sum = L::Add(sum, L::And(L::Eq(v, m), tagged));
        };
        if (plan.mask != nullptr && !scope.shifted) {
          ForEachValidStep(plan, [&](int64_t t) {
            visit(t, L::Set(tag + static_cast<Acc>(t + 1)));
          });
        } else {
          const int64_t end = scope.shifted ? plan.extent : plan.valid_end;
          typename L::V tagged = L::Set(tag + Acc(1));
          for (int64_t t = 0; t < end; ++t, tagged = L::Add(tagged, one)) visit(t, tagged);
        }
        Acc sums[L::kSize];
        L::Store(sums, sum);
        for (int64_t j = 0; j < L::kSize; ++j) {
          const bool unique = sums[j] > tag && sums[j] < tag + tag;
          argmax[c + j] = unique ? static_cast<int32_t>(sums[j] - tag) - 1 : kArgmaxTied;
        }
      }
      return c;
    };
    return scope.shifted ? columns(std::true_type()) : columns(std::false_type());
  } else {
    return 0;
  }
}

// Where the max of each column is (see argmax in sequence_pool.h). A second
// pass over the row, which the max pass left in cache, once the max is known:
// count the steps equal to it and keep the last, the only one if the count
// is 1.
template <int64_t kWidth, typename T, typename Acc>
void MaxIndex(const RowPlan& plan, const MaxScope<Acc>& scope, const T* base,
              int64_t stride, int64_t cols, const Acc* max, int32_t* argmax) {
  const int64_t n = kWidth > 0 ? kWidth : cols;
  if (!scope.has_steps || plan.extent > INT32_MAX) {
    std::fill(argmax, argmax + n, scope.has_steps ? kArgmaxTied : kArgmaxNoStep);
    return;
  }
  const int64_t done = MaxIndexVectorized<T, Acc>(plan, scope, base, stride, n, max, argmax);
  if (done == n) return;
  int64_t hits[kDepthBlock];
  int64_t last[kDepthBlock];
  for (int64_t i = done; i < n; ++i) hits[i] = 0;
  ForEachCompetingStep(plan, scope, [&](int64_t t) {
    const T* x = base + t * stride;
    for (int64_t i = done; i < n; ++i) {
      if (ToAccumulator(x[i]) - scope.shift == max[i]) {
        ++hits[i];
        last[i] = t;
      }
    }
  });
  for (int64_t i = done; i < n; ++i) {
    argmax[i] = hits[i] == 1 ? static_cast<int32_t>(last[i]) : kArgmaxTied;
  }
}

template <int64_t kWidth, typename T, typename Acc, typename Prefetcher>
void SumSteps(const RowPlan& plan, const T* base, int64_t stride, int64_t cols,
              Prefetcher& prefetcher, Acc* sum) {
  const int64_t n = kWidth > 0 ? kWidth : cols;
  Acc acc[kDepthBlock];
  for (int64_t i = 0; i < n; ++i) acc[i] = Acc(0);
  ForEachValidStep(plan, [&](int64_t t) {
    const T* x = base + t * stride;
    prefetcher.Step();
    for (int64_t i = 0; i < n; ++i) acc[i] += ToAccumulator(x[i]);
  });
  for (int64_t i = 0; i < n; ++i) sum[i] = acc[i];
}

template <typename T, typename Index, typename Prefetcher>
void ForwardUnit(const PoolRows<Index>& rows, PoolMode mode, const T* values,
                 T* output, int32_t* argmax, const Unit& u, Prefetcher& prefetcher) {
  using Acc = typename AccumulatorOf<T>::Type;
  const RowPlan plan = PlanRow(rows, u.batch_row);
  const int64_t stride = rows.depth;
  const T* base = values + plan.begin * stride + u.col_begin;
  const int64_t pooled_offset = u.batch_row * stride + u.col_begin;
  Acc acc[kDepthBlock];
  DispatchWidth(u.cols, [&](auto width) {
    constexpr int64_t kWidth = decltype(width)::value;
    if (mode == PoolMode::kMax) {
      const MaxScope<Acc> scope = MaxScopeOf<Acc>(plan);
      MaxSteps<kWidth, T, Acc>(plan, scope, base, stride, u.cols, prefetcher, acc);
      if (argmax != nullptr) {
        MaxIndex<kWidth, T, Acc>(plan, scope, base, stride, u.cols, acc,
                                 argmax + pooled_offset);
      }
    } else {
      SumSteps<kWidth, T, Acc>(plan, base, stride, u.cols, prefetcher, acc);
    }
  });
  if (mode == PoolMode::kMean) {
    const Acc divisor = MeanDivisor<Acc>(plan);
    for (int64_t i = 0; i < u.cols; ++i) acc[i] /= divisor;
  }
  T* out = output + pooled_offset;
  for (int64_t i = 0; i < u.cols; ++i) out[i] = FromAccumulator<T>(acc[i]);
}

// Copies one gradient row, streaming aligned float/double rows if `stream`.
template <typename T>
void StoreRow(T* dst, const T* src, int64_t cols, bool stream) {
  if constexpr (Lanes<T>::kSize > 0) {
    using L = Lanes<T>;
    if (stream && (reinterpret_cast<uintptr_t>(dst) & 31) == 0 && cols % L::kSize == 0) {
      for (int64_t i = 0; i < cols; i += L::kSize) L::Stream(dst + i, L::Load(src + i));
      return;
    }
  }
  std::memcpy(dst, src, sizeof(T) * cols);
}

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
// A column whose max is a single step (argmax >= 0) gets grad there, since
// (1 / 1) * grad == grad exactly, and 0 elsewhere: no value is read. Columns
// with a negative code are written 0 first and then, if any, patched with
// their share after re-reading the competing steps to find the ties.
template <int64_t kWidth, typename T, typename Acc>
void MaxGradient(const RowPlan& plan, const T* x_base, const int32_t* argmax_row,
                 const T* grad_row, T* base, int64_t stride, int64_t cols, bool stream) {
  const int64_t n = kWidth > 0 ? kWidth : cols;
  const MaxScope<Acc> scope = MaxScopeOf<Acc>(plan);
  if (!scope.has_steps) return;  // No step: nothing to write.
  const bool indexed = argmax_row != nullptr && plan.extent <= MaxIndexableSteps<Acc>();
  int32_t at[kDepthBlock];
  Acc at_step[kDepthBlock];  // at[i] as a step to compare with, see MaxIndexableSteps.
  bool any_tie = false;
  for (int64_t i = 0; i < n; ++i) {
    at[i] = indexed ? argmax_row[i] : kArgmaxTied;
    at_step[i] = static_cast<Acc>(at[i]);
    any_tie |= at[i] < 0;
  }
  const T zero = FromAccumulator<T>(Acc(0));
  T zeros[kDepthBlock];
  for (int64_t i = 0; i < n; ++i) zeros[i] = zero;
  T row[kDepthBlock];
  for (int64_t t = 0; t < plan.extent; ++t) {
    if (!scope.shifted && !StepIsValid(plan, t)) {
      StoreRow(base + t * stride, zeros, n, stream);
      continue;
    }
    const Acc step = static_cast<Acc>(t);
    int64_t done = 0;
    if constexpr (Lanes<T>::kSize > 0 && std::is_same_v<T, Acc>) {
      using L = Lanes<T>;
      for (; done + L::kSize <= n; done += L::kSize) {
        L::Store(row + done, L::Select(L::Eq(L::Load(at_step + done), L::Set(step)),
                                       L::Load(grad_row + done), L::Set(zero)));
      }
    }
    for (int64_t i = done; i < n; ++i) row[i] = at_step[i] == step ? grad_row[i] : zero;
    StoreRow(base + t * stride, row, n, stream);
  }
  if (!any_tie) return;
  Acc max[kDepthBlock];
  NoPrefetch no_prefetch;
  MaxSteps<kWidth, T, Acc>(plan, scope, x_base, stride, cols, no_prefetch, max);
  Acc ties[kDepthBlock];
  for (int64_t i = 0; i < n; ++i) ties[i] = Acc(0);
  ForEachCompetingStep(plan, scope, [&](int64_t t) {
    const T* x = x_base + t * stride;
    for (int64_t i = 0; i < n; ++i) {
      ties[i] += ToAccumulator(x[i]) - scope.shift == max[i] ? Acc(1) : Acc(0);
    }
  });
  // A NaN max equals no step: TF's (equal / count) * grad is 0 / 0 * grad, NaN
  // at every competing step. Otherwise each tied step gets its share.
  T share[kDepthBlock];
  bool nan_max[kDepthBlock];
  for (int64_t i = 0; i < n; ++i) {
    nan_max[i] = max[i] != max[i];
    const Acc scale = nan_max[i] ? max[i] : Acc(1) / ties[i];
    share[i] = FromAccumulator<T>(scale * ToAccumulator(grad_row[i]));
  }
  FinishStreamingStores();  // The streamed rows land before they are patched.
  ForEachCompetingStep(plan, scope, [&](int64_t t) {
    const T* x = x_base + t * stride;
    T* g = base + t * stride;
    for (int64_t i = 0; i < n; ++i) {
      if (at[i] < 0 && (nan_max[i] || ToAccumulator(x[i]) - scope.shift == max[i])) {
        g[i] = share[i];
      }
    }
  });
}

template <typename T, typename Index>
void BackwardUnit(const PoolRows<Index>& rows, PoolMode mode, const T* values,
                  const int32_t* argmax, const T* grad_output, T* grad_values,
                  const Unit& u, bool stream) {
  using Acc = typename AccumulatorOf<T>::Type;
  const RowPlan plan = PlanRow(rows, u.batch_row);
  const int64_t stride = rows.depth;
  const int64_t offset = plan.begin * stride + u.col_begin;
  const int64_t pooled_offset = u.batch_row * stride + u.col_begin;
  const T* grad_row = grad_output + pooled_offset;
  if (mode == PoolMode::kMax) {
    const int32_t* argmax_row = argmax != nullptr ? argmax + pooled_offset : nullptr;
    DispatchWidth(u.cols, [&](auto width) {
      MaxGradient<decltype(width)::value, T, Acc>(plan, values + offset, argmax_row, grad_row,
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
                              const T* values, T* output, int32_t* argmax,
                              const ParallelFor& parallel_for) {
  Status status = ValidatePoolRows(rows);
  if (!status.ok()) return status;
  const int64_t cost = StepsPerRow(rows) * kDepthBlock * (mode == PoolMode::kMax ? 3 : 2);
  const bool step_prefetch =
      rows.layout != RowLayout::kRagged && WorthStepPrefetching<T>(rows);
  parallel_for(NumUnits(rows), cost, [&](int64_t begin, int64_t end) {
    auto pool_units = [&](auto& prefetcher) {
      for (int64_t unit = begin; unit < end; ++unit) {
        ForwardUnit(rows, mode, values, output, argmax, UnitAt(unit, rows.depth), prefetcher);
      }
    };
    if (step_prefetch) {
      StepPrefetcher<T, Index> prefetcher(rows, mode, values, begin, end);
      pool_units(prefetcher);
    } else {
      NoPrefetch prefetcher;
      pool_units(prefetcher);
    }
  });
  return Status::Ok();
}

template <typename T, typename Index>
Status SequencePoolBackwardCpu(const PoolRows<Index>& rows, PoolMode mode,
                               const T* values, const int32_t* argmax,
                               const T* grad_output, T* grad_values,
                               const ParallelFor& parallel_for) {
  Status status = ValidatePoolRows(rows);
  if (!status.ok()) return status;
  const int64_t cost = StepsPerRow(rows) * kDepthBlock * (mode == PoolMode::kMax ? 3 : 2);
  const bool stream =
      rows.num_steps * rows.depth * static_cast<int64_t>(sizeof(T)) >= kStreamingStoreBytes;
  parallel_for(NumUnits(rows), cost, [&](int64_t begin, int64_t end) {
    for (int64_t unit = begin; unit < end; ++unit) {
      BackwardUnit(rows, mode, values, argmax, grad_output, grad_values,
                   UnitAt(unit, rows.depth), stream);
    }
    if (stream) FinishStreamingStores();
  });
  return Status::Ok();
}

#define DEEPCTR_OPS_INSTANTIATE_POOL(T, Index)                                 \
  template Status SequencePoolForwardCpu<T, Index>(                            \
      const PoolRows<Index>&, PoolMode, const T*, T*, int32_t*,                \
      const ParallelFor&);                                                     \
  template Status SequencePoolBackwardCpu<T, Index>(                           \
      const PoolRows<Index>&, PoolMode, const T*, const int32_t*, const T*, T*, \
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
