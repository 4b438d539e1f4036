// TF kernels of the sequence pooling ops: validate inputs, allocate outputs,
// call the TF-free kernel on the CPU pool or the op's CUDA stream.
#include <cstdint>
#include <string>

#include "cc/kernels/sequence_pool.h"
#include "cc/ops/kernel_adapter.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"

#if DEEPCTR_OPS_WITH_CUDA
#include "cc/ops/gpu_rows.h"
#include "cc/ops/gpu_stream.h"
#endif

namespace deepctr_ops {
namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using kernels::PoolMode;
using kernels::PoolRows;
using kernels::RowLayout;

template <typename Index>
absl::Status DescribeRows(RowLayout layout, const Tensor& values,
                          const Tensor& row_info, PoolRows<Index>* rows) {
  rows->layout = layout;
  if (layout == RowLayout::kRagged) {
    if (values.dims() != 2) {
      return absl::InvalidArgumentError(
          "values must be rank 2 [num_values, embedding] for ragged pooling, got shape " +
          values.shape().DebugString());
    }
    if (row_info.dims() != 1 || row_info.NumElements() < 1) {
      return absl::InvalidArgumentError(
          "row_splits must be a non-empty vector [batch + 1], got shape " +
          row_info.shape().DebugString());
    }
    rows->batch = row_info.NumElements() - 1;
    rows->max_time = 0;
    rows->depth = values.dim_size(1);
    rows->num_steps = values.dim_size(0);
    rows->row_splits = row_info.flat<Index>().data();
    return absl::OkStatus();
  }
  if (values.dims() != 3) {
    return absl::InvalidArgumentError(
        "values must be rank 3 [batch, time, embedding], got shape " +
        values.shape().DebugString());
  }
  rows->batch = values.dim_size(0);
  rows->max_time = values.dim_size(1);
  rows->depth = values.dim_size(2);
  rows->num_steps = rows->batch * rows->max_time;
  if (layout == RowLayout::kMask) {
    if (row_info.shape() != TensorShape({rows->batch, rows->max_time})) {
      return absl::InvalidArgumentError(
          "mask must have shape [batch, time] = " +
          TensorShape({rows->batch, rows->max_time}).DebugString() +
          " to match values, got " + row_info.shape().DebugString());
    }
    rows->mask = row_info.flat<bool>().data();
    return absl::OkStatus();
  }
  const absl::Status lengths = CheckLengthsShape(row_info, rows->batch, "values");
  if (!lengths.ok()) return lengths;
  rows->lengths = row_info.flat<Index>().data();
  return absl::OkStatus();
}

struct CpuDevice {
  template <typename K, typename Index>
  static kernels::Status Forward(OpKernelContext* ctx, const PoolRows<Index>& rows,
                                 PoolMode mode, const K* values, K* out, int32_t* argmax) {
    return kernels::SequencePoolForwardCpu(rows, mode, values, out, argmax,
                                           CpuParallelFor(ctx));
  }
  template <typename K, typename Index>
  static kernels::Status Backward(OpKernelContext* ctx, const PoolRows<Index>& rows,
                                  PoolMode mode, const K* values, const int32_t* argmax,
                                  const K* grad, K* grad_values) {
    return kernels::SequencePoolBackwardCpu(rows, mode, values, argmax, grad, grad_values,
                                            CpuParallelFor(ctx));
  }
};

#if DEEPCTR_OPS_WITH_CUDA
struct GpuDevice {
  template <typename K, typename Index>
  static kernels::Status Forward(OpKernelContext* ctx, const PoolRows<Index>& rows,
                                 PoolMode mode, const K* values, K* out, int32_t* argmax) {
    Tensor scratch;
    PoolRows<Index> gpu_rows;
    kernels::Status s = GpuRows(ctx, rows, &scratch, &gpu_rows);
    if (!s.ok()) return s;
    return kernels::LaunchSequencePoolForward(gpu_rows, mode, values, out, argmax,
                                              GpuStream(ctx));
  }
  template <typename K, typename Index>
  static kernels::Status Backward(OpKernelContext* ctx, const PoolRows<Index>& rows,
                                  PoolMode mode, const K* values, const int32_t* argmax,
                                  const K* grad, K* grad_values) {
    Tensor scratch;
    PoolRows<Index> gpu_rows;
    kernels::Status s = GpuRows(ctx, rows, &scratch, &gpu_rows);
    if (!s.ok()) return s;
    return kernels::LaunchSequencePoolBackward(gpu_rows, mode, values, argmax, grad,
                                               grad_values, GpuStream(ctx));
  }
};
#endif

// One class for every (device, dtype, index type, layout, direction). Inputs:
// values, the row description (lengths | mask | row_splits) and, for the
// gradient, the forward's argmax and grad [B, 1, E]. The forward's outputs are
// pooled and argmax ([B, 1, E] for max, [0] otherwise).
template <typename Device, typename T, typename Index, RowLayout kLayout, bool kGrad>
class SequencePoolOp : public OpKernel {
 public:
  explicit SequencePoolOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::string mode;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("mode", &mode));
    OP_REQUIRES_OK(ctx, ToAbslStatus(kernels::ParsePoolMode(mode.c_str(), &mode_)));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& values = ctx->input(0);
    PoolRows<Index> rows;
    OP_REQUIRES_OK(ctx, DescribeRows(kLayout, values, ctx->input(1), &rows));
    const TensorShape pooled_shape({rows.batch, 1, rows.depth});
    const bool is_max = mode_ == PoolMode::kMax;
    if constexpr (kGrad) {
      const Tensor& argmax = ctx->input(2);
      const Tensor& grad = ctx->input(3);
      OP_REQUIRES(ctx, grad.shape() == pooled_shape,
                  absl::InvalidArgumentError(
                      "grad must have the pooled shape " + pooled_shape.DebugString() +
                      ", got " + grad.shape().DebugString()));
      OP_REQUIRES(ctx, !is_max || argmax.shape() == pooled_shape,
                  absl::InvalidArgumentError(
                      "argmax must have the pooled shape " + pooled_shape.DebugString() +
                      " for mode 'max', got " + argmax.shape().DebugString()));
      Tensor* grad_values = nullptr;
      OP_REQUIRES_OK(ctx, ctx->allocate_output(0, values.shape(), &grad_values));
      OP_REQUIRES_OK(ctx, ToAbslStatus(Device::Backward(
                              ctx, rows, mode_, KernelData<T>(values),
                              is_max ? argmax.flat<int32_t>().data() : nullptr,
                              KernelData<T>(grad), KernelData<T>(grad_values))));
    } else {
      Tensor* pooled = nullptr;
      OP_REQUIRES_OK(ctx, ctx->allocate_output(0, pooled_shape, &pooled));
      // Without a consumer (inference: no gradient op), argmax is not needed
      // and its pass over the steps is skipped.
      int32_t* argmax_data = nullptr;
      if (ctx->output_required(1)) {
        Tensor* argmax = nullptr;
        OP_REQUIRES_OK(ctx, ctx->allocate_output(1, is_max ? pooled_shape : TensorShape({0}),
                                                 &argmax));
        if (is_max) argmax_data = argmax->flat<int32_t>().data();
      }
      OP_REQUIRES_OK(ctx, ToAbslStatus(Device::Forward(ctx, rows, mode_, KernelData<T>(values),
                                                       KernelData<T>(pooled), argmax_data)));
    }
  }

 private:
  PoolMode mode_ = PoolMode::kSum;
};

