// The output transform with AVX-512: 16 columns per vector, masked tails
// (output_transform_scalar.cc has the definition, output_transform_avx2.cc
// the chunking both x86 versions share).
#include "internal.h"

#if defined(__x86_64__)
// GCC 12 warns about _mm512_undefined_ps() inside its own intrinsics
// (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstdint>

namespace tfqnn {
namespace core {
namespace {

struct Avx512Consts {
  __m512 lo, hi, scale, half, one, sign, rmin, rmax;
  __m512 below;  // bitpacked: bit where y < below (docs/lite_ops.md)
  __m512i zp, qmin, qmax;
};

// float32(k - 2 n) is computed as k - 2 * float32(n) in one FMA: exact,
// as every term is an integer below 2^24 in magnitude (counts <= k < 2^24).
template <bool kClamp>
TFQNN_AVX512 __attribute__((always_inline)) inline __m512 avx512_affine(__m512i n, __m512 mult,
                                                                        __m512 bias, __m512 k2,
                                                                        __m512 lo, __m512 hi) {
  const __m512 dot = _mm512_fnmadd_ps(_mm512_set1_ps(2.0f), _mm512_cvtepi32_ps(n), k2);
  __m512 y = _mm512_mul_ps(dot, mult);
  y = _mm512_add_ps(y, bias);
  if (kClamp) {
    y = _mm512_max_ps(lo, y);
    y = _mm512_min_ps(hi, y);
  }
  return y;
}

TFQNN_AVX512 __attribute__((always_inline)) inline __m512i avx512_quantize(__m512 y,
                                                                           const Avx512Consts& c) {
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

// Columns [j0, j0 + 16 * NV * chunks) of every row, in `chunks` chunks of
// NV vectors (masks[v] of each: all ones but for a tail). kHoist: one chunk,
// multipliers and biases loaded once; else the masks are all ones. For
// kBitpacked NV is even (a word is 2 vectors).
template <OutputType kType, bool kClamp, int NV, bool kHoist>
TFQNN_AVX512 void avx512_chunks(const int32_t* counts, int64_t ld_counts, int rows, int j0,
                                int chunks, int col0, int k, const int32_t* row_k,
                                const float* mult, const float* bias, const Avx512Consts& c,
                                const __mmask16* masks, char* out, int64_t row_bytes) {
  __m512 mh[NV], bh[NV];
  __mmask16 mask[NV];
  bool full = true;
  for (int v = 0; v < NV; ++v) {
    mask[v] = kHoist ? masks[v] : 0xFFFF;
    full = full && mask[v] == 0xFFFF;
    if (kHoist) {
      mh[v] = _mm512_maskz_loadu_ps(mask[v], mult + j0 + 16 * v);
      bh[v] = _mm512_maskz_loadu_ps(mask[v], bias + j0 + 16 * v);
    }
  }
  const __m512 lo = c.lo, hi = c.hi;
  const __m512 below = c.below;
  const __m512 kk = _mm512_set1_ps(static_cast<float>(k));
  const int32_t* cnt_row = counts + j0;
  char* o_row = out + output_bytes<kType>(int64_t{col0} + j0);
  for (int r = 0; r < rows; ++r, cnt_row += ld_counts, o_row += row_bytes) {
    const __m512 k2 = row_k ? _mm512_set1_ps(static_cast<float>(row_k[r])) : kk;
    for (int ch = 0; ch < (kHoist ? 1 : chunks); ++ch) {
      const int jc = ch * 16 * NV;
      const int32_t* cnt = cnt_row + jc;
      char* o = o_row + output_bytes<kType>(jc);
      __m512 m[NV], b[NV];
      for (int v = 0; v < NV; ++v) {
        m[v] = kHoist ? mh[v] : _mm512_loadu_ps(mult + j0 + jc + 16 * v);
        b[v] = kHoist ? bh[v] : _mm512_loadu_ps(bias + j0 + jc + 16 * v);
      }
      if (kType == OutputType::kBitpacked) {
#pragma GCC unroll 2
        for (int w = 0; w < NV / 2; ++w) {
          __m512i n0, n1;
          if (full) {
            n0 = _mm512_loadu_si512(cnt + 32 * w);
            n1 = _mm512_loadu_si512(cnt + 32 * w + 16);
          } else {
            n0 = _mm512_maskz_loadu_epi32(mask[2 * w], cnt + 32 * w);
            n1 = _mm512_maskz_loadu_epi32(mask[2 * w + 1], cnt + 32 * w + 16);
          }
          const __m512 y0 = avx512_affine<kClamp>(n0, m[2 * w], b[2 * w], k2, lo, hi);
          const __m512 y1 = avx512_affine<kClamp>(n1, m[2 * w + 1], b[2 * w + 1], k2, lo, hi);
          const uint32_t l = _mm512_mask_cmp_ps_mask(mask[2 * w], y0, below, _CMP_LT_OQ);
          const uint32_t h = _mm512_mask_cmp_ps_mask(mask[2 * w + 1], y1, below, _CMP_LT_OQ);
          reinterpret_cast<int32_t*>(o)[w] = static_cast<int32_t>(l | (h << 16));
        }
        continue;
      }
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        const __m512i n = full ? _mm512_loadu_si512(cnt + 16 * v)
                               : _mm512_maskz_loadu_epi32(mask[v], cnt + 16 * v);
        const __m512 y = avx512_affine<kClamp>(n, m[v], b[v], k2, lo, hi);
        if (kType == OutputType::kFloat) {
          float* of = reinterpret_cast<float*>(o) + 16 * v;
          if (full) {
            _mm512_storeu_ps(of, y);
          } else {
            _mm512_mask_storeu_ps(of, mask[v], y);
          }
        } else {
          const __m512i q = avx512_quantize(y, c);
          if (full) {
            _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 16 * v), _mm512_cvtepi32_epi8(q));
          } else {
            _mm512_mask_cvtepi32_storeu_epi8(o + 16 * v, mask[v], q);
          }
        }
      }
    }
  }
}

template <OutputType kType, bool kClamp>
TFQNN_AVX512 void avx512_rows(const int32_t* counts, int64_t ld_counts, int rows, int col0,
                              int ncols, int k, const int32_t* row_k, const float* mult,
                              const float* bias, const Avx512Consts& c, char* out,
                              int64_t row_bytes) {
  const __mmask16 ones[4] = {0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF};
  const int chunks = ncols / 64;
  if (chunks == 1) {
    avx512_chunks<kType, kClamp, 4, true>(counts, ld_counts, rows, 0, 1, col0, k, row_k, mult, bias,
                                          c, ones, out, row_bytes);
  } else if (chunks > 1) {
    avx512_chunks<kType, kClamp, 4, false>(counts, ld_counts, rows, 0, chunks, col0, k, row_k, mult,
                                           bias, c, ones, out, row_bytes);
  }
  const int j = chunks * 64;
  if (j == ncols) return;
  // The rest: up to 4 vectors, the last ones masked.
  __mmask16 masks[4];
  const int rest = ncols - j;
  for (int v = 0; v < 4; ++v) {
    const int n = rest - 16 * v;
    masks[v] = n >= 16 ? 0xFFFF : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1u);
  }
  const int nv = (rest + 15) / 16;
  if (kType == OutputType::kBitpacked) {
    if (nv > 2) {
      avx512_chunks<kType, kClamp, 4, true>(counts, ld_counts, rows, j, 1, col0, k, row_k, mult,
                                            bias, c, masks, out, row_bytes);
    } else {
      avx512_chunks<kType, kClamp, 2, true>(counts, ld_counts, rows, j, 1, col0, k, row_k, mult,
                                            bias, c, masks, out, row_bytes);
    }
    return;
  }
  switch (nv) {
    case 4:
      avx512_chunks<kType, kClamp, 4, true>(counts, ld_counts, rows, j, 1, col0, k, row_k, mult,
                                            bias, c, masks, out, row_bytes);
      break;
    case 3:
      avx512_chunks<kType, kClamp, 3, true>(counts, ld_counts, rows, j, 1, col0, k, row_k, mult,
                                            bias, c, masks, out, row_bytes);
      break;
    case 2:
      avx512_chunks<kType, kClamp, 2, true>(counts, ld_counts, rows, j, 1, col0, k, row_k, mult,
                                            bias, c, masks, out, row_bytes);
      break;
    default:
      avx512_chunks<kType, kClamp, 1, true>(counts, ld_counts, rows, j, 1, col0, k, row_k, mult,
                                            bias, c, masks, out, row_bytes);
      break;
  }
}

