// CPU implementation of the fused embedding pooling. See embedding_pool.h.
//
// Forward work units are (batch row, block of up to kDepthBlock columns), as
// in sequence_pool.cc. The table rows a unit reads are scattered over the
// table, so no hardware prefetcher can follow them: while a thread pools one
// unit, it has already asked for every table row of its next one, keeping
// many cache misses in flight.
#include "cc/kernels/embedding_pool.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "cc/kernels/avx_lanes.h"
#include "cc/kernels/embedding_pool_rows.h"
#include "cc/kernels/float_types.h"
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
using pool_cpu::Unit;
using pool_cpu::UnitAt;
using simd::Lanes;

// The first bad id a parallel pass met (lowest step wins, so the message does
// not depend on the threads).
class BadIdReport {
 public:
  void Report(int64_t step, int64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    if (step_ < 0 || step < step_) {
      step_ = step;
      id_ = id;
    }
  }
  template <typename Index>
  Status ToStatus(const PoolRows<Index>& rows, int64_t vocab) const {
    if (step_ < 0) return Status::Ok();
    std::string where;
    if (rows.layout == RowLayout::kRagged) {
      where = "ids[" + std::to_string(step_) + "]";
    } else {
      where = "ids[" + std::to_string(step_ / rows.max_time) + ", " +
              std::to_string(step_ % rows.max_time) + "]";
    }
    return Status::InvalidArgument(where + " = " + std::to_string(id_) +
                                   " is not in [0, " + std::to_string(vocab) +
                                   "), the table's vocabulary size");
  }

 private:
  std::mutex mu_;
  int64_t step_ = -1;
  int64_t id_ = 0;
};

// One step a unit reads: where it is in its row and its table row's columns.
template <typename T>
struct ReadStep {
  int64_t t;
  const T* row;  // A row of zeros for a bad id (already reported).
};

// Calls fn(t) for each step of `row` that `mode` pools, in order. A row
// whose pooled steps are a prefix skips the per-step test (every CPU walk
// over a row's steps goes through here).
template <typename Id, typename Fn>
inline void ForEachPooledStep(const EmbeddingRowPlan<Id>& row, PoolMode mode, Fn fn) {
  const int64_t end = PooledStepEnd(row, mode);
  if (PooledStepsArePrefix(row, mode)) {
    for (int64_t t = 0; t < end; ++t) fn(t);
  } else {
    for (int64_t t = 0; t < end; ++t) {
      if (StepIsPooled(row, mode, t)) fn(t);
    }
  }
}

// The table row (from the unit's first column) of step t, or `zeros` for an
// id outside [0, vocab), which is reported: the op fails, nothing is read out
// of bounds.
template <typename T, typename Index, typename Id>
inline const T* UnitRowOf(const EmbeddingRows<Index, Id>& rows, const EmbeddingRowPlan<Id>& row,
                          const T* table_cols, int64_t t, const T* zeros, BadIdReport* bad) {
  const Id id = row.ids[t];
  if (!IdInRange(id, rows.vocab)) {
    bad->Report(row.plan.begin + t, static_cast<int64_t>(id));
    return zeros;
  }
  return table_cols + static_cast<int64_t>(id) * rows.rows.depth;
}

// The steps a unit pools as a list (max walks them twice per column block).
template <typename T>
struct StepSpan {
  const ReadStep<T>* data;
  int64_t size;
  const ReadStep<T>* begin() const { return data; }
  const ReadStep<T>* end() const { return data + size; }
};

template <typename T, typename Index, typename Id>
StepSpan<T> CollectSteps(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                         const EmbeddingRowPlan<Id>& row, const T* table_cols, const T* zeros,
                         BadIdReport* bad, std::vector<ReadStep<T>>* out) {
  const int64_t end = PooledStepEnd(row, mode);
  if (static_cast<int64_t>(out->size()) < end) out->resize(end);
  ReadStep<T>* next = out->data();
  ForEachPooledStep(row, mode, [&](int64_t t) {
    *next++ = {t, UnitRowOf(rows, row, table_cols, t, zeros, bad)};
  });
  return {out->data(), next - out->data()};
}

// Asks for kLines cache lines (lines > 0: that many, at run time) from the
// one holding each table row unit u will read.
template <int kLines, typename T, typename Index, typename Id>
void PrefetchUnitRowLines(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                          const EmbeddingRowPlan<Id>& row, const T* table_cols, int64_t lines) {
  const int64_t depth = rows.rows.depth;
  ForEachPooledStep(row, mode, [&](int64_t t) {
    const Id id = row.ids[t];
    if (!IdInRange(id, rows.vocab)) return;
    const uintptr_t first =
        reinterpret_cast<uintptr_t>(table_cols + static_cast<int64_t>(id) * depth) &
        ~uintptr_t{63};
    const int64_t n = kLines > 0 ? kLines : lines;
    for (int64_t l = 0; l < n; ++l) PrefetchLine(reinterpret_cast<const void*>(first + 64 * l));
  });
}

