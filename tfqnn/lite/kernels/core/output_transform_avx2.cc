// The output transform with AVX2: 8 columns per vector, the scalar code for
// the rest (output_transform_scalar.cc has the definition).
//
// The x86 versions (this file and output_transform_avx512.cc) go through
// the columns in chunks of up to 4 vectors (32 columns on AVX2, 64 on
// AVX-512). When the block is one chunk wide (and for the last, narrower
// chunk), the chunk's multipliers and biases are held in registers for every
// row; blocks of several chunks go row by row (their rows may be 4 KiB apart,
// 1024 columns, all in the same L1 set). The clamps are left out when both
// are infinite (max(-inf, y) and min(inf, y) are y, NaN included).
#include "internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstdint>

namespace tfqnn {
namespace core {
namespace {

struct Avx2Consts {
  __m256 lo, hi, scale, half, one, sign, rmin, rmax;
  __m256 below;  // bitpacked: bit where y < below (docs/lite_ops.md)
  __m256i zp, qmin, qmax;
};

template <bool kClamp>
TFQNN_AVX2 __attribute__((always_inline)) inline __m256 avx2_affine(const int32_t* cnt, __m256 mult,
                                                                    __m256 bias, __m256i k2,
                                                                    __m256 lo, __m256 hi) {
  const __m256i n = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cnt));
  const __m256i dot = _mm256_sub_epi32(k2, _mm256_add_epi32(n, n));
  __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(dot), mult);
  y = _mm256_add_ps(y, bias);
  if (kClamp) {
    y = _mm256_max_ps(lo, y);  // lo > y ? lo : y
    y = _mm256_min_ps(hi, y);  // hi < y ? hi : y
  }
  return y;
}

TFQNN_AVX2 __attribute__((always_inline)) inline __m256i avx2_quantize(__m256 y,
                                                                       const Avx2Consts& c) {
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

// Columns [j0, j0 + 8 * NV * chunks) of every row, in `chunks` chunks of NV
// vectors (kHoist: one chunk, multipliers and biases loaded once); for
// kBitpacked NV is 4 (one word).
template <OutputType kType, bool kClamp, int NV, bool kHoist>
TFQNN_AVX2 void avx2_chunks(const int32_t* counts, int64_t ld_counts, int rows, int j0, int chunks,
                            int col0, int k, const int32_t* row_k, const float* mult,
                            const float* bias, const Avx2Consts& c, char* out, int64_t row_bytes) {
  __m256 mh[NV], bh[NV];
  if (kHoist) {
    for (int v = 0; v < NV; ++v) {
      mh[v] = _mm256_loadu_ps(mult + j0 + 8 * v);
      bh[v] = _mm256_loadu_ps(bias + j0 + 8 * v);
    }
  }
  const __m256 lo = c.lo, hi = c.hi;
  const __m256i perm = _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4);
  const __m256 below = c.below;
  const __m256i kk = _mm256_set1_epi32(k);
  const int32_t* cnt_row = counts + j0;
  char* o_row = out + output_bytes<kType>(int64_t{col0} + j0);
  for (int r = 0; r < rows; ++r, cnt_row += ld_counts, o_row += row_bytes) {
    const __m256i k2 = row_k ? _mm256_set1_epi32(row_k[r]) : kk;
    for (int ch = 0; ch < (kHoist ? 1 : chunks); ++ch) {
      const int jc = ch * 8 * NV;
      const int32_t* cnt = cnt_row + jc;
      char* o = o_row + output_bytes<kType>(jc);
      __m256 m[NV], b[NV];
      for (int v = 0; v < NV; ++v) {
        m[v] = kHoist ? mh[v] : _mm256_loadu_ps(mult + j0 + jc + 8 * v);
        b[v] = kHoist ? bh[v] : _mm256_loadu_ps(bias + j0 + jc + 8 * v);
      }
      if (kType == OutputType::kFloat) {
        float* of = reinterpret_cast<float*>(o);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          _mm256_storeu_ps(of + 8 * v, avx2_affine<kClamp>(cnt + 8 * v, m[v], b[v], k2, lo, hi));
        }
      } else if (kType == OutputType::kInt8) {
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          const __m256i q =
              avx2_quantize(avx2_affine<kClamp>(cnt + 8 * v, m[v], b[v], k2, lo, hi), c);
          const __m256i p16 = _mm256_packs_epi32(q, q);  // values fit: no saturation
          const __m256i p8 = _mm256_packs_epi16(p16, p16);
          const __m256i g = _mm256_permutevar8x32_epi32(p8, perm);
          _mm_storel_epi64(reinterpret_cast<__m128i*>(o + 8 * v), _mm256_castsi256_si128(g));
        }
      } else {
        uint32_t bits = 0;
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          const __m256 y = avx2_affine<kClamp>(cnt + 8 * v, m[v], b[v], k2, lo, hi);
          bits |= static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(y, below, _CMP_LT_OQ)))
                  << (8 * v);
        }
        *reinterpret_cast<int32_t*>(o) = static_cast<int32_t>(bits);
      }
    }
  }
}

