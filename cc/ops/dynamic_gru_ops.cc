// Op definitions and shape functions of the length-aware dynamic GRU.
// The names are a public API: SavedModels store them. Never rename one.
#include <string>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace deepctr_ops {
namespace {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

struct GruDims {
  DimensionHandle batch, time, input, units;
  ShapeHandle x, att, wg, wc;
};

// One direction's weight of rank `rank` from input `index`: the input itself,
// or for `directions` = 2 its [2, ...] stack less the leading dimension.
absl::Status DirectionWeight(InferenceContext* c, int index, int rank, int directions,
                             ShapeHandle* out) {
  if (directions == 1) return c->WithRank(c->input(index), rank, out);
  ShapeHandle stacked;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(index), rank + 1, &stacked));
  DimensionHandle two;
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(stacked, 0), 2, &two));
  return c->Subshape(stacked, 1, out);
}

// Merges B, T, E, U over x, lengths, att_scores and the weights (whose input
// indices are given; a negative index skips that input) and checks that the
// weights' first dimension is E + U. With 2 directions each weight is a
// [2, ...] stack and d->wg / d->wc are one direction's shapes.
absl::Status MergeGruDims(InferenceContext* c, int wg, int bg, int wc, int bc, GruDims* d,
                          int directions = 1) {
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &d->x));
  d->batch = c->Dim(d->x, 0);
  d->time = c->Dim(d->x, 1);
  d->input = c->Dim(d->x, 2);
  ShapeHandle lengths = c->input(1);
  if (c->RankKnown(lengths)) {
    if (c->Rank(lengths) == 2) {
      DimensionHandle one;
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(lengths, 1), 1, &one));
    } else if (c->Rank(lengths) != 1) {
      return absl::InvalidArgumentError("lengths must have shape [batch] or [batch, 1]");
    }
    TF_RETURN_IF_ERROR(c->Merge(d->batch, c->Dim(lengths, 0), &d->batch));
  }
  std::string cell;
  TF_RETURN_IF_ERROR(c->GetAttr("cell", &cell));
  d->att = c->input(2);
  if (cell != "GRU" && c->RankKnown(d->att)) {
    const int rank = c->Rank(d->att);
    if (rank != 2 && rank != 3) {
      return absl::InvalidArgumentError("att_scores must have shape [batch, T] or [batch, T, 1]");
    }
    TF_RETURN_IF_ERROR(c->Merge(d->batch, c->Dim(d->att, 0), &d->batch));
    TF_RETURN_IF_ERROR(c->Merge(d->time, c->Dim(d->att, 1), &d->time));
    if (rank == 3) {
      DimensionHandle one;
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(d->att, 2), 1, &one));
    }
  }
  TF_RETURN_IF_ERROR(DirectionWeight(c, wg, 2, directions, &d->wg));
  TF_RETURN_IF_ERROR(DirectionWeight(c, wc, 2, directions, &d->wc));
  d->units = c->Dim(d->wc, 1);
  DimensionHandle two_units;
  TF_RETURN_IF_ERROR(c->Multiply(d->units, 2, &two_units));
  TF_RETURN_IF_ERROR(c->Merge(two_units, c->Dim(d->wg, 1), &two_units));
  if (bg >= 0) {
    ShapeHandle bias;
    TF_RETURN_IF_ERROR(DirectionWeight(c, bg, 1, directions, &bias));
    TF_RETURN_IF_ERROR(c->Merge(two_units, c->Dim(bias, 0), &two_units));
  }
  if (bc >= 0) {
    ShapeHandle bias;
    TF_RETURN_IF_ERROR(DirectionWeight(c, bc, 1, directions, &bias));
    TF_RETURN_IF_ERROR(c->Merge(d->units, c->Dim(bias, 0), &d->units));
  }
  if (c->ValueKnown(two_units) && !c->ValueKnown(d->units)) {
    d->units = c->MakeDim(c->Value(two_units) / 2);
  }
  DimensionHandle rows;
  TF_RETURN_IF_ERROR(c->Add(d->input, d->units, &rows));
  TF_RETURN_IF_ERROR(c->Merge(rows, c->Dim(d->wg, 0), &rows));
  TF_RETURN_IF_ERROR(c->Merge(rows, c->Dim(d->wc, 0), &rows));
  return absl::OkStatus();
}

