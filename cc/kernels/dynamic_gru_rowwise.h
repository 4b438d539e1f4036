// The dynamic GRU's CUDA algorithm as host/device phases, so that the same
// code runs in the CUDA kernels (dynamic_gru.cu) and, thread by thread, in the
// host emulation that reviews it without a GPU (dynamic_gru_emulate.cc).
//
// One thread block owns one batch row and loops over its valid steps (a
// persistent launch: no per-step kernel launches). Each phase below is run by
// every thread `tid` of `threads` of the block, with a __syncthreads between
// phases; phases communicate only through the block's scratch (shared memory
// on the GPU). The recurrent weights are read from `wg_h` / `wc_h`, which the
// kernel points at a shared-memory copy when it fits, else at global memory.
// Weight gradients are accumulated with atomic adds (plain adds on the host).
#ifndef DEEPCTR_OPS_CC_KERNELS_DYNAMIC_GRU_ROWWISE_H_
#define DEEPCTR_OPS_CC_KERNELS_DYNAMIC_GRU_ROWWISE_H_

#include <cstdint>

#if !defined(__CUDACC__)
#include <cmath>
#endif

#include "cc/kernels/dynamic_gru.h"
#include "cc/kernels/host_device.h"

namespace deepctr_ops {
namespace kernels {
namespace rowwise {

template <typename T>
DCTR_HOST_DEVICE inline T Sigmoid(T x) {
#if defined(__CUDA_ARCH__)
  return T(1) / (T(1) + exp(-x));
#else
  return T(1) / (T(1) + std::exp(-x));
#endif
}

template <typename T>
DCTR_HOST_DEVICE inline T Tanh(T x) {
#if defined(__CUDA_ARCH__)
  return tanh(x);
#else
  return std::tanh(x);
#endif
}

template <typename T>
DCTR_HOST_DEVICE inline void AtomicAdd(T* target, T value) {
#if defined(__CUDA_ARCH__)
  atomicAdd(target, value);
#else
  *target += value;
#endif
}

template <typename Index>
DCTR_HOST_DEVICE inline int64_t ClampLength(Index len, int64_t time) {
  return len <= 0 ? 0 : (static_cast<int64_t>(len) < time ? static_cast<int64_t>(len) : time);
}

// Scratch values per block: forward 6U + E, backward 8U + E.
DCTR_HOST_DEVICE inline int64_t ForwardScratch(const GruShape& s) {
  return 6 * s.units + s.input;
}
DCTR_HOST_DEVICE inline int64_t BackwardScratch(const GruShape& s) {
  return 8 * s.units + s.input;
}

// ---- forward ------------------------------------------------------------------

template <typename T, typename Index>
struct ForwardRow {
  const GruShape* s;
  const GruForwardArgs<T, Index>* a;
  const T* wg_h;  // [U, 2U]
  const T* wc_h;  // [U, U]
  int64_t b, len;
  T* h;      // [U] state
  T* hn;     // [U] new state
  T* rh;     // [U] r * h
  T* gates;  // [3U] r, z, c of the step
  T* x;      // [E] input of the step

  DCTR_HOST_DEVICE void Bind(T* scratch) {
    const int64_t u = s->units;
    h = scratch;
    hn = h + u;
    rh = hn + u;
    gates = rh + u;
    x = gates + 3 * u;
  }

  // Zeros the padded outputs / gates and the state.
  DCTR_HOST_DEVICE void Start(int tid, int threads) {
    const int64_t u = s->units, g = 3 * u, time = s->time;
    const int64_t ldo = GruOutStride(a->out_stride, u);
    for (int64_t i = len * u + tid; i < time * u; i += threads) {
      a->outputs[(b * time + i / u) * ldo + i % u] = T(0);
    }
    for (int64_t j = tid; j < u; j += threads) h[j] = T(0);
    if (a->gates == nullptr) return;  // Inference: nothing saved.
    for (int64_t i = len * g + tid; i < time * g; i += threads) a->gates[b * time * g + i] = T(0);
  }

  DCTR_HOST_DEVICE int64_t Time(int64_t step) const { return s->reverse ? len - 1 - step : step; }

  DCTR_HOST_DEVICE void LoadInput(int64_t step, int tid, int threads) {
    const int64_t e = s->input;
    const T* src = a->x + (b * s->time + Time(step)) * e;
    for (int64_t i = tid; i < e; i += threads) x[i] = src[i];
  }

  DCTR_HOST_DEVICE void Gates(int tid, int threads) {
    const int64_t e = s->input, u = s->units;
    for (int64_t j = tid; j < 2 * u; j += threads) {
      T acc = a->bg[j];
      for (int64_t i = 0; i < e; ++i) acc += x[i] * a->wg[i * 2 * u + j];
      for (int64_t k = 0; k < u; ++k) acc += h[k] * wg_h[k * 2 * u + j];
      gates[j] = Sigmoid(acc);
    }
  }

