// CPU attention pooling, one batch row at a time: gather the valid steps,
// fold the first layer, run the MLP over the valid steps only, pool, and the
// backward of all of it. Every method is always inlined into the shard loops
// of attention_pool.cc, which exist once per instruction set (RowWorker's
// kIsa; internal linkage, as attention_pool_simd.h explains).
#ifndef DEEPCTR_OPS_CC_KERNELS_ATTENTION_POOL_ROW_H_
#define DEEPCTR_OPS_CC_KERNELS_ATTENTION_POOL_ROW_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cc/kernels/attention_pool.h"
#include "cc/kernels/attention_pool_simd.h"
#include "cc/kernels/attention_pool_packing.h"
#include "cc/kernels/attention_softmax.h"
#include "cc/kernels/sequence_pool_rows.h"

namespace deepctr_ops {
namespace kernels {
namespace {

template <typename Acc>
DCTR_ALWAYS_INLINE Acc Dot(const Acc* x, const Acc* y, int64_t padded) {
  using V = typename Simd<Acc>::V;
  const V* xv = reinterpret_cast<const V*>(x);
  const V* yv = reinterpret_cast<const V*>(y);
  V sum = {};
  for (int64_t i = 0; i < padded / Simd<Acc>::kLanes; ++i) sum += xv[i] * yv[i];
  return HorizontalSum<Acc>(sum);
}

// out[s] = dot(x + s * x_stride, y) (+ add) for s < n, `padded` elements
// each: Dot's sums, four rows at a time so that their dependency chains
// overlap.
template <typename Acc, bool kHasAdd>
DCTR_ALWAYS_INLINE void RowDots(int64_t n, const Acc* x, int64_t x_stride, const Acc* y,
                                int64_t padded, Acc add, Acc* out) {
  using V = typename Simd<Acc>::V;
  const V* yv = reinterpret_cast<const V*>(y);
  const int64_t vecs = padded / Simd<Acc>::kLanes;
  int64_t s = 0;
  for (; s + 4 <= n; s += 4) {
    const V* x0 = reinterpret_cast<const V*>(x + s * x_stride);
    const V* x1 = reinterpret_cast<const V*>(x + (s + 1) * x_stride);
    const V* x2 = reinterpret_cast<const V*>(x + (s + 2) * x_stride);
    const V* x3 = reinterpret_cast<const V*>(x + (s + 3) * x_stride);
    V s0 = {}, s1 = {}, s2 = {}, s3 = {};
    for (int64_t i = 0; i < vecs; ++i) {
      const V yi = yv[i];
      s0 += x0[i] * yi;
      s1 += x1[i] * yi;
      s2 += x2[i] * yi;
      s3 += x3[i] * yi;
    }
    out[s] = HorizontalSum<Acc>(s0);
    out[s + 1] = HorizontalSum<Acc>(s1);
    out[s + 2] = HorizontalSum<Acc>(s2);
    out[s + 3] = HorizontalSum<Acc>(s3);
    if (kHasAdd) {
      for (int u = 0; u < 4; ++u) out[s + u] += add;
    }
  }
  for (; s < n; ++s) {
    out[s] = Dot(x + s * x_stride, y, padded);
    if (kHasAdd) out[s] += add;
  }
}

// y[0:padded] += s * x[0:padded].
template <typename Acc>
DCTR_ALWAYS_INLINE void Axpy(Acc s, const Acc* x, Acc* y, int64_t padded) {
  using V = typename Simd<Acc>::V;
  const V* xv = reinterpret_cast<const V*>(x);
  V* yv = reinterpret_cast<V*>(y);
  const V sv = Splat<Acc>(s);
  for (int64_t i = 0; i < padded / Simd<Acc>::kLanes; ++i) yv[i] += sv * xv[i];
}

// One shard's scratch and the per-row forward/backward.
template <typename Acc, typename Index, Isa kIsa>
class RowWorker {
 public:
  RowWorker(const AttentionPoolSpec& spec, const PoolRows<Index>& rows,
            const PackedWeights<Acc>& pw, const Acc* query, const Acc* keys)
      : spec_(spec), rows_(rows), pw_(pw), query_(query), keys_(keys) {
    const int64_t t = rows.max_time, ep = pw.depth_pad, w0 = pw.width_pad[0];
    int64_t widest = w0;
    for (int64_t w : pw.width_pad) widest = std::max(widest, w);
    steps_.resize(t);
    kv_.assign(t * ep, 0);
    own_acts_.assign(t * pw.slot, 0);
    score_.assign(t, 0);
    m_.assign(pw.depth * w0, 0);
    c_.assign(w0, 0);
    q_.assign(ep, 0);
    widest_ = widest;
  }