template <OutputType kType, bool kClamp>
TFQNN_AVX2 void avx2_rows(const int32_t* counts, int64_t ld_counts, int rows, int col0, int ncols,
                          int k, const int32_t* row_k, const float* mult, const float* bias,
                          const Avx2Consts& c, const OutputTransform& t, char* out,
                          int64_t row_bytes) {
  const int chunks = ncols / 32;
  if (chunks == 1) {
    avx2_chunks<kType, kClamp, 4, true>(counts, ld_counts, rows, 0, 1, col0, k, row_k, mult, bias,
                                        c, out, row_bytes);
  } else if (chunks > 1) {
    avx2_chunks<kType, kClamp, 4, false>(counts, ld_counts, rows, 0, chunks, col0, k, row_k, mult,
                                         bias, c, out, row_bytes);
  }
  int j = chunks * 32;
  if (kType != OutputType::kBitpacked) {
    switch ((ncols - j) / 8) {
      case 3:
        avx2_chunks<kType, kClamp, 3, true>(counts, ld_counts, rows, j, 1, col0, k, row_k, mult,
                                            bias, c, out, row_bytes);
        j += 24;
        break;
      case 2:
        avx2_chunks<kType, kClamp, 2, true>(counts, ld_counts, rows, j, 1, col0, k, row_k, mult,
                                            bias, c, out, row_bytes);
        j += 16;
        break;
      case 1:
        avx2_chunks<kType, kClamp, 1, true>(counts, ld_counts, rows, j, 1, col0, k, row_k, mult,
                                            bias, c, out, row_bytes);
        j += 8;
        break;
      default: break;
    }
  }
  if (j < ncols) {
    for (int r = 0; r < rows; ++r) {
      output_transform_row_scalar(counts + r * ld_counts, j, col0, ncols, row_k ? row_k[r] : k, t,
                                  out + r * row_bytes);
    }
  }
}

template <OutputType kType>
TFQNN_AVX2 void avx2_type(const int32_t* counts, int64_t ld_counts, int rows, int col0, int ncols,
                          int k, const int32_t* row_k, const float* mult, const float* bias,
                          const Avx2Consts& c, const OutputTransform& t, char* out,
                          int64_t row_bytes) {
  const bool clamp = !(t.clamp_min == -__builtin_inff() && t.clamp_max == __builtin_inff());
  if (clamp) {
    avx2_rows<kType, true>(counts, ld_counts, rows, col0, ncols, k, row_k, mult, bias, c, t, out,
                           row_bytes);
  } else {
    avx2_rows<kType, false>(counts, ld_counts, rows, col0, ncols, k, row_k, mult, bias, c, t, out,
                            row_bytes);
  }
}

