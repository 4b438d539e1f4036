// Host emulation of the dynamic GRU's CUDA kernels (dynamic_gru_rowwise.h):
// every block and every thread of a block runs serially, phase by phase, as
// the kernels do between __syncthreads. It reviews the GPU code where there is
// no GPU; it is not a fast CPU path.
#ifndef DEEPCTR_OPS_CC_KERNELS_DYNAMIC_GRU_EMULATE_H_
#define DEEPCTR_OPS_CC_KERNELS_DYNAMIC_GRU_EMULATE_H_

#include "cc/kernels/dynamic_gru.h"
#include "cc/kernels/status.h"

namespace deepctr_ops {
namespace kernels {

// `threads` is the emulated block size (the kernels use 128).
template <typename T, typename Index>
Status DynamicGruForwardEmulated(const GruShape& shape, const GruForwardArgs<T, Index>& args,
                                 int threads);

template <typename T, typename Index>
Status DynamicGruBackwardEmulated(const GruShape& shape, const GruBackwardArgs<T, Index>& args,
                                  int threads);

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_DYNAMIC_GRU_EMULATE_H_
