#include "cc/python_bindings/gpu_attention_runner.h"

#include <cuda_runtime.h>

#include <cstddef>
#include <string>

namespace deepctr_ops {
namespace bindings {
namespace {

// Owns one cudaMalloc'd buffer (never null, also for zero bytes).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  cudaError_t Allocate(size_t bytes) { return cudaMalloc(&ptr_, bytes == 0 ? 1 : bytes); }
  void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
};

kernels::Status CudaStatus(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return kernels::Status::Ok();
  return kernels::Status::Internal(std::string(what) + ": " + cudaGetErrorString(err));
}

template <typename V>
kernels::Status Upload(const V* host, size_t count, DeviceBuffer* buffer) {
  kernels::Status s = CudaStatus(buffer->Allocate(count * sizeof(V)), "cudaMalloc");
  if (!s.ok() || count == 0) return s;
  return CudaStatus(cudaMemcpy(buffer->get(), host, count * sizeof(V), cudaMemcpyHostToDevice),
                    "cudaMemcpy to device");
}

// Mean milliseconds of one launch over `runs` launches, by CUDA events.
template <typename Launch>
kernels::Status TimeLaunches(Launch launch, int runs, double* milliseconds) {
  cudaEvent_t start, stop;
  kernels::Status s = CudaStatus(cudaEventCreate(&start), "cudaEventCreate");
  if (!s.ok()) return s;
  s = CudaStatus(cudaEventCreate(&stop), "cudaEventCreate");
  if (!s.ok()) {
    cudaEventDestroy(start);
    return s;
  }
  cudaEventRecord(start);
  for (int i = 0; i < runs && s.ok(); ++i) s = launch();
  cudaEventRecord(stop);
  if (s.ok()) s = CudaStatus(cudaEventSynchronize(stop), "kernel");
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  *milliseconds = static_cast<double>(ms) / runs;
  return s;
}

}  // namespace

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
    s = CudaStatus(cudaMemcpy(result, d_result.get(), count * sizeof(T), cudaMemcpyDeviceToHost),
                   "cudaMemcpy to host");
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