// Asks for every table row unit u will read. Issued a whole unit ahead of
// the pooling: on a 2-core EPYC VM (B4096 T50 E64, one thread) the sum
// forward ran in 0.9 ms so, against 2.5 ms for a prefetch kept 24 steps
// ahead, whose per-step bookkeeping cost more than it hid. The line count is
// a compile-time constant for rows that start on a line: with a run-time
// count the same walk ran 2x slower (its loop exits mispredicted between
// prefetches that wait for free miss buffers).
template <typename T, typename Index, typename Id>
void PrefetchUnitRows(const EmbeddingRows<Index, Id>& rows, PoolMode mode, const T* table,
                      const Unit& u) {
  const EmbeddingRowPlan<Id> row = PlanEmbeddingRow(rows, u.batch_row);
  const T* table_cols = table + u.col_begin;
  const int64_t bytes = u.cols * static_cast<int64_t>(sizeof(T));
  const bool rows_on_lines = reinterpret_cast<uintptr_t>(table_cols) % 64 == 0 &&
                             rows.rows.depth * static_cast<int64_t>(sizeof(T)) % 64 == 0;
  // A row that may straddle lines touches at most one line more.
  const int64_t lines = (bytes + 63) / 64 + (rows_on_lines ? 0 : 1);
  switch (rows_on_lines ? lines : 0) {
    case 1: PrefetchUnitRowLines<1>(rows, mode, row, table_cols, lines); break;
    case 2: PrefetchUnitRowLines<2>(rows, mode, row, table_cols, lines); break;
    case 4: PrefetchUnitRowLines<4>(rows, mode, row, table_cols, lines); break;
    default: PrefetchUnitRowLines<0>(rows, mode, row, table_cols, lines); break;
  }
}

template <typename T>
typename AccumulatorOf<T>::Type StepWeight(const T* weights, int64_t step) {
  using Acc = typename AccumulatorOf<T>::Type;
  return weights != nullptr ? ToAccumulator(weights[step]) : Acc(1);
}

// Sum (times the weights) over the pooled steps of `row`, read straight from
// the ids. A known width sums in vector registers: GCC turned the plain
// `acc[i] += x[i]` loop into scalar adds two steps at a time, and an iterator
// over the steps kept the accumulators in memory; either ran this forward
// 2-3x slower than the loads alone.
template <int64_t kWidth, typename T, typename Acc, typename Index, typename Id>
void PoolSum(const EmbeddingRows<Index, Id>& rows, PoolMode mode, const EmbeddingRowPlan<Id>& row,
             const T* table_cols, const T* weights, int64_t cols, const T* zeros,
             BadIdReport* bad, Acc* out) {
  const int64_t depth = rows.rows.depth;
  const int64_t vocab = rows.vocab;
  const Id* const ids = row.ids;
  const T* const step_weights = weights != nullptr ? weights + row.plan.begin : nullptr;
  // A bad id is reported after the loop: a call inside it made GCC keep the
  // accumulators in memory.
  int64_t first_bad = -1;
  auto table_row = [&](int64_t t) -> const T* {
    const Id id = ids[t];
    if (!IdInRange(id, vocab)) {
      if (first_bad < 0) first_bad = t;
      return zeros;
    }
    return table_cols + static_cast<int64_t>(id) * depth;
  };
  auto report = [&] {
    if (first_bad >= 0) {
      bad->Report(row.plan.begin + first_bad, static_cast<int64_t>(ids[first_bad]));
    }
  };
  if constexpr (kWidth > 0 && Lanes<T>::kSize > 0 && std::is_same_v<T, Acc> &&
                kWidth % Lanes<T>::kSize == 0) {
    using L = Lanes<T>;
    constexpr int64_t kVectors = kWidth / L::kSize;
    typename L::V acc[kVectors];
    for (int64_t j = 0; j < kVectors; ++j) acc[j] = L::Set(Acc(0));
    ForEachPooledStep(row, mode, [&](int64_t t) {
      const T* x = table_row(t);
      if (step_weights == nullptr) {
        for (int64_t j = 0; j < kVectors; ++j) acc[j] = L::Add(acc[j], L::Load(x + j * L::kSize));
      } else {
        const typename L::V w = L::Set(step_weights[t]);
        for (int64_t j = 0; j < kVectors; ++j) {
          acc[j] = L::Add(acc[j], L::Mul(L::Load(x + j * L::kSize), w));
        }
      }
    });
    for (int64_t j = 0; j < kVectors; ++j) L::Store(out + j * L::kSize, acc[j]);
    report();
  } else {
    const int64_t n = kWidth > 0 ? kWidth : cols;
    Acc acc[kDepthBlock];
    for (int64_t i = 0; i < n; ++i) acc[i] = Acc(0);
    ForEachPooledStep(row, mode, [&](int64_t t) {
      const T* x = table_row(t);
      if (step_weights == nullptr) {
        for (int64_t i = 0; i < n; ++i) acc[i] += ToAccumulator(x[i]);
      } else {
        const Acc w = ToAccumulator(step_weights[t]);
        for (int64_t i = 0; i < n; ++i) acc[i] += ToAccumulator(x[i]) * w;
      }
    });
    for (int64_t i = 0; i < n; ++i) out[i] = acc[i];
    report();
  }
}

