// AVX2 binary GEMM microkernel. AVX2 has no vector popcount: each byte of
// x XOR w is counted with two VPSHUFB lookups of a nibble table, and the
// byte counts are summed in 8-bit lanes for up to 31 words (31 * 8 < 256)
// before VPMADDUBSW/VPMADDWD widen them into the 32-bit counts. A tile is
// kMr rows x 16 columns (half a panel; 2 x kMr byte accumulators), which
// leaves room for the table, the nibble mask and temporaries in the 16 YMM
// registers.
#include <cstdint>

#include "gemm.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define TFQNN_AVX2 __attribute__((target("avx2,popcnt")))

namespace tfqnn {
namespace core {
namespace {

constexpr int kMr = 3;
constexpr int kFlush = 31;  // words summed in 8-bit lanes before widening

// acc += v (bytes), in place: inline assembly because GCC 12 otherwise adds
// into a temporary and copies it back (or spills) for every accumulator.
TFQNN_AVX2 __attribute__((always_inline)) inline void accumulate(__m256i& acc,
                                                                 __m256i v) {
  asm("vpaddb %1, %0, %0" : "+x"(acc) : "x"(v));
}

template <int MR>
TFQNN_AVX2 __attribute__((always_inline)) inline void tile(
    const int32_t* a, int64_t lda, const int32_t* half_panel, int kw,
    int32_t* counts, int64_t ldc, int ncols) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2,
                                       3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2,
                                       2, 3, 2, 3, 3, 4);
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  const __m256i ones8 = _mm256_set1_epi8(1);
  const __m256i ones16 = _mm256_set1_epi16(1);
  __m256i total0[MR], total1[MR];
  const int32_t* row[MR];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m) {
    total0[m] = _mm256_setzero_si256();
    total1[m] = _mm256_setzero_si256();
    row[m] = a + m * lda;
  }
  for (int k0 = 0; k0 < kw; k0 += kFlush) {
    const int k1 = kw - k0 < kFlush ? kw : k0 + kFlush;
    __m256i acc0[MR], acc1[MR];
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      acc0[m] = _mm256_setzero_si256();
      acc1[m] = _mm256_setzero_si256();
    }
    for (int k = k0; k < k1; ++k) {
      const __m256i w0 = _mm256_loadu_si256(
          reinterpret_cast<const __m256i*>(half_panel + k * kPanel));
      const __m256i w1 = _mm256_loadu_si256(
          reinterpret_cast<const __m256i*>(half_panel + k * kPanel + 8));
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        const __m256i x = _mm256_set1_epi32(row[m][k]);
        const __m256i t0 = _mm256_xor_si256(x, w0);
        const __m256i t1 = _mm256_xor_si256(x, w1);
        const __m256i c0 = _mm256_add_epi8(
            _mm256_shuffle_epi8(lut, _mm256_and_si256(t0, nibble)),
            _mm256_shuffle_epi8(
                lut, _mm256_and_si256(_mm256_srli_epi16(t0, 4), nibble)));
        const __m256i c1 = _mm256_add_epi8(
            _mm256_shuffle_epi8(lut, _mm256_and_si256(t1, nibble)),
            _mm256_shuffle_epi8(
                lut, _mm256_and_si256(_mm256_srli_epi16(t1, 4), nibble)));
        accumulate(acc0[m], c0);
        accumulate(acc1[m], c1);
      }
    }
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      total0[m] = _mm256_add_epi32(
          total0[m],
          _mm256_madd_epi16(_mm256_maddubs_epi16(acc0[m], ones8), ones16));
      total1[m] = _mm256_add_epi32(
          total1[m],
          _mm256_madd_epi16(_mm256_maddubs_epi16(acc1[m], ones8), ones16));
    }
  }
  if (ncols >= 16) {
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(counts + m * ldc),
                          total0[m]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(counts + m * ldc + 8),
                          total1[m]);
    }
  } else {
    alignas(32) int32_t buf[16];
    for (int m = 0; m < MR; ++m) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(buf), total0[m]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(buf + 8), total1[m]);
      for (int j = 0; j < ncols; ++j) counts[m * ldc + j] = buf[j];
    }
  }
}

TFQNN_AVX2 void half_panel(const int32_t* a, int64_t lda, int rows,
                           const int32_t* half, int kw, int32_t* counts,
                           int64_t ldc, int ncols) {
  int m = 0;
  for (; m + kMr <= rows; m += kMr) {
    tile<kMr>(a + m * lda, lda, half, kw, counts + m * ldc, ldc, ncols);
  }
  const int64_t ra = m * lda, rc = m * ldc;
  switch (rows - m) {
    case 2: tile<2>(a + ra, lda, half, kw, counts + rc, ldc, ncols); break;
    case 1: tile<1>(a + ra, lda, half, kw, counts + rc, ldc, ncols); break;
    default: break;
  }
}

}  // namespace

TFQNN_AVX2 void gemm_panel_avx2(const int32_t* a, int64_t lda, int rows,
                                const int32_t* panel, int kw, int32_t* counts,
                                int64_t ldc, int ncols) {
  half_panel(a, lda, rows, panel, kw, counts, ldc, ncols < 16 ? ncols : 16);
  if (ncols > 16) {
    half_panel(a, lda, rows, panel + 16, kw, counts + 16, ldc, ncols - 16);
  }
}

}  // namespace core
}  // namespace tfqnn

#endif  // defined(__x86_64__)
