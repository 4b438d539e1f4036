// CPU attention pooling: the weights repacked once per call into padded
// matrices (layer 0 split by the blocks of [q, k, q - k, q * k]), and the
// per-shard weight-gradient accumulators with their write-back into
// DeepCTR's layout. Internal to attention_pool.cc (internal linkage, as
// attention_pool_simd.h explains).
#ifndef DEEPCTR_OPS_CC_KERNELS_ATTENTION_POOL_PACKING_H_
#define DEEPCTR_OPS_CC_KERNELS_ATTENTION_POOL_PACKING_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cc/kernels/attention_pool.h"
#include "cc/kernels/attention_pool_simd.h"

namespace deepctr_ops {
namespace kernels {
namespace {

// The weights repacked once per call into padded Acc matrices.
template <typename Acc>
struct PackedWeights {
  int64_t depth = 0;      // E
  int64_t depth_pad = 0;  // E padded
  int hidden = 0;         // H
  std::vector<int64_t> width;      // Real output width of layer i (i <= H).
  std::vector<int64_t> width_pad;  // ... padded.
  // Layer 0 split by the blocks of u = [q, k, q - k, q * k]: A = W_k - W_d,
  // P = W_p, Q = W_q + W_d, each [E, width_pad[0]]; b0 [width_pad[0]].
  std::vector<Acc> a0, p0, q0, b0;
  // A and P transposed, [width_pad[0], E padded]: per row M^T = A^T + P^T diag(q).
  std::vector<Acc> a0t, p0t;
  // Saved activations of one step: layer i (i < max(H, 1)) at offset[i]; slot
  // elements per step (AttentionPoolActivationsSize).
  std::vector<int64_t> offset;
  int64_t slot = 0;
  // Hidden layers 1..H-1: w[i] [width_pad[i-1], width_pad[i]], wt[i] its
  // transpose, b[i] [width_pad[i]].
  std::vector<std::vector<Acc>> w, wt, b;
  // The score layer when H >= 1: [width_pad[H-1]] and its bias.
  std::vector<Acc> wf;
  Acc bf = 0;
};

template <typename Acc>
PackedWeights<Acc> Pack(const AttentionPoolSpec& spec, const AttentionWeights<Acc>& weights) {
  PackedWeights<Acc> pw;
  const int64_t e = spec.depth;
  pw.depth = e;
  pw.depth_pad = Padded<Acc>(e);
  pw.hidden = static_cast<int>(spec.units.size());
  for (int i = 0; i < spec.num_layers(); ++i) {
    pw.width.push_back(spec.layer_out(i));
    pw.width_pad.push_back(Padded<Acc>(spec.layer_out(i)));
  }
  const int64_t m0 = pw.width[0], m0p = pw.width_pad[0];
  pw.a0.assign(e * m0p, 0);
  pw.p0.assign(e * m0p, 0);
  pw.q0.assign(e * m0p, 0);
  pw.b0.assign(m0p, 0);
  pw.a0t.assign(m0p * pw.depth_pad, 0);
  pw.p0t.assign(m0p * pw.depth_pad, 0);
  for (int i = 0; i < std::max(pw.hidden, 1); ++i) {
    pw.offset.push_back(pw.slot);
    pw.slot += pw.width_pad[i];
  }
  const Acc* k0 = weights.kernels[0];
  for (int64_t r = 0; r < e; ++r) {
    for (int64_t j = 0; j < m0; ++j) {
      const Acc wq = k0[r * m0 + j], wk = k0[(e + r) * m0 + j];
      const Acc wd = k0[(2 * e + r) * m0 + j], wp = k0[(3 * e + r) * m0 + j];
      pw.a0[r * m0p + j] = wk - wd;
      pw.p0[r * m0p + j] = wp;
      pw.q0[r * m0p + j] = wq + wd;
      pw.a0t[j * pw.depth_pad + r] = wk - wd;
      pw.p0t[j * pw.depth_pad + r] = wp;
    }
  }
  for (int64_t j = 0; j < m0; ++j) pw.b0[j] = weights.biases[0][j];
  pw.w.resize(pw.hidden);
  pw.wt.resize(pw.hidden);
  pw.b.resize(pw.hidden);
  for (int i = 1; i < pw.hidden; ++i) {
    const int64_t in = pw.width[i - 1], inp = pw.width_pad[i - 1];
    const int64_t out = pw.width[i], outp = pw.width_pad[i];
    pw.w[i].assign(inp * outp, 0);
    pw.wt[i].assign(outp * inp, 0);
    pw.b[i].assign(outp, 0);
    for (int64_t r = 0; r < in; ++r) {
      for (int64_t j = 0; j < out; ++j) {
        pw.w[i][r * outp + j] = weights.kernels[i][r * out + j];
        pw.wt[i][j * inp + r] = weights.kernels[i][r * out + j];
      }
    }
    for (int64_t j = 0; j < out; ++j) pw.b[i][j] = weights.biases[i][j];
  }
  if (pw.hidden > 0) {
    pw.wf.assign(pw.width_pad[pw.hidden - 1], 0);
    for (int64_t j = 0; j < pw.width[pw.hidden - 1]; ++j) {
      pw.wf[j] = weights.kernels[pw.hidden][j];
    }
    pw.bf = weights.biases[pw.hidden][0];
  }
  return pw;
}

// Weight-gradient accumulators of one shard, laid out like PackedWeights.
template <typename Acc>
struct GradAccumulators {
  std::vector<Acc> sum_m;   // sum_b dM_b             -> dW_k, -dW_d
  std::vector<Acc> sum_qm;  // sum_b diag(q_b) dM_b   -> dW_p
  std::vector<Acc> sum_qc;  // sum_b q_b^T dc_b       -> dW_q, dW_d
  std::vector<Acc> sum_c;   // sum_b dc_b             -> dbias0
  std::vector<std::vector<Acc>> dw, db;
  std::vector<Acc> dwf;
  Acc dbf = 0;