// PoolMax's scalar columns [col, col + count) (16-bit types, tails).
template <typename T, typename Acc>
void MaxColumnsScalar(const StepSpan<T>& steps, const T* weights,
                      int64_t row_begin, Acc shift, int64_t col, int64_t count, Acc* max,
                      int32_t* argmax) {
  Acc m[kDepthBlock];
  Acc nan[kDepthBlock];
  for (int64_t i = 0; i < count; ++i) m[i] = nan[i] = -static_cast<Acc>(INFINITY);
  for (const ReadStep<T>& s : steps) {
    const T* x = s.row + col;
    const Acc w = StepWeight(weights, row_begin + s.t);
    for (int64_t i = 0; i < count; ++i) {
      const Acc v = ToAccumulator(x[i]) * w - shift;
      m[i] = v > m[i] ? v : m[i];
      nan[i] = v != v ? v : nan[i];
    }
  }
  for (int64_t i = 0; i < count; ++i) max[i] = nan[i] != nan[i] ? nan[i] : m[i];
  if (argmax == nullptr) return;
  Acc hits[kDepthBlock];
  Acc last[kDepthBlock];
  for (int64_t i = 0; i < count; ++i) hits[i] = last[i] = Acc(0);
  for (const ReadStep<T>& s : steps) {
    const T* x = s.row + col;
    const Acc w = StepWeight(weights, row_begin + s.t);
    const Acc step = static_cast<Acc>(s.t);
    for (int64_t i = 0; i < count; ++i) {
      const bool hit = ToAccumulator(x[i]) * w - shift == max[i];
      hits[i] += hit ? Acc(1) : Acc(0);
      last[i] = hit ? step : last[i];
    }
  }
  for (int64_t i = 0; i < count; ++i) {
    argmax[i] = hits[i] == Acc(1) ? static_cast<int32_t>(last[i]) : kArgmaxTied;
  }
}

// Max over the steps of the lanes [col, col + kSize) (x * w shifted by
// `shift`, NaN-propagating: the last NaN wins) and argmax (sequence_pool.h's
// codes). x * 1 == x exactly, so unweighted steps multiply by 1 and every loop
// stays branch-free. kPlain: no weights and no shift, so x is compared as read
// and NaNs are only flagged (the caller redoes a flagged block in full).
// Returns whether some lane met a NaN.
template <bool kPlain, typename T, typename Acc>
bool MaxLanes(const StepSpan<T>& steps, const T* weights, int64_t row_begin, Acc shift,
              int64_t col, bool indexable, Acc* max, int32_t* argmax) {
  using L = Lanes<T>;
  using V = typename L::V;
  auto value = [&](const ReadStep<T>& s) {
    const V x = L::Load(s.row + col);
    if constexpr (kPlain) {
      return x;
    } else {
      return L::Sub(L::Mul(x, L::Set(StepWeight(weights, row_begin + s.t))), L::Set(shift));
    }
  };
  V m = L::Set(-static_cast<Acc>(INFINITY));
  V nan = m;
  V any_nan = L::Set(Acc(0));
  for (const ReadStep<T>& s : steps) {
    const V v = value(s);
    m = L::Max(v, m);
    const V is_nan = L::IsNan(v);
    if constexpr (!kPlain) nan = L::Select(is_nan, v, nan);
    any_nan = L::Or(any_nan, is_nan);
  }
  Acc flags[L::kSize];
  L::Store(flags, any_nan);
  bool met_nan = false;
  for (int64_t j = 0; j < L::kSize; ++j) met_nan |= flags[j] != Acc(0);
  if (kPlain && met_nan) return true;
  m = L::Select(any_nan, nan, m);
  L::Store(max + col, m);
  if (argmax == nullptr || !indexable) return met_nan;
  V hits = L::Set(Acc(0));
  V last = hits;
  const V one = L::Set(Acc(1));
  for (const ReadStep<T>& s : steps) {
    const V hit = L::Eq(value(s), m);
    hits = L::Add(hits, L::And(hit, one));
    last = L::Select(hit, L::Set(static_cast<Acc>(s.t)), last);
  }
  Acc hit_count[L::kSize];
  Acc last_step[L::kSize];
  L::Store(hit_count, hits);
  L::Store(last_step, last);
  for (int64_t j = 0; j < L::kSize; ++j) {
    argmax[col + j] = hit_count[j] == Acc(1) ? static_cast<int32_t>(last_step[j]) : kArgmaxTied;
  }
  return met_nan;
}

