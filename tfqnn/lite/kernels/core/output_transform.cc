// The output transform of Bdense and Bconv2d (docs/lite_ops.md):
//   y = float32(dot) * multiplier[o] + bias[o]   (two roundings, no FMA)
//   y = min(max(y, clamp_min), clamp_max)
// written as float32, as int8 (clamp(round_half_away(y / scale) + zp)) or
// bitpacked (bit where y < 0). Every version performs the same IEEE float32
// operations in the same order, so all of them give the same bits (the
// library is compiled with -ffp-contract=off; no FMA anywhere here).
#include <cmath>
#include <cstdint>

#include "core.h"
#include "internal.h"

#if defined(__x86_64__)
// GCC 12 warns about _mm512_undefined_ps() inside its own intrinsics
// (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

namespace tfqnn {
namespace core {

int8_t quantize_int8(float y, float scale, int32_t zero_point) {
  float r = std::round(y / scale);  // half away from zero, exact
  if (!(r >= -512.0f)) r = r > 0.0f ? 512.0f : -512.0f;  // also NaN
  if (r > 512.0f) r = 512.0f;
  int32_t q = static_cast<int32_t>(r) + zero_point;
  q = q < -128 ? -128 : (q > 127 ? 127 : q);
  return static_cast<int8_t>(q);
}

namespace {

// One row, columns [j0, ncols) of the block (relative to col0). When
// bitpacked, j0 is a multiple of 32.
void row_scalar(const int32_t* cnt, int j0, int col0, int ncols, int k,
                const OutputTransform& t, void* out_row) {
  const float* mult = t.multiplier + col0;
  const float* bias = t.bias + col0;
  switch (t.type) {
    case OutputType::kFloat: {
      float* o = static_cast<float*>(out_row) + col0;
      for (int j = j0; j < ncols; ++j) {
        o[j] = affine_clamp(k - 2 * cnt[j], mult[j], bias[j], t.clamp_min,
                            t.clamp_max);
      }
      break;
    }
    case OutputType::kInt8: {
      int8_t* o = static_cast<int8_t*>(out_row) + col0;
      for (int j = j0; j < ncols; ++j) {
        const float y = affine_clamp(k - 2 * cnt[j], mult[j], bias[j],
                                     t.clamp_min, t.clamp_max);
        o[j] = quantize_int8(y, t.int8_scale, t.int8_zero_point);
      }
      break;
    }
    case OutputType::kBitpacked: {
      int32_t* o = static_cast<int32_t*>(out_row) + col0 / 32;
      for (int w0 = j0; w0 < ncols; w0 += 32) {
        const int n = ncols - w0 < 32 ? ncols - w0 : 32;
        uint32_t bits = 0;
        for (int i = 0; i < n; ++i) {
          const int j = w0 + i;
          const float y = affine_clamp(k - 2 * cnt[j], mult[j], bias[j],
                                       t.clamp_min, t.clamp_max);
          bits |= uint32_t{y < 0.0f} << i;
        }
        o[w0 / 32] = static_cast<int32_t>(bits);
      }
      break;
    }
  }
}

}  // namespace

void transform_scalar(const int32_t* counts, int64_t ld_counts, int rows,
                      int col0, int ncols, int k, const int32_t* row_k,
                      const OutputTransform& t, void* out, int out_columns) {
  const int64_t row_bytes = output_row_bytes(t.type, out_columns);
  for (int r = 0; r < rows; ++r) {
    row_scalar(counts + r * ld_counts, 0, col0, ncols, row_k ? row_k[r] : k, t,
               static_cast<char*>(out) + r * row_bytes);
  }
}

#if defined(__x86_64__)

#define TFQNN_AVX2 __attribute__((target("avx2,popcnt")))
#define TFQNN_AVX512 \
  __attribute__((target("avx512f,avx512vpopcntdq,avx512vl,avx512bw,avx512dq")))

// ---- AVX2: 8 columns per step, the scalar code for the rest ----------------

namespace {

struct Avx2Consts {
  __m256 lo, hi, scale, half, one, sign, rmin, rmax;
  __m256i zp, qmin, qmax;
};

TFQNN_AVX2 inline __m256 avx2_affine(const int32_t* cnt, const float* mult,
                                     const float* bias, __m256i k2,
                                     const Avx2Consts& c) {
  const __m256i n = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cnt));
  const __m256i dot = _mm256_sub_epi32(k2, _mm256_add_epi32(n, n));
  __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(dot), _mm256_loadu_ps(mult));
  y = _mm256_add_ps(y, _mm256_loadu_ps(bias));
  y = _mm256_max_ps(c.lo, y);  // lo > y ? lo : y
  return _mm256_min_ps(c.hi, y);  // hi < y ? hi : y
}

