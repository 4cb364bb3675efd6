// Bitpacking and unpacking with AVX-512 (bitpack_scalar.cc has the layout):
// as the AVX2 versions, runs of whole words, with a masked load for the
// last, partial word of a row.
#include "internal.h"

#if defined(__x86_64__)
// GCC 12 warns about _mm512_undefined_*() inside its own intrinsics
// (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace tfqnn {
namespace core {
namespace {

// Two words (out: 4-byte aligned only) from a 64-bit mask.
TFQNN_AVX512 inline void store_bits64(int32_t* out, __mmask64 m) {
  const uint64_t bits = _cvtmask64_u64(m);
  std::memcpy(out, &bits, sizeof(bits));
}

// n words from 32 * n floats, bit where x < threshold: four compares into
// mask registers give two words, stored from the mask register.
TFQNN_AVX512 inline void pack_words_float_avx512(const float* x, int64_t n, float threshold,
                                                 int32_t* out) {
  const __m512 t = _mm512_set1_ps(threshold);
  int64_t w = 0;
  for (; w + 2 <= n; w += 2) {
    const float* p = x + w * 32;
    const __mmask16 m0 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p), t, _CMP_LT_OQ);
    const __mmask16 m1 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p + 16), t, _CMP_LT_OQ);
    const __mmask16 m2 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p + 32), t, _CMP_LT_OQ);
    const __mmask16 m3 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p + 48), t, _CMP_LT_OQ);
    store_bits64(out + w, _mm512_kunpackd(_mm512_kunpackw(m3, m2), _mm512_kunpackw(m1, m0)));
  }
  if (w < n) {
    const float* p = x + w * 32;
    const __mmask16 m0 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p), t, _CMP_LT_OQ);
    const __mmask16 m1 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p + 16), t, _CMP_LT_OQ);
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

TFQNN_AVX512 void bitpack_float_avx512(const float* in, int64_t rows, int channels, float threshold,
                                       int32_t* out) {
  const int words = packed_words(channels);
  const int full = channels / 32;
  const int tail = channels - full * 32;
  if (tail == 0) {
    pack_words_float_avx512(in, rows * words, threshold, out);
    return;
  }
  const __m512 t = _mm512_set1_ps(threshold);
  const __mmask16 t0 = static_cast<__mmask16>(tail >= 16 ? 0xFFFF : (1u << tail) - 1u);
  const __mmask16 t1 = static_cast<__mmask16>(tail > 16 ? (1u << (tail - 16)) - 1u : 0u);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * channels;
    int32_t* o = out + r * words;
    pack_words_float_avx512(x, full, threshold, o);
    const float* p = x + full * 32;
    const __mmask16 lo = _mm512_mask_cmp_ps_mask(t0, _mm512_maskz_loadu_ps(t0, p), t, _CMP_LT_OQ);
    const __mmask16 hi =
        _mm512_mask_cmp_ps_mask(t1, _mm512_maskz_loadu_ps(t1, p + 16), t, _CMP_LT_OQ);
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

}  // namespace core
}  // namespace tfqnn

#endif  // defined(__x86_64__)
