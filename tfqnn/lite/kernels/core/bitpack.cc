// Bitpacking and unpacking: channel c is bit c % 32 of word c / 32, bit 1
// where the value is negative (-1); padding bits 0.
#include <cstdint>
#include <cstring>

#include "core.h"
#include "internal.h"

#if defined(__x86_64__)
// GCC 12 warns about _mm512_undefined_*() inside its own intrinsics
// (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#endif

namespace tfqnn {
namespace core {
// One row, words [w0, words): the tails of the vector versions.
void pack_row_float(const float* x, int channels, int w0, int32_t* out) {
  const int words = packed_words(channels);
  for (int w = w0; w < words; ++w) {
    const int c0 = w * 32;
    const int n = channels - c0 < 32 ? channels - c0 : 32;
    uint32_t bits = 0;
    for (int i = 0; i < n; ++i) bits |= uint32_t{x[c0 + i] < 0.0f} << i;
    out[w] = static_cast<int32_t>(bits);
  }
}

void pack_row_int8(const int8_t* q, int channels, int32_t zero_point, int w0, int32_t* out) {
  const int words = packed_words(channels);
  for (int w = w0; w < words; ++w) {
    const int c0 = w * 32;
    const int n = channels - c0 < 32 ? channels - c0 : 32;
    uint32_t bits = 0;
    for (int i = 0; i < n; ++i) {
      bits |= uint32_t{static_cast<int32_t>(q[c0 + i]) < zero_point} << i;
    }
    out[w] = static_cast<int32_t>(bits);
  }
}

void unpack_row(const int32_t* in, int channels, int c0, float* out) {
  for (int c = c0; c < channels; ++c) {
    const uint32_t word = static_cast<uint32_t>(in[c / 32]);
    out[c] = (word >> (c % 32)) & 1u ? -1.0f : 1.0f;
  }
}

void bitpack_float_scalar(const float* in, int64_t rows, int channels, int32_t* out) {
  const int words = packed_words(channels);
  for (int64_t r = 0; r < rows; ++r) {
    pack_row_float(in + r * channels, channels, 0, out + r * words);
  }
}

void bitpack_int8_scalar(const int8_t* in, int64_t rows, int channels, int32_t zero_point,
                         int32_t* out) {
  const int words = packed_words(channels);
  for (int64_t r = 0; r < rows; ++r) {
    pack_row_int8(in + r * channels, channels, zero_point, 0, out + r * words);
  }
}

void unpack_float_scalar(const int32_t* in, int64_t rows, int channels, float* out) {
  const int words = packed_words(channels);
  for (int64_t r = 0; r < rows; ++r) {
    unpack_row(in + r * words, channels, 0, out + r * channels);
  }
}

#if defined(__x86_64__)

#define TFQNN_AVX2 __attribute__((target("avx2,popcnt")))
#define TFQNN_AVX512 __attribute__((target("avx512f,avx512vpopcntdq,avx512vl,avx512bw,avx512dq")))

// The vector versions pack runs of whole words: a row's full words, or all
// rows at once when the channels are a multiple of 32 (rows x words is then
// one contiguous run of words, in the input and the output).

namespace {

// n words from 32 * n floats.
TFQNN_AVX2 inline void pack_words_float_avx2(const float* x, int64_t n, int32_t* out) {
  const __m256 zero = _mm256_setzero_ps();
  // The packs below leave the 4-byte groups in the order 0 2 4 6 1 3 5 7.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t w = 0; w < n; ++w) {
    const float* p = x + w * 32;
    const __m256i c0 = _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(p), zero, _CMP_LT_OQ));
    const __m256i c1 = _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(p + 8), zero, _CMP_LT_OQ));
    const __m256i c2 =
        _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(p + 16), zero, _CMP_LT_OQ));
    const __m256i c3 =
        _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(p + 24), zero, _CMP_LT_OQ));
    // 0 / -1 per float -> 0 / -1 per byte (signed saturation keeps them).
    const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(c0, c1), _mm256_packs_epi32(c2, c3));
    out[w] = _mm256_movemask_epi8(_mm256_permutevar8x32_epi32(b, order));
  }
}

// n words from 32 * n int8 values.
TFQNN_AVX2 inline void pack_words_int8_avx2(const int8_t* q, int64_t n, __m256i zp, int32_t* out) {
  for (int64_t w = 0; w < n; ++w) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + w * 32));
    out[w] = _mm256_movemask_epi8(_mm256_cmpgt_epi8(zp, v));
  }
}

}  // namespace

