// Op definitions and shape functions of the fused embedding pooling family.
// The names are a public API: SavedModels store them. Never rename one.
#include <string>
#include <vector>

#include "cc/ops/shape_errors.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace deepctr_ops {
namespace {

using ::tensorflow::DataType;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeAndType;
using ::tensorflow::shape_inference::ShapeHandle;

constexpr char kModeAttr[] = "mode: {'sum', 'mean', 'max'}";
constexpr char kValueTypes[] = "T: {float, double, half, bfloat16}";
// The table: a tensor of T, or a resource variable of T read in place.
constexpr char kTableTypes[] = "Ttable: {float, double, half, bfloat16, resource}";
constexpr char kIdTypes[] = "Tid: {int32, int64}";
constexpr char kTableShape[] = "table must be [vocabulary, embedding]";

enum class Layout { kLengths, kMask, kRagged };

// The table's [V, E]: the tensor's shape, or the resource variable's.
absl::Status TableShape(InferenceContext* c, ShapeHandle* table) {
  DataType table_type, value_type;
  TF_RETURN_IF_ERROR(c->GetAttr("Ttable", &table_type));
  TF_RETURN_IF_ERROR(c->GetAttr("T", &value_type));
  if (table_type != ::tensorflow::DT_RESOURCE) {
    if (table_type != value_type) {
      return absl::InvalidArgumentError(
          "table's dtype must be the op's T (the dtype of weights and of the output)");
    }
    return Named(c->WithRank(c->input(0), 2, table), kTableShape);
  }
  const std::vector<ShapeAndType>* handle = c->input_handle_shapes_and_types(0);
  if (handle == nullptr || handle->empty()) {
    *table = c->UnknownShapeOfRank(2);
    return absl::OkStatus();
  }
  if ((*handle)[0].dtype != value_type) {
    return absl::InvalidArgumentError(
        "table variable's dtype must be the op's T (the dtype of weights and of the output)");
  }
  return Named(c->WithRank((*handle)[0].shape, 2, table), kTableShape);
}

// lengths is [B] or [B, 1]; merges its B into `batch`.
absl::Status MergeLengths(InferenceContext* c, int input, DimensionHandle* batch) {
  ShapeHandle lengths = c->input(input);
  if (!c->RankKnown(lengths)) return absl::OkStatus();
  const int rank = c->Rank(lengths);
  constexpr char kLengths[] = "lengths must have shape [batch] or [batch, 1] like ids";
  if (rank != 1 && rank != 2) {
    return absl::InvalidArgumentError(std::string(kLengths) + ", got " +
                                      c->DebugString(lengths));
  }
  if (rank == 2) {
    DimensionHandle one;
    TF_RETURN_IF_ERROR(Named(c->WithValue(c->Dim(lengths, 1), 1, &one), kLengths));
  }
  return Named(c->Merge(*batch, c->Dim(lengths, 0), batch), kLengths);
}

// Checks ids, the row description and weights; sets batch and the shape the
// weights (and their gradient) have.
absl::Status RowsShape(InferenceContext* c, Layout layout, DimensionHandle* batch,
                       ShapeHandle* weights_shape) {
  ShapeHandle ids;
  if (layout == Layout::kRagged) {
    TF_RETURN_IF_ERROR(
        Named(c->WithRank(c->input(1), 1, &ids), "ids must be the flat ragged ids [num_ids]"));
    ShapeHandle splits;
    TF_RETURN_IF_ERROR(
        Named(c->WithRank(c->input(2), 1, &splits), "row_splits must be a vector [batch + 1]"));
    TF_RETURN_IF_ERROR(c->Subtract(c->Dim(splits, 0), 1, batch));
  } else {
    TF_RETURN_IF_ERROR(Named(c->WithRank(c->input(1), 2, &ids), "ids must be [batch, time]"));
    *batch = c->Dim(ids, 0);
    if (layout == Layout::kMask) {
      ShapeHandle mask;
      constexpr char kMask[] = "mask must be [batch, time] like ids";
      TF_RETURN_IF_ERROR(Named(c->WithRank(c->input(2), 2, &mask), kMask));
      TF_RETURN_IF_ERROR(Named(c->Merge(ids, mask, &ids), kMask));
      *batch = c->Dim(ids, 0);
    } else {
      TF_RETURN_IF_ERROR(MergeLengths(c, 2, batch));
    }
  }
  bool weighted = false;
  TF_RETURN_IF_ERROR(c->GetAttr("weighted", &weighted));
  if (weighted) {
    TF_RETURN_IF_ERROR(Named(c->Merge(c->input(3), ids, weights_shape),
                             "weights must have the shape of ids when weighted"));
  } else {
    TF_RETURN_IF_ERROR(Named(c->Merge(c->input(3), c->MakeShape({0}), weights_shape),
                             "weights must be the empty [0] when not weighted"));
  }
  return absl::OkStatus();
}

absl::Status ForwardShape(InferenceContext* c, Layout layout) {
  ShapeHandle table, weights;
  TF_RETURN_IF_ERROR(TableShape(c, &table));
  DimensionHandle batch;
  TF_RETURN_IF_ERROR(RowsShape(c, layout, &batch, &weights));
  ShapeHandle pooled = c->MakeShape({batch, c->MakeDim(1), c->Dim(table, 1)});
  c->set_output(0, pooled);
  std::string mode;
  TF_RETURN_IF_ERROR(c->GetAttr("mode", &mode));
  c->set_output(1, mode == "max" ? pooled : c->MakeShape({0}));
  return absl::OkStatus();
}

// Inputs 4 (argmax) and 5 (grad) come after the forward's; outputs are the
// table gradient's values [K, E] and indices [K] (K known only at run time)
// and the weights' gradient.
absl::Status GradShape(InferenceContext* c, Layout layout) {
  ShapeHandle table, weights;
  TF_RETURN_IF_ERROR(TableShape(c, &table));
  DimensionHandle batch;
  TF_RETURN_IF_ERROR(RowsShape(c, layout, &batch, &weights));
  ShapeHandle grad;
  constexpr char kGrad[] = "grad must be the pooled shape [batch, 1, embedding]";
  TF_RETURN_IF_ERROR(Named(c->WithRank(c->input(5), 3, &grad), kGrad));
  DimensionHandle one;
  TF_RETURN_IF_ERROR(Named(c->WithValue(c->Dim(grad, 1), 1, &one), kGrad));
  TF_RETURN_IF_ERROR(Named(c->Merge(batch, c->Dim(grad, 0), &batch), kGrad));
  DimensionHandle depth;
  TF_RETURN_IF_ERROR(Named(c->Merge(c->Dim(table, 1), c->Dim(grad, 2), &depth), kGrad));
  std::string mode;
  TF_RETURN_IF_ERROR(c->GetAttr("mode", &mode));
  if (mode == "max") {
    ShapeHandle argmax;
    TF_RETURN_IF_ERROR(Named(c->Merge(c->input(4), grad, &argmax),
                             "argmax must have the shape of grad for mode 'max'"));
  }
  c->set_output(0, c->MakeShape({c->UnknownDim(), depth}));
  c->set_output(1, c->MakeShape({c->UnknownDim()}));
  c->set_output(2, weights);
  return absl::OkStatus();
}

}  // namespace

