// pybind11 module `deepctr_ops._kernels`: the TF-free kernels on numpy arrays,
// on the CPU always and on the GPU when built with CUDA. It lets the kernels
// be tested where TensorFlow is absent (the lent GPU machines).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cc/kernels/attention_softmax.h"
#include "cc/kernels/float_types.h"
#include "cc/kernels/parallel_for.h"
#include "cc/kernels/sequence_pool.h"
#include "cc/python_bindings/attention_pool_bindings.h"
#include "cc/python_bindings/binding_utils.h"
#include "cc/python_bindings/dynamic_gru_bindings.h"
#include "cc/python_bindings/embedding_pool_bindings.h"

#if DEEPCTR_OPS_WITH_CUDA
#include "cc/python_bindings/gpu_attention_runner.h"
#include "cc/python_bindings/gpu_pool_runner.h"
constexpr bool kCudaBuilt = true;
#else
constexpr bool kCudaBuilt = false;
#endif

namespace py = pybind11;

namespace deepctr_ops {
namespace bindings {
namespace {

using kernels::PoolMode;
using kernels::PoolRows;
using kernels::RowLayout;

struct Request {
  RowLayout layout;
  PoolMode mode;
  bool gpu;
  int threads;
  int repeats;
  bool validate;  // GPU only: check ragged row_splits on the host first.
};

// Typed worker: T is the kernel element type, Index the row index type.
template <typename T, typename Index>
py::tuple Run(const Request& req, const py::array& values, const py::array& row_info,
              const py::object& grad, const py::object& argmax_in, bool return_argmax) {
  if (!(values.flags() & py::array::c_style) || !(row_info.flags() & py::array::c_style)) {
    throw py::value_error("arrays must be C-contiguous");
  }
  PoolRows<Index> rows;
  rows.layout = req.layout;
  if (req.layout == RowLayout::kRagged) {
    if (values.ndim() != 2) throw py::value_error("values must be [num_values, embedding]");
    if (row_info.ndim() != 1 || row_info.size() < 1) {
      throw py::value_error("row_splits must be a non-empty vector");
    }
    rows.batch = row_info.size() - 1;
    rows.depth = values.shape(1);
    rows.num_steps = values.shape(0);
    rows.row_splits = static_cast<const Index*>(row_info.data());
  } else {
    if (values.ndim() != 3) throw py::value_error("values must be [batch, time, embedding]");
    rows.batch = values.shape(0);
    rows.max_time = values.shape(1);
    rows.depth = values.shape(2);
    rows.num_steps = rows.batch * rows.max_time;
    if (req.layout == RowLayout::kMask) {
      if (row_info.ndim() != 2 || row_info.shape(0) != rows.batch ||
          row_info.shape(1) != rows.max_time) {
        throw py::value_error("mask must be [batch, time]");
      }
      rows.mask = static_cast<const bool*>(row_info.data());
    } else {
      if (row_info.size() != rows.batch) throw py::value_error("lengths must have batch entries");
      rows.lengths = static_cast<const Index*>(row_info.data());
    }
  }
  const T* grad_ptr = nullptr;
  py::array grad_array;
  if (!grad.is_none()) {
    grad_array = py::array::ensure(grad, py::array::c_style);
    if (!grad_array || grad_array.size() != rows.batch * rows.depth ||
        !grad_array.dtype().equal(values.dtype())) {
      throw py::value_error("grad must be [batch, 1, embedding] with the dtype of values");
    }
    grad_ptr = static_cast<const T*>(grad_array.data());
  }
  const std::vector<py::ssize_t> pooled_shape = {static_cast<py::ssize_t>(rows.batch), 1,
                                                 static_cast<py::ssize_t>(rows.depth)};
  std::vector<py::ssize_t> shape = pooled_shape;
  if (grad_ptr != nullptr) shape.assign(values.shape(), values.shape() + values.ndim());
  py::array result(values.dtype(), shape);
  const T* in = static_cast<const T*>(values.data());
  if (req.gpu) {
#if DEEPCTR_OPS_WITH_CUDA
    if (req.validate) ThrowIfError(kernels::ValidatePoolRows(rows));
#else
    throw py::value_error("this build of deepctr_ops._kernels has no CUDA kernels");
#endif
  }
  // One kernel run, forward (grad == nullptr) or backward, on req's device.
  // The forward (grad_in == nullptr) writes argmax; the backward reads it.
  auto run = [&](const T* grad_in, T* out, int32_t* argmax, int repeats, double* ms) {
    py::gil_scoped_release release;
    if (req.gpu) {
#if DEEPCTR_OPS_WITH_CUDA
      ThrowIfError(RunSequencePoolOnGpu(rows, req.mode, in, grad_in, out, argmax, repeats, ms));
#endif
      return;
    }
    const kernels::ParallelFor pf = kernels::ThreadsParallelFor(req.threads);
    ThrowIfError(grad_in != nullptr
                     ? kernels::SequencePoolBackwardCpu(rows, req.mode, in, argmax, grad_in,
                                                        out, pf)
                     : kernels::SequencePoolForwardCpu(rows, req.mode, in, out, argmax, pf));
  };
  using ArgmaxArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
  const bool is_max = req.mode == PoolMode::kMax;
  ArgmaxArray argmax(is_max ? pooled_shape : std::vector<py::ssize_t>{0});
  double milliseconds = 0.0;
  if (grad_ptr == nullptr) {
    run(nullptr, static_cast<T*>(result.mutable_data()),
        is_max ? argmax.mutable_data() : nullptr, req.repeats, &milliseconds);
    if (return_argmax) return py::make_tuple(result, milliseconds, argmax);
    return py::make_tuple(result, milliseconds);
  }
  if (is_max && !argmax_in.is_none()) {
    if (!py::isinstance<py::array_t<int32_t>>(argmax_in)) {
      throw py::value_error("argmax must be an int32 array");
    }
    argmax = ArgmaxArray::ensure(argmax_in);
    if (!argmax || argmax.size() != rows.batch * rows.depth) {
      throw py::value_error("argmax must be [batch, 1, embedding]");
    }
  } else if (is_max) {
    // No argmax given: take the forward's, computed on the same device.
    py::array pooled(values.dtype(), pooled_shape);
    double unused = 0.0;
    run(nullptr, static_cast<T*>(pooled.mutable_data()), argmax.mutable_data(), 1, &unused);
  }
  // The backward only reads argmax; const_cast lets a read-only array through.
  run(grad_ptr, static_cast<T*>(result.mutable_data()),
      is_max ? const_cast<int32_t*>(argmax.data()) : nullptr, req.repeats, &milliseconds);
  return py::make_tuple(result, milliseconds);
}

template <typename T>
py::tuple DispatchIndex(const Request& req, const py::array& values,
                        const py::array& row_info, const py::object& grad,
                        const py::object& argmax, bool return_argmax) {
  if (req.layout == RowLayout::kMask) {
    if (DtypeName(row_info) != "bool") throw py::value_error("mask must be a bool array");
    return Run<T, int64_t>(req, values, row_info, grad, argmax, return_argmax);
  }
  const std::string name = DtypeName(row_info);
  if (name == "int32") return Run<T, int32_t>(req, values, row_info, grad, argmax, return_argmax);
  if (name == "int64") return Run<T, int64_t>(req, values, row_info, grad, argmax, return_argmax);
  throw py::value_error("lengths/row_splits must be int32 or int64, got " + name);
}

py::tuple Pool(const py::array& values, const py::array& row_info, const std::string& mode,
               const std::string& layout, const py::object& grad, const std::string& device,
               int threads, int repeats, bool validate, const py::object& argmax,
               bool return_argmax) {
  Request req;
  req.layout = ParseRowLayout(layout);
  ThrowIfError(kernels::ParsePoolMode(mode.c_str(), &req.mode));
  req.gpu = ParseDevice(device);
  req.threads = ResolveThreads(threads);
  req.repeats = repeats;
  req.validate = validate;
  const std::string name = DtypeName(values);
  if (name == "float32") {
    return DispatchIndex<float>(req, values, row_info, grad, argmax, return_argmax);
  }
  if (name == "float64") {
    return DispatchIndex<double>(req, values, row_info, grad, argmax, return_argmax);
  }
  if (name == "float16") {
    return DispatchIndex<kernels::Half>(req, values, row_info, grad, argmax, return_argmax);
  }
  if (name == "bfloat16") {
    return DispatchIndex<kernels::BFloat16>(req, values, row_info, grad, argmax, return_argmax);
  }
  throw py::value_error("values must be float32, float64, float16 or bfloat16, got " + name);
}

// ---- Attention softmax ------------------------------------------------------

struct AttentionRequest {
  kernels::AttentionSoftmaxShape shape;
  bool gpu;
  int threads;
  int repeats;
};

// `obj` as a C-contiguous array with the shape and dtype of `scores`.
py::array LikeScores(const py::object& obj, const char* name, const py::array& scores) {
  py::array a = Contiguous(obj, name);
  if (!a.dtype().equal(scores.dtype()) || a.ndim() != 3 ||
      !std::equal(scores.shape(), scores.shape() + 3, a.shape())) {
    throw py::value_error(std::string(name) + " must have the shape and dtype of scores");
  }
  return a;
}

template <typename T>
py::tuple RunAttention(const AttentionRequest& req, const py::array& scores,
                       const py::array& key_valid, const py::object& grad,
                       const py::object& probs) {
  const kernels::AttentionSoftmaxShape& shape = req.shape;
  const std::vector<py::ssize_t> dims(scores.shape(), scores.shape() + 3);
  const bool* valid = static_cast<const bool*>(key_valid.data());
  const kernels::ParallelFor pf = kernels::ThreadsParallelFor(req.threads);
  const T* input = static_cast<const T*>(scores.data());
  const T* probs_ptr = nullptr;
  py::array grad_array, probs_array;
  if (!grad.is_none()) {
    grad_array = LikeScores(grad, "grad", scores);
    input = static_cast<const T*>(grad_array.data());
    if (probs.is_none()) {
      probs_array = py::array(scores.dtype(), dims);
      T* p = static_cast<T*>(probs_array.mutable_data());
      const T* x = static_cast<const T*>(scores.data());
      py::gil_scoped_release release;
      ThrowIfError(kernels::AttentionSoftmaxForwardCpu(shape, x, valid, p, pf));
    } else {
      probs_array = LikeScores(probs, "probs", scores);
    }
    probs_ptr = static_cast<const T*>(probs_array.data());
  }
  py::array result(scores.dtype(), dims);
  T* out = static_cast<T*>(result.mutable_data());
  double milliseconds = 0.0;
  if (req.gpu) {
#if DEEPCTR_OPS_WITH_CUDA
    py::gil_scoped_release release;
    ThrowIfError(RunAttentionSoftmaxOnGpu(shape, input, probs_ptr, valid, out, req.repeats,
                                          &milliseconds));
#else
    throw py::value_error("this build of deepctr_ops._kernels has no CUDA kernels");
#endif
  } else {
    py::gil_scoped_release release;
    ThrowIfError(probs_ptr != nullptr
                     ? kernels::AttentionSoftmaxBackwardCpu(shape, input, probs_ptr, valid,
                                                            out, pf)
                     : kernels::AttentionSoftmaxForwardCpu(shape, input, valid, out, pf));
  }
  return py::make_tuple(result, milliseconds);
}

py::tuple AttentionSoftmax(const py::object& scores_obj, const py::object& key_valid_obj,
                           double divisor, bool blinding, const py::object& grad,
                           const py::object& probs, const std::string& device, int threads,
                           int repeats, int64_t heads) {
  const bool gpu = ParseDevice(device);
  if (grad.is_none() && !probs.is_none()) {
    throw py::value_error("probs is only used for the backward: pass grad too");
  }
  const py::array scores = Contiguous(scores_obj, "scores");
  const py::array key_valid = Contiguous(key_valid_obj, "key_valid");
  if (scores.ndim() != 3) {
    throw py::value_error("scores must have shape [heads*batch, Tq, Tk], got rank " +
                          std::to_string(scores.ndim()));
  }
  if (DtypeName(key_valid) != "bool") {
    throw py::value_error("key_valid must be a bool array, got " + DtypeName(key_valid));
  }
  if (key_valid.ndim() != 2 || key_valid.shape(1) != scores.shape(2)) {
    throw py::value_error("key_valid must have shape [batch, Tk] with Tk = scores.shape[2] = " +
                          std::to_string(scores.shape(2)));
  }
  AttentionRequest req;
  req.shape.rows = scores.shape(0);
  req.shape.time_q = scores.shape(1);
  req.shape.time_k = scores.shape(2);
  req.shape.batch = key_valid.shape(0);
  req.shape.heads = heads;
  req.shape.divisor = static_cast<float>(divisor);  // The ops' attr is a float too.
  req.shape.blinding = blinding;
  ThrowIfError(kernels::ValidateAttentionSoftmaxShape(req.shape));
  req.gpu = gpu;
  req.threads = ResolveThreads(threads);
  req.repeats = repeats;
  const std::string name = DtypeName(scores);
  if (name == "float32") return RunAttention<float>(req, scores, key_valid, grad, probs);
  if (name == "float64") return RunAttention<double>(req, scores, key_valid, grad, probs);
  throw py::value_error("scores must be float32 or float64, got " + name);
}

int GpuCount() {
#if DEEPCTR_OPS_WITH_CUDA
  return CudaDeviceCount();
#else
  return 0;
#endif
}

}  // namespace
}  // namespace bindings
}  // namespace deepctr_ops

