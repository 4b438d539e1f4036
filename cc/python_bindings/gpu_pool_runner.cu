#include "cc/python_bindings/gpu_pool_runner.h"

#include <cuda_runtime.h>

#include "cc/kernels/float_types.h"
#include "cc/python_bindings/cuda_host_utils.h"

namespace deepctr_ops {
namespace bindings {

#define DEEPCTR_OPS_CUDA_RETURN_IF_ERROR(expr, what)        \
  do {                                                      \
    kernels::Status _s = CudaStatus((expr), (what));        \
    if (!_s.ok()) return _s;                                \
  } while (0)


int CudaDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // Clear the sticky "no device" error.
    return 0;
  }
  return count;
}

template <typename T, typename Index>
kernels::Status RunSequencePoolOnGpu(const kernels::PoolRows<Index>& rows,
                                     kernels::PoolMode mode, const T* values,
                                     const T* grad_output, T* result, int32_t* argmax,
                                     int repeats, double* milliseconds) {
  *milliseconds = 0.0;
  const size_t value_count = static_cast<size_t>(rows.num_steps * rows.depth);
  const size_t pooled_count = static_cast<size_t>(rows.batch * rows.depth);
  DeviceBuffer d_values, d_rows, d_monotone, d_grad, d_result, d_argmax;
  kernels::Status s = Upload(values, value_count, &d_values);
  if (!s.ok()) return s;
  kernels::PoolRows<Index> device_rows = rows;
  switch (rows.layout) {
    case kernels::RowLayout::kLengths:
      s = Upload(rows.lengths, static_cast<size_t>(rows.batch), &d_rows);
      device_rows.lengths = static_cast<const Index*>(d_rows.get());
      break;
    case kernels::RowLayout::kMask:
      s = Upload(rows.mask, static_cast<size_t>(rows.batch * rows.max_time), &d_rows);
      device_rows.mask = static_cast<const bool*>(d_rows.get());
      break;
    case kernels::RowLayout::kRagged:
      // The kernels pool over LaunchMonotoneRowSplits' splits (made in `launch`,
      // as the TF op makes them on every call).
      s = Upload(rows.row_splits, static_cast<size_t>(rows.batch + 1), &d_rows);
      if (s.ok()) {
        s = CudaStatus(d_monotone.Allocate(static_cast<size_t>(rows.batch + 1) * sizeof(Index)),
                       "cudaMalloc");
      }
      device_rows.row_splits = static_cast<const Index*>(d_monotone.get());
      break;
  }
  if (!s.ok()) return s;
  const bool backward = grad_output != nullptr;
  if (backward) {
    s = Upload(grad_output, pooled_count, &d_grad);
    if (!s.ok()) return s;
  }
  int32_t* da = nullptr;
  if (argmax != nullptr) {
    if (backward) {
      s = Upload(argmax, pooled_count, &d_argmax);
      if (!s.ok()) return s;
    } else {
      DEEPCTR_OPS_CUDA_RETURN_IF_ERROR(d_argmax.Allocate(pooled_count * sizeof(int32_t)),
                                       "cudaMalloc");
    }
    da = static_cast<int32_t*>(d_argmax.get());
  }
  const size_t result_count = backward ? value_count : pooled_count;
  DEEPCTR_OPS_CUDA_RETURN_IF_ERROR(d_result.Allocate(result_count * sizeof(T)), "cudaMalloc");

  auto launch = [&]() {
    if (rows.layout == kernels::RowLayout::kRagged) {
      kernels::Status made = kernels::LaunchMonotoneRowSplits(
          static_cast<const Index*>(d_rows.get()), rows.batch, rows.num_steps,
          static_cast<Index*>(d_monotone.get()), nullptr);
      if (!made.ok()) return made;
    }
    const T* dv = static_cast<const T*>(d_values.get());
    T* dr = static_cast<T*>(d_result.get());
    return backward ? kernels::LaunchSequencePoolBackward(
                          device_rows, mode, dv, da, static_cast<const T*>(d_grad.get()), dr,
                          nullptr)
                    : kernels::LaunchSequencePoolForward(device_rows, mode, dv, dr, da,
                                                         nullptr);
  };
  s = launch();  // Warm-up, and the run whose result is returned.
  if (!s.ok()) return s;
  DEEPCTR_OPS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize(), "kernel");
  s = Download(d_result, result_count, result);
  if (!s.ok()) return s;
  // Only max writes argmax; other modes leave the host buffer alone, like the CPU.
  if (!backward && argmax != nullptr && mode == kernels::PoolMode::kMax) {
    s = Download(d_argmax, pooled_count, argmax);
    if (!s.ok()) return s;
  }
  return TimeLaunches(launch, repeats < 1 ? 1 : repeats, milliseconds);
}

#define DEEPCTR_OPS_INSTANTIATE_RUNNER(T, Index)                                     \
  template kernels::Status RunSequencePoolOnGpu<T, Index>(                           \
      const kernels::PoolRows<Index>&, kernels::PoolMode, const T*, const T*, T*, int32_t*, \
      int, double*);
#define DEEPCTR_OPS_INSTANTIATE_RUNNER_INDEX(Index)          \
  DEEPCTR_OPS_INSTANTIATE_RUNNER(float, Index)              \
  DEEPCTR_OPS_INSTANTIATE_RUNNER(double, Index)             \
  DEEPCTR_OPS_INSTANTIATE_RUNNER(kernels::Half, Index)      \
  DEEPCTR_OPS_INSTANTIATE_RUNNER(kernels::BFloat16, Index)
DEEPCTR_OPS_INSTANTIATE_RUNNER_INDEX(int32_t)
DEEPCTR_OPS_INSTANTIATE_RUNNER_INDEX(int64_t)

}  // namespace bindings
}  // namespace deepctr_ops
