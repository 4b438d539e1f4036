// Launch helpers shared by the CUDA launchers (.cu files only).
#ifndef DEEPCTR_OPS_CC_KERNELS_CUDA_LAUNCH_H_
#define DEEPCTR_OPS_CC_KERNELS_CUDA_LAUNCH_H_

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cc/kernels/status.h"

#ifndef DEEPCTR_OPS_CUDA_BUILT_ARCHS
#define DEEPCTR_OPS_CUDA_BUILT_ARCHS "unknown architectures"
#endif

namespace deepctr_ops {
namespace kernels {

// Blocks for `work` items of `per_block` each, capped: the kernels loop over
// the grid, so more blocks than this only add scheduling.
inline int BlocksFor(int64_t work, int64_t per_block) {
  const int64_t blocks = (work + per_block - 1) / per_block;
  return static_cast<int>(blocks < 65535 * 32 ? blocks : 65535 * 32);
}

inline std::string CudaVersionText(int version) {
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

// What the kernels were built for and what this machine has, and what to do,
// for the errors that mean "these kernels cannot run here" rather than a bug.
inline std::string CudaMismatchAdvice(cudaError_t err) {
  const bool no_image = err == cudaErrorNoKernelImageForDevice ||
                        err == cudaErrorInvalidKernelImage ||
                        err == cudaErrorUnsupportedPtxVersion;
  const bool driver = err == cudaErrorInsufficientDriver || err == cudaErrorNoDevice ||
                      err == cudaErrorSystemDriverMismatch ||
                      err == cudaErrorCompatNotSupportedOnDevice;
  if (!no_image && !driver) return "";
  int driver_version = 0;
  cudaDriverGetVersion(&driver_version);
  int device = 0, major = 0, minor = 0;
  if (cudaGetDevice(&device) == cudaSuccess) {
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
  }
  cudaGetLastError();  // The queries above must not leave an error behind.
  std::string text = ". deepctr-ops' CUDA kernels were built with CUDA " +
                     CudaVersionText(CUDART_VERSION) + " for " DEEPCTR_OPS_CUDA_BUILT_ARCHS;
  text += "; this GPU is sm_" + (major > 0 ? std::to_string(major * 10 + minor) : "?") +
          " and its driver supports CUDA " +
          (driver_version > 0 ? CudaVersionText(driver_version) : "none (no driver found)") +
          ". ";
  if (no_image) {
    text += "Rebuild deepctr-ops for this GPU: DEEPCTR_OPS_CUDA_ARCHITECTURES=" +
            (major > 0 ? std::to_string(major * 10 + minor) : std::string("native")) +
            " pip install --no-binary deepctr-ops deepctr-ops (or from the source tree), "
            "or use a newer driver that can compile the PTX.";
  } else {
    text += "Install an NVIDIA driver that supports CUDA " + CudaVersionText(CUDART_VERSION) +
            " (CUDA 13 needs driver 580 or newer), or rebuild deepctr-ops with the CUDA "
            "toolkit TensorFlow was built with (CMAKE_ARGS=-DCMAKE_CUDA_COMPILER=.../nvcc).";
  }
  return text;
}

// The status of the last launch (and clears CUDA's sticky last error).
inline Status CheckLaunch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) return Status::Ok();
  return Status::Internal(std::string(what) + " launch failed: " + cudaGetErrorName(err) +
                          " (" + cudaGetErrorString(err) + ")" + CudaMismatchAdvice(err));
}

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_CUDA_LAUNCH_H_
