// TF kernels of the fused DIN attention pooling: validate the inputs (naming
// the argument), allocate outputs, call the TF-free kernel on the CPU pool or
// the op's CUDA stream.
#include <cstdint>
#include <string>

#include "cc/kernels/attention_pool.h"
#include "cc/ops/kernel_adapter.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"

#if DEEPCTR_OPS_WITH_CUDA
#include "cc/ops/gpu_stream.h"
#endif

namespace deepctr_ops {
namespace {

using ::tensorflow::OpInputList;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::OpOutputList;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using kernels::AttentionPoolSpec;
using kernels::AttentionWeightGrads;
using kernels::AttentionWeights;
using kernels::PoolRows;
using kernels::RowLayout;

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

// Checks query/keys/rows/weights and fills spec (except the attrs) and rows.
template <typename T, typename Index>
absl::Status Describe(const Tensor& query, const Tensor& keys, const Tensor& row_info,
                      bool is_mask, const OpInputList& kernels, const OpInputList& biases,
                      AttentionPoolSpec* spec, PoolRows<Index>* rows,
                      AttentionWeights<T>* weights) {
  if (keys.dims() != 3) {
    return Invalid("keys must be rank 3 [batch, T, embedding], got shape " +
                   keys.shape().DebugString());
  }
  if (query.dims() != 3 || query.dim_size(1) != 1) {
    return Invalid("query must have shape [batch, 1, embedding], got " +
                   query.shape().DebugString());
  }
  if (query.dim_size(0) != keys.dim_size(0)) {
    return Invalid("query and keys must have the same batch size, got " +
                   query.shape().DebugString() + " and " + keys.shape().DebugString());
  }
  if (query.dim_size(2) != keys.dim_size(2)) {
    return Invalid("query and keys must have the same embedding size E, got " +
                   query.shape().DebugString() + " and " + keys.shape().DebugString());
  }
  rows->layout = is_mask ? RowLayout::kMask : RowLayout::kLengths;
  rows->batch = keys.dim_size(0);
  rows->max_time = keys.dim_size(1);
  rows->depth = keys.dim_size(2);
  rows->num_steps = rows->batch * rows->max_time;
  if (is_mask) {
    if (row_info.shape() != TensorShape({rows->batch, rows->max_time})) {
      return Invalid("mask must have shape [batch, T] = " +
                     TensorShape({rows->batch, rows->max_time}).DebugString() +
                     " to match keys, got " + row_info.shape().DebugString());
    }
    rows->mask = row_info.flat<bool>().data();
  } else {
    const absl::Status lengths = CheckLengthsShape(row_info, rows->batch, "keys");
    if (!lengths.ok()) return lengths;
    rows->lengths = row_info.flat<Index>().data();
  }
  const int n = kernels.size();
  if (biases.size() != n || n < 1 || n > kernels::kMaxAttentionHiddenLayers + 1) {
    return Invalid("expected 1 to " + std::to_string(kernels::kMaxAttentionHiddenLayers + 1) +
                   " kernels and as many biases, got " + std::to_string(n) + " and " +
                   std::to_string(biases.size()));
  }
  spec->depth = rows->depth;
  spec->units.clear();
  int64_t in = 4 * rows->depth;
  for (int i = 0; i < n; ++i) {
    const Tensor& kernel = kernels[i];
    const Tensor& bias = biases[i];
    const std::string kname = i + 1 < n ? "kernel" + std::to_string(i) : "kernel (final)";
    const std::string bname = i + 1 < n ? "bias" + std::to_string(i) : "bias (final)";
    if (kernel.dims() != 2 || kernel.dim_size(0) != in) {
      return Invalid(kname + " must have shape [" + std::to_string(in) +
                     ", units] to chain (4 * E for the first), got " +
                     kernel.shape().DebugString());
    }
    const int64_t out = kernel.dim_size(1);
    if (i + 1 == n && out != 1) {
      return Invalid(kname + " must have shape [" + std::to_string(in) + ", 1], got " +
                     kernel.shape().DebugString());
    }
    if (bias.shape() != TensorShape({out})) {
      return Invalid(bname + " must have shape [" + std::to_string(out) + "], got " +
                     bias.shape().DebugString());
    }
    if (i + 1 < n) spec->units.push_back(out);
    weights->kernels[i] = kernel.flat<T>().data();
    weights->biases[i] = bias.flat<T>().data();
    in = out;
  }
  return ToAbslStatus(kernels::ValidateAttentionPool(*spec, *rows));
}

// The CPU forward saves the MLP activations for its backward (an opaque
// vector output); the GPU kernels recompute them and output an empty one.
struct CpuDevice {
  template <typename T>
  static int64_t ActivationSlot(const AttentionPoolSpec& spec) {
    return kernels::AttentionPoolActivationSlot<T>(spec);
  }
  template <typename T, typename Index>
  static kernels::Status Forward(OpKernelContext* ctx, const AttentionPoolSpec& spec,
                                 const PoolRows<Index>& rows, const T* query, const T* keys,
                                 const AttentionWeights<T>& w, T* out, T* activations) {
    return kernels::AttentionPoolForwardCpu(spec, rows, query, keys, w, out, activations,
                                            CpuParallelFor(ctx));
  }
  template <typename T, typename Index>
  static kernels::Status Backward(OpKernelContext* ctx, const AttentionPoolSpec& spec,
                                  const PoolRows<Index>& rows, const T* query, const T* keys,
                                  const AttentionWeights<T>& w, const T* activations,
                                  const T* grad, T* grad_query, T* grad_keys,
                                  const AttentionWeightGrads<T>& wg) {
    return kernels::AttentionPoolBackwardCpu(spec, rows, query, keys, w, activations, grad,
                                             grad_query, grad_keys, wg, CpuParallelFor(ctx));
  }
};

#if DEEPCTR_OPS_WITH_CUDA
// Device scratch of the launchers, from TF's allocator.
template <typename T, typename Index>
absl::Status Workspace(OpKernelContext* ctx, const AttentionPoolSpec& spec,
                       const PoolRows<Index>& rows, Tensor* scratch) {
  const int64_t bytes = kernels::AttentionPoolGpuWorkspaceBytes<T>(spec, rows);
  return ctx->allocate_temp(tensorflow::DT_INT8, TensorShape({bytes > 0 ? bytes : 1}), scratch);
}

struct GpuDevice {
  template <typename T>
  static int64_t ActivationSlot(const AttentionPoolSpec&) {
    return 0;
  }
  template <typename T, typename Index>
  static kernels::Status Forward(OpKernelContext* ctx, const AttentionPoolSpec& spec,
                                 const PoolRows<Index>& rows, const T* query, const T* keys,
                                 const AttentionWeights<T>& w, T* out, T* /*activations*/) {
    Tensor scratch;
    const absl::Status s = Workspace<T>(ctx, spec, rows, &scratch);
    if (!s.ok()) return kernels::Status::Internal(std::string(s.message()));
    return kernels::LaunchAttentionPoolForward(spec, rows, query, keys, w, out,
                                               scratch.flat<int8_t>().data(), GpuStream(ctx));
  }
  template <typename T, typename Index>
  static kernels::Status Backward(OpKernelContext* ctx, const AttentionPoolSpec& spec,
                                  const PoolRows<Index>& rows, const T* query, const T* keys,
                                  const AttentionWeights<T>& w, const T* /*activations*/,
                                  const T* grad, T* grad_query, T* grad_keys,
                                  const AttentionWeightGrads<T>& wg) {
    Tensor scratch;
    const absl::Status s = Workspace<T>(ctx, spec, rows, &scratch);
    if (!s.ok()) return kernels::Status::Internal(std::string(s.message()));
    return kernels::LaunchAttentionPoolBackward(spec, rows, query, keys, w, grad, grad_query,
                                                grad_keys, wg, scratch.flat<int8_t>().data(),
                                                GpuStream(ctx));
  }
};
#endif

// Forward inputs: query, keys, rows, kernels, biases; the gradient also grad.
// RowsT is the rows input's type: int32/int64 lengths or a bool mask.
template <typename Device, typename T, typename RowsT, bool kGrad>
class AttentionPoolOp : public OpKernel {
 public:
  using Index = typename std::conditional<std::is_same<RowsT, bool>::value, int64_t,
                                          RowsT>::type;
  static constexpr bool kMask = std::is_same<RowsT, bool>::value;

