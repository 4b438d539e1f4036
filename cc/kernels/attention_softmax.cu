// CUDA implementation of the masked attention softmax. See attention_softmax.h.
// One warp owns one (row, query) line; lanes stride over the keys, so loads and
// stores are coalesced, and the max / sum / dot reductions are warp shuffles.
#include <cuda_runtime.h>

#include <cstdint>

#include "cc/kernels/attention_softmax.h"
#include "cc/kernels/cuda_launch.h"

namespace deepctr_ops {
namespace kernels {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;

__device__ __forceinline__ float Exp(float x) { return expf(x); }
__device__ __forceinline__ double Exp(double x) { return exp(x); }
__device__ __forceinline__ float Max(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double Max(double a, double b) { return fmax(a, b); }

template <typename T>
__device__ __forceinline__ T WarpMax(T v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    v = Max(v, __shfl_xor_sync(0xffffffffu, v, offset));
  }
  return v;
}

template <typename T>
__device__ __forceinline__ T WarpSum(T v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  }
  return v;
}

__device__ __forceinline__ bool Eligible(const bool* valid, int64_t q, int64_t k, bool blinding) {
  return valid[k] && !(blinding && q == k);
}

template <typename T>
__global__ void ForwardKernel(AttentionSoftmaxShape s, const T* __restrict__ scores,
                              const bool* __restrict__ key_valid, T* __restrict__ probs) {
  const int lane = threadIdx.x % kWarp;
  const int64_t lines = s.rows * s.time_q;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  const T divisor = static_cast<T>(s.divisor);
  const T padding = AttentionPaddingLogit<T>();
  for (int64_t line = blockIdx.x * static_cast<int64_t>(kWarpsPerBlock) + threadIdx.x / kWarp;
       line < lines; line += warps) {
    const int64_t n = line / s.time_q;
    const int64_t q = line - n * s.time_q;
    const bool* valid = key_valid + (n % s.batch) * s.time_k;
    const T* x = scores + line * s.time_k;
    T* out = probs + line * s.time_k;
    T max = -INFINITY;
    for (int64_t k = lane; k < s.time_k; k += kWarp) {
      const T v = Eligible(valid, q, k, s.blinding) ? x[k] / divisor : padding;
      out[k] = v;
      max = Max(max, v);
    }
    max = WarpMax(max);
    T sum = 0;
    for (int64_t k = lane; k < s.time_k; k += kWarp) {
      const T e = Exp(out[k] - max);
      out[k] = e;
      sum += e;
    }
    const T inv = T(1) / WarpSum(sum);
    for (int64_t k = lane; k < s.time_k; k += kWarp) out[k] *= inv;
  }
}

template <typename T>
__global__ void BackwardKernel(AttentionSoftmaxShape s, const T* __restrict__ grad,
                               const T* __restrict__ probs, const bool* __restrict__ key_valid,
                               T* __restrict__ grad_scores) {
  const int lane = threadIdx.x % kWarp;
  const int64_t lines = s.rows * s.time_q;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  const T divisor = static_cast<T>(s.divisor);
  for (int64_t line = blockIdx.x * static_cast<int64_t>(kWarpsPerBlock) + threadIdx.x / kWarp;
       line < lines; line += warps) {
    const int64_t n = line / s.time_q;
    const int64_t q = line - n * s.time_q;
    const bool* valid = key_valid + (n % s.batch) * s.time_k;
    const T* g = grad + line * s.time_k;
    const T* p = probs + line * s.time_k;
    T* out = grad_scores + line * s.time_k;
    T dot = 0;
    for (int64_t k = lane; k < s.time_k; k += kWarp) dot += g[k] * p[k];
    dot = WarpSum(dot);
    for (int64_t k = lane; k < s.time_k; k += kWarp) {
      const T v = ((g[k] - dot) * p[k]) / divisor;
      out[k] = Eligible(valid, q, k, s.blinding) ? v : T(0);
    }
  }
}

}  // namespace

template <typename T>
Status LaunchAttentionSoftmaxForward(const AttentionSoftmaxShape& s, const T* scores,
                                     const bool* key_valid, T* probs, void* stream) {
  Status status = ValidateAttentionSoftmaxShape(s);
  const int64_t lines = s.rows * s.time_q;
  if (!status.ok() || lines == 0 || s.time_k == 0) return status;
  ForwardKernel<T><<<BlocksFor(lines, kWarpsPerBlock), kWarp * kWarpsPerBlock, 0,
                     static_cast<cudaStream_t>(stream)>>>(s, scores, key_valid, probs);
  return CheckLaunch("AttentionSoftmax forward");
}

template <typename T>
Status LaunchAttentionSoftmaxBackward(const AttentionSoftmaxShape& s, const T* grad,
                                      const T* probs, const bool* key_valid, T* grad_scores,
                                      void* stream) {
  Status status = ValidateAttentionSoftmaxShape(s);
  const int64_t lines = s.rows * s.time_q;
  if (!status.ok() || lines == 0 || s.time_k == 0) return status;
  BackwardKernel<T><<<BlocksFor(lines, kWarpsPerBlock), kWarp * kWarpsPerBlock, 0,
                      static_cast<cudaStream_t>(stream)>>>(s, grad, probs, key_valid,
                                                           grad_scores);
  return CheckLaunch("AttentionSoftmax backward");
}

#define DEEPCTR_OPS_INSTANTIATE_ATTENTION_GPU(T)                                            \
  template Status LaunchAttentionSoftmaxForward<T>(const AttentionSoftmaxShape&, const T*,  \
                                                   const bool*, T*, void*);                 \
  template Status LaunchAttentionSoftmaxBackward<T>(const AttentionSoftmaxShape&, const T*, \
                                                    const T*, const bool*, T*, void*);
DEEPCTR_OPS_INSTANTIATE_ATTENTION_GPU(float)
DEEPCTR_OPS_INSTANTIATE_ATTENTION_GPU(double)
#undef DEEPCTR_OPS_INSTANTIATE_ATTENTION_GPU

}  // namespace kernels
}  // namespace deepctr_ops
