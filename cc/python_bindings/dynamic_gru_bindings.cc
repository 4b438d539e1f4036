// pybind11 entries of the dynamic GRU: the TF-free CPU kernel on numpy arrays,
// and the CUDA launchers when built with CUDA (tests and GPU checks).
#include "cc/python_bindings/dynamic_gru_bindings.h"

#include <pybind11/numpy.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cc/kernels/dynamic_gru.h"
#include "cc/kernels/dynamic_gru_directions.h"
#include "cc/kernels/dynamic_gru_emulate.h"
#include "cc/kernels/parallel_for.h"
#include "cc/python_bindings/binding_utils.h"

#if DEEPCTR_OPS_WITH_CUDA
#include "cc/python_bindings/gpu_gru_runner.h"
#endif

namespace py = pybind11;

namespace deepctr_ops {
namespace bindings {
namespace {

using kernels::GruBackwardArgs;
using kernels::GruForwardArgs;
using kernels::GruShape;

template <typename V>
py::array_t<V> Array(const py::object& obj, const char* name) {
  auto a = py::array_t<V, py::array::c_style | py::array::forcecast>::ensure(obj);
  if (!a) throw py::value_error(std::string(name) + " must be an array");
  return a;
}

void Expect(const py::array& a, std::vector<int64_t> shape, const std::string& name,
            const std::string& alternative = "") {
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
  if (!ok) {
    std::string want = "[";
    for (size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
    throw py::value_error(name + " must have shape " + want + "]" + alternative);
  }
}

// An incoming gradient of shape `shape`, or an empty array: zero (null).
template <typename T>
const T* OptionalGrad(const py::array_t<T>& a, std::vector<int64_t> shape,
                      const std::string& name) {
  if (a.ndim() == 1 && a.shape(0) == 0) return nullptr;
  Expect(a, std::move(shape), name, " or be empty (zero)");
  return a.data();
}

struct Inputs {
  GruShape shape;
  int directions = 1;  // 2: dynamic_gru_directions.h.
  Device device = Device::kCpu;
  int threads = 0;
  int repeats = 1;
  bool save_gates = true;  // False: the inference forward (gates null).
};

template <typename T>
struct Arrays {
  py::array_t<T> x, att, wg, bg, wc, bc;
};

// A weight's expected shape: `dims`, stacked [2, dims...] for two directions.
std::vector<int64_t> WeightShape(int directions, std::vector<int64_t> dims) {
  if (directions > 1) dims.insert(dims.begin(), directions);
  return dims;
}

// Reads the shape from x [B,T,E] and wc [E+U,U] (or [2, E+U, U]) and checks
// the rest.
template <typename T>
Arrays<T> ReadArrays(const py::object& x, const py::object& wg, const py::object& bg,
                     const py::object& wc, const py::object& bc, const py::object& att,
                     int directions, GruShape* s) {
  Arrays<T> a;
  a.x = Array<T>(x, "x");
  if (a.x.ndim() != 3) throw py::value_error("x must have shape [batch, T, E]");
  a.wc = Array<T>(wc, "wc");
  if (a.wc.ndim() != 1 + directions) {
    throw py::value_error(directions == 1 ? "wc must have shape [E + units, units]"
                                          : "wc must have shape [2, E + units, units]");
  }
  s->batch = a.x.shape(0);
  s->time = a.x.shape(1);
  s->input = a.x.shape(2);
  s->units = a.wc.shape(directions);
  const int64_t u = s->units, rows = s->input + u;
  Expect(a.wc, WeightShape(directions, {rows, u}), "wc");
  a.wg = Array<T>(wg, "wg");
  Expect(a.wg, WeightShape(directions, {rows, 2 * u}), "wg");
  a.bg = Array<T>(bg, "bg");
  Expect(a.bg, WeightShape(directions, {2 * u}), "bg");
  a.bc = Array<T>(bc, "bc");
  Expect(a.bc, WeightShape(directions, {u}), "bc");
  if (kernels::GruUsesAttention(s->cell)) {
    if (att.is_none()) throw py::value_error("att is required for AGRU and AUGRU");
    a.att = Array<T>(att, "att");
    if (a.att.size() != s->batch * s->time) throw py::value_error("att must have B * T values");
  } else if (!att.is_none()) {
    throw py::value_error("att must be None for GRU");
  }
  return a;
}

template <typename T, typename Index>
py::tuple Forward(const Inputs& in, const Arrays<T>& a, const py::array_t<Index>& lengths) {
  const GruShape& s = in.shape;
  const int nd = in.directions;
  py::array_t<T> outputs({s.batch, s.time, nd * s.units});
  py::array_t<T> final_state({s.batch, nd * s.units});
  py::array_t<T> gates(in.save_gates ? WeightShape(nd, {s.batch, s.time, 3 * s.units})
                                     : std::vector<int64_t>{0});
  GruForwardArgs<T, Index> f;
  f.x = a.x.data();
  f.lengths = lengths.data();
  f.att = kernels::GruUsesAttention(s.cell) ? a.att.data() : nullptr;
  f.wg = a.wg.data();
  f.bg = a.bg.data();
  f.wc = a.wc.data();
  f.bc = a.bc.data();
  f.outputs = outputs.mutable_data();
  f.final_state = final_state.mutable_data();
  f.gates = in.save_gates ? gates.mutable_data() : nullptr;
  double ms = 0.0;
  {
    py::gil_scoped_release release;
    if (in.device == Device::kGpu) {
#if DEEPCTR_OPS_WITH_CUDA
      ThrowIfError(RunDynamicGruForwardOnGpu(s, f, nd, in.repeats, &ms));
#endif
    } else if (in.device == Device::kEmulated) {
      ThrowIfError(kernels::ForEachDirection(s, f, nd, [&](const GruShape& sd, const auto& fd) {
        return kernels::DynamicGruForwardEmulated(sd, fd, in.threads > 0 ? in.threads : 128);
      }));
    } else {
      ThrowIfError(kernels::DynamicGruForwardCpu(
          s, f, kernels::ThreadsParallelFor(ResolveThreads(in.threads)), nd));
    }
  }
  return py::make_tuple(outputs, final_state, gates, ms);
}

template <typename T, typename Index>
py::tuple Backward(const Inputs& in, const Arrays<T>& a, const py::array_t<Index>& lengths,
                   const py::object& grad_outputs_obj, const py::object& grad_final_obj) {
  const GruShape& s = in.shape;
  const int nd = in.directions;
  // The forward on the same device gives the saved outputs and gates.
  Inputs saving = in;
  saving.save_gates = true;
  py::tuple fwd = Forward<T, Index>(saving, a, lengths);
  auto outputs = fwd[0].cast<py::array_t<T>>();
  auto gates = fwd[2].cast<py::array_t<T>>();
  auto grad_outputs = Array<T>(grad_outputs_obj, "grad_outputs");
  auto grad_final = Array<T>(grad_final_obj, "grad_final");
  const bool use_att = kernels::GruUsesAttention(s.cell);
  py::array_t<T> gx({s.batch, s.time, s.input});
  py::array_t<T> gatt(std::vector<int64_t>{use_att ? s.batch : 0, use_att ? s.time : 0});
  py::array_t<T> gwg(WeightShape(nd, {s.input + s.units, 2 * s.units}));
  py::array_t<T> gbg(WeightShape(nd, {2 * s.units}));
  py::array_t<T> gwc(WeightShape(nd, {s.input + s.units, s.units}));
  py::array_t<T> gbc(WeightShape(nd, {s.units}));
  GruBackwardArgs<T, Index> b;
  b.x = a.x.data();
  b.lengths = lengths.data();
  b.att = use_att ? a.att.data() : nullptr;
  b.wg = a.wg.data();
  b.wc = a.wc.data();
  b.outputs = outputs.data();
  b.gates = gates.data();
  b.grad_outputs = OptionalGrad(grad_outputs, {s.batch, s.time, nd * s.units}, "grad_outputs");
  b.grad_final = OptionalGrad(grad_final, {s.batch, nd * s.units}, "grad_final");
  b.grad_x = gx.mutable_data();
  b.grad_att = use_att ? gatt.mutable_data() : nullptr;
  b.grad_wg = gwg.mutable_data();
  b.grad_bg = gbg.mutable_data();
  b.grad_wc = gwc.mutable_data();
  b.grad_bc = gbc.mutable_data();
  double ms = 0.0;
  {
    py::gil_scoped_release release;
    if (in.device == Device::kGpu) {
#if DEEPCTR_OPS_WITH_CUDA
      ThrowIfError(RunDynamicGruBackwardOnGpu(s, b, nd, in.repeats, &ms));
#endif
    } else if (in.device == Device::kEmulated) {
      ThrowIfError(kernels::ForEachDirection(s, b, nd, [&](const GruShape& sd, const auto& bd) {
        return kernels::DynamicGruBackwardEmulated(sd, bd, in.threads > 0 ? in.threads : 128);
      }));
    } else {
      ThrowIfError(kernels::DynamicGruBackwardCpu(
          s, b, kernels::ThreadsParallelFor(ResolveThreads(in.threads)), nd));
    }
  }
  return py::make_tuple(gx, gatt, gwg, gbg, gwc, gbc, ms);
}

template <typename T>
py::tuple Dispatch(Inputs in, const py::object& x, const py::object& lengths_obj,
                   const py::object& wg, const py::object& bg, const py::object& wc,
                   const py::object& bc, const py::object& att, const py::object& grad_outputs,
                   const py::object& grad_final) {
  Arrays<T> a = ReadArrays<T>(x, wg, bg, wc, bc, att, in.directions, &in.shape);
  const py::array raw = py::array::ensure(lengths_obj);
  if (!raw || raw.size() != in.shape.batch) {
    throw py::value_error("lengths must have batch = " + std::to_string(in.shape.batch) +
                          " values");
  }
  const bool backward = !grad_outputs.is_none();
  if (py::str(raw.dtype().attr("name")).cast<std::string>() == "int32") {
    auto lengths = Array<int32_t>(lengths_obj, "lengths");
    return backward ? Backward<T, int32_t>(in, a, lengths, grad_outputs, grad_final)
                    : Forward<T, int32_t>(in, a, lengths);
  }
  auto lengths = Array<int64_t>(lengths_obj, "lengths");
  return backward ? Backward<T, int64_t>(in, a, lengths, grad_outputs, grad_final)
                  : Forward<T, int64_t>(in, a, lengths);
}

py::tuple DynamicGru(const py::object& x, const py::object& lengths, const py::object& wg,
                     const py::object& bg, const py::object& wc, const py::object& bc,
                     const py::object& att, const std::string& cell, bool reverse,
                     const py::object& grad_outputs, const py::object& grad_final,
                     const std::string& device, int threads, int repeats, int directions,
                     bool save_gates) {
  Inputs in;
  in.save_gates = save_gates;
  if (directions != 1 && directions != 2) throw py::value_error("directions must be 1 or 2");
  in.directions = directions;
  if (!kernels::ParseGruCell(cell, &in.shape.cell)) {
    throw py::value_error("cell must be GRU, AIGRU, AGRU or AUGRU, got '" + cell + "'");
  }
  in.shape.reverse = reverse;
  in.device = ParseEmulatedDevice(device);
  in.threads = threads;
  in.repeats = repeats;
  if (grad_outputs.is_none() != grad_final.is_none()) {
    throw py::value_error("pass both grad_outputs and grad_final (backward) or neither");
  }
  const py::array xa = py::array::ensure(x);
  if (!xa) throw py::value_error("x must be an array");
  const std::string dtype = py::str(xa.dtype().attr("name")).cast<std::string>();
  if (dtype == "float32") {
    return Dispatch<float>(in, x, lengths, wg, bg, wc, bc, att, grad_outputs, grad_final);
  }
  if (dtype == "float64") {
    return Dispatch<double>(in, x, lengths, wg, bg, wc, bc, att, grad_outputs, grad_final);
  }
  throw py::value_error("x must be float32 or float64, got " + dtype);
}

}  // namespace

void BindDynamicGru(py::module_& m) {
  m.def("set_dynamic_gru_cpu_isa", &kernels::SetDynamicGruCpuIsa, py::arg("name"),
        "Tests: force the GRU's CPU build ('auto', 'baseline', 'avx2', 'avx512'); False "
        "if the name is unknown or the CPU lacks it.");
  m.def("dynamic_gru", &DynamicGru, py::arg("x"), py::arg("lengths"), py::arg("wg"),
        py::arg("bg"), py::arg("wc"), py::arg("bc"), py::arg("att") = py::none(),
        py::arg("cell") = "GRU", py::arg("reverse") = false,
        py::arg("grad_outputs") = py::none(), py::arg("grad_final") = py::none(),
        py::arg("device") = "cpu", py::arg("threads") = 0, py::arg("repeats") = 1,
        py::arg("directions") = 1, py::arg("save_gates") = true,
        R"doc(Dynamic GRU forward, or backward when grad_outputs/grad_final are given.

x [B, T, E] float32/float64 (the other arrays are converted to its dtype),
lengths [B] int32/int64, weights wg [E+U, 2U], bg [2U], wc [E+U, U], bc [U],
att [B, T] (or [B, T, 1]) for AGRU/AUGRU. Forward: (outputs, final_state,
gates, milliseconds). Backward (runs the forward on the same device first;
grad_outputs [B, T, U] and grad_final [B, U], either may be an empty array
meaning zero):
(grad_x, grad_att ([0, 0] for GRU), grad_wg, grad_bg, grad_wc, grad_bc,
milliseconds). milliseconds is the GPU mean time of one launch, 0 on the CPU.
device='emulated' runs the CUDA kernels' code on the host, block by block and
thread by thread (threads = the emulated block size, default 128): a review of
the GPU code without a GPU. directions=2 is the bidirectional op: weights
stacked [2, ...] (forward, reverse), outputs [B, T, 2U] and final_state
[B, 2U] in the concat layout, gates [2, B, T, 3U], grad_x / grad_att summed
over both directions, weight gradients stacked (reverse is ignored).
save_gates=False runs the inference forward (gates null, as the op does when
nothing consumes its gates output): gates comes back empty.)doc");
}

}  // namespace bindings
}  // namespace deepctr_ops
