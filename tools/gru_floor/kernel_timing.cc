// Times the CPU dynamic GRU kernels (cc/kernels/dynamic_gru.h) without
// TensorFlow, for tools/gru_floor.py:
//
//   kernel_timing kernels BATCH TIME INPUT THREADS CELL REPS [DIRECTIONS]
//   kernel_timing gemm INPUT UNITS REPS
//   kernel_timing peak REPS
//
// `kernels`: a forward that saves its gates, then the backward, on lengths
// uniform in [0, T] (units = input, as the benchmark's rows); the fastest of
// REPS calls of each; DIRECTIONS 2 times the bidirectional call
// (dynamic_gru_directions.h). `gemm`: the small GEMMs of one forward and one
// backward step over 32 active rows (the kernels' chunk), operands in cache,
// with the per-valid-step FLOPs of fwd+bwd. `peak`: a register-only FMA loop.
// Each prints one line of `key=value` fields.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cc/kernels/dynamic_gru.h"
#include "cc/kernels/thread_parallel_for.h"
#include "tools/gru_floor/gemm_timing.h"

namespace {

namespace k = deepctr_ops::kernels;

double Seconds(const std::function<void()>& fn) {
  const auto start = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int TimeKernels(int64_t batch, int64_t time, int64_t input, int threads, const std::string& cell,
                int reps, int directions) {
  const int64_t units = input;
  k::GruShape shape;
  shape.batch = batch;
  shape.time = time;
  shape.input = input;
  shape.units = units;
  if (!k::ParseGruCell(cell, &shape.cell)) {
    std::fprintf(stderr, "unknown cell %s\n", cell.c_str());
    return 2;
  }
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-0.5f, 0.5f);
  auto random = [&](size_t n, float scale, float shift) {
    std::vector<float> v(n);
    for (float& f : v) f = uniform(rng) * scale + shift;
    return v;
  };
  const size_t bt = static_cast<size_t>(batch * time);
  std::vector<float> x = random(bt * input, 1.0f, 0.0f);
  const int64_t d = directions;
  std::vector<float> wg = random(d * (input + units) * 2 * units, 0.3f, 0.0f);
  std::vector<float> wc = random(d * (input + units) * units, 0.3f, 0.0f);
  std::vector<float> att = random(bt, 1.0f, 0.5f);
  std::vector<float> bg(d * 2 * units, 1.0f), bc(d * units, 0.0f);
  std::vector<int32_t> lengths(batch);
  std::uniform_int_distribution<int32_t> length(0, static_cast<int32_t>(time));
  int64_t steps = 0;
  for (int32_t& len : lengths) steps += (len = length(rng));
  std::vector<float> outputs(bt * d * units), final_state(batch * d * units),
      gates(d * bt * 3 * units);
  std::vector<float> grad_outputs(bt * d * units), grad_final(batch * d * units, 0.0f);
  std::vector<float> grad_x(bt * input), grad_att(bt), grad_wg(wg.size()), grad_bg(bg.size()),
      grad_wc(wc.size()), grad_bc(bc.size());
  const bool attention = k::GruUsesAttention(shape.cell);

  k::GruForwardArgs<float, int32_t> fwd;
  fwd.x = x.data();
  fwd.lengths = lengths.data();
  fwd.att = attention ? att.data() : nullptr;
  fwd.wg = wg.data();
  fwd.bg = bg.data();
  fwd.wc = wc.data();
  fwd.bc = bc.data();
  fwd.outputs = outputs.data();
  fwd.final_state = final_state.data();
  fwd.gates = gates.data();
  k::GruBackwardArgs<float, int32_t> bwd;
  bwd.x = x.data();
  bwd.lengths = lengths.data();
  bwd.att = fwd.att;
  bwd.wg = wg.data();
  bwd.wc = wc.data();
  bwd.outputs = outputs.data();
  bwd.gates = gates.data();
  bwd.grad_outputs = grad_outputs.data();
  bwd.grad_final = grad_final.data();
  bwd.grad_x = grad_x.data();
  bwd.grad_att = attention ? grad_att.data() : nullptr;
  bwd.grad_wg = grad_wg.data();
  bwd.grad_bg = grad_bg.data();
  bwd.grad_wc = grad_wc.data();
  bwd.grad_bc = grad_bc.data();

  // As TF runs them: small calls (the weight-gradient sums) inline.
  const k::ParallelFor parallel_for = k::ThreadsParallelFor(threads, k::kInlineWork);
  double best_fwd = 1e30, best_bwd = 1e30;
  for (int r = 0; r < reps; ++r) {
    k::Status status = k::Status::Ok();
    best_fwd = std::min(best_fwd, Seconds([&] {
      status = k::DynamicGruForwardCpu<float, int32_t>(shape, fwd, parallel_for, directions);
    }));
    if (!status.ok()) return 1;
    // d sum(outputs^2) / d outputs, as the benchmark's loss.
    for (size_t i = 0; i < outputs.size(); ++i) grad_outputs[i] = 2.0f * outputs[i];
    best_bwd = std::min(best_bwd, Seconds([&] {
      status = k::DynamicGruBackwardCpu<float, int32_t>(shape, bwd, parallel_for, directions);
    }));
    if (!status.ok()) return 1;
  }
  // Checksum of what the two passes produce (equal for every thread count).
  double checksum = 0;
  for (float v : outputs) checksum += v;
  for (float v : grad_x) checksum += v;
  for (float v : grad_wg) checksum += v;
  for (float v : grad_wc) checksum += v;
  const double fwd_flop = 2.0 * d * steps * (input + units) * 3 * units;
  std::printf("valid_steps=%lld fwd_gflop=%.9g bwd_gflop=%.9g fwd_ms=%.4f bwd_ms=%.4f "
              "checksum=%.9g\n",
              static_cast<long long>(steps), fwd_flop / 1e9, 2 * fwd_flop / 1e9,
              best_fwd * 1e3, best_bwd * 1e3, checksum);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "kernels" && (argc == 8 || argc == 9)) {
    const int directions = argc == 9 ? std::atoi(argv[8]) : 1;
    if (directions != 1 && directions != 2) {
      std::fprintf(stderr, "DIRECTIONS must be 1 or 2\n");
      return 2;
    }
    return TimeKernels(std::atoll(argv[2]), std::atoll(argv[3]), std::atoll(argv[4]),
                       std::atoi(argv[5]), argv[6], std::atoi(argv[7]), directions);
  }
  if (mode == "gemm" && argc == 5) {
    const gru_floor::Rate rate =
        gru_floor::StepGemmRate(std::atoll(argv[2]), std::atoll(argv[3]), std::atoi(argv[4]));
    std::printf("gflop_per_s=%.3f isa=%s\n", rate.gflop_per_s, rate.isa);
    return 0;
  }
  if (mode == "peak" && argc == 3) {
    const gru_floor::Rate rate = gru_floor::FmaPeak(std::atoi(argv[2]));
    std::printf("gflop_per_s=%.3f isa=%s\n", rate.gflop_per_s, rate.isa);
    return 0;
  }
  std::fprintf(stderr,
               "usage: kernel_timing kernels BATCH TIME INPUT THREADS CELL REPS [DIRECTIONS]\n"
               "       kernel_timing gemm INPUT UNITS REPS\n"
               "       kernel_timing peak REPS\n");
  return 2;
}
