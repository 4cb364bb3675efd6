// Multi-basis layers (ABC-Net, network sketching; docs/lite_ops.md): the
// thresholded bitpacking of N input bases and the output transform that sums
// the N x M dot products of an output channel in one pass:
//   acc = sum over n, then m, of float32(dot_nm) * multiplier[n][m][o]
//   y = clamp(acc + bias[o])
// each product and each sum rounded to float32 (no FMA: the library is
// compiled with -ffp-contract=off), then written as float32, int8 or
// bitpacked (one output basis per threshold). Portable code around the
// ISA's kernels (kernel table): the single-term transform, the terms, the
// bias and clamps, the int8 output and the bitpacking.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core.h"
#include "internal.h"

namespace tfqnn {
namespace core {
namespace {

// Bitpacks the bases of `rows` rows of `channels` values for n thresholds in
// `encoding` (core.h): row r of `out` holds threshold_bases(n, encoding)
// bases of packed_words(channels) words. pass(r0, count, j, packed) packs
// rows [r0, r0 + count) for threshold j (bit where x < t_j, one call of the
// ISA's bitpacking) into `packed`, over chunks of rows that stay in L1;
// thermometer bases are copied into the output rows, binary digit i is the
// XOR of the passes j = m 2^i (1-based): bit i of the level L is the parity
// of #{m : L >= m 2^i}, and with the thresholds sorted "L >= j" is "x passes
// t_j", so the parity of the passed is the parity of the failed ones (2^(k-i)
// - 1 of them, an odd count) with the bit flipped twice.
template <typename Pass>
void pack_passes(int64_t rows, int channels, int n, Encoding encoding, int32_t* out,
                 const Pass& pass) {
  if (n == 1) {
    pass(0, rows, 0, out);
    return;
  }
  const int words = packed_words(channels);
  const int bases = threshold_bases(n, encoding);
  const bool binary = encoding == Encoding::kBinary;
  const int64_t chunk = std::max<int64_t>(1, 4096 / channels);
  thread_local std::vector<int32_t> packed;
  if (packed.size() < static_cast<size_t>(chunk * words)) packed.resize(chunk * words);
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t count = std::min(chunk, rows - r0);
    int32_t* rows_out = out + r0 * bases * words;
    if (binary) std::memset(rows_out, 0, sizeof(int32_t) * count * bases * words);
    for (int j = 0; j < n; ++j) {
      pass(r0, count, j, packed.data());
      if (!binary) {
        for (int64_t r = 0; r < count; ++r) {
          std::memcpy(rows_out + (r * bases + j) * words, packed.data() + r * words,
                      sizeof(int32_t) * words);
        }
        continue;
      }
      // Threshold j + 1 (1-based) enters digit i for every 2^i dividing it.
      for (int i = 0; i < bases && ((j + 1) & ((1 << i) - 1)) == 0; ++i) {
        for (int64_t r = 0; r < count; ++r) {
          int32_t* o = rows_out + (r * bases + i) * words;
          const int32_t* p = packed.data() + r * words;
          for (int w = 0; w < words; ++w) o[w] ^= p[w];
        }
      }
    }
  }
}

// Float rows: the ISA's float bitpacking per threshold.
void pack_below(const float* x, int64_t rows, int channels, const float* thresholds, int n,
                int32_t* out, Encoding encoding = Encoding::kThermometer) {
  const BitpackFloatFn bitpack = active_kernels().bitpack_float;
  pack_passes(rows, channels, n, encoding, out,
              [=](int64_t r0, int64_t count, int j, int32_t* packed) {
                bitpack(x + r0 * channels, count, channels, thresholds[j], packed);
              });
}

// `rows` bitpacked rows of `channels` bits, all 0 or all 1 (padding bits 0).
void fill_bits(int64_t rows, int channels, bool ones, int32_t* out) {
  const int words = packed_words(channels);
  if (words == 0) return;
  const int tail = channels % 32;
  const int32_t last = !ones ? 0 : tail == 0 ? -1 : static_cast<int32_t>((1u << tail) - 1u);
  for (int64_t r = 0; r < rows; ++r) {
    int32_t* o = out + r * words;
    std::fill(o, o + words - 1, ones ? -1 : 0);
    o[words - 1] = last;
  }
}

// The int8 thresholds of bitpack_int8_thresholds: q_j such that, for every
// int8 q, float(q - zero_point) * scale < t_j exactly when q < q_j (q_j in
// [-128, 128]). False if some t_j has none (the dequantized values are not
// monotone in q, e.g. a NaN or infinite scale): then the caller dequantizes.
bool int8_thresholds(float scale, int32_t zero_point, const float* thresholds, int n, int32_t* q) {
  for (int j = 0; j < n; ++j) {
    int32_t first_not = 128;  // the first q with the bit 0
    for (int32_t v = -128; v <= 127; ++v) {
      const bool below = static_cast<float>(int64_t{v} - zero_point) * scale < thresholds[j];
      if (!below && first_not == 128) first_not = v;
      if (below && first_not != 128) return false;  // a 1 after a 0
    }
    q[j] = first_not;
  }
  return true;
}

}  // namespace

int64_t transform_row_bytes(const OutputTransform& t, int channels) {
  if (t.type == OutputType::kBitpacked && t.thresholds != nullptr) {
    return int64_t{4} * packed_words(channels) * threshold_bases(t.num_thresholds, t.encoding);
  }
  return output_row_bytes(t.type, channels);
}

void bitpack_float_thresholds(const float* in, int64_t rows, int channels, const float* thresholds,
                              int n, int32_t* out, Encoding encoding) {
  pack_below(in, rows, channels, thresholds, n, out, encoding);
}

void bitpack_int8_thresholds(const int8_t* in, int64_t rows, int channels, float scale,
                             int32_t zero_point, const float* thresholds, int n, int32_t* out,
                             Encoding encoding) {
  // Each threshold as an int8 zero point of the ISA's int8 bitpacking.
  thread_local std::vector<int32_t> q;
  if (q.size() < static_cast<size_t>(n)) q.resize(n);
  if (int8_thresholds(scale, zero_point, thresholds, n, q.data())) {
    const BitpackInt8Fn bitpack = active_kernels().bitpack_int8;
    const int32_t* qt = q.data();
    pack_passes(rows, channels, n, encoding, out,
                [=](int64_t r0, int64_t count, int j, int32_t* packed) {
                  if (qt[j] > -128 && qt[j] < 128) {
                    bitpack(in + r0 * channels, count, channels, qt[j], packed);
                  } else {  // every bit 0 (q < -128) or 1 (q < 128): no compares
                    fill_bits(count, channels, qt[j] == 128, packed);
                  }
                });
    return;
  }
  // Else the dequantized values float(q - zero_point) * scale (the difference in
  // 64 bits: the zero point is any int32), in chunks of rows that stay in L1.
  const int words = packed_words(channels);
  const int64_t chunk = std::max<int64_t>(1, 4096 / channels);
  thread_local std::vector<float> values;
  if (values.size() < static_cast<size_t>(chunk * channels)) values.resize(chunk * channels);
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t count = std::min(chunk, rows - r0);
    const int8_t* q = in + r0 * channels;
    float* v = values.data();
    for (int64_t j = 0; j < count * channels; ++j) {
      v[j] = static_cast<float>(int64_t{q[j]} - zero_point) * scale;
    }
    pack_below(v, count, channels, thresholds, n, out + r0 * threshold_bases(n, encoding) * words,
               encoding);
  }
}

