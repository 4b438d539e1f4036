// The AVX-512 build of the dynamic GRU's CPU implementation: on x86-64 with GCC
// the code below is compiled for AVX-512F+AVX2+FMA by the pragma (no per-file
// build flags); dynamic_gru.cc calls it only on CPUs that have all three.
// Elsewhere (e.g. clang) it is the baseline code under another name.
// GCC 12's avx512fintrin.h trips -Wmaybe-uninitialized on its own
// _mm512_undefined_* placeholders (a known false positive).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("avx,avx2,fma,avx512f")
#define DEEPCTR_OPS_GRU_TARGET_AVX512 1
#endif
#define DEEPCTR_OPS_GRU_ISA isa_avx512
#include "cc/kernels/dynamic_gru_cpu_impl.inc"
#undef DEEPCTR_OPS_GRU_ISA

namespace deepctr_ops {
namespace kernels {
namespace isa_avx512 {

#define DEEPCTR_OPS_INSTANTIATE_GRU(T, Index)                                             \
  template Status ForwardImpl<T, Index>(const GruShape&, const GruForwardArgs<T, Index>&, \
                                        const ParallelFor&);                              \
  template Status BackwardImpl<T, Index>(const GruShape&, const GruBackwardArgs<T, Index>&, \
                                         const ParallelFor&);
DEEPCTR_OPS_INSTANTIATE_GRU(float, int32_t)
DEEPCTR_OPS_INSTANTIATE_GRU(float, int64_t)
DEEPCTR_OPS_INSTANTIATE_GRU(double, int32_t)
DEEPCTR_OPS_INSTANTIATE_GRU(double, int64_t)
#undef DEEPCTR_OPS_INSTANTIATE_GRU

}  // namespace isa_avx512
}  // namespace kernels
}  // namespace deepctr_ops
