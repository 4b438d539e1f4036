// The CPU pooling kernels' work units, the prefetchers that feed their
// forward and the helpers both CPU pooling files (sequence_pool.cc,
// embedding_pool.cc) share: width dispatch and streaming stores. Internal to
// those files; a header of its own keeps them about the pooling math.
#ifndef DEEPCTR_OPS_CC_KERNELS_SEQUENCE_POOL_PREFETCH_H_
#define DEEPCTR_OPS_CC_KERNELS_SEQUENCE_POOL_PREFETCH_H_

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "cc/kernels/prefetch.h"
#include "cc/kernels/sequence_pool.h"
#include "cc/kernels/sequence_pool_rows.h"

namespace deepctr_ops {
namespace kernels {
namespace pool_cpu {

// A unit of CPU work: one batch row, a block of up to kDepthBlock columns.
constexpr int64_t kDepthBlock = 64;

struct Unit {
  int64_t batch_row;
  int64_t col_begin;
  int64_t cols;
};

inline int64_t BlocksPerRow(int64_t depth) { return (depth + kDepthBlock - 1) / kDepthBlock; }

inline Unit UnitAt(int64_t unit, int64_t depth) {
  const int64_t blocks = BlocksPerRow(depth);
  Unit u;
  u.batch_row = unit / blocks;
  u.col_begin = (unit % blocks) * kDepthBlock;
  u.cols = std::min(kDepthBlock, depth - u.col_begin);
  return u;
}

// Calls fn(width) with the unit width as a compile-time constant for the
// common embedding sizes (0 = only known at run time). A constant width lets
// the compiler unroll the column loop and keep accumulators in registers.
template <typename Fn>
void DispatchWidth(int64_t cols, Fn fn) {
  switch (cols) {
    case 64: fn(std::integral_constant<int64_t, 64>()); break;
    case 32: fn(std::integral_constant<int64_t, 32>()); break;
    case 16: fn(std::integral_constant<int64_t, 16>()); break;
    case 8: fn(std::integral_constant<int64_t, 8>()); break;
    default: fn(std::integral_constant<int64_t, 0>()); break;
  }
}

// Gradients at least this large are written with non-temporal stores: they
// do not fit the caches anyway, are written exactly once, and streaming skips
// the read-for-ownership of every line. Smaller ones stay in cache for the
// op that consumes them next.
constexpr int64_t kStreamingStoreBytes = int64_t{8} << 20;

// The max backward compares argmax with the step in the accumulation type, so
// that its vectorized loop stays in one register type (the build targets AVX,
// which has no 256-bit integer compares). Rows longer than that type counts
// exactly ignore argmax and re-read the values, as for kArgmaxTied.
template <typename Acc>
constexpr int64_t MaxIndexableSteps() {
  return std::min<int64_t>(INT32_MAX, int64_t{1} << std::numeric_limits<Acc>::digits);
}

// Walks the steps the forward will read, kLeadSteps ahead of it and across
// rows, prefetching each (only those: never a padded step). A dense row is
// read as a prefix and then skipped, so the hardware prefetcher, which follows
// address streams, loses the stream at every row and restarts it a memory
// latency late (on a 2-core VM a cold B4096 T50 E64 read this way ran ~35%
// slower than the same bytes read contiguously). With this lead that forward
// is 25% faster (max: 40%), forward + backward 10% (max: 20%).
template <typename T, typename Index>
class StepPrefetcher {
 public:
  static constexpr int kLeadSteps = 32;

  // Units [unit, unit_end) are the ones this thread is about to pool, in order.
  StepPrefetcher(const PoolRows<Index>& rows, PoolMode mode, const T* values, int64_t unit,
                 int64_t unit_end)
      : rows_(rows), max_mode_(mode == PoolMode::kMax), values_(values), unit_(unit),
        unit_end_(unit_end) {
    if (unit_ >= unit_end_) return;
    EnterUnit();
    for (int i = 0; i < kLeadSteps; ++i) Step();
  }

  // Called once per step the forward reads: prefetches one more step ahead.
  inline void Step() {
    if (step_ < end_ && plan_.mask == nullptr) {
      PrefetchLines(first_ + step_ * rows_.depth, cols_);
      ++step_;
      return;
    }
    StepSlow();
  }

 private:
  void StepSlow() {
    while (unit_ < unit_end_) {
      while (step_ < end_) {
        const int64_t t = step_++;
        if (plan_.mask == nullptr || plan_.mask[t]) {
          PrefetchLines(first_ + t * rows_.depth, cols_);
          return;
        }
      }
      if (++unit_ == unit_end_) return;
      EnterUnit();
    }
  }

  void EnterUnit() {
    const Unit u = UnitAt(unit_, rows_.depth);
    plan_ = PlanRow(rows_, u.batch_row);
    // Max reads every step of a row that has no valid one; such a row's mask
    // is then ignored.
    const bool every_step = max_mode_ && MaxShiftsPadding(plan_);
    if (every_step) plan_.mask = nullptr;
    end_ = every_step ? plan_.extent : plan_.valid_end;
    step_ = 0;
    first_ = values_ + plan_.begin * rows_.depth + u.col_begin;
    cols_ = u.cols;
  }

  const PoolRows<Index>& rows_;
  const bool max_mode_;
  const T* const values_;
  int64_t unit_;  // The unit the lead is in.
  const int64_t unit_end_;
  RowPlan plan_;
  int64_t step_ = 0;
  int64_t end_ = 0;
  const T* first_ = nullptr;
  int64_t cols_ = 0;
};

// For valid steps that fit the caches, where the StepPrefetcher's bookkeeping
// costs more than it saves (B1024 T200 E32 with ~20 valid steps, 2.6 MB:
// forward 20% slower with it; prefetching just the next row's step gained
// nothing measurable there either), and for ragged rows, which are contiguous
// and which the hardware prefetcher follows by itself.
struct NoPrefetch {
  void Step() {}
};

// Valid steps from this size on use the StepPrefetcher. This runs serially
// before the parallel work, so lengths are sampled (at most kLengthSamples
// rows, evenly spaced) rather than summed, and a mask is not counted at all:
// its row count bounds the valid steps.
constexpr int64_t kStepPrefetchBytes = int64_t{8} << 20;
constexpr int64_t kLengthSamples = 1024;

template <typename T, typename Index>
bool WorthStepPrefetching(const PoolRows<Index>& rows) {
  double valid_steps = static_cast<double>(rows.num_steps);
  if (rows.layout == RowLayout::kLengths && rows.batch > 0) {
    const int64_t stride = std::max<int64_t>(1, rows.batch / kLengthSamples);
    int64_t sampled_rows = 0;
    int64_t sampled_steps = 0;
    for (int64_t b = 0; b < rows.batch; b += stride, ++sampled_rows) {
      sampled_steps += ClampIndex(rows.lengths[b], 0, rows.max_time);
    }
    valid_steps = static_cast<double>(sampled_steps) / sampled_rows * rows.batch;
  }
  return valid_steps * rows.depth * sizeof(T) >= static_cast<double>(kStepPrefetchBytes);
}

}  // namespace pool_cpu
}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_SEQUENCE_POOL_PREFETCH_H_
