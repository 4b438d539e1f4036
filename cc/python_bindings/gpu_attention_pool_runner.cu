#include "cc/python_bindings/gpu_attention_pool_runner.h"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cc/python_bindings/cuda_host_utils.h"

namespace deepctr_ops {
namespace bindings {

template <typename T, typename Index>
kernels::Status RunAttentionPoolOnGpu(const kernels::AttentionPoolSpec& spec,
                                      const kernels::PoolRows<Index>& rows, const T* query,
                                      const T* keys, const kernels::AttentionWeights<T>& weights,
                                      const T* grad, T* output, T* grad_query, T* grad_keys,
                                      const kernels::AttentionWeightGrads<T>& weight_grads,
                                      int repeats, double* milliseconds) {
  *milliseconds = 0.0;
  kernels::Status s = kernels::ValidateAttentionPool(spec, rows);
  if (!s.ok()) return s;
  const size_t b = rows.batch, t = rows.max_time, e = spec.depth;
  const size_t width = kernels::AttentionPoolOutputWidth(spec, rows);
  const int layers = spec.num_layers();
  DeviceBuffer d_query, d_keys, d_rows, d_grad, d_out, d_gq, d_gk, d_ws;
  std::vector<DeviceBuffer> d_kernels(layers), d_biases(layers), d_gkernels(layers),
      d_gbiases(layers);
  s = Upload(query, b * e, &d_query);
  if (s.ok()) s = Upload(keys, b * t * e, &d_keys);
  kernels::PoolRows<Index> device_rows = rows;
  if (s.ok() && rows.layout == kernels::RowLayout::kMask) {
    s = Upload(rows.mask, b * t, &d_rows);
    device_rows.mask = static_cast<const bool*>(d_rows.get());
  } else if (s.ok()) {
    s = Upload(rows.lengths, b, &d_rows);
    device_rows.lengths = static_cast<const Index*>(d_rows.get());
  }
  kernels::AttentionWeights<T> device_weights;
  kernels::AttentionWeightGrads<T> device_grads;
  for (int i = 0; i < layers && s.ok(); ++i) {
    const size_t in = spec.layer_in(i), out = spec.layer_out(i);
    s = Upload(weights.kernels[i], in * out, &d_kernels[i]);
    if (s.ok()) s = Upload(weights.biases[i], out, &d_biases[i]);
    if (s.ok()) s = CudaStatus(d_gkernels[i].Allocate(in * out * sizeof(T)), "cudaMalloc");
    if (s.ok()) s = CudaStatus(d_gbiases[i].Allocate(out * sizeof(T)), "cudaMalloc");
    device_weights.kernels[i] = static_cast<const T*>(d_kernels[i].get());
    device_weights.biases[i] = static_cast<const T*>(d_biases[i].get());
    device_grads.kernels[i] = static_cast<T*>(d_gkernels[i].get());
    device_grads.biases[i] = static_cast<T*>(d_gbiases[i].get());
  }
  const bool backward = grad != nullptr;
  if (s.ok() && backward) s = Upload(grad, b * width, &d_grad);
  if (s.ok()) s = CudaStatus(d_out.Allocate(b * width * sizeof(T)), "cudaMalloc");
  if (s.ok()) s = CudaStatus(d_gq.Allocate(b * e * sizeof(T)), "cudaMalloc");
  if (s.ok()) s = CudaStatus(d_gk.Allocate(b * t * e * sizeof(T)), "cudaMalloc");
  if (s.ok()) {
    const int64_t bytes = kernels::AttentionPoolGpuWorkspaceBytes<T>(spec, rows);
    s = CudaStatus(d_ws.Allocate(static_cast<size_t>(bytes)), "cudaMalloc");
  }
  if (!s.ok()) return s;
  auto launch = [&]() {
    const T* q = static_cast<const T*>(d_query.get());
    const T* k = static_cast<const T*>(d_keys.get());
    if (backward) {
      return kernels::LaunchAttentionPoolBackward(
          spec, device_rows, q, k, device_weights, static_cast<const T*>(d_grad.get()),
          static_cast<T*>(d_gq.get()), static_cast<T*>(d_gk.get()), device_grads, d_ws.get(),
          nullptr);
    }
    return kernels::LaunchAttentionPoolForward(spec, device_rows, q, k, device_weights,
                                               static_cast<T*>(d_out.get()), d_ws.get(),
                                               nullptr);
  };
  s = launch();
  if (!s.ok()) return s;
  s = CudaStatus(cudaDeviceSynchronize(), "kernel");
  if (!s.ok()) return s;
  if (backward) {
    s = Download(d_gq, b * e, grad_query);
    if (s.ok()) s = Download(d_gk, b * t * e, grad_keys);
    for (int i = 0; i < layers && s.ok(); ++i) {
      s = Download(d_gkernels[i], spec.layer_in(i) * spec.layer_out(i), weight_grads.kernels[i]);
      if (s.ok()) s = Download(d_gbiases[i], spec.layer_out(i), weight_grads.biases[i]);
    }
  } else {
    s = Download(d_out, b * width, output);
  }
  if (!s.ok()) return s;
  return TimeLaunches(launch, repeats < 1 ? 1 : repeats, milliseconds);
}

#define DEEPCTR_OPS_INSTANTIATE_RUNNER(T, Index)                                             \
  template kernels::Status RunAttentionPoolOnGpu<T, Index>(                                 \
      const kernels::AttentionPoolSpec&, const kernels::PoolRows<Index>&, const T*, const T*, \
      const kernels::AttentionWeights<T>&, const T*, T*, T*, T*,                             \
      const kernels::AttentionWeightGrads<T>&, int, double*);
DEEPCTR_OPS_INSTANTIATE_RUNNER(float, int32_t)
DEEPCTR_OPS_INSTANTIATE_RUNNER(float, int64_t)
DEEPCTR_OPS_INSTANTIATE_RUNNER(double, int32_t)
DEEPCTR_OPS_INSTANTIATE_RUNNER(double, int64_t)
#undef DEEPCTR_OPS_INSTANTIATE_RUNNER

}  // namespace bindings
}  // namespace deepctr_ops
