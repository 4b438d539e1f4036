// CPU implementation of the fused DIN attention pooling. See attention_pool.h.
//
// The batch is cut into a fixed number of shards (independent of the thread
// count); each shard owns its scratch and, in the backward, its weight-gradient
// accumulators, which are summed in shard order at the end (deterministic, no
// atomics, no false sharing). Per batch row the valid keys form an [n, E]
// block (in place, or copied and padded), and every layer is a small
// register-blocked matrix product over those n steps only
// (attention_pool_row.h, attention_pool_simd.h). The shard loops exist three
// times: for the baseline ISA (AVX), AVX2 with FMA and AVX-512 with FMA, the
// best the CPU has chosen at run time.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "cc/kernels/attention_pool.h"
#include "cc/kernels/attention_pool_packing.h"
#include "cc/kernels/attention_pool_row.h"
#include "cc/kernels/attention_pool_simd.h"

namespace deepctr_ops {
namespace kernels {
namespace {

// Fixed (results do not depend on the thread count); each shard costs a set of
// weight-gradient accumulators, summed serially at the end.
constexpr int64_t kShards = 16;

// The rows of shards [begin, end); every per-row helper is inlined here, so
// each instruction set's copy below compiles all of it for that set.
template <typename T, typename Index, Isa kIsa>
DCTR_ALWAYS_INLINE void ForwardShards(const AttentionPoolSpec& spec, const PoolRows<Index>& rows,
                                      const PackedWeights<T>& pw, const T* query, const T* keys,
                                      T* output, T* activations, int64_t shards, int64_t begin,
                                      int64_t end) {
  const int64_t width = AttentionPoolOutputWidth(spec, rows);
  const int64_t row_slots = rows.max_time * pw.slot;
  for (int64_t s = begin; s < end; ++s) {
    RowWorker<T, Index, kIsa> worker(spec, rows, pw, query, keys);
    const int64_t last = rows.batch * (s + 1) / shards - 1;
    for (int64_t b = rows.batch * s / shards; b <= last; ++b) {
      if (b < last) worker.Prefetch(b + 1, nullptr);  // Its keys.
      worker.Forward(b, output + b * width,
                     activations != nullptr ? activations + b * row_slots : nullptr);
    }
  }
}

template <typename T, typename Index, Isa kIsa>
DCTR_ALWAYS_INLINE void BackwardShards(const AttentionPoolSpec& spec,
                                       const PoolRows<Index>& rows, const PackedWeights<T>& pw,
                                       const T* query, const T* keys, const T* activations,
                                       const T* grad_output, T* grad_query, T* grad_keys,
                                       std::vector<GradAccumulators<T>>* accs, int64_t shards,
                                       int64_t begin, int64_t end) {
  const int64_t width = AttentionPoolOutputWidth(spec, rows);
  const int64_t row_slots = rows.max_time * pw.slot;
  for (int64_t s = begin; s < end; ++s) {
    RowWorker<T, Index, kIsa> worker(spec, rows, pw, query, keys);
    const int64_t last = rows.batch * (s + 1) / shards - 1;
    for (int64_t b = rows.batch * s / shards; b <= last; ++b) {
      if (b < last) {
        worker.Prefetch(b + 1,
                        activations != nullptr ? activations + (b + 1) * row_slots : nullptr);
      }
      worker.Backward(b, grad_output + b * width, grad_query + b * spec.depth,
                      grad_keys + b * rows.max_time * spec.depth, &(*accs)[s],
                      activations != nullptr ? activations + b * row_slots : nullptr);
    }
  }
}

#define DEEPCTR_OPS_ATTENTION_FORWARD_ARGS                                                  \
  const AttentionPoolSpec &spec, const PoolRows<Index> &rows, const PackedWeights<T> &pw,   \
      const T *query, const T *keys, T *output, T *activations, int64_t shards, int64_t begin, \
      int64_t end
#define DEEPCTR_OPS_ATTENTION_BACKWARD_ARGS                                                 \
  const AttentionPoolSpec &spec, const PoolRows<Index> &rows, const PackedWeights<T> &pw,   \
      const T *query, const T *keys, const T *activations, const T *grad_output,            \
      T *grad_query, T *grad_keys, std::vector<GradAccumulators<T>> *accs, int64_t shards,  \
      int64_t begin, int64_t end
#define DEEPCTR_OPS_ATTENTION_FORWARD_CALL(ISA)                                             \
  ForwardShards<T, Index, ISA>(spec, rows, pw, query, keys, output, activations, shards,    \
                               begin, end)
#define DEEPCTR_OPS_ATTENTION_BACKWARD_CALL(ISA)                                            \
  BackwardShards<T, Index, ISA>(spec, rows, pw, query, keys, activations, grad_output,      \
                                grad_query, grad_keys, accs, shards, begin, end)

template <typename T, typename Index>
void ForwardShardsBaseline(DEEPCTR_OPS_ATTENTION_FORWARD_ARGS) {
  DEEPCTR_OPS_ATTENTION_FORWARD_CALL(Isa::kBaseline);
}

template <typename T, typename Index>
void BackwardShardsBaseline(DEEPCTR_OPS_ATTENTION_BACKWARD_ARGS) {
  DEEPCTR_OPS_ATTENTION_BACKWARD_CALL(Isa::kBaseline);
}

#if DEEPCTR_OPS_ATTENTION_X86
template <typename T, typename Index>
DEEPCTR_OPS_ATTENTION_TARGET_AVX2 void ForwardShardsAvx2(DEEPCTR_OPS_ATTENTION_FORWARD_ARGS) {
  DEEPCTR_OPS_ATTENTION_FORWARD_CALL(Isa::kAvx2Fma);
}

template <typename T, typename Index>
DEEPCTR_OPS_ATTENTION_TARGET_AVX2 void BackwardShardsAvx2(DEEPCTR_OPS_ATTENTION_BACKWARD_ARGS) {
  DEEPCTR_OPS_ATTENTION_BACKWARD_CALL(Isa::kAvx2Fma);
}

template <typename T, typename Index>
DEEPCTR_OPS_ATTENTION_TARGET_AVX512 void ForwardShardsAvx512(
    DEEPCTR_OPS_ATTENTION_FORWARD_ARGS) {
  DEEPCTR_OPS_ATTENTION_FORWARD_CALL(Isa::kAvx512);
}

template <typename T, typename Index>
DEEPCTR_OPS_ATTENTION_TARGET_AVX512 void BackwardShardsAvx512(
    DEEPCTR_OPS_ATTENTION_BACKWARD_ARGS) {
  DEEPCTR_OPS_ATTENTION_BACKWARD_CALL(Isa::kAvx512);
}
#endif
#undef DEEPCTR_OPS_ATTENTION_FORWARD_ARGS
#undef DEEPCTR_OPS_ATTENTION_BACKWARD_ARGS
#undef DEEPCTR_OPS_ATTENTION_FORWARD_CALL
#undef DEEPCTR_OPS_ATTENTION_BACKWARD_CALL

// The AVX-512 build uses 256-bit AVX-512 instructions too: it needs avx512vl.
CpuIsaChoice isa_choice(/*need_avx512vl=*/true);

template <typename Index>
int64_t RowCost(const AttentionPoolSpec& spec, const PoolRows<Index>& rows) {
  int64_t per_step = spec.depth * 4;
  for (int i = 0; i < spec.num_layers(); ++i) per_step += spec.layer_in(i) * spec.layer_out(i);
  return std::max<int64_t>(1, rows.max_time * per_step / 2);
}

}  // namespace

Status ParseAttentionActivation(const std::string& name, AttentionActivation* activation) {
  if (name == "sigmoid") {
    *activation = AttentionActivation::kSigmoid;
  } else if (name == "relu") {
    *activation = AttentionActivation::kRelu;
  } else if (name == "tanh") {
    *activation = AttentionActivation::kTanh;
  } else if (name == "linear") {
    *activation = AttentionActivation::kLinear;
  } else {
    return Status::InvalidArgument(
        "activation must be one of 'sigmoid', 'relu', 'tanh', 'linear', got '" + name + "'");
  }
  return Status::Ok();
}

bool SetAttentionPoolCpuIsa(const std::string& name) { return isa_choice.Force(name); }

template <typename T, typename Index>
Status AttentionPoolForwardCpu(const AttentionPoolSpec& spec, const PoolRows<Index>& rows,
                               const T* query, const T* keys, const AttentionWeights<T>& weights,
                               T* output, T* activations, const ParallelFor& parallel_for) {
  Status status = ValidateAttentionPool(spec, rows);
  if (!status.ok() || rows.batch == 0) return status;
  const int64_t width = AttentionPoolOutputWidth(spec, rows);
  if (rows.max_time == 0) {  // No key: the scores are [B, 0], the pooled sum 0.
    for (int64_t i = 0; i < rows.batch * width; ++i) output[i] = T(0);
    return Status::Ok();
  }
  const PackedWeights<T> pw = Pack(spec, weights);
  const int64_t shards = std::min(rows.batch, kShards);
  const int64_t rows_per_shard = (rows.batch + shards - 1) / shards;
  const Isa isa = isa_choice.Best();
  parallel_for(shards, rows_per_shard * RowCost(spec, rows), [&](int64_t begin, int64_t end) {
#if DEEPCTR_OPS_ATTENTION_X86
    if (isa == Isa::kAvx512) {
      ForwardShardsAvx512(spec, rows, pw, query, keys, output, activations, shards, begin, end);
      return;
    }
    if (isa == Isa::kAvx2Fma) {
      ForwardShardsAvx2(spec, rows, pw, query, keys, output, activations, shards, begin, end);
      return;
    }
#endif
    ForwardShardsBaseline(spec, rows, pw, query, keys, output, activations, shards, begin,
                          end);
  });
  return Status::Ok();
}

template <typename T, typename Index>
Status AttentionPoolBackwardCpu(const AttentionPoolSpec& spec, const PoolRows<Index>& rows,
                                const T* query, const T* keys, const AttentionWeights<T>& weights,
                                const T* activations, const T* grad_output, T* grad_query,
                                T* grad_keys, const AttentionWeightGrads<T>& weight_grads,
                                const ParallelFor& parallel_for) {
  Status status = ValidateAttentionPool(spec, rows);
  if (!status.ok()) return status;
  const PackedWeights<T> pw = Pack(spec, weights);
  const int64_t shards = std::max<int64_t>(1, std::min(rows.batch, kShards));
  std::vector<GradAccumulators<T>> accs(shards, GradAccumulators<T>(pw));
  const int64_t rows_per_shard = (rows.batch + shards - 1) / shards;
  if (rows.batch > 0) {
    const Isa isa = isa_choice.Best();
    parallel_for(shards, rows_per_shard * 3 * RowCost(spec, rows),
                 [&](int64_t begin, int64_t end) {
#if DEEPCTR_OPS_ATTENTION_X86
      if (isa == Isa::kAvx512) {
        BackwardShardsAvx512(spec, rows, pw, query, keys, activations, grad_output, grad_query,
                             grad_keys, &accs, shards, begin, end);
        return;
      }
      if (isa == Isa::kAvx2Fma) {
        BackwardShardsAvx2(spec, rows, pw, query, keys, activations, grad_output, grad_query,
                           grad_keys, &accs, shards, begin, end);
        return;
      }
#endif
      BackwardShardsBaseline(spec, rows, pw, query, keys, activations, grad_output, grad_query,
                             grad_keys, &accs, shards, begin, end);
    });
  }
  GradAccumulators<T>& total = accs[0];
  for (int64_t s = 1; s < shards; ++s) {
    AddInto(accs[s].sum_m, &total.sum_m);
    AddInto(accs[s].sum_qm, &total.sum_qm);
    AddInto(accs[s].sum_qc, &total.sum_qc);
    AddInto(accs[s].sum_c, &total.sum_c);
    for (int i = 1; i < pw.hidden; ++i) {
      AddInto(accs[s].dw[i], &total.dw[i]);
      AddInto(accs[s].db[i], &total.db[i]);
    }
    AddInto(accs[s].dwf, &total.dwf);
    total.dbf += accs[s].dbf;
  }
  WriteWeightGrads(pw, total, weight_grads);
  return Status::Ok();
}

#define DEEPCTR_OPS_INSTANTIATE_ATTENTION_POOL_CPU(T, Index)                              \
  template Status AttentionPoolForwardCpu<T, Index>(                                       \
      const AttentionPoolSpec&, const PoolRows<Index>&, const T*, const T*,                \
      const AttentionWeights<T>&, T*, T*, const ParallelFor&);                             \
  template Status AttentionPoolBackwardCpu<T, Index>(                                      \
      const AttentionPoolSpec&, const PoolRows<Index>&, const T*, const T*,                \
      const AttentionWeights<T>&, const T*, const T*, T*, T*,                              \
      const AttentionWeightGrads<T>&,                                                      \
      const ParallelFor&);
DEEPCTR_OPS_INSTANTIATE_ATTENTION_POOL_CPU(float, int32_t)
DEEPCTR_OPS_INSTANTIATE_ATTENTION_POOL_CPU(float, int64_t)
DEEPCTR_OPS_INSTANTIATE_ATTENTION_POOL_CPU(double, int32_t)
DEEPCTR_OPS_INSTANTIATE_ATTENTION_POOL_CPU(double, int64_t)
#undef DEEPCTR_OPS_INSTANTIATE_ATTENTION_POOL_CPU

}  // namespace kernels
}  // namespace deepctr_ops
