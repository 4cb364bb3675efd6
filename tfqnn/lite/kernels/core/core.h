// tfqnn binary kernels: the core. Knows nothing of TFLite; the TFLite glue
// (../tflite/) validates every shape and option before calling in here, so
// these functions assume valid arguments. Contract: docs/lite_ops.md.
#ifndef TFQNN_LITE_KERNELS_CORE_CORE_H_
#define TFQNN_LITE_KERNELS_CORE_CORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace tfqnn {
namespace core {

// ---- CPU dispatch --------------------------------------------------------
enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kNeon = 3 };

// The instruction set the kernels use in this process: the best one the CPU
// supports, or the one named by the environment variable TFQNN_ISA
// ("scalar", "avx2", "avx512", "neon"; read once). Naming one the CPU lacks
// falls back to the best supported one below it.
Isa active_isa();
const char* isa_name(Isa isa);
bool isa_supported(Isa isa);

// ---- threads -----------------------------------------------------------------
// Wakes the kernels' sleeping worker threads ahead of a run of ops with
// `num_threads` > 1 (a no-op otherwise): they spin, ready for the next
// split op, instead of waking up in the middle of it.
void wake_threads(int num_threads);
// Sends the workers that spin, waiting for a next op, to sleep at once: a
// run of ops has ended (a delegate partition), and the ops that follow are
// the interpreter's (XNNPACK's), whose own threads need the cores.
void rest_threads();

// Runs pack(begin, end) over rows [0, rows) of a bitpacking op
// (TfqnnQuantize), `values` values read per row, cut into contiguous chunks
// among up to num_threads threads of the kernels' pool (the caller among
// them) where each gets enough work: bitpacking streams memory at ~30 ps a
// value (AVX-512), so only the large maps of a network split (QuickNet's
// 56x56x64: ~6 us).
void parallel_bitpack(int64_t rows, int64_t values, int num_threads,
                      const std::function<void(int64_t, int64_t)>& pack);

// ---- bitpacking ----------------------------------------------------------
inline int packed_words(int channels) { return (channels + 31) / 32; }

// rows x channels -> rows x packed_words(channels); bit 1 where x < 0
// (float) or q < zero_point (int8); padding bits 0.
void bitpack_float(const float* in, int64_t rows, int channels, int32_t* out);
void bitpack_int8(const int8_t* in, int64_t rows, int channels, int32_t zero_point, int32_t* out);
// rows x packed_words(channels) -> rows x channels of +-1.0f.
void unpack_float(const int32_t* in, int64_t rows, int channels, float* out);
// How n thresholds become bitpacked bases (docs/lite_ops.md, TfqnnQuantize):
// kThermometer, n bases, basis i with bit 1 where x < thresholds[i];
// kBinary, n = 2^k - 1 non-decreasing thresholds, k bases, basis i with bit 1
// where bit i of the level L = #{j : !(x < thresholds[j])} is 0 (a k-bit
// DoReFa input in binary digits). For sorted thresholds basis i is the XOR
// of the thermometer bases j - 1 with j a multiple of 2^i.
enum class Encoding { kThermometer = 0, kBinary = 1 };
inline int threshold_bases(int n, Encoding encoding) {
  if (encoding == Encoding::kThermometer) return n;
  int k = 0;
  while ((1 << k) - 1 < n) ++k;
  return k;
}

// Multi-threshold bitpacking (multi-basis inputs): rows x channels -> rows x
// (bases x packed_words(channels)), bases = threshold_bases(n, encoding);
// basis i is the words [i W, (i + 1) W) of a row. int8 input: x = float(q -
// zero_point) * scale.
void bitpack_float_thresholds(const float* in, int64_t rows, int channels, const float* thresholds,
                              int n, int32_t* out, Encoding encoding = Encoding::kThermometer);
void bitpack_int8_thresholds(const int8_t* in, int64_t rows, int channels, float scale,
                             int32_t zero_point, const float* thresholds, int n, int32_t* out,
                             Encoding encoding = Encoding::kThermometer);

// ---- output transform ----------------------------------------------------
enum class OutputType { kFloat = 0, kInt8 = 1, kBitpacked = 2 };

