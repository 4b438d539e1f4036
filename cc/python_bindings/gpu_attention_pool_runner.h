// Host-side driver of the CUDA attention-pooling launchers for the pybind11
// module: copies host buffers to the device, launches, times, copies back.
#ifndef DEEPCTR_OPS_CC_PYTHON_BINDINGS_GPU_ATTENTION_POOL_RUNNER_H_
#define DEEPCTR_OPS_CC_PYTHON_BINDINGS_GPU_ATTENTION_POOL_RUNNER_H_

#include "cc/kernels/attention_pool.h"
#include "cc/kernels/status.h"

namespace deepctr_ops {
namespace bindings {

// Host pointers throughout (rows' lengths/mask too). Forward when `grad` is
// null: writes `output`. Backward otherwise: writes grad_query, grad_keys and
// the weight gradients. Runs `repeats` times (at least once) and stores the
// mean time of one launch in *milliseconds.
template <typename T, typename Index>
kernels::Status RunAttentionPoolOnGpu(const kernels::AttentionPoolSpec& spec,
                                      const kernels::PoolRows<Index>& rows, const T* query,
                                      const T* keys, const kernels::AttentionWeights<T>& weights,
                                      const T* grad, T* output, T* grad_query, T* grad_keys,
                                      const kernels::AttentionWeightGrads<T>& weight_grads,
                                      int repeats, double* milliseconds);

}  // namespace bindings
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_PYTHON_BINDINGS_GPU_ATTENTION_POOL_RUNNER_H_
