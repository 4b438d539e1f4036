// What every TF op adapter needs to call a TF-free kernel: status conversion,
// the intra-op thread pool as a ParallelFor, the CUDA stream, and the mapping
// from TF's element types to the kernels' ones.
#ifndef DEEPCTR_OPS_CC_OPS_KERNEL_ADAPTER_H_
#define DEEPCTR_OPS_CC_OPS_KERNEL_ADAPTER_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "cc/kernels/float_types.h"
#include "cc/kernels/parallel_for.h"
#include "cc/kernels/status.h"
#include "tensorflow/core/framework/bfloat16.h"
#include "tensorflow/core/framework/numeric_types.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"

namespace deepctr_ops {

inline absl::Status ToAbslStatus(const kernels::Status& status) {
  switch (status.code()) {
    case kernels::Status::Code::kOk:
      return absl::OkStatus();
    case kernels::Status::Code::kInvalidArgument:
      return absl::InvalidArgumentError(status.message());
    case kernels::Status::Code::kInternal:
      break;
  }
  return absl::InternalError(status.message());
}

// Binds the kernels' threading seam to the op's intra-op thread pool.
inline kernels::ParallelFor CpuParallelFor(tensorflow::OpKernelContext* ctx) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  return [workers](int64_t total, int64_t cost_per_unit,
                   const std::function<void(int64_t, int64_t)>& fn) {
    if (total <= 0) return;
    // kInlineWork and ParallelBlockSize: parallel_for.h. Fixed blocks balance
    // ragged rows better than the pool's cost-model sharding here.
    const int64_t threads = std::max<int64_t>(1, workers->NumThreads());
    if (threads == 1 || total * cost_per_unit < kernels::kInlineWork) {
      fn(0, total);
      return;
    }
    const int64_t block_size = kernels::ParallelBlockSize(total, threads);
    // The constructor, not SchedulingParams::Fixed (TF >= 2.20 only), so that
    // the op library also builds against TF 2.19.
    using Pool = tsl::thread::ThreadPool;
    workers->ParallelFor(
        total,
        Pool::SchedulingParams(Pool::SchedulingStrategy::kFixedBlockSize, std::nullopt,
                               block_size),
        fn);
  };
}

// lengths must be [batch] or [batch, 1]; `batch_source` names where batch
// comes from ("values", "keys", "ids").
inline absl::Status CheckLengthsShape(const tensorflow::Tensor& lengths, int64_t batch,
                                      const std::string& batch_source) {
  const bool vector = lengths.dims() == 1;
  const bool column = lengths.dims() == 2 && lengths.dim_size(1) == 1;
  if ((!vector && !column) || lengths.dim_size(0) != batch) {
    return absl::InvalidArgumentError(
        "lengths must have shape [batch] or [batch, 1] with batch = " + std::to_string(batch) +
        " (" + batch_source + ".shape[0]), got " + lengths.shape().DebugString());
  }
  return absl::OkStatus();
}

// TF element type -> the TF-free kernels' element type (same bytes).
template <typename T>
struct KernelTypeOf {
  using Type = T;
};
template <>
struct KernelTypeOf<Eigen::half> {
  using Type = kernels::Half;
};
template <>
struct KernelTypeOf<tensorflow::bfloat16> {
  using Type = kernels::BFloat16;
};

template <typename T>
const typename KernelTypeOf<T>::Type* KernelData(const tensorflow::Tensor& t) {
  static_assert(sizeof(T) == sizeof(typename KernelTypeOf<T>::Type), "layout");
  return reinterpret_cast<const typename KernelTypeOf<T>::Type*>(t.flat<T>().data());
}

template <typename T>
typename KernelTypeOf<T>::Type* KernelData(tensorflow::Tensor* t) {
  return reinterpret_cast<typename KernelTypeOf<T>::Type*>(t->flat<T>().data());
}

}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_OPS_KERNEL_ADAPTER_H_
