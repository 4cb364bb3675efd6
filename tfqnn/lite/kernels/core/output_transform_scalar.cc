// The output transform of Bdense and Bconv2d (docs/lite_ops.md):
//   y = float32(dot) * multiplier[o] + bias[o]   (two roundings, no FMA)
//   y = min(max(y, clamp_min), clamp_max)
// written as float32, as int8 (clamp(round_half_away(y / scale) + zp)) or
// bitpacked (bit where y < 0). Every version performs the same IEEE float32
// operations in the same order, so all of them give the same bits (the
// library is compiled with -ffp-contract=off; the one FMA, in the AVX-512
// version, computes the integer dot k - 2n, exact below 2^24).
//
// This file: the portable version, and the row function that is also the
// tail of the vector versions.
#include <cmath>
#include <cstdint>

#include "core.h"
#include "internal.h"

namespace tfqnn {
namespace core {

int8_t quantize_int8(float y, float scale, int32_t zero_point) {
  float r = std::round(y / scale);                       // half away from zero, exact
  if (!(r >= -512.0f)) r = r > 0.0f ? 512.0f : -512.0f;  // also NaN
  if (r > 512.0f) r = 512.0f;
  int32_t q = static_cast<int32_t>(r) + zero_point;
  q = q < -128 ? -128 : (q > 127 ? 127 : q);
  return static_cast<int8_t>(q);
}

void output_transform_row_scalar(const int32_t* cnt, int j0, int col0, int ncols, int k,
                                 const OutputTransform& t, void* out_row) {
  const float* mult = t.multiplier + col0;
  const float* bias = t.bias + col0;
  switch (t.type) {
    case OutputType::kFloat: {
      float* o = static_cast<float*>(out_row) + col0;
      for (int j = j0; j < ncols; ++j) {
        o[j] = affine_clamp(k - 2 * cnt[j], mult[j], bias[j], t.clamp_min, t.clamp_max);
      }
      break;
    }
    case OutputType::kInt8: {
      int8_t* o = static_cast<int8_t*>(out_row) + col0;
      for (int j = j0; j < ncols; ++j) {
        const float y = affine_clamp(k - 2 * cnt[j], mult[j], bias[j], t.clamp_min, t.clamp_max);
        o[j] = quantize_int8(y, t.int8_scale, t.int8_zero_point);
      }
      break;
    }
    case OutputType::kBitpacked: {
      int32_t* o = static_cast<int32_t*>(out_row) + col0 / 32;
      const float below = bitpack_threshold(t);
      for (int w0 = j0; w0 < ncols; w0 += 32) {
        const int n = ncols - w0 < 32 ? ncols - w0 : 32;
        uint32_t bits = 0;
        for (int i = 0; i < n; ++i) {
          const int j = w0 + i;
          const float y = affine_clamp(k - 2 * cnt[j], mult[j], bias[j], t.clamp_min, t.clamp_max);
          bits |= uint32_t{y < below} << i;
        }
        o[w0 / 32] = static_cast<int32_t>(bits);
      }
      break;
    }
  }
}

void output_transform_scalar(const int32_t* counts, int64_t ld_counts, int rows, int col0,
                             int ncols, int k, const int32_t* row_k, const OutputTransform& t,
                             void* out, int out_columns) {
  const int64_t row_bytes = output_row_bytes(t.type, out_columns);
  for (int r = 0; r < rows; ++r) {
    output_transform_row_scalar(counts + r * ld_counts, 0, col0, ncols, row_k ? row_k[r] : k, t,
                                static_cast<char*>(out) + r * row_bytes);
  }
}

void accumulate_scalar(const int32_t* counts, int k, const float* mult, int n, bool first,
                       float* y) {
  if (first) {
    accumulate_term<true>(counts, k, mult, n, y);
  } else {
    accumulate_term<false>(counts, k, mult, n, y);
  }
}

void bias_clamp_scalar(float* y, const float* bias, int n, float lo, float hi) {
  bias_clamp_values(y, bias, n, lo, hi);
}

void quantize_int8_scalar(const float* y, int64_t n, float scale, int32_t zero_point, int8_t* out) {
  for (int64_t j = 0; j < n; ++j) out[j] = quantize_int8(y[j], scale, zero_point);
}

void add_residual_scalar(float* out, const float* post_bias, const float* residual, int rows,
                         int channels) {
  add_residual_rows(out, post_bias, residual, rows, channels);
}

void add_residual_int8_scalar(int8_t* out, const int8_t* residual, int64_t n, const Int8Add& p) {
  add_residual_int8_values(out, residual, n, p);
}

bool int8_add_params(float a_scale, int32_t a_zero_point, float b_scale, int32_t b_zero_point,
                     float output_scale, int32_t output_zero_point, Int8Add* p) {
  for (float s : {a_scale, b_scale, output_scale}) {
    if (!(s > 0.0f) || !std::isfinite(s)) return false;
  }
  const float ra = a_scale / output_scale, rb = b_scale / output_scale;
  for (float r : {ra, rb}) {
    if (!(r >= 0x1.0p-10f) || !(r < 0x1.0p+8f)) return false;
  }
  const int exponent = std::ilogb(ra > rb ? ra : rb);  // in [-10, 7]
  const int shift = 20 - exponent;                     // in [13, 30]
  p->a_multiplier =
      static_cast<int32_t>(std::lrint(std::ldexp(ra, shift)));  // exact, then ties to even
  p->b_multiplier = static_cast<int32_t>(std::lrint(std::ldexp(rb, shift)));
  p->shift = shift;
  p->bias =
      (int32_t{1} << (shift - 1)) - p->a_multiplier * a_zero_point - p->b_multiplier * b_zero_point;
  p->output_zero_point = output_zero_point;
  return true;
}

}  // namespace core
}  // namespace tfqnn