  DCTR_HOST_DEVICE void Reset(int tid, int threads) {
    for (int64_t k = tid; k < s->units; k += threads) rh[k] = gates[k] * h[k];
  }

  DCTR_HOST_DEVICE void Candidate(int64_t step, int tid, int threads) {
    const int64_t e = s->input, u = s->units, t = Time(step);
    const T at = GruUsesAttention(s->cell) ? a->att[b * s->time + t] : T(0);
    T* out = a->outputs + (b * s->time + t) * GruOutStride(a->out_stride, u);
    T* saved = a->gates != nullptr ? a->gates + (b * s->time + t) * 3 * u : nullptr;
    for (int64_t j = tid; j < u; j += threads) {
      T acc = a->bc[j];
      for (int64_t i = 0; i < e; ++i) acc += x[i] * a->wc[i * u + j];
      for (int64_t k = 0; k < u; ++k) acc += rh[k] * wc_h[k * u + j];
      const T c = Tanh(acc);
      const T r = gates[j], z = gates[u + j];
      T next;
      if (s->cell == GruCell::kGru) {
        next = z * h[j] + (T(1) - z) * c;
      } else if (s->cell == GruCell::kAgru) {
        next = (T(1) - at) * h[j] + at * c;
      } else {
        const T zz = (T(1) - at) * z;
        next = zz * h[j] + (T(1) - zz) * c;
      }
      hn[j] = next;
      out[j] = next;
      if (saved == nullptr) continue;
      saved[j] = r;
      saved[u + j] = z;
      saved[2 * u + j] = c;
    }
  }

  DCTR_HOST_DEVICE void Commit(int tid, int threads) {
    for (int64_t j = tid; j < s->units; j += threads) h[j] = hn[j];
  }

  DCTR_HOST_DEVICE void Finish(int tid, int threads) {
    T* final_state = a->final_state + b * GruOutStride(a->out_stride, s->units);
    for (int64_t j = tid; j < s->units; j += threads) final_state[j] = h[j];
  }
};

// ---- backward -----------------------------------------------------------------

template <typename T, typename Index>
struct BackwardRow {
  const GruShape* s;
  const GruBackwardArgs<T, Index>* a;
  const T* wg_h;  // [U, 2U]
  const T* wc_h;  // [U, U]
  int64_t b, len;
  T* dh;     // [U] gradient of the state after the step
  T* hp;     // [U] state before the step
  T* rh;     // [U] r * hp
  T* dprev;  // [U] gradient of hp
  T* ds;     // [3U] pre-activation gradients (r, z, c)
  T* x;      // [E]
  T* part;   // [U] per-unit terms of the attention gradient

  DCTR_HOST_DEVICE void Bind(T* scratch) {
    const int64_t u = s->units;
    dh = scratch;
    hp = dh + u;
    rh = hp + u;
    dprev = rh + u;
    ds = dprev + u;
    x = ds + 3 * u;
    part = x + s->input;
  }

  DCTR_HOST_DEVICE int64_t Time(int64_t step) const { return s->reverse ? len - 1 - step : step; }

  // Zeros grad_x / grad_att in padding (unless accumulating) and loads
  // grad_final into dh.
  DCTR_HOST_DEVICE void Start(int tid, int threads) {
    const int64_t e = s->input, u = s->units, time = s->time;
    if (!a->accumulate_input_grads) {
      for (int64_t i = len * e + tid; i < time * e; i += threads) {
        a->grad_x[b * time * e + i] = T(0);
      }
      if (GruUsesAttention(s->cell)) {
        for (int64_t t = len + tid; t < time; t += threads) a->grad_att[b * time + t] = T(0);
      }
    }
    const T* grad_final =
        a->grad_final != nullptr ? a->grad_final + b * GruOutStride(a->out_stride, u) : nullptr;
    for (int64_t j = tid; j < u; j += threads) dh[j] = grad_final != nullptr ? grad_final[j] : T(0);
  }

  DCTR_HOST_DEVICE void Load(int64_t step, int tid, int threads) {
    const int64_t e = s->input, u = s->units, t = Time(step);
    const T* src = a->x + (b * s->time + t) * e;
    for (int64_t i = tid; i < e; i += threads) x[i] = src[i];
    // h_prev: the output of the step before (none at step 0: tp would be
    // outside the row).
    const int64_t tp = s->reverse ? t + 1 : t - 1;
    const T* prev =
        step > 0 ? a->outputs + (b * s->time + tp) * GruOutStride(a->out_stride, u) : nullptr;
    for (int64_t k = tid; k < u; k += threads) hp[k] = prev != nullptr ? prev[k] : T(0);
  }

