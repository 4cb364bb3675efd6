// The output transform with NEON, 4 columns per vector, the scalar code for
// the rest (output_transform_scalar.cc has the definition).
//
// It performs the IEEE float32 operations of the scalar code in the same
// order (multiply, then add: no FMLA; the library is built with
// -ffp-contract=off, without which GCC would contract vmulq_f32 + vaddq_f32
// into FMLA), and its clamps are compare-and-select, as the scalar
// `lo > y ? lo : y`, rather than FMAX/FMIN, which order -0 below +0.
#include "internal.h"

#if TFQNN_NEON
#include <arm_neon.h>

#include <cstdint>

#include "movemask_neon.h"

namespace tfqnn {
namespace core {
namespace {

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
      const float below = bitpack_threshold(t);
      const float32x4_t below4 = vdupq_n_f32(below);
      for (; j + 32 <= ncols; j += 32) {
        uint32x4_t mask[8];
#pragma GCC unroll 8
        for (int v = 0; v < 8; ++v) {
          const int i = j + 4 * v;
          mask[v] = vcltq_f32(affine4(cnt + i, mult + i, bias + i, k4, c), below4);
        }
        o[j / 32] = static_cast<int32_t>(movemask32(mask));
      }
      if (j < ncols) {  // the last, partial word
        uint32_t bits = 0;
        for (int i = 0; j + i < ncols; ++i) {
          const float y =
              affine_clamp(kr - 2 * cnt[j + i], mult[j + i], bias[j + i], t.clamp_min, t.clamp_max);
          bits |= uint32_t{y < below} << i;
        }
        o[j / 32] = static_cast<int32_t>(bits);
      }
    }
  }
}

// The constants of quantize4.
void set_quantize_consts(float scale, int32_t zero_point, NeonConsts* c) {
  c->scale = vdupq_n_f32(scale);
  c->rmin = vdupq_n_f32(-512.0f);
  c->rmax = vdupq_n_f32(512.0f);
  c->zp = vdupq_n_s32(zero_point);
}

}  // namespace

void output_transform_neon(const int32_t* counts, int64_t ld_counts, int rows, int col0, int ncols,
                           int k, const int32_t* row_k, const OutputTransform& t, void* out,
                           int out_columns) {
  NeonConsts c;
  c.lo = vdupq_n_f32(t.clamp_min);
  c.hi = vdupq_n_f32(t.clamp_max);
  set_quantize_consts(t.int8_scale, t.int8_zero_point, &c);
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

void accumulate_neon(const int32_t* counts, int k, const float* mult, int n, bool first, float* y) {
  if (first) {
    accumulate_term<true>(counts, k, mult, n, y);
  } else {
    accumulate_term<false>(counts, k, mult, n, y);
  }
}

void bias_clamp_neon(float* y, const float* bias, int n, float lo, float hi) {
  bias_clamp_values(y, bias, n, lo, hi);
}

void quantize_int8_neon(const float* y, int64_t n, float scale, int32_t zero_point, int8_t* out) {
  NeonConsts c;
  set_quantize_consts(scale, zero_point, &c);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const int32x4_t q0 = quantize4(vld1q_f32(y + j), c);
    const int32x4_t q1 = quantize4(vld1q_f32(y + j + 4), c);
    vst1_s8(out + j, vqmovn_s16(vcombine_s16(vqmovn_s32(q0), vqmovn_s32(q1))));  // saturates
  }
  for (; j < n; ++j) out[j] = quantize_int8(y[j], scale, zero_point);
}

void add_residual_neon(float* out, const float* post_bias, const float* residual, int rows,
                       int channels) {
  add_residual_rows(out, post_bias, residual, rows, channels);
}

void add_residual_int8_neon(int8_t* out, const int8_t* residual, int64_t n, const Int8Add& p) {
  add_residual_int8_values(out, residual, n, p);
}

}  // namespace core
}  // namespace tfqnn

#endif  // TFQNN_NEON