TFQNN_AVX2 void bitpack_float_avx2(const float* in, int64_t rows, int channels, int32_t* out) {
  const int words = packed_words(channels);
  const int full = channels / 32;
  if (full == words) {
    pack_words_float_avx2(in, rows * words, out);
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * channels;
    int32_t* o = out + r * words;
    pack_words_float_avx2(x, full, o);
    pack_row_float(x, channels, full, o);
  }
}

TFQNN_AVX2 void bitpack_int8_avx2(const int8_t* in, int64_t rows, int channels, int32_t zero_point,
                                  int32_t* out) {
  if (zero_point < -128 || zero_point > 127) {
    // Out of the int8 range: q < zero_point always or never holds.
    bitpack_int8_scalar(in, rows, channels, zero_point, out);
    return;
  }
  const int words = packed_words(channels);
  const int full = channels / 32;
  const __m256i zp = _mm256_set1_epi8(static_cast<char>(zero_point));
  if (full == words) {
    pack_words_int8_avx2(in, rows * words, zp, out);
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* q = in + r * channels;
    int32_t* o = out + r * words;
    pack_words_int8_avx2(q, full, zp, o);
    pack_row_int8(q, channels, zero_point, full, o);
  }
}

TFQNN_AVX2 void unpack_float_avx2(const int32_t* in, int64_t rows, int channels, float* out) {
  const int words = packed_words(channels);
  const int full = channels / 32;
  // Lane i of `select` has only bit i set: (word & select) != 0 picks -1.
  const __m256i select = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256 plus = _mm256_set1_ps(1.0f), minus = _mm256_set1_ps(-1.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* p = in + r * words;
    float* y = out + r * channels;
    for (int w = 0; w < full; ++w) {
      const uint32_t word = static_cast<uint32_t>(p[w]);
      for (int i = 0; i < 4; ++i) {
        const __m256i b = _mm256_set1_epi32(static_cast<int32_t>(word >> (8 * i)));
        const __m256i set = _mm256_cmpeq_epi32(_mm256_and_si256(b, select), select);
        _mm256_storeu_ps(y + w * 32 + 8 * i,
                         _mm256_blendv_ps(plus, minus, _mm256_castsi256_ps(set)));
      }
    }
    unpack_row(p, channels, full * 32, y);
  }
}

namespace {

// Two words (out: 4-byte aligned only) from a 64-bit mask.
TFQNN_AVX512 inline void store_bits64(int32_t* out, __mmask64 m) {
  const uint64_t bits = _cvtmask64_u64(m);
  std::memcpy(out, &bits, sizeof(bits));
}

// n words from 32 * n floats: four compares into mask registers give two
// words, stored from the mask register.
TFQNN_AVX512 inline void pack_words_float_avx512(const float* x, int64_t n, int32_t* out) {
  const __m512 zero = _mm512_setzero_ps();
  int64_t w = 0;
  for (; w + 2 <= n; w += 2) {
    const float* p = x + w * 32;
    const __mmask16 m0 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p), zero, _CMP_LT_OQ);
    const __mmask16 m1 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p + 16), zero, _CMP_LT_OQ);
    const __mmask16 m2 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p + 32), zero, _CMP_LT_OQ);
    const __mmask16 m3 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p + 48), zero, _CMP_LT_OQ);
    store_bits64(out + w, _mm512_kunpackd(_mm512_kunpackw(m3, m2), _mm512_kunpackw(m1, m0)));
  }
  if (w < n) {
    const float* p = x + w * 32;
    const __mmask16 m0 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p), zero, _CMP_LT_OQ);
    const __mmask16 m1 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p + 16), zero, _CMP_LT_OQ);
    out[w] = static_cast<int32_t>(_cvtmask32_u32(_mm512_kunpackw(m1, m0)));
  }
}

// n words from 32 * n int8 values.
TFQNN_AVX512 inline void pack_words_int8_avx512(const int8_t* q, int64_t n, __m512i zp,
                                                int32_t* out) {
  int64_t w = 0;
  for (; w + 2 <= n; w += 2) {
    store_bits64(out + w, _mm512_cmplt_epi8_mask(_mm512_loadu_si512(q + w * 32), zp));
  }
  if (w < n) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + w * 32));
    out[w] =
        static_cast<int32_t>(_cvtmask32_u32(_mm256_cmplt_epi8_mask(v, _mm512_castsi512_si256(zp))));
  }
}

}  // namespace

