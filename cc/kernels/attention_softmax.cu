// CUDA implementation of the masked attention softmax. See attention_softmax.h.
// One warp owns one (row, query) line; lanes stride over the keys, so loads and
// stores are coalesced, and the max / sum / dot reductions are warp shuffles.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cc/kernels/attention_softmax.h"

namespace deepctr_ops {
namespace kernels {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;

__device__ __forceinline__ float WarpMax(float v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  }
  return v;
}

__device__ __forceinline__ float WarpSum(float v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  }
  return v;
}

__device__ __forceinline__ bool Eligible(const bool* valid, int64_t q, int64_t k, bool blinding) {
  return valid[k] && !(blinding && q == k);
}

__global__ void ForwardKernel(AttentionSoftmaxShape s, const float* __restrict__ scores,
                              const bool* __restrict__ key_valid, float* __restrict__ probs) {
  const int lane = threadIdx.x % kWarp;
  const int64_t lines = s.rows * s.time_q;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t line = blockIdx.x * static_cast<int64_t>(kWarpsPerBlock) + threadIdx.x / kWarp;
       line < lines; line += warps) {
    const int64_t n = line / s.time_q;
    const int64_t q = line - n * s.time_q;
    const bool* valid = key_valid + (n % s.batch) * s.time_k;
    const float* x = scores + line * s.time_k;
    float* out = probs + line * s.time_k;
    float max = -INFINITY;
    for (int64_t k = lane; k < s.time_k; k += kWarp) {
      const float v = Eligible(valid, q, k, s.blinding) ? x[k] / s.divisor : kPaddingLogit;
      out[k] = v;
      max = fmaxf(max, v);
    }
    max = WarpMax(max);
    float sum = 0.0f;
    for (int64_t k = lane; k < s.time_k; k += kWarp) {
      const float e = expf(out[k] - max);
      out[k] = e;
      sum += e;
    }
    const float inv = 1.0f / WarpSum(sum);
    for (int64_t k = lane; k < s.time_k; k += kWarp) out[k] *= inv;
  }
}

__global__ void BackwardKernel(AttentionSoftmaxShape s, const float* __restrict__ grad,
                               const float* __restrict__ probs,
                               const bool* __restrict__ key_valid,
                               float* __restrict__ grad_scores) {
  const int lane = threadIdx.x % kWarp;
  const int64_t lines = s.rows * s.time_q;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t line = blockIdx.x * static_cast<int64_t>(kWarpsPerBlock) + threadIdx.x / kWarp;
       line < lines; line += warps) {
    const int64_t n = line / s.time_q;
    const int64_t q = line - n * s.time_q;
    const bool* valid = key_valid + (n % s.batch) * s.time_k;
    const float* g = grad + line * s.time_k;
    const float* p = probs + line * s.time_k;
    float* out = grad_scores + line * s.time_k;
    float dot = 0.0f;
    for (int64_t k = lane; k < s.time_k; k += kWarp) dot += g[k] * p[k];
    dot = WarpSum(dot);
    for (int64_t k = lane; k < s.time_k; k += kWarp) {
      const float v = ((g[k] - dot) * p[k]) / s.divisor;
      out[k] = Eligible(valid, q, k, s.blinding) ? v : 0.0f;
    }
  }
}

int BlocksFor(int64_t lines) {
  const int64_t blocks = (lines + kWarpsPerBlock - 1) / kWarpsPerBlock;
  return static_cast<int>(blocks < 65535 * 32 ? blocks : 65535 * 32);
}

Status CheckLaunch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) return Status::Ok();
  return Status::Internal(std::string(what) + " launch failed: " + cudaGetErrorString(err));
}

}  // namespace

Status LaunchAttentionSoftmaxForward(const AttentionSoftmaxShape& s, const float* scores,
                                     const bool* key_valid, float* probs, void* stream) {
  Status status = ValidateAttentionSoftmaxShape(s);
  const int64_t lines = s.rows * s.time_q;
  if (!status.ok() || lines == 0 || s.time_k == 0) return status;
  ForwardKernel<<<BlocksFor(lines), kWarp * kWarpsPerBlock, 0,
                  static_cast<cudaStream_t>(stream)>>>(s, scores, key_valid, probs);
  return CheckLaunch("AttentionSoftmax forward");
}

Status LaunchAttentionSoftmaxBackward(const AttentionSoftmaxShape& s, const float* grad,
                                      const float* probs, const bool* key_valid,
                                      float* grad_scores, void* stream) {
  Status status = ValidateAttentionSoftmaxShape(s);
  const int64_t lines = s.rows * s.time_q;
  if (!status.ok() || lines == 0 || s.time_k == 0) return status;
  BackwardKernel<<<BlocksFor(lines), kWarp * kWarpsPerBlock, 0,
                   static_cast<cudaStream_t>(stream)>>>(s, grad, probs, key_valid, grad_scores);
  return CheckLaunch("AttentionSoftmax backward");
}

}  // namespace kernels
}  // namespace deepctr_ops
