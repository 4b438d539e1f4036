// CUDA implementation of the dynamic GRU. See dynamic_gru.h for the contract
// and dynamic_gru_rowwise.h for the algorithm: one block per batch row loops
// over that row's valid steps inside the kernel (a persistent launch, no
// per-step launches); the recurrent weights Wg[E:] and Wc[E:] are copied to
// shared memory when they fit (U <= ~100 in float on sm_80/sm_90), else read
// from global memory through the caches. The backward zeroes the weight
// gradients and accumulates them with atomic adds.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cc/kernels/cuda_launch.h"
#include "cc/kernels/dynamic_gru.h"
#include "cc/kernels/dynamic_gru_rowwise.h"

namespace deepctr_ops {
namespace kernels {
namespace {

constexpr int kThreads = 128;

// Points wg_h / wc_h at a shared-memory copy of the recurrent weights when
// `shared_weights` (the copy lives after `scratch_values` values of scratch).
template <typename T>
__device__ void RecurrentWeights(const GruShape& s, const T* wg, const T* wc, T* smem,
                                 int64_t scratch_values, bool shared_weights, const T** wg_h,
                                 const T** wc_h) {
  const int64_t u = s.units;
  *wg_h = wg + s.input * 2 * u;
  *wc_h = wc + s.input * u;
  if (!shared_weights) return;
  T* copy = smem + scratch_values;
  for (int64_t i = threadIdx.x; i < 2 * u * u; i += blockDim.x) copy[i] = (*wg_h)[i];
  for (int64_t i = threadIdx.x; i < u * u; i += blockDim.x) copy[2 * u * u + i] = (*wc_h)[i];
  __syncthreads();
  *wg_h = copy;
  *wc_h = copy + 2 * u * u;
}

template <typename T, typename Index>
__global__ void ForwardKernel(GruShape s, GruForwardArgs<T, Index> a, bool shared_weights) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* smem = reinterpret_cast<T*>(smem_raw);
  const int tid = threadIdx.x, nt = blockDim.x;
  rowwise::ForwardRow<T, Index> row;
  row.s = &s;
  row.a = &a;
  RecurrentWeights(s, a.wg, a.wc, smem, rowwise::ForwardScratch(s), shared_weights, &row.wg_h,
                   &row.wc_h);
  row.Bind(smem);
  for (int64_t b = blockIdx.x; b < s.batch; b += gridDim.x) {
    row.b = b;
    row.len = rowwise::ClampLength(a.lengths[b], s.time);
    row.Start(tid, nt);
    __syncthreads();
    for (int64_t step = 0; step < row.len; ++step) {
      row.LoadInput(step, tid, nt);
      __syncthreads();
      row.Gates(tid, nt);
      __syncthreads();
      row.Reset(tid, nt);
      __syncthreads();
      row.Candidate(step, tid, nt);
      __syncthreads();
      row.Commit(tid, nt);
      __syncthreads();
    }
    row.Finish(tid, nt);
    __syncthreads();
  }
}

template <typename T, typename Index>
__global__ void BackwardKernel(GruShape s, GruBackwardArgs<T, Index> a, bool shared_weights) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* smem = reinterpret_cast<T*>(smem_raw);
  const int tid = threadIdx.x, nt = blockDim.x;
  rowwise::BackwardRow<T, Index> row;
  row.s = &s;
  row.a = &a;
  RecurrentWeights(s, a.wg, a.wc, smem, rowwise::BackwardScratch(s), shared_weights, &row.wg_h,
                   &row.wc_h);
  row.Bind(smem);
  for (int64_t b = blockIdx.x; b < s.batch; b += gridDim.x) {
    row.b = b;
    row.len = rowwise::ClampLength(a.lengths[b], s.time);
    row.Start(tid, nt);
    __syncthreads();
    for (int64_t step = row.len - 1; step >= 0; --step) {
      row.Load(step, tid, nt);
      __syncthreads();
      row.Pointwise(step, tid, nt);
      __syncthreads();
      row.ResetGate(step, tid, nt);
      __syncthreads();
      row.Accumulate(step, tid, nt);
      row.NextState(tid, nt);
      __syncthreads();
    }
  }
}

// Dynamic shared memory for `scratch_values` plus, when it fits, the
// recurrent weights; opts the kernel into more than 48 KiB when needed.
template <typename T, typename Kernel>
Status SharedMemory(Kernel kernel, const GruShape& s, int64_t scratch_values,
                    bool* shared_weights, size_t* bytes) {
  int device = 0, optin = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess) {
    err = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  }
  if (err != cudaSuccess) {
    cudaGetLastError();
    return Status::Internal(std::string("cudaDeviceGetAttribute: ") + cudaGetErrorString(err));
  }
  const size_t scratch = static_cast<size_t>(scratch_values) * sizeof(T);
  const size_t weights = static_cast<size_t>(3 * s.units * s.units) * sizeof(T);
  *shared_weights = scratch + weights <= static_cast<size_t>(optin);
  *bytes = scratch + (*shared_weights ? weights : 0);
  if (*bytes > static_cast<size_t>(optin)) {
    return Status::InvalidArgument("dynamic GRU: units " + std::to_string(s.units) +
                                   " and input size " + std::to_string(s.input) +
                                   " need more shared memory than the GPU has per block");
  }
  if (*bytes > 48 * 1024) {
    err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(*bytes));
    if (err != cudaSuccess) {
      cudaGetLastError();
      return Status::Internal(std::string("cudaFuncSetAttribute: ") + cudaGetErrorString(err));
    }
  }
  return Status::Ok();
}

