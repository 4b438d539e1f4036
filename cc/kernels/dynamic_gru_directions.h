// The bidirectional dynamic GRU as the one-direction kernels run twice over
// one set of tensors. With D = 2 directions (0: forward, 1: reverse):
//   weights wg [D, E+U, 2U], bg [D, 2U], wc [D, E+U, U], bc [D, U];
//   outputs [B, T, D*U] and final_state [B, D*U], direction d in columns
//   [d*U, (d+1)*U) (the concat layout, so no concat op follows);
//   gates [D, B, T, 3U];
//   backward: grad_outputs [B, T, D*U] and grad_final [B, D*U] (either may be
//   null: zero), weight gradients stacked like the weights, and grad_x /
//   grad_att written by direction 0 and added to by direction 1 (run them in
//   that order).
// DirectionArgs turns such "all directions" arguments into one direction's.
// D = 1 is the plain op: the arguments come back unchanged.
#ifndef DEEPCTR_OPS_CC_KERNELS_DYNAMIC_GRU_DIRECTIONS_H_
#define DEEPCTR_OPS_CC_KERNELS_DYNAMIC_GRU_DIRECTIONS_H_

#include <cstdint>

#include "cc/kernels/dynamic_gru.h"
#include "cc/kernels/status.h"

namespace deepctr_ops {
namespace kernels {

// The shape of direction d: direction 1 of two runs in reverse.
inline GruShape DirectionShape(const GruShape& s, int directions, int d) {
  GruShape out = s;
  if (directions == 2) out.reverse = d == 1;
  return out;
}

// Where direction d starts in each stacked tensor (elements): the layout
// above, in one place for the forward and the backward arguments.
struct DirectionOffsets {
  int64_t wg, bg, wc, bc;  // Weights, and their gradients.
  int64_t columns;         // outputs, final_state and their gradients.
  int64_t gates;
};

inline DirectionOffsets OffsetsOf(const GruShape& s, int d) {
  const int64_t e = s.input, u = s.units;
  return {d * (e + u) * 2 * u, d * 2 * u, d * (e + u) * u, d * u, d * u,
          d * s.batch * s.time * 3 * u};
}

// The fields the forward and backward arguments share: the weights read, the
// saved outputs and gates, and the row stride of the concat layout.
template <typename Args>
void ShiftSharedFields(const DirectionOffsets& o, int64_t out_stride, Args* a) {
  a->wg += o.wg;
  a->wc += o.wc;
  a->outputs += o.columns;
  if (a->gates != nullptr) a->gates += o.gates;  // Null: an inference forward.
  a->out_stride = out_stride;
}

template <typename T, typename Index>
GruForwardArgs<T, Index> DirectionArgs(const GruShape& s, const GruForwardArgs<T, Index>& all,
                                       int directions, int d) {
  if (directions == 1) return all;
  const DirectionOffsets o = OffsetsOf(s, d);
  GruForwardArgs<T, Index> a = all;
  ShiftSharedFields(o, directions * s.units, &a);
  a.bg += o.bg;
  a.bc += o.bc;
  a.final_state += o.columns;
  return a;
}

template <typename T, typename Index>
GruBackwardArgs<T, Index> DirectionArgs(const GruShape& s, const GruBackwardArgs<T, Index>& all,
                                        int directions, int d) {
  if (directions == 1) return all;
  const DirectionOffsets o = OffsetsOf(s, d);
  GruBackwardArgs<T, Index> a = all;
  ShiftSharedFields(o, directions * s.units, &a);
  if (a.grad_outputs != nullptr) a.grad_outputs += o.columns;
  if (a.grad_final != nullptr) a.grad_final += o.columns;
  a.grad_wg += o.wg;
  a.grad_bg += o.bg;
  a.grad_wc += o.wc;
  a.grad_bc += o.bc;
  a.accumulate_input_grads = d > 0;
  return a;
}

// Calls run(shape, args) for each direction in order (the backward's
// direction 1 adds to direction 0's grad_x), stopping at the first error:
// how the GPU and the host emulation run a bidirectional call.
template <typename Args, typename Run>
Status ForEachDirection(const GruShape& s, const Args& all, int directions, Run run) {
  Status status = Status::Ok();
  for (int d = 0; d < directions && status.ok(); ++d) {
    status = run(DirectionShape(s, directions, d), DirectionArgs(s, all, directions, d));
  }
  return status;
}

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_DYNAMIC_GRU_DIRECTIONS_H_
