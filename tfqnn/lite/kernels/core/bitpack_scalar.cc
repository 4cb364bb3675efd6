// Bitpacking and unpacking, portable: channel c is bit c % 32 of word c / 32,
// bit 1 where the value is negative (-1) or, float bitpacking with a
// threshold t (multi-basis inputs), where x < t; padding bits 0. The row functions
// these loops call (internal.h) are the tails of the vector versions too.
#include <cstdint>

#include "core.h"
#include "internal.h"

namespace tfqnn {
namespace core {

void bitpack_float_scalar(const float* in, int64_t rows, int channels, float threshold,
                          int32_t* out) {
  const int words = packed_words(channels);
  for (int64_t r = 0; r < rows; ++r) {
    pack_row_float(in + r * channels, channels, threshold, 0, out + r * words);
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

}  // namespace core
}  // namespace tfqnn
