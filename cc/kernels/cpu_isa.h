// Which x86 vector build of a kernel family runs (the DIN attention pooling
// and the GRU each compile a baseline AVX, an AVX2+FMA and an AVX-512 copy of
// their loops): the best the CPU supports, unless a test forced one through
// the pybind11 module's set_*_cpu_isa.
#ifndef DEEPCTR_OPS_CC_KERNELS_CPU_ISA_H_
#define DEEPCTR_OPS_CC_KERNELS_CPU_ISA_H_

#include <atomic>
#include <string>

namespace deepctr_ops {
namespace kernels {

enum class CpuIsa : int { kBaseline = 0, kAvx2Fma = 1, kAvx512 = 2 };

// The best build this CPU runs. kAvx512 needs avx512f, and avx512vl too when
// the family's AVX-512 build uses 256-bit AVX-512 instructions.
inline CpuIsa DetectCpuIsa(bool need_avx512vl) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  static const bool avx512f = __builtin_cpu_supports("avx512f");
  static const bool avx512vl = __builtin_cpu_supports("avx512vl");
  if (!avx2_fma) return CpuIsa::kBaseline;
  return avx512f && (avx512vl || !need_avx512vl) ? CpuIsa::kAvx512 : CpuIsa::kAvx2Fma;
#else
  (void)need_avx512vl;
  return CpuIsa::kBaseline;
#endif
}

// One kernel family's choice of build.
class CpuIsaChoice {
 public:
  explicit constexpr CpuIsaChoice(bool need_avx512vl) : need_avx512vl_(need_avx512vl) {}

  CpuIsa Best() const {
    const int forced = forced_.load(std::memory_order_relaxed);
    return forced < 0 ? DetectCpuIsa(need_avx512vl_) : static_cast<CpuIsa>(forced);
  }

  // "auto" (the best supported), "baseline", "avx2" or "avx512"; false for an
  // unknown name or a build this CPU cannot run.
  bool Force(const std::string& name) {
    CpuIsa isa;
    if (name == "auto") {
      forced_.store(-1);
      return true;
    }
    if (name == "baseline") {
      isa = CpuIsa::kBaseline;
    } else if (name == "avx2") {
      isa = CpuIsa::kAvx2Fma;
    } else if (name == "avx512") {
      isa = CpuIsa::kAvx512;
    } else {
      return false;
    }
    if (static_cast<int>(isa) > static_cast<int>(DetectCpuIsa(need_avx512vl_))) return false;
    forced_.store(static_cast<int>(isa));
    return true;
  }

 private:
  const bool need_avx512vl_;
  std::atomic<int> forced_{-1};  // -1: Best() is what the CPU supports.
};

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_CPU_ISA_H_
