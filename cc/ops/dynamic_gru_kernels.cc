// TF kernels of the length-aware dynamic GRU: validate inputs (errors name the
// argument), allocate the outputs, call the TF-free kernel on the CPU pool or
// the op's CUDA stream.
#include <cstdint>
#include <initializer_list>
#include <string>

#include "absl/status/statusor.h"
#include "cc/kernels/dynamic_gru.h"
#include "cc/kernels/dynamic_gru_directions.h"
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

// `directions` (1 or 2): dynamic_gru_directions.h.
struct CpuDevice {
  template <typename T, typename Index>
  static kernels::Status Forward(OpKernelContext* ctx, const GruShape& s,
                                 const GruForwardArgs<T, Index>& a, int directions) {
    return kernels::DynamicGruForwardCpu(s, a, CpuParallelFor(ctx), directions);
  }
  template <typename T, typename Index>
  static kernels::Status Backward(OpKernelContext* ctx, const GruShape& s,
                                  const GruBackwardArgs<T, Index>& a, int directions) {
    return kernels::DynamicGruBackwardCpu(s, a, CpuParallelFor(ctx), directions);
  }
};

#if DEEPCTR_OPS_WITH_CUDA
// One launch per direction on the op's stream, in order (the backward's
// direction 1 adds to direction 0's grad_x).
struct GpuDevice {
  template <typename T, typename Index>
  static kernels::Status Forward(OpKernelContext* ctx, const GruShape& s,
                                 const GruForwardArgs<T, Index>& a, int directions) {
    return kernels::ForEachDirection(s, a, directions, [&](const GruShape& sd, const auto& ad) {
      return kernels::LaunchDynamicGruForward(sd, ad, GpuStream(ctx));
    });
  }
  template <typename T, typename Index>
  static kernels::Status Backward(OpKernelContext* ctx, const GruShape& s,
                                  const GruBackwardArgs<T, Index>& a, int directions) {
    return kernels::ForEachDirection(s, a, directions, [&](const GruShape& sd, const auto& ad) {
      return kernels::LaunchDynamicGruBackward(sd, ad, GpuStream(ctx));
    });
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

// One direction's weight: `w` itself, or for two directions the first of its
// [2, ...] stack (both have the same shape).
absl::StatusOr<Tensor> DirectionWeight(const std::string& name, const Tensor& w, int rank,
                                       int directions) {
  if (directions == 1) return w;
  if (w.dims() != rank + 1 || w.dim_size(0) != directions) {
    return absl::InvalidArgumentError(name + " must be a [2, ...] stack of the forward and " +
                                      "reverse weights, got shape " + Shape(w));
  }
  return w.SubSlice(0);
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

// [directions, dims...], or dims for one direction.
TensorShape StackedShape(int directions, std::initializer_list<int64_t> dims) {
  TensorShape shape(dims);
  if (directions > 1) shape.InsertDim(0, directions);
  return shape;
}

// ReadShape for `directions` (1 or 2) directions: with 2, each weight must be
// a [2, ...] stack and the checks apply to one direction's slice. bg and bc
// may be null (the BPTT op does not take them).
absl::Status ReadDirectionsShape(const std::string& cell_name, bool reverse, int directions,
                                 const Tensor& x, const Tensor& lengths, const Tensor& att,
                                 const Tensor& wg, const Tensor* bg, const Tensor& wc,
                                 const Tensor* bc, GruShape* s) {
  const absl::StatusOr<Tensor> wg1 = DirectionWeight("wg (gates kernel)", wg, 2, directions);
  if (!wg1.ok()) return wg1.status();
  const absl::StatusOr<Tensor> wc1 = DirectionWeight("wc (candidate kernel)", wc, 2, directions);
  if (!wc1.ok()) return wc1.status();
  absl::StatusOr<Tensor> bg1 = Tensor(), bc1 = Tensor();
  if (bg != nullptr) bg1 = DirectionWeight("bg (gates bias)", *bg, 1, directions);
  if (!bg1.ok()) return bg1.status();
  if (bc != nullptr) bc1 = DirectionWeight("bc (candidate bias)", *bc, 1, directions);
  if (!bc1.ok()) return bc1.status();
  return ReadShape(cell_name, reverse, x, lengths, att, *wg1, bg != nullptr ? &*bg1 : nullptr,
                   *wc1, bc != nullptr ? &*bc1 : nullptr, s);
}

// DeepCTR>DynamicGru (kDirections = 1) and DeepCTR>BidirectionalDynamicGru
// (2: dynamic_gru_directions.h).
template <typename Device, typename T, typename Index, int kDirections>
class DynamicGruOp : public OpKernel {
 public:
  explicit DynamicGruOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("cell", &cell_));
    if (kDirections == 1) OP_REQUIRES_OK(ctx, ctx->GetAttr("reverse", &reverse_));
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
    OP_REQUIRES_OK(ctx, ReadDirectionsShape(cell_, reverse_, kDirections, x, lengths, att, wg,
                                            &bg, wc, &bc, &s));
    const int64_t out_units = kDirections * s.units;
    Tensor *outputs = nullptr, *final_state = nullptr, *gates = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({s.batch, s.time, out_units}),
                                             &outputs));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({s.batch, out_units}),
                                             &final_state));
    // The gates are saved for the gradient only. In a graph where nothing
    // consumes them (a serving or predict graph) the executor marks the
    // output not required; it is then left unset, and the forward neither
    // writes nor allocates them.
    if (ctx->output_required(2)) {
      OP_REQUIRES_OK(ctx, ctx->allocate_output(
                              2, StackedShape(kDirections, {s.batch, s.time, 3 * s.units}),
                              &gates));
    }
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
    a.gates = gates != nullptr ? gates->flat<T>().data() : nullptr;
    OP_REQUIRES_OK(ctx, ToAbslStatus(Device::Forward(ctx, s, a, kDirections)));
  }

 private:
  std::string cell_;
  bool reverse_ = false;
};

