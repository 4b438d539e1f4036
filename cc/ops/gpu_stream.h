// The raw CUDA stream of a GPU op, for the TF-free launchers.
#ifndef DEEPCTR_OPS_CC_OPS_GPU_STREAM_H_
#define DEEPCTR_OPS_CC_OPS_GPU_STREAM_H_

#include "tensorflow/core/framework/op_kernel.h"
#include "xla/stream_executor/stream.h"

namespace deepctr_ops {

inline void* GpuStream(tensorflow::OpKernelContext* ctx) {
  return ctx->op_device_context()->stream()->platform_specific_handle().stream;
}

}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_OPS_GPU_STREAM_H_
