// NEON binary GEMM microkernel (aarch64, where NEON is part of the base ISA).
// Each byte of x XOR w is counted with VCNT (vcntq_u8), and the byte
// counts of up to kFlush = 31 words are summed in 8-bit lanes (31 * 8 < 256)
// before two pairwise widening adds (UADDLP, UADALP) turn them into the
// 32-bit counts of the output lanes. A tile is kMr rows x 16 columns (half a
// panel): 4 x kMr byte accumulators, 4 panel registers and temporaries fit
// in the 32 vector registers; beyond kFlush words the 32-bit totals live in
// memory, touched once per kFlush words.
#include "internal.h"

#if TFQNN_NEON
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

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

}  // namespace

void gemm_panel_neon(const int32_t* a, int64_t lda, int rows, const int32_t* panel, int kw,
                     int32_t* counts, int64_t ldc, int ncols) {
  half_panel(a, lda, rows, panel, kw, counts, ldc, ncols < 16 ? ncols : 16);
  if (ncols > 16) {
    half_panel(a, lda, rows, panel + 16, kw, counts + 16, ldc, ncols - 16);
  }
}

}  // namespace core
}  // namespace tfqnn

#endif  // TFQNN_NEON
