// TF kernels of the length-aware dynamic GRU: validate inputs (errors name the
// argument), allocate the outputs, call the TF-free kernel on the CPU pool or
// the op's CUDA stream.
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "cc/kernels/dynamic_gru.h"
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
using ::tensorflow::TensorShape;
using kernels::GruBackwardArgs;
using kernels::GruForwardArgs;
using kernels::GruShape;

struct CpuDevice {
  template <typename T, typename Index>
  static kernels::Status Forward(OpKernelContext* ctx, const GruShape& s,
                                 const GruForwardArgs<T, Index>& a) {
    return kernels::DynamicGruForwardCpu(s, a, CpuParallelFor(ctx));
  }
  template <typename T, typename Index>
  static kernels::Status Backward(OpKernelContext* ctx, const GruShape& s,
                                  const GruBackwardArgs<T, Index>& a) {
    return kernels::DynamicGruBackwardCpu(s, a, CpuParallelFor(ctx));
  }
};

#if DEEPCTR_OPS_WITH_CUDA
struct GpuDevice {
  template <typename T, typename Index>
  static kernels::Status Forward(OpKernelContext* ctx, const GruShape& s,
                                 const GruForwardArgs<T, Index>& a) {
    return kernels::LaunchDynamicGruForward(s, a, GpuStream(ctx));
  }
  template <typename T, typename Index>
  static kernels::Status Backward(OpKernelContext* ctx, const GruShape& s,
                                  const GruBackwardArgs<T, Index>& a) {
    return kernels::LaunchDynamicGruBackward(s, a, GpuStream(ctx));
  }
};
#endif

std::string Shape(const Tensor& t) { return t.shape().DebugString(); }

absl::Status Mismatch(const std::string& name, const std::string& want, const Tensor& t) {
  return absl::InvalidArgumentError(name + " must have shape " + want + ", got " + Shape(t));
}

// An incoming gradient that is either `want` or empty ([0]: zero, so that a
// model using only the final state passes no [B, T, U] tensor of zeros).
// Returns its data, or null for zero.
template <typename T>
absl::StatusOr<const T*> OptionalGrad(const std::string& name, const TensorShape& want,
                                      const Tensor& t) {
  if (t.shape() == want) return t.flat<T>().data();
  if (t.dims() == 1 && t.dim_size(0) == 0) return nullptr;
  return Mismatch(name, want.DebugString() + " or [0] (zero)", t);
}

// Checks x, lengths, att_scores, wg and wc (and bg, bc when given) and fills
// the shape. U is wc.shape[1].
absl::Status ReadShape(const std::string& cell_name, bool reverse,
                       const Tensor& x, const Tensor& lengths, const Tensor& att,
                       const Tensor& wg, const Tensor* bg, const Tensor& wc, const Tensor* bc,
                       GruShape* s) {
  if (!kernels::ParseGruCell(cell_name, &s->cell)) {
    return absl::InvalidArgumentError("cell must be GRU, AGRU or AUGRU, got " + cell_name);
  }
  s->reverse = reverse;
  if (x.dims() != 3) return Mismatch("x", "[batch, T, E]", x);
  s->batch = x.dim_size(0);
  s->time = x.dim_size(1);
  s->input = x.dim_size(2);
  const std::string b = std::to_string(s->batch), t = std::to_string(s->time);
  if (!((lengths.dims() == 1 && lengths.dim_size(0) == s->batch) ||
        (lengths.dims() == 2 && lengths.dim_size(0) == s->batch && lengths.dim_size(1) == 1))) {
    return Mismatch("lengths", "[batch] or [batch, 1] with batch = " + b, lengths);
  }
  if (wc.dims() != 2) return Mismatch("wc (candidate kernel)", "[E + units, units]", wc);
  s->units = wc.dim_size(1);
  const int64_t u = s->units, rows = s->input + s->units;
  const std::string su = std::to_string(u), srows = std::to_string(rows);
  if (wc.dim_size(0) != rows) {
    return Mismatch("wc (candidate kernel)", "[E + units, units] = [" + srows + ", " + su + "]",
                    wc);
  }
  if (wg.dims() != 2 || wg.dim_size(0) != rows || wg.dim_size(1) != 2 * u) {
    return Mismatch("wg (gates kernel)",
                    "[E + units, 2 * units] = [" + srows + ", " + std::to_string(2 * u) + "]",
                    wg);
  }
  if (bg != nullptr && (bg->dims() != 1 || bg->dim_size(0) != 2 * u)) {
    return Mismatch("bg (gates bias)", "[2 * units] = [" + std::to_string(2 * u) + "]", *bg);
  }
  if (bc != nullptr && (bc->dims() != 1 || bc->dim_size(0) != u)) {
    return Mismatch("bc (candidate bias)", "[units] = [" + su + "]", *bc);
  }
  if (kernels::GruUsesAttention(s->cell)) {
    const bool ok = (att.dims() == 2 || (att.dims() == 3 && att.dim_size(2) == 1)) &&
                    att.dim_size(0) == s->batch && att.dim_size(1) == s->time;
    if (!ok) return Mismatch("att_scores", "[batch, T] or [batch, T, 1] = [" + b + ", " + t + "]",
                             att);
  } else if (att.NumElements() != 0) {
    return absl::InvalidArgumentError("att_scores must be empty for cell GRU, got shape " +
                                      Shape(att));
  }
  return absl::OkStatus();
}

