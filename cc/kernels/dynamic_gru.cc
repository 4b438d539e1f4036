// CPU implementation of the length-aware dynamic GRU. See dynamic_gru.h.
//
// Work unit: a chunk of kChunkRows batch rows. Per chunk the forward
//  1. projects every valid step of each row at once (one GEMM per row over its
//     L steps: x[b, :L] Wg[:E] and x[b, :L] Wc[:E], plus the biases) into the
//     gates buffer;
//  2. runs the recurrence with the chunk's rows sorted by length, longest
//     first, so the rows still running at step s are a prefix: per step one
//     GEMM of the active rows' states with Wg[E:], the gates, one GEMM of
//     r * h with Wc[E:], the candidate and the new state. Padded steps cost
//     nothing.
// The backward walks the steps in reverse with the same prefix trick, keeps
// (dg_r, dg_z, dc) of every step, and afterwards gets grad_x and the input
// weights' gradients with per-row GEMMs over the valid steps. Weight gradients
// go to per-chunk accumulators (separate allocations: no false sharing) that
// are summed at the end in chunk order (deterministic).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <vector>

#include "cc/kernels/dynamic_gru.h"
#include "cc/kernels/gru_activations.h"
#include "cc/kernels/small_gemm.h"

namespace deepctr_ops {
namespace kernels {
namespace {

constexpr int64_t kChunkRows = 32;

template <typename Index>
int64_t ClampedLength(Index len, int64_t time) {
  if (len <= 0) return 0;
  return static_cast<int64_t>(len) < time ? static_cast<int64_t>(len) : time;
}

// The chunk's rows [begin, end) sorted by descending clamped length (stable).
template <typename Index>
void SortRows(const Index* lengths, int64_t begin, int64_t end, int64_t time,
              std::vector<int64_t>* rows, std::vector<int64_t>* lens) {
  rows->resize(end - begin);
  std::iota(rows->begin(), rows->end(), begin);
  std::stable_sort(rows->begin(), rows->end(), [&](int64_t a, int64_t b) {
    return ClampedLength(lengths[a], time) > ClampedLength(lengths[b], time);
  });
  lens->resize(rows->size());
  for (size_t i = 0; i < rows->size(); ++i) (*lens)[i] = ClampedLength(lengths[(*rows)[i]], time);
}

// Time index of step `step` of a row with `len` valid steps.
inline int64_t StepTime(int64_t step, int64_t len, bool reverse) {
  return reverse ? len - 1 - step : step;
}

// dst [cols, rows] = transpose of src [rows, cols] (leading dimension ld).
template <typename T>
void Transpose(const T* src, int64_t rows, int64_t cols, int64_t ld, T* dst) {
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) dst[j * rows + i] = src[i * ld + j];
  }
}

template <typename T, typename Index>
void ForwardChunk(const GruShape& s, const GruForwardArgs<T, Index>& a, int64_t begin,
                  int64_t end) {
  const int64_t time = s.time, e = s.input, u = s.units, g = 3 * u;
  const T* wg_h = a.wg + e * 2 * u;
  const T* wc_h = a.wc + e * u;
  // 1. Input projection of every valid step; zeros in padding.
  for (int64_t b = begin; b < end; ++b) {
    const int64_t len = ClampedLength(a.lengths[b], time);
    T* gates = a.gates + b * time * g;
    for (int64_t t = 0; t < len; ++t) {
      std::copy(a.bg, a.bg + 2 * u, gates + t * g);
      std::copy(a.bc, a.bc + u, gates + t * g + 2 * u);
    }
    std::fill(gates + len * g, gates + time * g, T(0));
    std::fill(a.outputs + (b * time + len) * u, a.outputs + (b + 1) * time * u, T(0));
    const T* x = a.x + b * time * e;
    GemmAccumulate<T>(len, 2 * u, e, x, e, 1, a.wg, 2 * u, gates, g);
    GemmAccumulate<T>(len, u, e, x, e, 1, a.wc, u, gates + 2 * u, g);
  }
  // 2. Recurrence over the rows still running, longest first.
  std::vector<int64_t> rows, lens;
  SortRows(a.lengths, begin, end, time, &rows, &lens);
  const int64_t n = end - begin;
  std::vector<T> h(n * u, T(0)), gh(n * 2 * u), rh(n * u), ch(n * u);
  std::vector<T*> step_gates(n);
  int64_t m = n;
  const int64_t steps = n > 0 ? lens[0] : 0;
  for (int64_t step = 0; step < steps; ++step) {
    while (m > 0 && lens[m - 1] <= step) --m;
    std::fill(gh.begin(), gh.begin() + m * 2 * u, T(0));
    GemmAccumulate<T>(m, 2 * u, u, h.data(), u, 1, wg_h, 2 * u, gh.data(), 2 * u);
    for (int64_t i = 0; i < m; ++i) {
      const int64_t t = StepTime(step, lens[i], s.reverse);
      T* p = a.gates + (rows[i] * time + t) * g;
      step_gates[i] = p;
      const T* ghi = gh.data() + i * 2 * u;
      for (int64_t j = 0; j < 2 * u; ++j) p[j] += ghi[j];
      gru_math::SigmoidArray(p, p, 2 * u);
      const T* hi = h.data() + i * u;
      T* rhi = rh.data() + i * u;
      for (int64_t j = 0; j < u; ++j) rhi[j] = p[j] * hi[j];
    }
    std::fill(ch.begin(), ch.begin() + m * u, T(0));
    GemmAccumulate<T>(m, u, u, rh.data(), u, 1, wc_h, u, ch.data(), u);
    for (int64_t i = 0; i < m; ++i) {
      const int64_t b = rows[i];
      const int64_t t = StepTime(step, lens[i], s.reverse);
      T* p = step_gates[i];
      T* c = p + 2 * u;
      const T* chi = ch.data() + i * u;
      for (int64_t j = 0; j < u; ++j) c[j] += chi[j];
      gru_math::TanhArray(c, c, u);
      const T* z = p + u;
      T* hi = h.data() + i * u;
      T* out = a.outputs + (b * time + t) * u;
      switch (s.cell) {
        case GruCell::kGru:
          for (int64_t j = 0; j < u; ++j) hi[j] = z[j] * hi[j] + (T(1) - z[j]) * c[j];
          break;
        case GruCell::kAgru: {
          const T at = a.att[b * time + t];
          for (int64_t j = 0; j < u; ++j) hi[j] = (T(1) - at) * hi[j] + at * c[j];
          break;
        }
        case GruCell::kAugru: {
          const T at = a.att[b * time + t];
          for (int64_t j = 0; j < u; ++j) {
            const T zz = (T(1) - at) * z[j];
            hi[j] = zz * hi[j] + (T(1) - zz) * c[j];
          }
          break;
        }
      }
      std::copy(hi, hi + u, out);
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    std::copy(h.data() + i * u, h.data() + (i + 1) * u, a.final_state + rows[i] * u);
  }
}

// Per-chunk weight-gradient accumulators, laid out like the outputs.
template <typename T>
struct GradAccumulator {
  std::vector<T> wg, bg, wc, bc;
  GradAccumulator(int64_t e, int64_t u)
      : wg((e + u) * 2 * u, T(0)), bg(2 * u, T(0)), wc((e + u) * u, T(0)), bc(u, T(0)) {}
};

// Transposed weight blocks shared by all chunks of one backward call.
template <typename T>
struct TransposedWeights {
  std::vector<T> wg_x, wc_x, wg_h, wc_h;  // [2U, E], [U, E], [2U, U], [U, U]
};

template <typename T, typename Index>
void BackwardChunk(const GruShape& s, const GruBackwardArgs<T, Index>& a,
                   const TransposedWeights<T>& wt, int64_t begin, int64_t end,
                   GradAccumulator<T>* acc) {
  const int64_t time = s.time, e = s.input, u = s.units, g = 3 * u;
  const bool use_att = GruUsesAttention(s.cell);
  std::vector<int64_t> rows, lens;
  SortRows(a.lengths, begin, end, time, &rows, &lens);
  const int64_t n = end - begin;
  // Per-step (dg_r, dg_z, dc) of every row of the chunk: [n, time, 3U] by local row.
  std::vector<T> steps_d(n * time * g);
  std::vector<T> dh(n * u), hp(n * u), rhp(n * u), dblk(n * g), drh(n * u), dhp(n * u);
  std::vector<const T*> step_gates(n);
  std::vector<int64_t> step_time(n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t b = rows[i];
    if (a.grad_final != nullptr) {
      std::copy(a.grad_final + b * u, a.grad_final + (b + 1) * u, dh.data() + i * u);
    } else {
      std::fill(dh.data() + i * u, dh.data() + (i + 1) * u, T(0));
    }
    if (use_att) std::fill(a.grad_att + b * time, a.grad_att + (b + 1) * time, T(0));
  }
  int64_t m = 0;
  const int64_t steps = n > 0 ? lens[0] : 0;
  for (int64_t step = steps - 1; step >= 0; --step) {
    while (m < n && lens[m] > step) ++m;
    for (int64_t i = 0; i < m; ++i) {
      const int64_t b = rows[i];
      const int64_t t = StepTime(step, lens[i], s.reverse);
      step_time[i] = t;
      const T* p = a.gates + (b * time + t) * g;
      step_gates[i] = p;
      const T* z = p + u;
      const T* c = p + 2 * u;
      T* hpi = hp.data() + i * u;
      if (step > 0) {
        const int64_t tp = s.reverse ? t + 1 : t - 1;
        const T* prev = a.outputs + (b * time + tp) * u;
        std::copy(prev, prev + u, hpi);
      } else {
        std::fill(hpi, hpi + u, T(0));
      }
      T* dhi = dh.data() + i * u;
      const T* go = a.grad_outputs + (b * time + t) * u;
      for (int64_t j = 0; j < u; ++j) dhi[j] += go[j];
      T* d = dblk.data() + i * g;
      T* dhpi = dhp.data() + i * u;
      T da = T(0);
      const T at = use_att ? a.att[b * time + t] : T(0);
      for (int64_t j = 0; j < u; ++j) {
        T dc, dz, dprev;
        switch (s.cell) {
          case GruCell::kGru:
            dc = dhi[j] * (T(1) - z[j]);
            dz = dhi[j] * (hpi[j] - c[j]);
            dprev = dhi[j] * z[j];
            break;
          case GruCell::kAgru:
            dc = dhi[j] * at;
            dz = T(0);
            dprev = dhi[j] * (T(1) - at);
            da += dhi[j] * (c[j] - hpi[j]);
            break;
          default: {  // kAugru
            const T zz = (T(1) - at) * z[j];
            const T dzz = dhi[j] * (hpi[j] - c[j]);
            dc = dhi[j] * (T(1) - zz);
            dprev = dhi[j] * zz;
            dz = dzz * (T(1) - at);
            da -= dzz * z[j];
            break;
          }
        }
        d[2 * u + j] = dc * (T(1) - c[j] * c[j]);
        d[u + j] = dz * z[j] * (T(1) - z[j]);
        dhpi[j] = dprev;
      }
      if (use_att) a.grad_att[b * time + t] = da;
    }
    // d(r * h_prev) = dc_pre Wc[E:]^T
    std::fill(drh.begin(), drh.begin() + m * u, T(0));
    GemmAccumulate<T>(m, u, u, dblk.data() + 2 * u, g, 1, wt.wc_h.data(), u, drh.data(), u);
    for (int64_t i = 0; i < m; ++i) {
      const T* r = step_gates[i];
      const T* hpi = hp.data() + i * u;
      const T* drhi = drh.data() + i * u;
      T* d = dblk.data() + i * g;
      T* dhpi = dhp.data() + i * u;
      T* rhpi = rhp.data() + i * u;
      for (int64_t j = 0; j < u; ++j) {
        const T dr = drhi[j] * hpi[j];
        dhpi[j] += drhi[j] * r[j];
        d[j] = dr * r[j] * (T(1) - r[j]);
        rhpi[j] = r[j] * hpi[j];
      }
    }
    // dh_prev = direct terms + dg Wg[E:]^T
    std::copy(dhp.begin(), dhp.begin() + m * u, dh.begin());
    GemmAccumulate<T>(m, u, 2 * u, dblk.data(), g, 1, wt.wg_h.data(), u, dh.data(), u);
    // Recurrent weights: Wg[E:] += h_prev^T dg, Wc[E:] += (r h_prev)^T dc.
    GemmAccumulate<T>(u, 2 * u, m, hp.data(), 1, u, dblk.data(), g, acc->wg.data() + e * 2 * u,
                      2 * u);
    GemmAccumulate<T>(u, u, m, rhp.data(), 1, u, dblk.data() + 2 * u, g,
                      acc->wc.data() + e * u, u);
    for (int64_t i = 0; i < m; ++i) {
      const int64_t local = rows[i] - begin;
      std::copy(dblk.data() + i * g, dblk.data() + (i + 1) * g,
                steps_d.data() + (local * time + step_time[i]) * g);
    }
  }
  // Input side, per row over its valid steps: grad_x, Wg[:E], Wc[:E], biases.
  for (int64_t b = begin; b < end; ++b) {
    const int64_t len = ClampedLength(a.lengths[b], time);
    const T* d = steps_d.data() + (b - begin) * time * g;
    const T* x = a.x + b * time * e;
    T* dx = a.grad_x + b * time * e;
    std::fill(dx, dx + time * e, T(0));
    GemmAccumulate<T>(len, e, 2 * u, d, g, 1, wt.wg_x.data(), e, dx, e);
    GemmAccumulate<T>(len, e, u, d + 2 * u, g, 1, wt.wc_x.data(), e, dx, e);
    GemmAccumulate<T>(e, 2 * u, len, x, 1, e, d, g, acc->wg.data(), 2 * u);
    GemmAccumulate<T>(e, u, len, x, 1, e, d + 2 * u, g, acc->wc.data(), u);
    for (int64_t t = 0; t < len; ++t) {
      const T* dt = d + t * g;
      for (int64_t j = 0; j < 2 * u; ++j) acc->bg[j] += dt[j];
      for (int64_t j = 0; j < u; ++j) acc->bc[j] += dt[2 * u + j];
    }
  }
}

// out[k] = sum over chunks of part(chunk)[k], in chunk order, in parallel over k.
template <typename T, typename Part>
void ReduceChunks(int64_t size, int64_t chunks, Part part, T* out,
                  const ParallelFor& parallel_for) {
  parallel_for(size, chunks, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) out[k] = T(0);
    for (int64_t c = 0; c < chunks; ++c) {
      const T* src = part(c);
      for (int64_t k = begin; k < end; ++k) out[k] += src[k];
    }
  });
}

