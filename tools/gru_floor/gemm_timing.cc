#include "tools/gru_floor/gemm_timing.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "cc/kernels/small_gemm.h"

namespace gru_floor {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

const char* IsaName() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
  return "avx2";
#else
  return "avx";
#endif
}

}  // namespace

Rate StepGemmRate(int64_t input, int64_t units, int reps) {
  using deepctr_ops::kernels::GemmAccumulate;
  const int64_t e = input, u = units, g = 3 * u, k = e + u, m = 32;
  // Small values: the accumulators stay far from overflow and denormals.
  auto filled = [](int64_t n, float v) { return std::vector<float>(n, v); };
  std::vector<float> xh = filled(m * k, 1e-3f), xrh = filled(m * k, 1e-3f);
  std::vector<float> wg = filled(k * 2 * u, 1e-3f), wc = filled(k * u, 1e-3f);
  std::vector<float> wgt = filled(2 * u * k, 1e-3f), wct = filled(u * k, 1e-3f);
  std::vector<float> pre = filled(m * g, 0.0f), dblk = filled(m * g, 1e-3f);
  std::vector<float> dxh = filled(m * k, 0.0f), acc_wg = filled(k * 2 * u, 0.0f),
                     acc_wc = filled(k * u, 0.0f);
  auto step = [&] {
    // Forward: [x_t | h] Wg as its x and h halves, then [x_t | r h] Wc.
    GemmAccumulate<float>(m, 2 * u, e, xh.data(), k, 1, wg.data(), 2 * u, pre.data(), g);
    GemmAccumulate<float>(m, 2 * u, u, xh.data() + e, k, 1, wg.data() + e * 2 * u, 2 * u,
                          pre.data(), g);
    GemmAccumulate<float>(m, u, k, xh.data(), k, 1, wc.data(), u, pre.data() + 2 * u, g);
    // Backward: dc Wc^T, dg Wg^T (two halves), the weight gradients.
    GemmAccumulate<float>(m, k, u, dblk.data() + 2 * u, g, 1, wct.data(), k, dxh.data(), k);
    GemmAccumulate<float>(m, k, u, dblk.data(), g, 1, wgt.data(), k, dxh.data(), k);
    GemmAccumulate<float>(m, k, u, dblk.data() + u, g, 1, wgt.data() + u * k, k, dxh.data(), k);
    GemmAccumulate<float>(k, 2 * u, m, xh.data(), 1, k, dblk.data(), g, acc_wg.data(), 2 * u);
    GemmAccumulate<float>(k, u, m, xrh.data(), 1, k, dblk.data() + 2 * u, g, acc_wc.data(), u);
  };
  step();  // Warm the caches.
  double best = 1e30;
  for (int run = 0; run < 5; ++run) {
    const double start = Now();
    for (int r = 0; r < reps; ++r) step();
    best = std::min(best, Now() - start);
  }
  // fwd (1) + bwd (2) times 2 (E+u) 3u flops per row.
  const double flop = 3.0 * 2.0 * m * k * g * reps;
  volatile float sink = pre[0] + dxh[0] + acc_wg[0] + acc_wc[0];
  (void)sink;
  return {flop / best / 1e9, IsaName()};
}

Rate FmaPeak(int reps) {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#if defined(__AVX512F__)
  using Vec = __m512;
  constexpr int kLanes = 16;
  auto splat = [](float v) { return _mm512_set1_ps(v); };
  auto fma = [](Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); };
  auto first = [](Vec v) { return _mm512_cvtss_f32(v); };
#else
  using Vec = __m256;
  constexpr int kLanes = 8;
  auto splat = [](float v) { return _mm256_set1_ps(v); };
  auto fma = [](Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); };
  auto first = [](Vec v) { return _mm256_cvtss_f32(v); };
#endif
  // 16 independent chains: more than latency x throughput (4 x 2) on
  // current x86 cores, so the loop runs at the FMA units' rate.
  constexpr int kChains = 16;
  constexpr int64_t kInner = 1 << 20;
  double best = 1e30;
  float result = 0;
  for (int run = 0; run < std::max(1, reps); ++run) {
    Vec acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = splat(1.0f + c * 1e-3f);
    const Vec a = splat(0.999999f), b = splat(1e-7f);
    const double start = Now();
    for (int64_t i = 0; i < kInner; ++i) {
      for (int c = 0; c < kChains; ++c) acc[c] = fma(acc[c], a, b);
      asm volatile("" : : : "memory");
    }
    best = std::min(best, Now() - start);
    for (int c = 0; c < kChains; ++c) result += first(acc[c]);
  }
  volatile float sink = result;
  (void)sink;
  return {2.0 * kLanes * kChains * kInner / best / 1e9, IsaName()};
#else
  (void)reps;
  return {0.0, IsaName()};
#endif
}

}  // namespace gru_floor
