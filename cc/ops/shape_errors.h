// Shape-function errors that name the argument.
#ifndef DEEPCTR_OPS_CC_OPS_SHAPE_ERRORS_H_
#define DEEPCTR_OPS_CC_OPS_SHAPE_ERRORS_H_

#include <string>

#include "absl/status/status.h"

namespace deepctr_ops {

// Prefixes a failed c->Merge / WithRank / WithValue with what the argument
// must be ("values must be [batch, time, embedding]: ...").
inline absl::Status Named(absl::Status status, const std::string& what) {
  if (status.ok()) return status;
  return absl::InvalidArgumentError(what + ": " + std::string(status.message()));
}

}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_OPS_SHAPE_ERRORS_H_