#define DEEPCTR_OPS_EMBEDDING_POOL_ATTRS                 \
  Attr(kModeAttr)                                        \
      .Attr("mask_zero: bool = false")                   \
      .Attr("weighted: bool = false")                    \
      .Attr(kValueTypes)                                 \
      .Attr(kTableTypes)                                 \
      .Attr(kIdTypes)

REGISTER_OP("DeepCTR>EmbeddingSequencePool")
    .Input("table: Ttable")
    .Input("ids: Tid")
    .Input("lengths: Tlen")
    .Input("weights: T")
    .Output("pooled: T")
    .Output("argmax: int32")
    .DEEPCTR_OPS_EMBEDDING_POOL_ATTRS
    .Attr("Tlen: {int32, int64} = DT_INT32")
    .SetShapeFn([](InferenceContext* c) { return ForwardShape(c, Layout::kLengths); })
    .Doc(R"doc(
Looks up table rows for ids [B, T] and pools the first lengths[b] steps of each
row (clamped to [0, T]) into [B, 1, E]: Keras Embedding followed by DeepCTR's
SequencePoolingLayer, without building [B, T, E]. mask_zero: steps with id 0
are padding too, and the mean divides by the valid count. weighted: weights
[B, T] multiply each step's row (else weights is the empty [0]). table is a
[V, E] tensor or a resource variable, read in place. argmax as for
DeepCTR>SequencePool. Only ids that are read are checked; on CPU one outside
[0, V) is an InvalidArgument, on GPU it reads as zeros.
)doc");