TFQNN_AVX2 inline __m256i avx2_quantize(__m256 y, const Avx2Consts& c) {
  const __m256 v = _mm256_div_ps(y, c.scale);
  const __m256 tr = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 frac = _mm256_andnot_ps(c.sign, _mm256_sub_ps(v, tr));
  const __m256 up = _mm256_cmp_ps(frac, c.half, _CMP_GE_OQ);
  const __m256 step = _mm256_or_ps(c.one, _mm256_and_ps(v, c.sign));
  __m256 r = _mm256_add_ps(tr, _mm256_and_ps(up, step));
  // Into [-512, 512] (NaN: -512, as the scalar code).
  r = _mm256_min_ps(_mm256_max_ps(r, c.rmin), c.rmax);
  __m256i q = _mm256_add_epi32(_mm256_cvttps_epi32(r), c.zp);
  return _mm256_min_epi32(c.qmax, _mm256_max_epi32(c.qmin, q));
}

}  // namespace

namespace {

template <OutputType kType>
TFQNN_AVX2 inline void avx2_rows(const int32_t* counts, int64_t ld_counts, int rows,
                                 int col0, int ncols, int k, const int32_t* row_k,
                                 const float* mult, const float* bias,
                                 const Avx2Consts& c, const OutputTransform& t,
                                 char* out, int64_t row_bytes) {
  const __m256i perm = _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4);
  const __m256 zero = _mm256_setzero_ps();
  for (int r = 0; r < rows; ++r) {
    const int kr = row_k ? row_k[r] : k;
    const __m256i k2 = _mm256_set1_epi32(kr);
    const int32_t* cnt = counts + r * ld_counts;
    char* out_row = out + r * row_bytes;
    int j = 0;
    if (kType == OutputType::kFloat) {
      float* o = reinterpret_cast<float*>(out_row) + col0;
      for (; j + 8 <= ncols; j += 8) {
        _mm256_storeu_ps(o + j, avx2_affine(cnt + j, mult + j, bias + j, k2, c));
      }
    } else if (kType == OutputType::kInt8) {
      int8_t* o = reinterpret_cast<int8_t*>(out_row) + col0;
      for (; j + 8 <= ncols; j += 8) {
        const __m256i q = avx2_quantize(avx2_affine(cnt + j, mult + j, bias + j, k2, c), c);
        const __m256i p16 = _mm256_packs_epi32(q, q);  // values fit: no saturation
        const __m256i p8 = _mm256_packs_epi16(p16, p16);
        const __m256i g = _mm256_permutevar8x32_epi32(p8, perm);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(o + j), _mm256_castsi256_si128(g));
      }
    } else {
      int32_t* o = reinterpret_cast<int32_t*>(out_row) + col0 / 32;
      for (; j + 32 <= ncols; j += 32) {
        uint32_t bits = 0;
        for (int i = 0; i < 4; ++i) {
          const __m256 y = avx2_affine(cnt + j + 8 * i, mult + j + 8 * i, bias + j + 8 * i,
                                       k2, c);
          bits |= static_cast<uint32_t>(
                      _mm256_movemask_ps(_mm256_cmp_ps(y, zero, _CMP_LT_OQ)))
                  << (8 * i);
        }
        o[j / 32] = static_cast<int32_t>(bits);
      }
    }
    if (j < ncols) row_scalar(cnt, j, col0, ncols, kr, t, out_row);
  }
}

}  // namespace

