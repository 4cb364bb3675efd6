// AVX2 binary GEMM microkernel. AVX2 has no vector popcount; bits are
// counted with VPSHUFB lookups of 4-bit tables, with the XOR folded into the
// table:
//
//   popcount(x ^ w) = sum over the 8 nibbles n of T_{x_n}[w_n],
//   T_v[i] = popcount(v ^ i),
//
// so a table is chosen by a nibble of the broadcast word of A and indexed by
// the nibbles of the weights. The panel is first re-laid-out (per call, in
// a buffer on the stack): for word k, half h (16 output channels) and byte b,
// one register holds the low nibbles of byte b of the 16 channels in its low
// 128-bit lane and their high nibbles in its high lane. The table register
// for byte value v of A (low lane T_{v & 15}, high lane T_{v >> 4}) is one
// aligned load from a 256-entry table. A word of A against 32 channels is
// then 8 VPSHUFB + 8 VPADDB, no XOR, no nibble masking (the classic nibble
// popcount of x ^ w needs 32 vector instructions for the same work).
//
// The byte sums (at most 16 per word in a lane) are kept for up to 15 words,
// then added into 16-bit totals, which are widened into the 32-bit counts
// at the end of a chunk of the panel (at most kChunk words). A tile is kMr
// rows x 32 columns: 2 x kMr byte accumulators, 2 weight registers and a
// table register; the table offsets of the tile's words of A are computed
// beforehand, 4 words per instruction, so that the loop over the words is
// loads, VPSHUFB and VPADDB only (about 80% of the VPSHUFB/VPADDB
// throughput on Zen 5).
//
// Few rows (batch-1 dense) do not pay for re-laying out the panel: they use
// the classic kernel, which broadcasts a word of A, XORs it with the
// weights and counts each byte with two lookups of a nibble table.
#include <cstdint>

#include "gemm.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace tfqnn {
namespace core {
namespace {

// ---- tables -----------------------------------------------------------------

struct alignas(64) ByteTables {
  // entry[v][i] = popcount((v & 15) ^ i), entry[v][16 + i] = popcount((v >> 4) ^ i)
  uint8_t entry[256][32];
};

constexpr int popcount4(int v) {
  return (v & 1) + ((v >> 1) & 1) + ((v >> 2) & 1) + ((v >> 3) & 1);
}

constexpr ByteTables make_tables() {
  ByteTables t{};
  for (int v = 0; v < 256; ++v) {
    for (int i = 0; i < 16; ++i) {
      t.entry[v][i] = static_cast<uint8_t>(popcount4((v & 15) ^ i));
      t.entry[v][16 + i] = static_cast<uint8_t>(popcount4((v >> 4) ^ i));
    }
  }
  return t;
}

constexpr ByteTables kTables = make_tables();

// ---- lookup kernel ------------------------------------------------------------

constexpr int kMr = 5;         // rows per tile
constexpr int kFlush = 15;     // words summed in 8-bit lanes (15 * 16 < 256)
constexpr int kChunk = 96;     // most words of the panel re-laid-out at a time (24 KiB)
constexpr int kSmallRows = 4;  // fewer rows: the classic kernel

// acc += v (bytes), in place: inline assembly because GCC 12 otherwise adds
// into a temporary and copies it back (or spills) for every accumulator.
TFQNN_AVX2 __attribute__((always_inline)) inline void accumulate(__m256i& acc, __m256i v) {
  asm("vpaddb %1, %0, %0" : "+x"(acc) : "x"(v));
}

// Words [k0, k1) of `halves` halves of the panel into the lookup layout:
// out[((k - k0) * 4 + b) * 2 + h] (see the top of the file).
TFQNN_AVX2 void split_panel(const int32_t* panel, int k0, int k1, int halves, __m256i* out) {
  // In each lane: the bytes of 4 words grouped by byte position.
  const __m256i by_byte = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0,
                                           4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const __m256i interleave = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  for (int k = k0; k < k1; ++k) {
    __m256i* o = out + (k - k0) * 8;
    for (int h = 0; h < halves; ++h) {
      const int32_t* w = panel + k * kPanel + h * 16;
      // Quadword q of p0 (p1): byte q of channels 0-7 (8-15) of the half.
      const __m256i p0 = _mm256_permutevar8x32_epi32(
          _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)), by_byte),
          interleave);
      const __m256i p1 = _mm256_permutevar8x32_epi32(
          _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 8)), by_byte),
          interleave);
      const __m256i b02 = _mm256_unpacklo_epi64(p0, p1);  // bytes 0 | bytes 2
      const __m256i b13 = _mm256_unpackhi_epi64(p0, p1);  // bytes 1 | bytes 3
      const __m256i lo02 = _mm256_and_si256(b02, nibble);
      const __m256i hi02 = _mm256_and_si256(_mm256_srli_epi16(b02, 4), nibble);
      const __m256i lo13 = _mm256_and_si256(b13, nibble);
      const __m256i hi13 = _mm256_and_si256(_mm256_srli_epi16(b13, 4), nibble);
      o[0 * 2 + h] = _mm256_permute2x128_si256(lo02, hi02, 0x20);
      o[2 * 2 + h] = _mm256_permute2x128_si256(lo02, hi02, 0x31);
      o[1 * 2 + h] = _mm256_permute2x128_si256(lo13, hi13, 0x20);
      o[3 * 2 + h] = _mm256_permute2x128_si256(lo13, hi13, 0x31);
    }
  }
}