  // Forward of batch row b into out (width T or E). With `activations` (the
  // row's T slots), the valid steps' activations are saved there too.
  DCTR_ALWAYS_INLINE void Forward(int64_t b, Acc* out, Acc* activations) {
    Score(b, activations);
    Pool(b, out);
  }

  // Asks for row b's valid keys and, if given, its saved activations in L2:
  // the rows are far apart and short, too short for the hardware prefetchers
  // to catch on before the row's first products need them.
  DCTR_ALWAYS_INLINE void Prefetch(int64_t b, const Acc* activations) const {
    const RowPlan plan = PlanRow(rows_, b);
    if (activations != nullptr) {
      const char* a = reinterpret_cast<const char*>(activations);
      const int64_t bytes = plan.valid_count * pw_.slot * static_cast<int64_t>(sizeof(Acc));
      for (int64_t i = 0; i < bytes; i += 64) __builtin_prefetch(a + i, 0, 2);
    }
    if (plan.mask == nullptr) {
      const char* k = reinterpret_cast<const char*>(Key(b, 0));
      const int64_t bytes = plan.valid_end * pw_.depth * static_cast<int64_t>(sizeof(Acc));
      for (int64_t i = 0; i < bytes; i += 64) __builtin_prefetch(k + i, 0, 2);
    }
  }

  // Backward of batch row b: writes grad_query[b], grad_keys[b] and adds to
  // acc. `activations`: the forward's saved ones for the row, or null
  // (recomputed).
  DCTR_ALWAYS_INLINE void Backward(int64_t b, const Acc* grad, Acc* grad_query,
                                   Acc* grad_keys, GradAccumulators<Acc>* acc,
                                   const Acc* activations);

 private:
  // The valid steps of row b, its query, and its keys as an [n, E padded]
  // block (in place for a prefix layout when E is whole vectors).
  DCTR_ALWAYS_INLINE void Gather(int64_t b);
  // Gather, fold layer 0 for this row, run the MLP into `activations` (or
  // scratch): scores score_[0..n) of steps steps_[0..n).
  DCTR_ALWAYS_INLINE void Score(int64_t b, Acc* activations);
  // Gather, and the scores from saved activations.
  DCTR_ALWAYS_INLINE void Restore(int64_t b, const Acc* activations);
  // Weights of the row's steps and of each padded step (softmax), see header.
  DCTR_ALWAYS_INLINE void Weights(Acc* valid_weight, Acc* padded_weight,
                                  Acc* inverse_sum) const;
  DCTR_ALWAYS_INLINE void Pool(int64_t b, Acc* out);

  const Acc* Key(int64_t b, int64_t t) const {
    return keys_ + (b * rows_.max_time + t) * pw_.depth;
  }

