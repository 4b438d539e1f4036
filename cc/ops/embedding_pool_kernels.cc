// TF kernels of the fused embedding pooling ops: read the table (a tensor, or
// a resource variable in place under its shared lock, as ResourceGather
// does), validate inputs, allocate outputs, call the TF-free kernels.
//
// One OpKernel class per (device, layout, direction) dispatches on the
// dtypes at run time, so that 4 value x 2 id x 2 length types do not each
// instantiate a TF kernel class.
#include <cstdint>
#include <string>

#include "cc/kernels/embedding_pool.h"
#include "cc/ops/kernel_adapter.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"

#if DEEPCTR_OPS_WITH_CUDA
#include "cc/ops/gpu_rows.h"
#include "cc/ops/gpu_stream.h"
#include "xla/stream_executor/device_memory.h"
#endif

namespace deepctr_ops {
namespace {

using ::tensorflow::DataType;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using kernels::EmbeddingRows;
using kernels::PoolMode;
using kernels::RowLayout;

std::string ShapeText(const Tensor& t) { return t.shape().DebugString(); }

// Fills rows.rows (sizes, layout, row description) from ids and input 2.
template <typename Index, typename Id>
absl::Status DescribeRows(RowLayout layout, const Tensor& table, const Tensor& ids,
                          const Tensor& row_info, EmbeddingRows<Index, Id>* rows) {
  if (table.dims() != 2) {
    return absl::InvalidArgumentError("table must be [vocabulary, embedding], got shape " +
                                      ShapeText(table));
  }
  rows->vocab = table.dim_size(0);
  rows->rows.layout = layout;
  rows->rows.depth = table.dim_size(1);
  rows->ids = ids.flat<Id>().data();
  if (layout == RowLayout::kRagged) {
    if (ids.dims() != 1) {
      return absl::InvalidArgumentError("ids must be the flat ragged ids [num_ids], got shape " +
                                        ShapeText(ids));
    }
    if (row_info.dims() != 1 || row_info.NumElements() < 1) {
      return absl::InvalidArgumentError(
          "row_splits must be a non-empty vector [batch + 1], got shape " + ShapeText(row_info));
    }
    rows->rows.batch = row_info.NumElements() - 1;
    rows->rows.num_steps = ids.NumElements();
    rows->rows.row_splits = row_info.flat<Index>().data();
    return absl::OkStatus();
  }
  if (ids.dims() != 2) {
    return absl::InvalidArgumentError("ids must be [batch, time], got shape " + ShapeText(ids));
  }
  rows->rows.batch = ids.dim_size(0);
  rows->rows.max_time = ids.dim_size(1);
  rows->rows.num_steps = ids.NumElements();
  if (layout == RowLayout::kMask) {
    if (row_info.shape() != ids.shape()) {
      return absl::InvalidArgumentError("mask must have the shape of ids " + ShapeText(ids) +
                                        ", got " + ShapeText(row_info));
    }
    rows->rows.mask = row_info.flat<bool>().data();
    return absl::OkStatus();
  }
  const absl::Status lengths = CheckLengthsShape(row_info, rows->rows.batch, "ids");
  if (!lengths.ok()) return lengths;
  rows->rows.lengths = row_info.flat<Index>().data();
  return absl::OkStatus();
}

struct CpuDevice {
  // The rows as the kernels read them: as described.
  template <typename Index, typename Id>
  static kernels::Status DeviceRows(OpKernelContext*, const EmbeddingRows<Index, Id>& rows,
                                    Tensor*, EmbeddingRows<Index, Id>* device_rows) {
    *device_rows = rows;
    return kernels::Status::Ok();
  }
  template <typename K, typename Index, typename Id>
  static kernels::Status Forward(OpKernelContext* ctx, const EmbeddingRows<Index, Id>& rows,
                                 PoolMode mode, const K* table, const K* weights, K* out,
                                 int32_t* argmax) {
    return kernels::EmbeddingPoolForwardCpu(rows, mode, table, weights, out, argmax,
                                            CpuParallelFor(ctx));
  }
  // Writes offsets [batch + 1] (a host tensor) and returns its last entry.
  template <typename Index, typename Id>
  static kernels::Status GradRows(OpKernelContext* ctx, const EmbeddingRows<Index, Id>& rows,
                                  PoolMode mode, Tensor* offsets, int64_t* total) {
    int64_t* data = offsets->flat<int64_t>().data();
    kernels::Status s = kernels::EmbeddingPoolGradRowsCpu(rows, mode, data, CpuParallelFor(ctx));
    *total = data[rows.rows.batch];
    return s;
  }
  template <typename K, typename Index, typename Id>
  static kernels::Status Backward(OpKernelContext* ctx, const EmbeddingRows<Index, Id>& rows,
                                  PoolMode mode, const K* table, const K* weights,
                                  const int32_t* argmax, const K* grad, const Tensor& offsets,
                                  K* values, Id* indices, K* grad_weights) {
    return kernels::EmbeddingPoolBackwardCpu(rows, mode, table, weights, argmax, grad,
                                             offsets.flat<int64_t>().data(), values, indices,
                                             grad_weights, CpuParallelFor(ctx));
  }
};

#if DEEPCTR_OPS_WITH_CUDA
struct GpuDevice {
  // The rows as the kernels read them: ragged splits made monotone (GpuRows),
  // once per op call; `scratch` holds them until the op returns.
  template <typename Index, typename Id>
  static kernels::Status DeviceRows(OpKernelContext* ctx, const EmbeddingRows<Index, Id>& rows,
                                    Tensor* scratch, EmbeddingRows<Index, Id>* device_rows) {
    *device_rows = rows;
    return GpuRows(ctx, rows.rows, scratch, &device_rows->rows);
  }
  template <typename K, typename Index, typename Id>
  static kernels::Status Forward(OpKernelContext* ctx, const EmbeddingRows<Index, Id>& rows,
                                 PoolMode mode, const K* table, const K* weights, K* out,
                                 int32_t* argmax) {
    return kernels::LaunchEmbeddingPoolForward(rows, mode, table, weights, out, argmax,
                                               GpuStream(ctx));
  }
  // The gradient's size is data-dependent: offsets are computed on the device
  // and their last entry copied back, a sync as in TF's own GPU Where/Unique.
  template <typename Index, typename Id>
  static kernels::Status GradRows(OpKernelContext* ctx, const EmbeddingRows<Index, Id>& rows,
                                  PoolMode mode, Tensor* offsets, int64_t* total) {
    int64_t* data = offsets->flat<int64_t>().data();
    kernels::Status s = kernels::LaunchEmbeddingPoolGradRows(rows, mode, data, GpuStream(ctx));
    if (!s.ok()) return s;
    auto* stream = ctx->op_device_context()->stream();
    stream_executor::DeviceMemoryBase last(data + rows.rows.batch, sizeof(int64_t));
    absl::Status copied = stream->Memcpy(total, last, sizeof(int64_t));
    if (copied.ok()) copied = stream->BlockHostUntilDone();
    if (!copied.ok()) return kernels::Status::Internal(std::string(copied.message()));
    return kernels::Status::Ok();
  }
  template <typename K, typename Index, typename Id>
  static kernels::Status Backward(OpKernelContext* ctx, const EmbeddingRows<Index, Id>& rows,
                                  PoolMode mode, const K* table, const K* weights,
                                  const int32_t* argmax, const K* grad, const Tensor& offsets,
                                  K* values, Id* indices, K* grad_weights) {
    return kernels::LaunchEmbeddingPoolBackward(rows, mode, table, weights, argmax, grad,
                                                offsets.flat<int64_t>().data(), values,
                                                indices, grad_weights, GpuStream(ctx));
  }
};
#endif

template <typename Device, RowLayout kLayout, bool kGrad>
class EmbeddingPoolOp : public OpKernel {
 public:
  explicit EmbeddingPoolOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::string mode;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("mode", &mode));
    OP_REQUIRES_OK(ctx, ToAbslStatus(kernels::ParsePoolMode(mode.c_str(), &mode_)));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("mask_zero", &mask_zero_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("weighted", &weighted_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("T", &dtype_));
  }

