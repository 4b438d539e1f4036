// Marks helpers that compile for both the host and, under nvcc, the device.
#ifndef DEEPCTR_OPS_CC_KERNELS_HOST_DEVICE_H_
#define DEEPCTR_OPS_CC_KERNELS_HOST_DEVICE_H_

#if defined(__CUDACC__)
#define DCTR_HOST_DEVICE __host__ __device__
#else
#define DCTR_HOST_DEVICE
#endif

#endif  // DEEPCTR_OPS_CC_KERNELS_HOST_DEVICE_H_