TFQNN_AVX2 void transform_avx2(const int32_t* counts, int64_t ld_counts,
                               int rows, int col0, int ncols, int k,
                               const int32_t* row_k, const OutputTransform& t,
                               void* out, int out_columns) {
  Avx2Consts c;
  c.lo = _mm256_set1_ps(t.clamp_min);
  c.hi = _mm256_set1_ps(t.clamp_max);
  c.scale = _mm256_set1_ps(t.int8_scale);
  c.half = _mm256_set1_ps(0.5f);
  c.one = _mm256_set1_ps(1.0f);
  c.sign = _mm256_set1_ps(-0.0f);
  c.rmin = _mm256_set1_ps(-512.0f);
  c.rmax = _mm256_set1_ps(512.0f);
  c.zp = _mm256_set1_epi32(t.int8_zero_point);
  c.qmin = _mm256_set1_epi32(-128);
  c.qmax = _mm256_set1_epi32(127);
  const float* mult = t.multiplier + col0;
  const float* bias = t.bias + col0;
  const int64_t row_bytes = output_row_bytes(t.type, out_columns);
  char* o = static_cast<char*>(out);
  switch (t.type) {
    case OutputType::kFloat:
      avx2_rows<OutputType::kFloat>(counts, ld_counts, rows, col0, ncols, k, row_k, mult,
                                    bias, c, t, o, row_bytes);
      break;
    case OutputType::kInt8:
      avx2_rows<OutputType::kInt8>(counts, ld_counts, rows, col0, ncols, k, row_k, mult,
                                   bias, c, t, o, row_bytes);
      break;
    case OutputType::kBitpacked:
      avx2_rows<OutputType::kBitpacked>(counts, ld_counts, rows, col0, ncols, k, row_k,
                                        mult, bias, c, t, o, row_bytes);
      break;
  }
}

// ---- AVX-512: 16 columns per step, masked tails ----------------------------

namespace {

struct Avx512Consts {
  __m512 lo, hi, scale, half, one, sign, rmin, rmax;
  __m512i zp, qmin, qmax;
};

TFQNN_AVX512 inline __m512 avx512_affine(const int32_t* cnt, const float* mult,
                                         const float* bias, __mmask16 m,
                                         __m512i k2, const Avx512Consts& c) {
  const __m512i n = _mm512_maskz_loadu_epi32(m, cnt);
  const __m512i dot = _mm512_sub_epi32(k2, _mm512_add_epi32(n, n));
  __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), _mm512_maskz_loadu_ps(m, mult));
  y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, bias));
  y = _mm512_max_ps(c.lo, y);
  return _mm512_min_ps(c.hi, y);
}

TFQNN_AVX512 inline __m512i avx512_quantize(__m512 y, const Avx512Consts& c) {
  const __m512 v = _mm512_div_ps(y, c.scale);
  const __m512 tr = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, tr));
  const __mmask16 up = _mm512_cmp_ps_mask(frac, c.half, _CMP_GE_OQ);
  // copysign(1, v): the sign bit of v on 1.0.
  const __m512 step = _mm512_or_ps(c.one, _mm512_and_ps(v, c.sign));
  __m512 r = _mm512_mask_add_ps(tr, up, tr, step);
  // Into [-512, 512] (NaN: -512, as the scalar code).
  r = _mm512_min_ps(_mm512_max_ps(r, c.rmin), c.rmax);
  const __m512i q = _mm512_add_epi32(_mm512_cvttps_epi32(r), c.zp);
  return _mm512_min_epi32(c.qmax, _mm512_max_epi32(c.qmin, q));
}

}  // namespace

