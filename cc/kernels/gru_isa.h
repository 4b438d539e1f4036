// Which x86 vector extensions the GRU's CPU code may use in this translation
// unit: what the compiler flags enable (__AVX__ ...) or what a GRU build file
// enabled with `#pragma GCC target` before its includes (dynamic_gru_avx2.cc,
// dynamic_gru_avx512.cc, which define DEEPCTR_OPS_GRU_TARGET_AVX2 / _AVX512:
// GCC's pragma does not define __AVX2__ and friends itself).
#ifndef DEEPCTR_OPS_CC_KERNELS_GRU_ISA_H_
#define DEEPCTR_OPS_CC_KERNELS_GRU_ISA_H_

#if defined(__AVX__) || defined(DEEPCTR_OPS_GRU_TARGET_AVX2) || \
    defined(DEEPCTR_OPS_GRU_TARGET_AVX512)
#define DEEPCTR_OPS_GRU_HAS_AVX 1
#else
#define DEEPCTR_OPS_GRU_HAS_AVX 0
#endif

#if defined(__FMA__) || defined(DEEPCTR_OPS_GRU_TARGET_AVX2) || \
    defined(DEEPCTR_OPS_GRU_TARGET_AVX512)
#define DEEPCTR_OPS_GRU_HAS_FMA 1
#else
#define DEEPCTR_OPS_GRU_HAS_FMA 0
#endif

#if defined(__AVX512F__) || defined(DEEPCTR_OPS_GRU_TARGET_AVX512)
#define DEEPCTR_OPS_GRU_HAS_AVX512 1
#else
#define DEEPCTR_OPS_GRU_HAS_AVX512 0
#endif

#endif  // DEEPCTR_OPS_CC_KERNELS_GRU_ISA_H_
