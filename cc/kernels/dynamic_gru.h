// Length-aware GRU / AGRU / AUGRU over padded sequences (DeepCTR's DynamicGRU,
// DIEN), TF-free.
//
// Contract shared by the CPU and CUDA implementations (T = float or double):
// * x [B, T, E], lengths [B] (Index = int32 or int64; clamped to [0, T] like
//   tf.sequence_mask), att [B, T] (AGRU/AUGRU only; may be null for GRU).
// * Weights in DeepCTR's layout: wg [(E+U), 2U] (reset half first, update half
//   second), bg [2U], wc [(E+U), U], bc [U]. Rows [0, E) multiply x_t, rows
//   [E, E+U) the state.
// * Each row b runs L = clamp(len[b], 0, T) steps from a zero state; step s
//   reads time t = s (forward) or t = L-1-s (reverse):
//     [r | z] = sigmoid(x_t Wg[:E] + h Wg[E:] + bg)
//     c       = tanh(x_t Wc[:E] + (r * h) Wc[E:] + bc)
//     GRU:    h' = z * h + (1 - z) * c
//     AGRU:   h' = (1 - a) * h + a * c                 (z unused)
//     AUGRU:  z~ = (1 - a) * z;  h' = z~ * h + (1 - z~) * c
//   outputs[b, t] = h'; outputs at t >= L are 0; final[b] = the state after the
//   last step (0 for L = 0). Padded steps are never read.
// * gates [B, T, 3U] holds (r, z, c) of every valid step for the backward (0 in
//   padding). It may be null: an inference-only forward (the op's gates output
//   has no consumer, e.g. in a serving graph) then saves nothing.
// * Backward (BPTT): from grad_outputs [B, T, U] and grad_final [B, U] (either
//   may be null: zero, e.g. grad_outputs of a model that uses only the final
//   state, which then costs no [B, T, U] tensor of zeros) gives
//   grad_x [B, T, E] (0 in padding), grad_att [B, T] (0 in padding; only for
//   AGRU/AUGRU), and the weight gradients, accumulated per row chunk and summed.
#ifndef DEEPCTR_OPS_CC_KERNELS_DYNAMIC_GRU_H_
#define DEEPCTR_OPS_CC_KERNELS_DYNAMIC_GRU_H_

#include <cstdint>
#include <string>

#include "cc/kernels/host_device.h"
#include "cc/kernels/parallel_for.h"
#include "cc/kernels/status.h"

namespace deepctr_ops {
namespace kernels {

enum class GruCell { kGru = 0, kAgru = 1, kAugru = 2 };

// Parses "GRU" / "AIGRU" (a plain GRU on attended inputs), "AGRU", "AUGRU".
inline bool ParseGruCell(const std::string& name, GruCell* cell) {
  if (name == "GRU" || name == "AIGRU") {
    *cell = GruCell::kGru;
  } else if (name == "AGRU") {
    *cell = GruCell::kAgru;
  } else if (name == "AUGRU") {
    *cell = GruCell::kAugru;
  } else {
    return false;
  }
  return true;
}

struct GruShape {
  int64_t batch = 0;  // B
  int64_t time = 0;   // T
  int64_t input = 0;  // E
  int64_t units = 0;  // U
  GruCell cell = GruCell::kGru;
  bool reverse = false;
};

DCTR_HOST_DEVICE inline bool GruUsesAttention(GruCell cell) { return cell != GruCell::kGru; }

inline Status ValidateGruShape(const GruShape& s) {
  if (s.batch < 0 || s.time < 0 || s.input < 0 || s.units < 0) {
    return Status::InvalidArgument("dynamic GRU sizes must be non-negative");
  }
  return Status::Ok();
}

template <typename T, typename Index>
struct GruForwardArgs {
  const T* x = nullptr;
  const Index* lengths = nullptr;
  const T* att = nullptr;  // [B, T]; null for GRU.
  const T* wg = nullptr;
  const T* bg = nullptr;
  const T* wc = nullptr;
  const T* bc = nullptr;
  T* outputs = nullptr;  // [B, T, U]
  T* final_state = nullptr;  // [B, U]
  T* gates = nullptr;    // [B, T, 3U]; null: not saved (inference).
  // Row stride of outputs and final_state; 0: U. A bidirectional call writes
  // each direction's U columns of one [B, T, 2U] / [B, 2U] tensor (stride 2U).
  int64_t out_stride = 0;
};

template <typename T, typename Index>
struct GruBackwardArgs {
  const T* x = nullptr;
  const Index* lengths = nullptr;
  const T* att = nullptr;
  const T* wg = nullptr;
  const T* wc = nullptr;
  const T* outputs = nullptr;
  const T* gates = nullptr;
  const T* grad_outputs = nullptr;  // [B, T, U]; null: zero.
  const T* grad_final = nullptr;    // [B, U]; null: zero.
  T* grad_x = nullptr;              // [B, T, E]
  T* grad_att = nullptr;            // [B, T]; null for GRU.
  T* grad_wg = nullptr;             // [(E+U), 2U]
  T* grad_bg = nullptr;             // [2U]
  T* grad_wc = nullptr;             // [(E+U), U]
  T* grad_bc = nullptr;             // [U]
  // Row stride of outputs, grad_outputs and grad_final; 0: U (see above).
  int64_t out_stride = 0;
  // Add to grad_x and grad_att (valid steps only; their padding is left as
  // is) instead of writing them: the second direction of a bidirectional call.
  bool accumulate_input_grads = false;
};

DCTR_HOST_DEVICE inline int64_t GruOutStride(int64_t out_stride, int64_t units) {
  return out_stride > 0 ? out_stride : units;
}

// CPU; host pointers. T is float or double, Index int32_t or int64_t
// (explicitly instantiated). directions = 2 runs a bidirectional GRU whose
// arguments hold both directions (dynamic_gru_directions.h) in one parallel
// loop; shape.reverse is then ignored.
template <typename T, typename Index>
Status DynamicGruForwardCpu(const GruShape& shape, const GruForwardArgs<T, Index>& args,
                            const ParallelFor& parallel_for, int directions = 1);

template <typename T, typename Index>
Status DynamicGruBackwardCpu(const GruShape& shape, const GruBackwardArgs<T, Index>& args,
                             const ParallelFor& parallel_for, int directions = 1);

// Tests only: which CPU build the two functions above use: "auto" (the best
// the CPU supports, the default), "baseline" (AVX), "avx2" (AVX2+FMA) or
// "avx512". False (and no change) for an unknown name or one the CPU lacks.
bool SetDynamicGruCpuIsa(const std::string& name);

// CUDA, asynchronous on `stream` (a cudaStream_t; nullptr is the default
// stream); device pointers. The backward zeroes and then atomically
// accumulates the weight gradients.
template <typename T, typename Index>
Status LaunchDynamicGruForward(const GruShape& shape, const GruForwardArgs<T, Index>& args,
                               void* stream);

template <typename T, typename Index>
Status LaunchDynamicGruBackward(const GruShape& shape, const GruBackwardArgs<T, Index>& args,
                                void* stream);

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_DYNAMIC_GRU_H_
