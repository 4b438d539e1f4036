// Host-side driver of the CUDA pooling launchers for the pybind11 module:
// copies host buffers to the device, launches, times, and copies back.
#ifndef DEEPCTR_OPS_CC_PYTHON_BINDINGS_GPU_POOL_RUNNER_H_
#define DEEPCTR_OPS_CC_PYTHON_BINDINGS_GPU_POOL_RUNNER_H_

#include <cstdint>

#include "cc/kernels/sequence_pool.h"
#include "cc/kernels/status.h"

namespace deepctr_ops {
namespace bindings {

// Number of CUDA devices, 0 when there is no usable GPU.
int CudaDeviceCount();

// `rows` holds host pointers. Runs `repeats` times (at least once) and stores
// the mean time of one run in *milliseconds. `grad_output` is null for the
// forward, in which case `result` is the pooled [batch, depth] output and
// `argmax` (if not null) receives the max forward's argmax; otherwise `result`
// is grad_values, shaped like values, and `argmax` is the backward's input.
// Host argmax buffers are [batch, depth] int32.
template <typename T, typename Index>
kernels::Status RunSequencePoolOnGpu(const kernels::PoolRows<Index>& rows,
                                     kernels::PoolMode mode, const T* values,
                                     const T* grad_output, T* result, int32_t* argmax,
                                     int repeats, double* milliseconds);

}  // namespace bindings
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_PYTHON_BINDINGS_GPU_POOL_RUNNER_H_