  void Compute(OpKernelContext* ctx) override {
    if (ctx->input_dtype(0) != ::tensorflow::DT_RESOURCE) {
      RunTyped(ctx, ctx->input(0));
      return;
    }
    // A variable is read in place under its shared lock, like ResourceGather:
    // a dense read would copy the whole table once a sparse update has put it
    // in copy-on-read mode.
    tensorflow::core::RefCountPtr<tensorflow::Var> var;
    OP_REQUIRES_OK(ctx, tensorflow::LookupResource(ctx, tensorflow::HandleFromInput(ctx, 0),
                                                   &var));
    tensorflow::tf_shared_lock lock(*var->mu());
    OP_REQUIRES(ctx, var->tensor()->IsInitialized(),
                absl::FailedPreconditionError("table variable is not initialized"));
    OP_REQUIRES(ctx, var->tensor()->dtype() == dtype_,
                absl::InvalidArgumentError(
                    "table variable has dtype " +
                    tensorflow::DataTypeString(var->tensor()->dtype()) + ", the op's T is " +
                    tensorflow::DataTypeString(dtype_)));
    RunTyped(ctx, *var->tensor());
  }

 private:
  void RunTyped(OpKernelContext* ctx, const Tensor& table) {
    const DataType id_type = ctx->input_dtype(1);
    const DataType index_type =
        kLayout == RowLayout::kMask ? ::tensorflow::DT_INT64 : ctx->input_dtype(2);
    auto with_value = [&](auto index_tag, auto id_tag) {
      using Index = decltype(index_tag);
      using Id = decltype(id_tag);
      switch (dtype_) {
        case ::tensorflow::DT_FLOAT: return Run<float, Index, Id>(ctx, table);
        case ::tensorflow::DT_DOUBLE: return Run<double, Index, Id>(ctx, table);
        case ::tensorflow::DT_HALF: return Run<Eigen::half, Index, Id>(ctx, table);
        case ::tensorflow::DT_BFLOAT16: return Run<tensorflow::bfloat16, Index, Id>(ctx, table);
        default:
          ctx->SetStatus(absl::InvalidArgumentError("unsupported value dtype " +
                                                    tensorflow::DataTypeString(dtype_)));
      }
    };
    auto with_id = [&](auto index_tag) {
      if (id_type == ::tensorflow::DT_INT32) {
        with_value(index_tag, int32_t());
      } else {
        with_value(index_tag, int64_t());
      }
    };
    if (index_type == ::tensorflow::DT_INT32) {
      with_id(int32_t());
    } else {
      with_id(int64_t());
    }
  }

