// CUDA implementation of sequence pooling. See sequence_pool.h for the
// contract. One thread owns one (batch row, column) pair and walks its steps;
// neighbouring threads own neighbouring columns, so every step's loads and
// stores are coalesced.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cc/kernels/cuda_launch.h"
#include "cc/kernels/float_types.h"
#include "cc/kernels/sequence_pool.h"
#include "cc/kernels/sequence_pool_rows.h"

namespace deepctr_ops {
namespace kernels {
namespace {

constexpr int kThreadsPerBlock = 256;

// The max over a row's competing steps (see MaxScope; scope.has_steps is
// true), how many steps equal it and the first of them. `hits` counts the
// steps equal to the running max since it was last raised, so at the end it
// counts the steps equal to the max.
template <typename Acc>
struct ColumnMax {
  Acc max;
  int64_t hits;
  int64_t first;
};

template <typename T, typename Acc>
__device__ ColumnMax<Acc> ScanColumnMax(const RowPlan& plan, const MaxScope<Acc>& scope,
                                        const T* x, int64_t stride) {
  const int64_t end = scope.shifted ? plan.extent : (plan.mask ? plan.extent : plan.valid_end);
  ColumnMax<Acc> c{-static_cast<Acc>(INFINITY), 0, 0};
  for (int64_t t = 0; t < end; ++t) {
    if (!scope.shifted && !StepIsValid(plan, t)) continue;
    const Acc v = ToAccumulator(x[t * stride]) - scope.shift;
    if (v != v) {  // A NaN step makes the max NaN (tf.reduce_max), equal to no step.
      c.max = v;
      c.hits = 0;
      break;
    }
    if (v > c.max) {
      c.max = v;
      c.first = t;
      c.hits = 1;
    } else if (v == c.max) {
      if (c.hits == 0) c.first = t;
      ++c.hits;
    }
  }
  return c;
}

// Where the max is (argmax in sequence_pool.h). Like the CPU, no index for
// rows longer than an int32 can name.
template <typename Acc>
__device__ int32_t ArgmaxCode(const RowPlan& plan, const ColumnMax<Acc>& c) {
  return c.hits == 1 && plan.extent <= INT32_MAX ? static_cast<int32_t>(c.first) : kArgmaxTied;
}

template <typename T, typename Index>
__global__ void PoolForwardKernel(PoolRows<Index> rows, PoolMode mode,
                                  const T* __restrict__ values,
                                  T* __restrict__ output,
                                  int32_t* __restrict__ argmax) {
  using Acc = typename AccumulatorOf<T>::Type;
  const int64_t total = rows.batch * rows.depth;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       idx < total; idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = idx / rows.depth;
    const int64_t e = idx - b * rows.depth;
    const RowPlan plan = PlanRow(rows, b);
    const T* x = values + plan.begin * rows.depth + e;
    Acc acc;
    if (mode == PoolMode::kMax) {
      const MaxScope<Acc> scope = MaxScopeOf<Acc>(plan);
      if (!scope.has_steps) {
        acc = EmptyRowMax<Acc>(plan);
        if (argmax != nullptr) argmax[idx] = kArgmaxNoStep;
      } else {
        const ColumnMax<Acc> c = ScanColumnMax<T, Acc>(plan, scope, x, rows.depth);
        acc = c.max;
        if (argmax != nullptr) argmax[idx] = ArgmaxCode(plan, c);
      }
    } else {
      acc = Acc(0);
      const int64_t end = plan.mask ? plan.extent : plan.valid_end;
      for (int64_t t = 0; t < end; ++t) {
        if (StepIsValid(plan, t)) acc += ToAccumulator(x[t * rows.depth]);
      }
      if (mode == PoolMode::kMean) acc /= MeanDivisor<Acc>(plan);
    }
    output[idx] = FromAccumulator<T>(acc);
  }
}

// Ragged: value rows before the first split or from the last one on belong to
// no batch row (only out-of-range splits leave such rows: see
// LaunchMonotoneRowSplits). The first and last batch rows' threads zero them,
// so the gradient needs no separate zero-fill pass. The monotone splits m
// tile [m_0, m_B) with the rows [m_b, m_b+1), each value row exactly once.
template <typename T, typename Index>
__device__ void ZeroRowsOutsideSplits(const PoolRows<Index>& rows, int64_t b, int64_t e,
                                      T* grad_values, T zero) {
  if (b == 0) {
    const int64_t first = ClampIndex(rows.row_splits[0], 0, rows.num_steps);
    for (int64_t n = 0; n < first; ++n) grad_values[n * rows.depth + e] = zero;
  }
  if (b == rows.batch - 1) {
    const int64_t last = ClampIndex(rows.row_splits[rows.batch], 0, rows.num_steps);
    for (int64_t n = last; n < rows.num_steps; ++n) grad_values[n * rows.depth + e] = zero;
  }
}

template <typename T, typename Index>
__global__ void PoolBackwardKernel(PoolRows<Index> rows, PoolMode mode,
                                   const T* __restrict__ values,
                                   const int32_t* __restrict__ argmax,
                                   const T* __restrict__ grad_output,
                                   T* __restrict__ grad_values) {
  using Acc = typename AccumulatorOf<T>::Type;
  const int64_t total = rows.batch * rows.depth;
  const T zero = FromAccumulator<T>(Acc(0));
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       idx < total; idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = idx / rows.depth;
    const int64_t e = idx - b * rows.depth;
    if (rows.layout == RowLayout::kRagged) ZeroRowsOutsideSplits(rows, b, e, grad_values, zero);
    const RowPlan plan = PlanRow(rows, b);
    const int64_t offset = plan.begin * rows.depth + e;
    const T* x = values + offset;
    T* g = grad_values + offset;
    const Acc grad = ToAccumulator(grad_output[idx]);
    if (mode != PoolMode::kMax) {
      const Acc divisor = mode == PoolMode::kMean ? MeanDivisor<Acc>(plan) : Acc(1);
      const T scaled = FromAccumulator<T>(grad / divisor);
      for (int64_t t = 0; t < plan.extent; ++t) {
        g[t * rows.depth] = StepIsValid(plan, t) ? scaled : zero;
      }
      continue;
    }
    const MaxScope<Acc> scope = MaxScopeOf<Acc>(plan);
    if (!scope.has_steps) continue;
    const bool shifted = scope.shifted;
    const int64_t at = argmax != nullptr ? argmax[idx] : kArgmaxTied;
    if (at >= 0) {
      // A single max: grad there, (1 / 1) * grad == grad; no value is read.
      const T g_at = grad_output[idx];
      for (int64_t t = 0; t < plan.extent; ++t) {
        const bool competes = shifted || StepIsValid(plan, t);
        g[t * rows.depth] = competes && t == at ? g_at : zero;
      }
      continue;
    }
    const ColumnMax<Acc> c = ScanColumnMax<T, Acc>(plan, scope, x, rows.depth);
    const Acc max = c.max;
    const Acc shift = scope.shift;
    // NaN max: TF's (equal / count) * grad is 0 / 0 * grad, NaN at every
    // competing step.
    const bool nan_max = max != max;
    const T share =
        FromAccumulator<T>((nan_max ? max : Acc(1) / static_cast<Acc>(c.hits)) * grad);
    for (int64_t t = 0; t < plan.extent; ++t) {
      const bool competes = shifted || StepIsValid(plan, t);
      g[t * rows.depth] =
          competes && (nan_max || ToAccumulator(x[t * rows.depth]) - shift == max) ? share
                                                                                 : zero;
    }
  }
}

constexpr int kScanThreads = 1024;

// One block: each thread takes a contiguous chunk of the B + 1 splits; a
// Hillis-Steele scan over the chunks' maxima gives each chunk the running max
// before it. O(B) work and no host round trip.
template <typename Index>
__global__ void MonotoneRowSplitsKernel(const Index* __restrict__ splits, int64_t count,
                                        int64_t num_steps, Index* __restrict__ monotone) {
  __shared__ int64_t scan[kScanThreads];
  const int64_t per_thread = (count + kScanThreads - 1) / kScanThreads;
  const int64_t begin = threadIdx.x * per_thread;
  const int64_t end = begin + per_thread < count ? begin + per_thread : count;
  int64_t chunk_max = 0;
  for (int64_t i = begin; i < end; ++i) {
    const int64_t v = ClampIndex(splits[i], 0, num_steps);
    chunk_max = v > chunk_max ? v : chunk_max;
  }
  scan[threadIdx.x] = chunk_max;
  __syncthreads();
  for (int offset = 1; offset < kScanThreads; offset *= 2) {
    const int64_t before = threadIdx.x >= offset ? scan[threadIdx.x - offset] : 0;
    __syncthreads();
    if (before > scan[threadIdx.x]) scan[threadIdx.x] = before;
    __syncthreads();
  }
  int64_t running = threadIdx.x > 0 ? scan[threadIdx.x - 1] : 0;
  for (int64_t i = begin; i < end; ++i) {
    const int64_t v = ClampIndex(splits[i], 0, num_steps);
    running = v > running ? v : running;
    monotone[i] = static_cast<Index>(running);
  }
}

// The part of ValidatePoolRows that needs no row_splits: a negative size would
// otherwise become a huge memset or a launch with an invalid grid.
template <typename Index>
Status CheckSizes(const PoolRows<Index>& rows) {
  if (rows.batch < 0 || rows.max_time < 0 || rows.depth < 0 || rows.num_steps < 0) {
    return Status::InvalidArgument("pooling sizes must be non-negative");
  }
  return Status::Ok();
}

}  // namespace