// The constants of avx2_quantize.
TFQNN_AVX2 void set_quantize_consts(float scale, int32_t zero_point, Avx2Consts* c) {
  c->scale = _mm256_set1_ps(scale);
  c->half = _mm256_set1_ps(0.5f);
  c->one = _mm256_set1_ps(1.0f);
  c->sign = _mm256_set1_ps(-0.0f);
  c->rmin = _mm256_set1_ps(-512.0f);
  c->rmax = _mm256_set1_ps(512.0f);
  c->zp = _mm256_set1_epi32(zero_point);
  c->qmin = _mm256_set1_epi32(-128);
  c->qmax = _mm256_set1_epi32(127);
}

}  // namespace

TFQNN_AVX2 void output_transform_avx2(const int32_t* counts, int64_t ld_counts, int rows, int col0,
                                      int ncols, int k, const int32_t* row_k,
                                      const OutputTransform& t, void* out, int out_columns) {
  Avx2Consts c;
  c.lo = _mm256_set1_ps(t.clamp_min);
  c.below = _mm256_set1_ps(bitpack_threshold(t));
  c.hi = _mm256_set1_ps(t.clamp_max);
  set_quantize_consts(t.int8_scale, t.int8_zero_point, &c);
  const float* mult = t.multiplier + col0;
  const float* bias = t.bias + col0;
  const int64_t row_bytes = output_row_bytes(t.type, out_columns);
  char* o = static_cast<char*>(out);
  switch (t.type) {
    case OutputType::kFloat:
      avx2_type<OutputType::kFloat>(counts, ld_counts, rows, col0, ncols, k, row_k, mult, bias, c,
                                    t, o, row_bytes);
      break;
    case OutputType::kInt8:
      avx2_type<OutputType::kInt8>(counts, ld_counts, rows, col0, ncols, k, row_k, mult, bias, c, t,
                                   o, row_bytes);
      break;
    case OutputType::kBitpacked:
      avx2_type<OutputType::kBitpacked>(counts, ld_counts, rows, col0, ncols, k, row_k, mult, bias,
                                        c, t, o, row_bytes);
      break;
  }
}

TFQNN_AVX2 void accumulate_avx2(const int32_t* counts, int k, const float* mult, int n, bool first,
                                float* y) {
  if (first) {
    accumulate_term<true>(counts, k, mult, n, y);
  } else {
    accumulate_term<false>(counts, k, mult, n, y);
  }
}

TFQNN_AVX2 void bias_clamp_avx2(float* y, const float* bias, int n, float lo, float hi) {
  bias_clamp_values(y, bias, n, lo, hi);
}

// 32 values per step: the 4 vectors' int32 packed to bytes by two saturating
// packs (in-lane, so the dwords come out as lane 0 of each vector, then lane
// 1) and a dword permute into order.
TFQNN_AVX2 void quantize_int8_avx2(const float* y, int64_t n, float scale, int32_t zero_point,
                                   int8_t* out) {
  Avx2Consts c;
  set_quantize_consts(scale, zero_point, &c);
  const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    __m256i q[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) q[v] = avx2_quantize(_mm256_loadu_ps(y + j + 8 * v), c);
    const __m256i b =
        _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j), _mm256_permutevar8x32_epi32(b, perm));
  }
  for (; j < n; ++j) out[j] = quantize_int8(y[j], scale, zero_point);
}

TFQNN_AVX2 void add_residual_avx2(float* out, const float* post_bias, const float* residual,
                                  int rows, int channels) {
  add_residual_rows(out, post_bias, residual, rows, channels);
}

TFQNN_AVX2 void add_residual_int8_avx2(int8_t* out, const int8_t* residual, int64_t n,
                                       const Int8Add& p) {
  add_residual_int8_values(out, residual, n, p);
}

}  // namespace core
}  // namespace tfqnn

#endif  // defined(__x86_64__)
