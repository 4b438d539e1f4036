// CUDA implementation of the fused DIN attention pooling. See attention_pool.h.
//
// Deliberately simple (correctness first, not yet tuned): one thread per
// (row, step) runs the MLP of a valid step (the first layer from the four
// blocks of kernel0 directly, so [B, T, 4E] is never stored), keeping the
// activations in the workspace; one thread per row does the masking/softmax
// bookkeeping; one thread per output element pools. The backward recomputes
// the forward, then one thread per valid step backpropagates through the MLP,
// adding the weight gradients and the query's with atomics (so on the GPU the
// order of those sums, and their last bits, may vary between runs).
#include <cuda_runtime.h>

#include <cstdint>

#include "cc/kernels/attention_pool.h"
#include "cc/kernels/attention_softmax.h"
#include "cc/kernels/cuda_launch.h"
#include "cc/kernels/sequence_pool_rows.h"

namespace deepctr_ops {
namespace kernels {
namespace {

constexpr int kThreads = 128;

// The layer sizes in a form a kernel can take by value.
struct Layers {
  int hidden = 0;                                 // H
  int64_t width[kMaxAttentionHiddenLayers + 1];   // Output width of layer i.
  int64_t offset[kMaxAttentionHiddenLayers + 1];  // Of layer i's activations in a step's slot.
  int64_t slot = 0;                               // Activations per step: sum of hidden widths.
  int64_t widest = 1;
  int64_t depth = 0;                              // E
  int64_t time = 0;                               // T
  int64_t batch = 0;                              // B
  AttentionActivation activation = AttentionActivation::kSigmoid;
  bool normalize = false;
  bool return_score = false;
};

template <typename Index>
Layers MakeLayers(const AttentionPoolSpec& spec, const PoolRows<Index>& rows) {
  Layers l;
  l.hidden = static_cast<int>(spec.units.size());
  int64_t offset = 0;
  for (int i = 0; i < spec.num_layers(); ++i) {
    l.width[i] = spec.layer_out(i);
    l.offset[i] = offset;
    if (i < l.hidden) offset += l.width[i];
    if (l.width[i] > l.widest) l.widest = l.width[i];
  }
  if (4 * spec.depth > l.widest) l.widest = 4 * spec.depth;
  l.slot = offset;
  l.depth = spec.depth;
  l.time = rows.max_time;
  l.batch = rows.batch;
  l.activation = spec.activation;
  l.normalize = spec.normalize;
  l.return_score = spec.return_score;
  return l;
}

template <typename T>
struct Scratch {
  T* acts;     // [B*T, slot]
  T* score;    // [B*T]
  T* dweight;  // [B*T]
  T* grads;    // [B*T, 2 * widest]
  T* stats;    // [B, 4]: max, 1 / sum, padded weight, sum_t w_t dweight_t
};

template <typename T>
Scratch<T> Carve(const Layers& l, void* workspace) {
  Scratch<T> s;
  T* p = static_cast<T*>(workspace);
  const int64_t steps = l.batch * l.time;
  s.acts = p;
  p += steps * l.slot;
  s.score = p;
  p += steps;
  s.dweight = p;
  p += steps;
  s.grads = p;
  p += steps * 2 * l.widest;
  s.stats = p;
  return s;
}

template <typename Index>
__device__ __forceinline__ bool Valid(const PoolRows<Index>& rows, int64_t b, int64_t t) {
  if (rows.layout == RowLayout::kMask) return rows.mask[b * rows.max_time + t];
  return t < ClampIndex(rows.lengths[b], 0, rows.max_time);
}

template <typename T>
__device__ __forceinline__ T Act(AttentionActivation act, T x) {
  switch (act) {
    case AttentionActivation::kSigmoid: return T(1) / (T(1) + exp(-x));
    case AttentionActivation::kTanh: return tanh(x);
    case AttentionActivation::kRelu: return x < T(0) ? T(0) : x;
    default: return x;
  }
}

template <typename T>
__device__ __forceinline__ T ActGrad(AttentionActivation act, T y) {
  switch (act) {
    case AttentionActivation::kSigmoid: return y * (T(1) - y);
    case AttentionActivation::kTanh: return T(1) - y * y;
    case AttentionActivation::kRelu: return y > T(0) ? T(1) : T(0);
    default: return T(1);
  }
}

// Score (and activations) of every valid step.
template <typename T, typename Index>
__global__ void ScoreKernel(Layers l, PoolRows<Index> rows, const T* __restrict__ query,
                            const T* __restrict__ keys, AttentionWeights<T> w, Scratch<T> s) {
  const int64_t steps = l.batch * l.time;
  const int64_t e = l.depth;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < steps;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = i / l.time, t = i - b * l.time;
    if (!Valid(rows, b, t)) continue;
    const T* q = query + b * e;
    const T* k = keys + i * e;
    T* a = s.acts + i * l.slot;
    const int64_t m0 = l.width[0];
    T score = 0;
    for (int64_t j = 0; j < m0; ++j) {
      T z = w.biases[0][j];
      for (int64_t r = 0; r < e; ++r) {
        const T qr = q[r], kr = k[r];
        z += qr * w.kernels[0][r * m0 + j] + kr * w.kernels[0][(e + r) * m0 + j] +
             (qr - kr) * w.kernels[0][(2 * e + r) * m0 + j] +
             (qr * kr) * w.kernels[0][(3 * e + r) * m0 + j];
      }
      if (l.hidden == 0) {
        score = z;
      } else {
        a[j] = Act(l.activation, z);
      }
    }
    for (int layer = 1; layer < l.hidden; ++layer) {
      const int64_t in = l.width[layer - 1], out = l.width[layer];
      const T* prev = a + l.offset[layer - 1];
      T* cur = a + l.offset[layer];
      for (int64_t j = 0; j < out; ++j) {
        T z = w.biases[layer][j];
        for (int64_t r = 0; r < in; ++r) z += prev[r] * w.kernels[layer][r * out + j];
        cur[j] = Act(l.activation, z);
      }
    }
    if (l.hidden > 0) {
      const int64_t in = l.width[l.hidden - 1];
      const T* last = a + l.offset[l.hidden - 1];
      score = w.biases[l.hidden][0];
      for (int64_t r = 0; r < in; ++r) score += last[r] * w.kernels[l.hidden][r];
    }
    s.score[i] = score;
  }
}

// Per row: max, 1 / sum and the padded steps' weight (softmax), see header.
template <typename T, typename Index>
__global__ void RowStatsKernel(Layers l, PoolRows<Index> rows, Scratch<T> s) {
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; b < l.batch;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    T* st = s.stats + 4 * b;
    if (!l.normalize) {
      st[0] = 0;
      st[1] = 1;
      st[2] = 0;
      continue;
    }
    const T neg = AttentionPaddingLogit<T>();
    int64_t padded = 0;
    T max = -INFINITY;
    for (int64_t t = 0; t < l.time; ++t) {
      if (Valid(rows, b, t)) {
        const T v = s.score[b * l.time + t];
        max = v > max ? v : max;
      } else {
        ++padded;
      }
    }
    if (padded > 0 && neg > max) max = neg;
    T sum = 0;
    for (int64_t t = 0; t < l.time; ++t) {
      if (Valid(rows, b, t)) sum += exp(s.score[b * l.time + t] - max);
    }
    const T pad_exp = padded > 0 ? exp(neg - max) : T(0);
    sum += static_cast<T>(padded) * pad_exp;
    st[0] = max;
    st[1] = T(1) / sum;
    st[2] = pad_exp * st[1];
  }
}

template <typename T, typename Index>
__device__ __forceinline__ T Weight(const Layers& l, const PoolRows<Index>& rows,
                                    const Scratch<T>& s, int64_t b, int64_t t) {
  const T* st = s.stats + 4 * b;
  if (!Valid(rows, b, t)) return l.normalize ? st[2] : T(0);
  const T v = s.score[b * l.time + t];
  return l.normalize ? exp(v - st[0]) * st[1] : v;
}

template <typename T, typename Index>
__global__ void PoolKernel(Layers l, PoolRows<Index> rows, const T* __restrict__ keys,
                           Scratch<T> s, T* __restrict__ out) {
  const int64_t width = l.return_score ? l.time : l.depth;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < l.batch * width; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = i / width, x = i - b * width;
    if (l.return_score) {
      out[i] = Weight(l, rows, s, b, x);
      continue;
    }
    const bool padding_counts = l.normalize && s.stats[4 * b + 2] != T(0);
    T sum = 0;
    for (int64_t t = 0; t < l.time; ++t) {
      if (!padding_counts && !Valid(rows, b, t)) continue;
      sum += Weight(l, rows, s, b, t) * keys[(b * l.time + t) * l.depth + x];
    }
    out[i] = sum;
  }
}

