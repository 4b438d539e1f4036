// CPU entry points of the dynamic GRU: the AVX baseline build of
// dynamic_gru_cpu_impl.inc, and the dispatch to the AVX2+FMA build
// (dynamic_gru_avx2.cc) or the AVX-512 build (dynamic_gru_avx512.cc) on CPUs
// that have them.
#include <string>

#include "cc/kernels/cpu_isa.h"

#define DEEPCTR_OPS_GRU_ISA isa_baseline
#include "cc/kernels/dynamic_gru_cpu_impl.inc"
#undef DEEPCTR_OPS_GRU_ISA

namespace deepctr_ops {
namespace kernels {

namespace isa_avx2_fma {
template <typename T, typename Index>
Status ForwardImpl(const GruShape& shape, const GruForwardArgs<T, Index>& args,
                   const ParallelFor& parallel_for, int directions);
template <typename T, typename Index>
Status BackwardImpl(const GruShape& shape, const GruBackwardArgs<T, Index>& args,
                    const ParallelFor& parallel_for, int directions);
}  // namespace isa_avx2_fma

namespace isa_avx512 {
template <typename T, typename Index>
Status ForwardImpl(const GruShape& shape, const GruForwardArgs<T, Index>& args,
                   const ParallelFor& parallel_for, int directions);
template <typename T, typename Index>
Status BackwardImpl(const GruShape& shape, const GruBackwardArgs<T, Index>& args,
                    const ParallelFor& parallel_for, int directions);
}  // namespace isa_avx512

namespace {

using Isa = CpuIsa;

CpuIsaChoice isa_choice(/*need_avx512vl=*/false);

}  // namespace

template <typename T, typename Index>
Status DynamicGruForwardCpu(const GruShape& shape, const GruForwardArgs<T, Index>& args,
                            const ParallelFor& parallel_for, int directions) {
  if (directions != 1 && directions != 2) {
    return Status::InvalidArgument("a dynamic GRU has 1 or 2 directions");
  }
  switch (isa_choice.Best()) {
    case Isa::kAvx512:
      return isa_avx512::ForwardImpl(shape, args, parallel_for, directions);
    case Isa::kAvx2Fma:
      return isa_avx2_fma::ForwardImpl(shape, args, parallel_for, directions);
    default:
      return isa_baseline::ForwardImpl(shape, args, parallel_for, directions);
  }
}

template <typename T, typename Index>
Status DynamicGruBackwardCpu(const GruShape& shape, const GruBackwardArgs<T, Index>& args,
                             const ParallelFor& parallel_for, int directions) {
  if (directions != 1 && directions != 2) {
    return Status::InvalidArgument("a dynamic GRU has 1 or 2 directions");
  }
  switch (isa_choice.Best()) {
    case Isa::kAvx512:
      return isa_avx512::BackwardImpl(shape, args, parallel_for, directions);
    case Isa::kAvx2Fma:
      return isa_avx2_fma::BackwardImpl(shape, args, parallel_for, directions);
    default:
      return isa_baseline::BackwardImpl(shape, args, parallel_for, directions);
  }
}

bool SetDynamicGruCpuIsa(const std::string& name) { return isa_choice.Force(name); }

#define DEEPCTR_OPS_INSTANTIATE_GRU(T, Index)                                             \
  template Status DynamicGruForwardCpu<T, Index>(const GruShape&,                         \
                                                 const GruForwardArgs<T, Index>&,         \
                                                 const ParallelFor&, int);                \
  template Status DynamicGruBackwardCpu<T, Index>(const GruShape&,                        \
                                                  const GruBackwardArgs<T, Index>&,       \
                                                  const ParallelFor&, int);
DEEPCTR_OPS_INSTANTIATE_GRU(float, int32_t)
DEEPCTR_OPS_INSTANTIATE_GRU(float, int64_t)
DEEPCTR_OPS_INSTANTIATE_GRU(double, int32_t)
DEEPCTR_OPS_INSTANTIATE_GRU(double, int64_t)
#undef DEEPCTR_OPS_INSTANTIATE_GRU

}  // namespace kernels
}  // namespace deepctr_ops