void multi_basis_transform(const int32_t* counts, int64_t ld_counts, int64_t basis_stride, int rows,
                           int groups, int channels, int k, const int32_t* row_k,
                           const OutputTransform& t, void* out) {
  const int nb = t.input_bases, mb = t.weight_bases;
  const int og = channels / groups;
  // y of every row: the output itself when it is float, else scratch.
  thread_local std::vector<float> scratch;
  float* y = static_cast<float*>(out);
  if (t.type != OutputType::kFloat) {
    if (scratch.size() < static_cast<size_t>(rows) * channels)
      scratch.resize(int64_t{rows} * channels);
    y = scratch.data();
  }
  if (nb == 1 && mb == 1 && groups == 1) {
    // One term: the ISA's transform, written as float.
    OutputTransform plain = t;
    plain.type = OutputType::kFloat;
    plain.thresholds = nullptr;
    plain.num_thresholds = 0;
    active_kernels().output_transform(counts, ld_counts, rows, 0, channels, k, row_k, plain, y,
                                      channels);
  } else {
    const Kernels& kernels = active_kernels();
    for (int r = 0; r < rows; ++r) {
      const int kr = row_k ? row_k[r] : k;
      float* yr = y + int64_t{r} * channels;
      for (int g = 0; g < groups; ++g) {
        float* yg = yr + int64_t{g} * og;
        for (int n = 0; n < nb; ++n) {
          for (int m = 0; m < mb; ++m) {
            const int32_t* c = counts + n * basis_stride + r * ld_counts + int64_t{g * mb + m} * og;
            const float* mult = t.multiplier + int64_t{n * mb + m} * channels + int64_t{g} * og;
            kernels.accumulate(c, kr, mult, og, n == 0 && m == 0, yg);
          }
        }
      }
      kernels.bias_clamp(yr, t.bias, channels, t.clamp_min, t.clamp_max);
    }
  }
  switch (t.type) {
    case OutputType::kFloat: break;  // written in place
    case OutputType::kInt8: {
      active_kernels().quantize_int8(y, int64_t{rows} * channels, t.int8_scale, t.int8_zero_point,
                                     static_cast<int8_t*>(out));
      break;
    }
    case OutputType::kBitpacked: {
      static const float kZero = 0.0f;
      const float* thresholds = t.thresholds ? t.thresholds : &kZero;
      const int n = t.thresholds ? t.num_thresholds : 1;
      pack_below(y, rows, channels, thresholds, n, static_cast<int32_t*>(out), t.encoding);
      break;
    }
  }
}

}  // namespace core
}  // namespace tfqnn