// d loss / d weight of every step that has a weight, and the pooling part of
// grad_keys (every element of grad_keys is written here).
template <typename T, typename Index>
__global__ void DWeightKernel(Layers l, PoolRows<Index> rows, const T* __restrict__ keys,
                              const T* __restrict__ grad, Scratch<T> s,
                              T* __restrict__ grad_keys) {
  const int64_t steps = l.batch * l.time, e = l.depth;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < steps;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = i / l.time, t = i - b * l.time;
    const bool counts = Valid(rows, b, t) || (l.normalize && s.stats[4 * b + 2] != T(0));
    T* gk = grad_keys + i * e;
    if (!counts) {
      s.dweight[i] = 0;
      for (int64_t r = 0; r < e; ++r) gk[r] = 0;
      continue;
    }
    const T weight = Weight(l, rows, s, b, t);
    if (l.return_score) {
      s.dweight[i] = grad[b * l.time + t];
      for (int64_t r = 0; r < e; ++r) gk[r] = 0;
    } else {
      const T* g = grad + b * e;
      const T* k = keys + i * e;
      T d = 0;
      for (int64_t r = 0; r < e; ++r) {
        d += g[r] * k[r];
        gk[r] = weight * g[r];
      }
      s.dweight[i] = d;
    }
  }
}