  template <typename T, typename Index, typename Id>
  void Run(OpKernelContext* ctx, const Tensor& table) {
    using K = typename KernelTypeOf<T>::Type;
    const Tensor& ids = ctx->input(1);
    const Tensor& weights = ctx->input(3);
    EmbeddingRows<Index, Id> rows;
    rows.mask_zero = mask_zero_;
    OP_REQUIRES_OK(ctx, DescribeRows(kLayout, table, ids, ctx->input(2), &rows));
    if (weighted_) {
      OP_REQUIRES(ctx, weights.shape() == ids.shape(),
                  absl::InvalidArgumentError("weights must have the shape of ids " +
                                             ShapeText(ids) + ", got " + ShapeText(weights)));
    } else {
      OP_REQUIRES(ctx, weights.NumElements() == 0,
                  absl::InvalidArgumentError(
                      "weights must be empty when the op is not weighted, got shape " +
                      ShapeText(weights)));
    }
    const K* weight_data = weighted_ ? KernelData<T>(weights) : nullptr;
    const TensorShape pooled_shape({rows.rows.batch, 1, rows.rows.depth});
    const bool is_max = mode_ == PoolMode::kMax;
    Tensor row_scratch;
    EmbeddingRows<Index, Id> device_rows;
    OP_REQUIRES_OK(ctx,
                   ToAbslStatus(Device::DeviceRows(ctx, rows, &row_scratch, &device_rows)));
    if constexpr (!kGrad) {
      Tensor* pooled = nullptr;
      OP_REQUIRES_OK(ctx, ctx->allocate_output(0, pooled_shape, &pooled));
      int32_t* argmax_data = nullptr;
      if (ctx->output_required(1)) {
        Tensor* argmax = nullptr;
        OP_REQUIRES_OK(ctx, ctx->allocate_output(1, is_max ? pooled_shape : TensorShape({0}),
                                                 &argmax));
        if (is_max) argmax_data = argmax->flat<int32_t>().data();
      }
      OP_REQUIRES_OK(ctx, ToAbslStatus(Device::Forward(ctx, device_rows, mode_,
                                                       KernelData<T>(table), weight_data,
                                                       KernelData<T>(pooled), argmax_data)));
    } else {
      const Tensor& argmax = ctx->input(4);
      const Tensor& grad = ctx->input(5);
      OP_REQUIRES(ctx, grad.shape() == pooled_shape,
                  absl::InvalidArgumentError("grad must have the pooled shape " +
                                             pooled_shape.DebugString() + ", got " +
                                             ShapeText(grad)));
      OP_REQUIRES(ctx, !is_max || argmax.shape() == pooled_shape,
                  absl::InvalidArgumentError("argmax must have the pooled shape " +
                                             pooled_shape.DebugString() +
                                             " for mode 'max', got " + ShapeText(argmax)));
      Tensor offsets;
      OP_REQUIRES_OK(ctx, ctx->allocate_temp(::tensorflow::DT_INT64,
                                             TensorShape({rows.rows.batch + 1}), &offsets));
      int64_t total = 0;
      OP_REQUIRES_OK(ctx, ToAbslStatus(Device::GradRows(ctx, device_rows, mode_, &offsets,
                                                        &total)));
      Tensor* values = nullptr;
      Tensor* indices = nullptr;
      Tensor* grad_weights = nullptr;
      OP_REQUIRES_OK(ctx,
                     ctx->allocate_output(0, TensorShape({total, rows.rows.depth}), &values));
      OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({total}), &indices));
      OP_REQUIRES_OK(ctx, ctx->allocate_output(2, weights.shape(), &grad_weights));
      OP_REQUIRES_OK(ctx, ToAbslStatus(Device::Backward(
                              ctx, device_rows, mode_, KernelData<T>(table), weight_data,
                              is_max ? argmax.flat<int32_t>().data() : nullptr,
                              KernelData<T>(grad), offsets, KernelData<T>(values),
                              indices->flat<Id>().data(),
                              weighted_ ? KernelData<T>(grad_weights) : nullptr)));
    }
  }

  PoolMode mode_ = PoolMode::kSum;
  bool mask_zero_ = false;
  bool weighted_ = false;
  DataType dtype_ = ::tensorflow::DT_FLOAT;
};

