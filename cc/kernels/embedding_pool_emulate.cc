// Host emulation of the fused embedding pooling's CUDA kernels. See
// embedding_pool_emulate.h. Each function mirrors its kernel (and launcher) in
// embedding_pool.cu; `Phase` (emulated_phase.h) stands for one
// __syncthreads-delimited phase of a block.
#include "cc/kernels/embedding_pool_emulate.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cc/kernels/embedding_pool_device.h"
#include "cc/kernels/emulated_phase.h"
#include "cc/kernels/float_types.h"

namespace deepctr_ops {
namespace kernels {
template <typename T, typename Index, typename Id>
Status EmbeddingPoolForwardEmulated(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                    const T* table, const T* weights, T* output,
                                    int32_t* argmax) {
  Status status = CheckEmbeddingSizes(rows);
  if (!status.ok()) return status;
  // Threads are independent: any order is the kernel's.
  const int64_t total = rows.rows.batch * rows.rows.depth;
  for (int64_t idx = 0; idx < total; ++idx) {
    embedding_gpu::ForwardColumn(rows, mode, table, weights, output,
                                 mode == PoolMode::kMax ? argmax : nullptr, idx);
  }
  return Status::Ok();
}

template <typename Index, typename Id>
Status EmbeddingPoolGradRowsEmulated(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                     int64_t* offsets, int threads) {
  Status status = CheckEmbeddingSizes(rows);
  if (!status.ok()) return status;
  if (threads < 1) return Status::InvalidArgument("threads must be >= 1");
  for (int64_t b = 0; b < rows.rows.batch; ++b) {
    embedding_gpu::CountGradRows(rows, mode, offsets, b);
  }
  std::vector<int64_t> sums(threads), before(threads);
  embedding_gpu::OffsetScan scan{offsets, rows.rows.batch, sums.data(), threads};
  Phase(threads, [&](int tid) { scan.Sum(tid); });
  for (int offset = 1; offset < threads; offset *= 2) {
    Phase(threads, [&](int tid) { before[tid] = scan.Peek(offset, tid); });
    Phase(threads, [&](int tid) { scan.Add(tid, before[tid]); });
  }
  Phase(threads, [&](int tid) { scan.Write(tid); });
  return Status::Ok();
}

template <typename T, typename Index, typename Id>
Status EmbeddingPoolBackwardEmulated(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                     const T* table, const T* weights, const int32_t* argmax,
                                     const T* grad_output, const int64_t* offsets,
                                     T* grad_table_values, Id* grad_table_indices,
                                     T* grad_weights, int threads, bool cache_columns) {
  using Acc = typename AccumulatorOf<T>::Type;
  Status status = CheckEmbeddingSizes(rows);
  if (!status.ok()) return status;
  if (threads < 1 || (threads & (threads - 1)) != 0) {
    return Status::InvalidArgument("threads must be a power of two");
  }
  const int64_t batch = rows.rows.batch;
  if (batch == 0) {
    if (grad_weights != nullptr) {
      std::fill(grad_weights, grad_weights + rows.rows.num_steps, FromAccumulator<T>(Acc(0)));
    }
    return Status::Ok();
  }
  const embedding_gpu::BackwardArgs<T, Index, Id> args = embedding_gpu::MakeBackwardArgs(
      rows, mode, table, weights, argmax, grad_output, offsets, grad_table_values,
      grad_table_indices, grad_weights);
  const bool cache = mode == PoolMode::kMax && cache_columns;
  const int64_t depth = rows.rows.depth;
  std::vector<Acc> shared(threads + (cache ? 2 * depth : 0));
  embedding_gpu::BackwardBlock<T, Index, Id> block;
  block.a = &args;
  block.partial = shared.data();
  block.column_max = cache ? block.partial + threads : nullptr;
  block.column_share = cache ? block.column_max + depth : nullptr;
  const bool dot = grad_weights != nullptr;
  for (int64_t b = 0; b < batch; ++b) {
    block.Plan(b);  // The same plan in every thread.
    Phase(threads, [&](int tid) { block.Start(tid, threads); });
    int64_t k = offsets[b];
    for (int64_t t = 0; t < block.end; ++t) {
      if (!block.Pooled(t)) continue;
      Phase(threads, [&](int tid) { block.Step(t, k, tid, threads); });
      ++k;
      if (!dot) continue;
      for (int stride = threads / 2; stride > 0; stride /= 2) {
        Phase(threads, [&](int tid) { block.Reduce(stride, tid); });
      }
      Phase(threads, [&](int tid) { block.Finish(t, tid); });
    }
  }
  return Status::Ok();
}

#define DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_EMULATED(T, Index, Id)                      \
  template Status EmbeddingPoolForwardEmulated<T, Index, Id>(                             \
      const EmbeddingRows<Index, Id>&, PoolMode, const T*, const T*, T*, int32_t*);       \
  template Status EmbeddingPoolBackwardEmulated<T, Index, Id>(                            \
      const EmbeddingRows<Index, Id>&, PoolMode, const T*, const T*, const int32_t*,      \
      const T*, const int64_t*, T*, Id*, T*, int, bool);

#define DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_EMULATED_INDEX(Index, Id)                   \
  template Status EmbeddingPoolGradRowsEmulated<Index, Id>(                               \
      const EmbeddingRows<Index, Id>&, PoolMode, int64_t*, int);                          \
  DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_EMULATED(float, Index, Id)                        \
  DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_EMULATED(double, Index, Id)                       \
  DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_EMULATED(Half, Index, Id)                         \
  DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_EMULATED(BFloat16, Index, Id)

DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_EMULATED_INDEX(int32_t, int32_t)
DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_EMULATED_INDEX(int32_t, int64_t)
DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_EMULATED_INDEX(int64_t, int32_t)
DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_EMULATED_INDEX(int64_t, int64_t)

#undef DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_EMULATED_INDEX
#undef DEEPCTR_OPS_INSTANTIATE_EMBEDDING_POOL_EMULATED

}  // namespace kernels
}  // namespace deepctr_ops