template <typename T, typename Index>
__global__ void RowDotKernel(Layers l, PoolRows<Index> rows, Scratch<T> s) {
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; b < l.batch;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const bool padding_counts = l.normalize && s.stats[4 * b + 2] != T(0);
    T dot = 0;
    for (int64_t t = 0; t < l.time; ++t) {
      if (!padding_counts && !Valid(rows, b, t)) continue;
      dot += Weight(l, rows, s, b, t) * s.dweight[b * l.time + t];
    }
    s.stats[4 * b + 3] = dot;
  }
}

template <typename T, typename Index>
__global__ void MlpBackwardKernel(Layers l, PoolRows<Index> rows, const T* __restrict__ query,
                                  const T* __restrict__ keys, AttentionWeights<T> w,
                                  Scratch<T> s, T* __restrict__ grad_query,
                                  T* __restrict__ grad_keys, AttentionWeightGrads<T> wg) {
  const int64_t steps = l.batch * l.time, e = l.depth;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < steps;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = i / l.time, t = i - b * l.time;
    if (!Valid(rows, b, t)) continue;
    T ds = s.dweight[i];
    if (l.normalize) ds = Weight(l, rows, s, b, t) * (ds - s.stats[4 * b + 3]);
    const T* a = s.acts + i * l.slot;
    T* d = s.grads + i * 2 * l.widest;  // d loss / d output of the current layer.
    T* dprev = d + l.widest;
    if (l.hidden == 0) {
      d[0] = ds;
    } else {
      const int last = l.hidden - 1;
      const T* al = a + l.offset[last];
      for (int64_t j = 0; j < l.width[last]; ++j) {
        d[j] = ds * w.kernels[l.hidden][j];
        atomicAdd(wg.kernels[l.hidden] + j, ds * al[j]);
      }
      atomicAdd(wg.biases[l.hidden], ds);
      for (int layer = last; layer >= 0; --layer) {
        const int64_t out = l.width[layer];
        const T* y = a + l.offset[layer];
        for (int64_t j = 0; j < out; ++j) {
          d[j] *= ActGrad(l.activation, y[j]);
          atomicAdd(wg.biases[layer] + j, d[j]);
        }
        if (layer == 0) break;
        const int64_t in = l.width[layer - 1];
        const T* x = a + l.offset[layer - 1];
        for (int64_t r = 0; r < in; ++r) {
          T sum = 0;
          for (int64_t j = 0; j < out; ++j) {
            sum += d[j] * w.kernels[layer][r * out + j];
            atomicAdd(wg.kernels[layer] + r * out + j, x[r] * d[j]);
          }
          dprev[r] = sum;
        }
        T* tmp = d;
        d = dprev;
        dprev = tmp;
      }
    }
    if (l.hidden == 0) atomicAdd(wg.biases[0], ds);
    // Layer 0: u = [q, k, q - k, q * k].
    const int64_t m0 = l.width[0];
    const T* q = query + b * e;
    const T* k = keys + i * e;
    T* gk = grad_keys + i * e;
    for (int64_t r = 0; r < e; ++r) {
      const T qr = q[r], kr = k[r];
      T du_q = 0, du_k = 0, du_d = 0, du_p = 0;
      for (int64_t j = 0; j < m0; ++j) {
        const T dj = d[j];
        du_q += dj * w.kernels[0][r * m0 + j];
        du_k += dj * w.kernels[0][(e + r) * m0 + j];
        du_d += dj * w.kernels[0][(2 * e + r) * m0 + j];
        du_p += dj * w.kernels[0][(3 * e + r) * m0 + j];
        atomicAdd(wg.kernels[0] + r * m0 + j, qr * dj);
        atomicAdd(wg.kernels[0] + (e + r) * m0 + j, kr * dj);
        atomicAdd(wg.kernels[0] + (2 * e + r) * m0 + j, (qr - kr) * dj);
        atomicAdd(wg.kernels[0] + (3 * e + r) * m0 + j, (qr * kr) * dj);
      }
      atomicAdd(grad_query + b * e + r, du_q + du_d + du_p * kr);
      gk[r] += du_k - du_d + du_p * qr;
    }
  }
}