// MaxLanes<true> for all kVectors vectors of a row at once, steps outermost:
// the maxima stay in registers across the steps and each step's pointer is
// read once per pass rather than once per vector. The argmax pass keeps
// (hit count, last hit + 1) per lane for up to four vectors at a time (the
// registers AVX has); `last` is a max over t + 1 masked by the hits. Returns
// false, having written nothing, when a lane met a NaN.
template <int64_t kVectors, typename T, typename Acc>
bool PlainMaxRow(const StepSpan<T>& steps, bool indexable, Acc* max, int32_t* argmax) {
  using L = Lanes<T>;
  using V = typename L::V;
  V m[kVectors];
  for (int64_t j = 0; j < kVectors; ++j) m[j] = L::Set(-static_cast<Acc>(INFINITY));
  V any_nan = L::Set(Acc(0));
  for (const ReadStep<T>& s : steps) {
    for (int64_t j = 0; j < kVectors; ++j) {
      const V v = L::Load(s.row + j * L::kSize);
      m[j] = L::Max(v, m[j]);
      any_nan = L::Or(any_nan, L::IsNan(v));
    }
  }
  Acc flags[L::kSize];
  L::Store(flags, any_nan);
  for (int64_t j = 0; j < L::kSize; ++j) {
    if (flags[j] != Acc(0)) return false;
  }
  for (int64_t j = 0; j < kVectors; ++j) L::Store(max + j * L::kSize, m[j]);
  if (argmax == nullptr || !indexable) return true;
  constexpr int64_t kGroup = kVectors < 4 ? kVectors : 4;
  static_assert(kVectors % kGroup == 0, "groups of vectors");
  const V one = L::Set(Acc(1));
  for (int64_t g = 0; g < kVectors; g += kGroup) {
    V hits[kGroup];
    V last[kGroup];
    for (int64_t j = 0; j < kGroup; ++j) hits[j] = last[j] = L::Set(Acc(0));
    for (const ReadStep<T>& s : steps) {
      const V step = L::Set(static_cast<Acc>(s.t + 1));
      for (int64_t j = 0; j < kGroup; ++j) {
        const V hit = L::Eq(L::Load(s.row + (g + j) * L::kSize), m[g + j]);
        hits[j] = L::Add(hits[j], L::And(hit, one));
        last[j] = L::Max(last[j], L::And(hit, step));
      }
    }
    for (int64_t j = 0; j < kGroup; ++j) {
      Acc hit_count[L::kSize];
      Acc last_step[L::kSize];
      L::Store(hit_count, hits[j]);
      L::Store(last_step, last[j]);
      int32_t* out = argmax + (g + j) * L::kSize;
      for (int64_t i = 0; i < L::kSize; ++i) {
        out[i] = hit_count[i] == Acc(1) ? static_cast<int32_t>(last_step[i]) - 1 : kArgmaxTied;
      }
    }
  }
  return true;
}

// Max over the steps (x * w shifted by scope.shift), NaN-propagating, and
// argmax (sequence_pool.h's codes).
template <int64_t kWidth, typename T, typename Acc>
void PoolMax(const MaxScope<Acc>& scope, const StepSpan<T>& steps,
             const T* weights, int64_t row_begin, int64_t cols, Acc* max, int32_t* argmax) {
  const int64_t n = kWidth > 0 ? kWidth : cols;
  const Acc shift = scope.shift;
  const bool indexable =
      steps.size == 0 || steps.data[steps.size - 1].t < MaxIndexableSteps<Acc>();
  int64_t done = 0;
  if constexpr (Lanes<T>::kSize > 0 && std::is_same_v<T, Acc>) {
    const bool plain = weights == nullptr && shift == Acc(0);
    if constexpr (kWidth > 0 && kWidth % Lanes<T>::kSize == 0 &&
                  kWidth / Lanes<T>::kSize <= 8) {
      if (plain &&
          PlainMaxRow<kWidth / Lanes<T>::kSize, T, Acc>(steps, indexable, max, argmax)) {
        done = n;
      }
    }
    for (; done + Lanes<T>::kSize <= n; done += Lanes<T>::kSize) {
      if (plain && !MaxLanes<true, T, Acc>(steps, weights, row_begin, shift, done, indexable,
                                           max, argmax)) {
        continue;
      }
      MaxLanes<false, T, Acc>(steps, weights, row_begin, shift, done, indexable, max, argmax);
    }
  }
  if (done < n) {
    MaxColumnsScalar<T, Acc>(steps, weights, row_begin, shift, done, n - done, max + done,
                             argmax != nullptr && indexable ? argmax + done : nullptr);
  }
  if (argmax != nullptr && !indexable) std::fill(argmax, argmax + n, kArgmaxTied);
}