TFQNN_AVX512 void bitpack_float_avx512(const float* in, int64_t rows, int channels, int32_t* out) {
  const int words = packed_words(channels);
  const int full = channels / 32;
  const int tail = channels - full * 32;
  if (tail == 0) {
    pack_words_float_avx512(in, rows * words, out);
    return;
  }
  const __m512 zero = _mm512_setzero_ps();
  const __mmask16 t0 = static_cast<__mmask16>(tail >= 16 ? 0xFFFF : (1u << tail) - 1u);
  const __mmask16 t1 = static_cast<__mmask16>(tail > 16 ? (1u << (tail - 16)) - 1u : 0u);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * channels;
    int32_t* o = out + r * words;
    pack_words_float_avx512(x, full, o);
    const float* p = x + full * 32;
    const __mmask16 lo =
        _mm512_mask_cmp_ps_mask(t0, _mm512_maskz_loadu_ps(t0, p), zero, _CMP_LT_OQ);
    const __mmask16 hi =
        _mm512_mask_cmp_ps_mask(t1, _mm512_maskz_loadu_ps(t1, p + 16), zero, _CMP_LT_OQ);
    o[full] = static_cast<int32_t>(static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16));
  }
}

TFQNN_AVX512 void bitpack_int8_avx512(const int8_t* in, int64_t rows, int channels,
                                      int32_t zero_point, int32_t* out) {
  if (zero_point < -128 || zero_point > 127) {
    bitpack_int8_scalar(in, rows, channels, zero_point, out);
    return;
  }
  const int words = packed_words(channels);
  const int full = channels / 32;
  const int tail = channels - full * 32;
  const __m512i zp = _mm512_set1_epi8(static_cast<char>(zero_point));
  if (tail == 0) {
    pack_words_int8_avx512(in, rows * words, zp, out);
    return;
  }
  const __m256i zp256 = _mm512_castsi512_si256(zp);
  const __mmask32 tmask = static_cast<__mmask32>((uint64_t{1} << tail) - 1u);
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* q = in + r * channels;
    int32_t* o = out + r * words;
    pack_words_int8_avx512(q, full, zp, o);
    const __m256i v = _mm256_maskz_loadu_epi8(tmask, q + full * 32);
    o[full] = static_cast<int32_t>(_mm256_mask_cmplt_epi8_mask(tmask, v, zp256));
  }
}

TFQNN_AVX512 void unpack_float_avx512(const int32_t* in, int64_t rows, int channels, float* out) {
  const int words = packed_words(channels);
  const int full = channels / 32;
  const int tail = channels - full * 32;
  const __m512 plus = _mm512_set1_ps(1.0f), minus = _mm512_set1_ps(-1.0f);
  const __mmask16 t0 = static_cast<__mmask16>(tail >= 16 ? 0xFFFF : (1u << tail) - 1u);
  const __mmask16 t1 = static_cast<__mmask16>(tail > 16 ? (1u << (tail - 16)) - 1u : 0u);
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* p = in + r * words;
    float* y = out + r * channels;
    for (int w = 0; w < full; ++w) {
      const uint32_t word = static_cast<uint32_t>(p[w]);
      _mm512_storeu_ps(y + w * 32,
                       _mm512_mask_blend_ps(static_cast<__mmask16>(word & 0xFFFF), plus, minus));
      _mm512_storeu_ps(y + w * 32 + 16,
                       _mm512_mask_blend_ps(static_cast<__mmask16>(word >> 16), plus, minus));
    }
    if (tail) {
      const uint32_t word = static_cast<uint32_t>(p[full]);
      float* q = y + full * 32;
      _mm512_mask_storeu_ps(
          q, t0, _mm512_mask_blend_ps(static_cast<__mmask16>(word & 0xFFFF), plus, minus));
      _mm512_mask_storeu_ps(q + 16, t1,
                            _mm512_mask_blend_ps(static_cast<__mmask16>(word >> 16), plus, minus));
    }
  }
}

#endif  // defined(__x86_64__)

// ---- public entry points -------------------------------------------------------

void bitpack_float(const float* in, int64_t rows, int channels, int32_t* out) {
  active_kernels().bitpack_float(in, rows, channels, out);
}

void bitpack_int8(const int8_t* in, int64_t rows, int channels, int32_t zero_point, int32_t* out) {
  active_kernels().bitpack_int8(in, rows, channels, zero_point, out);
}

void unpack_float(const int32_t* in, int64_t rows, int channels, float* out) {
  active_kernels().unpack_float(in, rows, channels, out);
}

}  // namespace core
}  // namespace tfqnn
