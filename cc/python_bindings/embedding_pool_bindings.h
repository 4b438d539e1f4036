// Registers `embedding_pool_forward` and `embedding_pool_backward` (the fused
// embedding lookup + sequence pooling kernels) on the pybind11 module
// deepctr_ops._kernels.
#ifndef DEEPCTR_OPS_CC_PYTHON_BINDINGS_EMBEDDING_POOL_BINDINGS_H_
#define DEEPCTR_OPS_CC_PYTHON_BINDINGS_EMBEDDING_POOL_BINDINGS_H_

#include <pybind11/pybind11.h>

namespace deepctr_ops {
namespace bindings {

void BindEmbeddingPool(pybind11::module_& m);

}  // namespace bindings
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_PYTHON_BINDINGS_EMBEDDING_POOL_BINDINGS_H_