#define DEEPCTR_OPS_REGISTER(DEVICE, DEV)                                                   \
  REGISTER_KERNEL_BUILDER(Name("DeepCTR>EmbeddingSequencePool").Device(DEVICE),             \
                          EmbeddingPoolOp<DEV, RowLayout::kLengths, false>);                \
  REGISTER_KERNEL_BUILDER(Name("DeepCTR>EmbeddingSequencePoolGrad").Device(DEVICE),         \
                          EmbeddingPoolOp<DEV, RowLayout::kLengths, true>);                 \
  REGISTER_KERNEL_BUILDER(Name("DeepCTR>MaskedEmbeddingSequencePool").Device(DEVICE),       \
                          EmbeddingPoolOp<DEV, RowLayout::kMask, false>);                   \
  REGISTER_KERNEL_BUILDER(Name("DeepCTR>MaskedEmbeddingSequencePoolGrad").Device(DEVICE),   \
                          EmbeddingPoolOp<DEV, RowLayout::kMask, true>);                    \
  REGISTER_KERNEL_BUILDER(Name("DeepCTR>RaggedEmbeddingSequencePool").Device(DEVICE),       \
                          EmbeddingPoolOp<DEV, RowLayout::kRagged, false>);                 \
  REGISTER_KERNEL_BUILDER(Name("DeepCTR>RaggedEmbeddingSequencePoolGrad").Device(DEVICE),   \
                          EmbeddingPoolOp<DEV, RowLayout::kRagged, true>);

DEEPCTR_OPS_REGISTER(::tensorflow::DEVICE_CPU, CpuDevice)
#if DEEPCTR_OPS_WITH_CUDA
DEEPCTR_OPS_REGISTER(::tensorflow::DEVICE_GPU, GpuDevice)
#endif

#undef DEEPCTR_OPS_REGISTER

}  // namespace
}  // namespace deepctr_ops
