// Ragged rows as the GPU kernels read them: the pooling and embedding pooling
// ops pool over LaunchMonotoneRowSplits' splits (sequence_pool.h), so that
// splits the GPU cannot validate without a sync still describe disjoint rows.
#ifndef DEEPCTR_OPS_CC_OPS_GPU_ROWS_H_
#define DEEPCTR_OPS_CC_OPS_GPU_ROWS_H_

#include <string>

#include "absl/status/status.h"
#include "cc/kernels/sequence_pool.h"
#include "cc/kernels/status.h"
#include "cc/ops/gpu_stream.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/framework/types.h"

namespace deepctr_ops {

// gpu_rows = rows, with ragged splits replaced by monotone ones that live in
// `scratch` for the duration of the op.
template <typename Index>
kernels::Status GpuRows(tensorflow::OpKernelContext* ctx, const kernels::PoolRows<Index>& rows,
                        tensorflow::Tensor* scratch, kernels::PoolRows<Index>* gpu_rows) {
  *gpu_rows = rows;
  if (rows.layout != kernels::RowLayout::kRagged) return kernels::Status::Ok();
  const absl::Status allocated =
      ctx->allocate_temp(tensorflow::DataTypeToEnum<Index>::value,
                         tensorflow::TensorShape({rows.batch + 1}), scratch);
  if (!allocated.ok()) return kernels::Status::Internal(std::string(allocated.message()));
  Index* monotone = scratch->flat<Index>().data();
  gpu_rows->row_splits = monotone;
  return kernels::LaunchMonotoneRowSplits(rows.row_splits, rows.batch, rows.num_steps, monotone,
                                          GpuStream(ctx));
}

}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_OPS_GPU_ROWS_H_
