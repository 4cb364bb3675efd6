// TfqnnQuantize: bitpacks the last axis of a float32 or int8 tensor; with a
// second input, constant float32 thresholds [N], into N bases (bit 1 where
// x < t_n), for multi-basis layers (docs/lite_ops.md); with option
// `encoding` 1, N = 2^k - 1 sorted thresholds into the k binary digits of the
// level (core::Encoding).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../core/core.h"
#include "abi.h"
#include "ops.h"
#include "validation.h"

namespace tfqnn {
namespace tflite {
namespace {

class Quantize : public Op {
 protected:
  std::string do_init(const uint8_t* data, size_t size) override {
    TFQNN_TRY(options_.parse(data, size, {"encoding"}));
    return options_.get_int("encoding", 0, 1, &encoding_, false, 0);
  }
  std::string do_prepare(TfLiteContext* context, const NodeTensors& node) override {
    Tensors ts(context, node);
    TFQNN_TRY(ts.check_counts(ts.num_inputs() == 2 ? 2 : 1, 1));
    num_thresholds_ = 0;
    if (ts.num_inputs() == 2) {
      TFQNN_TRY(check_thresholds(ts.input(1), "thresholds", &num_thresholds_));
      TFQNN_TRY(check_encoding(ts.input(1), "thresholds", num_thresholds_, encoding_));
    } else if (encoding_ != 0) {
      return "option 'encoding' needs thresholds (a second input)";
    }
    const TfLiteTensor* in = ts.input(0);
    const int type = in->type == kTfLiteInt8 ? kTfLiteInt8 : kTfLiteFloat32;
    TFQNN_TRY(check_tensor(in, "input", type, -1, &in_dims_));
    // As many channels as Dequantize's option allows: packed_words() and the
    // core's channel arithmetic are int.
    if (in_dims_.back() > kMaxDim) {
      return "input's last dimension must be at most " + str(kMaxDim) + ", got " +
             str(in_dims_.back());
    }
    if (ts.output(0)->type != kTfLiteInt32) return "output must be int32";
    out_dims_ = in_dims_;
    const int bases = num_thresholds_ > 0 ? core::threshold_bases(num_thresholds_, encoding()) : 1;
    out_dims_.back() = core::packed_words(in_dims_.back()) * bases;
    if (elements(out_dims_) > kMaxElements) return "output is too large";
    if (resize(context, ts.output(0), out_dims_) != kTfLiteOk) return "cannot resize the output";
    return "";
  }
  void do_invoke(TfLiteContext* context, const NodeTensors& node) override {
    Tensors ts(context, node);
    const TfLiteTensor* in = ts.input(0);
    const int channels = in_dims_.back();
    const int64_t total_rows = elements(in_dims_) / channels;
    const int64_t out_words = out_dims_.back();
    // Rows [r0, r0 + rows) of the input, cut among the kernels' threads.
    auto pack = [&](int64_t r0, int64_t r1) {
      const int64_t rows = r1 - r0;
      const int64_t at = r0 * channels;
      auto* out = static_cast<int32_t*>(ts.output(0)->data) + r0 * out_words;
      if (num_thresholds_ > 0) {
        const auto* t = static_cast<const float*>(ts.input(1)->data);
        if (in->type == kTfLiteInt8) {
          core::bitpack_int8_thresholds(static_cast<const int8_t*>(in->data) + at, rows, channels,
                                        in->params.scale, in->params.zero_point, t, num_thresholds_,
                                        out, encoding());
        } else {
          core::bitpack_float_thresholds(static_cast<const float*>(in->data) + at, rows, channels,
                                         t, num_thresholds_, out, encoding());
        }
      } else if (in->type == kTfLiteInt8) {
        core::bitpack_int8(static_cast<const int8_t*>(in->data) + at, rows, channels,
                           in->params.zero_point, out);
      } else {
        core::bitpack_float(static_cast<const float*>(in->data) + at, rows, channels, out);
      }
    };
    core::parallel_bitpack(total_rows, int64_t{channels} * std::max(num_thresholds_, 1),
                           threads(context), pack);
  }

 private:
  core::Encoding encoding() const { return static_cast<core::Encoding>(encoding_); }

  Options options_;
  std::vector<int> in_dims_, out_dims_;
  int num_thresholds_ = 0;
  int encoding_ = 0;  // option `encoding`: 0 thermometer, 1 binary
};

}  // namespace

std::unique_ptr<Op> new_quantize() { return std::make_unique<Quantize>(); }

}  // namespace tflite
}  // namespace tfqnn
