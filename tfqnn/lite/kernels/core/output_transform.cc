// The output transform of Bdense and Bconv2d (docs/lite_ops.md):
//   y = float32(dot) * multiplier[o] + bias[o]   (two roundings, no FMA)
//   y = min(max(y, clamp_min), clamp_max)
// written as float32, as int8 (clamp(round_half_away(y / scale) + zp)) or
// bitpacked (bit where y < 0). Every version performs the same IEEE float32
// operations in the same order, so all of them give the same bits (the
// library is compiled with -ffp-contract=off; the one FMA, in the AVX-512
// version, computes the integer dot k - 2n, exact below 2^24).
#include <cmath>
#include <cstdint>

#include "core.h"
#include "internal.h"

#if defined(__x86_64__)
// GCC 12 warns about _mm512_undefined_ps() inside its own intrinsics
// (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#endif

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

namespace {

// One row, columns [j0, ncols) of the block (relative to col0). When
// bitpacked, j0 is a multiple of 32.
void row_scalar(const int32_t* cnt, int j0, int col0, int ncols, int k, const OutputTransform& t,
                void* out_row) {
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
      for (int w0 = j0; w0 < ncols; w0 += 32) {
        const int n = ncols - w0 < 32 ? ncols - w0 : 32;
        uint32_t bits = 0;
        for (int i = 0; i < n; ++i) {
          const int j = w0 + i;
          const float y = affine_clamp(k - 2 * cnt[j], mult[j], bias[j], t.clamp_min, t.clamp_max);
          bits |= uint32_t{y < 0.0f} << i;
        }
        o[w0 / 32] = static_cast<int32_t>(bits);
      }
      break;
    }
  }
}

}  // namespace

void transform_scalar(const int32_t* counts, int64_t ld_counts, int rows, int col0, int ncols,
                      int k, const int32_t* row_k, const OutputTransform& t, void* out,
                      int out_columns) {
  const int64_t row_bytes = output_row_bytes(t.type, out_columns);
  for (int r = 0; r < rows; ++r) {
    row_scalar(counts + r * ld_counts, 0, col0, ncols, row_k ? row_k[r] : k, t,
               static_cast<char*>(out) + r * row_bytes);
  }
}

#if defined(__x86_64__)

#define TFQNN_AVX2 __attribute__((target("avx2,popcnt")))
#define TFQNN_AVX512 __attribute__((target("avx512f,avx512vpopcntdq,avx512vl,avx512bw,avx512dq")))

// The vector versions go through the columns in chunks of up to 4 vectors
// (32 columns on AVX2, 64 on AVX-512). When the block is one chunk wide
// (and for the last, narrower chunk), the chunk's multipliers and biases are
// held in registers for every row; blocks of several chunks go row by row
// (their rows may be 4 KiB apart, 1024 columns, all in the same L1 set).
// The clamps are left out when both are infinite (max(-inf, y) and
// min(inf, y) are y, NaN included).

// ---- AVX2: 8 columns per vector, the scalar code for the rest --------------

namespace {

struct Avx2Consts {
  __m256 lo, hi, scale, half, one, sign, rmin, rmax;
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

// Bytes of the output of `columns` columns (a multiple of 32 when bitpacked).
template <OutputType kType>
constexpr int64_t out_bytes(int64_t columns) {
  return kType == OutputType::kFloat  ? 4 * columns
         : kType == OutputType::kInt8 ? columns
                                      : columns / 8;
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
  const __m256 zero = _mm256_setzero_ps();
  const __m256i kk = _mm256_set1_epi32(k);
  const int32_t* cnt_row = counts + j0;
  char* o_row = out + out_bytes<kType>(int64_t{col0} + j0);
  for (int r = 0; r < rows; ++r, cnt_row += ld_counts, o_row += row_bytes) {
    const __m256i k2 = row_k ? _mm256_set1_epi32(row_k[r]) : kk;
    for (int ch = 0; ch < (kHoist ? 1 : chunks); ++ch) {
      const int jc = ch * 8 * NV;
      const int32_t* cnt = cnt_row + jc;
      char* o = o_row + out_bytes<kType>(jc);
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
          bits |= static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(y, zero, _CMP_LT_OQ)))
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
      row_scalar(counts + r * ld_counts, j, col0, ncols, row_k ? row_k[r] : k, t,
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

}  // namespace

TFQNN_AVX2 void transform_avx2(const int32_t* counts, int64_t ld_counts, int rows, int col0,
                               int ncols, int k, const int32_t* row_k, const OutputTransform& t,
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

// ---- AVX-512: 16 columns per vector, masked tails ---------------------------

namespace {

struct Avx512Consts {
  __m512 lo, hi, scale, half, one, sign, rmin, rmax;
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
  const __m512 zero = _mm512_setzero_ps();
  const __m512 kk = _mm512_set1_ps(static_cast<float>(k));
  const int32_t* cnt_row = counts + j0;
  char* o_row = out + out_bytes<kType>(int64_t{col0} + j0);
  for (int r = 0; r < rows; ++r, cnt_row += ld_counts, o_row += row_bytes) {
    const __m512 k2 = row_k ? _mm512_set1_ps(static_cast<float>(row_k[r])) : kk;
    for (int ch = 0; ch < (kHoist ? 1 : chunks); ++ch) {
      const int jc = ch * 16 * NV;
      const int32_t* cnt = cnt_row + jc;
      char* o = o_row + out_bytes<kType>(jc);
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
          const uint32_t l = _mm512_mask_cmp_ps_mask(mask[2 * w], y0, zero, _CMP_LT_OQ);
          const uint32_t h = _mm512_mask_cmp_ps_mask(mask[2 * w + 1], y1, zero, _CMP_LT_OQ);
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

}  // namespace

TFQNN_AVX512 void transform_avx512(const int32_t* counts, int64_t ld_counts, int rows, int col0,
                                   int ncols, int k, const int32_t* row_k, const OutputTransform& t,
                                   void* out, int out_columns) {
  if (k >= (1 << 24)) {  // the FMA of avx512_affine would not be exact
    transform_avx2(counts, ld_counts, rows, col0, ncols, k, row_k, t, out, out_columns);
    return;
  }
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

#endif  // defined(__x86_64__)

}  // namespace core
}  // namespace tfqnn
