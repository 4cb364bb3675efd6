// NEON kernels (aarch64, where NEON is part of the base ISA): the binary
// GEMM microkernel, the output transform, bitpacking and unpacking.
//
// GEMM: each byte of x XOR w is counted with VCNT (vcntq_u8), and the byte
// counts of up to kFlush = 31 words are summed in 8-bit lanes (31 * 8 < 256)
// before two pairwise widening adds (UADDLP, UADALP) turn them into the
// 32-bit counts of the output lanes. A tile is kMr rows x 16 columns (half a
// panel): 4 x kMr byte accumulators, 4 panel registers and temporaries fit
// in the 32 vector registers; beyond kFlush words the 32-bit totals live in
// memory, touched once per kFlush words.
//
// The output transform performs the IEEE float32 operations of the scalar
// code in the same order (multiply, then add: no FMLA; the library is built
// with -ffp-contract=off, without which GCC would contract vmulq_f32 +
// vaddq_f32 into FMLA), and its clamps are compare-and-select, as the scalar
// `lo > y ? lo : y`, rather than FMAX/FMIN, which order -0 below +0.
#include <cstdint>
#include <cstring>

#include "core.h"
#include "gemm.h"
#include "internal.h"

#if TFQNN_CORE_NEON
#include <arm_neon.h>

namespace tfqnn {
namespace core {
namespace {

constexpr int kMr = 4;
constexpr int kFlush = 31;  // words summed in 8-bit lanes before widening

// Byte counts of words [k0, k1) (k1 - k0 <= kFlush) of MR rows x 16 columns.
template <int MR>
__attribute__((always_inline)) inline void count_bytes(const uint32_t* const (&row)[MR],
                                                       const uint32_t* w, int k0, int k1,
                                                       uint8x16_t (&acc)[MR][4]) {
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) {
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) acc[m][v] = vdupq_n_u8(0);
  }
  for (int k = k0; k < k1; ++k) {
    const uint32_t* wk = w + k * kPanel;
    uint8x16_t wv[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) wv[v] = vreinterpretq_u8_u32(vld1q_u32(wk + 4 * v));
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m) {
      const uint8x16_t x = vreinterpretq_u8_u32(vld1q_dup_u32(row[m] + k));
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) {
        acc[m][v] = vaddq_u8(acc[m][v], vcntq_u8(veorq_u8(x, wv[v])));
      }
    }
  }
}

// The 16 counts of one row, or its first ncols.
__attribute__((always_inline)) inline void store_row(const uint32x4_t (&t)[4], int ncols,
                                                     int32_t* out) {
  if (ncols == 16) {
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) vst1q_s32(out + 4 * v, vreinterpretq_s32_u32(t[v]));
  } else {
    alignas(16) uint32_t buf[16];
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) vst1q_u32(buf + 4 * v, t[v]);
    std::memcpy(out, buf, sizeof(uint32_t) * ncols);
  }
}

// MR (<= kMr) rows x 16 columns starting at `half` (a panel + 0 or 16).
template <int MR>
__attribute__((always_inline)) inline void tile(const int32_t* a, int64_t lda, const int32_t* half,
                                                int kw, int32_t* counts, int64_t ldc, int ncols) {
  const uint32_t* row[MR];
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) row[m] = reinterpret_cast<const uint32_t*>(a + m * lda);
  const uint32_t* w = reinterpret_cast<const uint32_t*>(half);
  uint8x16_t acc[MR][4];
  if (kw <= kFlush) {  // one chunk: widened in registers, stored once
    count_bytes<MR>(row, w, 0, kw, acc);
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m) {
      uint32x4_t t[4];
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) t[v] = vpaddlq_u16(vpaddlq_u8(acc[m][v]));
      store_row(t, ncols, counts + m * ldc);
    }
    return;
  }
  // Bytes -> 16-bit pairs -> 32-bit lanes after every chunk, into totals
  // kept in memory (with the byte accumulators they would not fit in
  // registers).
  alignas(16) uint32_t total[MR][16];
  count_bytes<MR>(row, w, 0, kFlush, acc);
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) {
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) vst1q_u32(total[m] + 4 * v, vpaddlq_u16(vpaddlq_u8(acc[m][v])));
  }
  for (int k0 = kFlush; k0 < kw; k0 += kFlush) {
    count_bytes<MR>(row, w, k0, kw - k0 < kFlush ? kw : k0 + kFlush, acc);
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m) {
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) {
        uint32_t* t = total[m] + 4 * v;
        vst1q_u32(t, vpadalq_u16(vld1q_u32(t), vpaddlq_u8(acc[m][v])));
      }
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) {
    uint32x4_t t[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) t[v] = vld1q_u32(total[m] + 4 * v);
    store_row(t, ncols, counts + m * ldc);
  }
}

