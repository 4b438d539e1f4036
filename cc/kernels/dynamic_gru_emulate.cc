// Host emulation of the dynamic GRU's CUDA kernels. See dynamic_gru_emulate.h.
// The phase sequence below mirrors ForwardKernel / BackwardKernel in
// dynamic_gru.cu; `Phase` (emulated_phase.h) stands for one
// __syncthreads-delimited phase of a block.
#include "cc/kernels/dynamic_gru_emulate.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cc/kernels/dynamic_gru_rowwise.h"
#include "cc/kernels/emulated_phase.h"

namespace deepctr_ops {
namespace kernels {
template <typename T, typename Index>
Status DynamicGruForwardEmulated(const GruShape& s, const GruForwardArgs<T, Index>& a,
                                 int threads) {
  Status status = ValidateGruShape(s);
  if (!status.ok()) return status;
  if (threads < 1) return Status::InvalidArgument("threads must be >= 1");
  std::vector<T> scratch(rowwise::ForwardScratch(s));
  rowwise::ForwardRow<T, Index> row;
  row.s = &s;
  row.a = &a;
  row.wg_h = a.wg + s.input * 2 * s.units;
  row.wc_h = a.wc + s.input * s.units;
  row.Bind(scratch.data());
  for (int64_t b = 0; b < s.batch; ++b) {
    row.b = b;
    row.len = rowwise::ClampLength(a.lengths[b], s.time);
    Phase(threads, [&](int tid) { row.Start(tid, threads); });
    for (int64_t step = 0; step < row.len; ++step) {
      Phase(threads, [&](int tid) { row.LoadInput(step, tid, threads); });
      Phase(threads, [&](int tid) { row.Gates(tid, threads); });
      Phase(threads, [&](int tid) { row.Reset(tid, threads); });
      Phase(threads, [&](int tid) { row.Candidate(step, tid, threads); });
      Phase(threads, [&](int tid) { row.Commit(tid, threads); });
    }
    Phase(threads, [&](int tid) { row.Finish(tid, threads); });
  }
  return Status::Ok();
}

template <typename T, typename Index>
Status DynamicGruBackwardEmulated(const GruShape& s, const GruBackwardArgs<T, Index>& a,
                                  int threads) {
  Status status = ValidateGruShape(s);
  if (!status.ok()) return status;
  if (threads < 1) return Status::InvalidArgument("threads must be >= 1");
  const int64_t e = s.input, u = s.units;
  std::fill(a.grad_wg, a.grad_wg + (e + u) * 2 * u, T(0));
  std::fill(a.grad_bg, a.grad_bg + 2 * u, T(0));
  std::fill(a.grad_wc, a.grad_wc + (e + u) * u, T(0));
  std::fill(a.grad_bc, a.grad_bc + u, T(0));
  std::vector<T> scratch(rowwise::BackwardScratch(s));
  rowwise::BackwardRow<T, Index> row;
  row.s = &s;
  row.a = &a;
  row.wg_h = a.wg + e * 2 * u;
  row.wc_h = a.wc + e * u;
  row.Bind(scratch.data());
  for (int64_t b = 0; b < s.batch; ++b) {
    row.b = b;
    row.len = rowwise::ClampLength(a.lengths[b], s.time);
    Phase(threads, [&](int tid) { row.Start(tid, threads); });
    for (int64_t step = row.len - 1; step >= 0; --step) {
      Phase(threads, [&](int tid) { row.Load(step, tid, threads); });
      Phase(threads, [&](int tid) { row.Pointwise(step, tid, threads); });
      Phase(threads, [&](int tid) { row.ResetGate(step, tid, threads); });
      Phase(threads, [&](int tid) {
        row.Accumulate(step, tid, threads);
        row.NextState(tid, threads);
      });
    }
  }
  return Status::Ok();
}

#define DEEPCTR_OPS_INSTANTIATE_GRU_EMULATED(T, Index)                                    \
  template Status DynamicGruForwardEmulated<T, Index>(                                    \
      const GruShape&, const GruForwardArgs<T, Index>&, int);                             \
  template Status DynamicGruBackwardEmulated<T, Index>(                                   \
      const GruShape&, const GruBackwardArgs<T, Index>&, int);
DEEPCTR_OPS_INSTANTIATE_GRU_EMULATED(float, int32_t)
DEEPCTR_OPS_INSTANTIATE_GRU_EMULATED(float, int64_t)
DEEPCTR_OPS_INSTANTIATE_GRU_EMULATED(double, int32_t)
DEEPCTR_OPS_INSTANTIATE_GRU_EMULATED(double, int64_t)
#undef DEEPCTR_OPS_INSTANTIATE_GRU_EMULATED

}  // namespace kernels
}  // namespace deepctr_ops