template <typename Device, typename T, typename Index>
class DynamicGruOp : public OpKernel {
 public:
  explicit DynamicGruOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("cell", &cell_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("reverse", &reverse_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& lengths = ctx->input(1);
    const Tensor& att = ctx->input(2);
    const Tensor& wg = ctx->input(3);
    const Tensor& bg = ctx->input(4);
    const Tensor& wc = ctx->input(5);
    const Tensor& bc = ctx->input(6);
    GruShape s;
    OP_REQUIRES_OK(ctx, ReadShape(cell_, reverse_, x, lengths, att, wg, &bg, wc, &bc, &s));
    Tensor *outputs = nullptr, *final_state = nullptr, *gates = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({s.batch, s.time, s.units}),
                                             &outputs));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({s.batch, s.units}), &final_state));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({s.batch, s.time, 3 * s.units}),
                                             &gates));
    GruForwardArgs<T, Index> a;
    a.x = x.flat<T>().data();
    a.lengths = lengths.flat<Index>().data();
    a.att = kernels::GruUsesAttention(s.cell) ? att.flat<T>().data() : nullptr;
    a.wg = wg.flat<T>().data();
    a.bg = bg.flat<T>().data();
    a.wc = wc.flat<T>().data();
    a.bc = bc.flat<T>().data();
    a.outputs = outputs->flat<T>().data();
    a.final_state = final_state->flat<T>().data();
    a.gates = gates->flat<T>().data();
    OP_REQUIRES_OK(ctx, ToAbslStatus(Device::Forward(ctx, s, a)));
  }

 private:
  std::string cell_;
  bool reverse_ = false;
};

