// Op definitions and shape functions of the masked attention softmax.
// The names are a public API: SavedModels store them. Never rename one.
#include <cstdint>
#include <string>

#include "cc/ops/shape_errors.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace deepctr_ops {
namespace {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// scores (input 0) [N, Tq, Tk] and key_valid (input `valid`) [B, Tk]; output 0 = scores' shape.
// N must be heads * B where both are known (any multiple of B when heads is 0).
absl::Status AttentionShape(InferenceContext* c, int valid, int same_as_scores) {
  ShapeHandle scores, key_valid;
  const char* first = valid == 1 ? "scores" : "grad";
  TF_RETURN_IF_ERROR(Named(c->WithRank(c->input(0), 3, &scores),
                           std::string(first) + " must be [heads*batch, Tq, Tk]"));
  TF_RETURN_IF_ERROR(Named(c->WithRank(c->input(valid), 2, &key_valid),
                           "key_valid must be [batch, Tk]"));
  int64_t heads = 0;
  TF_RETURN_IF_ERROR(c->GetAttr("heads", &heads));
  const DimensionHandle rows = c->Dim(scores, 0);
  const DimensionHandle batch = c->Dim(key_valid, 0);
  if (c->ValueKnown(rows) && c->ValueKnown(batch)) {
    const int64_t n = c->Value(rows), b = c->Value(batch);
    const bool ok = heads > 0 ? n == heads * b : (b == 0 ? n == 0 : n % b == 0);
    if (!ok) {
      return absl::InvalidArgumentError(
          "scores " + c->DebugString(scores) + " must have heads" +
          (heads > 0 ? " (" + std::to_string(heads) + ")" : std::string()) +
          " * batch rows for key_valid " + c->DebugString(key_valid));
    }
  }
  DimensionHandle time_k;
  TF_RETURN_IF_ERROR(Named(c->Merge(c->Dim(scores, 2), c->Dim(key_valid, 1), &time_k),
                           "key_valid must be [batch, Tk] with the Tk of " + std::string(first)));
  for (int i = 1; i < same_as_scores; ++i) {
    TF_RETURN_IF_ERROR(
        Named(c->Merge(scores, c->input(i), &scores), "probs must have the shape of grad"));
  }
  TF_RETURN_IF_ERROR(c->ReplaceDim(scores, 2, time_k, &scores));
  c->set_output(0, scores);
  return absl::OkStatus();
}

}  // namespace

// T was added after the float-only first version; its default keeps graphs and
// SavedModels written then loadable.
REGISTER_OP("DeepCTR>AttentionSoftmax")
    .Input("scores: T")
    .Input("key_valid: bool")
    .Output("probs: T")
    .Attr("T: {float, double} = DT_FLOAT")
    .Attr("divisor: float = 1.0")
    .Attr("blinding: bool = false")
    .Attr("heads: int >= 0 = 0")
    .SetShapeFn([](InferenceContext* c) { return AttentionShape(c, 1, 1); })
    .Doc(R"doc(
DeepCTR Transformer's attention softmax. scores [heads*B, Tq, Tk] (row j*B + b
is head j of sample b), key_valid [B, Tk]. Key k is eligible for query q iff
key_valid[b, k] and not (blinding and q == k). probs = softmax over k of
(eligible ? scores / divisor : -2**32 + 1); a row with no eligible key is uniform.
divisor is a float32 attr, converted to T. heads: scores must have heads * B
rows; 0 (the default of graphs written before the attr existed) accepts any
multiple of B.
)doc");

REGISTER_OP("DeepCTR>AttentionSoftmaxGrad")
    .Input("grad: T")
    .Input("probs: T")
    .Input("key_valid: bool")
    .Output("grad_scores: T")
    .Attr("T: {float, double} = DT_FLOAT")
    .Attr("divisor: float = 1.0")
    .Attr("blinding: bool = false")
    .Attr("heads: int >= 0 = 0")
    .SetShapeFn([](InferenceContext* c) { return AttentionShape(c, 2, 2); });

}  // namespace deepctr_ops
