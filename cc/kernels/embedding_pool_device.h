// The fused embedding pooling's CUDA algorithm as host/device code, so that
// the same code runs in the CUDA kernels (embedding_pool.cu) and, thread by
// thread, in the host emulation that reviews it without a GPU
// (embedding_pool_emulate.cc). See embedding_pool.h for the contract.
//
// Forward: one thread per (batch row, column); neighbouring threads own
//   neighbouring columns of the same table row, so every step's table read is
//   coalesced. Each walks its row's pooled steps in step order, as the CPU
//   does per column, so sums, maxima and argmax codes are the CPU's bit for
//   bit (products are rounded before they are added: no FMA contraction).
// GradRows: one thread per batch row writes PooledStepCount to offsets[b + 1];
//   one block then turns them into offsets (OffsetScan).
// Backward: one block per batch row; thread `tid` of `threads` owns the
//   columns tid, tid + threads, ... Phases, separated by __syncthreads:
//     Start: zero the row's grad_weights; max: each thread finds its tied
//       columns' max and share (cached per column when shared memory allows).
//     Per pooled step: Step (values, index, the thread's part of the dot),
//       then, with grad_weights, the tree Reduce and Finish.
//   grad_weights' dot is summed in a fixed tree: deterministic, but rounded
//   differently from the CPU's sequential dot unless threads == 1.
#ifndef DEEPCTR_OPS_CC_KERNELS_EMBEDDING_POOL_DEVICE_H_
#define DEEPCTR_OPS_CC_KERNELS_EMBEDDING_POOL_DEVICE_H_

#include <cstdint>

#include "cc/kernels/embedding_pool.h"
#include "cc/kernels/embedding_pool_rows.h"
#include "cc/kernels/float_types.h"
#include "cc/kernels/host_device.h"
#include "cc/kernels/sequence_pool_rows.h"