namespace {

// Rows of one output type: full vectors, then a masked tail.
template <OutputType kType>
TFQNN_AVX512 inline void avx512_rows(const int32_t* counts, int64_t ld_counts,
                                     int rows, int col0, int ncols, int k,
                                     const int32_t* row_k, const float* mult,
                                     const float* bias, const Avx512Consts& c,
                                     char* out, int64_t row_bytes) {
  const __m512 zero = _mm512_setzero_ps();
  const __mmask16 all = 0xFFFF;
  for (int r = 0; r < rows; ++r) {
    const __m512i k2 = _mm512_set1_epi32(row_k ? row_k[r] : k);
    const int32_t* cnt = counts + r * ld_counts;
    char* out_row = out + r * row_bytes;
    if (kType == OutputType::kBitpacked) {
      int32_t* o = reinterpret_cast<int32_t*>(out_row) + col0 / 32;
      for (int j = 0; j < ncols; j += 32) {
        const int n = ncols - j;
        const uint32_t bits = n >= 32 ? 0xFFFFFFFFu : (uint32_t{1} << n) - 1u;
        const __mmask16 m0 = static_cast<__mmask16>(bits & 0xFFFF);
        const __mmask16 m1 = static_cast<__mmask16>(bits >> 16);
        const __m512 y0 = avx512_affine(cnt + j, mult + j, bias + j, m0, k2, c);
        const __m512 y1 = avx512_affine(cnt + j + 16, mult + j + 16, bias + j + 16, m1, k2, c);
        const uint32_t lo = _mm512_mask_cmp_ps_mask(m0, y0, zero, _CMP_LT_OQ);
        const uint32_t hi = _mm512_mask_cmp_ps_mask(m1, y1, zero, _CMP_LT_OQ);
        o[j / 32] = static_cast<int32_t>(lo | (hi << 16));
      }
      continue;
    }
    int j = 0;
    for (; j + 16 <= ncols; j += 16) {
      const __m512 y = avx512_affine(cnt + j, mult + j, bias + j, all, k2, c);
      if (kType == OutputType::kFloat) {
        _mm512_storeu_ps(reinterpret_cast<float*>(out_row) + col0 + j, y);
      } else {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out_row + col0 + j),
                         _mm512_cvtepi32_epi8(avx512_quantize(y, c)));
      }
    }
    if (j < ncols) {
      const __mmask16 m = static_cast<__mmask16>((1u << (ncols - j)) - 1u);
      const __m512 y = avx512_affine(cnt + j, mult + j, bias + j, m, k2, c);
      if (kType == OutputType::kFloat) {
        _mm512_mask_storeu_ps(reinterpret_cast<float*>(out_row) + col0 + j, m, y);
      } else {
        _mm512_mask_cvtepi32_storeu_epi8(out_row + col0 + j, m, avx512_quantize(y, c));
      }
    }
  }
}

}  // namespace

TFQNN_AVX512 void transform_avx512(const int32_t* counts, int64_t ld_counts,
                                   int rows, int col0, int ncols, int k,
                                   const int32_t* row_k,
                                   const OutputTransform& t, void* out,
                                   int out_columns) {
  Avx512Consts c;
  c.lo = _mm512_set1_ps(t.clamp_min);
  c.hi = _mm512_set1_ps(t.clamp_max);
  c.scale = _mm512_set1_ps(t.int8_scale);
  c.half = _mm512_set1_ps(0.5f);
  c.one = _mm512_set1_ps(1.0f);
  c.sign = _mm512_set1_ps(-0.0f);
  c.rmin = _mm512_set1_ps(-512.0f);
  c.rmax = _mm512_set1_ps(512.0f);
  c.zp = _mm512_set1_epi32(t.int8_zero_point);
  c.qmin = _mm512_set1_epi32(-128);
  c.qmax = _mm512_set1_epi32(127);
  const float* mult = t.multiplier + col0;
  const float* bias = t.bias + col0;
  const int64_t row_bytes = output_row_bytes(t.type, out_columns);
  char* o = static_cast<char*>(out);
  switch (t.type) {
    case OutputType::kFloat:
      avx512_rows<OutputType::kFloat>(counts, ld_counts, rows, col0, ncols, k, row_k,
                                      mult, bias, c, o, row_bytes);
      break;
    case OutputType::kInt8:
      avx512_rows<OutputType::kInt8>(counts, ld_counts, rows, col0, ncols, k, row_k,
                                     mult, bias, c, o, row_bytes);
      break;
    case OutputType::kBitpacked:
      avx512_rows<OutputType::kBitpacked>(counts, ld_counts, rows, col0, ncols, k,
                                          row_k, mult, bias, c, o, row_bytes);
      break;
  }
}

#endif  // defined(__x86_64__)

}  // namespace core
}  // namespace tfqnn