int64_t NumChunks(int64_t batch) { return (batch + kChunkRows - 1) / kChunkRows; }

}  // namespace

template <typename T, typename Index>
Status DynamicGruForwardCpu(const GruShape& shape, const GruForwardArgs<T, Index>& args,
                            const ParallelFor& parallel_for) {
  Status status = ValidateGruShape(shape);
  if (!status.ok()) return status;
  if (GruUsesAttention(shape.cell) && args.att == nullptr && shape.batch * shape.time > 0) {
    return Status::InvalidArgument("att_scores are required for AGRU and AUGRU");
  }
  const int64_t chunks = NumChunks(shape.batch);
  const int64_t u = shape.units;
  const int64_t cost = kChunkRows * shape.time * (3 * u * (shape.input + u) + 30 * u);
  parallel_for(chunks, cost, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      ForwardChunk(shape, args, c * kChunkRows, std::min(shape.batch, (c + 1) * kChunkRows));
    }
  });
  return Status::Ok();
}

template <typename T, typename Index>
Status DynamicGruBackwardCpu(const GruShape& shape, const GruBackwardArgs<T, Index>& args,
                             const ParallelFor& parallel_for) {
  Status status = ValidateGruShape(shape);
  if (!status.ok()) return status;
  if (GruUsesAttention(shape.cell) && (args.att == nullptr || args.grad_att == nullptr) &&
      shape.batch * shape.time > 0) {
    return Status::InvalidArgument("att_scores are required for AGRU and AUGRU");
  }
  const int64_t e = shape.input, u = shape.units;
  TransposedWeights<T> wt;
  wt.wg_x.resize(2 * u * e);
  wt.wc_x.resize(u * e);
  wt.wg_h.resize(2 * u * u);
  wt.wc_h.resize(u * u);
  Transpose(args.wg, e, 2 * u, 2 * u, wt.wg_x.data());
  Transpose(args.wc, e, u, u, wt.wc_x.data());
  Transpose(args.wg + e * 2 * u, u, 2 * u, 2 * u, wt.wg_h.data());
  Transpose(args.wc + e * u, u, u, u, wt.wc_h.data());

  const int64_t chunks = NumChunks(shape.batch);
  std::vector<GradAccumulator<T>> acc;
  acc.reserve(chunks);
  for (int64_t c = 0; c < chunks; ++c) acc.emplace_back(e, u);
  const int64_t cost = kChunkRows * shape.time * (6 * u * (e + u) + 40 * u);
  parallel_for(chunks, cost, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      BackwardChunk(shape, args, wt, c * kChunkRows,
                    std::min(shape.batch, (c + 1) * kChunkRows), &acc[c]);
    }
  });
  ReduceChunks<T>((e + u) * 2 * u, chunks, [&](int64_t c) { return acc[c].wg.data(); },
                  args.grad_wg, parallel_for);
  ReduceChunks<T>(2 * u, chunks, [&](int64_t c) { return acc[c].bg.data(); }, args.grad_bg,
                  parallel_for);
  ReduceChunks<T>((e + u) * u, chunks, [&](int64_t c) { return acc[c].wc.data(); },
                  args.grad_wc, parallel_for);
  ReduceChunks<T>(u, chunks, [&](int64_t c) { return acc[c].bc.data(); }, args.grad_bc,
                  parallel_for);
  return Status::Ok();
}

#define DEEPCTR_OPS_INSTANTIATE_GRU(T, Index)                                             \
  template Status DynamicGruForwardCpu<T, Index>(const GruShape&,                         \
                                                 const GruForwardArgs<T, Index>&,         \
                                                 const ParallelFor&);                     \
  template Status DynamicGruBackwardCpu<T, Index>(const GruShape&,                        \
                                                  const GruBackwardArgs<T, Index>&,       \
                                                  const ParallelFor&);
DEEPCTR_OPS_INSTANTIATE_GRU(float, int32_t)
DEEPCTR_OPS_INSTANTIATE_GRU(float, int64_t)
DEEPCTR_OPS_INSTANTIATE_GRU(double, int32_t)
DEEPCTR_OPS_INSTANTIATE_GRU(double, int64_t)
#undef DEEPCTR_OPS_INSTANTIATE_GRU

}  // namespace kernels
}  // namespace deepctr_ops