// The integer parameters of an int8 ADD of a (scale sa, zero point za) and b
// (sb, zb) into scale so, zero point zo, as XNNPACK computes them (the kernel
// that runs TFLite's int8 ADD in tfqnn.lite.Interpreter): with the float32
// ratios ra = sa / so, rb = sb / so, each in [2^-10, 2^8), and e the binary
// exponent of max(ra, rb), shift = 20 - e, a_multiplier = lrint(ra 2^shift)
// (b_multiplier alike, ties to even) and bias = 2^(shift-1) - a_multiplier za
// - b_multiplier zb; then
//   out = clamp(((bias + a a_multiplier + b b_multiplier) >> shift) + zo, lo, hi)
// (int32 throughout, an arithmetic shift: round half up); [lo, hi] is
// [-128, 127], or [zo, 127] for an ADD with a fused ReLU.
struct Int8Add {
  int32_t a_multiplier = 0, b_multiplier = 0, bias = 0, shift = 0, output_zero_point = 0;
  int32_t output_min = -128, output_max = 127;
};
// Fills `p`; false when a ratio lies outside [2^-10, 2^8) or a scale is not
// positive and finite.
bool int8_add_params(float a_scale, int32_t a_zero_point, float b_scale, int32_t b_zero_point,
                     float output_scale, int32_t output_zero_point, Int8Add* p);

struct OutputTransform {
  const float* multiplier = nullptr;  // [channels_out]
  const float* bias = nullptr;        // [channels_out]
  float clamp_min = -__builtin_inff();
  float clamp_max = __builtin_inff();
  OutputType type = OutputType::kFloat;
  float int8_scale = 1.0f;  // only for kInt8
  int32_t int8_zero_point = 0;
  // Multi-basis layers (docs/lite_ops.md): the input holds `input_bases` (N)
  // bitpacked bases per row, the weights `weight_bases` (M) bases of the
  // output channels; multiplier is [N][M][channels_out] and the N x M dot
  // products of a channel are summed in float32, n then m:
  //   acc = sum_(n,m) float32(dot_nm) * multiplier[n][m][o];  y = acc + bias[o]
  int input_bases = 1, weight_bases = 1;
  // Bitpacked output only: `num_thresholds` output bases, basis i with bit 1
  // where y < thresholds[i] (none: one basis, y < 0); with kBinary encoding,
  // threshold_bases(num_thresholds, kBinary) bases, as bitpack_float_thresholds.
  const float* thresholds = nullptr;
  int num_thresholds = 0;
  Encoding encoding = Encoding::kThermometer;
  // Float output of BConv2d only: a residual (shortcut) tensor of the
  // output's shape, rows x channels_out, added after the clamp:
  //   out = y + residual   (one float32 rounding)
  // (Bi-Real Net's and ResNetE's shortcut ADD fused into the op).
  const float* residual = nullptr;
  // With a residual: a per-channel bias added before it (QuickNet's
  // post-ReLU BatchNorm shift), out = (y + post_bias[o]) + residual.
  const float* post_bias = nullptr;
  // int8 output of BConv2d only: an int8 residual, rows x channels_out. The
  // transform writes y as int8 with int8_scale / int8_zero_point (the op's
  // own result, before the shortcut), then the int8 ADD of that and the
  // residual (`add`: a = the op's result, b = the residual) overwrites it.
  const int8_t* residual_int8 = nullptr;
  Int8Add add;
  // With it, an int8 per-channel post-bias (QuickNet's post-ReLU BatchNorm
  // shift as the unfused int8 file holds it): the int8 ADD `bias_add` of the
  // op's result and post_bias_int8[o] comes first (a = the op's result, b =
  // the post-bias), and `add` then adds the residual to that sum.
  const int8_t* post_bias_int8 = nullptr;
  Int8Add bias_add;
  // True when the transform is the one of a single-basis op with at most one
  // output threshold (the vectorized kernels of the ISA table run it).
  bool is_plain() const {
    return input_bases == 1 && weight_bases == 1 && (thresholds == nullptr || num_thresholds == 1);
  }
};

// The bitpacked output's threshold of a plain transform: bit where y < it.
inline float bitpack_threshold(const OutputTransform& t) {
  return t.thresholds != nullptr ? t.thresholds[0] : 0.0f;
}

// Bytes of one output row (pixel) of `channels` output channels.
int64_t transform_row_bytes(const OutputTransform& t, int channels);

// ---- binary dense --------------------------------------------------------
// input: rows x packed_words(in_features); weights: out_features x
// packed_words(in_features). Output rows x out_features (float or int8) or
// rows x packed_words(out_features) int32 (bitpacked). Multi-basis
// (transform.input_bases N, weight_bases M, BDense only): input rows of N x
// packed_words(in_features) words, weights M x out_features rows.
void bdense(const int32_t* input, int64_t rows, const int32_t* weights, int out_features,
            int in_features, const OutputTransform& transform, void* output, int num_threads);

// bdense() with the weights re-laid-out once: prepared once per op (weights
// are constant), run many times. bdense() itself prepares on every call,
// which for small batches costs far more than the product (1024x1024 batch
// 1 on AVX-512: ~11 us against ~1 us), so an op should hold a BDense. As
// BConv2d, run() uses scratch space of the object: one call at a time.
class BDense {
 public:
  // weights: out_features x packed_words(in_features), int32.
  // Multi-basis: `weight_bases` x out_features rows, basis-major.
  void prepare(const int32_t* weights, int out_features, int in_features, int weight_bases = 1);
  // As bdense(): input rows x packed_words(in_features).
  void run(const int32_t* input, int64_t rows, const OutputTransform& transform, void* output,
           int num_threads);
  int out_features() const { return out_features_; }
  int in_features() const { return in_features_; }

