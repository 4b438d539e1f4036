// What the host emulations of the CUDA kernels (embedding_pool_emulate.cc,
// dynamic_gru_emulate.cc) take one __syncthreads-delimited phase of a block to
// be: f run for every thread id in turn, so that each phase sees every write
// of the phase before it and none of its own block's later ones.
#ifndef DEEPCTR_OPS_CC_KERNELS_EMULATED_PHASE_H_
#define DEEPCTR_OPS_CC_KERNELS_EMULATED_PHASE_H_

namespace deepctr_ops {
namespace kernels {

template <typename F>
inline void Phase(int threads, F f) {
  for (int tid = 0; tid < threads; ++tid) f(tid);
}

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_EMULATED_PHASE_H_