// Pools unit u (whose row is `row`) into output (and argmax, for max).
// `zeros` is a row of kDepthBlock zeros; `list` is scratch for max's steps.
template <typename T, typename Index, typename Id>
void ForwardUnit(const EmbeddingRows<Index, Id>& rows, PoolMode mode, const T* table,
                 const T* weights, const Unit& u, const EmbeddingRowPlan<Id>& row,
                 const T* zeros, BadIdReport* bad, std::vector<ReadStep<T>>* list, T* output,
                 int32_t* argmax) {
  using Acc = typename AccumulatorOf<T>::Type;
  const int64_t depth = rows.rows.depth;
  const int64_t pooled_offset = u.batch_row * depth + u.col_begin;
  const int64_t row_begin = row.plan.begin;
  Acc acc[kDepthBlock];
  if (mode == PoolMode::kMax) {
    const MaxScope<Acc> scope = MaxScopeOf<Acc>(row.plan);
    int32_t* argmax_row = argmax != nullptr ? argmax + pooled_offset : nullptr;
    if (!scope.has_steps) {
      std::fill(acc, acc + u.cols, EmptyRowMax<Acc>(row.plan));
      if (argmax_row != nullptr) std::fill(argmax_row, argmax_row + u.cols, kArgmaxNoStep);
    } else {
      const StepSpan<T> span =
          CollectSteps(rows, mode, row, table + u.col_begin, zeros, bad, list);
      DispatchWidth(u.cols, [&](auto width) {
        PoolMax<decltype(width)::value, T, Acc>(scope, span, weights, row_begin, u.cols, acc,
                                                argmax_row);
      });
    }
  } else {
    DispatchWidth(u.cols, [&](auto width) {
      PoolSum<decltype(width)::value, T, Acc>(rows, mode, row, table + u.col_begin, weights,
                                              u.cols, zeros, bad, acc);
    });
    if (mode == PoolMode::kMean) {
      const Acc divisor = MeanDivisor<Acc>(row.plan);
      for (int64_t i = 0; i < u.cols; ++i) acc[i] /= divisor;
    }
  }
  T* out = output + pooled_offset;
  for (int64_t i = 0; i < u.cols; ++i) out[i] = FromAccumulator<T>(acc[i]);
}

template <typename Index, typename Id>
Status ValidateRows(const EmbeddingRows<Index, Id>& rows) {
  if (rows.vocab < 0) return Status::InvalidArgument("vocabulary size must be non-negative");
  return ValidatePoolRows(rows.rows);
}

// dst[0, n) = src[0, n) * scale, streamed when asked and possible.
template <typename T, typename Acc>
void StoreScaledRow(T* dst, const Acc* src, Acc scale, int64_t n, bool stream) {
  if constexpr (Lanes<T>::kSize > 0 && std::is_same_v<T, Acc>) {
    using L = Lanes<T>;
    if (stream && (reinterpret_cast<uintptr_t>(dst) & 31) == 0 && n % L::kSize == 0) {
      const typename L::V s = L::Set(scale);
      for (int64_t i = 0; i < n; i += L::kSize) L::Stream(dst + i, L::Mul(L::Load(src + i), s));
      return;
    }
  }
  for (int64_t i = 0; i < n; ++i) dst[i] = FromAccumulator<T>(src[i] * scale);
}

// dst[i] = (at[i] == step ? grad[i] : 0) * w, streamed when asked and possible
// (StoreScaledRow's rules).
template <typename T, typename Acc>
void StoreArgmaxRow(T* dst, const Acc* at, Acc step, const Acc* grad, Acc w, int64_t n,
                    bool stream) {
  int64_t i = 0;
  if constexpr (Lanes<T>::kSize > 0 && std::is_same_v<T, Acc>) {
    using L = Lanes<T>;
    const bool aligned = (reinterpret_cast<uintptr_t>(dst) & 31) == 0;
    const typename L::V step_v = L::Set(step);
    const typename L::V w_v = L::Set(w);
    for (; i + L::kSize <= n; i += L::kSize) {
      // (selected grad, or +0) * w: 0 * inf is NaN here as in the twin.
      const typename L::V v =
          L::Mul(L::And(L::Eq(L::Load(at + i), step_v), L::Load(grad + i)), w_v);
      if (stream && aligned) {
        L::Stream(dst + i, v);
      } else {
        L::Store(dst + i, v);
      }
    }
  }
  for (; i < n; ++i) dst[i] = FromAccumulator<T>((at[i] == step ? grad[i] : Acc(0)) * w);
}

// One step of a max row whose gradient re-reads the table: its table row and
// weight.
template <typename T, typename Acc>
struct TieStep {
  int64_t t;
  const T* row;
  Acc w;
};

