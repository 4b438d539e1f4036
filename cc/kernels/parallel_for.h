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

// The block policy of the two bindings of the seam (CpuParallelFor on TF's
// pool, ThreadsParallelFor on std::threads). Below kInlineWork (units x cost
// per unit, ~50us) a thread hop costs more than it saves: run inline. Above
// it, threads * 64 equal blocks: ragged rows make unit costs uneven, and many
// small blocks balance them.
constexpr int64_t kInlineWork = 50000;

inline int64_t ParallelBlockSize(int64_t total, int64_t threads) {
  const int64_t blocks = total < threads * 64 ? total : threads * 64;
  return blocks > 0 ? (total + blocks - 1) / blocks : 1;
}

// Runs everything on the calling thread.
inline void SerialFor(int64_t total, int64_t /*cost_per_unit*/,
                      const std::function<void(int64_t, int64_t)>& fn) {
  if (total > 0) fn(0, total);
}

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_PARALLEL_FOR_H_
