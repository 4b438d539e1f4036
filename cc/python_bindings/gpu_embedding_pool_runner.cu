#include "cc/python_bindings/gpu_embedding_pool_runner.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "cc/kernels/float_types.h"
#include "cc/kernels/sequence_pool.h"
#include "cc/python_bindings/cuda_host_utils.h"
#include "cc/python_bindings/embedding_pool_offsets.h"

namespace deepctr_ops {
namespace bindings {
namespace {

using kernels::EmbeddingRows;
using kernels::PoolMode;
using kernels::RowLayout;
using kernels::Status;

// The ids and the row description on the device. Prepare() makes ragged
// splits monotone, as the TF op does on every call.
template <typename Index, typename Id>
class DeviceRows {
 public:
  Status Upload(const EmbeddingRows<Index, Id>& host) {
    host_ = host;
    rows_ = host;
    Status s = bindings::Upload(host.ids, static_cast<size_t>(host.rows.num_steps), &ids_);
    if (!s.ok()) return s;
    rows_.ids = static_cast<const Id*>(ids_.get());
    const size_t batch = static_cast<size_t>(host.rows.batch);
    switch (host.rows.layout) {
      case RowLayout::kLengths:
        s = bindings::Upload(host.rows.lengths, batch, &info_);
        rows_.rows.lengths = static_cast<const Index*>(info_.get());
        break;
      case RowLayout::kMask:
        s = bindings::Upload(host.rows.mask, static_cast<size_t>(host.rows.num_steps), &info_);
        rows_.rows.mask = static_cast<const bool*>(info_.get());
        break;
      case RowLayout::kRagged:
        s = bindings::Upload(host.rows.row_splits, batch + 1, &info_);
        if (s.ok()) s = CudaStatus(monotone_.Allocate((batch + 1) * sizeof(Index)), "cudaMalloc");
        rows_.rows.row_splits = static_cast<const Index*>(monotone_.get());
        break;
    }
    return s;
  }

  Status Prepare() const {
    if (host_.rows.layout != RowLayout::kRagged) return Status::Ok();
    return kernels::LaunchMonotoneRowSplits(static_cast<const Index*>(info_.get()),
                                            host_.rows.batch, host_.rows.num_steps,
                                            static_cast<Index*>(monotone_.get()), nullptr);
  }

  const EmbeddingRows<Index, Id>& rows() const { return rows_; }

