#include "cc/python_bindings/gpu_gru_runner.h"

#include <cuda_runtime.h>

#include <cstddef>

#include "cc/kernels/dynamic_gru_directions.h"
#include "cc/python_bindings/cuda_host_utils.h"

namespace deepctr_ops {
namespace bindings {

template <typename T, typename Index>
kernels::Status RunDynamicGruForwardOnGpu(const kernels::GruShape& s,
                                          const kernels::GruForwardArgs<T, Index>& host,
                                          int directions, int repeats, double* milliseconds) {
  *milliseconds = 0.0;
  kernels::Status st = kernels::ValidateGruShape(s);
  if (!st.ok()) return st;
  const size_t b = s.batch, t = s.time, e = s.input, u = s.units, nd = directions;
  const bool att = host.att != nullptr;
  const bool save = host.gates != nullptr;  // Null: the inference forward.
  DeviceBuffer x, lengths, a, wg, bg, wc, bc, out, fin, gates;
  st = Upload(host.x, b * t * e, &x);
  if (st.ok()) st = Upload(host.lengths, b, &lengths);
  if (st.ok()) st = Upload(att ? host.att : host.x, att ? b * t : 0, &a);
  if (st.ok()) st = Upload(host.wg, nd * (e + u) * 2 * u, &wg);
  if (st.ok()) st = Upload(host.bg, nd * 2 * u, &bg);
  if (st.ok()) st = Upload(host.wc, nd * (e + u) * u, &wc);
  if (st.ok()) st = Upload(host.bc, nd * u, &bc);
  if (st.ok()) st = CudaStatus(out.Allocate(b * t * nd * u * sizeof(T)), "cudaMalloc");
  if (st.ok()) st = CudaStatus(fin.Allocate(b * nd * u * sizeof(T)), "cudaMalloc");
  if (st.ok() && save) {
    st = CudaStatus(gates.Allocate(nd * b * t * 3 * u * sizeof(T)), "cudaMalloc");
  }
  if (!st.ok()) return st;
  kernels::GruForwardArgs<T, Index> d;
  d.x = static_cast<const T*>(x.get());
  d.lengths = static_cast<const Index*>(lengths.get());
  d.att = att ? static_cast<const T*>(a.get()) : nullptr;
  d.wg = static_cast<const T*>(wg.get());
  d.bg = static_cast<const T*>(bg.get());
  d.wc = static_cast<const T*>(wc.get());
  d.bc = static_cast<const T*>(bc.get());
  d.outputs = static_cast<T*>(out.get());
  d.final_state = static_cast<T*>(fin.get());
  d.gates = save ? static_cast<T*>(gates.get()) : nullptr;
  auto launch = [&]() {
    return kernels::ForEachDirection(s, d, directions, [](const kernels::GruShape& sd,
                                                          const auto& ad) {
      return kernels::LaunchDynamicGruForward(sd, ad, nullptr);
    });
  };
  st = launch();
  if (st.ok()) st = CudaStatus(cudaDeviceSynchronize(), "kernel");
  if (st.ok()) st = Download(out, b * t * nd * u, host.outputs);
  if (st.ok()) st = Download(fin, b * nd * u, host.final_state);
  if (st.ok() && save) st = Download(gates, nd * b * t * 3 * u, host.gates);
  if (!st.ok()) return st;
  return TimeLaunches(launch, repeats < 1 ? 1 : repeats, milliseconds);
}

template <typename T, typename Index>
kernels::Status RunDynamicGruBackwardOnGpu(const kernels::GruShape& s,
                                           const kernels::GruBackwardArgs<T, Index>& host,
                                           int directions, int repeats, double* milliseconds) {
  *milliseconds = 0.0;
  kernels::Status st = kernels::ValidateGruShape(s);
  if (!st.ok()) return st;
  const size_t b = s.batch, t = s.time, e = s.input, u = s.units, nd = directions;
  const bool att = host.att != nullptr;
  DeviceBuffer x, lengths, a, wg, wc, out, gates, go, gf, gx, ga, gwg, gbg, gwc, gbc;
  st = Upload(host.x, b * t * e, &x);
  if (st.ok()) st = Upload(host.lengths, b, &lengths);
  if (st.ok()) st = Upload(att ? host.att : host.x, att ? b * t : 0, &a);
  if (st.ok()) st = Upload(host.wg, nd * (e + u) * 2 * u, &wg);
  if (st.ok()) st = Upload(host.wc, nd * (e + u) * u, &wc);
  if (st.ok()) st = Upload(host.outputs, b * t * nd * u, &out);
  if (st.ok()) st = Upload(host.gates, nd * b * t * 3 * u, &gates);
  // A null incoming gradient (zero) stays null on the device.
  const bool has_go = host.grad_outputs != nullptr, has_gf = host.grad_final != nullptr;
  if (st.ok()) st = Upload(host.grad_outputs, has_go ? b * t * nd * u : 0, &go);
  if (st.ok()) st = Upload(host.grad_final, has_gf ? b * nd * u : 0, &gf);
  if (st.ok()) st = CudaStatus(gx.Allocate(b * t * e * sizeof(T)), "cudaMalloc");
  if (st.ok()) st = CudaStatus(ga.Allocate((att ? b * t : 0) * sizeof(T)), "cudaMalloc");
  if (st.ok()) st = CudaStatus(gwg.Allocate(nd * (e + u) * 2 * u * sizeof(T)), "cudaMalloc");
  if (st.ok()) st = CudaStatus(gbg.Allocate(nd * 2 * u * sizeof(T)), "cudaMalloc");
  if (st.ok()) st = CudaStatus(gwc.Allocate(nd * (e + u) * u * sizeof(T)), "cudaMalloc");
  if (st.ok()) st = CudaStatus(gbc.Allocate(nd * u * sizeof(T)), "cudaMalloc");
  if (!st.ok()) return st;
  kernels::GruBackwardArgs<T, Index> d;
  d.x = static_cast<const T*>(x.get());
  d.lengths = static_cast<const Index*>(lengths.get());
  d.att = att ? static_cast<const T*>(a.get()) : nullptr;
  d.wg = static_cast<const T*>(wg.get());
  d.wc = static_cast<const T*>(wc.get());
  d.outputs = static_cast<const T*>(out.get());
  d.gates = static_cast<const T*>(gates.get());
  d.grad_outputs = has_go ? static_cast<const T*>(go.get()) : nullptr;
  d.grad_final = has_gf ? static_cast<const T*>(gf.get()) : nullptr;
  d.grad_x = static_cast<T*>(gx.get());
  d.grad_att = att ? static_cast<T*>(ga.get()) : nullptr;
  d.grad_wg = static_cast<T*>(gwg.get());
  d.grad_bg = static_cast<T*>(gbg.get());
  d.grad_wc = static_cast<T*>(gwc.get());
  d.grad_bc = static_cast<T*>(gbc.get());
  auto launch = [&]() {
    return kernels::ForEachDirection(s, d, directions, [](const kernels::GruShape& sd,
                                                          const auto& ad) {
      return kernels::LaunchDynamicGruBackward(sd, ad, nullptr);
    });
  };
  st = launch();
  if (st.ok()) st = CudaStatus(cudaDeviceSynchronize(), "kernel");
  if (st.ok()) st = Download(gx, b * t * e, host.grad_x);
  if (st.ok() && att) st = Download(ga, b * t, host.grad_att);
  if (st.ok()) st = Download(gwg, nd * (e + u) * 2 * u, host.grad_wg);
  if (st.ok()) st = Download(gbg, nd * 2 * u, host.grad_bg);
  if (st.ok()) st = Download(gwc, nd * (e + u) * u, host.grad_wc);
  if (st.ok()) st = Download(gbc, nd * u, host.grad_bc);
  if (!st.ok()) return st;
  return TimeLaunches(launch, repeats < 1 ? 1 : repeats, milliseconds);
}

#define DEEPCTR_OPS_INSTANTIATE_GRU_RUNNER(T, Index)                                      \
  template kernels::Status RunDynamicGruForwardOnGpu<T, Index>(                           \
      const kernels::GruShape&, const kernels::GruForwardArgs<T, Index>&, int, int,        \
      double*);                                                                           \
  template kernels::Status RunDynamicGruBackwardOnGpu<T, Index>(                          \
      const kernels::GruShape&, const kernels::GruBackwardArgs<T, Index>&, int, int,       \
      double*);
DEEPCTR_OPS_INSTANTIATE_GRU_RUNNER(float, int32_t)
DEEPCTR_OPS_INSTANTIATE_GRU_RUNNER(float, int64_t)
DEEPCTR_OPS_INSTANTIATE_GRU_RUNNER(double, int32_t)
DEEPCTR_OPS_INSTANTIATE_GRU_RUNNER(double, int64_t)
#undef DEEPCTR_OPS_INSTANTIATE_GRU_RUNNER

}  // namespace bindings
}  // namespace deepctr_ops
