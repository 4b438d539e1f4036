// Helpers every pybind11 entry of deepctr_ops._kernels uses: the thread count
// (the seam itself: kernels::ThreadsParallelFor), Status -> ValueError,
// argument parsing.
#ifndef DEEPCTR_OPS_CC_PYTHON_BINDINGS_BINDING_UTILS_H_
#define DEEPCTR_OPS_CC_PYTHON_BINDINGS_BINDING_UTILS_H_

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "cc/kernels/parallel_for.h"
#include "cc/kernels/sequence_pool.h"
#include "cc/kernels/status.h"
#include "cc/kernels/thread_parallel_for.h"

namespace deepctr_ops {
namespace bindings {

// CPU threads: `threads`, or every hardware thread when it is 0 or less.
inline int ResolveThreads(int threads) {
  return threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
}

inline void ThrowIfError(const kernels::Status& s) {
  if (!s.ok()) throw pybind11::value_error(s.message());
}

// True for "gpu", false for "cpu".
inline bool ParseDevice(const std::string& device) {
  if (device != "cpu" && device != "gpu") {
    throw pybind11::value_error("device must be 'cpu' or 'gpu', got '" + device + "'");
  }
  return device == "gpu";
}

// Kernels that also run their CUDA code on the host ("emulated").
enum class Device { kCpu, kGpu, kEmulated };

inline Device ParseEmulatedDevice(const std::string& device) {
  if (device == "cpu") return Device::kCpu;
  if (device == "emulated") return Device::kEmulated;
  if (device != "gpu") {
    throw pybind11::value_error("device must be 'cpu', 'gpu' or 'emulated', got '" + device +
                                "'");
  }
#if !DEEPCTR_OPS_WITH_CUDA
  throw pybind11::value_error("this build of deepctr_ops._kernels has no CUDA kernels");
#endif
  return Device::kGpu;
}

// The row layout of the pooling and embedding pooling entries.
inline kernels::RowLayout ParseRowLayout(const std::string& layout) {
  if (layout == "lengths") return kernels::RowLayout::kLengths;
  if (layout == "mask") return kernels::RowLayout::kMask;
  if (layout == "ragged") return kernels::RowLayout::kRagged;
  throw pybind11::value_error("layout must be 'lengths', 'mask' or 'ragged', got '" + layout +
                              "'");
}

inline std::string DtypeName(const pybind11::array& a) {
  return pybind11::str(a.dtype().attr("name")).cast<std::string>();
}

// `obj` as a C-contiguous array.
inline pybind11::array Contiguous(const pybind11::object& obj, const std::string& name) {
  pybind11::array a = pybind11::array::ensure(obj, pybind11::array::c_style);
  if (!a) throw pybind11::value_error(name + " must be an array");
  return a;
}

}  // namespace bindings
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_PYTHON_BINDINGS_BINDING_UTILS_H_