namespace deepctr_ops {
namespace kernels {
namespace embedding_gpu {

// a * b rounded on its own: nvcc would otherwise fuse `acc += a * b` into an
// FMA, which the CPU kernel (built for AVX, not FMA) does not do.
DCTR_HOST_DEVICE inline float RoundedProduct(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

DCTR_HOST_DEVICE inline double RoundedProduct(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

// The table row of `id`, or null for an id outside [0, vocab): that row reads
// as zeros, as TF's GPU gather does.
template <typename T, typename Id>
DCTR_HOST_DEVICE inline const T* TableRow(const T* table, Id id, int64_t vocab, int64_t depth) {
  return IdInRange(id, vocab) ? table + static_cast<int64_t>(id) * depth : nullptr;
}

template <typename T>
DCTR_HOST_DEVICE inline typename AccumulatorOf<T>::Type ColumnOf(const T* row, int64_t e) {
  using Acc = typename AccumulatorOf<T>::Type;
  return row != nullptr ? ToAccumulator(row[e]) : Acc(0);
}

// The value a step competes with in max pooling: x * w - shift (the CPU's
// order; no product without weights).
template <typename T, typename Acc>
DCTR_HOST_DEVICE inline Acc MaxStepValue(const T* row, int64_t e, const T* weights, int64_t step,
                                         Acc shift) {
  const Acc x = ColumnOf(row, e);
  return (weights == nullptr ? x : RoundedProduct(x, ToAccumulator(weights[step]))) - shift;
}

// Column e's max over the row's pooled steps (scope.has_steps is true), how
// many steps equal it and the first of them. A NaN step makes the max NaN
// (the last NaN, as on the CPU) and equal to no step.
template <typename Acc>
struct ColumnMax {
  Acc max;
  int64_t hits;
  int64_t first;
};

template <typename T, typename Index, typename Id>
DCTR_HOST_DEVICE inline ColumnMax<typename AccumulatorOf<T>::Type> ScanColumnMax(
    const EmbeddingRows<Index, Id>& rows, const EmbeddingRowPlan<Id>& row,
    const MaxScope<typename AccumulatorOf<T>::Type>& scope, const T* table, const T* weights,
    int64_t e) {
  using Acc = typename AccumulatorOf<T>::Type;
  ColumnMax<Acc> c{-static_cast<Acc>(INFINITY), 0, 0};
  Acc nan = Acc(0);
  bool has_nan = false;
  const int64_t end = PooledStepEnd(row, PoolMode::kMax);
  for (int64_t t = 0; t < end; ++t) {
    if (!StepIsPooled(row, PoolMode::kMax, t)) continue;
    const T* x = TableRow(table, row.ids[t], rows.vocab, rows.rows.depth);
    const Acc v = MaxStepValue(x, e, weights, row.plan.begin + t, scope.shift);
    if (v != v) {
      nan = v;
      has_nan = true;
    } else if (v > c.max) {
      c.max = v;
      c.hits = 1;
      c.first = t;
    } else if (v == c.max) {
      if (c.hits == 0) c.first = t;
      ++c.hits;
    }
  }
  if (has_nan) {
    c.max = nan;
    c.hits = 0;
  }
  return c;
}

// What each competing step equal to the max gets of grad: 1 / ties, or the
// NaN max itself (TF's 0 / 0 * grad).
template <typename Acc>
DCTR_HOST_DEVICE inline Acc TieShare(const ColumnMax<Acc>& c) {
  return c.max != c.max ? c.max : Acc(1) / static_cast<Acc>(c.hits);
}

// ---- Forward -----------------------------------------------------------------

// Output element idx = b * depth + e.
template <typename T, typename Index, typename Id>
DCTR_HOST_DEVICE inline void ForwardColumn(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                           const T* table, const T* weights, T* output,
                                           int32_t* argmax, int64_t idx) {
  using Acc = typename AccumulatorOf<T>::Type;
  const int64_t depth = rows.rows.depth;
  const int64_t b = idx / depth;
  const int64_t e = idx - b * depth;
  const EmbeddingRowPlan<Id> row = PlanEmbeddingRow(rows, b);
  Acc acc = Acc(0);
  if (mode == PoolMode::kMax) {
    const MaxScope<Acc> scope = MaxScopeOf<Acc>(row.plan);
    if (!scope.has_steps) {
      acc = EmptyRowMax<Acc>(row.plan);
      if (argmax != nullptr) argmax[idx] = kArgmaxNoStep;
    } else {
      const ColumnMax<Acc> c = ScanColumnMax(rows, row, scope, table, weights, e);
      acc = c.max;
      if (argmax != nullptr) {
        argmax[idx] = c.hits == 1 && c.first <= INT32_MAX ? static_cast<int32_t>(c.first)
                                                          : kArgmaxTied;
      }
    }
  } else {
    const int64_t end = PooledStepEnd(row, mode);
    for (int64_t t = 0; t < end; ++t) {
      if (!StepIsPooled(row, mode, t)) continue;
      const Acc x = ColumnOf(TableRow(table, row.ids[t], rows.vocab, depth), e);
      acc += weights == nullptr
                 ? x
                 : RoundedProduct(x, ToAccumulator(weights[row.plan.begin + t]));
    }
    if (mode == PoolMode::kMean) acc /= MeanDivisor<Acc>(row.plan);
  }
  output[idx] = FromAccumulator<T>(acc);
}

// ---- GradRows ----------------------------------------------------------------

template <typename Index, typename Id>
DCTR_HOST_DEVICE inline void CountGradRows(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                           int64_t* offsets, int64_t b) {
  offsets[b + 1] = PooledStepCount(PlanEmbeddingRow(rows, b), mode);
}

// One block turns the counts offsets[1, n] into offsets [n + 1] in place:
// each thread sums a contiguous chunk (Sum), a Hillis-Steele scan of the
// chunk sums in `sums` ([threads], shared memory) gives each chunk the total
// before it (Peek, then Add, for offset = 1, 2, 4, ... < threads), and each
// thread rewrites its chunk as running totals (Write). Integer sums: exact.
struct OffsetScan {
  int64_t* offsets;
  int64_t n;
  int64_t* sums;
  int threads;

  DCTR_HOST_DEVICE int64_t ChunkBegin(int tid) const {
    const int64_t per = (n + threads - 1) / threads;
    const int64_t begin = tid * per;
    return begin < n ? begin : n;
  }
  DCTR_HOST_DEVICE int64_t ChunkEnd(int tid) const {
    const int64_t per = (n + threads - 1) / threads;
    const int64_t end = (tid + 1) * per;
    return end < n ? end : n;
  }
  DCTR_HOST_DEVICE void Sum(int tid) {
    int64_t sum = 0;
    for (int64_t i = ChunkBegin(tid); i < ChunkEnd(tid); ++i) sum += offsets[i + 1];
    sums[tid] = sum;
  }
  DCTR_HOST_DEVICE int64_t Peek(int offset, int tid) const {
    return tid >= offset ? sums[tid - offset] : 0;
  }
  DCTR_HOST_DEVICE void Add(int tid, int64_t before) { sums[tid] += before; }
  DCTR_HOST_DEVICE void Write(int tid) {
    int64_t running = tid > 0 ? sums[tid - 1] : 0;
    for (int64_t i = ChunkBegin(tid); i < ChunkEnd(tid); ++i) {
      running += offsets[i + 1];
      offsets[i + 1] = running;
    }
    if (tid == 0) offsets[0] = 0;
  }
};

// ---- Backward ----------------------------------------------------------------

template <typename T, typename Index, typename Id>
struct BackwardArgs {
  EmbeddingRows<Index, Id> rows;
  PoolMode mode = PoolMode::kSum;
  const T* table = nullptr;
  const T* weights = nullptr;
  const int32_t* argmax = nullptr;
  const T* grad_output = nullptr;
  const int64_t* offsets = nullptr;
  T* values = nullptr;
  Id* indices = nullptr;
  T* grad_weights = nullptr;
};

// The backward's arguments as the CUDA launcher and the host emulation pass
// them: argmax only for max.
template <typename T, typename Index, typename Id>
BackwardArgs<T, Index, Id> MakeBackwardArgs(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                            const T* table, const T* weights,
                                            const int32_t* argmax, const T* grad_output,
                                            const int64_t* offsets, T* values, Id* indices,
                                            T* grad_weights) {
  BackwardArgs<T, Index, Id> args;
  args.rows = rows;
  args.mode = mode;
  args.table = table;
  args.weights = weights;
  args.argmax = mode == PoolMode::kMax ? argmax : nullptr;
  args.grad_output = grad_output;
  args.offsets = offsets;
  args.values = values;
  args.indices = indices;
  args.grad_weights = grad_weights;
  return args;
}

// One block's work on one batch row. Every thread plans the row itself (the
// same plan); `partial` ([threads]) is shared, `column_max`/`column_share`
// ([depth], null when they do not fit: recomputed at each use) hold max's
// tied columns, each read only by the thread that owns the column.
template <typename T, typename Index, typename Id>
struct BackwardBlock {
  using Acc = typename AccumulatorOf<T>::Type;

  const BackwardArgs<T, Index, Id>* a;
  Acc* partial;
  Acc* column_max;
  Acc* column_share;
  int64_t b;
  EmbeddingRowPlan<Id> row;
  MaxScope<Acc> scope;
  int64_t end;  // PooledStepEnd.

  DCTR_HOST_DEVICE void Plan(int64_t batch_row) {
    b = batch_row;
    row = PlanEmbeddingRow(a->rows, b);
    scope = MaxScopeOf<Acc>(row.plan);
    // A row without steps (max) pools none; PooledStepEnd is then 0.
    end = PooledStepEnd(row, a->mode);
  }

  DCTR_HOST_DEVICE bool Pooled(int64_t t) const { return StepIsPooled(row, a->mode, t); }

  DCTR_HOST_DEVICE int32_t Code(int64_t e) const {
    return a->argmax != nullptr ? a->argmax[b * a->rows.rows.depth + e] : kArgmaxTied;
  }

  DCTR_HOST_DEVICE void Start(int tid, int threads) {
    const PoolRows<Index>& pool = a->rows.rows;
    if (a->grad_weights != nullptr) {
      const T zero = FromAccumulator<T>(Acc(0));
      for (int64_t t = tid; t < row.plan.extent; t += threads) {
        a->grad_weights[row.plan.begin + t] = zero;
      }
      if (pool.layout == RowLayout::kRagged) {
        // Steps before the first split or from the last one on belong to no
        // row (only invalid splits leave such steps; see sequence_pool.h).
        if (b == 0) {
          const int64_t first = ClampIndex(pool.row_splits[0], 0, pool.num_steps);
          for (int64_t s = tid; s < first; s += threads) a->grad_weights[s] = zero;
        }
        if (b == pool.batch - 1) {
          const int64_t last = ClampIndex(pool.row_splits[pool.batch], 0, pool.num_steps);
          for (int64_t s = last + tid; s < pool.num_steps; s += threads) {
            a->grad_weights[s] = zero;
          }
        }
      }
    }
    if (a->mode != PoolMode::kMax || column_max == nullptr || end == 0) return;
    for (int64_t e = tid; e < pool.depth; e += threads) {
      if (Code(e) >= 0) continue;
      const ColumnMax<Acc> c = ScanColumnMax(a->rows, row, scope, a->table, a->weights, e);
      column_max[e] = c.max;
      column_share[e] = TieShare(c);
    }
  }

  // d out[b, e] / d x_t times grad[b, e]; `x` is step t's table row.
  DCTR_HOST_DEVICE Acc ColumnGrad(int64_t t, int64_t e, const T* x, Acc grad) const {
    if (a->mode == PoolMode::kSum) return grad;
    if (a->mode == PoolMode::kMean) return grad / MeanDivisor<Acc>(row.plan);
    const int32_t code = Code(e);
    if (code >= 0) return code == t ? grad : Acc(0);
    Acc max, share;
    if (column_max != nullptr) {
      max = column_max[e];
      share = column_share[e];
    } else {
      const ColumnMax<Acc> c = ScanColumnMax(a->rows, row, scope, a->table, a->weights, e);
      max = c.max;
      share = TieShare(c);
    }
    const Acc v = MaxStepValue(x, e, a->weights, row.plan.begin + t, scope.shift);
    return max != max || v == max ? RoundedProduct(share, grad) : Acc(0);
  }

  // Gradient row k of step t: its values and index; the thread's part of the
  // dot with the table row into partial[tid].
  DCTR_HOST_DEVICE void Step(int64_t t, int64_t k, int tid, int threads) {
    const int64_t depth = a->rows.rows.depth;
    const int64_t step = row.plan.begin + t;
    const Id id = row.ids[t];
    const T* x = TableRow(a->table, id, a->rows.vocab, depth);
    const Acc w = a->weights != nullptr ? ToAccumulator(a->weights[step]) : Acc(1);
    const T* grad_row = a->grad_output + b * depth;
    T* out = a->values + k * depth;
    Acc dot = Acc(0);
    for (int64_t e = tid; e < depth; e += threads) {
      const Acc g = ColumnGrad(t, e, x, ToAccumulator(grad_row[e]));
      out[e] = FromAccumulator<T>(RoundedProduct(g, w));
      dot += RoundedProduct(g, ColumnOf(x, e));
    }
    partial[tid] = dot;
    if (tid == 0) a->indices[k] = id;
  }

  // One level of the tree over partial[0, 2 * stride).
  DCTR_HOST_DEVICE void Reduce(int stride, int tid) {
    if (tid < stride) partial[tid] += partial[tid + stride];
  }

  DCTR_HOST_DEVICE void Finish(int64_t t, int tid) {
    if (tid == 0) a->grad_weights[row.plan.begin + t] = FromAccumulator<T>(partial[0]);
  }
};

// Block size of the backward: a power of two (the tree), 32 to 256, no more
// than the columns need.
inline int BackwardThreads(int64_t depth) {
  int threads = 32;
  while (threads < 256 && threads < depth) threads *= 2;
  return threads;
}

// Bytes of the max backward's column cache (column_max and column_share).
template <typename T>
int64_t ColumnCacheBytes(int64_t depth) {
  return 2 * depth * static_cast<int64_t>(sizeof(typename AccumulatorOf<T>::Type));
}

}  // namespace embedding_gpu
}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_EMBEDDING_POOL_DEVICE_H_