// [2, ...] for two directions, else `one` itself.
absl::Status Stacked(InferenceContext* c, ShapeHandle one, int directions, ShapeHandle* out) {
  if (directions == 1) {
    *out = one;
    return absl::OkStatus();
  }
  return c->Concatenate(c->Vector(directions), one, out);
}

template <int kDirections>
absl::Status ForwardShape(InferenceContext* c) {
  GruDims d;
  TF_RETURN_IF_ERROR(MergeGruDims(c, 3, 4, 5, 6, &d, kDirections));
  DimensionHandle three_units, out_units;
  TF_RETURN_IF_ERROR(c->Multiply(d.units, 3, &three_units));
  TF_RETURN_IF_ERROR(c->Multiply(d.units, kDirections, &out_units));
  c->set_output(0, c->MakeShape({d.batch, d.time, out_units}));
  c->set_output(1, c->MakeShape({d.batch, out_units}));
  ShapeHandle gates;
  TF_RETURN_IF_ERROR(
      Stacked(c, c->MakeShape({d.batch, d.time, three_units}), kDirections, &gates));
  c->set_output(2, gates);
  return absl::OkStatus();
}

template <int kDirections>
absl::Status GradShape(InferenceContext* c) {
  GruDims d;
  TF_RETURN_IF_ERROR(MergeGruDims(c, 3, -1, 4, -1, &d, kDirections));
  DimensionHandle out_units, two_units, three_units;
  TF_RETURN_IF_ERROR(c->Multiply(d.units, kDirections, &out_units));
  TF_RETURN_IF_ERROR(c->Multiply(d.units, 2, &two_units));
  TF_RETURN_IF_ERROR(c->Multiply(d.units, 3, &three_units));
  ShapeHandle seq = c->MakeShape({d.batch, d.time, out_units});
  TF_RETURN_IF_ERROR(c->Merge(c->input(5), seq, &seq));
  // grad_outputs and grad_final_state may be [0]: zero.
  if (c->RankKnown(c->input(7)) && c->Rank(c->input(7)) == 1) {
    DimensionHandle zero;
    TF_RETURN_IF_ERROR(c->WithValue(c->Dim(c->input(7), 0), 0, &zero));
  } else {
    TF_RETURN_IF_ERROR(c->Merge(c->input(7), seq, &seq));
  }
  ShapeHandle grad_wg, grad_bg, grad_wc, grad_bc;
  TF_RETURN_IF_ERROR(Stacked(c, d.wg, kDirections, &grad_wg));
  TF_RETURN_IF_ERROR(Stacked(c, c->MakeShape({two_units}), kDirections, &grad_bg));
  TF_RETURN_IF_ERROR(Stacked(c, d.wc, kDirections, &grad_wc));
  TF_RETURN_IF_ERROR(Stacked(c, c->MakeShape({d.units}), kDirections, &grad_bc));
  c->set_output(0, c->MakeShape({d.batch, d.time, d.input}));
  c->set_output(1, c->input(2));
  c->set_output(2, grad_wg);
  c->set_output(3, grad_bg);
  c->set_output(4, grad_wc);
  c->set_output(5, grad_bc);
  return absl::OkStatus();
}

}  // namespace

// The inputs, outputs and type/cell attrs shared by the one- and two-direction
// ops (the two-direction ones stack each weight [2, ...]).
#define DEEPCTR_OPS_GRU_FORWARD_SIGNATURE                                          \
  Input("x: T")                                                                    \
      .Input("lengths: Tlen")                                                      \
      .Input("att_scores: T")                                                      \
      .Input("wg: T")                                                              \
      .Input("bg: T")                                                              \
      .Input("wc: T")                                                              \
      .Input("bc: T")                                                              \
      .Output("outputs: T")                                                        \
      .Output("final_state: T")                                                    \
      .Output("gates: T")                                                          \
      .Attr("T: {float, double}")                                                  \
      .Attr("Tlen: {int32, int64}")                                                \
      .Attr("cell: {'GRU', 'AGRU', 'AUGRU'} = 'GRU'")