template <typename T>
Status ZeroWeightGrads(const AttentionPoolSpec& spec, const AttentionWeightGrads<T>& wg,
                       cudaStream_t stream) {
  for (int i = 0; i < spec.num_layers(); ++i) {
    const int64_t in = spec.layer_in(i), out = spec.layer_out(i);
    if (cudaMemsetAsync(wg.kernels[i], 0, in * out * sizeof(T), stream) != cudaSuccess ||
        cudaMemsetAsync(wg.biases[i], 0, out * sizeof(T), stream) != cudaSuccess) {
      cudaGetLastError();
      return Status::Internal("AttentionPool backward: cudaMemsetAsync failed");
    }
  }
  return Status::Ok();
}

}  // namespace

template <typename T, typename Index>
int64_t AttentionPoolGpuWorkspaceBytes(const AttentionPoolSpec& spec,
                                       const PoolRows<Index>& rows) {
  const Layers l = MakeLayers(spec, rows);
  const int64_t steps = l.batch * l.time;
  return static_cast<int64_t>(sizeof(T)) * (steps * (l.slot + 2 + 2 * l.widest) + 4 * l.batch);
}

template <typename T, typename Index>
Status LaunchAttentionPoolForward(const AttentionPoolSpec& spec, const PoolRows<Index>& rows,
                                  const T* query, const T* keys,
                                  const AttentionWeights<T>& weights, T* output, void* workspace,
                                  void* stream) {
  Status status = ValidateAttentionPool(spec, rows);
  if (!status.ok()) return status;
  const Layers l = MakeLayers(spec, rows);
  const int64_t width = AttentionPoolOutputWidth(spec, rows);
  if (l.batch * width == 0) return Status::Ok();
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const Scratch<T> scratch = Carve<T>(l, workspace);
  const int64_t steps = l.batch * l.time;
  if (steps > 0) {
    ScoreKernel<T, Index><<<BlocksFor(steps, kThreads), kThreads, 0, s>>>(l, rows, query, keys,
                                                                         weights, scratch);
  }
  RowStatsKernel<T, Index><<<BlocksFor(l.batch, kThreads), kThreads, 0, s>>>(l, rows, scratch);
  PoolKernel<T, Index><<<BlocksFor(l.batch * width, kThreads), kThreads, 0, s>>>(
      l, rows, keys, scratch, output);
  return CheckLaunch("AttentionPool forward");
}