// Table offsets (byte value * 32) of the bytes of words [k0, k1) of rows
// [0, mr) of A: offs[m * kChunk * 4 + (k - k0) * 4 + b].
TFQNN_AVX2 __attribute__((always_inline)) inline void table_offsets(const int32_t* a, int64_t lda,
                                                                    int mr, int k0, int k1,
                                                                    uint16_t* offs) {
  for (int m = 0; m < mr; ++m) {
    const int32_t* row = a + m * lda;
    uint16_t* o = offs + m * kChunk * 4;
    int k = k0;
    for (; k + 4 <= k1; k += 4) {
      const __m256i v =
          _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + (k - k0) * 4), _mm256_slli_epi16(v, 5));
    }
    if (k < k1) {
      // The last 1-3 words: a masked load (no access beyond the row); the
      // store writes 4 words' offsets, the rest into the next row's place
      // (written after) or the slack at the end of `offs`.
      const __m128i mask = _mm_cmpgt_epi32(_mm_set1_epi32(k1 - k), _mm_setr_epi32(0, 1, 2, 3));
      const __m256i v = _mm256_cvtepu8_epi16(_mm_maskload_epi32(row + k, mask));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + (k - k0) * 4), _mm256_slli_epi16(v, 5));
    }
  }
}

// totals[0..16) = (first) or += the byte sums of acc (low lane + high lane
// per channel).
TFQNN_AVX2 __attribute__((always_inline)) inline void widen_add(__m256i acc, uint16_t* totals,
                                                                bool first) {
  const __m256i s = _mm256_add_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(acc)),
                                     _mm256_cvtepu8_epi16(_mm256_extracti128_si256(acc, 1)));
  __m256i* t = reinterpret_cast<__m256i*>(totals);
  _mm256_store_si256(t, first ? s : _mm256_add_epi16(_mm256_load_si256(t), s));
}

