// What every op file shares: how an op checks what the model gives it (the
// node's tensors: count, types, shapes, constant data; its custom options,
// a FlexBuffer map) and resizes its outputs. A check returns "" when it
// passes, else the message that Op::prepare() reports.
#ifndef TFQNN_LITE_KERNELS_TFLITE_VALIDATION_H_
#define TFQNN_LITE_KERNELS_TFLITE_VALIDATION_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "../core/core.h"
#include "abi.h"
#include "flexbuffer_map.h"
#include "ops.h"

namespace tfqnn {
namespace tflite {

// Returns the message of `expr` (a check) from the enclosing function when
// the check fails.
#define TFQNN_TRY(expr)         \
  do {                          \
    std::string e_ = (expr);    \
    if (!e_.empty()) return e_; \
  } while (0)

// Largest tensor (in elements) the kernels accept: keeps every index and byte
// count of the core inside int32/int64 arithmetic.
constexpr int64_t kMaxElements = int64_t(1) << 31;
// Largest dimension, channel count or option value the kernels accept.
constexpr int kMaxDim = 1 << 24;

const char* type_name(int type);
std::string str(int64_t v);

// Shapes and checked access to the tensors of a node.
class Tensors {
 public:
  Tensors(TfLiteContext* context, const NodeTensors& node) : context_(context), node_(node) {}

  // `inputs` inputs and `outputs` outputs, valid indices, no output that is
  // also an input or a constant tensor.
  std::string check_counts(size_t inputs, size_t outputs) const;
  size_t num_inputs() const { return node_.inputs.size(); }
  TfLiteTensor* input(int i) const { return &context_->tensors[node_.inputs[i]]; }
  TfLiteTensor* output(int i) const { return &context_->tensors[node_.outputs[i]]; }

 private:
  TfLiteContext* context_;
  const NodeTensors& node_;
};

std::vector<int> dims_of(const TfLiteTensor* t);
int64_t elements(const std::vector<int>& dims);

// Checks type, rank (-1: at least 1) and positive dims, and that a constant
// tensor's data is there with the bytes of its shape (the runtime allocates
// the others); returns the dims.
std::string check_tensor(const TfLiteTensor* t, const char* what, int type, int rank,
                         std::vector<int>* dims);
// A constant input: read-only data present and exactly as large as its shape.
std::string check_constant(const TfLiteTensor* t, const char* what, const std::vector<int>& dims);
std::string check_shape(const std::vector<int>& dims, const std::vector<int>& expected,
                        const char* what);
// Gives `t` the shape `dims` (nothing to do when it has it already).
TfLiteStatus resize(TfLiteContext* context, TfLiteTensor* t, const std::vector<int>& dims);

// ---- options -------------------------------------------------------------

// An op's custom options.
class Options {
 public:
  // Parses the FlexBuffer map; any key outside `allowed` is an error.
  std::string parse(const uint8_t* data, size_t size, const std::set<std::string>& allowed);
  // Integer option in [lo, hi]; `fallback` when absent and not required.
  std::string get_int(const char* key, int lo, int hi, int* out, bool required,
                      int fallback = 0) const;
  // Float option (not NaN); `fallback` when absent.
  std::string get_float(const char* key, float fallback, float* out) const;

 private:
  FlexbufferMap map_;
};

// The option `padding` (1 SAME, 2 VALID) as the core's enum.
core::Padding padding_of(int p);

// Most bases of a multi-basis op (input_bases, weight_bases, thresholds).
constexpr int kMaxBases = 32;

// Output transform options shared by Bdense and Bconv2d, with the
// multi-basis options `input_bases` and `weight_bases` [1] and the count of
// output thresholds (the optional fifth input).
struct TransformOptions {
  int output_type = 0;
  float clamp_min = -std::numeric_limits<float>::infinity();
  float clamp_max = std::numeric_limits<float>::infinity();
  int input_bases = 1, weight_bases = 1;
  int num_thresholds = 0;   // set by check_multi_basis()
  int output_encoding = 0;  // how the output thresholds become bases (core::Encoding)

  std::string read(const Options& o);
  int output_tflite_type() const {
    return output_type == 0 ? kTfLiteFloat32 : output_type == 1 ? kTfLiteInt8 : kTfLiteInt32;
  }
  int output_channels(int n) const {
    const int bases =
        num_thresholds > 0
            ? core::threshold_bases(num_thresholds, static_cast<core::Encoding>(output_encoding))
            : 1;
    return output_type == 2 ? core::packed_words(n) * bases : n;
  }
  // The inputs of the node (4, or 5 with output thresholds), the multiplier
  // [input_bases * weight_bases * n] and bias [n] (constant float32) and the
  // thresholds (constant float32 [T], 1 <= T <= kMaxBases, no NaN; only with
  // bitpacked output; `output_encoding` 1 needs them, as check_encoding()
  // says); sets num_thresholds.
  std::string check_multi_basis(const Tensors& ts, size_t inputs, int n);
  // Checks the output tensor's type (and int8 quantization) and fills the
  // core transform with multiplier, bias (and thresholds) of `n` channels.
  std::string make(const TfLiteTensor* out, const TfLiteTensor* multiplier,
                   const TfLiteTensor* bias, core::OutputTransform* t,
                   const TfLiteTensor* thresholds = nullptr) const;
};

// Multiplier and bias (inputs first, first + 1): constant float32 [n].
std::string check_affine(const Tensors& ts, int first, int n);
// Thresholds: a constant float32 [T] with 1 <= T <= kMaxBases and no NaN.
std::string check_thresholds(const TfLiteTensor* t, const char* what, int* count);
// Checked thresholds (check_thresholds) in `encoding` (option value 0 or 1):
// binary needs T = 2^k - 1 non-decreasing values.
std::string check_encoding(const TfLiteTensor* t, const char* what, int count, int encoding);

}  // namespace tflite
}  // namespace tfqnn

#endif  // TFQNN_LITE_KERNELS_TFLITE_VALIDATION_H_