  explicit GradAccumulators(const PackedWeights<Acc>& pw) {
    const int64_t size0 = pw.depth * pw.width_pad[0];
    sum_m.assign(size0, 0);
    sum_qm.assign(size0, 0);
    sum_qc.assign(size0, 0);
    sum_c.assign(pw.width_pad[0], 0);
    dw.resize(pw.hidden);
    db.resize(pw.hidden);
    for (int i = 1; i < pw.hidden; ++i) {
      dw[i].assign(pw.width_pad[i - 1] * pw.width_pad[i], 0);
      db[i].assign(pw.width_pad[i], 0);
    }
    if (pw.hidden > 0) dwf.assign(pw.width_pad[pw.hidden - 1], 0);
  }
};

template <typename Acc>
void WriteWeightGrads(const PackedWeights<Acc>& pw, const GradAccumulators<Acc>& total,
                      const AttentionWeightGrads<Acc>& out) {
  const int64_t e = pw.depth, m0 = pw.width[0], m0p = pw.width_pad[0];
  Acc* k0 = out.kernels[0];
  for (int64_t r = 0; r < e; ++r) {
    for (int64_t j = 0; j < m0; ++j) {
      const Acc sm = total.sum_m[r * m0p + j], sqc = total.sum_qc[r * m0p + j];
      k0[r * m0 + j] = sqc;
      k0[(e + r) * m0 + j] = sm;
      k0[(2 * e + r) * m0 + j] = sqc - sm;
      k0[(3 * e + r) * m0 + j] = total.sum_qm[r * m0p + j];
    }
  }
  for (int64_t j = 0; j < m0; ++j) out.biases[0][j] = total.sum_c[j];
  for (int i = 1; i < pw.hidden; ++i) {
    const int64_t in = pw.width[i - 1], out_w = pw.width[i], outp = pw.width_pad[i];
    for (int64_t r = 0; r < in; ++r) {
      for (int64_t j = 0; j < out_w; ++j) out.kernels[i][r * out_w + j] = total.dw[i][r * outp + j];
    }
    for (int64_t j = 0; j < out_w; ++j) out.biases[i][j] = total.db[i][j];
  }
  if (pw.hidden > 0) {
    for (int64_t j = 0; j < pw.width[pw.hidden - 1]; ++j) {
      out.kernels[pw.hidden][j] = total.dwf[j];
    }
    out.biases[pw.hidden][0] = total.dbf;
  }
}

template <typename Acc>
void AddInto(const std::vector<Acc>& from, std::vector<Acc>* to) {
  for (size_t i = 0; i < from.size(); ++i) (*to)[i] += from[i];
}

}  // namespace
}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_ATTENTION_POOL_PACKING_H_