  explicit AttentionPoolOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::string activation;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("activation", &activation));
    OP_REQUIRES_OK(ctx, ToAbslStatus(kernels::ParseAttentionActivation(activation,
                                                                       &spec_.activation)));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("weight_normalization", &spec_.normalize));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("return_score", &spec_.return_score));
  }

  void Compute(OpKernelContext* ctx) override {
    OpInputList kernels_in, biases_in;
    OP_REQUIRES_OK(ctx, ctx->input_list("kernels", &kernels_in));
    OP_REQUIRES_OK(ctx, ctx->input_list("biases", &biases_in));
    const Tensor& query = ctx->input(0);
    const Tensor& keys = ctx->input(1);
    AttentionPoolSpec spec = spec_;
    PoolRows<Index> rows;
    AttentionWeights<T> weights;
    OP_REQUIRES_OK(ctx, (Describe<T, Index>(query, keys, ctx->input(2), kMask, kernels_in,
                                            biases_in, &spec, &rows, &weights)));
    const TensorShape out_shape(
        {rows.batch, 1, spec.return_score ? rows.max_time : rows.depth});
    const int64_t activation_size =
        rows.batch * rows.max_time * Device::template ActivationSlot<T>(spec);
    if constexpr (kGrad) {
      const Tensor& activations = ctx->input(3 + 2 * kernels_in.size());
      const Tensor& grad = ctx->input(4 + 2 * kernels_in.size());
      OP_REQUIRES(ctx, activations.dims() == 1 && (activations.NumElements() == 0 ||
                                                   activations.NumElements() == activation_size),
                  Invalid("activations must be the forward's activations output (" +
                          std::to_string(activation_size) + " elements here) or empty, got " +
                          activations.shape().DebugString()));
      const T* saved = activations.NumElements() > 0 ? activations.flat<T>().data() : nullptr;
      OP_REQUIRES(ctx, grad.shape() == out_shape,
                  Invalid("grad must have the output's shape " + out_shape.DebugString() +
                          ", got " + grad.shape().DebugString()));
      Tensor* grad_query = nullptr;
      Tensor* grad_keys = nullptr;
      OP_REQUIRES_OK(ctx, ctx->allocate_output(0, query.shape(), &grad_query));
      OP_REQUIRES_OK(ctx, ctx->allocate_output(1, keys.shape(), &grad_keys));
      OpOutputList grad_kernels, grad_biases;
      OP_REQUIRES_OK(ctx, ctx->output_list("grad_kernels", &grad_kernels));
      OP_REQUIRES_OK(ctx, ctx->output_list("grad_biases", &grad_biases));
      AttentionWeightGrads<T> weight_grads;
      for (int i = 0; i < kernels_in.size(); ++i) {
        Tensor* gk = nullptr;
        Tensor* gb = nullptr;
        OP_REQUIRES_OK(ctx, grad_kernels.allocate(i, kernels_in[i].shape(), &gk));
        OP_REQUIRES_OK(ctx, grad_biases.allocate(i, biases_in[i].shape(), &gb));
        weight_grads.kernels[i] = gk->flat<T>().data();
        weight_grads.biases[i] = gb->flat<T>().data();
      }
      OP_REQUIRES_OK(ctx, ToAbslStatus(Device::Backward(
                              ctx, spec, rows, query.flat<T>().data(), keys.flat<T>().data(),
                              weights, saved, grad.flat<T>().data(), grad_query->flat<T>().data(),
                              grad_keys->flat<T>().data(), weight_grads)));
    } else {
      Tensor* out = nullptr;
      OP_REQUIRES_OK(ctx, ctx->allocate_output(0, out_shape, &out));
      // Saved for the gradient op only when something consumes them (training).
      T* saved = nullptr;
      if (ctx->output_required(1)) {
        Tensor* activations = nullptr;
        OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({activation_size}), &activations));
        if (activation_size > 0) saved = activations->flat<T>().data();
      }
      OP_REQUIRES_OK(ctx, ToAbslStatus(Device::Forward(ctx, spec, rows, query.flat<T>().data(),
                                                       keys.flat<T>().data(), weights,
                                                       out->flat<T>().data(), saved)));
    }
  }

 private:
  AttentionPoolSpec spec_;
};