template <OutputType kType>
TFQNN_AVX512 void avx512_type(const int32_t* counts, int64_t ld_counts, int rows, int col0,
                              int ncols, int k, const int32_t* row_k, const float* mult,
                              const float* bias, const Avx512Consts& c, const OutputTransform& t,
                              char* out, int64_t row_bytes) {
  const bool clamp = !(t.clamp_min == -__builtin_inff() && t.clamp_max == __builtin_inff());
  if (clamp) {
    avx512_rows<kType, true>(counts, ld_counts, rows, col0, ncols, k, row_k, mult, bias, c, out,
                             row_bytes);
  } else {
    avx512_rows<kType, false>(counts, ld_counts, rows, col0, ncols, k, row_k, mult, bias, c, out,
                              row_bytes);
  }
}

// The constants of avx512_quantize.
TFQNN_AVX512 void set_quantize_consts(float scale, int32_t zero_point, Avx512Consts* c) {
  c->scale = _mm512_set1_ps(scale);
  c->half = _mm512_set1_ps(0.5f);
  c->one = _mm512_set1_ps(1.0f);
  c->sign = _mm512_set1_ps(-0.0f);
  c->rmin = _mm512_set1_ps(-512.0f);
  c->rmax = _mm512_set1_ps(512.0f);
  c->zp = _mm512_set1_epi32(zero_point);
  c->qmin = _mm512_set1_epi32(-128);
  c->qmax = _mm512_set1_epi32(127);
}

}  // namespace