REGISTER_OP("DeepCTR>EmbeddingSequencePoolGrad")
    .Input("table: Ttable")
    .Input("ids: Tid")
    .Input("lengths: Tlen")
    .Input("weights: T")
    .Input("argmax: int32")
    .Input("grad: T")
    .Output("grad_table_values: T")
    .Output("grad_table_indices: Tid")
    .Output("grad_weights: T")
    .DEEPCTR_OPS_EMBEDDING_POOL_ATTRS
    .Attr("Tlen: {int32, int64} = DT_INT32")
    .SetShapeFn([](InferenceContext* c) { return GradShape(c, Layout::kLengths); })
    .Doc(R"doc(
Gradient of DeepCTR>EmbeddingSequencePool (likewise the Masked and Ragged
grads). The table's gradient is the IndexedSlices (grad_table_values [K, E],
grad_table_indices [K]): one row per step the forward pooled, in (row, step)
order, not de-duplicated. grad_weights has the shape of weights.
)doc");

REGISTER_OP("DeepCTR>MaskedEmbeddingSequencePool")
    .Input("table: Ttable")
    .Input("ids: Tid")
    .Input("mask: bool")
    .Input("weights: T")
    .Output("pooled: T")
    .Output("argmax: int32")
    .DEEPCTR_OPS_EMBEDDING_POOL_ATTRS
    .SetShapeFn([](InferenceContext* c) { return ForwardShape(c, Layout::kMask); })
    .Doc(R"doc(
DeepCTR>EmbeddingSequencePool over the steps where mask [B, T] is true (any
pattern); the mean divides by the number of valid steps.
)doc");

REGISTER_OP("DeepCTR>MaskedEmbeddingSequencePoolGrad")
    .Input("table: Ttable")
    .Input("ids: Tid")
    .Input("mask: bool")
    .Input("weights: T")
    .Input("argmax: int32")
    .Input("grad: T")
    .Output("grad_table_values: T")
    .Output("grad_table_indices: Tid")
    .Output("grad_weights: T")
    .DEEPCTR_OPS_EMBEDDING_POOL_ATTRS
    .SetShapeFn([](InferenceContext* c) { return GradShape(c, Layout::kMask); });

REGISTER_OP("DeepCTR>RaggedEmbeddingSequencePool")
    .Input("table: Ttable")
    .Input("ids: Tid")
    .Input("row_splits: Tsplits")
    .Input("weights: T")
    .Output("pooled: T")
    .Output("argmax: int32")
    .DEEPCTR_OPS_EMBEDDING_POOL_ATTRS
    .Attr("Tsplits: {int32, int64} = DT_INT64")
    .SetShapeFn([](InferenceContext* c) { return ForwardShape(c, Layout::kRagged); })
    .Doc(R"doc(
DeepCTR>EmbeddingSequencePool over ragged ids: flat ids [N] and row_splits
[B + 1]. With mask_zero, id-0 steps are dropped; a row left with none pools
like an empty ragged row (-1e9 for max).
)doc");

REGISTER_OP("DeepCTR>RaggedEmbeddingSequencePoolGrad")
    .Input("table: Ttable")
    .Input("ids: Tid")
    .Input("row_splits: Tsplits")
    .Input("weights: T")
    .Input("argmax: int32")
    .Input("grad: T")
    .Output("grad_table_values: T")
    .Output("grad_table_indices: Tid")
    .Output("grad_weights: T")
    .DEEPCTR_OPS_EMBEDDING_POOL_ATTRS
    .Attr("Tsplits: {int32, int64} = DT_INT64")
    .SetShapeFn([](InferenceContext* c) { return GradShape(c, Layout::kRagged); });

#undef DEEPCTR_OPS_EMBEDDING_POOL_ATTRS

}  // namespace deepctr_ops
