// Host-side driver of the CUDA dynamic-GRU launchers for the pybind11 module:
// copies host buffers to the device, launches, times, and copies back.
#ifndef DEEPCTR_OPS_CC_PYTHON_BINDINGS_GPU_GRU_RUNNER_H_
#define DEEPCTR_OPS_CC_PYTHON_BINDINGS_GPU_GRU_RUNNER_H_

#include "cc/kernels/dynamic_gru.h"
#include "cc/kernels/status.h"

namespace deepctr_ops {
namespace bindings {

// Host pointers, sizes as in dynamic_gru.h, or for `directions` = 2 as in
// dynamic_gru_directions.h (one launch per direction). The forward fills
// outputs, final_state and gates. Runs `repeats` times (at least once) and
// stores the mean time of one call in *milliseconds.
template <typename T, typename Index>
kernels::Status RunDynamicGruForwardOnGpu(const kernels::GruShape& shape,
                                          const kernels::GruForwardArgs<T, Index>& host,
                                          int directions, int repeats, double* milliseconds);

// The backward from host inputs (including the forward's outputs and gates)
// into host gradient buffers.
template <typename T, typename Index>
kernels::Status RunDynamicGruBackwardOnGpu(const kernels::GruShape& shape,
                                           const kernels::GruBackwardArgs<T, Index>& host,
                                           int directions, int repeats, double* milliseconds);

}  // namespace bindings
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_PYTHON_BINDINGS_GPU_GRU_RUNNER_H_