// For every column of a max row: its max over the steps (x * w - shift,
// NaN-propagating) and the share of grad each step equal to it gets (1 / the
// number of such steps; the NaN max itself when it is NaN: TF's 0 / 0 * grad).
template <typename T, typename Acc>
void ColumnMaxAndShares(const std::vector<TieStep<T, Acc>>& steps, Acc shift, int64_t depth,
                        Acc* max, Acc* share) {
  int64_t c = 0;
  if constexpr (Lanes<T>::kSize > 0 && std::is_same_v<T, Acc>) {
    using L = Lanes<T>;
    using V = typename L::V;
    const V shift_v = L::Set(shift);
    const V one = L::Set(Acc(1));
    for (; c + L::kSize <= depth; c += L::kSize) {
      V m = L::Set(-static_cast<Acc>(INFINITY));
      V nan = m;
      V any_nan = L::Set(Acc(0));
      for (const TieStep<T, Acc>& s : steps) {
        const V v = L::Sub(L::Mul(L::Load(s.row + c), L::Set(s.w)), shift_v);
        m = L::Max(v, m);
        const V is_nan = L::IsNan(v);
        nan = L::Select(is_nan, v, nan);
        any_nan = L::Or(any_nan, is_nan);
      }
      m = L::Select(any_nan, nan, m);
      V count = L::Set(Acc(0));
      for (const TieStep<T, Acc>& s : steps) {
        const V v = L::Sub(L::Mul(L::Load(s.row + c), L::Set(s.w)), shift_v);
        count = L::Add(count, L::And(L::Eq(v, m), one));
      }
      L::Store(max + c, m);
      L::Store(share + c, count);
    }
  }
  for (int64_t i = c; i < depth; ++i) {
    Acc m = -static_cast<Acc>(INFINITY);
    Acc nan = m;
    for (const TieStep<T, Acc>& s : steps) {
      const Acc v = ToAccumulator(s.row[i]) * s.w - shift;
      m = v > m ? v : m;
      nan = v != v ? v : nan;
    }
    max[i] = nan != nan ? nan : m;
    Acc count = Acc(0);
    for (const TieStep<T, Acc>& s : steps) {
      count += ToAccumulator(s.row[i]) * s.w - shift == max[i] ? Acc(1) : Acc(0);
    }
    share[i] = count;
  }
  for (int64_t i = 0; i < depth; ++i) share[i] = max[i] != max[i] ? max[i] : Acc(1) / share[i];
}

// g = d out / d x_s times grad for one step of a max row: grad at the columns
// whose single argmax step it is (at[i] == t); with ties, share * grad at the
// re-read columns (at[i] < 0) where the step equals the max or the max is NaN.
template <typename T, typename Acc>
void GradientRowOfMax(const TieStep<T, Acc>& s, Acc shift, const Acc* at, const Acc* max,
                      const Acc* share, const Acc* grad, int64_t depth, bool any_tie, Acc* g) {
  const Acc step = static_cast<Acc>(s.t);
  int64_t c = 0;
  if constexpr (Lanes<T>::kSize > 0 && std::is_same_v<T, Acc>) {
    using L = Lanes<T>;
    using V = typename L::V;
    const V step_v = L::Set(step);
    const V shift_v = L::Set(shift);
    const V w_v = L::Set(s.w);
    const V zero = L::Set(Acc(0));
    for (; c + L::kSize <= depth; c += L::kSize) {
      const V at_v = L::Load(at + c);
      const V grad_v = L::Load(grad + c);
      V out = L::And(L::Eq(at_v, step_v), grad_v);
      if (any_tie) {
        const V m = L::Load(max + c);
        const V v = L::Sub(L::Mul(L::Load(s.row + c), w_v), shift_v);
        const V hit = L::And(L::Lt(at_v, zero), L::Or(L::IsNan(m), L::Eq(v, m)));
        out = L::Or(out, L::And(hit, L::Mul(L::Load(share + c), grad_v)));
      }
      L::Store(g + c, out);
    }
  }
  for (int64_t i = c; i < depth; ++i) {
    g[i] = at[i] == step ? grad[i] : Acc(0);
    if (any_tie && at[i] < Acc(0)) {
      const bool hit =
          max[i] != max[i] || ToAccumulator(s.row[i]) * s.w - shift == max[i];
      g[i] = hit ? share[i] * grad[i] : Acc(0);
    }
  }
}

