// A minimal status for TF-free kernels. The TF adapter turns it into an
// absl::Status; the pybind11 module turns it into a Python ValueError.
#ifndef DEEPCTR_OPS_CC_KERNELS_STATUS_H_
#define DEEPCTR_OPS_CC_KERNELS_STATUS_H_

#include <string>
#include <utility>

namespace deepctr_ops {
namespace kernels {

class Status {
 public:
  enum class Code { kOk, kInvalidArgument, kInternal };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string message) {
    return Status(Code::kInvalidArgument, std::move(message));
  }
  static Status Internal(std::string message) {
    return Status(Code::kInternal, std::move(message));
  }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Status(Code code, std::string message)
      : code_(code), message_(std::move(message)) {}

  Code code_ = Code::kOk;
  std::string message_;
};

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_STATUS_H_
