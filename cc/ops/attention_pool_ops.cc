// Op definitions and shape functions of the fused DIN attention pooling.
// The names are a public API: SavedModels store them. Never rename one.
#include <string>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace deepctr_ops {
namespace {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

constexpr int kQuery = 0, kKeys = 1, kRows = 2, kKernels = 3;

// c->Merge / WithRank / WithValue with an error that names the argument.
absl::Status Named(absl::Status status, const std::string& message) {
  if (status.ok()) return status;
  return absl::InvalidArgumentError(message + " (" + std::string(status.message()) + ")");
}

std::string KernelName(int i, int n) {
  return i + 1 < n ? "kernel" + std::to_string(i) : "kernel (the final score layer)";
}

std::string BiasName(int i, int n) {
  return i + 1 < n ? "bias" + std::to_string(i) : "bias (the final score layer)";
}

// Merges query [B, 1, E], keys [B, T, E], the rows input (lengths [B] or
// [B, 1]; mask [B, T]) and the kernel/bias chain; sets B, T, E.
absl::Status MergeInputs(InferenceContext* c, DimensionHandle* batch, DimensionHandle* time,
                         DimensionHandle* depth) {
  ShapeHandle query, keys;
  TF_RETURN_IF_ERROR(Named(c->WithRank(c->input(kQuery), 3, &query),
                           "query must be rank 3 [batch, 1, embedding]"));
  TF_RETURN_IF_ERROR(Named(c->WithRank(c->input(kKeys), 3, &keys),
                           "keys must be rank 3 [batch, T, embedding]"));
  DimensionHandle one;
  TF_RETURN_IF_ERROR(Named(c->WithValue(c->Dim(query, 1), 1, &one),
                           "query must have shape [batch, 1, embedding] (T = 1)"));
  TF_RETURN_IF_ERROR(Named(c->Merge(c->Dim(query, 0), c->Dim(keys, 0), batch),
                           "query and keys must have the same batch size"));
  TF_RETURN_IF_ERROR(Named(c->Merge(c->Dim(query, 2), c->Dim(keys, 2), depth),
                           "query and keys must have the same embedding size E"));
  *time = c->Dim(keys, 1);
  ShapeHandle rows = c->input(kRows);
  tensorflow::DataType rows_type;
  TF_RETURN_IF_ERROR(c->GetAttr("Trows", &rows_type));
  if (rows_type == tensorflow::DT_BOOL) {
    const std::string message = "mask must have shape [batch, T] matching keys";
    TF_RETURN_IF_ERROR(Named(c->WithRank(rows, 2, &rows), message));
    TF_RETURN_IF_ERROR(Named(c->Merge(*batch, c->Dim(rows, 0), batch), message));
    TF_RETURN_IF_ERROR(Named(c->Merge(*time, c->Dim(rows, 1), time), message));
  } else if (c->RankKnown(rows)) {
    const std::string message = "lengths must have shape [batch] or [batch, 1] matching keys";
    const int rank = c->Rank(rows);
    if (rank != 1 && rank != 2) {
      return absl::InvalidArgumentError(message + ", got " + c->DebugString(rows));
    }
    if (rank == 2) TF_RETURN_IF_ERROR(Named(c->WithValue(c->Dim(rows, 1), 1, &one), message));
    TF_RETURN_IF_ERROR(Named(c->Merge(*batch, c->Dim(rows, 0), batch), message));
  }
  int n = 0;
  TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
  DimensionHandle in;
  TF_RETURN_IF_ERROR(c->Multiply(*depth, 4, &in));
  for (int i = 0; i < n; ++i) {
    const std::string kname = KernelName(i, n), bname = BiasName(i, n);
    ShapeHandle kernel, bias;
    TF_RETURN_IF_ERROR(Named(c->WithRank(c->input(kKernels + i), 2, &kernel),
                             kname + " must be rank 2"));
    TF_RETURN_IF_ERROR(Named(c->WithRank(c->input(kKernels + n + i), 1, &bias),
                             bname + " must be rank 1"));
    DimensionHandle merged;
    TF_RETURN_IF_ERROR(Named(c->Merge(in, c->Dim(kernel, 0), &merged),
                             kname + ".shape[0] must chain: 4 * E for kernel0, else the "
                             "previous layer's units"));
    if (i == 0 && c->ValueKnown(merged) && !c->ValueKnown(*depth)) {
      // kernel0 is [4E, h1]: it fixes E when the inputs do not.
      if (c->Value(merged) % 4 != 0) {
        return absl::InvalidArgumentError("kernel0.shape[0] must be 4 * E, got " +
                                          std::to_string(c->Value(merged)));
      }
      DimensionHandle e = c->MakeDim(c->Value(merged) / 4);
      TF_RETURN_IF_ERROR(c->Merge(*depth, e, depth));
    }
    TF_RETURN_IF_ERROR(Named(c->Merge(c->Dim(kernel, 1), c->Dim(bias, 0), &in),
                             bname + " must have shape [" + kname + ".shape[1]]"));
  }
  DimensionHandle last;
  TF_RETURN_IF_ERROR(Named(c->WithValue(in, 1, &last),
                           KernelName(n - 1, n) + " must have shape [units, 1]"));
  return absl::OkStatus();
}

absl::Status ForwardShape(InferenceContext* c) {
  DimensionHandle batch, time, depth;
  TF_RETURN_IF_ERROR(MergeInputs(c, &batch, &time, &depth));
  bool return_score = false;
  TF_RETURN_IF_ERROR(c->GetAttr("return_score", &return_score));
  c->set_output(0, c->MakeShape({batch, c->MakeDim(1), return_score ? time : depth}));
  c->set_output(1, c->Vector(c->UnknownDim()));
  return absl::OkStatus();
}

absl::Status GradShape(InferenceContext* c) {
  DimensionHandle batch, time, depth;
  TF_RETURN_IF_ERROR(MergeInputs(c, &batch, &time, &depth));
  int n = 0;
  bool return_score = false;
  TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
  TF_RETURN_IF_ERROR(c->GetAttr("return_score", &return_score));
  ShapeHandle activations, grad;
  TF_RETURN_IF_ERROR(Named(c->WithRank(c->input(kKernels + 2 * n), 1, &activations),
                           "activations must be the forward's activations output (a vector)"));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(kKernels + 2 * n + 1), 3, &grad));
  TF_RETURN_IF_ERROR(c->Merge(
      grad, c->MakeShape({batch, c->MakeDim(1), return_score ? time : depth}), &grad));
  c->set_output(0, c->MakeShape({batch, c->MakeDim(1), depth}));
  c->set_output(1, c->MakeShape({batch, time, depth}));
  for (int i = 0; i < 2 * n; ++i) c->set_output(2 + i, c->input(kKernels + i));
  return absl::OkStatus();
}

