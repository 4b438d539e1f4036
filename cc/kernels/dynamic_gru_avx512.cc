// The AVX-512 build of the dynamic GRU's CPU implementation: on x86-64 with GCC
// the code below is compiled for AVX-512F+AVX2+FMA by the pragma (no per-file
// build flags); dynamic_gru.cc calls it only on CPUs that have all three.
// Elsewhere (e.g. clang) it is the baseline code under another name.
// GCC 12's avx512fintrin.h trips -Wmaybe-uninitialized on its own
// _mm512_undefined_* placeholders (a known false positive).
// Everything that is not the GRU's own code is included before the pragma, so
// that it keeps the baseline target: GCC 13 refuses to inline the standard
// library's always_inline functions across targets, and the inline functions
// this file emits (library templates, Status) must not carry AVX2/AVX-512 code
// into the other translation units that share them at link time.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "cc/kernels/dynamic_gru.h"
#include "cc/kernels/dynamic_gru_directions.h"
#include "cc/kernels/host_device.h"
#include "cc/kernels/parallel_for.h"
#include "cc/kernels/prefetch.h"
#include "cc/kernels/status.h"

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
                                        const ParallelFor&, int);                         \
  template Status BackwardImpl<T, Index>(const GruShape&, const GruBackwardArgs<T, Index>&, \
                                         const ParallelFor&, int);
DEEPCTR_OPS_INSTANTIATE_GRU(float, int32_t)
DEEPCTR_OPS_INSTANTIATE_GRU(float, int64_t)
DEEPCTR_OPS_INSTANTIATE_GRU(double, int32_t)
DEEPCTR_OPS_INSTANTIATE_GRU(double, int64_t)
#undef DEEPCTR_OPS_INSTANTIATE_GRU

}  // namespace isa_avx512
}  // namespace kernels
}  // namespace deepctr_ops
