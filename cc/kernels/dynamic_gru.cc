// CPU entry points of the dynamic GRU: the AVX baseline build of
// dynamic_gru_cpu_impl.inc, and the dispatch to the AVX2+FMA build
// (dynamic_gru_avx2.cc) on CPUs that have it.
#define DEEPCTR_OPS_GRU_ISA isa_baseline
#include "cc/kernels/dynamic_gru_cpu_impl.inc"
#undef DEEPCTR_OPS_GRU_ISA

namespace deepctr_ops {
namespace kernels {

namespace isa_avx2_fma {
template <typename T, typename Index>
Status ForwardImpl(const GruShape& shape, const GruForwardArgs<T, Index>& args,
                   const ParallelFor& parallel_for);
template <typename T, typename Index>
Status BackwardImpl(const GruShape& shape, const GruBackwardArgs<T, Index>& args,
                    const ParallelFor& parallel_for);
}  // namespace isa_avx2_fma

namespace {

bool UseAvx2Fma() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return supported;
#else
  return false;
#endif
}

}  // namespace

template <typename T, typename Index>
Status DynamicGruForwardCpu(const GruShape& shape, const GruForwardArgs<T, Index>& args,
                            const ParallelFor& parallel_for) {
  return UseAvx2Fma() ? isa_avx2_fma::ForwardImpl(shape, args, parallel_for)
                      : isa_baseline::ForwardImpl(shape, args, parallel_for);
}

template <typename T, typename Index>
Status DynamicGruBackwardCpu(const GruShape& shape, const GruBackwardArgs<T, Index>& args,
                             const ParallelFor& parallel_for) {
  return UseAvx2Fma() ? isa_avx2_fma::BackwardImpl(shape, args, parallel_for)
                      : isa_baseline::BackwardImpl(shape, args, parallel_for);
}

#define DEEPCTR_OPS_INSTANTIATE_GRU(T, Index)                                             \
  template Status DynamicGruForwardCpu<T, Index>(const GruShape&,                         \
                                                 const GruForwardArgs<T, Index>&,         \
                                                 const ParallelFor&);                     \
  template Status DynamicGruBackwardCpu<T, Index>(const GruShape&,                        \
                                                  const GruBackwardArgs<T, Index>&,       \
                                                  const ParallelFor&);
DEEPCTR_OPS_INSTANTIATE_GRU(float, int32_t)
DEEPCTR_OPS_INSTANTIATE_GRU(float, int64_t)
DEEPCTR_OPS_INSTANTIATE_GRU(double, int32_t)
DEEPCTR_OPS_INSTANTIATE_GRU(double, int64_t)
#undef DEEPCTR_OPS_INSTANTIATE_GRU

}  // namespace kernels
}  // namespace deepctr_ops
