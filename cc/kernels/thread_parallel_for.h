// The kernels' threading seam on plain std::threads, for the callers without
// TF's pool (the pybind11 module, tools/gru_floor): the blocks CpuParallelFor
// gives TF's pool (ParallelBlockSize), taken in index order by whichever
// thread is free. Threads start per call.
#ifndef DEEPCTR_OPS_CC_KERNELS_THREAD_PARALLEL_FOR_H_
#define DEEPCTR_OPS_CC_KERNELS_THREAD_PARALLEL_FOR_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "cc/kernels/parallel_for.h"

namespace deepctr_ops {
namespace kernels {

// `threads` threads (the calling one among them). A call with less work than
// `inline_work` (units x cost per unit) runs on the calling thread: pass
// kInlineWork to time what TF runs, 0 to always split (tests that want every
// call threaded).
inline ParallelFor ThreadsParallelFor(int threads, int64_t inline_work = 0) {
  return [threads, inline_work](int64_t total, int64_t cost_per_unit,
                                const std::function<void(int64_t, int64_t)>& fn) {
    if (total <= 0) return;
    if (threads <= 1 || total == 1 || total * cost_per_unit < inline_work) {
      fn(0, total);
      return;
    }
    const int64_t block = ParallelBlockSize(total, threads);
    std::atomic<int64_t> next{0};
    auto work = [&] {
      for (int64_t b = next.fetch_add(block); b < total; b = next.fetch_add(block)) {
        fn(b, std::min(total, b + block));
      }
    };
    const int64_t helpers = std::min<int64_t>(threads, (total + block - 1) / block) - 1;
    std::vector<std::thread> pool;
    for (int64_t t = 0; t < helpers; ++t) pool.emplace_back(work);
    work();
    for (std::thread& t : pool) t.join();
  };
}

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_THREAD_PARALLEL_FOR_H_
