// CUDA implementation of the fused embedding pooling. See embedding_pool.h
// for the contract and embedding_pool_device.h for the algorithm, which these
// kernels run and embedding_pool_emulate.cc runs on the host.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cc/kernels/cuda_launch.h"
#include "cc/kernels/embedding_pool.h"
#include "cc/kernels/embedding_pool_device.h"
#include "cc/kernels/float_types.h"

namespace deepctr_ops {
namespace kernels {
namespace {

using embedding_gpu::BackwardArgs;
using embedding_gpu::BackwardBlock;
using embedding_gpu::MakeBackwardArgs;
using embedding_gpu::OffsetScan;

constexpr int kThreadsPerBlock = 256;
constexpr int kScanThreads = 1024;
// The max backward caches its tied columns in shared memory up to this size
// (plus the block's partial dots); wider rows recompute them at each use.
constexpr int64_t kColumnCacheLimit = 40 << 10;

template <typename T, typename Index, typename Id>
__global__ void ForwardKernel(EmbeddingRows<Index, Id> rows, PoolMode mode,
                              const T* __restrict__ table, const T* __restrict__ weights,
                              T* __restrict__ output, int32_t* __restrict__ argmax) {
  const int64_t total = rows.rows.batch * rows.rows.depth;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    embedding_gpu::ForwardColumn(rows, mode, table, weights, output, argmax, idx);
  }
}

template <typename Index, typename Id>
__global__ void CountKernel(EmbeddingRows<Index, Id> rows, PoolMode mode,
                            int64_t* __restrict__ offsets) {
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       b < rows.rows.batch; b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    embedding_gpu::CountGradRows(rows, mode, offsets, b);
  }
}

// One block of kScanThreads.
__global__ void OffsetScanKernel(int64_t* offsets, int64_t batch) {
  __shared__ int64_t sums[kScanThreads];
  OffsetScan scan{offsets, batch, sums, kScanThreads};
  const int tid = threadIdx.x;
  scan.Sum(tid);
  __syncthreads();
  for (int offset = 1; offset < kScanThreads; offset *= 2) {
    const int64_t before = scan.Peek(offset, tid);
    __syncthreads();
    scan.Add(tid, before);
    __syncthreads();
  }
  scan.Write(tid);
}

// One block per batch row (grid-stride); blockDim.x is a power of two. The
// dynamic shared memory holds the partial dots [blockDim.x], then, when
// `cache`, the column cache [2 * depth].
template <typename T, typename Index, typename Id>
__global__ void BackwardKernel(BackwardArgs<T, Index, Id> args, bool cache) {
  using Acc = typename AccumulatorOf<T>::Type;
  extern __shared__ __align__(16) unsigned char shared[];
  const int tid = threadIdx.x;
  const int threads = blockDim.x;
  const int64_t depth = args.rows.rows.depth;
  BackwardBlock<T, Index, Id> block;
  block.a = &args;
  block.partial = reinterpret_cast<Acc*>(shared);
  block.column_max = cache ? block.partial + threads : nullptr;
  block.column_share = cache ? block.column_max + depth : nullptr;
  const bool dot = args.grad_weights != nullptr;
  for (int64_t b = blockIdx.x; b < args.rows.rows.batch; b += gridDim.x) {
    block.Plan(b);
    block.Start(tid, threads);
    __syncthreads();  // The row's grad_weights are zero before Finish writes.
    int64_t k = args.offsets[b];
    for (int64_t t = 0; t < block.end; ++t) {
      if (!block.Pooled(t)) continue;
      block.Step(t, k, tid, threads);
      ++k;
      if (!dot) continue;
      __syncthreads();
      for (int stride = threads / 2; stride > 0; stride /= 2) {
        block.Reduce(stride, tid);
        __syncthreads();
      }
      block.Finish(t, tid);
      __syncthreads();  // partial[0] is read before the next step overwrites it.
    }
  }
}

}  // namespace

template <typename T, typename Index, typename Id>
Status LaunchEmbeddingPoolForward(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                  const T* table, const T* weights, T* output,
                                  int32_t* argmax, void* stream) {
  Status status = CheckEmbeddingSizes(rows);
  const int64_t total = rows.rows.batch * rows.rows.depth;
  if (!status.ok() || total == 0) return status;
  ForwardKernel<T, Index, Id><<<BlocksFor(total, kThreadsPerBlock), kThreadsPerBlock, 0,
                                static_cast<cudaStream_t>(stream)>>>(
      rows, mode, table, weights, output, mode == PoolMode::kMax ? argmax : nullptr);
  return CheckLaunch("EmbeddingPool forward");
}