// Rows [0, MR) (table offsets `offs`) against `kc` words of the split panel
// `ws`, added into totals[m][32] (16-bit: kc * 32 < 65536).
template <int MR, int H>
TFQNN_AVX2 __attribute__((always_inline)) inline void lookup_tile(const uint16_t* offs,
                                                                  const __m256i* ws, int kc,
                                                                  uint16_t (*totals)[kPanel]) {
  const char* tables = reinterpret_cast<const char*>(&kTables.entry[0][0]);
  for (int f0 = 0; f0 < kc; f0 += kFlush) {
    const int f1 = kc - f0 < kFlush ? kc : f0 + kFlush;
    __m256i acc[MR][H];
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
#pragma GCC unroll 2
      for (int h = 0; h < H; ++h) acc[m][h] = _mm256_setzero_si256();
    }
    const uint16_t* ok = offs + f0 * 4;
    const __m256i* wk = ws + f0 * 8;
    for (int k = f0; k < f1; ++k, ok += 4, wk += 8) {
#pragma GCC unroll 4
      for (int b = 0; b < 4; ++b) {
        __m256i w[H];
#pragma GCC unroll 2
        for (int h = 0; h < H; ++h) w[h] = _mm256_load_si256(wk + b * 2 + h);
#pragma GCC unroll 8
        for (int m = 0; m < MR; ++m) {
          const __m256i t =
              _mm256_load_si256(reinterpret_cast<const __m256i*>(tables + ok[m * kChunk * 4 + b]));
#pragma GCC unroll 2
          for (int h = 0; h < H; ++h) accumulate(acc[m][h], _mm256_shuffle_epi8(t, w[h]));
        }
      }
    }
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
#pragma GCC unroll 2
      for (int h = 0; h < H; ++h) widen_add(acc[m][h], totals[m] + 16 * h, f0 == 0);
    }
  }
}

// lookup_tile<mr, H> for 1 <= mr <= MR.
template <int MR, int H>
TFQNN_AVX2 __attribute__((always_inline)) inline void lookup_any(int mr, const uint16_t* offs,
                                                                 const __m256i* ws, int kc,
                                                                 uint16_t (*totals)[kPanel]) {
  if constexpr (MR >= 1) {
    if (mr == MR) {
      lookup_tile<MR, H>(offs, ws, kc, totals);
    } else {
      lookup_any<MR - 1, H>(mr, offs, ws, kc, totals);
    }
  }
}

// Rows [0, rows) against words [k0, k1) of the panel (split into `ws`):
// the counts are stored (first) or added.
template <int H>
TFQNN_AVX2 __attribute__((noinline)) void lookup_rows(const int32_t* a, int64_t lda, int rows,
                                                      const __m256i* ws, int k0, int k1, bool first,
                                                      int32_t* counts, int64_t ldc, int ncols) {
  alignas(32) uint16_t totals[kMr][kPanel];
  alignas(32) uint16_t offs[kMr * kChunk * 4 + 16];
  // Tiles of as even a height as can be (16 rows: 4 x 4, not 5 + 5 + 5 + 1).
  const int tiles = (rows + kMr - 1) / kMr;
  for (int tile = 0, m0 = 0; tile < tiles; ++tile) {
    const int mr = rows / tiles + (tile < rows % tiles ? 1 : 0);
    table_offsets(a + m0 * lda, lda, mr, k0, k1, offs);
    lookup_any<kMr, H>(mr, offs, ws, k1 - k0, totals);
    for (int m = 0; m < mr; ++m) {
      int32_t* c = counts + (m0 + m) * ldc;
      if (ncols == kPanel) {
        for (int j = 0; j < kPanel; j += 8) {
          __m256i v = _mm256_cvtepu16_epi32(
              _mm_load_si128(reinterpret_cast<const __m128i*>(totals[m] + j)));
          __m256i* cj = reinterpret_cast<__m256i*>(c + j);
          if (!first) v = _mm256_add_epi32(v, _mm256_loadu_si256(cj));
          _mm256_storeu_si256(cj, v);
        }
      } else {
        for (int j = 0; j < ncols; ++j) c[j] = first ? totals[m][j] : c[j] + totals[m][j];
      }
    }
    m0 += mr;
  }
}

TFQNN_AVX2 void lookup_panel(const int32_t* a, int64_t lda, int rows, const int32_t* panel, int kw,
                             int32_t* counts, int64_t ldc, int ncols) {
  alignas(64) __m256i ws[kChunk * 8];
  const int halves = ncols > 16 ? 2 : 1;
  // Chunks of even length (kw = 120: 60 + 60, not 96 + 24).
  const int chunks = (kw + kChunk - 1) / kChunk;
  const int chunk = (kw + chunks - 1) / chunks;
  for (int k0 = 0; k0 < kw; k0 += chunk) {
    const int k1 = kw - k0 < chunk ? kw : k0 + chunk;
    split_panel(panel, k0, k1, halves, ws);
    if (halves == 2) {
      lookup_rows<2>(a, lda, rows, ws, k0, k1, k0 == 0, counts, ldc, ncols);
    } else {
      lookup_rows<1>(a, lda, rows, ws, k0, k1, k0 == 0, counts, ldc, ncols);
    }
  }
}

