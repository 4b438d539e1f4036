// Launch helpers shared by the CUDA launchers (.cu files only).
#ifndef DEEPCTR_OPS_CC_KERNELS_CUDA_LAUNCH_H_
#define DEEPCTR_OPS_CC_KERNELS_CUDA_LAUNCH_H_

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cc/kernels/status.h"

namespace deepctr_ops {
namespace kernels {

// Blocks for `work` items of `per_block` each, capped: the kernels loop over
// the grid, so more blocks than this only add scheduling.
inline int BlocksFor(int64_t work, int64_t per_block) {
  const int64_t blocks = (work + per_block - 1) / per_block;
  return static_cast<int>(blocks < 65535 * 32 ? blocks : 65535 * 32);
}

// The status of the last launch (and clears CUDA's sticky last error).
inline Status CheckLaunch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) return Status::Ok();
  return Status::Internal(std::string(what) + " launch failed: " + cudaGetErrorString(err));
}

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_CUDA_LAUNCH_H_
