// Host emulation of the fused embedding pooling's CUDA kernels
// (embedding_pool_device.h): every block, and every thread of a block, runs
// serially, phase by phase, as the kernels do between __syncthreads. It
// reviews the GPU code where there is no GPU; it is not a fast CPU path.
//
// Same arguments as the CUDA launchers, on host memory; ragged row_splits must
// already be monotone (LaunchMonotoneRowSplits' rule). Out-of-range ids read
// as zeros, as on the GPU.
#ifndef DEEPCTR_OPS_CC_KERNELS_EMBEDDING_POOL_EMULATE_H_
#define DEEPCTR_OPS_CC_KERNELS_EMBEDDING_POOL_EMULATE_H_

#include <cstdint>

#include "cc/kernels/embedding_pool.h"
#include "cc/kernels/status.h"

namespace deepctr_ops {
namespace kernels {

template <typename T, typename Index, typename Id>
Status EmbeddingPoolForwardEmulated(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                    const T* table, const T* weights, T* output,
                                    int32_t* argmax);

// `threads`: the emulated scan block size (the kernel uses 1024).
template <typename Index, typename Id>
Status EmbeddingPoolGradRowsEmulated(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                     int64_t* offsets, int threads);

// `threads`: the emulated block size, a power of two (the kernel uses
// BackwardThreads(depth)); `cache_columns`: whether max keeps its tied columns
// in (emulated) shared memory or recomputes them at each use.
template <typename T, typename Index, typename Id>
Status EmbeddingPoolBackwardEmulated(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                     const T* table, const T* weights, const int32_t* argmax,
                                     const T* grad_output, const int64_t* offsets,
                                     T* grad_table_values, Id* grad_table_indices,
                                     T* grad_weights, int threads, bool cache_columns);

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_EMBEDDING_POOL_EMULATE_H_