// ---- classic kernel (few rows) -------------------------------------------------

constexpr int kClassicFlush = 31;  // 31 * 8 < 256

template <int MR>
TFQNN_AVX2 __attribute__((always_inline)) inline void classic_tile(const int32_t* a, int64_t lda,
                                                                   const int32_t* half_panel,
                                                                   int kw, int32_t* counts,
                                                                   int64_t ldc, int ncols) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2,
                                       1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
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
  for (int k0 = 0; k0 < kw; k0 += kClassicFlush) {
    const int k1 = kw - k0 < kClassicFlush ? kw : k0 + kClassicFlush;
    __m256i acc0[MR], acc1[MR];
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      acc0[m] = _mm256_setzero_si256();
      acc1[m] = _mm256_setzero_si256();
    }
    for (int k = k0; k < k1; ++k) {
      const __m256i w0 =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(half_panel + k * kPanel));
      const __m256i w1 =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(half_panel + k * kPanel + 8));
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        const __m256i x = _mm256_set1_epi32(row[m][k]);
        const __m256i t0 = _mm256_xor_si256(x, w0);
        const __m256i t1 = _mm256_xor_si256(x, w1);
        const __m256i c0 = _mm256_add_epi8(
            _mm256_shuffle_epi8(lut, _mm256_and_si256(t0, nibble)),
            _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(t0, 4), nibble)));
        const __m256i c1 = _mm256_add_epi8(
            _mm256_shuffle_epi8(lut, _mm256_and_si256(t1, nibble)),
            _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(t1, 4), nibble)));
        accumulate(acc0[m], c0);
        accumulate(acc1[m], c1);
      }
    }
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      total0[m] = _mm256_add_epi32(total0[m],
                                   _mm256_madd_epi16(_mm256_maddubs_epi16(acc0[m], ones8), ones16));
      total1[m] = _mm256_add_epi32(total1[m],
                                   _mm256_madd_epi16(_mm256_maddubs_epi16(acc1[m], ones8), ones16));
    }
  }
  if (ncols >= 16) {
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(counts + m * ldc), total0[m]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(counts + m * ldc + 8), total1[m]);
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

TFQNN_AVX2 void classic_half_panel(const int32_t* a, int64_t lda, int rows, const int32_t* half,
                                   int kw, int32_t* counts, int64_t ldc, int ncols) {
  int m = 0;
  for (; m + 3 <= rows; m += 3) {
    classic_tile<3>(a + m * lda, lda, half, kw, counts + m * ldc, ldc, ncols);
  }
  const int64_t ra = m * lda, rc = m * ldc;
  switch (rows - m) {
    case 2: classic_tile<2>(a + ra, lda, half, kw, counts + rc, ldc, ncols); break;
    case 1: classic_tile<1>(a + ra, lda, half, kw, counts + rc, ldc, ncols); break;
    default: break;
  }
}

}  // namespace

TFQNN_AVX2 void gemm_panel_avx2(const int32_t* a, int64_t lda, int rows, const int32_t* panel,
                                int kw, int32_t* counts, int64_t ldc, int ncols) {
  if (rows >= kSmallRows) {
    lookup_panel(a, lda, rows, panel, kw, counts, ldc, ncols);
    return;
  }
  classic_half_panel(a, lda, rows, panel, kw, counts, ldc, ncols < 16 ? ncols : 16);
  if (ncols > 16) {
    classic_half_panel(a, lda, rows, panel + 16, kw, counts + 16, ldc, ncols - 16);
  }
}

}  // namespace core
}  // namespace tfqnn

#endif  // defined(__x86_64__)