#define DEEPCTR_OPS_REGISTER_INDEXED(DEVICE, DEV, T, Index)                           \
  REGISTER_KERNEL_BUILDER(Name("DeepCTR>SequencePool")                               \
                              .Device(DEVICE)                                        \
                              .TypeConstraint<T>("T")                                \
                              .TypeConstraint<Index>("Tlen"),                        \
                          SequencePoolOp<DEV, T, Index, RowLayout::kLengths, false>); \
  REGISTER_KERNEL_BUILDER(Name("DeepCTR>SequencePoolGrad")                           \
                              .Device(DEVICE)                                        \
                              .TypeConstraint<T>("T")                                \
                              .TypeConstraint<Index>("Tlen"),                        \
                          SequencePoolOp<DEV, T, Index, RowLayout::kLengths, true>);  \
  REGISTER_KERNEL_BUILDER(Name("DeepCTR>RaggedSequencePool")                         \
                              .Device(DEVICE)                                        \
                              .TypeConstraint<T>("T")                                \
                              .TypeConstraint<Index>("Tsplits"),                     \
                          SequencePoolOp<DEV, T, Index, RowLayout::kRagged, false>);  \
  REGISTER_KERNEL_BUILDER(Name("DeepCTR>RaggedSequencePoolGrad")                     \
                              .Device(DEVICE)                                        \
                              .TypeConstraint<T>("T")                                \
                              .TypeConstraint<Index>("Tsplits"),                     \
                          SequencePoolOp<DEV, T, Index, RowLayout::kRagged, true>);

#define DEEPCTR_OPS_REGISTER(DEVICE, DEV, T)                                          \
  DEEPCTR_OPS_REGISTER_INDEXED(DEVICE, DEV, T, int32_t)                               \
  DEEPCTR_OPS_REGISTER_INDEXED(DEVICE, DEV, T, int64_t)                               \
  REGISTER_KERNEL_BUILDER(                                                            \
      Name("DeepCTR>MaskedSequencePool").Device(DEVICE).TypeConstraint<T>("T"),       \
      SequencePoolOp<DEV, T, int64_t, RowLayout::kMask, false>);                      \
  REGISTER_KERNEL_BUILDER(                                                            \
      Name("DeepCTR>MaskedSequencePoolGrad").Device(DEVICE).TypeConstraint<T>("T"),   \
      SequencePoolOp<DEV, T, int64_t, RowLayout::kMask, true>);

#define DEEPCTR_OPS_REGISTER_CPU(T) DEEPCTR_OPS_REGISTER(::tensorflow::DEVICE_CPU, CpuDevice, T)
DEEPCTR_OPS_REGISTER_CPU(float)
DEEPCTR_OPS_REGISTER_CPU(double)
DEEPCTR_OPS_REGISTER_CPU(Eigen::half)
DEEPCTR_OPS_REGISTER_CPU(::tensorflow::bfloat16)

#if DEEPCTR_OPS_WITH_CUDA
#define DEEPCTR_OPS_REGISTER_GPU(T) DEEPCTR_OPS_REGISTER(::tensorflow::DEVICE_GPU, GpuDevice, T)
DEEPCTR_OPS_REGISTER_GPU(float)
DEEPCTR_OPS_REGISTER_GPU(double)
DEEPCTR_OPS_REGISTER_GPU(Eigen::half)
DEEPCTR_OPS_REGISTER_GPU(::tensorflow::bfloat16)
#endif

}  // namespace
}  // namespace deepctr_ops