constexpr char kActivationAttr[] = "activation: {'sigmoid', 'relu', 'tanh', 'linear'} = 'sigmoid'";

}  // namespace

REGISTER_OP("DeepCTR>AttentionPool")
    .Input("query: T")
    .Input("keys: T")
    .Input("rows: Trows")
    .Input("kernels: N * T")
    .Input("biases: N * T")
    .Output("output: T")
    .Output("activations: T")
    .Attr("T: {float, double}")
    .Attr("Trows: {int32, int64, bool}")
    .Attr("N: int >= 1")
    .Attr(kActivationAttr)
    .Attr("weight_normalization: bool = false")
    .Attr("return_score: bool = false")
    .SetShapeFn(ForwardShape)
    .Doc(R"doc(
DeepCTR AttentionSequencePoolingLayer (DIN) in one op. query [B, 1, E], keys
[B, T, E], rows: lengths [B] or [B, 1] (int32/int64, clamped to [0, T]) or a
bool mask [B, T]. kernels/biases: LocalActivationUnit's kernel0..kernel{H-1}
then its final kernel [h_last or 4E, 1]; bias0..bias{H-1} then bias [1].
Scores are the MLP of [q, k, q - k, q * k] (the first layer folded per row,
never built), set to -2**32 + 1 (weight_normalization, then softmax over T) or
0 at invalid steps. Output [B, 1, T] scores (return_score) or [B, 1, E], the
score-weighted sum of the keys.

activations: opaque, for the gradient op only. On the CPU, when consumed, the
valid steps' MLP activations (B * T * slot elements), so that the gradient
need not recompute them; otherwise (GPU, inference graphs) empty.
)doc");

REGISTER_OP("DeepCTR>AttentionPoolGrad")
    .Input("query: T")
    .Input("keys: T")
    .Input("rows: Trows")
    .Input("kernels: N * T")
    .Input("biases: N * T")
    .Input("activations: T")
    .Input("grad: T")
    .Output("grad_query: T")
    .Output("grad_keys: T")
    .Output("grad_kernels: N * T")
    .Output("grad_biases: N * T")
    .Attr("T: {float, double}")
    .Attr("Trows: {int32, int64, bool}")
    .Attr("N: int >= 1")
    .Attr(kActivationAttr)
    .Attr("weight_normalization: bool = false")
    .Attr("return_score: bool = false")
    .SetShapeFn(GradShape)
    .Doc(R"doc(
Gradient of DeepCTR>AttentionPool for the upstream grad (the output's shape):
the gradients of query, keys and every kernel and bias. activations: the
forward's activations output, or an empty vector (then recomputed). Not
differentiable itself (no second-order gradient).
)doc");

}  // namespace deepctr_ops
