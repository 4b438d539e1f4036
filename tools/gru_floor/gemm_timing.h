// The arithmetic side of tools/gru_floor.py: how fast the GRU kernels' small
// GEMMs can run on this CPU with their operands in cache, and the FMA peak.
// gemm_timing.cc is compiled with the instruction set the kernels dispatch
// to on this CPU (the runner picks the flags), so it times the same blocks.
#ifndef DEEPCTR_OPS_TOOLS_GRU_FLOOR_GEMM_TIMING_H_
#define DEEPCTR_OPS_TOOLS_GRU_FLOOR_GEMM_TIMING_H_

#include <cstdint>

namespace gru_floor {

struct Rate {
  double gflop_per_s = 0;
  const char* isa = "";
};

// The GEMMs of one forward and one backward step over 32 active rows (the
// kernels' chunk), shapes and strides as in dynamic_gru_cpu_impl.inc,
// repeated `reps` times; best of 5 runs.
Rate StepGemmRate(int64_t input, int64_t units, int reps);

// A register-only loop of independent FMAs (no memory operands).
Rate FmaPeak(int reps);

}  // namespace gru_floor

#endif  // DEEPCTR_OPS_TOOLS_GRU_FLOOR_GEMM_TIMING_H_