// The gradient rows of one batch row (all its columns).
template <typename T, typename Index, typename Id>
void BackwardRow(const EmbeddingRows<Index, Id>& rows, PoolMode mode, const T* table,
                 const T* weights, const int32_t* argmax, const T* grad_output, int64_t b,
                 int64_t k, T* grad_table_values, Id* grad_table_indices, T* grad_weights,
                 bool stream, std::vector<typename AccumulatorOf<T>::Type>* scratch,
                 std::vector<TieStep<T, typename AccumulatorOf<T>::Type>>* tie_steps,
                 BadIdReport* bad) {
  using Acc = typename AccumulatorOf<T>::Type;
  const EmbeddingRowPlan<Id> row = PlanEmbeddingRow(rows, b);
  const int64_t depth = rows.rows.depth;
  const int64_t begin = row.plan.begin;
  if (grad_weights != nullptr) {
    std::fill(grad_weights + begin, grad_weights + begin + row.plan.extent,
              FromAccumulator<T>(Acc(0)));
  }
  const int64_t end = PooledStepEnd(row, mode);
  const T* grad_row = grad_output + b * depth;
  auto table_row = [&](int64_t t) -> const T* {
    const Id id = row.ids[t];
    if (!IdInRange(id, rows.vocab)) {
      bad->Report(begin + t, static_cast<int64_t>(id));
      return nullptr;
    }
    return table + static_cast<int64_t>(id) * depth;
  };
  // Five blocks of `depth`: g (d out / d x_s times grad at the current step),
  // and, for max, the row's max and the share of grad of tied columns, the
  // argmax step of each column and grad in the accumulation type.
  scratch->resize(5 * depth);
  Acc* g = scratch->data();
  Acc* max = g + depth;
  Acc* share = max + depth;
  Acc* at = share + depth;
  Acc* grad_acc = at + depth;
  // Writes step t's gradient row from g.
  auto emit = [&](int64_t t, const T* x) {
    StoreScaledRow<T, Acc>(grad_table_values + k * depth, g, StepWeight(weights, begin + t),
                           depth, stream);
    grad_table_indices[k] = row.ids[t];
    if (grad_weights != nullptr) {
      Acc dot = Acc(0);
      if (x != nullptr) {
        for (int64_t i = 0; i < depth; ++i) dot += g[i] * ToAccumulator(x[i]);
      }
      grad_weights[begin + t] = FromAccumulator<T>(dot);
    }
    ++k;
  };
  if (mode != PoolMode::kMax) {
    // g = grad / divisor (mean), then * w: the twin's rounding order.
    const Acc divisor = MeanDivisor<Acc>(row.plan);
    for (int64_t i = 0; i < depth; ++i) {
      g[i] = mode == PoolMode::kMean ? ToAccumulator(grad_row[i]) / divisor
                                     : ToAccumulator(grad_row[i]);
    }
    ForEachPooledStep(row, mode, [&](int64_t t) {
      emit(t, grad_weights != nullptr ? table_row(t) : nullptr);
    });
    return;
  }
  // Max. A column whose argmax names one step gets grad there (at[i] == t,
  // no table read); the others (at[i] == -1, which matches no step) re-read
  // the competing steps to find and count their ties.
  const MaxScope<Acc> scope = MaxScopeOf<Acc>(row.plan);
  if (!scope.has_steps) return;
  const int32_t* argmax_row = argmax != nullptr ? argmax + b * depth : nullptr;
  bool any_tie = false;
  for (int64_t i = 0; i < depth; ++i) {
    const bool indexed =
        argmax_row != nullptr && argmax_row[i] >= 0 && end <= MaxIndexableSteps<Acc>();
    at[i] = indexed ? static_cast<Acc>(argmax_row[i]) : Acc(-1);
    any_tie |= !indexed;
    grad_acc[i] = ToAccumulator(grad_row[i]);
  }
  const bool need_row = any_tie || grad_weights != nullptr;
  if (!need_row) {
    // The common case: every column's max is one step, no weights' gradient.
    // Each gradient row is grad * w where the step holds the max, else 0,
    // selected and stored in one pass.
    ForEachPooledStep(row, mode, [&](int64_t t) {
      StoreArgmaxRow<T, Acc>(grad_table_values + k * depth, at, static_cast<Acc>(t), grad_acc,
                             StepWeight(weights, begin + t), depth, stream);
      grad_table_indices[k++] = row.ids[t];
    });
    return;
  }
  // The pooled steps' table rows (a row of zeros for a bad id, already
  // reported) and weights.
  static thread_local std::vector<T> zero_row;
  if (static_cast<int64_t>(zero_row.size()) < depth) zero_row.assign(depth, T{});
  std::vector<TieStep<T, Acc>>& steps = *tie_steps;
  steps.clear();
  ForEachPooledStep(row, mode, [&](int64_t t) {
    const T* x = table_row(t);
    steps.push_back({t, x != nullptr ? x : zero_row.data(), StepWeight(weights, begin + t)});
  });
  if (any_tie) ColumnMaxAndShares<T, Acc>(steps, scope.shift, depth, max, share);
  for (const TieStep<T, Acc>& s : steps) {
    GradientRowOfMax<T, Acc>(s, scope.shift, at, max, share, grad_acc, depth, any_tie, g);
    emit(s.t, s.row);
  }
}

}  // namespace