#define DEEPCTR_OPS_GRU_GRAD_SIGNATURE                                             \
  Input("x: T")                                                                    \
      .Input("lengths: Tlen")                                                      \
      .Input("att_scores: T")                                                      \
      .Input("wg: T")                                                              \
      .Input("wc: T")                                                              \
      .Input("outputs: T")                                                         \
      .Input("gates: T")                                                           \
      .Input("grad_outputs: T")                                                    \
      .Input("grad_final_state: T")                                                \
      .Output("grad_x: T")                                                         \
      .Output("grad_att_scores: T")                                                \
      .Output("grad_wg: T")                                                        \
      .Output("grad_bg: T")                                                        \
      .Output("grad_wc: T")                                                        \
      .Output("grad_bc: T")                                                        \
      .Attr("T: {float, double}")                                                  \
      .Attr("Tlen: {int32, int64}")                                                \
      .Attr("cell: {'GRU', 'AGRU', 'AUGRU'} = 'GRU'")

REGISTER_OP("DeepCTR>DynamicGru")
    .DEEPCTR_OPS_GRU_FORWARD_SIGNATURE
    .Attr("reverse: bool = false")
    .SetShapeFn(ForwardShape<1>)
    .Doc(R"doc(
DeepCTR DynamicGRU (DIEN) over x [B, T, E] with lengths [B] or [B, 1] (clamped
to [0, T]); att_scores [B, T] or [B, T, 1] for AGRU/AUGRU, empty for GRU.
Weights in DeepCTR's layout: wg [(E+U), 2U] (reset half, then update half), bg
[2U], wc [(E+U), U], bc [U]. outputs [B, T, U] (0 at t >= len), final_state
[B, U] (the state after step len-1, 0 for len 0), gates [B, T, 3U] (r, z, c of
each valid step, for the gradient; where nothing consumes gates, as in a
serving or predict graph, the kernel neither computes nor sets it). reverse
runs each row from len-1 down to 0 and writes its outputs at their own
positions.
)doc");

REGISTER_OP("DeepCTR>DynamicGruGrad")
    .DEEPCTR_OPS_GRU_GRAD_SIGNATURE
    .Attr("reverse: bool = false")
    .SetShapeFn(GradShape<1>)
    .Doc(R"doc(
BPTT of DeepCTR>DynamicGru from its saved outputs and gates. grad_outputs
[B, T, U] and grad_final_state [B, U] may each be [0], meaning zero (the
gradient of a model that uses only one of the two outputs).
)doc");

REGISTER_OP("DeepCTR>BidirectionalDynamicGru")
    .DEEPCTR_OPS_GRU_FORWARD_SIGNATURE
    .SetShapeFn(ForwardShape<2>)
    .Doc(R"doc(
A forward and a reverse DeepCTR>DynamicGru over the same x, lengths and
att_scores in one op, with the weights stacked [2, ...] (forward first): wg
[2, E+U, 2U], bg [2, 2U], wc [2, E+U, U], bc [2, U]. outputs [B, T, 2U] and
final_state [B, 2U] hold the forward direction's U columns, then the reverse
one's (the concat of the two, without a concat op); gates [2, B, T, 3U].
)doc");

REGISTER_OP("DeepCTR>BidirectionalDynamicGruGrad")
    .DEEPCTR_OPS_GRU_GRAD_SIGNATURE
    .SetShapeFn(GradShape<2>)
    .Doc(R"doc(
BPTT of DeepCTR>BidirectionalDynamicGru. grad_outputs [B, T, 2U] and
grad_final_state [B, 2U] may each be [0] (zero); weight gradients are stacked
like the weights; grad_x and grad_att_scores sum both directions.
)doc");

#undef DEEPCTR_OPS_GRU_FORWARD_SIGNATURE
#undef DEEPCTR_OPS_GRU_GRAD_SIGNATURE

}  // namespace deepctr_ops
