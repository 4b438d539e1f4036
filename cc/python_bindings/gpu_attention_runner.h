// Host-side driver of the CUDA attention-softmax launchers for the pybind11
// module: copies host buffers to the device, launches, times, and copies back.
#ifndef DEEPCTR_OPS_CC_PYTHON_BINDINGS_GPU_ATTENTION_RUNNER_H_
#define DEEPCTR_OPS_CC_PYTHON_BINDINGS_GPU_ATTENTION_RUNNER_H_

#include "cc/kernels/attention_softmax.h"
#include "cc/kernels/status.h"

namespace deepctr_ops {
namespace bindings {

// Host pointers, all [shape.rows, time_q, time_k] except key_valid
// [batch, time_k]. Forward when `probs` is null: `input` is the scores and
// `result` the probabilities. Backward otherwise: `input` is the upstream
// gradient and `result` the gradient of the scores. Runs `repeats` times (at
// least once) and stores the mean time of one launch in *milliseconds.
template <typename T>
kernels::Status RunAttentionSoftmaxOnGpu(const kernels::AttentionSoftmaxShape& shape,
                                         const T* input, const T* probs,
                                         const bool* key_valid, T* result, int repeats,
                                         double* milliseconds);

}  // namespace bindings
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_PYTHON_BINDINGS_GPU_ATTENTION_RUNNER_H_
