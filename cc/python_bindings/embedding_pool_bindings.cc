// pybind11 entries `embedding_pool_forward` / `embedding_pool_backward` of
// deepctr_ops._kernels: the TF-free fused embedding pooling kernels on numpy
// arrays, on the CPU, in the host emulation of the CUDA kernels, and on the
// GPU when built with CUDA.
#include "cc/python_bindings/embedding_pool_bindings.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cc/kernels/embedding_pool.h"
#include "cc/kernels/embedding_pool_device.h"
#include "cc/kernels/embedding_pool_emulate.h"
#include "cc/kernels/float_types.h"
#include "cc/kernels/sequence_pool.h"
#include "cc/python_bindings/binding_utils.h"
#include "cc/python_bindings/embedding_pool_offsets.h"

#if DEEPCTR_OPS_WITH_CUDA
#include "cc/python_bindings/gpu_embedding_pool_runner.h"
#endif

namespace py = pybind11;

namespace deepctr_ops {
namespace bindings {
namespace {

using kernels::EmbeddingRows;
using kernels::PoolMode;
using kernels::PoolRows;
using kernels::RowLayout;

struct Request {
  RowLayout layout = RowLayout::kLengths;
  PoolMode mode = PoolMode::kSum;
  Device device = Device::kCpu;
  bool mask_zero = false;
  int threads = 0;       // CPU threads; emulated: the backward's block size.
  int scan_threads = 0;  // Emulated: the offsets scan's block size.
  int repeats = 1;
  bool validate = true;  // GPU / emulated: check ragged row_splits on the host.
  bool cache_columns = true;  // Emulated max backward: the shared column cache.
  py::array table, ids, rows, weights, grad, argmax;
  bool has_weights = false;
  bool has_argmax = false;
};

// The row description of `req`, host pointers; checks every shape.
template <typename Index, typename Id>
EmbeddingRows<Index, Id> Describe(const Request& req) {
  if (req.table.ndim() != 2) throw py::value_error("table must be [vocabulary, embedding]");
  EmbeddingRows<Index, Id> rows;
  rows.vocab = req.table.shape(0);
  rows.mask_zero = req.mask_zero;
  rows.ids = static_cast<const Id*>(req.ids.data());
  PoolRows<Index>& r = rows.rows;
  r.layout = req.layout;
  r.depth = req.table.shape(1);
  r.num_steps = req.ids.size();
  if (req.layout == RowLayout::kRagged) {
    if (req.ids.ndim() != 1) throw py::value_error("ragged ids must be flat [num_ids]");
    if (req.rows.ndim() != 1 || req.rows.size() < 1) {
      throw py::value_error("row_splits must be a non-empty vector [batch + 1]");
    }
    r.batch = req.rows.size() - 1;
    r.row_splits = static_cast<const Index*>(req.rows.data());
  } else {
    if (req.ids.ndim() != 2) throw py::value_error("ids must be [batch, time]");
    r.batch = req.ids.shape(0);
    r.max_time = req.ids.shape(1);
    if (req.layout == RowLayout::kMask) {
      if (req.rows.ndim() != 2 || req.rows.shape(0) != r.batch ||
          req.rows.shape(1) != r.max_time) {
        throw py::value_error("mask must have the shape of ids [batch, time]");
      }
      r.mask = static_cast<const bool*>(req.rows.data());
    } else {
      if (req.rows.size() != r.batch) throw py::value_error("lengths must have batch entries");
      r.lengths = static_cast<const Index*>(req.rows.data());
    }
  }
  if (req.has_weights && (req.weights.size() != r.num_steps ||
                          !req.weights.dtype().is(req.table.dtype()))) {
    throw py::value_error("weights must have the shape of ids and the dtype of table");
  }
  return rows;
}

// The emulated kernels take LaunchMonotoneRowSplits' splits: made here on the
// host, as the GPU makes them on the device.
template <typename Index>
std::vector<Index> MonotoneSplits(const PoolRows<Index>& r) {
  std::vector<Index> splits;
  if (r.layout != RowLayout::kRagged) return splits;
  int64_t running = 0;
  for (int64_t b = 0; b <= r.batch; ++b) {
    running = std::max(running, kernels::ClampIndex(r.row_splits[b], 0, r.num_steps));
    splits.push_back(static_cast<Index>(running));
  }
  return splits;
}

// Fills a fresh output with a sentinel, so that an element a kernel fails to
// write shows (NaN for floats, -1 for ids; argmax gets 0x7f7f7f7f, no code).
void Poison(py::array* a, int byte) {
  if (a->nbytes() > 0) std::memset(a->mutable_data(), byte, static_cast<size_t>(a->nbytes()));
}

template <typename T>
const T* DataOf(const py::array& a, bool present) {
  return present ? static_cast<const T*>(a.data()) : nullptr;
}

// Pooled output and argmax on req's device.
template <typename T, typename Index, typename Id>
double RunForward(const Request& req, const EmbeddingRows<Index, Id>& rows, T* output,
                  int32_t* argmax) {
  const T* table = static_cast<const T*>(req.table.data());
  const T* weights = DataOf<T>(req.weights, req.has_weights);
  double ms = 0.0;
  py::gil_scoped_release release;
  if (req.device == Device::kCpu) {
    ThrowIfError(kernels::EmbeddingPoolForwardCpu(
        rows, req.mode, table, weights, output, argmax,
        kernels::ThreadsParallelFor(ResolveThreads(req.threads))));
  } else if (req.device == Device::kEmulated) {
    EmbeddingRows<Index, Id> emulated = rows;
    const std::vector<Index> splits = MonotoneSplits(rows.rows);
    if (!splits.empty()) emulated.rows.row_splits = splits.data();
    ThrowIfError(kernels::EmbeddingPoolForwardEmulated(emulated, req.mode, table, weights,
                                                       output, argmax));
  } else {
#if DEEPCTR_OPS_WITH_CUDA
    ThrowIfError(RunEmbeddingPoolForwardOnGpu(rows, req.mode, table, weights, output, argmax,
                                              req.repeats, &ms));
#endif
  }
  return ms;
}

template <typename T, typename Index, typename Id>
py::tuple Forward(const Request& req) {
  const EmbeddingRows<Index, Id> rows = Describe<Index, Id>(req);
  if (req.device != Device::kCpu && req.validate) {
    ThrowIfError(kernels::ValidatePoolRows(rows.rows));
  }
  const std::vector<py::ssize_t> pooled_shape = {static_cast<py::ssize_t>(rows.rows.batch), 1,
                                                 static_cast<py::ssize_t>(rows.rows.depth)};
  py::array output(req.table.dtype(), pooled_shape);
  const bool is_max = req.mode == PoolMode::kMax;
  py::array_t<int32_t> argmax(is_max ? pooled_shape : std::vector<py::ssize_t>{0});
  Poison(&output, 0xff);
  Poison(&argmax, 0x7f);
  const double ms = RunForward<T, Index, Id>(req, rows, static_cast<T*>(output.mutable_data()),
                                             is_max ? argmax.mutable_data() : nullptr);
  return py::make_tuple(output, argmax, ms);
}

template <typename T, typename Index, typename Id>
py::tuple Backward(const Request& req) {
  const EmbeddingRows<Index, Id> rows = Describe<Index, Id>(req);
  if (req.device != Device::kCpu && req.validate) {
    ThrowIfError(kernels::ValidatePoolRows(rows.rows));
  }
  const int64_t batch = rows.rows.batch;
  const int64_t depth = rows.rows.depth;
  if (req.grad.size() != batch * depth || !req.grad.dtype().is(req.table.dtype())) {
    throw py::value_error("grad must be [batch, 1, embedding] with the dtype of table");
  }
  const bool is_max = req.mode == PoolMode::kMax;
  py::array_t<int32_t> argmax;
  if (is_max && req.has_argmax) {
    if (DtypeName(req.argmax) != "int32" || req.argmax.size() != batch * depth) {
      throw py::value_error("argmax must be an int32 array [batch, 1, embedding]");
    }
    argmax = py::array_t<int32_t>::ensure(req.argmax);
  } else if (is_max) {
    // No argmax given: the forward's, on the same device.
    argmax = py::array_t<int32_t>(std::vector<py::ssize_t>{batch * depth});
    std::vector<T> pooled(static_cast<size_t>(batch * depth));
    RunForward<T, Index, Id>(req, rows, pooled.data(), argmax.mutable_data());
  }
  const int32_t* argmax_data = is_max ? argmax.data() : nullptr;
  const T* table = static_cast<const T*>(req.table.data());
  const T* weights = DataOf<T>(req.weights, req.has_weights);
  const T* grad = static_cast<const T*>(req.grad.data());
  const py::dtype id_dtype = req.ids.dtype();
  const std::vector<py::ssize_t> weights_shape =
      req.has_weights ? std::vector<py::ssize_t>(req.ids.shape(), req.ids.shape() + req.ids.ndim())
                      : std::vector<py::ssize_t>{0};
  double ms = 0.0;
  if (req.device == Device::kGpu) {
#if DEEPCTR_OPS_WITH_CUDA
    EmbeddingPoolGpuGrads<T, Id> grads;
    {
      py::gil_scoped_release release;
      ThrowIfError(RunEmbeddingPoolBackwardOnGpu(rows, req.mode, table, weights, argmax_data,
                                                 grad, req.has_weights, &grads, req.repeats,
                                                 &ms));
    }
    const py::ssize_t total = static_cast<py::ssize_t>(grads.indices.size());
    py::array values(req.table.dtype(), std::vector<py::ssize_t>{total, depth});
    py::array indices(id_dtype, std::vector<py::ssize_t>{total});
    py::array grad_weights(req.table.dtype(), weights_shape);
    std::memcpy(values.mutable_data(), grads.values.data(), grads.values.size() * sizeof(T));
    std::memcpy(indices.mutable_data(), grads.indices.data(), grads.indices.size() * sizeof(Id));
    std::memcpy(grad_weights.mutable_data(), grads.grad_weights.data(),
                grads.grad_weights.size() * sizeof(T));
    return py::make_tuple(values, indices, grad_weights, ms);
#endif
  }
  const bool emulated = req.device == Device::kEmulated;
  EmbeddingRows<Index, Id> run_rows = rows;
  const std::vector<Index> splits = emulated ? MonotoneSplits(rows.rows) : std::vector<Index>();
  if (!splits.empty()) run_rows.rows.row_splits = splits.data();
  const kernels::ParallelFor pf = kernels::ThreadsParallelFor(ResolveThreads(req.threads));
  std::vector<int64_t> offsets(static_cast<size_t>(batch + 1));
  std::memset(offsets.data(), kOffsetsSentinelByte, offsets.size() * sizeof(int64_t));
  {
    py::gil_scoped_release release;
    const int scan_threads = req.scan_threads > 0 ? req.scan_threads : 1024;
    ThrowIfError(emulated ? kernels::EmbeddingPoolGradRowsEmulated(run_rows, req.mode,
                                                                   offsets.data(), scan_threads)
                          : kernels::EmbeddingPoolGradRowsCpu(run_rows, req.mode,
                                                              offsets.data(), pf));
    ThrowIfError(CheckGradOffsets(offsets.data(), batch, rows.rows.num_steps));
  }
  const py::ssize_t total = static_cast<py::ssize_t>(offsets[batch]);
  py::array values(req.table.dtype(), std::vector<py::ssize_t>{total, depth});
  py::array indices(id_dtype, std::vector<py::ssize_t>{total});
  py::array grad_weights(req.table.dtype(), weights_shape);
  Poison(&values, 0xff);
  Poison(&indices, 0xff);
  Poison(&grad_weights, 0xff);
  T* values_data = static_cast<T*>(values.mutable_data());
  Id* indices_data = static_cast<Id*>(indices.mutable_data());
  T* grad_weights_data = req.has_weights ? static_cast<T*>(grad_weights.mutable_data()) : nullptr;
  {
    py::gil_scoped_release release;
    if (emulated) {
      const int threads =
          req.threads > 0 ? req.threads : kernels::embedding_gpu::BackwardThreads(depth);
      ThrowIfError(kernels::EmbeddingPoolBackwardEmulated(
          run_rows, req.mode, table, weights, argmax_data, grad, offsets.data(), values_data,
          indices_data, grad_weights_data, threads, req.cache_columns));
    } else {
      ThrowIfError(kernels::EmbeddingPoolBackwardCpu(run_rows, req.mode, table, weights,
                                                     argmax_data, grad, offsets.data(),
                                                     values_data, indices_data,
                                                     grad_weights_data, pf));
    }
  }
  return py::make_tuple(values, indices, grad_weights, ms);
}

template <typename T, typename Index>
py::tuple DispatchId(const Request& req, bool backward) {
  const std::string name = DtypeName(req.ids);
  if (name == "int32") {
    return backward ? Backward<T, Index, int32_t>(req) : Forward<T, Index, int32_t>(req);
  }
  if (name == "int64") {
    return backward ? Backward<T, Index, int64_t>(req) : Forward<T, Index, int64_t>(req);
  }
  throw py::value_error("ids must be int32 or int64, got " + name);
}

template <typename T>
py::tuple DispatchIndex(const Request& req, bool backward) {
  const std::string name = DtypeName(req.rows);
  if (req.layout == RowLayout::kMask) {
    if (name != "bool") throw py::value_error("mask must be a bool array, got " + name);
    return DispatchId<T, int64_t>(req, backward);
  }
  if (name == "int32") return DispatchId<T, int32_t>(req, backward);
  if (name == "int64") return DispatchId<T, int64_t>(req, backward);
  throw py::value_error("lengths/row_splits must be int32 or int64, got " + name);
}

py::tuple Dispatch(const Request& req, bool backward) {
  const std::string name = DtypeName(req.table);
  if (name == "float32") return DispatchIndex<float>(req, backward);
  if (name == "float64") return DispatchIndex<double>(req, backward);
  if (name == "float16") return DispatchIndex<kernels::Half>(req, backward);
  if (name == "bfloat16") return DispatchIndex<kernels::BFloat16>(req, backward);
  throw py::value_error("table must be float32, float64, float16 or bfloat16, got " + name);
}

Request MakeRequest(const py::object& table, const py::object& ids, const py::object& rows,
                    const std::string& layout, const py::object& weights,
                    const std::string& mode, bool mask_zero, const std::string& device,
                    int threads, int repeats, bool validate) {
  Request req;
  req.layout = ParseRowLayout(layout);
  ThrowIfError(kernels::ParsePoolMode(mode.c_str(), &req.mode));
  req.device = ParseEmulatedDevice(device);
  req.mask_zero = mask_zero;
  req.threads = threads;
  req.repeats = repeats;
  req.validate = validate;
  req.table = Contiguous(table, "table");
  req.ids = Contiguous(ids, "ids");
  req.rows = Contiguous(rows, "rows");
  if (!weights.is_none()) {
    req.weights = Contiguous(weights, "weights");
    req.has_weights = true;
  }
  return req;
}

py::tuple EmbeddingPoolForward(const py::object& table, const py::object& ids,
                               const py::object& rows, const std::string& layout,
                               const py::object& weights, const std::string& mode,
                               bool mask_zero, const std::string& device, int threads,
                               int repeats, bool validate) {
  const Request req = MakeRequest(table, ids, rows, layout, weights, mode, mask_zero, device,
                                  threads, repeats, validate);
  return Dispatch(req, false);
}

py::tuple EmbeddingPoolBackward(const py::object& table, const py::object& ids,
                                const py::object& rows, const py::object& grad,
                                const std::string& layout, const py::object& weights,
                                const py::object& argmax, const std::string& mode,
                                bool mask_zero, const std::string& device, int threads,
                                int repeats, bool validate, int scan_threads,
                                bool cache_columns) {
  Request req = MakeRequest(table, ids, rows, layout, weights, mode, mask_zero, device, threads,
                            repeats, validate);
  req.grad = Contiguous(grad, "grad");
  if (!argmax.is_none()) {
    req.argmax = Contiguous(argmax, "argmax");
    req.has_argmax = true;
  }
  req.scan_threads = scan_threads;
  req.cache_columns = cache_columns;
  return Dispatch(req, true);
}

}  // namespace

void BindEmbeddingPool(py::module_& m) {
  m.def("embedding_pool_forward", &EmbeddingPoolForward, py::arg("table"), py::arg("ids"),
        py::arg("rows"), py::arg("layout") = "lengths", py::arg("weights") = py::none(),
        py::arg("mode") = "sum", py::arg("mask_zero") = false, py::arg("device") = "cpu",
        py::arg("threads") = 0, py::arg("repeats") = 1, py::arg("validate") = true,
        R"doc(Fused embedding lookup + sequence pooling forward (embedding_pool.h).

table [V, E] float32/float64/float16/bfloat16; ids int32/int64 [B, T] (layouts
'lengths' with rows = lengths [B], 'mask' with a bool mask [B, T]) or flat [N]
('ragged' with row_splits [B + 1]); weights (optional) the shape of ids, the
table's dtype. Returns (pooled [B, 1, E], argmax, milliseconds): argmax is
int32 [B, 1, E] for max, [0] otherwise; milliseconds is the mean time of one
GPU run over `repeats` (0 elsewhere). device: 'cpu' (an id out of range is a
ValueError), 'gpu' (it reads as zeros), or 'emulated' (the CUDA kernels' code
on the host, thread by thread). validate=False skips the host check of ragged
row_splits before a GPU or emulated run (the kernels make them monotone).)doc");
  m.def("embedding_pool_backward", &EmbeddingPoolBackward, py::arg("table"), py::arg("ids"),
        py::arg("rows"), py::arg("grad"), py::arg("layout") = "lengths",
        py::arg("weights") = py::none(), py::arg("argmax") = py::none(),
        py::arg("mode") = "sum", py::arg("mask_zero") = false, py::arg("device") = "cpu",
        py::arg("threads") = 0, py::arg("repeats") = 1, py::arg("validate") = true,
        py::arg("scan_threads") = 0, py::arg("cache_columns") = true,
        R"doc(Fused embedding pooling backward: gradient rows, then the gradient.

Arguments as embedding_pool_forward's, plus grad [B, 1, E] and, for max, the
forward's argmax (None: the forward runs first on the same device). Returns
(values [K, E], indices [K] (the ids' dtype), grad_weights (the shape of ids;
[0] without weights), milliseconds). device='emulated': threads is the
emulated block size (a power of two; default the kernel's), scan_threads the
offsets scan's (default 1024), cache_columns whether max keeps its tied
columns in shared memory.)doc");
}

}  // namespace bindings
}  // namespace deepctr_ops