#define DEEPCTR_OPS_REGISTER_ATTENTION_POOL_ROWS(DEVICE, DEV, T, RowsT)                   \
  REGISTER_KERNEL_BUILDER(Name("DeepCTR>AttentionPool")                                   \
                              .Device(DEVICE)                                             \
                              .TypeConstraint<T>("T")                                     \
                              .TypeConstraint<RowsT>("Trows"),                            \
                          AttentionPoolOp<DEV, T, RowsT, false>);                         \
  REGISTER_KERNEL_BUILDER(Name("DeepCTR>AttentionPoolGrad")                               \
                              .Device(DEVICE)                                             \
                              .TypeConstraint<T>("T")                                     \
                              .TypeConstraint<RowsT>("Trows"),                            \
                          AttentionPoolOp<DEV, T, RowsT, true>);

#define DEEPCTR_OPS_REGISTER_ATTENTION_POOL(DEVICE, DEV, T)                \
  DEEPCTR_OPS_REGISTER_ATTENTION_POOL_ROWS(DEVICE, DEV, T, int32_t)        \
  DEEPCTR_OPS_REGISTER_ATTENTION_POOL_ROWS(DEVICE, DEV, T, int64_t)        \
  DEEPCTR_OPS_REGISTER_ATTENTION_POOL_ROWS(DEVICE, DEV, T, bool)

DEEPCTR_OPS_REGISTER_ATTENTION_POOL(::tensorflow::DEVICE_CPU, CpuDevice, float)
DEEPCTR_OPS_REGISTER_ATTENTION_POOL(::tensorflow::DEVICE_CPU, CpuDevice, double)
#if DEEPCTR_OPS_WITH_CUDA
DEEPCTR_OPS_REGISTER_ATTENTION_POOL(::tensorflow::DEVICE_GPU, GpuDevice, float)
DEEPCTR_OPS_REGISTER_ATTENTION_POOL(::tensorflow::DEVICE_GPU, GpuDevice, double)
#endif
#undef DEEPCTR_OPS_REGISTER_ATTENTION_POOL
#undef DEEPCTR_OPS_REGISTER_ATTENTION_POOL_ROWS

}  // namespace
}  // namespace deepctr_ops
