// The threading seam of the CPU kernels: they never create threads themselves.
// The TF adapter binds this to the op's intra-op pool; the pybind11 module to
// std::thread. `fn(begin, end)` handles work units [begin, end).
#ifndef DEEPCTR_OPS_CC_KERNELS_PARALLEL_FOR_H_
#define DEEPCTR_OPS_CC_KERNELS_PARALLEL_FOR_H_

#include <cstdint>
#include <functional>

namespace deepctr_ops {
namespace kernels {

using ParallelFor = std::function<void(
    int64_t total, int64_t cost_per_unit,
    const std::function<void(int64_t begin, int64_t end)>& fn)>;

// Runs everything on the calling thread.
inline void SerialFor(int64_t total, int64_t /*cost_per_unit*/,
                      const std::function<void(int64_t, int64_t)>& fn) {
  if (total > 0) fn(0, total);
}

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_PARALLEL_FOR_H_