PYBIND11_MODULE(_kernels, m) {
  m.doc() = "deepctr-ops TF-free kernels on numpy arrays (tests and GPU checks).";
  m.attr("cuda_built") = py::bool_(kCudaBuilt);
  m.def("gpu_count", &deepctr_ops::bindings::GpuCount, "Usable CUDA devices (0 without CUDA).");
  m.def("sequence_pool", &deepctr_ops::bindings::Pool, py::arg("values"), py::arg("rows"),
        py::arg("mode"), py::arg("layout") = "lengths", py::arg("grad") = py::none(),
        py::arg("device") = "cpu", py::arg("threads") = 0, py::arg("repeats") = 1,
        py::arg("validate") = true, py::arg("argmax") = py::none(),
        py::arg("return_argmax") = false,
        R"doc(Sequence pooling forward (grad=None) or backward.

rows is lengths [B] (layout='lengths'), a bool mask [B, T] ('mask') or
row_splits [B + 1] ('ragged'). Returns (result, milliseconds): the pooled
[B, 1, E] array or grad_values, and on the GPU the mean time of one launch
over `repeats` launches (0 on the CPU). The forward with return_argmax=True
returns (pooled, milliseconds, argmax): int32 [B, 1, E] for max (see
sequence_pool.h), [0] otherwise. The max backward takes that argmax; without
one it runs the forward on the same device first (not timed). validate=False
skips the host check of ragged row_splits before a GPU launch, to test the
GPU's own clamping; the CPU always validates.)doc");
  m.def("attention_softmax", &deepctr_ops::bindings::AttentionSoftmax, py::arg("scores"),
        py::arg("key_valid"), py::arg("divisor") = 1.0, py::arg("blinding") = false,
        py::arg("grad") = py::none(), py::arg("probs") = py::none(), py::arg("device") = "cpu",
        py::arg("threads") = 0, py::arg("repeats") = 1, py::arg("heads") = 0,
        R"doc(Masked attention softmax forward (grad=None) or backward.

scores [heads*batch, Tq, Tk] float32 or float64, key_valid bool [batch, Tk];
heads > 0 requires exactly heads*batch rows (0: any multiple of batch).
divisor is rounded to float32, as the op's attr is. The backward returns the
gradient of the scores for the upstream `grad`; `probs` (the forward's output)
defaults to the CPU forward of `scores`. Returns (result, milliseconds): on the
GPU the mean time of one launch over `repeats` launches, 0 on the CPU.)doc");
  deepctr_ops::bindings::BindAttentionPool(m);
  deepctr_ops::bindings::BindDynamicGru(m);
  deepctr_ops::bindings::BindEmbeddingPool(m);
}
