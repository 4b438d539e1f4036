// TF kernels of the masked attention softmax: validate inputs, allocate the
// output, call the TF-free kernel on the CPU pool or the op's CUDA stream.
#include <cstdint>

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
  static kernels::Status Forward(OpKernelContext* ctx, const AttentionSoftmaxShape& s,
                                 const float* scores, const bool* valid, float* probs) {
    return kernels::AttentionSoftmaxForwardCpu(s, scores, valid, probs, CpuParallelFor(ctx));
  }
  static kernels::Status Backward(OpKernelContext* ctx, const AttentionSoftmaxShape& s,
                                  const float* grad, const float* probs, const bool* valid,
                                  float* out) {
    return kernels::AttentionSoftmaxBackwardCpu(s, grad, probs, valid, out, CpuParallelFor(ctx));
  }
};

#if DEEPCTR_OPS_WITH_CUDA
struct GpuDevice {
  static kernels::Status Forward(OpKernelContext* ctx, const AttentionSoftmaxShape& s,
                                 const float* scores, const bool* valid, float* probs) {
    return kernels::LaunchAttentionSoftmaxForward(s, scores, valid, probs, GpuStream(ctx));
  }
  static kernels::Status Backward(OpKernelContext* ctx, const AttentionSoftmaxShape& s,
                                  const float* grad, const float* probs, const bool* valid,
                                  float* out) {
    return kernels::LaunchAttentionSoftmaxBackward(s, grad, probs, valid, out, GpuStream(ctx));
  }
};
#endif

// Forward inputs: scores, key_valid. Gradient inputs: grad, probs, key_valid.
template <typename Device, bool kGrad>
class AttentionSoftmaxOp : public OpKernel {
 public:
  explicit AttentionSoftmaxOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("divisor", &divisor_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("blinding", &blinding_));
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
      OP_REQUIRES_OK(ctx, ToAbslStatus(Device::Backward(ctx, s, first.flat<float>().data(),
                                                        probs.flat<float>().data(), valid,
                                                        out->flat<float>().data())));
    } else {
      OP_REQUIRES_OK(ctx, ToAbslStatus(Device::Forward(ctx, s, first.flat<float>().data(),
                                                       valid, out->flat<float>().data())));
    }
  }

 private:
  float divisor_ = 1.0f;
  bool blinding_ = false;
};

REGISTER_KERNEL_BUILDER(Name("DeepCTR>AttentionSoftmax").Device(::tensorflow::DEVICE_CPU),
                        AttentionSoftmaxOp<CpuDevice, false>);
REGISTER_KERNEL_BUILDER(Name("DeepCTR>AttentionSoftmaxGrad").Device(::tensorflow::DEVICE_CPU),
                        AttentionSoftmaxOp<CpuDevice, true>);
#if DEEPCTR_OPS_WITH_CUDA
REGISTER_KERNEL_BUILDER(Name("DeepCTR>AttentionSoftmax").Device(::tensorflow::DEVICE_GPU),
                        AttentionSoftmaxOp<GpuDevice, false>);
REGISTER_KERNEL_BUILDER(Name("DeepCTR>AttentionSoftmaxGrad").Device(::tensorflow::DEVICE_GPU),
                        AttentionSoftmaxOp<GpuDevice, true>);
#endif

}  // namespace
}  // namespace deepctr_ops
