// AVX-512 binary GEMM microkernel: VPXORD with a broadcast word of A,
// VPOPCNTD (AVX512_VPOPCNTDQ) on 16 output channels per register, 32-bit
// accumulators. A tile is kMr rows x 32 columns (2 x kMr accumulators).
#include <cstdint>

#include "gemm.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace tfqnn {
namespace core {
namespace {

constexpr int kMr = 8;

// acc += v, in place: written as inline assembly because GCC 12, given
// _mm512_add_epi32, adds into a temporary and copies it back for every
// accumulator of the unrolled tile (16 extra moves and a spill per word).
TFQNN_AVX512 __attribute__((always_inline)) inline void accumulate(__m512i& acc, __m512i v) {
  asm("vpaddd %1, %0, %0" : "+v"(acc) : "v"(v));
}

template <int MR>
TFQNN_AVX512 __attribute__((always_inline)) inline void tile(const int32_t* a, int64_t lda,
                                                             const int32_t* panel, int kw,
                                                             int32_t* counts, int64_t ldc,
                                                             __mmask16 mask0, __mmask16 mask1) {
  __m512i acc0[MR], acc1[MR];
  const int32_t* row[MR];
#pragma GCC unroll 16
  for (int m = 0; m < MR; ++m) {
    acc0[m] = _mm512_setzero_si512();
    acc1[m] = _mm512_setzero_si512();
    row[m] = a + m * lda;
  }
  for (int k = 0; k < kw; ++k) {
    const __m512i w0 = _mm512_loadu_si512(panel + k * kPanel);
    const __m512i w1 = _mm512_loadu_si512(panel + k * kPanel + 16);
#pragma GCC unroll 16
    for (int m = 0; m < MR; ++m) {
      const __m512i x = _mm512_set1_epi32(row[m][k]);
      accumulate(acc0[m], _mm512_popcnt_epi32(_mm512_xor_si512(w0, x)));
      accumulate(acc1[m], _mm512_popcnt_epi32(_mm512_xor_si512(w1, x)));
    }
  }
#pragma GCC unroll 16
  for (int m = 0; m < MR; ++m) {
    _mm512_mask_storeu_epi32(counts + m * ldc, mask0, acc0[m]);
    _mm512_mask_storeu_epi32(counts + m * ldc + 16, mask1, acc1[m]);
  }
}

}  // namespace

TFQNN_AVX512 void gemm_panel_avx512(const int32_t* a, int64_t lda, int rows, const int32_t* panel,
                                    int kw, int32_t* counts, int64_t ldc, int ncols) {
  const uint32_t bits = ncols >= 32 ? 0xFFFFFFFFu : ((uint32_t{1} << ncols) - 1u);
  const __mmask16 mask0 = static_cast<__mmask16>(bits & 0xFFFFu);
  const __mmask16 mask1 = static_cast<__mmask16>(bits >> 16);
  int m = 0;
  for (; m + kMr <= rows; m += kMr) {
    tile<kMr>(a + m * lda, lda, panel, kw, counts + m * ldc, ldc, mask0, mask1);
  }
  const int64_t ra = m * lda, rc = m * ldc;
  switch (rows - m) {
    case 7: tile<7>(a + ra, lda, panel, kw, counts + rc, ldc, mask0, mask1); break;
    case 6: tile<6>(a + ra, lda, panel, kw, counts + rc, ldc, mask0, mask1); break;
    case 5: tile<5>(a + ra, lda, panel, kw, counts + rc, ldc, mask0, mask1); break;
    case 4: tile<4>(a + ra, lda, panel, kw, counts + rc, ldc, mask0, mask1); break;
    case 3: tile<3>(a + ra, lda, panel, kw, counts + rc, ldc, mask0, mask1); break;
    case 2: tile<2>(a + ra, lda, panel, kw, counts + rc, ldc, mask0, mask1); break;
    case 1: tile<1>(a + ra, lda, panel, kw, counts + rc, ldc, mask0, mask1); break;
    default: break;
  }
}

}  // namespace core
}  // namespace tfqnn

#endif  // defined(__x86_64__)