int Blocks(int64_t batch) {
  return static_cast<int>(batch < 65535 * 32 ? batch : 65535 * 32);
}

}  // namespace

template <typename T, typename Index>
Status LaunchDynamicGruForward(const GruShape& shape, const GruForwardArgs<T, Index>& args,
                               void* stream) {
  Status status = ValidateGruShape(shape);
  if (!status.ok() || shape.batch == 0) return status;
  if (GruUsesAttention(shape.cell) && args.att == nullptr && shape.time > 0) {
    return Status::InvalidArgument("att_scores are required for AGRU and AUGRU");
  }
  bool shared_weights = false;
  size_t bytes = 0;
  status = SharedMemory<T>(ForwardKernel<T, Index>, shape, rowwise::ForwardScratch(shape),
                           &shared_weights, &bytes);
  if (!status.ok()) return status;
  ForwardKernel<T, Index><<<Blocks(shape.batch), kThreads, bytes,
                            static_cast<cudaStream_t>(stream)>>>(shape, args, shared_weights);
  return CheckLaunch("DynamicGru forward");
}

template <typename T, typename Index>
Status LaunchDynamicGruBackward(const GruShape& shape, const GruBackwardArgs<T, Index>& args,
                                void* stream) {
  Status status = ValidateGruShape(shape);
  if (!status.ok()) return status;
  if (GruUsesAttention(shape.cell) && (args.att == nullptr || args.grad_att == nullptr) &&
      shape.batch * shape.time > 0) {
    return Status::InvalidArgument("att_scores are required for AGRU and AUGRU");
  }
  const auto cu_stream = static_cast<cudaStream_t>(stream);
  const int64_t e = shape.input, u = shape.units;
  const struct {
    T* ptr;
    int64_t count;
  } zero[] = {{args.grad_wg, (e + u) * 2 * u},
              {args.grad_bg, 2 * u},
              {args.grad_wc, (e + u) * u},
              {args.grad_bc, u}};
  for (const auto& z : zero) {
    if (z.count == 0) continue;
    const cudaError_t err = cudaMemsetAsync(z.ptr, 0, z.count * sizeof(T), cu_stream);
    if (err != cudaSuccess) {
      cudaGetLastError();
      return Status::Internal(std::string("cudaMemsetAsync: ") + cudaGetErrorString(err));
    }
  }
  if (shape.batch == 0) return Status::Ok();
  bool shared_weights = false;
  size_t bytes = 0;
  status = SharedMemory<T>(BackwardKernel<T, Index>, shape, rowwise::BackwardScratch(shape),
                           &shared_weights, &bytes);
  if (!status.ok()) return status;
  BackwardKernel<T, Index><<<Blocks(shape.batch), kThreads, bytes, cu_stream>>>(
      shape, args, shared_weights);
  return CheckLaunch("DynamicGru backward");
}

#define DEEPCTR_OPS_INSTANTIATE_GRU_CUDA(T, Index)                                          \
  template Status LaunchDynamicGruForward<T, Index>(const GruShape&,                        \
                                                    const GruForwardArgs<T, Index>&, void*); \
  template Status LaunchDynamicGruBackward<T, Index>(                                       \
      const GruShape&, const GruBackwardArgs<T, Index>&, void*);
DEEPCTR_OPS_INSTANTIATE_GRU_CUDA(float, int32_t)
DEEPCTR_OPS_INSTANTIATE_GRU_CUDA(float, int64_t)
DEEPCTR_OPS_INSTANTIATE_GRU_CUDA(double, int32_t)
DEEPCTR_OPS_INSTANTIATE_GRU_CUDA(double, int64_t)
#undef DEEPCTR_OPS_INSTANTIATE_GRU_CUDA

}  // namespace kernels
}  // namespace deepctr_ops
