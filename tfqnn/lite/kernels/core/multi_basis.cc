// Multi-basis layers (ABC-Net, network sketching; docs/lite_ops.md): the
// thresholded bitpacking of N input bases and the output transform that sums
// the N x M dot products of an output channel in one pass:
//   acc = sum over n, then m, of float32(dot_nm) * multiplier[n][m][o]
//   y = clamp(acc + bias[o])
// each product and each sum rounded to float32 (no FMA: the library is
// compiled with -ffp-contract=off), then written as float32, int8 or
// bitpacked (one output basis per threshold). Portable code; the loops over
// the channels of a row are plain enough for the compiler to vectorize.
#include <cstdint>
#include <vector>

#include "core.h"
#include "internal.h"

namespace tfqnn {
namespace core {
namespace {

// Words of row `out` of basis i: bit c where v(c) < threshold.
template <typename Value>
void pack_thresholds_row(const Value& value, int channels, const float* thresholds, int n,
                         int32_t* out) {
  const int words = packed_words(channels);
  for (int i = 0; i < n; ++i) {
    const float t = thresholds[i];
    int32_t* o = out + int64_t{i} * words;
    for (int w = 0; w < words; ++w) {
      const int c0 = w * 32;
      const int m = channels - c0 < 32 ? channels - c0 : 32;
      uint32_t bits = 0;
      for (int j = 0; j < m; ++j) bits |= uint32_t{value(c0 + j) < t} << j;
      o[w] = static_cast<int32_t>(bits);
    }
  }
}

}  // namespace

int64_t transform_row_bytes(const OutputTransform& t, int channels) {
  if (t.type == OutputType::kBitpacked && t.thresholds != nullptr) {
    return int64_t{4} * packed_words(channels) * t.num_thresholds;
  }
  return output_row_bytes(t.type, channels);
}

void bitpack_float_thresholds(const float* in, int64_t rows, int channels, const float* thresholds,
                              int n, int32_t* out) {
  const int64_t row_words = int64_t{n} * packed_words(channels);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * channels;
    pack_thresholds_row([x](int c) { return x[c]; }, channels, thresholds, n, out + r * row_words);
  }
}

void bitpack_int8_thresholds(const int8_t* in, int64_t rows, int channels, float scale,
                             int32_t zero_point, const float* thresholds, int n, int32_t* out) {
  const int64_t row_words = int64_t{n} * packed_words(channels);
  std::vector<float> x(static_cast<size_t>(channels));
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* q = in + r * channels;
    for (int c = 0; c < channels; ++c) {
      x[c] = static_cast<float>(static_cast<int32_t>(q[c]) - zero_point) * scale;
    }
    const float* v = x.data();
    pack_thresholds_row([v](int c) { return v[c]; }, channels, thresholds, n, out + r * row_words);
  }
}

void multi_basis_transform(const int32_t* counts, int64_t ld_counts, int64_t basis_stride, int rows,
                           int groups, int channels, int k, const int32_t* row_k,
                           const OutputTransform& t, void* out) {
  const int nb = t.input_bases, mb = t.weight_bases;
  const int og = channels / groups;
  const int64_t row_bytes = transform_row_bytes(t, channels);
  std::vector<float> acc(static_cast<size_t>(channels));
  float* y = acc.data();
  for (int r = 0; r < rows; ++r) {
    const int kr = row_k ? row_k[r] : k;
    for (int g = 0; g < groups; ++g) {
      float* yg = y + int64_t{g} * og;
      for (int n = 0; n < nb; ++n) {
        for (int m = 0; m < mb; ++m) {
          const int32_t* c = counts + n * basis_stride + r * ld_counts + int64_t{g * mb + m} * og;
          const float* mult = t.multiplier + int64_t{n * mb + m} * channels + int64_t{g} * og;
          if (n == 0 && m == 0) {
            for (int j = 0; j < og; ++j) yg[j] = static_cast<float>(kr - 2 * c[j]) * mult[j];
          } else {
            for (int j = 0; j < og; ++j) {
              const float p = static_cast<float>(kr - 2 * c[j]) * mult[j];
              yg[j] = yg[j] + p;
            }
          }
        }
      }
    }
    const float lo = t.clamp_min, hi = t.clamp_max;
    for (int o = 0; o < channels; ++o) {
      float v = y[o] + t.bias[o];
      v = lo > v ? lo : v;
      v = hi < v ? hi : v;
      y[o] = v;
    }
    char* out_row = static_cast<char*>(out) + r * row_bytes;
    switch (t.type) {
      case OutputType::kFloat: {
        float* o = reinterpret_cast<float*>(out_row);
        for (int j = 0; j < channels; ++j) o[j] = y[j];
        break;
      }
      case OutputType::kInt8: {
        int8_t* o = reinterpret_cast<int8_t*>(out_row);
        for (int j = 0; j < channels; ++j) {
          o[j] = quantize_int8(y[j], t.int8_scale, t.int8_zero_point);
        }
        break;
      }
      case OutputType::kBitpacked: {
        static const float kZero = 0.0f;
        const float* thresholds = t.thresholds ? t.thresholds : &kZero;
        const int n = t.thresholds ? t.num_thresholds : 1;
        pack_thresholds_row([y](int c) { return y[c]; }, channels, thresholds, n,
                            reinterpret_cast<int32_t*>(out_row));
        break;
      }
    }
  }
}

}  // namespace core
}  // namespace tfqnn
