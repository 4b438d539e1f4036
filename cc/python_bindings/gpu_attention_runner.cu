#include "cc/python_bindings/gpu_attention_runner.h"

#include <cuda_runtime.h>

#include <cstddef>

#include "cc/python_bindings/cuda_host_utils.h"

namespace deepctr_ops {
namespace bindings {

template <typename T>
kernels::Status RunAttentionSoftmaxOnGpu(const kernels::AttentionSoftmaxShape& shape,
                                         const T* input, const T* probs,
                                         const bool* key_valid, T* result, int repeats,
                                         double* milliseconds) {
  *milliseconds = 0.0;
  kernels::Status s = kernels::ValidateAttentionSoftmaxShape(shape);
  if (!s.ok()) return s;
  const size_t count = static_cast<size_t>(shape.rows * shape.time_q * shape.time_k);
  const size_t valid_count = static_cast<size_t>(shape.batch * shape.time_k);
  const bool backward = probs != nullptr;
  DeviceBuffer d_input, d_probs, d_valid, d_result;
  s = Upload(input, count, &d_input);
  if (s.ok() && backward) s = Upload(probs, count, &d_probs);
  if (s.ok()) s = Upload(key_valid, valid_count, &d_valid);
  if (s.ok()) s = CudaStatus(d_result.Allocate(count * sizeof(T)), "cudaMalloc");
  if (!s.ok()) return s;

  auto launch = [&]() {
    const T* in = static_cast<const T*>(d_input.get());
    const bool* valid = static_cast<const bool*>(d_valid.get());
    T* out = static_cast<T*>(d_result.get());
    return backward ? kernels::LaunchAttentionSoftmaxBackward(
                          shape, in, static_cast<const T*>(d_probs.get()), valid, out, nullptr)
                    : kernels::LaunchAttentionSoftmaxForward(shape, in, valid, out, nullptr);
  };
  s = launch();  // Warm-up, and the run whose result is returned.
  if (!s.ok()) return s;
  s = CudaStatus(cudaDeviceSynchronize(), "kernel");
  if (!s.ok()) return s;
  if (count > 0) {
    s = Download(d_result, count, result);
    if (!s.ok()) return s;
  }
  return TimeLaunches(launch, repeats < 1 ? 1 : repeats, milliseconds);
}

template kernels::Status RunAttentionSoftmaxOnGpu<float>(const kernels::AttentionSoftmaxShape&,
                                                         const float*, const float*, const bool*,
                                                         float*, int, double*);
template kernels::Status RunAttentionSoftmaxOnGpu<double>(
    const kernels::AttentionSoftmaxShape&, const double*, const double*, const bool*, double*,
    int, double*);

}  // namespace bindings
}  // namespace deepctr_ops
