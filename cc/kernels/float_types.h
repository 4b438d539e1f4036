// 16-bit float storage types shared by the CPU and CUDA kernels.
//
// The kernels are TF-free, so they cannot name Eigen::half or
// tensorflow::bfloat16. Both of those are a bare uint16_t, so the TF adapter
// reinterprets their buffers as these structs. Arithmetic always happens in the
// accumulation type (float); conversions round to nearest, ties to even, like
// tf.cast.
#ifndef DEEPCTR_OPS_CC_KERNELS_FLOAT_TYPES_H_
#define DEEPCTR_OPS_CC_KERNELS_FLOAT_TYPES_H_

#include <cstdint>
#include <cstring>

#include "cc/kernels/host_device.h"

namespace deepctr_ops {
namespace kernels {

struct Half {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};
static_assert(sizeof(Half) == 2, "Half must be 2 bytes");
static_assert(sizeof(BFloat16) == 2, "BFloat16 must be 2 bytes");

DCTR_HOST_DEVICE inline uint32_t FloatBits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
#endif
}

DCTR_HOST_DEVICE inline float BitsToFloat(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
#endif
}

// Rounds away the `shift` low bits of `value`, to nearest, ties to even.
DCTR_HOST_DEVICE inline uint32_t RoundShiftRightEven(uint32_t value,
                                                     uint32_t shift) {
  const uint32_t kept = value >> shift;
  const uint32_t rest = value & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  return kept + ((rest > half || (rest == half && (kept & 1u))) ? 1u : 0u);
}

DCTR_HOST_DEVICE inline uint16_t FloatToHalfBits(float f) {
  const uint32_t x = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return sign | 0x7e00u;   // NaN stays NaN.
  if (ax >= 0x47800000u) return sign | 0x7c00u;  // >= 2^16: infinity.
  if (ax >= 0x38800000u) {                       // Normal half.
    const uint32_t exponent = (ax >> 23) - 127u + 15u;
    // A carry out of the mantissa bumps the exponent, up to infinity.
    const uint32_t h = (exponent << 10) + RoundShiftRightEven(ax & 0x7fffffu, 13);
    return static_cast<uint16_t>(sign | h);
  }
  if (ax < 0x33000000u) return sign;  // Below 2^-25: rounds to zero.
  // Subnormal half: value = mantissa * 2^(e - 23), in units of 2^-24.
  const uint32_t mantissa = (ax & 0x7fffffu) | 0x800000u;
  const int32_t e = static_cast<int32_t>(ax >> 23) - 127;
  const uint32_t shift = static_cast<uint32_t>(-(e + 1));
  return static_cast<uint16_t>(sign | RoundShiftRightEven(mantissa, shift));
}

DCTR_HOST_DEVICE inline float HalfBitsToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1fu) return BitsToFloat(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0) {
    return BitsToFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  }
  if (mantissa == 0) return BitsToFloat(sign);
  int32_t e = -14;
  while ((mantissa & 0x400u) == 0) {
    mantissa <<= 1;
    --e;
  }
  return BitsToFloat(sign | (static_cast<uint32_t>(e + 127) << 23) |
                     ((mantissa & 0x3ffu) << 13));
}

DCTR_HOST_DEVICE inline uint16_t FloatToBFloat16Bits(float f) {
  const uint32_t x = FloatBits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) {
    return static_cast<uint16_t>((x >> 16) | 0x40u);  // Quiet NaN.
  }
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

DCTR_HOST_DEVICE inline float BFloat16BitsToFloat(uint16_t b) {
  return BitsToFloat(static_cast<uint32_t>(b) << 16);
}

// AccumulatorOf<T>::Type is what sums and maxima of T are computed in.
template <typename T>
struct AccumulatorOf {
  using Type = T;
};
template <>
struct AccumulatorOf<Half> {
  using Type = float;
};
template <>
struct AccumulatorOf<BFloat16> {
  using Type = float;
};

template <typename T>
DCTR_HOST_DEVICE inline typename AccumulatorOf<T>::Type ToAccumulator(T v) {
  return v;
}
template <>
DCTR_HOST_DEVICE inline float ToAccumulator<Half>(Half v) {
  return HalfBitsToFloat(v.bits);
}
template <>
DCTR_HOST_DEVICE inline float ToAccumulator<BFloat16>(BFloat16 v) {
  return BFloat16BitsToFloat(v.bits);
}

template <typename T>
DCTR_HOST_DEVICE inline T FromAccumulator(typename AccumulatorOf<T>::Type v) {
  return v;
}
template <>
DCTR_HOST_DEVICE inline Half FromAccumulator<Half>(float v) {
  return Half{FloatToHalfBits(v)};
}
template <>
DCTR_HOST_DEVICE inline BFloat16 FromAccumulator<BFloat16>(float v) {
  return BFloat16{FloatToBFloat16Bits(v)};
}

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_FLOAT_TYPES_H_
