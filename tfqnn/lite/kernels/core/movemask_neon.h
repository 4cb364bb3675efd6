// NEON has no movemask: lane masks become the bits of a word through a table
// of single bits. Shared by bitpack_neon.cc and output_transform_neon.cc.
#ifndef TFQNN_LITE_KERNELS_CORE_MOVEMASK_NEON_H_
#define TFQNN_LITE_KERNELS_CORE_MOVEMASK_NEON_H_

#include "../macros.h"

#if TFQNN_NEON
#include <arm_neon.h>

#include <cstdint>

namespace tfqnn {
namespace core {

// 32 lane masks (8 vectors of 4) -> one word: lane i of vector v is bit
// 4 v + i.
alignas(16) constexpr uint32_t kBit[32] = {
    1u << 0,  1u << 1,  1u << 2,  1u << 3,  1u << 4,  1u << 5,  1u << 6,  1u << 7,
    1u << 8,  1u << 9,  1u << 10, 1u << 11, 1u << 12, 1u << 13, 1u << 14, 1u << 15,
    1u << 16, 1u << 17, 1u << 18, 1u << 19, 1u << 20, 1u << 21, 1u << 22, 1u << 23,
    1u << 24, 1u << 25, 1u << 26, 1u << 27, 1u << 28, 1u << 29, 1u << 30, 1u << 31};

inline uint32_t movemask32(const uint32x4_t (&mask)[8]) {
  uint32x4_t acc = vandq_u32(mask[0], vld1q_u32(kBit));
#pragma GCC unroll 8
  for (int v = 1; v < 8; ++v) {
    acc = vorrq_u32(acc, vandq_u32(mask[v], vld1q_u32(kBit + 4 * v)));
  }
  return vaddvq_u32(acc);  // disjoint bits: the sum is the OR
}

}  // namespace core
}  // namespace tfqnn

#endif  // TFQNN_NEON

#endif  // TFQNN_LITE_KERNELS_CORE_MOVEMASK_NEON_H_
