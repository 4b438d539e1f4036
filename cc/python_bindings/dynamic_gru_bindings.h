// The dynamic GRU's entries in the pybind11 kernel module.
#ifndef DEEPCTR_OPS_CC_PYTHON_BINDINGS_DYNAMIC_GRU_BINDINGS_H_
#define DEEPCTR_OPS_CC_PYTHON_BINDINGS_DYNAMIC_GRU_BINDINGS_H_

#include <pybind11/pybind11.h>

namespace deepctr_ops {
namespace bindings {

// Adds `dynamic_gru` (forward) and `dynamic_gru_grad` (backward) to `m`.
void BindDynamicGru(pybind11::module_& m);

}  // namespace bindings
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_PYTHON_BINDINGS_DYNAMIC_GRU_BINDINGS_H_