TFQNN_AVX512 void output_transform_avx512(const int32_t* counts, int64_t ld_counts, int rows,
                                          int col0, int ncols, int k, const int32_t* row_k,
                                          const OutputTransform& t, void* out, int out_columns) {
  if (k >= (1 << 24)) {  // the FMA of avx512_affine would not be exact
    output_transform_avx2(counts, ld_counts, rows, col0, ncols, k, row_k, t, out, out_columns);
    return;
  }
  Avx512Consts c;
  c.lo = _mm512_set1_ps(t.clamp_min);
  c.below = _mm512_set1_ps(bitpack_threshold(t));
  c.hi = _mm512_set1_ps(t.clamp_max);
  set_quantize_consts(t.int8_scale, t.int8_zero_point, &c);
  const float* mult = t.multiplier + col0;
  const float* bias = t.bias + col0;
  const int64_t row_bytes = output_row_bytes(t.type, out_columns);
  char* o = static_cast<char*>(out);
  switch (t.type) {
    case OutputType::kFloat:
      avx512_type<OutputType::kFloat>(counts, ld_counts, rows, col0, ncols, k, row_k, mult, bias, c,
                                      t, o, row_bytes);
      break;
    case OutputType::kInt8:
      avx512_type<OutputType::kInt8>(counts, ld_counts, rows, col0, ncols, k, row_k, mult, bias, c,
                                     t, o, row_bytes);
      break;
    case OutputType::kBitpacked:
      avx512_type<OutputType::kBitpacked>(counts, ld_counts, rows, col0, ncols, k, row_k, mult,
                                          bias, c, t, o, row_bytes);
      break;
  }
}

TFQNN_AVX512 void accumulate_avx512(const int32_t* counts, int k, const float* mult, int n,
                                    bool first, float* y) {
  if (first) {
    accumulate_term<true>(counts, k, mult, n, y);
  } else {
    accumulate_term<false>(counts, k, mult, n, y);
  }
}

TFQNN_AVX512 void bias_clamp_avx512(float* y, const float* bias, int n, float lo, float hi) {
  bias_clamp_values(y, bias, n, lo, hi);
}

// 16 values per vector, the last one masked (masked-off lanes load 0 and are
// not stored).
TFQNN_AVX512 void quantize_int8_avx512(const float* y, int64_t n, float scale, int32_t zero_point,
                                       int8_t* out) {
  Avx512Consts c;
  set_quantize_consts(scale, zero_point, &c);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512i q = avx512_quantize(_mm512_loadu_ps(y + j), c);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j), _mm512_cvtepi32_epi8(q));
  }
  if (j < n) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (n - j)) - 1u);
    const __m512i q = avx512_quantize(_mm512_maskz_loadu_ps(mask, y + j), c);
    _mm512_mask_cvtepi32_storeu_epi8(out + j, mask, q);
  }
}

TFQNN_AVX512 void add_residual_avx512(float* out, const float* post_bias, const float* residual,
                                      int rows, int channels) {
  add_residual_rows(out, post_bias, residual, rows, channels);
}

TFQNN_AVX512 void add_residual_int8_avx512(int8_t* out, const int8_t* residual, int64_t n,
                                           const Int8Add& p) {
  add_residual_int8_values(out, residual, n, p);
}

}  // namespace core
}  // namespace tfqnn

#endif  // defined(__x86_64__)