 private:
  EmbeddingRows<Index, Id> host_, rows_;
  DeviceBuffer ids_, info_, monotone_;
};

// Table [vocab * depth] and weights [num_steps] (when given) on the device.
template <typename T, typename Index, typename Id>
Status UploadValues(const EmbeddingRows<Index, Id>& rows, const T* table, const T* weights,
                    DeviceBuffer* d_table, DeviceBuffer* d_weights) {
  Status s = Upload(table, static_cast<size_t>(rows.vocab * rows.rows.depth), d_table);
  if (!s.ok() || weights == nullptr) return s;
  return Upload(weights, static_cast<size_t>(rows.rows.num_steps), d_weights);
}

}  // namespace

template <typename T, typename Index, typename Id>
Status RunEmbeddingPoolForwardOnGpu(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                    const T* table, const T* weights, T* output,
                                    int32_t* argmax, int repeats, double* milliseconds) {
  *milliseconds = 0.0;
  const size_t pooled = static_cast<size_t>(rows.rows.batch * rows.rows.depth);
  DeviceRows<Index, Id> d_rows;
  DeviceBuffer d_table, d_weights, d_output, d_argmax;
  Status s = d_rows.Upload(rows);
  if (s.ok()) s = UploadValues(rows, table, weights, &d_table, &d_weights);
  if (s.ok()) s = CudaStatus(d_output.Allocate(pooled * sizeof(T)), "cudaMalloc");
  if (s.ok()) s = CudaStatus(d_argmax.Allocate(pooled * sizeof(int32_t)), "cudaMalloc");
  // A sentinel in the outputs: an element the kernels fail to write shows.
  if (s.ok()) s = CudaStatus(cudaMemset(d_output.get(), 0xff, pooled * sizeof(T)), "cudaMemset");
  if (s.ok()) {
    s = CudaStatus(cudaMemset(d_argmax.get(), 0x7f, pooled * sizeof(int32_t)), "cudaMemset");
  }
  if (!s.ok()) return s;
  const bool with_argmax = argmax != nullptr && mode == PoolMode::kMax;
  auto launch = [&]() {
    Status made = d_rows.Prepare();
    if (!made.ok()) return made;
    return kernels::LaunchEmbeddingPoolForward(
        d_rows.rows(), mode, static_cast<const T*>(d_table.get()),
        weights != nullptr ? static_cast<const T*>(d_weights.get()) : nullptr,
        static_cast<T*>(d_output.get()),
        with_argmax ? static_cast<int32_t*>(d_argmax.get()) : nullptr, nullptr);
  };
  s = launch();  // Warm-up, and the run whose result is returned.
  if (s.ok()) s = CudaStatus(cudaDeviceSynchronize(), "kernel");
  if (s.ok()) s = Download(d_output, pooled, output);
  if (s.ok() && with_argmax) s = Download(d_argmax, pooled, argmax);
  if (!s.ok()) return s;
  return TimeLaunches(launch, repeats < 1 ? 1 : repeats, milliseconds);
}

template <typename T, typename Index, typename Id>
Status RunEmbeddingPoolBackwardOnGpu(const EmbeddingRows<Index, Id>& rows, PoolMode mode,
                                     const T* table, const T* weights, const int32_t* argmax,
                                     const T* grad_output, bool with_grad_weights,
                                     EmbeddingPoolGpuGrads<T, Id>* grads, int repeats,
                                     double* milliseconds) {
  *milliseconds = 0.0;
  const int64_t batch = rows.rows.batch;
  const int64_t depth = rows.rows.depth;
  const size_t pooled = static_cast<size_t>(batch * depth);
  const bool with_argmax = argmax != nullptr && mode == PoolMode::kMax;
  DeviceRows<Index, Id> d_rows;
  DeviceBuffer d_table, d_weights, d_argmax, d_grad, d_offsets;
  Status s = d_rows.Upload(rows);
  if (s.ok()) s = UploadValues(rows, table, weights, &d_table, &d_weights);
  if (s.ok() && with_argmax) s = Upload(argmax, pooled, &d_argmax);
  if (s.ok()) s = Upload(grad_output, pooled, &d_grad);
  if (s.ok()) {
    s = CudaStatus(d_offsets.Allocate(static_cast<size_t>(batch + 1) * sizeof(int64_t)),
                   "cudaMalloc");
  }
  if (!s.ok()) return s;
  int64_t* offsets = static_cast<int64_t*>(d_offsets.get());
  auto grad_rows = [&]() {
    Status made = d_rows.Prepare();
    if (!made.ok()) return made;
    return kernels::LaunchEmbeddingPoolGradRows(d_rows.rows(), mode, offsets, nullptr);
  };
  std::vector<int64_t> host_offsets(static_cast<size_t>(batch + 1));
  s = CudaStatus(cudaMemset(offsets, kOffsetsSentinelByte, host_offsets.size() * sizeof(int64_t)),
                 "cudaMemset");
  if (s.ok()) s = grad_rows();
  if (s.ok()) s = CudaStatus(cudaDeviceSynchronize(), "kernel");
  if (s.ok()) s = Download(d_offsets, host_offsets.size(), host_offsets.data());
  if (s.ok()) s = CheckGradOffsets(host_offsets.data(), batch, rows.rows.num_steps);
  if (!s.ok()) return s;
  const int64_t total = host_offsets[static_cast<size_t>(batch)];
  const size_t steps = static_cast<size_t>(rows.rows.num_steps);
  DeviceBuffer d_values, d_indices, d_grad_weights;
  s = CudaStatus(d_values.Allocate(static_cast<size_t>(total * depth) * sizeof(T)), "cudaMalloc");
  if (s.ok()) {
    s = CudaStatus(d_indices.Allocate(static_cast<size_t>(total) * sizeof(Id)), "cudaMalloc");
  }
  if (s.ok() && with_grad_weights) {
    s = CudaStatus(d_grad_weights.Allocate(steps * sizeof(T)), "cudaMalloc");
  }
  // A sentinel in the outputs: an element the kernels fail to write shows.
  if (s.ok()) {
    const size_t bytes = static_cast<size_t>(total * depth) * sizeof(T);
    s = CudaStatus(cudaMemset(d_values.get(), 0xff, bytes), "cudaMemset");
  }
  if (s.ok()) {
    s = CudaStatus(cudaMemset(d_indices.get(), 0xff, static_cast<size_t>(total) * sizeof(Id)),
                   "cudaMemset");
  }
  if (s.ok() && with_grad_weights) {
    s = CudaStatus(cudaMemset(d_grad_weights.get(), 0xff, steps * sizeof(T)), "cudaMemset");
  }
  if (!s.ok()) return s;
  auto backward = [&]() {
    return kernels::LaunchEmbeddingPoolBackward(
        d_rows.rows(), mode, static_cast<const T*>(d_table.get()),
        weights != nullptr ? static_cast<const T*>(d_weights.get()) : nullptr,
        with_argmax ? static_cast<const int32_t*>(d_argmax.get()) : nullptr,
        static_cast<const T*>(d_grad.get()), offsets, static_cast<T*>(d_values.get()),
        static_cast<Id*>(d_indices.get()),
        with_grad_weights ? static_cast<T*>(d_grad_weights.get()) : nullptr, nullptr);
  };
  s = backward();
  if (s.ok()) s = CudaStatus(cudaDeviceSynchronize(), "kernel");
  if (!s.ok()) return s;
  grads->values.resize(static_cast<size_t>(total * depth));
  grads->indices.resize(static_cast<size_t>(total));
  grads->grad_weights.resize(with_grad_weights ? steps : 0);
  s = Download(d_values, grads->values.size(), grads->values.data());
  if (s.ok()) s = Download(d_indices, grads->indices.size(), grads->indices.data());
  if (s.ok()) {
    s = Download(d_grad_weights, grads->grad_weights.size(), grads->grad_weights.data());
  }
  if (!s.ok()) return s;
  return TimeLaunches(
      [&]() {
        Status r = grad_rows();
        return r.ok() ? backward() : r;
      },
      repeats < 1 ? 1 : repeats, milliseconds);
}

#define DEEPCTR_OPS_INSTANTIATE_RUNNER(T, Index, Id)                                         \
  template Status RunEmbeddingPoolForwardOnGpu<T, Index, Id>(                               \
      const EmbeddingRows<Index, Id>&, PoolMode, const T*, const T*, T*, int32_t*, int,     \
      double*);                                                                             \
  template Status RunEmbeddingPoolBackwardOnGpu<T, Index, Id>(                              \
      const EmbeddingRows<Index, Id>&, PoolMode, const T*, const T*, const int32_t*,        \
      const T*, bool, EmbeddingPoolGpuGrads<T, Id>*, int, double*);
#define DEEPCTR_OPS_INSTANTIATE_RUNNER_IDS(Index, Id)          \
  DEEPCTR_OPS_INSTANTIATE_RUNNER(float, Index, Id)             \
  DEEPCTR_OPS_INSTANTIATE_RUNNER(double, Index, Id)            \
  DEEPCTR_OPS_INSTANTIATE_RUNNER(kernels::Half, Index, Id)     \
  DEEPCTR_OPS_INSTANTIATE_RUNNER(kernels::BFloat16, Index, Id)
DEEPCTR_OPS_INSTANTIATE_RUNNER_IDS(int32_t, int32_t)
DEEPCTR_OPS_INSTANTIATE_RUNNER_IDS(int32_t, int64_t)
DEEPCTR_OPS_INSTANTIATE_RUNNER_IDS(int64_t, int32_t)
DEEPCTR_OPS_INSTANTIATE_RUNNER_IDS(int64_t, int64_t)
#undef DEEPCTR_OPS_INSTANTIATE_RUNNER_IDS
#undef DEEPCTR_OPS_INSTANTIATE_RUNNER

}  // namespace bindings
}  // namespace deepctr_ops
