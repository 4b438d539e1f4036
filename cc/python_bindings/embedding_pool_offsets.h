// A check of what EmbeddingPoolGradRows wrote, for the pybind11 runners: the
// offsets must be a running count from 0 that sizes the gradient within the
// steps. The runners fill offsets with a sentinel first, so an entry the
// kernel leaves unwritten fails here instead of sizing or placing rows.
#ifndef DEEPCTR_OPS_CC_PYTHON_BINDINGS_EMBEDDING_POOL_OFFSETS_H_
#define DEEPCTR_OPS_CC_PYTHON_BINDINGS_EMBEDDING_POOL_OFFSETS_H_

#include <cstdint>
#include <string>

#include "cc/kernels/status.h"

namespace deepctr_ops {
namespace bindings {

// The sentinel byte the runners fill offsets with (0x7f7f... is no count).
constexpr int kOffsetsSentinelByte = 0x7f;

inline kernels::Status CheckGradOffsets(const int64_t* offsets, int64_t batch,
                                        int64_t num_steps) {
  if (offsets[0] != 0) {
    return kernels::Status::Internal("gradient offsets[0] is " + std::to_string(offsets[0]) +
                                     ", not 0");
  }
  for (int64_t b = 0; b < batch; ++b) {
    if (offsets[b + 1] < offsets[b] || offsets[b + 1] > num_steps) {
      return kernels::Status::Internal("gradient offsets[" + std::to_string(b + 1) + "] = " +
                                       std::to_string(offsets[b + 1]) +
                                       " is not a running count of at most " +
                                       std::to_string(num_steps) + " steps");
    }
  }
  return kernels::Status::Ok();
}

}  // namespace bindings
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_PYTHON_BINDINGS_EMBEDDING_POOL_OFFSETS_H_