template <typename Index, typename Id>
Status LaunchEmbeddingPoolGradRows(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                   int64_t* offsets, void* stream) {
  Status status = CheckEmbeddingSizes(rows);
  if (!status.ok()) return status;
  cudaStream_t cuda_stream = static_cast<cudaStream_t>(stream);
  const int64_t batch = rows.rows.batch;
  if (batch > 0) {
    CountKernel<Index, Id><<<BlocksFor(batch, kThreadsPerBlock), kThreadsPerBlock, 0,
                             cuda_stream>>>(rows, mode, offsets);
    status = CheckLaunch("EmbeddingPool gradient rows");
    if (!status.ok()) return status;
  }
  // Also for batch 0: offsets[0] = 0.
  OffsetScanKernel<<<1, kScanThreads, 0, cuda_stream>>>(offsets, batch);
  return CheckLaunch("EmbeddingPool gradient offsets");
}

template <typename T, typename Index, typename Id>
Status LaunchEmbeddingPoolBackward(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                   const T* table, const T* weights, const int32_t* argmax,
                                   const T* grad_output, const int64_t* offsets,
                                   T* grad_table_values, Id* grad_table_indices,
                                   T* grad_weights, void* stream) {
  using Acc = typename AccumulatorOf<T>::Type;
  Status status = CheckEmbeddingSizes(rows);
  if (!status.ok()) return status;
  cudaStream_t cuda_stream = static_cast<cudaStream_t>(stream);
  const int64_t batch = rows.rows.batch;
  if (batch == 0) {
    // No batch row, so no block to zero the ragged steps' grad_weights.
    const int64_t steps = rows.rows.num_steps;
    if (grad_weights == nullptr || steps == 0) return Status::Ok();
    const cudaError_t err = cudaMemsetAsync(grad_weights, 0, sizeof(T) * steps, cuda_stream);
    if (err != cudaSuccess) {
      cudaGetLastError();  // Not to be reported again by a later launch check.
      return Status::Internal(std::string("EmbeddingPool backward memset failed: ") +
                              cudaGetErrorString(err));
    }
    return Status::Ok();
  }
  const BackwardArgs<T, Index, Id> args = MakeBackwardArgs(
      rows, mode, table, weights, argmax, grad_output, offsets, grad_table_values,
      grad_table_indices, grad_weights);
  const int threads = embedding_gpu::BackwardThreads(rows.rows.depth);
  const int64_t cache_bytes = embedding_gpu::ColumnCacheBytes<T>(rows.rows.depth);
  const bool cache = mode == PoolMode::kMax && cache_bytes <= kColumnCacheLimit;
  const size_t shared_bytes =
      sizeof(Acc) * static_cast<size_t>(threads) + (cache ? static_cast<size_t>(cache_bytes) : 0);
  BackwardKernel<T, Index, Id><<<BlocksFor(batch, 1), threads, shared_bytes, cuda_stream>>>(
      args, cache);
  return CheckLaunch("EmbeddingPool backward");
}

#define DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_GPU(T, Index, Id)                           \
  template Status LaunchEmbeddingPoolForward<T, Index, Id>(                               \
      const EmbeddingRows<Index, Id>&, PoolMode, const T*, const T*, T*, int32_t*, void*); \
  template Status LaunchEmbeddingPoolBackward<T, Index, Id>(                              \
      const EmbeddingRows<Index, Id>&, PoolMode, const T*, const T*, const int32_t*,      \
      const T*, const int64_t*, T*, Id*, T*, void*);

#define DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_GPU_INDEX(Index, Id)                        \
  template Status LaunchEmbeddingPoolGradRows<Index, Id>(const EmbeddingRows<Index, Id>&, \
                                                         PoolMode, int64_t*, void*);      \
  DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_GPU(float, Index, Id)                             \
  DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_GPU(double, Index, Id)                            \
  DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_GPU(Half, Index, Id)                              \
  DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_GPU(BFloat16, Index, Id)

DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_GPU_INDEX(int32_t, int32_t)
DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_GPU_INDEX(int32_t, int64_t)
DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_GPU_INDEX(int64_t, int32_t)
DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_GPU_INDEX(int64_t, int64_t)

#undef DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_GPU_INDEX
#undef DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_GPU

}  // namespace kernels
}  // namespace deepctr_ops