void half_panel(const int32_t* a, int64_t lda, int rows, const int32_t* half, int kw,
                int32_t* counts, int64_t ldc, int ncols) {
  int m = 0;
  for (; m + kMr <= rows; m += kMr) {
    tile<kMr>(a + m * lda, lda, half, kw, counts + m * ldc, ldc, ncols);
  }
  const int64_t ra = m * lda, rc = m * ldc;
  switch (rows - m) {
    case 3: tile<3>(a + ra, lda, half, kw, counts + rc, ldc, ncols); break;
    case 2: tile<2>(a + ra, lda, half, kw, counts + rc, ldc, ncols); break;
    case 1: tile<1>(a + ra, lda, half, kw, counts + rc, ldc, ncols); break;
    default: break;
  }
}

// ---- output transform ----------------------------------------------------------

struct NeonConsts {
  float32x4_t lo, hi, scale, rmin, rmax;
  int32x4_t zp;
};

// Four columns of one row: y = float(k - 2 cnt) * m + b, clamped.
inline float32x4_t affine4(const int32_t* cnt, const float* mult, const float* bias, int32x4_t k,
                           const NeonConsts& c) {
  const int32x4_t n = vld1q_s32(cnt);
  const int32x4_t dot = vsubq_s32(k, vaddq_s32(n, n));
  float32x4_t y = vmulq_f32(vcvtq_f32_s32(dot), vld1q_f32(mult));
  y = vaddq_f32(y, vld1q_f32(bias));
  y = vbslq_f32(vcgtq_f32(c.lo, y), c.lo, y);     // lo > y ? lo : y
  return vbslq_f32(vcltq_f32(c.hi, y), c.hi, y);  // hi < y ? hi : y
}

// clamp(round_half_away(y / scale) + zp, -128, 127) of 4 values, as int32.
inline int32x4_t quantize4(float32x4_t y, const NeonConsts& c) {
  float32x4_t r = vrndaq_f32(vdivq_f32(y, c.scale));  // FRINTA: half away
  r = vbslq_f32(vcgeq_f32(r, c.rmin), r, c.rmin);     // below -512 (or NaN): -512
  r = vbslq_f32(vcgtq_f32(r, c.rmax), c.rmax, r);     // above 512: 512
  return vaddq_s32(vcvtq_s32_f32(r), c.zp);           // |.| <= 640: the narrowing saturates
}

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