template <typename T, typename Index>
Status LaunchAttentionPoolBackward(const AttentionPoolSpec& spec, const PoolRows<Index>& rows,
                                   const T* query, const T* keys,
                                   const AttentionWeights<T>& weights, const T* grad_output,
                                   T* grad_query, T* grad_keys,
                                   const AttentionWeightGrads<T>& weight_grads, void* workspace,
                                   void* stream) {
  Status status = ValidateAttentionPool(spec, rows);
  if (!status.ok()) return status;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  status = ZeroWeightGrads(spec, weight_grads, s);
  if (!status.ok()) return status;
  const Layers l = MakeLayers(spec, rows);
  if (l.batch * l.depth > 0 &&
      cudaMemsetAsync(grad_query, 0, l.batch * l.depth * sizeof(T), s) != cudaSuccess) {
    cudaGetLastError();
    return Status::Internal("AttentionPool backward: cudaMemsetAsync failed");
  }
  const int64_t steps = l.batch * l.time;
  if (steps == 0) return CheckLaunch("AttentionPool backward");
  const Scratch<T> scratch = Carve<T>(l, workspace);
  const int blocks = BlocksFor(steps, kThreads);
  const int row_blocks = BlocksFor(l.batch, kThreads);
  ScoreKernel<T, Index><<<blocks, kThreads, 0, s>>>(l, rows, query, keys, weights, scratch);
  RowStatsKernel<T, Index><<<row_blocks, kThreads, 0, s>>>(l, rows, scratch);
  DWeightKernel<T, Index><<<blocks, kThreads, 0, s>>>(l, rows, keys, grad_output, scratch,
                                                      grad_keys);
  RowDotKernel<T, Index><<<row_blocks, kThreads, 0, s>>>(l, rows, scratch);
  MlpBackwardKernel<T, Index><<<blocks, kThreads, 0, s>>>(l, rows, query, keys, weights,
                                                          scratch, grad_query, grad_keys,
                                                          weight_grads);
  return CheckLaunch("AttentionPool backward");
}

#define DEEPCTR_OPS_INSTANTIATE_ATTENTION_POOL_GPU(T, Index)                                  \
  template int64_t AttentionPoolGpuWorkspaceBytes<T, Index>(const AttentionPoolSpec&,         \
                                                            const PoolRows<Index>&);          \
  template Status LaunchAttentionPoolForward<T, Index>(                                       \
      const AttentionPoolSpec&, const PoolRows<Index>&, const T*, const T*,                   \
      const AttentionWeights<T>&, T*, void*, void*);                                          \
  template Status LaunchAttentionPoolBackward<T, Index>(                                      \
      const AttentionPoolSpec&, const PoolRows<Index>&, const T*, const T*,                   \
      const AttentionWeights<T>&, const T*, T*, T*, const AttentionWeightGrads<T>&, void*,    \
      void*);
DEEPCTR_OPS_INSTANTIATE_ATTENTION_POOL_GPU(float, int32_t)
DEEPCTR_OPS_INSTANTIATE_ATTENTION_POOL_GPU(float, int64_t)
DEEPCTR_OPS_INSTANTIATE_ATTENTION_POOL_GPU(double, int32_t)
DEEPCTR_OPS_INSTANTIATE_ATTENTION_POOL_GPU(double, int64_t)
#undef DEEPCTR_OPS_INSTANTIATE_ATTENTION_POOL_GPU

}  // namespace kernels
}  // namespace deepctr_ops
