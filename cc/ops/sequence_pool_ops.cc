// Op definitions and shape functions of the sequence pooling family.
// The names are a public API: SavedModels store them. Never rename one.
#include <string>

#include "cc/ops/shape_errors.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace deepctr_ops {
namespace {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

constexpr char kModeAttr[] = "mode: {'sum', 'mean', 'max'}";
constexpr char kValueTypes[] = "T: {float, double, half, bfloat16}";

// lengths is [B] or [B, 1]; returns its B.
absl::Status LengthsBatch(InferenceContext* c, int input, DimensionHandle* batch) {
  ShapeHandle lengths = c->input(input);
  if (!c->RankKnown(lengths)) {
    *batch = c->UnknownDim();
    return absl::OkStatus();
  }
  const int rank = c->Rank(lengths);
  if (rank != 1 && rank != 2) {
    return absl::InvalidArgumentError(
        "lengths must have shape [batch] or [batch, 1], got " + c->DebugString(lengths));
  }
  if (rank == 2) {
    DimensionHandle one;
    TF_RETURN_IF_ERROR(Named(c->WithValue(c->Dim(lengths, 1), 1, &one),
                             "lengths must have shape [batch] or [batch, 1]"));
  }
  *batch = c->Dim(lengths, 0);
  return absl::OkStatus();
}

// Output 1, argmax: [B, 1, E] for mode "max", else the empty [0].
absl::Status SetArgmaxShape(InferenceContext* c, ShapeHandle pooled) {
  std::string mode;
  TF_RETURN_IF_ERROR(c->GetAttr("mode", &mode));
  c->set_output(1, mode == "max" ? pooled : c->MakeShape({0}));
  return absl::OkStatus();
}

// Dense forward: values [B, T, E], lengths or mask -> pooled [B, 1, E].
absl::Status DenseForwardShape(InferenceContext* c, bool is_mask) {
  ShapeHandle values;
  TF_RETURN_IF_ERROR(
      Named(c->WithRank(c->input(0), 3, &values), "values must be [batch, time, embedding]"));
  DimensionHandle batch = c->Dim(values, 0);
  if (is_mask) {
    ShapeHandle mask;
    constexpr char kMask[] = "mask must be [batch, time] like values";
    TF_RETURN_IF_ERROR(Named(c->WithRank(c->input(1), 2, &mask), kMask));
    TF_RETURN_IF_ERROR(Named(c->Merge(batch, c->Dim(mask, 0), &batch), kMask));
    DimensionHandle time;
    TF_RETURN_IF_ERROR(Named(c->Merge(c->Dim(values, 1), c->Dim(mask, 1), &time), kMask));
  } else {
    DimensionHandle lengths_batch;
    TF_RETURN_IF_ERROR(LengthsBatch(c, 1, &lengths_batch));
    TF_RETURN_IF_ERROR(Named(c->Merge(batch, lengths_batch, &batch),
                             "lengths must have the batch size of values"));
  }
  c->set_output(0, c->MakeShape({batch, c->MakeDim(1), c->Dim(values, 2)}));
  return SetArgmaxShape(c, c->output(0));
}

// Ragged forward: values [N, E], row_splits [B + 1] -> pooled [B, 1, E].
absl::Status RaggedForwardShape(InferenceContext* c) {
  ShapeHandle values, splits;
  TF_RETURN_IF_ERROR(Named(c->WithRank(c->input(0), 2, &values),
                           "values must be the flat ragged values [num_values, embedding]"));
  TF_RETURN_IF_ERROR(
      Named(c->WithRank(c->input(1), 1, &splits), "row_splits must be a vector [batch + 1]"));
  DimensionHandle batch;
  TF_RETURN_IF_ERROR(c->Subtract(c->Dim(splits, 0), 1, &batch));
  c->set_output(0, c->MakeShape({batch, c->MakeDim(1), c->Dim(values, 1)}));
  return SetArgmaxShape(c, c->output(0));
}

enum class GradLayout { kLengths, kMask, kRagged };

// Every gradient: grad_values has the shape of values; grad is [B, 1, E] and,
// for max, so is argmax. B and E of grad are merged with those of values and
// of the row description (lengths [B] / mask [B, T] / row_splits [B + 1]).
absl::Status GradShape(InferenceContext* c, GradLayout layout) {
  ShapeHandle grad;
  constexpr char kGrad[] = "grad must be the pooled shape [batch, 1, embedding] of values";
  TF_RETURN_IF_ERROR(Named(c->WithRank(c->input(3), 3, &grad), kGrad));
  DimensionHandle one;
  TF_RETURN_IF_ERROR(Named(c->WithValue(c->Dim(grad, 1), 1, &one), kGrad));
  std::string mode;
  TF_RETURN_IF_ERROR(c->GetAttr("mode", &mode));
  if (mode == "max") {
    TF_RETURN_IF_ERROR(Named(c->Merge(c->input(2), grad, &grad),
                             "argmax must have the shape of grad for mode 'max'"));
  }
  DimensionHandle batch = c->Dim(grad, 0);
  DimensionHandle depth = c->Dim(grad, 2);
  ShapeHandle values;
  if (layout == GradLayout::kRagged) {
    TF_RETURN_IF_ERROR(Named(c->WithRank(c->input(0), 2, &values),
                             "values must be the flat ragged values [num_values, embedding]"));
    ShapeHandle splits;
    TF_RETURN_IF_ERROR(
        Named(c->WithRank(c->input(1), 1, &splits), "row_splits must be a vector [batch + 1]"));
    DimensionHandle splits_batch;
    TF_RETURN_IF_ERROR(c->Subtract(c->Dim(splits, 0), 1, &splits_batch));
    TF_RETURN_IF_ERROR(Named(c->Merge(batch, splits_batch, &batch), kGrad));
    TF_RETURN_IF_ERROR(Named(c->Merge(depth, c->Dim(values, 1), &depth), kGrad));
    TF_RETURN_IF_ERROR(c->ReplaceDim(values, 1, depth, &values));
  } else {
    TF_RETURN_IF_ERROR(
        Named(c->WithRank(c->input(0), 3, &values), "values must be [batch, time, embedding]"));
    TF_RETURN_IF_ERROR(Named(c->Merge(batch, c->Dim(values, 0), &batch), kGrad));
    TF_RETURN_IF_ERROR(Named(c->Merge(depth, c->Dim(values, 2), &depth), kGrad));
    DimensionHandle time = c->Dim(values, 1);
    if (layout == GradLayout::kMask) {
      ShapeHandle mask;
      constexpr char kMask[] = "mask must be [batch, time] like values";
      TF_RETURN_IF_ERROR(Named(c->WithRank(c->input(1), 2, &mask), kMask));
      TF_RETURN_IF_ERROR(Named(c->Merge(batch, c->Dim(mask, 0), &batch), kMask));
      TF_RETURN_IF_ERROR(Named(c->Merge(time, c->Dim(mask, 1), &time), kMask));
    } else {
      DimensionHandle lengths_batch;
      TF_RETURN_IF_ERROR(LengthsBatch(c, 1, &lengths_batch));
      TF_RETURN_IF_ERROR(Named(c->Merge(batch, lengths_batch, &batch),
                               "lengths must have the batch size of values"));
    }
    values = c->MakeShape({batch, time, depth});
  }
  c->set_output(0, values);
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("DeepCTR>SequencePool")
    .Input("values: T")
    .Input("lengths: Tlen")
    .Output("pooled: T")
    .Output("argmax: int32")
    .Attr(kModeAttr)
    .Attr(kValueTypes)
    .Attr("Tlen: {int32, int64} = DT_INT32")
    .SetShapeFn([](InferenceContext* c) { return DenseForwardShape(c, false); })
    .Doc(R"doc(
Pools values [B, T, E] over the first lengths[b] steps (clamped to [0, T]) into
[B, 1, E], with DeepCTR SequencePoolingLayer's sum/mean/max semantics.

argmax: for mode "max", [B, 1, E]: the step t of the max when exactly one step
holds it, -1 when not a single step (tied maxima, as in a row with no valid
step, whose padded steps all compete shifted by -1e9), -2 when the row has no
step at all (T == 0). For sum and mean, an empty [0]. It feeds the gradient op;
in a graph where nothing consumes it (inference), the max forward skips it.
)doc");

REGISTER_OP("DeepCTR>SequencePoolGrad")
    .Input("values: T")
    .Input("lengths: Tlen")
    .Input("argmax: int32")
    .Input("grad: T")
    .Output("grad_values: T")
    .Attr(kModeAttr)
    .Attr(kValueTypes)
    .Attr("Tlen: {int32, int64} = DT_INT32")
    .SetShapeFn([](InferenceContext* c) { return GradShape(c, GradLayout::kLengths); })
    .Doc(R"doc(
Gradient of DeepCTR>SequencePool (likewise the Masked and Ragged grads). argmax
is the forward's argmax output, read only for mode "max": a column with
argmax >= 0 gets grad at that step and 0 elsewhere without reading values;
only columns coded -1 re-read their steps and split grad evenly over the ties.
)doc");

REGISTER_OP("DeepCTR>MaskedSequencePool")
    .Input("values: T")
    .Input("mask: bool")
    .Output("pooled: T")
    .Output("argmax: int32")
    .Attr(kModeAttr)
    .Attr(kValueTypes)
    .SetShapeFn([](InferenceContext* c) { return DenseForwardShape(c, true); })
    .Doc(R"doc(
Pools values [B, T, E] over the steps where mask [B, T] is true (any pattern).
argmax as for DeepCTR>SequencePool.
)doc");

REGISTER_OP("DeepCTR>MaskedSequencePoolGrad")
    .Input("values: T")
    .Input("mask: bool")
    .Input("argmax: int32")
    .Input("grad: T")
    .Output("grad_values: T")
    .Attr(kModeAttr)
    .Attr(kValueTypes)
    .SetShapeFn([](InferenceContext* c) { return GradShape(c, GradLayout::kMask); });

REGISTER_OP("DeepCTR>RaggedSequencePool")
    .Input("values: T")
    .Input("row_splits: Tsplits")
    .Output("pooled: T")
    .Output("argmax: int32")
    .Attr(kModeAttr)
    .Attr(kValueTypes)
    .Attr("Tsplits: {int32, int64} = DT_INT64")
    .SetShapeFn(RaggedForwardShape)
    .Doc(R"doc(
Pools the rows of a ragged [B, None, E] tensor given as flat values [N, E] and
row_splits [B + 1] into [B, 1, E]. An empty row pools like a zero-padded one.
argmax as for DeepCTR>SequencePool, t relative to row_splits[b]; -2 for an
empty row.
)doc");

REGISTER_OP("DeepCTR>RaggedSequencePoolGrad")
    .Input("values: T")
    .Input("row_splits: Tsplits")
    .Input("argmax: int32")
    .Input("grad: T")
    .Output("grad_values: T")
    .Attr(kModeAttr)
    .Attr(kValueTypes)
    .Attr("Tsplits: {int32, int64} = DT_INT64")
    .SetShapeFn([](InferenceContext* c) { return GradShape(c, GradLayout::kRagged); });

}  // namespace deepctr_ops