  const AttentionPoolSpec& spec_;
  const PoolRows<Index>& rows_;
  const PackedWeights<Acc>& pw_;
  const Acc* query_;
  const Acc* keys_;
  int64_t n_ = 0;  // Valid steps of the current row.
  int64_t widest_ = 0;
  std::vector<int64_t> steps_;
  std::vector<Acc> kv_, score_, m_, c_, q_, own_acts_;
  const Acc* keys_block_ = nullptr;  // [n, E padded]: kv_, or the row's keys.
  Acc* acts_ = nullptr;              // The row's activation slots (pw_.slot apart).
  // Backward scratch.
  std::vector<Acc> weight_, dscore_, da_[2], dkv_, mt_, dm_, dc_, grad_pad_;
};

template <typename Acc, typename Index, Isa kIsa>
DCTR_ALWAYS_INLINE void RowWorker<Acc, Index, kIsa>::Gather(int64_t b) {
  const RowPlan plan = PlanRow(rows_, b);
  n_ = 0;
  for (int64_t t = 0; t < plan.extent; ++t) {
    if (StepIsValid(plan, t)) steps_[n_++] = t;
  }
  if (n_ == 0) return;
  const int64_t e = pw_.depth, ep = pw_.depth_pad;
  const Acc* q = query_ + b * e;
  for (int64_t i = 0; i < e; ++i) q_[i] = q[i];
  if (plan.mask == nullptr && e == ep) {  // Valid steps 0..n-1, rows already whole vectors.
    keys_block_ = Key(b, 0);
    return;
  }
  for (int64_t s = 0; s < n_; ++s) {
    const Acc* k = Key(b, steps_[s]);
    Acc* row = kv_.data() + s * ep;
    for (int64_t i = 0; i < e; ++i) row[i] = k[i];
  }
  keys_block_ = kv_.data();
}

template <typename Acc, typename Index, Isa kIsa>
DCTR_ALWAYS_INLINE void RowWorker<Acc, Index, kIsa>::Restore(int64_t b, const Acc* activations) {
  Gather(b);
  acts_ = const_cast<Acc*>(activations);  // Only read on this path.
  const int64_t stride = pw_.slot;
  if (pw_.hidden == 0) {
    for (int64_t s = 0; s < n_; ++s) score_[s] = acts_[s * stride];
    return;
  }
  RowDots<Acc, true>(n_, acts_ + pw_.offset[pw_.hidden - 1], stride, pw_.wf.data(),
                     pw_.width_pad[pw_.hidden - 1], pw_.bf, score_.data());
}

template <typename Acc, typename Index, Isa kIsa>
DCTR_ALWAYS_INLINE void RowWorker<Acc, Index, kIsa>::Score(int64_t b, Acc* activations) {
  Gather(b);
  acts_ = activations != nullptr ? activations : own_acts_.data();
  if (n_ == 0) return;
  const int64_t e = pw_.depth, ep = pw_.depth_pad;
  const int64_t w0 = pw_.width_pad[0];
  const int64_t lanes = Simd<Acc>::kLanes;
  const int64_t stride = pw_.slot;
  // M = A + diag(q) P; c = q Q + b0.
  for (int64_t r = 0; r < e; ++r) {
    Acc* mr = m_.data() + r * w0;
    const Acc* ar = pw_.a0.data() + r * w0;
    for (int64_t j = 0; j < w0; ++j) mr[j] = ar[j];
    Axpy(q_[r], pw_.p0.data() + r * w0, mr, w0);
  }
  Gemm<Acc, kIsa>(1, e, q_.data(), 0, 1, pw_.q0.data(), w0 / lanes, c_.data(), 0, w0 / lanes,
                  GemmInit::kBias, pw_.b0.data());
  // Layer 0 over the valid keys.
  Acc* z = acts_ + pw_.offset[0];
  Gemm<Acc, kIsa>(n_, e, keys_block_, ep, 1, m_.data(), w0 / lanes, z, stride / lanes,
                  w0 / lanes, GemmInit::kBias, c_.data());
  if (pw_.hidden == 0) {
    for (int64_t s = 0; s < n_; ++s) score_[s] = z[s * stride];
    return;
  }
  Activate<Acc, kIsa>(spec_.activation, z, stride, n_, w0 / lanes);
  for (int i = 1; i < pw_.hidden; ++i) {
    const int64_t outp = pw_.width_pad[i];
    Acc* y = acts_ + pw_.offset[i];
    Gemm<Acc, kIsa>(n_, pw_.width[i - 1], acts_ + pw_.offset[i - 1], stride, 1, pw_.w[i].data(),
                    outp / lanes, y, stride / lanes, outp / lanes, GemmInit::kBias,
                    pw_.b[i].data());
    Activate<Acc, kIsa>(spec_.activation, y, stride, n_, outp / lanes);
  }
  RowDots<Acc, true>(n_, acts_ + pw_.offset[pw_.hidden - 1], stride, pw_.wf.data(),
                     pw_.width_pad[pw_.hidden - 1], pw_.bf, score_.data());
}

// valid_weight[s] is the pooling weight of valid step s; *padded_weight the
// weight of every padded step (0 unless normalizing a row whose padding
// survives the softmax: one without a valid step, or with huge negative scores).
template <typename Acc, typename Index, Isa kIsa>
DCTR_ALWAYS_INLINE void RowWorker<Acc, Index, kIsa>::Weights(Acc* valid_weight, Acc* padded_weight,
                                    Acc* inverse_sum) const {
  *padded_weight = 0;
  *inverse_sum = 1;
  if (!spec_.normalize) {
    for (int64_t s = 0; s < n_; ++s) valid_weight[s] = score_[s];
    return;
  }
  const Acc neg = AttentionPaddingLogit<Acc>();
  const int64_t padded = rows_.max_time - n_;
  Acc max = padded > 0 ? neg : -std::numeric_limits<Acc>::infinity();
  for (int64_t s = 0; s < n_; ++s) max = score_[s] > max ? score_[s] : max;
  Acc sum = 0;
  for (int64_t s = 0; s < n_; ++s) {
    valid_weight[s] = std::exp(score_[s] - max);
    sum += valid_weight[s];
  }
  const Acc pad_exp = padded > 0 ? std::exp(neg - max) : Acc(0);
  sum += static_cast<Acc>(padded) * pad_exp;
  const Acc inv = Acc(1) / sum;
  for (int64_t s = 0; s < n_; ++s) valid_weight[s] *= inv;
  *padded_weight = pad_exp * inv;
  *inverse_sum = inv;
}

template <typename Acc, typename Index, Isa kIsa>
DCTR_ALWAYS_INLINE void RowWorker<Acc, Index, kIsa>::Pool(int64_t b, Acc* out) {
  const int64_t t_max = rows_.max_time, e = pw_.depth;
  if (weight_.size() < static_cast<size_t>(t_max)) weight_.assign(t_max, 0);
  Acc padded_weight, inv;
  Weights(weight_.data(), &padded_weight, &inv);
  if (spec_.return_score) {
    for (int64_t t = 0; t < t_max; ++t) out[t] = padded_weight;
    for (int64_t s = 0; s < n_; ++s) out[steps_[s]] = weight_[s];
    return;
  }
  for (int64_t i = 0; i < e; ++i) out[i] = 0;
  const int64_t ep = pw_.depth_pad;
  for (int64_t s = 0; s < n_; ++s) {
    const Acc w = weight_[s];
    const Acc* k = keys_block_ + s * ep;
    for (int64_t i = 0; i < e; ++i) out[i] += w * k[i];
  }
  if (padded_weight != 0) {  // Also NaN: then the row is NaN anyway.
    size_t s = 0;
    for (int64_t t = 0; t < t_max; ++t) {
      if (s < static_cast<size_t>(n_) && steps_[s] == t) {
        ++s;
        continue;
      }
      const Acc* k = Key(b, t);
      for (int64_t i = 0; i < e; ++i) out[i] += padded_weight * k[i];
    }
  }
}

template <typename Acc, typename Index, Isa kIsa>
DCTR_ALWAYS_INLINE void RowWorker<Acc, Index, kIsa>::Backward(int64_t b, const Acc* grad,
                                                        Acc* grad_query, Acc* grad_keys,
                                                        GradAccumulators<Acc>* acc,
                                                        const Acc* activations) {
  const int64_t t_max = rows_.max_time, e = pw_.depth, ep = pw_.depth_pad;
  const int64_t lanes = Simd<Acc>::kLanes;
  const int64_t stride = pw_.slot;
  if (activations != nullptr) {
    Restore(b, activations);
  } else {
    Score(b, nullptr);
  }
  if (weight_.size() < static_cast<size_t>(t_max)) weight_.assign(t_max, 0);
  if (dscore_.size() < static_cast<size_t>(t_max)) dscore_.assign(t_max, 0);
  Acc padded_weight, inv;
  Weights(weight_.data(), &padded_weight, &inv);
  const bool padding_counts = spec_.normalize && padded_weight != 0;
  // d loss / d (pooling weight) of each valid step, and of the padded ones.
  Acc* dweight = dscore_.data();
  Acc padded_dweight_sum = 0;
  // Zero the grad_keys rows that no pooling term writes below (each element
  // is written once, then the valid rows get the MLP's term added).
  if (spec_.return_score || !padding_counts) {
    int64_t next = 0;
    for (int64_t t = 0; t < t_max; ++t) {
      const bool valid = next < n_ && steps_[next] == t;
      if (valid) ++next;
      if (spec_.return_score || !valid) {
        Acc* gk = grad_keys + t * e;
        for (int64_t i = 0; i < e; ++i) gk[i] = 0;
      }
    }
  }
  for (int64_t i = 0; i < e; ++i) grad_query[i] = 0;
  std::vector<bool> is_valid;
  if (padding_counts) {
    is_valid.assign(t_max, false);
    for (int64_t s = 0; s < n_; ++s) is_valid[steps_[s]] = true;
  }
  if (spec_.return_score) {
    for (int64_t s = 0; s < n_; ++s) dweight[s] = grad[steps_[s]];
    if (padding_counts) {
      for (int64_t t = 0; t < t_max; ++t) {
        if (!is_valid[t]) padded_dweight_sum += grad[t];
      }
    }
  } else {
    if (grad_pad_.size() != static_cast<size_t>(ep)) grad_pad_.assign(ep, 0);
    std::copy(grad, grad + e, grad_pad_.begin());
    RowDots<Acc, false>(n_, keys_block_, ep, grad_pad_.data(), ep, Acc(0), dweight);
    for (int64_t s = 0; s < n_; ++s) {
      Acc* gk = grad_keys + steps_[s] * e;
      for (int64_t i = 0; i < e; ++i) gk[i] = weight_[s] * grad[i];
    }
    if (padding_counts) {
      for (int64_t t = 0; t < t_max; ++t) {
        if (is_valid[t]) continue;
        const Acc* k = Key(b, t);
        Acc d = 0;
        for (int64_t i = 0; i < e; ++i) d += grad[i] * k[i];
        padded_dweight_sum += d;
        Acc* gk = grad_keys + t * e;
        for (int64_t i = 0; i < e; ++i) gk[i] = padded_weight * grad[i];
      }
    }
  }
  if (n_ == 0) return;
  // d loss / d score of each valid step (in place over dweight).
  if (spec_.normalize) {
    Acc dot = padded_weight * padded_dweight_sum;
    if (!padding_counts) dot = 0;
    for (int64_t s = 0; s < n_; ++s) dot += weight_[s] * dweight[s];
    for (int64_t s = 0; s < n_; ++s) dweight[s] = weight_[s] * (dweight[s] - dot);
  }
  const Acc* dscore = dweight;
  // Back through the MLP, over the valid steps only.
  const int64_t w0 = pw_.width_pad[0];
  for (auto& buffer : da_) {
    if (buffer.size() < static_cast<size_t>(t_max * widest_)) buffer.assign(t_max * widest_, 0);
  }
  Acc* dz = da_[0].data();  // d loss / d (pre-activation) of the current layer.
  if (pw_.hidden == 0) {
    for (int64_t s = 0; s < n_; ++s) {
      Acc* row = dz + s * w0;
      for (int64_t j = 0; j < w0; ++j) row[j] = 0;
      row[0] = dscore[s];
    }
  } else {
    const int last = pw_.hidden - 1;
    const int64_t lastp = pw_.width_pad[last];
    const Acc* a = acts_ + pw_.offset[last];
    for (int64_t s = 0; s < n_; ++s) {
      Acc* row = dz + s * lastp;
      for (int64_t j = 0; j < lastp; ++j) row[j] = dscore[s] * pw_.wf[j];
      Axpy(dscore[s], a + s * stride, acc->dwf.data(), lastp);
      acc->dbf += dscore[s];
    }
    int cur = 0;
    for (int i = last; i >= 0; --i) {
      const int64_t outp = pw_.width_pad[i];
      ActivationGrad<Acc, kIsa>(spec_.activation, acts_ + pw_.offset[i], stride,
                                da_[cur].data(), outp, n_, outp / lanes);
      if (i == 0) break;
      const int64_t inp = pw_.width_pad[i - 1];
      const Acc* d = da_[cur].data();
      // dW_i += A_{i-1}^T dZ_i; db_i += sum dZ_i; dA_{i-1} = dZ_i W_i^T.
      Gemm<Acc, kIsa>(pw_.width[i - 1], n_, acts_ + pw_.offset[i - 1], 1, stride, d,
                      outp / lanes, acc->dw[i].data(), outp / lanes, outp / lanes);
      for (int64_t s = 0; s < n_; ++s) Axpy(Acc(1), d + s * outp, acc->db[i].data(), outp);
      Gemm<Acc, kIsa>(n_, pw_.width[i], d, outp, 1, pw_.wt[i].data(), inp / lanes,
                      da_[1 - cur].data(), inp / lanes, inp / lanes, GemmInit::kSet);
      cur = 1 - cur;
    }
    dz = da_[cur].data();
  }
  // Layer 0: dc = sum dZ; dM = Kv^T dZ; dKv = dZ M^T.
  if (dc_.size() != static_cast<size_t>(w0)) dc_.assign(w0, 0);
  if (dm_.size() != static_cast<size_t>(e * w0)) dm_.assign(e * w0, 0);
  if (mt_.size() != static_cast<size_t>(w0 * ep)) mt_.assign(w0 * ep, 0);
  if (dkv_.size() < static_cast<size_t>(t_max * ep)) dkv_.assign(t_max * ep, 0);
  std::fill(dc_.begin(), dc_.end(), Acc(0));
  for (int64_t s = 0; s < n_; ++s) Axpy(Acc(1), dz + s * w0, dc_.data(), w0);
  Gemm<Acc, kIsa>(e, n_, keys_block_, 1, ep, dz, w0 / lanes, dm_.data(), w0 / lanes, w0 / lanes,
                  GemmInit::kSet);
  // M^T = A^T + P^T diag(q), rows j < width[0].
  for (int64_t j = 0; j < pw_.width[0]; ++j) {
    Acc* row = mt_.data() + j * ep;
    const Acc* at = pw_.a0t.data() + j * ep;
    const Acc* pt = pw_.p0t.data() + j * ep;
    for (int64_t i = 0; i < ep; ++i) row[i] = at[i] + pt[i] * q_[i];
  }
  Gemm<Acc, kIsa>(n_, pw_.width[0], dz, w0, 1, mt_.data(), ep / lanes, dkv_.data(), ep / lanes,
                  ep / lanes, GemmInit::kSet);
  for (int64_t s = 0; s < n_; ++s) {
    Acc* gk = grad_keys + steps_[s] * e;
    const Acc* d = dkv_.data() + s * ep;
    for (int64_t i = 0; i < e; ++i) gk[i] += d[i];
  }
  // dq = rowsum(dM * P) + Q dc; the shard sums of layer 0.
  // One pass over each row r of dM.
  using V = typename Simd<Acc>::V;
  const V* dcv = reinterpret_cast<const V*>(dc_.data());
  for (int64_t r = 0; r < e; ++r) {
    const V* dmr = reinterpret_cast<const V*>(dm_.data() + r * w0);
    const V* pr = reinterpret_cast<const V*>(pw_.p0.data() + r * w0);
    const V* qr = reinterpret_cast<const V*>(pw_.q0.data() + r * w0);
    V* sm = reinterpret_cast<V*>(acc->sum_m.data() + r * w0);
    V* sqm = reinterpret_cast<V*>(acc->sum_qm.data() + r * w0);
    V* sqc = reinterpret_cast<V*>(acc->sum_qc.data() + r * w0);
    const V qv = Splat<Acc>(q_[r]);
    V dq = {};
    for (int64_t i = 0; i < w0 / lanes; ++i) {
      const V d = dmr[i];
      dq += d * pr[i] + qr[i] * dcv[i];
      sm[i] += d;
      sqm[i] += qv * d;
      sqc[i] += qv * dcv[i];
    }
    grad_query[r] = HorizontalSum<Acc>(dq);
  }
  Axpy(Acc(1), dc_.data(), acc->sum_c.data(), w0);
}

}  // namespace
}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_ATTENTION_POOL_ROW_H_
