// pybind11 entry `attention_pool` of deepctr_ops._kernels: the TF-free DIN
// attention-pooling kernels on numpy arrays (CPU always, GPU when built).
#include "cc/python_bindings/attention_pool_bindings.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "cc/kernels/attention_pool.h"
#include "cc/kernels/parallel_for.h"
#include "cc/python_bindings/binding_utils.h"

#if DEEPCTR_OPS_WITH_CUDA
#include "cc/python_bindings/gpu_attention_pool_runner.h"
#endif

namespace py = pybind11;

namespace deepctr_ops {
namespace bindings {
namespace {

using kernels::AttentionPoolSpec;
using kernels::AttentionWeightGrads;
using kernels::AttentionWeights;
using kernels::PoolRows;
using kernels::RowLayout;

struct Inputs {
  AttentionPoolSpec spec;
  bool gpu = false;
  int threads = 0;
  int repeats = 1;
  py::array query, keys, rows, grad, activations;
  bool has_grad = false;
  bool has_activations = false;     // Backward: the forward's saved activations given.
  bool return_activations = false;  // Forward: also return them.
  std::vector<py::array> kernels, biases;
};

template <typename T, typename Index>
py::tuple Run(const Inputs& in) {
  PoolRows<Index> rows;
  rows.batch = in.keys.shape(0);
  rows.max_time = in.keys.shape(1);
  rows.depth = in.keys.shape(2);
  rows.num_steps = rows.batch * rows.max_time;
  if (DtypeName(in.rows) == "bool") {
    rows.layout = RowLayout::kMask;
    if (in.rows.ndim() != 2 || in.rows.shape(0) != rows.batch ||
        in.rows.shape(1) != rows.max_time) {
      throw py::value_error("mask must have shape [batch, T] like keys");
    }
    rows.mask = static_cast<const bool*>(in.rows.data());
  } else {
    rows.layout = RowLayout::kLengths;
    if (in.rows.size() != rows.batch) throw py::value_error("lengths must have batch entries");
    rows.lengths = static_cast<const Index*>(in.rows.data());
  }
  AttentionWeights<T> w;
  for (size_t i = 0; i < in.kernels.size(); ++i) {
    w.kernels[i] = static_cast<const T*>(in.kernels[i].data());
    w.biases[i] = static_cast<const T*>(in.biases[i].data());
  }
  const T* q = static_cast<const T*>(in.query.data());
  const T* k = static_cast<const T*>(in.keys.data());
  const int64_t width = kernels::AttentionPoolOutputWidth(in.spec, rows);
  double ms = 0.0;
  const int64_t activation_size =
      rows.batch * rows.max_time * kernels::AttentionPoolActivationSlot<T>(in.spec);
  if (!in.has_grad) {
    py::array out(in.keys.dtype(), std::vector<py::ssize_t>{rows.batch, 1, width});
    T* o = static_cast<T*>(out.mutable_data());
    py::array saved(in.keys.dtype(), std::vector<py::ssize_t>{
                                         in.return_activations ? activation_size : 0});
    T* a = in.return_activations ? static_cast<T*>(saved.mutable_data()) : nullptr;
    if (in.gpu && in.return_activations) {
      throw py::value_error("return_activations is CPU only (the GPU recomputes them)");
    }
    {
      py::gil_scoped_release release;
      if (in.gpu) {
#if DEEPCTR_OPS_WITH_CUDA
        ThrowIfError(RunAttentionPoolOnGpu<T, Index>(in.spec, rows, q, k, w, nullptr, o, nullptr,
                                              nullptr, AttentionWeightGrads<T>(), in.repeats,
                                              &ms));
#endif
      } else {
        ThrowIfError(kernels::AttentionPoolForwardCpu(
            in.spec, rows, q, k, w, o, a, kernels::ThreadsParallelFor(ResolveThreads(in.threads))));
      }
    }
    if (in.return_activations) return py::make_tuple(out, ms, saved);
    return py::make_tuple(out, ms);
  }
  if (in.grad.size() != rows.batch * width || !in.grad.dtype().is(in.keys.dtype())) {
    throw py::value_error("grad must have the output's shape [batch, 1, " +
                          std::to_string(width) + "] and the dtype of keys");
  }
  py::array grad_query(in.query.dtype(), std::vector<py::ssize_t>(
                                             in.query.shape(), in.query.shape() + 3));
  py::array grad_keys(in.keys.dtype(), std::vector<py::ssize_t>(
                                           in.keys.shape(), in.keys.shape() + 3));
  py::list grad_kernels, grad_biases;
  AttentionWeightGrads<T> wg;
  for (size_t i = 0; i < in.kernels.size(); ++i) {
    py::array gk(in.kernels[i].dtype(), std::vector<py::ssize_t>(
                                            in.kernels[i].shape(), in.kernels[i].shape() + 2));
    py::array gb(in.biases[i].dtype(), std::vector<py::ssize_t>(
                                           in.biases[i].shape(), in.biases[i].shape() + 1));
    wg.kernels[i] = static_cast<T*>(gk.mutable_data());
    wg.biases[i] = static_cast<T*>(gb.mutable_data());
    grad_kernels.append(gk);
    grad_biases.append(gb);
  }
  const T* g = static_cast<const T*>(in.grad.data());
  const T* saved = nullptr;
  if (in.has_activations) {
    if (in.gpu) throw py::value_error("activations are CPU only (the GPU recomputes them)");
    if (in.activations.size() != activation_size || !in.activations.dtype().is(in.keys.dtype())) {
      throw py::value_error("activations must be the forward's (" +
                            std::to_string(activation_size) + " elements of the keys' dtype)");
    }
    saved = static_cast<const T*>(in.activations.data());
  }
  T* gq = static_cast<T*>(grad_query.mutable_data());
  T* gk = static_cast<T*>(grad_keys.mutable_data());
  {
    py::gil_scoped_release release;
    if (in.gpu) {
#if DEEPCTR_OPS_WITH_CUDA
      ThrowIfError(RunAttentionPoolOnGpu<T, Index>(in.spec, rows, q, k, w, g, nullptr, gq, gk, wg,
                                            in.repeats, &ms));
#endif
    } else {
      ThrowIfError(kernels::AttentionPoolBackwardCpu(
          in.spec, rows, q, k, w, saved, g, gq, gk, wg,
          kernels::ThreadsParallelFor(ResolveThreads(in.threads))));
    }
  }
  return py::make_tuple(grad_query, grad_keys, grad_kernels, grad_biases, ms);
}

py::tuple AttentionPool(const py::object& query, const py::object& keys, const py::object& rows,
                        const std::vector<py::object>& kernels,
                        const std::vector<py::object>& biases, const std::string& activation,
                        bool weight_normalization, bool return_score, const py::object& grad,
                        const std::string& device, int threads, int repeats,
                        bool return_activations, const py::object& activations) {
  Inputs in;
  in.return_activations = return_activations;
  if (!activations.is_none()) {
    in.activations = Contiguous(activations, "activations");
    in.has_activations = true;
    if (grad.is_none()) throw py::value_error("activations are only used by the backward");
  }
  in.gpu = ParseDevice(device);
#if !DEEPCTR_OPS_WITH_CUDA
  if (in.gpu) throw py::value_error("this build of deepctr_ops._kernels has no CUDA kernels");
#endif
  in.threads = threads;
  in.repeats = repeats < 1 ? 1 : repeats;
  in.query = Contiguous(query, "query");
  in.keys = Contiguous(keys, "keys");
  in.rows = Contiguous(rows, "rows");
  const std::string dtype = DtypeName(in.keys);
  if (dtype != "float32" && dtype != "float64") {
    throw py::value_error("keys must be float32 or float64, got " + dtype);
  }
  if (in.keys.ndim() != 3) throw py::value_error("keys must have shape [batch, T, embedding]");
  if (in.query.ndim() != 3 || in.query.shape(0) != in.keys.shape(0) ||
      in.query.shape(1) != 1 || in.query.shape(2) != in.keys.shape(2) ||
      !in.query.dtype().is(in.keys.dtype())) {
    throw py::value_error("query must have shape [batch, 1, E] and the dtype of keys");
  }
  if (kernels.empty() || kernels.size() != biases.size() ||
      kernels.size() > kernels::kMaxAttentionHiddenLayers + 1) {
    throw py::value_error("kernels and biases must be non-empty lists of equal length");
  }
  ThrowIfError(kernels::ParseAttentionActivation(activation, &in.spec.activation));
  in.spec.normalize = weight_normalization;
  in.spec.return_score = return_score;
  in.spec.depth = in.keys.shape(2);
  int64_t width = 4 * in.spec.depth;
  for (size_t i = 0; i < kernels.size(); ++i) {
    const std::string name = "kernel" + std::to_string(i);
    py::array k = Contiguous(kernels[i], name);
    py::array b = Contiguous(biases[i], "bias" + std::to_string(i));
    const bool last = i + 1 == kernels.size();
    if (k.ndim() != 2 || k.shape(0) != width || (last && k.shape(1) != 1) ||
        !k.dtype().is(in.keys.dtype())) {
      throw py::value_error(name + " must have shape [" + std::to_string(width) +
                            ", units] (units 1 for the last) and the dtype of keys");
    }
    if (b.ndim() != 1 || b.shape(0) != k.shape(1) || !b.dtype().is(in.keys.dtype())) {
      throw py::value_error("bias" + std::to_string(i) + " must have shape [" +
                            std::to_string(k.shape(1)) + "] and the dtype of keys");
    }
    width = k.shape(1);
    if (!last) in.spec.units.push_back(width);
    in.kernels.push_back(k);
    in.biases.push_back(b);
  }
  if (!grad.is_none()) {
    in.grad = Contiguous(grad, "grad");
    in.has_grad = true;
  }
  const std::string rows_type = DtypeName(in.rows);
  if (rows_type != "bool" && rows_type != "int32" && rows_type != "int64") {
    throw py::value_error("rows must be int32/int64 lengths or a bool mask, got " + rows_type);
  }
  const bool f32 = dtype == "float32";
  if (rows_type == "int32") return f32 ? Run<float, int32_t>(in) : Run<double, int32_t>(in);
  return f32 ? Run<float, int64_t>(in) : Run<double, int64_t>(in);
}

}  // namespace

void BindAttentionPool(py::module_& m) {
  m.def("set_attention_pool_cpu_isa", &kernels::SetAttentionPoolCpuIsa, py::arg("name"),
        "Tests: force the attention pooling's CPU build ('auto', 'baseline', 'avx2', "
        "'avx512'); False if the name is unknown or the CPU lacks it.");
  m.def("attention_pool", &AttentionPool, py::arg("query"), py::arg("keys"), py::arg("rows"),
        py::arg("kernels"), py::arg("biases"), py::arg("activation") = "sigmoid",
        py::arg("weight_normalization") = false, py::arg("return_score") = false,
        py::arg("grad") = py::none(), py::arg("device") = "cpu", py::arg("threads") = 0,
        py::arg("repeats") = 1, py::arg("return_activations") = false,
        py::arg("activations") = py::none(),
        R"doc(DIN attention pooling forward (grad=None) or backward.

query [B, 1, E], keys [B, T, E] float32/float64; rows: lengths [B] (int32/int64)
or a bool mask [B, T]; kernels/biases: kernel0..kernel{H-1} then the final
[h_last or 4E, 1] kernel, likewise the biases. Forward returns (output, ms):
[B, 1, E] or [B, 1, T] with return_score. Backward returns (grad_query,
grad_keys, grad_kernels, grad_biases, ms). ms: on the GPU the mean time of one
launch over `repeats`, 0 on the CPU. CPU only: the forward with
return_activations=True returns (output, ms, activations), the MLP activations
it saved; the backward takes them as `activations` instead of recomputing.)doc");
}

}  // namespace bindings
}  // namespace deepctr_ops