template <typename Index>
Status LaunchMonotoneRowSplits(const Index* row_splits, int64_t batch, int64_t num_steps,
                               Index* monotone, void* stream) {
  if (batch < 0 || num_steps < 0) {
    return Status::InvalidArgument("pooling sizes must be non-negative");
  }
  MonotoneRowSplitsKernel<Index><<<1, kScanThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      row_splits, batch + 1, num_steps, monotone);
  return CheckLaunch("SequencePool row_splits");
}

template <typename T, typename Index>
Status LaunchSequencePoolForward(const PoolRows<Index>& rows, PoolMode mode,
                                 const T* values, T* output, int32_t* argmax,
                                 void* stream) {
  Status status = CheckSizes(rows);
  const int64_t total = rows.batch * rows.depth;
  if (!status.ok() || total == 0) return status;
  PoolForwardKernel<T, Index>
      <<<BlocksFor(total, kThreadsPerBlock), kThreadsPerBlock, 0,
         static_cast<cudaStream_t>(stream)>>>(
          rows, mode, values, output, mode == PoolMode::kMax ? argmax : nullptr);
  return CheckLaunch("SequencePool forward");
}

template <typename T, typename Index>
Status LaunchSequencePoolBackward(const PoolRows<Index>& rows, PoolMode mode,
                                  const T* values, const int32_t* argmax,
                                  const T* grad_output, T* grad_values,
                                  void* stream) {
  Status status = CheckSizes(rows);
  if (!status.ok()) return status;
  cudaStream_t cuda_stream = static_cast<cudaStream_t>(stream);
  if (rows.layout == RowLayout::kRagged && rows.batch == 0 && rows.num_steps * rows.depth > 0) {
    // No batch row, so no thread to zero the value rows (ZeroRowsOutsideSplits).
    const cudaError_t err = cudaMemsetAsync(
        grad_values, 0, sizeof(T) * rows.num_steps * rows.depth, cuda_stream);
    if (err != cudaSuccess) {
      cudaGetLastError();  // Not to be reported again by a later launch check.
      return Status::Internal(std::string("SequencePool backward memset failed: ") +
                              cudaGetErrorString(err));
    }
  }
  const int64_t total = rows.batch * rows.depth;
  if (total == 0) return Status::Ok();
  PoolBackwardKernel<T, Index>
      <<<BlocksFor(total, kThreadsPerBlock), kThreadsPerBlock, 0, cuda_stream>>>(
          rows, mode, values, argmax, grad_output, grad_values);
  return CheckLaunch("SequencePool backward");
}