template <OutputType kType>
void neon_rows(const int32_t* counts, int64_t ld_counts, int rows, int col0, int ncols, int k,
               const int32_t* row_k, const OutputTransform& t, const NeonConsts& c, char* out,
               int64_t row_bytes) {
  const float* mult = t.multiplier + col0;
  const float* bias = t.bias + col0;
  for (int r = 0; r < rows; ++r) {
    const int kr = row_k ? row_k[r] : k;
    const int32x4_t k4 = vdupq_n_s32(kr);
    const int32_t* cnt = counts + r * ld_counts;
    char* out_row = out + r * row_bytes;
    int j = 0;
    if (kType == OutputType::kFloat) {
      float* o = reinterpret_cast<float*>(out_row) + col0;
      for (; j + 4 <= ncols; j += 4) {
        vst1q_f32(o + j, affine4(cnt + j, mult + j, bias + j, k4, c));
      }
      for (; j < ncols; ++j) {
        o[j] = affine_clamp(kr - 2 * cnt[j], mult[j], bias[j], t.clamp_min, t.clamp_max);
      }
    } else if (kType == OutputType::kInt8) {
      int8_t* o = reinterpret_cast<int8_t*>(out_row) + col0;
      for (; j + 8 <= ncols; j += 8) {
        const int32x4_t q0 = quantize4(affine4(cnt + j, mult + j, bias + j, k4, c), c);
        const int32x4_t q1 = quantize4(affine4(cnt + j + 4, mult + j + 4, bias + j + 4, k4, c), c);
        const int16x8_t q16 = vcombine_s16(vqmovn_s32(q0), vqmovn_s32(q1));
        vst1_s8(o + j, vqmovn_s16(q16));  // saturates to [-128, 127]
      }
      for (; j < ncols; ++j) {
        const float y = affine_clamp(kr - 2 * cnt[j], mult[j], bias[j], t.clamp_min, t.clamp_max);
        o[j] = quantize_int8(y, t.int8_scale, t.int8_zero_point);
      }
    } else {
      int32_t* o = reinterpret_cast<int32_t*>(out_row) + col0 / 32;
      const float32x4_t zero = vdupq_n_f32(0.0f);
      for (; j + 32 <= ncols; j += 32) {
        uint32x4_t mask[8];
#pragma GCC unroll 8
        for (int v = 0; v < 8; ++v) {
          const int i = j + 4 * v;
          mask[v] = vcltq_f32(affine4(cnt + i, mult + i, bias + i, k4, c), zero);
        }
        o[j / 32] = static_cast<int32_t>(movemask32(mask));
      }
      if (j < ncols) {  // the last, partial word
        uint32_t bits = 0;
        for (int i = 0; j + i < ncols; ++i) {
          const float y =
              affine_clamp(kr - 2 * cnt[j + i], mult[j + i], bias[j + i], t.clamp_min, t.clamp_max);
          bits |= uint32_t{y < 0.0f} << i;
        }
        o[j / 32] = static_cast<int32_t>(bits);
      }
    }
  }
}

}  // namespace

void gemm_panel_neon(const int32_t* a, int64_t lda, int rows, const int32_t* panel, int kw,
                     int32_t* counts, int64_t ldc, int ncols) {
  half_panel(a, lda, rows, panel, kw, counts, ldc, ncols < 16 ? ncols : 16);
  if (ncols > 16) {
    half_panel(a, lda, rows, panel + 16, kw, counts + 16, ldc, ncols - 16);
  }
}

void transform_neon(const int32_t* counts, int64_t ld_counts, int rows, int col0, int ncols, int k,
                    const int32_t* row_k, const OutputTransform& t, void* out, int out_columns) {
  NeonConsts c;
  c.lo = vdupq_n_f32(t.clamp_min);
  c.hi = vdupq_n_f32(t.clamp_max);
  c.scale = vdupq_n_f32(t.int8_scale);
  c.rmin = vdupq_n_f32(-512.0f);
  c.rmax = vdupq_n_f32(512.0f);
  c.zp = vdupq_n_s32(t.int8_zero_point);
  const int64_t row_bytes = output_row_bytes(t.type, out_columns);
  char* o = static_cast<char*>(out);
  switch (t.type) {
    case OutputType::kFloat:
      neon_rows<OutputType::kFloat>(counts, ld_counts, rows, col0, ncols, k, row_k, t, c, o,
                                    row_bytes);
      break;
    case OutputType::kInt8:
      neon_rows<OutputType::kInt8>(counts, ld_counts, rows, col0, ncols, k, row_k, t, c, o,
                                   row_bytes);
      break;
    case OutputType::kBitpacked:
      neon_rows<OutputType::kBitpacked>(counts, ld_counts, rows, col0, ncols, k, row_k, t, c, o,
                                        row_bytes);
      break;
  }
}

// ---- bitpacking ------------------------------------------------------------------

void bitpack_float_neon(const float* in, int64_t rows, int channels, int32_t* out) {
  const int words = packed_words(channels);
  const int full = channels / 32;
  const float32x4_t zero = vdupq_n_f32(0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * channels;
    int32_t* o = out + r * words;
    for (int w = 0; w < full; ++w) {
      uint32x4_t mask[8];
#pragma GCC unroll 8
      for (int v = 0; v < 8; ++v) mask[v] = vcltq_f32(vld1q_f32(x + 32 * w + 4 * v), zero);
      o[w] = static_cast<int32_t>(movemask32(mask));
    }
    pack_row_float(x, channels, full, o);
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

#endif  // TFQNN_CORE_NEON
