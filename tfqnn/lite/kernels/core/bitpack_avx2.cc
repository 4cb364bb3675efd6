// Bitpacking and unpacking with AVX2 (bitpack_scalar.cc has the layout).
//
// The vector versions pack runs of whole words: a row's full words, or all
// rows at once when the channels are a multiple of 32 (rows x words is then
// one contiguous run of words, in the input and the output).
#include "internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstdint>

namespace tfqnn {
namespace core {
namespace {

// n words from 32 * n floats, bit where x < threshold.
TFQNN_AVX2 inline void pack_words_float_avx2(const float* x, int64_t n, float threshold,
                                             int32_t* out) {
  const __m256 t = _mm256_set1_ps(threshold);
  // The packs below leave the 4-byte groups in the order 0 2 4 6 1 3 5 7.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t w = 0; w < n; ++w) {
    const float* p = x + w * 32;
    const __m256i c0 = _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(p), t, _CMP_LT_OQ));
    const __m256i c1 = _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(p + 8), t, _CMP_LT_OQ));
    const __m256i c2 = _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(p + 16), t, _CMP_LT_OQ));
    const __m256i c3 = _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(p + 24), t, _CMP_LT_OQ));
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

TFQNN_AVX2 void bitpack_float_avx2(const float* in, int64_t rows, int channels, float threshold,
                                   int32_t* out) {
  const int words = packed_words(channels);
  const int full = channels / 32;
  if (full == words) {
    pack_words_float_avx2(in, rows * words, threshold, out);
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * channels;
    int32_t* o = out + r * words;
    pack_words_float_avx2(x, full, threshold, o);
    pack_row_float(x, channels, threshold, full, o);
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

}  // namespace core
}  // namespace tfqnn

#endif  // defined(__x86_64__)