#define DEEPCTR_OPS_INSTANTIATE_POOL_GPU(T, Index)                            \
  template Status LaunchSequencePoolForward<T, Index>(                        \
      const PoolRows<Index>&, PoolMode, const T*, T*, int32_t*, void*);       \
  template Status LaunchSequencePoolBackward<T, Index>(                       \
      const PoolRows<Index>&, PoolMode, const T*, const int32_t*, const T*, T*, \
      void*);

#define DEEPCTR_OPS_INSTANTIATE_POOL_GPU_INDEX(Index) \
  template Status LaunchMonotoneRowSplits<Index>(const Index*, int64_t, int64_t, Index*, \
                                                 void*);                                \
  DEEPCTR_OPS_INSTANTIATE_POOL_GPU(float, Index)     \
  DEEPCTR_OPS_INSTANTIATE_POOL_GPU(double, Index)    \
  DEEPCTR_OPS_INSTANTIATE_POOL_GPU(Half, Index)      \
  DEEPCTR_OPS_INSTANTIATE_POOL_GPU(BFloat16, Index)

DEEPCTR_OPS_INSTANTIATE_POOL_GPU_INDEX(int32_t)
DEEPCTR_OPS_INSTANTIATE_POOL_GPU_INDEX(int64_t)

}  // namespace kernels
}  // namespace deepctr_ops