template <typename Device, typename T, typename Index>
class DynamicGruGradOp : public OpKernel {
 public:
  explicit DynamicGruGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("cell", &cell_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("reverse", &reverse_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& lengths = ctx->input(1);
    const Tensor& att = ctx->input(2);
    const Tensor& wg = ctx->input(3);
    const Tensor& wc = ctx->input(4);
    const Tensor& outputs = ctx->input(5);
    const Tensor& gates = ctx->input(6);
    const Tensor& grad_outputs = ctx->input(7);
    const Tensor& grad_final = ctx->input(8);
    GruShape s;
    OP_REQUIRES_OK(ctx, ReadShape(cell_, reverse_, x, lengths, att, wg, nullptr, wc,
                                  nullptr, &s));
    const TensorShape seq({s.batch, s.time, s.units});
    OP_REQUIRES(ctx, outputs.shape() == seq,
                Mismatch("outputs", seq.DebugString(), outputs));
    const absl::StatusOr<const T*> go = OptionalGrad<T>("grad_outputs", seq, grad_outputs);
    OP_REQUIRES_OK(ctx, go.status());
    const TensorShape gates_shape({s.batch, s.time, 3 * s.units});
    OP_REQUIRES(ctx, gates.shape() == gates_shape,
                Mismatch("gates", gates_shape.DebugString(), gates));
    const TensorShape final_shape({s.batch, s.units});
    const absl::StatusOr<const T*> gf =
        OptionalGrad<T>("grad_final_state", final_shape, grad_final);
    OP_REQUIRES_OK(ctx, gf.status());
    Tensor *grad_x = nullptr, *grad_att = nullptr, *grad_wg = nullptr, *grad_bg = nullptr,
           *grad_wc = nullptr, *grad_bc = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &grad_x));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, att.shape(), &grad_att));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, wg.shape(), &grad_wg));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({2 * s.units}), &grad_bg));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, wc.shape(), &grad_wc));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(5, TensorShape({s.units}), &grad_bc));
    const bool use_att = kernels::GruUsesAttention(s.cell);
    GruBackwardArgs<T, Index> a;
    a.x = x.flat<T>().data();
    a.lengths = lengths.flat<Index>().data();
    a.att = use_att ? att.flat<T>().data() : nullptr;
    a.wg = wg.flat<T>().data();
    a.wc = wc.flat<T>().data();
    a.outputs = outputs.flat<T>().data();
    a.gates = gates.flat<T>().data();
    a.grad_outputs = *go;
    a.grad_final = *gf;
    a.grad_x = grad_x->flat<T>().data();
    a.grad_att = use_att ? grad_att->flat<T>().data() : nullptr;
    a.grad_wg = grad_wg->flat<T>().data();
    a.grad_bg = grad_bg->flat<T>().data();
    a.grad_wc = grad_wc->flat<T>().data();
    a.grad_bc = grad_bc->flat<T>().data();
    OP_REQUIRES_OK(ctx, ToAbslStatus(Device::Backward(ctx, s, a)));
  }

 private:
  std::string cell_;
  bool reverse_ = false;
};

#define DEEPCTR_OPS_REGISTER_GRU(DEVICE, DEV, T, INDEX)                                  \
  REGISTER_KERNEL_BUILDER(Name("DeepCTR>DynamicGru")                                     \
                              .Device(DEVICE)                                            \
                              .TypeConstraint<T>("T")                                    \
                              .TypeConstraint<INDEX>("Tlen"),                            \
                          DynamicGruOp<DEV, T, INDEX>);                                  \
  REGISTER_KERNEL_BUILDER(Name("DeepCTR>DynamicGruGrad")                                 \
                              .Device(DEVICE)                                            \
                              .TypeConstraint<T>("T")                                    \
                              .TypeConstraint<INDEX>("Tlen"),                            \
                          DynamicGruGradOp<DEV, T, INDEX>);

DEEPCTR_OPS_REGISTER_GRU(::tensorflow::DEVICE_CPU, CpuDevice, float, int32_t)
DEEPCTR_OPS_REGISTER_GRU(::tensorflow::DEVICE_CPU, CpuDevice, float, int64_t)
DEEPCTR_OPS_REGISTER_GRU(::tensorflow::DEVICE_CPU, CpuDevice, double, int32_t)
DEEPCTR_OPS_REGISTER_GRU(::tensorflow::DEVICE_CPU, CpuDevice, double, int64_t)
#if DEEPCTR_OPS_WITH_CUDA
DEEPCTR_OPS_REGISTER_GRU(::tensorflow::DEVICE_GPU, GpuDevice, float, int32_t)
DEEPCTR_OPS_REGISTER_GRU(::tensorflow::DEVICE_GPU, GpuDevice, float, int64_t)
DEEPCTR_OPS_REGISTER_GRU(::tensorflow::DEVICE_GPU, GpuDevice, double, int32_t)
DEEPCTR_OPS_REGISTER_GRU(::tensorflow::DEVICE_GPU, GpuDevice, double, int64_t)
#endif
#undef DEEPCTR_OPS_REGISTER_GRU

}  // namespace
}  // namespace deepctr_ops