template <typename Device, typename T, typename Index, int kDirections>
class DynamicGruGradOp : public OpKernel {
 public:
  explicit DynamicGruGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("cell", &cell_));
    if (kDirections == 1) OP_REQUIRES_OK(ctx, ctx->GetAttr("reverse", &reverse_));
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
    OP_REQUIRES_OK(ctx, ReadDirectionsShape(cell_, reverse_, kDirections, x, lengths, att, wg,
                                            nullptr, wc, nullptr, &s));
    const int64_t out_units = kDirections * s.units;
    const TensorShape seq({s.batch, s.time, out_units});
    OP_REQUIRES(ctx, outputs.shape() == seq,
                Mismatch("outputs", seq.DebugString(), outputs));
    const absl::StatusOr<const T*> go = OptionalGrad<T>("grad_outputs", seq, grad_outputs);
    OP_REQUIRES_OK(ctx, go.status());
    const TensorShape gates_shape = StackedShape(kDirections, {s.batch, s.time, 3 * s.units});
    OP_REQUIRES(ctx, gates.shape() == gates_shape,
                Mismatch("gates", gates_shape.DebugString(), gates));
    const TensorShape final_shape({s.batch, out_units});
    const absl::StatusOr<const T*> gf =
        OptionalGrad<T>("grad_final_state", final_shape, grad_final);
    OP_REQUIRES_OK(ctx, gf.status());
    Tensor *grad_x = nullptr, *grad_att = nullptr, *grad_wg = nullptr, *grad_bg = nullptr,
           *grad_wc = nullptr, *grad_bc = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &grad_x));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, att.shape(), &grad_att));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, wg.shape(), &grad_wg));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, StackedShape(kDirections, {2 * s.units}),
                                             &grad_bg));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, wc.shape(), &grad_wc));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(5, StackedShape(kDirections, {s.units}), &grad_bc));
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
    OP_REQUIRES_OK(ctx, ToAbslStatus(Device::Backward(ctx, s, a, kDirections)));
  }

 private:
  std::string cell_;
  bool reverse_ = false;
};

#define DEEPCTR_OPS_REGISTER_GRU_OPS(NAME, DEVICE, DEV, T, INDEX, DIRECTIONS)              \
  REGISTER_KERNEL_BUILDER(Name(NAME)                                                     \
                              .Device(DEVICE)                                            \
                              .TypeConstraint<T>("T")                                    \
                              .TypeConstraint<INDEX>("Tlen"),                            \
                          DynamicGruOp<DEV, T, INDEX, DIRECTIONS>);                      \
  REGISTER_KERNEL_BUILDER(Name(NAME "Grad")                                              \
                              .Device(DEVICE)                                            \
                              .TypeConstraint<T>("T")                                    \
                              .TypeConstraint<INDEX>("Tlen"),                            \
                          DynamicGruGradOp<DEV, T, INDEX, DIRECTIONS>);
#define DEEPCTR_OPS_REGISTER_GRU(DEVICE, DEV, T, INDEX)                                  \
  DEEPCTR_OPS_REGISTER_GRU_OPS("DeepCTR>DynamicGru", DEVICE, DEV, T, INDEX, 1)           \
  DEEPCTR_OPS_REGISTER_GRU_OPS("DeepCTR>BidirectionalDynamicGru", DEVICE, DEV, T, INDEX, 2)

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
#undef DEEPCTR_OPS_REGISTER_GRU_OPS

}  // namespace
}  // namespace deepctr_ops
