// Host-side driver of the CUDA embedding-pooling launchers for the pybind11
// module: copies host buffers to the device, launches, times, copies back.
#ifndef DEEPCTR_OPS_CC_PYTHON_BINDINGS_GPU_EMBEDDING_POOL_RUNNER_H_
#define DEEPCTR_OPS_CC_PYTHON_BINDINGS_GPU_EMBEDDING_POOL_RUNNER_H_

#include <cstdint>
#include <vector>

#include "cc/kernels/embedding_pool.h"
#include "cc/kernels/status.h"

namespace deepctr_ops {
namespace bindings {

// The backward's outputs, sized by the device's offsets[batch].
template <typename T, typename Id>
struct EmbeddingPoolGpuGrads {
  std::vector<T> values;        // [total * depth].
  std::vector<Id> indices;      // [total].
  std::vector<T> grad_weights;  // [num_steps] when asked for, else empty.
};

// `rows` holds host pointers (ids and lengths/mask/row_splits); ragged splits
// are made monotone on the device (LaunchMonotoneRowSplits) as the TF op does.
// `table` is [vocab, depth], `weights` (may be null) [num_steps]. Writes the
// pooled `output` [batch * depth] and, for max, `argmax` (may be null). Runs
// `repeats` times (at least once); *milliseconds is the mean of one run.
template <typename T, typename Index, typename Id>
kernels::Status RunEmbeddingPoolForwardOnGpu(const kernels::EmbeddingRows<Index, Id>& rows,
                                             kernels::PoolMode mode, const T* table,
                                             const T* weights, T* output, int32_t* argmax,
                                             int repeats, double* milliseconds);

// The two-step backward: gradient rows and offsets on the device, a copy of
// the total to the host, then the gradient. `argmax` (host, [batch * depth])
// is read by max only and may be null; `grad_weights` is written when
// `with_grad_weights`. One timed run is GradRows plus Backward.
template <typename T, typename Index, typename Id>
kernels::Status RunEmbeddingPoolBackwardOnGpu(const kernels::EmbeddingRows<Index, Id>& rows,
                                              kernels::PoolMode mode, const T* table,
                                              const T* weights, const int32_t* argmax,
                                              const T* grad_output, bool with_grad_weights,
                                              EmbeddingPoolGpuGrads<T, Id>* grads, int repeats,
                                              double* milliseconds);

}  // namespace bindings
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_PYTHON_BINDINGS_GPU_EMBEDDING_POOL_RUNNER_H_