  DCTR_HOST_DEVICE void Pointwise(int64_t step, int tid, int threads) {
    const int64_t u = s->units, t = Time(step);
    const T* saved = a->gates + (b * s->time + t) * 3 * u;
    const T* go = a->grad_outputs != nullptr
                      ? a->grad_outputs + (b * s->time + t) * GruOutStride(a->out_stride, u)
                      : nullptr;
    const T at = GruUsesAttention(s->cell) ? a->att[b * s->time + t] : T(0);
    for (int64_t j = tid; j < u; j += threads) {
      const T z = saved[u + j], c = saved[2 * u + j];
      const T d = go != nullptr ? dh[j] + go[j] : dh[j];
      T dc, dz, dp, da = T(0);
      if (s->cell == GruCell::kGru) {
        dc = d * (T(1) - z);
        dz = d * (hp[j] - c);
        dp = d * z;
      } else if (s->cell == GruCell::kAgru) {
        dc = d * at;
        dz = T(0);
        dp = d * (T(1) - at);
        da = d * (c - hp[j]);
      } else {
        const T zz = (T(1) - at) * z;
        const T dzz = d * (hp[j] - c);
        dc = d * (T(1) - zz);
        dp = d * zz;
        dz = dzz * (T(1) - at);
        da = -dzz * z;
      }
      ds[2 * u + j] = dc * (T(1) - c * c);
      ds[u + j] = dz * z * (T(1) - z);
      dprev[j] = dp;
      part[j] = da;
    }
  }

  // The attention gradient (one thread, units in order: deterministic) and
  // the reset gate: d(r * hp) = dc_pre Wc[E:]^T.
  DCTR_HOST_DEVICE void ResetGate(int64_t step, int tid, int threads) {
    const int64_t u = s->units;
    if (tid == 0 && GruUsesAttention(s->cell)) {
      T da = T(0);
      for (int64_t j = 0; j < u; ++j) da += part[j];
      T* grad_att = a->grad_att + b * s->time + Time(step);
      *grad_att = a->accumulate_input_grads ? *grad_att + da : da;
    }
    const T* saved = a->gates + (b * s->time + Time(step)) * 3 * u;
    for (int64_t k = tid; k < u; k += threads) {
      T drh = T(0);
      for (int64_t j = 0; j < u; ++j) drh += ds[2 * u + j] * wc_h[k * u + j];
      const T r = saved[k];
      ds[k] = drh * hp[k] * r * (T(1) - r);
      dprev[k] += drh * r;
      rh[k] = r * hp[k];
    }
  }

  // grad_x of the step, the weight gradients, and dh for the previous step.
  DCTR_HOST_DEVICE void Accumulate(int64_t step, int tid, int threads) {
    const int64_t e = s->input, u = s->units, t = Time(step);
    T* dx = a->grad_x + (b * s->time + t) * e;
    for (int64_t i = tid; i < e; i += threads) {
      T acc = T(0);
      for (int64_t j = 0; j < 2 * u; ++j) acc += ds[j] * a->wg[i * 2 * u + j];
      for (int64_t j = 0; j < u; ++j) acc += ds[2 * u + j] * a->wc[i * u + j];
      dx[i] = a->accumulate_input_grads ? dx[i] + acc : acc;
    }
    const int64_t rows = e + u;
    for (int64_t idx = tid; idx < rows * 3 * u; idx += threads) {
      const int64_t i = idx / (3 * u), j = idx % (3 * u);
      if (j < 2 * u) {
        const T in = i < e ? x[i] : hp[i - e];
        AtomicAdd(a->grad_wg + i * 2 * u + j, in * ds[j]);
      } else {
        const T in = i < e ? x[i] : rh[i - e];
        AtomicAdd(a->grad_wc + i * u + (j - 2 * u), in * ds[j]);
      }
    }
    for (int64_t j = tid; j < 3 * u; j += threads) {
      if (j < 2 * u) {
        AtomicAdd(a->grad_bg + j, ds[j]);
      } else {
        AtomicAdd(a->grad_bc + (j - 2 * u), ds[j]);
      }
    }
  }

  // dh of the previous step (after Accumulate, which still reads hp / rh).
  DCTR_HOST_DEVICE void NextState(int tid, int threads) {
    const int64_t u = s->units;
    for (int64_t k = tid; k < u; k += threads) {
      T acc = dprev[k];
      for (int64_t j = 0; j < 2 * u; ++j) acc += ds[j] * wg_h[k * 2 * u + j];
      dh[k] = acc;
    }
  }
};

}  // namespace rowwise
}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_DYNAMIC_GRU_ROWWISE_H_
