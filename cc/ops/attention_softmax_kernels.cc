// TF kernels of the masked attention softmax: validate inputs, allocate the
// output, call the TF-free kernel on the CPU pool or the op's CUDA stream.
#include <cstdint>
#include <string>

#include "cc/kernels/attention_softmax.h"
#include "cc/ops/kernel_adapter.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"

#if DEEPCTR_OPS_WITH_CUDA
#include "cc/ops/gpu_stream.h"
#endif

namespace deepctr_ops {
namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using kernels::AttentionSoftmaxShape;

struct CpuDevice {
  template <typename T>
  static kernels::Status Forward(OpKernelContext* ctx, const AttentionSoftmaxShape& s,
                                 const T* scores, const bool* valid, T* probs) {
    return kernels::AttentionSoftmaxForwardCpu(s, scores, valid, probs, CpuParallelFor(ctx));
  }
  template <typename T>
  static kernels::Status Backward(OpKernelContext* ctx, const AttentionSoftmaxShape& s,
                                  const T* grad, const T* probs, const bool* valid, T* out) {
    return kernels::AttentionSoftmaxBackwardCpu(s, grad, probs, valid, out, CpuParallelFor(ctx));
  }
};

#if DEEPCTR_OPS_WITH_CUDA
struct GpuDevice {
  template <typename T>
  static kernels::Status Forward(OpKernelContext* ctx, const AttentionSoftmaxShape& s,
                                 const T* scores, const bool* valid, T* probs) {
    return kernels::LaunchAttentionSoftmaxForward(s, scores, valid, probs, GpuStream(ctx));
  }
  template <typename T>
  static kernels::Status Backward(OpKernelContext* ctx, const AttentionSoftmaxShape& s,
                                  const T* grad, const T* probs, const bool* valid, T* out) {
    return kernels::LaunchAttentionSoftmaxBackward(s, grad, probs, valid, out, GpuStream(ctx));
  }
};
#endif

// Forward inputs: scores, key_valid. Gradient inputs: grad, probs, key_valid.
// T is float or double; the float `divisor` attr is converted to T by the kernel.
template <typename Device, typename T, bool kGrad>
class AttentionSoftmaxOp : public OpKernel {
 public:
  explicit AttentionSoftmaxOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("divisor", &divisor_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("blinding", &blinding_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("heads", &heads_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& first = ctx->input(0);
    const Tensor& key_valid = ctx->input(kGrad ? 2 : 1);
    OP_REQUIRES(ctx, first.dims() == 3,
                absl::InvalidArgumentError("scores must be rank 3 [heads*batch, Tq, Tk], got " +
                                           first.shape().DebugString()));
    OP_REQUIRES(ctx, key_valid.dims() == 2 && key_valid.dim_size(1) == first.dim_size(2),
                absl::InvalidArgumentError(
                    "key_valid must have shape [batch, Tk] with Tk = scores.shape[2] = " +
                    std::to_string(first.dim_size(2)) + ", got " +
                    key_valid.shape().DebugString()));
    AttentionSoftmaxShape s;
    s.rows = first.dim_size(0);
    s.time_q = first.dim_size(1);
    s.time_k = first.dim_size(2);
    s.batch = key_valid.dim_size(0);
    s.heads = heads_;
    s.divisor = divisor_;
    s.blinding = blinding_;
    OP_REQUIRES_OK(ctx, ToAbslStatus(kernels::ValidateAttentionSoftmaxShape(s)));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, first.shape(), &out));
    const bool* valid = key_valid.flat<bool>().data();
    if constexpr (kGrad) {
      const Tensor& probs = ctx->input(1);
      OP_REQUIRES(ctx, probs.shape() == first.shape(),
                  absl::InvalidArgumentError("probs must have the shape of grad " +
                                             first.shape().DebugString() + ", got " +
                                             probs.shape().DebugString()));
      OP_REQUIRES_OK(ctx, ToAbslStatus(Device::Backward(ctx, s, first.flat<T>().data(),
                                                        probs.flat<T>().data(), valid,
                                                        out->flat<T>().data())));
    } else {
      OP_REQUIRES_OK(ctx, ToAbslStatus(Device::Forward(ctx, s, first.flat<T>().data(),
                                                       valid, out->flat<T>().data())));
    }
  }

 private:
  float divisor_ = 1.0f;
  bool blinding_ = false;
  int64_t heads_ = 0;
};

#define DEEPCTR_OPS_REGISTER_ATTENTION(DEVICE, DEV, T)                                   \
  REGISTER_KERNEL_BUILDER(                                                               \
      Name("DeepCTR>AttentionSoftmax").Device(DEVICE).TypeConstraint<T>("T"),            \
      AttentionSoftmaxOp<DEV, T, false>);                                                \
  REGISTER_KERNEL_BUILDER(                                                               \
      Name("DeepCTR>AttentionSoftmaxGrad").Device(DEVICE).TypeConstraint<T>("T"),        \
      AttentionSoftmaxOp<DEV, T, true>);

DEEPCTR_OPS_REGISTER_ATTENTION(::tensorflow::DEVICE_CPU, CpuDevice, float)
DEEPCTR_OPS_REGISTER_ATTENTION(::tensorflow::DEVICE_CPU, CpuDevice, double)
#if DEEPCTR_OPS_WITH_CUDA
DEEPCTR_OPS_REGISTER_ATTENTION(::tensorflow::DEVICE_GPU, GpuDevice, float)
DEEPCTR_OPS_REGISTER_ATTENTION(::tensorflow::DEVICE_GPU, GpuDevice, double)
#endif
#undef DEEPCTR_OPS_REGISTER_ATTENTION

}  // namespace
}  // namespace deepctr_ops