 private:
  int out_features_ = 0, in_features_ = 0, weight_bases_ = 1;
  size_t weights_offset_ = 0;     // words before the aligned panels
  std::vector<int32_t> weights_;  // kernel-ready layout
  std::vector<int32_t> scratch_;
};

// ---- binary 2-D convolution ----------------------------------------------
enum class Padding { kSame = 1, kValid = 2 };

struct BConv2dShape {
  int batch = 1, in_height = 0, in_width = 0, channels_in = 0, groups = 1;
  int channels_out = 0, filter_height = 1, filter_width = 1;
  int stride_height = 1, stride_width = 1;
  int dilation_height = 1, dilation_width = 1;
  Padding padding = Padding::kValid;
  int pad_values = 1;  // 1: padding pixels are +1; 0: they are zero; -1: they are -1
  // Multi-basis: N bitpacked input bases per pixel (N x
  // packed_words(channels_in) words), M filter bases (M x channels_out
  // filter rows, basis-major); must match the transform's.
  int input_bases = 1, weight_bases = 1;
  // Derived by compute_conv_geometry():
  int out_height = 0, out_width = 0, pad_top = 0, pad_left = 0;
};

// Fills out_height/out_width/pad_top/pad_left (TensorFlow's SAME/VALID).
void compute_conv_geometry(BConv2dShape* shape);

// Prepared once per op (weights are constant), run many times. Holds what the
// kernels precompute from the filter (re-laid-out weights, the per-tap weight
// sums for pad_values = 0) and scratch space.
class BConv2d {
 public:
  // filter: (weight_bases x channels_out) x filter_height x filter_width x
  // packed_words(channels_in / groups), int32. `shape` must already have its
  // geometry computed.
  void prepare(const BConv2dShape& shape, const int32_t* filter);
  // input: batch x in_height x in_width x (input_bases x
  // packed_words(channels_in)).
  void run(const int32_t* input, const OutputTransform& transform, void* output, int num_threads);
  const BConv2dShape& shape() const { return shape_; }

 private:
  BConv2dShape shape_;
  std::vector<int32_t> filter_;  // kernel-ready layout
  // pad_values 0 or -1: output pixels fall into classes by which of their taps
  // lie in the padding (row_class_[oy] * col_classes_ + col_class_[ox]); per
  // class, the padding taps' count and the popcount of their filter words
  // per output channel, [class][channels_out].
  std::vector<int> row_class_, col_class_;
  int col_classes_ = 0;
  std::vector<int32_t> border_taps_, border_sums_;
  std::vector<int32_t> scratch_;
  size_t filter_offset_ = 0;  // words before the aligned panels
};

// ---- binary max pooling --------------------------------------------------
struct BMaxPoolShape {
  int batch = 1, in_height = 0, in_width = 0, words = 0;
  int filter_height = 1, filter_width = 1, stride_height = 1, stride_width = 1;
  Padding padding = Padding::kValid;
  int out_height = 0, out_width = 0, pad_top = 0, pad_left = 0;  // derived
};
void compute_pool_geometry(BMaxPoolShape* shape);
// AND of the words in each window; padding positions are ignored.
void bmaxpool2d(const int32_t* input, const BMaxPoolShape& shape, int32_t* output);

// ---- codebook decoding -----------------------------------------------------
// Codebook (weight-sharing) kernels: index i of `count` is the `bits`-bit
// little-endian field at bit i * bits of `packed` (lowest bit first), and
// out[i] = codebook[index]. Returns kCodebookOk, or kCodebookBadIndex when an
// index is >= `codes` (out is then partly written). `packed` must hold
// packed_index_bytes(count, bits) bytes; bits in 1..kMaxIndexBits.
constexpr int kMaxIndexBits = 16;  // codebooks of up to 2^16 entries (lite.spec.MAX_INDEX_BITS)
constexpr int64_t kMaxCodes = int64_t{1} << kMaxIndexBits;
constexpr int kCodebookOk = 0;
constexpr int kCodebookBadIndex = 1;
inline int64_t packed_index_bytes(int64_t count, int bits) { return (count * bits + 7) / 8; }
int codebook_decode(const uint8_t* packed, int64_t count, int bits, const float* codebook,
                    int64_t codes, float* out);
// How many times codebook_decode has run in this process (tests check that
// an op decodes once, not once per invoke).
int64_t codebook_decode_count();

}  // namespace core
}  // namespace tfqnn

#endif  // TFQNN_LITE_KERNELS_CORE_CORE_H_
