// Bitpacking and unpacking with NEON (bitpack_scalar.cc has the layout): a
// row's full words with vector compares, its last, partial word with the
// scalar row functions.
#include "internal.h"

#if TFQNN_NEON
#include <arm_neon.h>

#include <cstdint>

#include "movemask_neon.h"

namespace tfqnn {
namespace core {

void bitpack_float_neon(const float* in, int64_t rows, int channels, float threshold,
                        int32_t* out) {
  const int words = packed_words(channels);
  const int full = channels / 32;
  const float32x4_t t = vdupq_n_f32(threshold);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * channels;
    int32_t* o = out + r * words;
    for (int w = 0; w < full; ++w) {
      uint32x4_t mask[8];
#pragma GCC unroll 8
      for (int v = 0; v < 8; ++v) mask[v] = vcltq_f32(vld1q_f32(x + 32 * w + 4 * v), t);
      o[w] = static_cast<int32_t>(movemask32(mask));
    }
    pack_row_float(x, channels, threshold, full, o);
  }
}

void bitpack_int8_neon(const int8_t* in, int64_t rows, int channels, int32_t zero_point,
                       int32_t* out) {
  if (zero_point < -128 || zero_point > 127) {
    // Out of the int8 range: q < zero_point always or never holds.
    bitpack_int8_scalar(in, rows, channels, zero_point, out);
    return;
  }
  const int words = packed_words(channels);
  const int full = channels / 32;
  const int8x16_t zp = vdupq_n_s8(static_cast<int8_t>(zero_point));
  const uint8x16_t bit = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* q = in + r * channels;
    int32_t* o = out + r * words;
    for (int w = 0; w < full; ++w) {
      const uint8x16_t m0 = vandq_u8(vcltq_s8(vld1q_s8(q + 32 * w), zp), bit);
      const uint8x16_t m1 = vandq_u8(vcltq_s8(vld1q_s8(q + 32 * w + 16), zp), bit);
      // Pairwise adds of disjoint bits: 32 bytes -> 4 bytes, in order.
      uint8x16_t s = vpaddq_u8(m0, m1);
      s = vpaddq_u8(s, s);
      s = vpaddq_u8(s, s);
      o[w] = static_cast<int32_t>(vgetq_lane_u32(vreinterpretq_u32_u8(s), 0));
    }
    pack_row_int8(q, channels, zero_point, full, o);
  }
}

void unpack_float_neon(const int32_t* in, int64_t rows, int channels, float* out) {
  const int words = packed_words(channels);
  const int full = channels / 32;
  const uint32x4_t bit = vld1q_u32(kBit);
  const float32x4_t plus = vdupq_n_f32(1.0f), minus = vdupq_n_f32(-1.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* p = in + r * words;
    float* y = out + r * channels;
    for (int w = 0; w < full; ++w) {
      const uint32_t word = static_cast<uint32_t>(p[w]);
#pragma GCC unroll 8
      for (int v = 0; v < 8; ++v) {
        const uint32x4_t set = vtstq_u32(vdupq_n_u32(word >> (4 * v)), bit);
        vst1q_f32(y + 32 * w + 4 * v, vbslq_f32(set, minus, plus));
      }
    }
    unpack_row(p, channels, full * 32, y);
  }
}

}  // namespace core
}  // namespace tfqnn

#endif  // TFQNN_NEON