template <typename T, typename Index, typename Id>
Status EmbeddingPoolForwardCpu(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                               const T* table, const T* weights, T* output,
                               int32_t* argmax, const ParallelFor& parallel_for) {
  Status status = ValidateRows(rows);
  if (!status.ok()) return status;
  const int64_t depth = rows.rows.depth;
  if (depth == 0 || rows.rows.batch == 0) return Status::Ok();
  const int64_t units = rows.rows.batch * BlocksPerRow(depth);
  const int64_t steps_per_row =
      rows.rows.layout == RowLayout::kRagged ? rows.rows.num_steps / rows.rows.batch + 1
                                             : rows.rows.max_time;
  BadIdReport bad;
  // A table row read is a cache miss (~100 ns) more than the arithmetic.
  const int64_t cost = steps_per_row * (kDepthBlock + 200);
  parallel_for(units, cost, [&](int64_t unit_begin, int64_t unit_end) {
    const std::vector<T> zeros(kDepthBlock, T{});
    std::vector<ReadStep<T>> list;
    if (unit_begin < unit_end) PrefetchUnitRows(rows, mode, table, UnitAt(unit_begin, depth));
    for (int64_t unit = unit_begin; unit < unit_end; ++unit) {
      if (unit + 1 < unit_end) PrefetchUnitRows(rows, mode, table, UnitAt(unit + 1, depth));
      const Unit u = UnitAt(unit, depth);
      ForwardUnit(rows, mode, table, weights, u, PlanEmbeddingRow(rows, u.batch_row),
                  zeros.data(), &bad, &list, output, argmax);
    }
  });
  return bad.ToStatus(rows.rows, rows.vocab);
}

template <typename Index, typename Id>
Status EmbeddingPoolGradRowsCpu(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                int64_t* offsets, const ParallelFor& parallel_for) {
  Status status = ValidateRows(rows);
  if (!status.ok()) return status;
  const int64_t batch = rows.rows.batch;
  offsets[0] = 0;
  const bool counts_steps = rows.mask_zero || rows.rows.layout == RowLayout::kMask;
  parallel_for(batch, counts_steps ? rows.rows.max_time + 1 : 4,
               [&](int64_t begin, int64_t end) {
                 for (int64_t b = begin; b < end; ++b) {
                   offsets[b + 1] = PooledStepCount(PlanEmbeddingRow(rows, b), mode);
                 }
               });
  for (int64_t b = 0; b < batch; ++b) offsets[b + 1] += offsets[b];
  return Status::Ok();
}

template <typename T, typename Index, typename Id>
Status EmbeddingPoolBackwardCpu(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                const T* table, const T* weights, const int32_t* argmax,
                                const T* grad_output, const int64_t* offsets,
                                T* grad_table_values, Id* grad_table_indices,
                                T* grad_weights, const ParallelFor& parallel_for) {
  Status status = ValidateRows(rows);
  if (!status.ok()) return status;
  const int64_t batch = rows.rows.batch;
  const int64_t depth = rows.rows.depth;
  const bool stream =
      offsets[batch] * depth * static_cast<int64_t>(sizeof(T)) >= kStreamingStoreBytes;
  const int64_t steps_per_row =
      rows.rows.layout == RowLayout::kRagged ? rows.rows.num_steps / std::max<int64_t>(1, batch) + 1
                                             : rows.rows.max_time;
  BadIdReport bad;
  parallel_for(batch, steps_per_row * (depth + 8), [&](int64_t begin, int64_t end) {
    std::vector<typename AccumulatorOf<T>::Type> scratch;
    std::vector<TieStep<T, typename AccumulatorOf<T>::Type>> tie_steps;
    for (int64_t b = begin; b < end; ++b) {
      BackwardRow(rows, mode, table, weights, argmax, grad_output, b, offsets[b],
                  grad_table_values, grad_table_indices, grad_weights, stream, &scratch,
                  &tie_steps, &bad);
    }
    if (stream) FinishStreamingStores();
  });
  return bad.ToStatus(rows.rows, rows.vocab);
}

#define DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL(T, Index, Id)                              \
  template Status EmbeddingPoolForwardCpu<T, Index, Id>(                                 \
      const EmbeddingRows<Index, Id>&, PoolMode, const T*, const T*, T*, int32_t*,       \
      const ParallelFor&);                                                               \
  template Status EmbeddingPoolBackwardCpu<T, Index, Id>(                                \
      const EmbeddingRows<Index, Id>&, PoolMode, const T*, const T*, const int32_t*,     \
      const T*, const int64_t*, T*, Id*, T*, const ParallelFor&);

#define DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_INDEX(Index, Id)                         \
  template Status EmbeddingPoolGradRowsCpu<Index, Id>(const EmbeddingRows<Index, Id>&,  \
                                                      PoolMode, int64_t*,                \
                                                      const ParallelFor&);               \
  DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL(float, Index, Id)                              \
  DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL(double, Index, Id)                             \
  DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL(Half, Index, Id)                               \
  DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL(BFloat16, Index, Id)

DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_INDEX(int32_t, int32_t)
DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_INDEX(int32_t, int64_t)
DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_INDEX(int64_t, int32_t)
DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_INDEX(int64_t, int64_t)

#undef DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_INDEX
#undef DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL

}  // namespace kernels
}  // namespace deepctr_ops
