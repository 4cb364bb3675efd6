// TfqnnDequantize: unpacks bitpacked words into +-1.0 float32 values
// (docs/lite_ops.md).
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

class Dequantize : public Op {
 protected:
  std::string do_init(const uint8_t* data, size_t size) override {
    TFQNN_TRY(options_.parse(data, size, {"channels"}));
    return options_.get_int("channels", 1, kMaxDim, &channels_, true);
  }
  std::string do_prepare(TfLiteContext* context, const NodeTensors& node) override {
    Tensors ts(context, node);
    TFQNN_TRY(ts.check_counts(1, 1));
    TFQNN_TRY(check_tensor(ts.input(0), "input", kTfLiteInt32, -1, &in_dims_));
    if (in_dims_.back() != core::packed_words(channels_)) {
      return "input's last dimension must be " + str(core::packed_words(channels_)) +
             " words for channels=" + str(channels_) + ", got " + str(in_dims_.back());
    }
    if (ts.output(0)->type != kTfLiteFloat32) return "output must be float32";
    std::vector<int> out = in_dims_;
    out.back() = channels_;
    if (elements(out) > kMaxElements) return "output is too large";
    if (resize(context, ts.output(0), out) != kTfLiteOk) return "cannot resize the output";
    return "";
  }
  void do_invoke(TfLiteContext* context, const NodeTensors& node) override {
    Tensors ts(context, node);
    const int64_t rows = elements(in_dims_) / in_dims_.back();
    core::unpack_float(static_cast<const int32_t*>(ts.input(0)->data), rows, channels_,
                       static_cast<float*>(ts.output(0)->data));
  }

 private:
  Options options_;
  int channels_ = 0;
  std::vector<int> in_dims_;
};

}  // namespace

std::unique_ptr<Op> new_dequantize() { return std::make_unique<Dequantize>(); }

}  // namespace tflite
}  // namespace tfqnn
