// Host-side CUDA helpers of the pybind11 GPU runners (compiled by nvcc only):
// an owning device buffer, status conversion, upload, and event timing.
#ifndef DEEPCTR_OPS_CC_PYTHON_BINDINGS_CUDA_HOST_UTILS_H_
#define DEEPCTR_OPS_CC_PYTHON_BINDINGS_CUDA_HOST_UTILS_H_

#include <cuda_runtime.h>

#include <cstddef>
#include <string>

#include "cc/kernels/status.h"

namespace deepctr_ops {
namespace bindings {

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

inline kernels::Status CudaStatus(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return kernels::Status::Ok();
  // The runtime also records a failed call's error for cudaGetLastError; reset
  // it, or the next launch check (in this or a later run) reports it instead.
  cudaGetLastError();
  return kernels::Status::Internal(std::string(what) + ": " + cudaGetErrorString(err));
}

// Allocates `buffer` for `count` values and copies them from the host.
template <typename V>
kernels::Status Upload(const V* host, size_t count, DeviceBuffer* buffer) {
  kernels::Status s = CudaStatus(buffer->Allocate(count * sizeof(V)), "cudaMalloc");
  if (!s.ok() || count == 0) return s;
  return CudaStatus(cudaMemcpy(buffer->get(), host, count * sizeof(V), cudaMemcpyHostToDevice),
                    "cudaMemcpy to device");
}

// Copies `count` values of `buffer` to the host.
template <typename V>
kernels::Status Download(const DeviceBuffer& buffer, size_t count, V* host) {
  if (count == 0) return kernels::Status::Ok();
  return CudaStatus(cudaMemcpy(host, buffer.get(), count * sizeof(V), cudaMemcpyDeviceToHost),
                    "cudaMemcpy to host");
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
  s = CudaStatus(cudaEventRecord(start), "cudaEventRecord");
  for (int i = 0; i < runs && s.ok(); ++i) s = launch();
  if (s.ok()) s = CudaStatus(cudaEventRecord(stop), "cudaEventRecord");
  if (s.ok()) s = CudaStatus(cudaEventSynchronize(stop), "kernel");
  // Only with both events complete: otherwise cudaEventElapsedTime fails and
  // leaves its error behind for the next launch check.
  float ms = 0;
  if (s.ok()) s = CudaStatus(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  *milliseconds = s.ok() ? static_cast<double>(ms) / runs : 0.0;
  return s;
}

}  // namespace bindings
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_PYTHON_BINDINGS_CUDA_HOST_UTILS_H_
